//! Test support: a gateway in this process on 127.0.0.1:0, in front of a
//! real anvil fleet. The plain HTTP client to talk to it is the fleet crate's
//! (`rpcgate_fleet::client`), re-exported here for the test modules.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use rpcgate::config::Config;
use rpcgate::control::Gateway;
use rpcgate::edge::Server;
use rpcgate::network::Network;
use rpcgate::upstream::NetworkView;
use rpcgate_fleet::{Fleet, FleetOptions};
use serde_json::Value;
use tokio::sync::oneshot;

pub use rpcgate_fleet::client::{
    call, http_client as client, json_or_null, post, post_json, post_with, post_with_headers,
    result,
};

/// The dev account anvil funds; the harness signs with it.
pub const DEV: &str = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266";
/// Another funded dev account, the receiver of transfers in tests.
pub const OTHER: &str = "0x70997970C51812dc3A010C7d01b54e5C0979720C";

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

pub async fn start_gateway(yaml: &str) -> Gw {
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

/// The admin listener's `/metrics` text (the one place tests fetch it by hand).
pub async fn metrics_text(admin: &str) -> String {
    let response = client()
        .request(
            http::Request::get(format!("{admin}/metrics"))
                .body(Default::default())
                .unwrap(),
        )
        .await
        .unwrap();
    let body = http_body_util::BodyExt::collect(response.into_body())
        .await
        .unwrap()
        .to_bytes();
    String::from_utf8(body.to_vec()).unwrap()
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
