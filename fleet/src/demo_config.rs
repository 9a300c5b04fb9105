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
