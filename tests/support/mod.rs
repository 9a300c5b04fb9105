//! Test support, shared by the test binaries `gateway` and `memory`: a
//! gateway in this process on 127.0.0.1:0 in front of a real anvil fleet,
//! its config written as YAML, and the waits on its view; an rpcgate
//! process of its own ([`process`]); `/metrics` scraped and parsed
//! ([`metrics`]). The plain HTTP client to talk to a gateway is the fleet
//! crate's (`rpcgate_fleet::client`), re-exported here for the test modules.
//!
//! Why a folder beside the binaries and not inside one: cargo makes each
//! `tests/*/main.rs` a binary of its own, and the memory flood needs one
//! (see `tests/memory/main.rs`). Each binary includes this module once,
//! with `#[path = "../support/mod.rs"]`; what one binary leaves unused is
//! allowed there, not here.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderMap;
use rpcgate::config::{Config, KeyDigest};
use rpcgate::control::Gateway;
use rpcgate::edge::Server;
use rpcgate::network::Network;
use rpcgate::upstream::NetworkView;
use rpcgate_fleet::{Fleet, FleetOptions, Tap};
use serde_json::Value;
use tokio::sync::oneshot;

pub mod metrics;
pub mod process;

pub use metrics::{labelled, scrape, Scraped};
pub use process::RpcgateProcess;
pub use rpcgate_fleet::client::{
    call, http_client as client, json_or_null, post, post_json, post_with, post_with_headers,
    result,
};
/// The dev account anvil funds (the harness signs with it), and another
/// funded one, the receiver of transfers in tests.
pub use rpcgate_fleet::{DEV_ACCOUNT as DEV, RECEIVER_ACCOUNT as OTHER};

pub struct Gw {
    pub url: String,
    /// The admin listener: livez, readyz, status.
    pub admin: String,
    pub gateway: Arc<Gateway>,
    stop: Option<oneshot::Sender<()>>,
}

impl Gw {
    pub fn view(&self) -> Arc<NetworkView> {
        self.network().view()
    }

    pub fn network(&self) -> Arc<Network> {
        self.gateway
            .table()
            .resolve("/")
            .map(|(network, _)| network)
            .expect("a default network")
            .clone()
    }
}

impl Drop for Gw {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// One upstream line of a config.
pub struct Up {
    pub name: String,
    pub http: String,
    pub ws: Option<String>,
    /// More keys of this upstream, one `key: value` line each.
    pub keys: Vec<String>,
}

pub fn up(name: &str, http: String, ws: Option<String>) -> Up {
    Up {
        name: name.into(),
        http,
        ws,
        keys: Vec::new(),
    }
}

impl Up {
    /// Adds a `key: value` line to this upstream (`tier: fallback`).
    pub fn with(mut self, line: &str) -> Up {
        self.keys.push(line.into());
        self
    }
}

/// The fleet's replicas as upstreams r0, r1, ... (with newHeads over ws).
pub fn fleet_ups(fleet: &Fleet) -> Vec<Up> {
    (0..fleet.len())
        .map(|i| up(&format!("r{i}"), fleet.http_url(i), Some(fleet.ws_url(i))))
        .collect()
}

/// A tap in front of each of the fleet's replicas (HTTP), in replica order.
pub async fn tap_all(fleet: &Fleet) -> Vec<Tap> {
    let mut taps = Vec::new();
    for i in 0..fleet.len() {
        taps.push(Tap::start(&fleet.http_url(i)).await.unwrap());
    }
    taps
}

/// A fleet of two with one mined block, each replica behind a tap (to
/// count what reaches it and inject faults), and the taps as upstreams r0
/// and r1 (HTTP only).
pub async fn two_tapped_replicas() -> (Fleet, Tap, Tap, Vec<Up>) {
    let fleet = fleet(2).await;
    fleet.mine().await.unwrap();
    let mut taps = tap_all(&fleet).await.into_iter();
    let (t0, t1) = (taps.next().unwrap(), taps.next().unwrap());
    let ups = vec![up("r0", t0.url(), None), up("r1", t1.url(), None)];
    (fleet, t0, t1, ups)
}

/// Network lines for tests of routing and policy that count the calls
/// reaching the backends: repeated reads of `latest` would otherwise be
/// answered by the block-scoped cache after the first.
pub const ROUTING_ONLY: &str = "cache: {block_scoped: false}";

/// A config for one network `dev`, with fast head polling; `extra` adds network keys.
pub fn yaml(chain_id: u64, ups: &[Up], extra: &str) -> String {
    let mut y = format!(
        "listen: 127.0.0.1:0\nadmin_listen: 127.0.0.1:0\nnetworks:\n  dev:\n    chain_id: {chain_id}\n    head:\n      poll_interval: 50ms\n      ws_poll_interval: 200ms\n      finality_poll_interval: 200ms\n      syncing_poll_interval: 500ms\n      probe_timeout: 1s\n"
    );
    for line in extra.lines().filter(|l| !l.trim().is_empty()) {
        y.push_str(&format!("    {}\n", line.trim()));
    }
    y.push_str("    upstreams:\n");
    for u in ups {
        y.push_str(&format!(
            "      - name: {}\n        http: {}\n",
            u.name, u.http
        ));
        if let Some(ws) = &u.ws {
            y.push_str(&format!("        ws: {ws}\n"));
        }
        for line in &u.keys {
            y.push_str(&format!("        {line}\n"));
        }
    }
    y
}

/// Adds a `cache:` section (lines as under it) to the network of a test config.
pub fn with_cache(yaml: &str, lines: &[&str]) -> String {
    let mut section = String::from("    cache:\n");
    for l in lines {
        section.push_str(&format!("      {l}\n"));
    }
    yaml.replace("    upstreams:\n", &format!("{section}    upstreams:\n"))
}

/// A gateway in front of every replica of `fleet` (newHeads over ws), with
/// the network keys `extra`, once every backend serves block `height`.
pub async fn gateway_over(fleet: &Fleet, extra: &str, height: u64) -> Gw {
    let gw = start_gateway(&yaml(fleet.chain_id(), &fleet_ups(fleet), extra)).await;
    wait_synced(&gw, fleet.len(), height).await;
    gw
}

/// `yaml` with the anonymous callers unlimited unless it sets their
/// `limits:` itself. A config without them gets the product's default
/// per-IP limits (`policy.anonymous.limits`), which tests that send many
/// calls from 127.0.0.1 would trip over; the tests of those defaults start
/// their gateway with [`start_gateway_as_is`].
pub fn unlimited_anonymous(yaml: &str) -> String {
    const UNLIMITED: &str = "    limits: {}\n";
    if !yaml.lines().any(|l| l == "policy:") {
        return format!("{yaml}policy:\n  anonymous:\n{UNLIMITED}");
    }
    let Some(at) = yaml.find("\n  anonymous:\n") else {
        return yaml.replacen(
            "policy:\n",
            &format!("policy:\n  anonymous:\n{UNLIMITED}"),
            1,
        );
    };
    let body_start = at + "\n  anonymous:\n".len();
    let has_limits = yaml[body_start..]
        .lines()
        .take_while(|l| l.starts_with("    "))
        .any(|l| l.starts_with("    limits:"));
    if has_limits {
        return yaml.to_string();
    }
    format!("{}{UNLIMITED}{}", &yaml[..body_start], &yaml[body_start..])
}

/// A gateway on `yaml` (anonymous callers unlimited unless it says
/// otherwise, see [`unlimited_anonymous`]).
pub async fn start_gateway(yaml: &str) -> Gw {
    start_gateway_as_is(&unlimited_anonymous(yaml)).await
}

/// A gateway on `yaml` exactly as written (the product's defaults apply).
pub async fn start_gateway_as_is(yaml: &str) -> Gw {
    let config = Config::from_yaml(yaml).unwrap_or_else(|e| panic!("test config: {e}\n{yaml}"));
    let server = Server::bind(&config).await.expect("bind 127.0.0.1:0");
    let url = format!("http://{}", server.local_addr());
    let admin = format!("http://{}", server.admin_addr());
    let gateway = server.gateway();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(server.run(
        async move {
            let _ = stopped.await;
        },
        Duration::from_secs(5),
    ));
    Gw {
        url,
        admin,
        gateway,
        stop: Some(stop),
    }
}

pub async fn fleet(replicas: usize) -> Fleet {
    Fleet::start(FleetOptions {
        replicas,
        ..FleetOptions::default()
    })
    .await
    .expect("start the anvil fleet")
}

/// Waits (bounded) until the gateway's view satisfies `ok`.
pub async fn wait_view(gw: &Gw, what: &str, ok: impl Fn(&NetworkView) -> bool) {
    let net = gw.network();
    wait_for(what, || {
        let v = net.view();
        let pass = ok(&v);
        async move { pass }
    })
    .await
}

/// Waits (bounded) until every backend's tracker has `hash` as its head:
/// after a reorg, the gateway has seen the new chain everywhere.
pub async fn wait_trackers_at(gw: &Gw, hash: &str) {
    wait_view(gw, "every tracker on the new chain", |v| {
        v.backends
            .iter()
            .all(|b| b.state.latest.as_ref().is_some_and(|l| l.hash == hash))
    })
    .await;
}

/// Waits until every backend is eligible with the served head at `height`.
pub async fn wait_synced(gw: &Gw, backends: usize, height: u64) {
    wait_view(
        gw,
        &format!("{backends} eligible backends at height {height}"),
        |v| {
            v.eligible().count() == backends
                && v.served_head == Some(height)
                && v.eligible().all(|b| b.head == height)
        },
    )
    .await
}

pub async fn wait_for<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !check().await {
        if tokio::time::Instant::now() > deadline {
            panic!("timed out waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The API key of the keyed client in policy tests.
pub const KEY: &str = "test-key-5f0e1d2c3b4a";

/// The hex SHA-256 of an API key, as `key_sha256:` takes it.
pub fn sha256_hex(key: &str) -> String {
    KeyDigest::of(key)
        .0
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A contract whose constructor logs topic 42 and whose code, on any call,
/// logs its calldata under topic 42 and returns 42.
pub const LOGGER_INIT: &str =
    "0x602a60006000a16016601360003960166000f3366000600037602a366000a1602a60005260206000f3";

/// POSTs `body` with extra headers; returns status, headers, JSON answer (Null if empty).
pub async fn send(url: &str, headers: &[(&str, &str)], body: &Value) -> (u16, HeaderMap, Value) {
    let reply = post_with_headers(url, headers, body.to_string()).await;
    let bytes = reply.body;
    let value = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or_else(|_| panic!("not JSON: {bytes:?}"))
    };
    (reply.status, reply.headers, value)
}

/// GETs `url`: the status and the body's bytes.
pub async fn get_bytes(url: &str) -> (u16, bytes::Bytes) {
    let response = client()
        .request(http::Request::get(url).body(Default::default()).unwrap())
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = response.status().as_u16();
    let body = http_body_util::BodyExt::collect(response.into_body())
        .await
        .unwrap()
        .to_bytes();
    (status, body)
}

/// GETs `url`: the status and the body as text.
pub async fn get(url: &str) -> (u16, String) {
    let (status, body) = get_bytes(url).await;
    (status, String::from_utf8_lossy(&body).into_owned())
}

pub fn hex(n: u64) -> String {
    format!("{n:#x}")
}

pub fn quantity(v: &Value) -> u64 {
    u64::from_str_radix(
        v.as_str().expect("a hex string").trim_start_matches("0x"),
        16,
    )
    .expect("a hex quantity")
}
