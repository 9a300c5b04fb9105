//! The added latency of the gateway per REST read, measured by hand.

use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;

use crate::devnet::Devnet;
use crate::{start_gateway_over, wait_eligible, KEY};

/// Added latency per REST read, by hand (`cargo test --test beacon --
/// --ignored --nocapture`): one node, the same reads alternated direct and
/// through the gateway (its own listener) on one kept-alive client each,
/// p50 and p99 of each printed. Not a check: no timing asserts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn added_latency_per_read() {
    let Some(devnet) = Devnet::start(1) else {
        return;
    };
    // No tap: the gateway talks to the node as directly as the direct reads do.
    let gw = start_gateway_over(&devnet.urls).await;
    wait_eligible(&gw, "the node eligible", |n| n.len() == 1).await;
    let rounds: usize = std::env::var("ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(2000);
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    let once = |url: String| {
        let client = client.clone();
        async move {
            let req = Request::get(url)
                .header("x-api-key", KEY)
                .body(Full::new(Bytes::new()))
                .unwrap();
            let started = std::time::Instant::now();
            let answer = client.request(req).await.unwrap();
            let status = answer.status();
            answer.into_body().collect().await.unwrap();
            assert!(status.is_success());
            started.elapsed()
        }
    };
    for path in [
        "/eth/v1/node/version",
        "/eth/v1/beacon/states/head/fork",
        "/eth/v1/beacon/headers/head",
    ] {
        let (mut direct, mut through) = (Vec::new(), Vec::new());
        for i in 0..rounds + 50 {
            let d = once(format!("{}{path}", devnet.urls[0])).await;
            let g = once(format!("{}{path}", gw.own)).await;
            // The first reads open connections: not counted.
            if i >= 50 {
                direct.push(d);
                through.push(g);
            }
        }
        let pct = |v: &mut Vec<Duration>, p: f64| {
            v.sort();
            v[((v.len() as f64 - 1.0) * p) as usize].as_secs_f64() * 1000.0
        };
        let (d50, d99) = (pct(&mut direct, 0.5), pct(&mut direct, 0.99));
        let (g50, g99) = (pct(&mut through, 0.5), pct(&mut through, 0.99));
        println!(
            "{path}: {rounds} reads each, direct p50 {d50:.3} ms p99 {d99:.3} ms; through rpcgate p50 {g50:.3} ms p99 {g99:.3} ms; added p50 {:.3} ms p99 {:.3} ms",
            g50 - d50,
            g99 - d99
        );
    }
}
