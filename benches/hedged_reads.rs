//! Latency of reads through rpcgate when one of three anvil replicas is
//! slow (its tap delays each `eth_getBalance` by 200 ms), with and without
//! hedging: p50, p99 and max of sequential calls, and the backend sends
//! per call. Not a criterion bench and not part of `cargo test`: it starts
//! a real fleet and gateway and takes about a minute; run it with
//! `loadtests/hedged-reads` (or `cargo bench --bench hedged_reads`).
//!
//! Two shapes of slowness, each without hedging, with `delay: 50ms` and
//! with `delay: p95`:
//! - `steady`: the same replica is slow all along. P2C over Peak-EWMA stops
//!   choosing it after its first slow answer, with or without hedging;
//! - `moving`: one replica at a time is slow, a different one every 20
//!   calls, so the slowness is news to the latency estimate each time: what
//!   hedging is for.
//!
//! The figures are wall-clock times on whatever machine runs it (a shared
//! one is noisy): compare the rows of one run with each other.

// Bench code: no API, and a failed unwrap stops the run (the product's
// lints in Cargo.toml are for src/).
#![allow(unreachable_pub, clippy::unwrap_used)]

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use rpcgate::config::Config;
use rpcgate::edge::Server;
use rpcgate_fleet::{Fault, Fleet, FleetOptions, Tap};

const CALLS: usize = 400;
const SWITCH_EVERY: usize = 20;
const DELAY: Duration = Duration::from_millis(200);

#[derive(Clone, Copy, PartialEq)]
enum Shape {
    Steady,
    Moving,
}

fn config(chain_id: u64, taps: &[Tap], fleet: &Fleet, hedge: &str) -> String {
    let mut y = format!(
        "listen: 127.0.0.1:0\nadmin_listen: 127.0.0.1:0\nserver:\n  expose_upstream_headers: true\nnetworks:\n  bench:\n    chain_id: {chain_id}\n    cache: {{enabled: false}}\n{hedge}    upstreams:\n"
    );
    for (i, t) in taps.iter().enumerate() {
        y.push_str(&format!(
            "      - name: r{i}\n        http: {}\n        ws: {}\n",
            t.url(),
            fleet.ws_url(i)
        ));
    }
    y
}

struct Row {
    durations: Vec<Duration>,
    sends: u64,
}

async fn run(fleet: &Fleet, taps: &[Tap], shape: Shape, hedge: &str) -> Row {
    let config = Config::from_yaml(&config(fleet.chain_id(), taps, fleet, hedge)).unwrap();
    let server = Server::bind(&config).await.unwrap();
    let url = format!("http://{}/", server.local_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(server.run(
        async move {
            let _ = stopped.await;
        },
        Duration::from_secs(1),
    ));
    let client = rpcgate_fleet::client::http_client();
    let call = |n: usize| {
        let body = format!(
            r#"{{"jsonrpc":"2.0","id":{n},"method":"eth_getBalance","params":["0x{:040x}","latest"]}}"#,
            0x1000 + n
        );
        let request = http::Request::post(url.as_str())
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body)))
            .unwrap();
        let client = client.clone();
        async move {
            let response = client.request(request).await.unwrap();
            let ok = response.status() == 200;
            let body = response.into_body().collect().await.unwrap().to_bytes();
            ok && body.windows(8).any(|w| w == b"\"result\"")
        }
    };
    // Until the gateway serves (its trackers need a moment).
    while !call(0).await {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for t in taps {
        t.reset();
    }
    let mut durations = Vec::with_capacity(CALLS);
    for n in 0..CALLS {
        let slow = match shape {
            Shape::Steady => 0,
            Shape::Moving => (n / SWITCH_EVERY) % taps.len(),
        };
        if n % SWITCH_EVERY == 0 {
            for (i, t) in taps.iter().enumerate() {
                if i == slow {
                    t.set_fault_on("eth_getBalance", Fault::Delay(DELAY));
                } else {
                    t.set_fault(Fault::None);
                }
            }
        }
        let started = Instant::now();
        assert!(call(n + 1).await, "call {n} failed");
        durations.push(started.elapsed());
    }
    let sends = taps.iter().map(|t| t.count("eth_getBalance")).sum();
    for t in taps {
        t.set_fault(Fault::None);
    }
    let _ = stop.send(());
    let _ = running.await;
    durations.sort();
    Row { durations, sends }
}

fn quantile(d: &[Duration], q: f64) -> Duration {
    d[((d.len() as f64 * q).ceil() as usize).clamp(1, d.len()) - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

#[tokio::main]
async fn main() {
    // `cargo bench` passes `--bench`; a filter argument is not supported.
    let fleet = Fleet::start(FleetOptions {
        replicas: 3,
        ..FleetOptions::default()
    })
    .await
    .unwrap();
    fleet.mine().await.unwrap();
    let mut taps = Vec::new();
    for i in 0..3 {
        taps.push(Tap::start(&fleet.http_url(i)).await.unwrap());
    }
    println!(
        "hedged reads: {CALLS} sequential eth_getBalance calls, 3 anvil replicas, one delayed {} ms",
        DELAY.as_millis()
    );
    println!(
        "{:<8} {:<14} {:>8} {:>8} {:>8} {:>10} {:>11}",
        "shape", "hedging", "p50 ms", "p99 ms", "max ms", ">150ms", "sends/call"
    );
    for shape in [Shape::Steady, Shape::Moving] {
        for (name, hedge) in [
            ("off", ""),
            (
                "delay 50ms",
                "    hedge: [{methods: [eth_getBalance], delay: 50ms}]\n",
            ),
            (
                "delay p95",
                "    hedge: [{methods: [eth_getBalance], delay: p95}]\n",
            ),
        ] {
            let row = run(&fleet, &taps, shape, hedge).await;
            let d = &row.durations;
            println!(
                "{:<8} {:<14} {:>8} {:>8} {:>8} {:>10} {:>11.3}",
                if shape == Shape::Steady {
                    "steady"
                } else {
                    "moving"
                },
                name,
                ms(quantile(d, 0.5)),
                ms(quantile(d, 0.99)),
                ms(quantile(d, 1.0)),
                d.iter()
                    .filter(|x| **x > Duration::from_millis(150))
                    .count(),
                row.sends as f64 / CALLS as f64,
            );
        }
    }
}
