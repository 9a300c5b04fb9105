//! The Beacon API front against real Lodestar nodes: two of the three nodes of one
//! devnet (started once for the whole binary, `devnet`), each behind a
//! faithful pass-through (`tap`), behind one gateway. The scenarios run in
//! order inside one test, so the devnet's ~15 s start is paid once:
//! - reads through the gateway answer as the node does (a differential
//!   check over a list of endpoints, duties included), on the main listener
//!   and on the network's own;
//! - the allowlist: closed paths and the validator namespace for anonymous
//!   callers are refused before any node is asked;
//! - a node made to report `is_syncing` or `is_optimistic` gets no traffic,
//!   and gets it again once healthy;
//! - a publish reaches every eligible node; one the first node accepts goes
//!   to the others only after (never all at once: gossip makes duplicates);
//! - a subscription sent while a node was down is replayed to it when it
//!   becomes eligible;
//! - reads naming `head` go only to nodes at the served head: a node held
//!   behind (its tap answers the head of the moment the hold began) gets
//!   none of them while it still serves other reads;
//! - what cannot change (genesis, spec, fork schedule, deposit contract, a
//!   finalized header by root) reaches a node once, then comes from the
//!   cache;
//! - block production whose node fails is retried on the other node only
//!   within its slot;
//! - a client over its rate limit is refused (429); requests are counted per
//!   path group and outcome; two gateways sharing one redis-server share a
//!   client's budget (`shared_limit`).
//!
//! - `/eth/v1/events` (`events`): on a gateway of its own, with the third
//!   node; last, since it kills a node.
//!
//! Skipped, saying so, when Lodestar is not installed (scripts/install-lodestar).

#![allow(unreachable_pub, clippy::unwrap_used)]

mod allowlist;
mod chain;
mod devnet;
mod events;
mod latency;
mod routing;
mod shared_limit;
mod tap;
mod validator;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use rpcgate::config::{Config, KeyDigest};
use rpcgate::control::Gateway;
use rpcgate::edge::Server;
use serde_json::Value;

use devnet::Devnet;
use tap::{Mode, Tap};

const KEY: &str = "beacon-test-key-7a6b5c4d3e2f";
/// A named client with a small request budget.
const SLOW_KEY: &str = "beacon-slow-key-1b2c3d4e5f60";
/// A named client with a budget of 4 requests (next to no refill), for the
/// limiter two gateways share through Redis (`shared_limit`).
const SHARED_KEY: &str = "beacon-shared-key-9f8e7d6c5b4a";

/// The tests of this binary run their devnets one after the other: two at
/// once would starve each other's slots on a 2-core machine.
static DEVNETS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

struct Reply {
    status: u16,
    headers: HeaderMap,
    body: Bytes,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

async fn request(method: Method, url: &str, key: Option<&str>, body: Option<&str>) -> Reply {
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    // `Accept` tells the taps a read of the test's from the gateway's health reads.
    let mut req = Request::builder()
        .method(method)
        .uri(url)
        .header("accept", "application/json");
    if let Some(key) = key {
        req = req.header("x-api-key", key);
    }
    if body.is_some() {
        req = req.header("content-type", "application/json");
    }
    let body = Full::new(Bytes::from(body.unwrap_or_default().to_string()));
    let answer = client.request(req.body(body).unwrap()).await.unwrap();
    let (parts, body) = answer.into_parts();
    Reply {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body: body.collect().await.unwrap().to_bytes(),
    }
}

async fn get(url: &str) -> Reply {
    request(Method::GET, url, None, None).await
}

struct Running {
    gateway: Arc<Gateway>,
    /// `http://host:port/lh` on the main listener.
    main: String,
    /// The network's own listener.
    own: String,
    /// `http://host:port` of the admin listener (`/metrics`).
    admin: String,
    /// The config it started with (a test reloads it with keys added).
    yaml: String,
    _stop: tokio::sync::oneshot::Sender<()>,
}

fn digest(key: &str) -> String {
    KeyDigest::of(key)
        .0
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

async fn start_gateway(taps: &[&Tap]) -> Running {
    let urls: Vec<String> = taps.iter().map(|t| t.url.clone()).collect();
    start_gateway_over(&urls).await
}

/// A gateway over the nodes at `urls` (taps or the nodes themselves).
async fn start_gateway_over(urls: &[String]) -> Running {
    start_gateway_with(urls, "").await
}

/// The same with `top` (top-level YAML, e.g. `redis:`) added.
async fn start_gateway_with(urls: &[String], top: &str) -> Running {
    let shared = digest(SHARED_KEY);
    let slow = digest(SLOW_KEY);
    let digest = digest(KEY);
    let ups: String = urls
        .iter()
        .enumerate()
        .map(|(i, u)| format!("      - name: n{}\n        http: {u}\n", i + 1))
        .collect();
    let yaml = format!(
        "{top}listen: 127.0.0.1:0\nadmin_listen: 127.0.0.1:0\npolicy:\n  clients:\n    vc:\n      key_sha256: [{digest}]\n    slow:\n      key_sha256: [{slow}]\n      limits:\n        requests_per_second: 0.2\n        burst: 3\n    shared:\n      key_sha256: [{shared}]\n      limits:\n        requests_per_second: 0.001\n        burst: 4\nnetworks:\n  lh:\n    kind: beacon\n    listen: 127.0.0.1:0\n    max_lag_slots: 4\n    poll_interval: 200ms\n    upstreams:\n{ups}"
    );
    let config = Config::from_yaml(&yaml).unwrap();
    let server = Server::bind(&config).await.unwrap();
    let main = format!("http://{}/lh", server.local_addr());
    let own = format!("http://{}", server.beacon_addrs()[0].1);
    let admin = format!("http://{}", server.admin_addr());
    let gateway = server.gateway();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server.run(
        async move {
            let _ = stopped.await;
        },
        Duration::from_secs(2),
    ));
    Running {
        gateway,
        main,
        own,
        admin,
        yaml,
        _stop: stop,
    }
}

/// Waits (bounded) until `ok` holds of the gateway's eligible node names.
async fn wait_eligible(gw: &Running, what: &str, ok: impl Fn(&[String]) -> bool) {
    let net = gw.gateway.beacon().by_name["lh"].clone();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let snap = net.snapshot();
        let names: Vec<String> = snap.eligible().map(|v| v.node.name.clone()).collect();
        if ok(&names) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what} (eligible: {names:?})"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beacon_gateway_over_lodestar() {
    let _one_devnet_at_a_time = DEVNETS.lock().await;
    let Some(devnet) = Devnet::start(3) else {
        return;
    };
    let taps = [
        Tap::start(&devnet.urls[0]).await,
        Tap::start(&devnet.urls[1]).await,
    ];
    let gw = start_gateway(&[&taps[0], &taps[1]]).await;
    wait_eligible(&gw, "both nodes eligible", |n| n.len() == 2).await;

    differential_reads(&gw, &devnet).await;
    closed_paths(&gw, &taps, &devnet.urls[0]).await;
    unhealthy_node_gets_no_traffic(&gw, &taps, Mode::Syncing).await;
    unhealthy_node_gets_no_traffic(&gw, &taps, Mode::Optimistic).await;
    publish_reaches_every_eligible_node(&gw, &taps).await;
    an_accepted_publish_reaches_the_others_after(&gw, &taps).await;
    subscription_is_replayed_to_a_node_that_joins(&gw, &taps).await;
    routing::head_reads_only_from_nodes_at_the_served_head(&gw, &taps).await;
    routing::what_cannot_change_is_read_once(&gw, &taps, &devnet).await;
    routing::production_is_retried_only_within_its_slot(&gw, &taps).await;
    routing::client_limits_and_request_metrics(&gw).await;
    shared_limit::one_budget_across_two_gateways(&taps).await;
    events::scenarios(&devnet).await;
}

/// Reads through the gateway (both listeners) against the same read of node 1 directly.
async fn differential_reads(gw: &Running, devnet: &Devnet) {
    let direct = &devnet.urls[0];
    // Fixed points, so that a read does not race the 2 s slots: a block
    // root a few slots deep, its state, the epoch's duties.
    let head = get(&format!("{direct}/eth/v1/beacon/headers/head"))
        .await
        .json();
    let slot: u64 = head["data"]["header"]["message"]["slot"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    // A slot a few deep that has a block (a loaded machine misses some).
    let mut fixed = slot.saturating_sub(2);
    let header = loop {
        let h = get(&format!("{direct}/eth/v1/beacon/headers/{fixed}")).await;
        if h.status == 200 || fixed == 0 {
            break h.json();
        }
        fixed -= 1;
    };
    let root = header["data"]["root"].as_str().unwrap().to_string();
    let state_root = header["data"]["header"]["message"]["state_root"]
        .as_str()
        .unwrap()
        .to_string();
    let epoch = fixed / 8;
    let reads: Vec<(Method, String, Option<&str>)> = vec![
        (Method::GET, "/eth/v1/beacon/genesis".into(), None),
        (Method::GET, format!("/eth/v1/beacon/headers/{root}"), None),
        (Method::GET, format!("/eth/v2/beacon/blocks/{root}"), None),
        (
            Method::GET,
            format!("/eth/v1/beacon/states/{state_root}/finality_checkpoints"),
            None,
        ),
        (
            Method::GET,
            "/eth/v1/beacon/states/genesis/validators?id=0&id=3".into(),
            None,
        ),
        (Method::GET, "/eth/v1/config/spec".into(), None),
        (Method::GET, "/eth/v1/config/fork_schedule".into(), None),
        (Method::GET, "/eth/v1/config/deposit_contract".into(), None),
        (Method::GET, "/eth/v1/node/version".into(), None),
        (Method::GET, format!("/eth/v1/beacon/blocks/{root}/root"), None),
        (Method::GET, format!("/eth/v1/beacon/blocks/{fixed}/root"), None),
        (
            Method::GET,
            format!("/eth/v1/beacon/blocks/{root}/attestations"),
            None,
        ),
        (Method::GET, format!("/eth/v1/beacon/headers?slot={fixed}"), None),
        (Method::GET, format!("/eth/v1/beacon/states/{fixed}/root"), None),
        (
            Method::GET,
            format!("/eth/v1/beacon/states/{state_root}/fork"),
            None,
        ),
        (Method::GET, "/eth/v1/beacon/states/genesis/fork".into(), None),
        (Method::GET, "/eth/v1/beacon/headers/0x0000000000000000000000000000000000000000000000000000000000000001".into(), None),
        (Method::GET, "/eth/v1/beacon/headers/99999999".into(), None),
        (
            Method::GET,
            format!("/eth/v1/validator/duties/proposer/{epoch}"),
            None,
        ),
        (
            Method::POST,
            format!("/eth/v1/validator/duties/attester/{epoch}"),
            Some(r#"["0","1","2","3","4","5","6","7"]"#),
        ),
        (
            Method::POST,
            format!("/eth/v1/validator/duties/sync/{epoch}"),
            Some(r#"["0","1"]"#),
        ),
    ];
    for base in [&gw.main, &gw.own] {
        for (method, path, body) in &reads {
            let want = request(method.clone(), &format!("{direct}{path}"), None, *body).await;
            let got = request(method.clone(), &format!("{base}{path}"), Some(KEY), *body).await;
            assert_eq!(got.status, want.status, "{base}{path}");
            assert_eq!(got.body, want.body, "{base}{path}: the body differs");
            for h in ["content-type", "eth-consensus-version"] {
                assert_eq!(
                    got.headers.get(h),
                    want.headers.get(h),
                    "{base}{path}: header {h}"
                );
            }
        }
        // Reads of the head race the slots: equal within a few tries.
        for path in [
            "/eth/v1/beacon/headers/head",
            "/eth/v1/beacon/states/head/fork",
            "/eth/v1/beacon/blocks/head/root",
        ] {
            let mut tries = 0;
            loop {
                let want = get(&format!("{direct}{path}")).await;
                let got = get(&format!("{base}{path}")).await;
                if got.status == want.status && got.body == want.body {
                    break;
                }
                tries += 1;
                assert!(
                    tries < 10,
                    "{base}{path}: {} vs {}",
                    got.status,
                    want.status
                );
            }
        }
        // The node's own view of its sync state, shape for shape (its head moves).
        let want = get(&format!("{direct}/eth/v1/node/syncing")).await.json();
        let got = get(&format!("{base}/eth/v1/node/syncing")).await.json();
        assert_eq!(got["data"]["is_syncing"], want["data"]["is_syncing"]);
        assert_eq!(got["data"]["is_optimistic"], want["data"]["is_optimistic"]);
        let keys = |v: &Value| {
            v["data"]
                .as_object()
                .unwrap()
                .keys()
                .cloned()
                .collect::<Vec<_>>()
        };
        assert_eq!(keys(&got), keys(&want));
    }
}

/// Closed paths and the validator namespace without a key: refused, no node
/// asked; then the operator's `paths:` ([`allowlist`]). `direct`: node 1.
async fn closed_paths(gw: &Running, taps: &[Tap; 2], direct: &str) {
    taps.iter().for_each(Tap::reset);
    let cases = [
        (
            format!("{}/eth/v2/debug/beacon/states/head", gw.main),
            None,
            403,
        ),
        (
            format!("{}/eth/v1/lodestar/sync-chains-debug-state", gw.own),
            Some(KEY),
            403,
        ),
        (format!("{}/lodestar/heap", gw.own), Some(KEY), 403),
        (
            format!("{}/eth/v1/validator/duties/proposer/0", gw.main),
            None,
            403,
        ),
        (
            format!("{}/eth/v1/events?topics=head&topics=heads", gw.main),
            Some(KEY),
            400,
        ),
    ];
    for (url, key, status) in cases {
        let r = request(Method::GET, &url, key, None).await;
        assert_eq!(r.status, status, "{url}");
        assert_eq!(r.json()["code"], status, "{url}: the Beacon API error form");
    }
    let unknown = request(
        Method::GET,
        &format!("{}/eth/v1/beacon/genesis", gw.main),
        Some("not-a-key-0000000000"),
        None,
    )
    .await;
    assert_eq!(unknown.status, 401);
    // A body over server.max_body_bytes (5 MiB by default): 413, no node asked.
    let big = format!("[\"{}\"]", "a".repeat(6 * 1024 * 1024));
    let url = format!("{}/eth/v1/beacon/pool/attestations", gw.own);
    let r = request(Method::POST, &url, Some(KEY), Some(&big)).await;
    assert_eq!(r.status, 413);
    for tap in taps {
        assert!(tap.traffic().is_empty(), "{:?}", tap.traffic());
    }
    allowlist::operator_paths(gw, taps, direct).await;
}

/// A node made to report `mode` through its tap gets no reads; healthy again, it does.
async fn unhealthy_node_gets_no_traffic(gw: &Running, taps: &[Tap; 2], mode: Mode) {
    taps[1].set(mode);
    wait_eligible(gw, &format!("n2 out ({mode:?})"), |n| n == ["n1"]).await;
    taps.iter().for_each(Tap::reset);
    for _ in 0..10 {
        let r = get(&format!("{}/eth/v1/node/version", gw.own)).await;
        assert_eq!(r.status, 200);
    }
    assert_eq!(taps[0].traffic().len(), 10, "{:?}", taps[0].traffic());
    assert!(
        taps[1].traffic().is_empty(),
        "{mode:?} node got {:?}",
        taps[1].traffic()
    );
    taps[1].set(Mode::Faithful);
    wait_eligible(gw, "n2 back", |n| n.len() == 2).await;
    taps.iter().for_each(Tap::reset);
    for _ in 0..10 {
        get(&format!("{}/eth/v1/node/version", gw.own)).await;
    }
    // Round robin over both: the check above can fail.
    assert_eq!(taps[1].traffic().len(), 5, "n2 serves again once healthy");
}

/// A publish goes to every eligible node (here refused by both: the exit is
/// not signed; the nodes' own answer comes back, Lodestar's is a 500).
/// A publish the first node accepts goes to the other only after: sent to
/// both at once, each would also hear it over gossip from the other and
/// answer it as a duplicate (a 500 from Lodestar), and the client would be
/// told that nobody took what the network holds.
async fn an_accepted_publish_reaches_the_others_after(gw: &Running, taps: &[Tap; 2]) {
    const PATH: &str = "/eth/v1/beacon/pool/voluntary_exits";
    taps.iter().for_each(|t| {
        t.reset();
        t.accept_path(Some(PATH));
    });
    let url = format!("{}{PATH}", gw.main);
    let r = request(Method::POST, &url, Some(KEY), Some("{}")).await;
    assert_eq!(r.status, 200, "the first node accepted it");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while taps.iter().any(|t| t.traffic().is_empty()) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the publish reached both nodes"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut orders: Vec<(u64, u64)> = taps
        .iter()
        .map(|t| t.traffic()[0].order.expect("accepted by the tap"))
        .collect();
    orders.sort();
    assert!(
        orders[1].0 > orders[0].1,
        "the second node was sent the publish before the first answered: {orders:?}"
    );
    taps.iter().for_each(|t| t.accept_path(None));
}

async fn publish_reaches_every_eligible_node(gw: &Running, taps: &[Tap; 2]) {
    taps.iter().for_each(Tap::reset);
    let exit = format!(
        r#"{{"message":{{"epoch":"0","validator_index":"5"}},"signature":"0x{}"}}"#,
        "ab".repeat(96)
    );
    let url = format!("{}/eth/v1/beacon/pool/voluntary_exits", gw.main);
    let r = request(Method::POST, &url, Some(KEY), Some(&exit)).await;
    assert!(
        r.status >= 400,
        "no node accepts an unsigned exit: {}",
        r.status
    );
    let refused = request(Method::POST, &url, None, Some(&exit)).await;
    assert_eq!(refused.status, 403, "publishing is for named clients");
    let net = gw.gateway.beacon().by_name["lh"].clone();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while taps.iter().any(|t| t.traffic().is_empty()) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the publish reached both nodes"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for tap in taps {
        let seen = tap.traffic();
        assert_eq!(seen.len(), 1, "{seen:?}");
        assert_eq!(seen[0].path, "/eth/v1/beacon/pool/voluntary_exits");
        assert_eq!(seen[0].body, exit.as_bytes(), "the body went as sent");
        assert_eq!(
            seen[0].status, r.status,
            "the nodes' refusal passes through"
        );
    }
    let snap = net.snapshot();
    let refused: u64 = snap
        .nodes
        .iter()
        .map(|v| {
            v.node
                .publishes
                .refused
                .load(std::sync::atomic::Ordering::Relaxed)
        })
        .sum();
    assert_eq!(refused, 2, "each node's answer is counted");
}

/// A proposer preparation sent while n2 is down reaches n2 when it is back.
async fn subscription_is_replayed_to_a_node_that_joins(gw: &Running, taps: &[Tap; 2]) {
    taps[1].set(Mode::Down);
    wait_eligible(gw, "n2 down", |n| n == ["n1"]).await;
    taps.iter().for_each(Tap::reset);
    let body =
        r#"[{"validator_index":"3","fee_recipient":"0x00000000000000000000000000000000000000a3"}]"#;
    let url = format!("{}/eth/v1/validator/prepare_beacon_proposer", gw.own);
    let r = request(Method::POST, &url, Some(KEY), Some(body)).await;
    assert_eq!(r.status, 200, "{:?}", String::from_utf8_lossy(&r.body));
    let path = "/eth/v1/validator/prepare_beacon_proposer";
    assert!(
        taps[1].traffic().iter().all(|s| s.path != path),
        "n2 was down"
    );
    taps[1].set(Mode::Faithful);
    wait_eligible(gw, "n2 back", |n| n.len() == 2).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let seen = taps[1].traffic();
        if let Some(s) = seen.iter().find(|s| s.path == path && s.status != 503) {
            assert_eq!(s.body, body.as_bytes());
            assert_eq!(s.status, 200, "n2 accepted the replayed preparation");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "replayed to n2: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
