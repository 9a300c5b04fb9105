//! The config `rpcgate-demo` gives its gateway, here rather than in the
//! binary so that `tests/config_files.rs` checks it with the other shipped
//! configs (valid, anonymous limits on).

use std::fmt::Write as _;
use std::net::SocketAddr;

/// The demo's YAML: one network `dev` over `upstreams` (HTTP and WebSocket
/// URL of each replica). Anonymous callers are limited, as in every config
/// we ship, with budgets a person trying the demo by hand never reaches.
pub fn demo_yaml(chain_id: u64, listen: SocketAddr, upstreams: &[(String, String)]) -> String {
    let mut y = format!(
        "listen: {listen}\nadmin_listen: 127.0.0.1:0\nnetworks:\n  dev:\n    chain_id: {chain_id}\n    default: true\n    max_lag_blocks: 1\n    head:\n      poll_interval: 250ms\n    upstreams:\n"
    );
    for (i, (http, ws)) in upstreams.iter().enumerate() {
        let _ = write!(
            y,
            "      - name: anvil-{i}\n        http: {http}\n        ws: {ws}\n"
        );
    }
    y.push_str(
        "policy:\n  anonymous:\n    limits:\n      requests_per_second: 100\n      burst: 200\n      compute_units_per_second: 2500\n      compute_burst: 5000\n",
    );
    y
}

/// The demo's YAML for a load test of `clients` connections from one host
/// (`loadtests/ws-fanout`): the connection caps, the per-IP cap and the
/// anonymous request budget are raised so that every client can connect and
/// subscribe at once; everything else is [`demo_yaml`].
pub fn load_yaml(
    chain_id: u64,
    listen: SocketAddr,
    upstreams: &[(String, String)],
    clients: usize,
) -> String {
    let base = demo_yaml(chain_id, listen, upstreams);
    let budget = clients.max(200);
    let policy = format!(
        "policy:\n  max_connections_per_ip: {budget}\n  anonymous:\n    limits:\n      requests_per_second: {budget}\n      burst: {budget}\n      compute_units_per_second: {cu}\n      compute_burst: {cu}\n",
        cu = budget * 50
    );
    let head = base.split("policy:\n").next().unwrap_or(&base);
    format!("{head}server:\n  max_connections: {budget}\n{policy}")
}
