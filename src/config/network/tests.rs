//! `networks.<name>` and its sub-sections: defaults, bounds, discovery,
//! the cache, `${VAR}` expansion, each error by its key path.

use crate::config::tests::{err_path, GOOD};
use crate::config::Config;

#[test]
fn tiers_and_state_history() {
    use crate::config::UpstreamTier as Tier;
    let c = Config::from_yaml(GOOD).unwrap();
    let n = &c.networks[0];
    assert_eq!(n.upstreams[0].tier, Tier::Primary);
    assert_eq!(n.upstreams[0].state_history, None);
    assert_eq!(
        n.head.fallback_probe_interval,
        std::time::Duration::from_secs(60)
    );
    let y = GOOD.replace(
        "        http: http://127.0.0.1:9546\n",
        "        http: http://127.0.0.1:9546\n        tier: fallback\n        state_history: 128\n",
    );
    let y = y.replace(
        "    upstreams:",
        "    head:\n      fallback_probe_interval: 5m\n    upstreams:",
    );
    let c = Config::from_yaml(&y).unwrap();
    let n = &c.networks[0];
    assert_eq!(n.upstreams[1].tier, Tier::Fallback);
    assert_eq!(n.upstreams[1].state_history, Some(128));
    assert_eq!(
        n.head.fallback_probe_interval,
        std::time::Duration::from_secs(300)
    );

    let bad_tier = GOOD.replace(
        "        http: http://127.0.0.1:9546\n",
        "        http: http://127.0.0.1:9546\n        tier: backup\n",
    );
    assert_eq!(err_path(&bad_tier), "networks.mainnet.upstreams[1].tier");
    let huge = GOOD.replace(
        "        http: http://127.0.0.1:9546\n",
        "        http: http://127.0.0.1:9546\n        state_history: 9999999999999\n",
    );
    assert_eq!(
        err_path(&huge),
        "networks.mainnet.upstreams[1].state_history"
    );
    let zero = y.replace("fallback_probe_interval: 5m", "fallback_probe_interval: 0s");
    assert_eq!(
        err_path(&zero),
        "networks.mainnet.head.fallback_probe_interval"
    );
    let only_fallbacks = "networks:\n  m:\n    chain_id: 1\n    upstreams:\n      - name: p\n        http: http://127.0.0.1:1\n        tier: fallback\n";
    assert_eq!(err_path(only_fallbacks), "networks.m.upstreams");
}

#[test]
fn heavy_call_bounds_have_defaults_and_are_checked() {
    use std::time::Duration;
    let c = Config::from_yaml(GOOD).unwrap();
    let n = c.network("mainnet").unwrap();
    assert_eq!(n.max_logs_block_range, 10_000);
    assert_eq!(c.server.max_params_depth, 64);
    assert_eq!(
        n.timeout_for("debug_traceTransaction"),
        Duration::from_secs(120)
    );
    assert_eq!(n.timeout_for("trace_block"), Duration::from_secs(120));
    assert_eq!(n.timeout_for("eth_call"), Duration::from_secs(10));
    let with = |keys: &str| {
        GOOD.replace(
            "    max_lag_blocks: 2\n",
            &format!("    max_lag_blocks: 2\n{keys}"),
        )
    };
    let c = Config::from_yaml(&with(
        "    method_timeouts:\n      eth_*: 1s\n      eth_call: 3s\n      eth_get*: 2s\n",
    ))
    .unwrap();
    let n = c.network("mainnet").unwrap();
    assert_eq!(n.timeout_for("eth_call"), Duration::from_secs(3));
    assert_eq!(n.timeout_for("eth_getLogs"), Duration::from_secs(2));
    assert_eq!(n.timeout_for("eth_chainId"), Duration::from_secs(1));
    // Given, the map replaces the defaults.
    assert_eq!(n.timeout_for("debug_x"), Duration::from_secs(10));
    assert_eq!(
        err_path(&with("    method_timeouts:\n      eth_call: 0s\n")),
        "networks.mainnet.method_timeouts.eth_call"
    );
    assert_eq!(
        err_path(&with("    method_timeouts:\n      'eth-*x': 1s\n")),
        "networks.mainnet.method_timeouts.eth-*x"
    );
    assert_eq!(
        err_path(&with("    max_logs_block_range: 0\n")),
        "networks.mainnet.max_logs_block_range"
    );
    assert_eq!(n.upstream_batch_max, 10);
    assert_eq!(n.upstream_max_in_flight, 0);
    assert_eq!(n.saturated_batch_max, 0);
    assert_eq!(n.saturated_batch_max_bytes, 256 * 1024);
    assert_eq!(
        err_path(&with("    saturated_batch_max_bytes: 10\n")),
        "networks.mainnet.saturated_batch_max_bytes"
    );
    assert_eq!(
        err_path(&with("    upstream_batch_max: 1001\n")),
        "networks.mainnet.upstream_batch_max"
    );
    assert_eq!(
        err_path(&format!("{GOOD}server:\n  max_params_depth: 1\n")),
        "server.max_params_depth"
    );
    assert_eq!(
        err_path(&format!(
            "{GOOD}policy:\n  anonymous:\n    max_logs_block_range: 0\n"
        )),
        "policy.anonymous.max_logs_block_range"
    );
    let c = Config::from_yaml(&format!(
        "{GOOD}policy:\n  anonymous:\n    max_logs_block_range: 5\n"
    ))
    .unwrap();
    assert_eq!(c.policy.anonymous.unwrap().max_logs_block_range, Some(5));
}

#[test]
fn discover_groups() {
    let y = "networks:\n  m:\n    chain_id: 1\n    discover:\n      - name: geth\n        dns: geth-headless.web3.svc.cluster.local\n        http_port: 8545\n        ws_port: 8546\n";
    let c = Config::from_yaml(y).unwrap();
    let d = &c.networks[0].discover[0];
    assert_eq!(
        (d.http_port, d.ws_port, d.interval.as_secs()),
        (8545, Some(8546), 10)
    );
    assert!(c.networks[0].upstreams.is_empty());
    assert_eq!(
        err_path(&y.replace("        http_port: 8545\n", "")),
        "networks.m.discover[0].http_port"
    );
    assert_eq!(
        err_path(&y.replace("dns:", "dnss:")),
        "networks.m.discover[0].dnss"
    );
}

#[test]
fn cache_keys_are_checked() {
    let c = Config::from_yaml(GOOD).unwrap();
    let cache = &c.network("mainnet").unwrap().cache;
    assert!(cache.enabled);
    assert_eq!(cache.max_bytes, 256 * 1024 * 1024);
    assert_eq!(cache.max_entry_bytes, 1024 * 1024);
    assert_eq!(cache.confirmations, None);
    assert!(!cache.shared);
    let with = |section: &str| GOOD.replace("    upstreams:", &format!("{section}    upstreams:"));
    let c = Config::from_yaml(&with(
        "    cache:\n      max_bytes: 65536\n      confirmations: 3\n",
    ))
    .unwrap();
    let cache = &c.network("mainnet").unwrap().cache;
    assert_eq!(cache.max_bytes, 65536);
    assert_eq!(
        cache.max_entry_bytes, 65536,
        "the entry limit follows a small store"
    );
    assert_eq!(cache.confirmations, Some(3));
    assert_eq!(
        err_path(&with("    cache:\n      max_byte: 1\n")),
        "networks.mainnet.cache.max_byte"
    );
    assert_eq!(
        err_path(&with("    cache:\n      max_bytes: 10\n")),
        "networks.mainnet.cache.max_bytes"
    );
    assert_eq!(
        err_path(&with(
            "    cache:\n      max_bytes: 65536\n      max_entry_bytes: 65537\n"
        )),
        "networks.mainnet.cache.max_entry_bytes"
    );
    assert_eq!(
        err_path(&with("    cache:\n      confirmations: 0\n")),
        "networks.mainnet.cache.confirmations"
    );
    assert_eq!(
        err_path(&with("    cache:\n      confirmations: 100000\n")),
        "networks.mainnet.cache.confirmations"
    );
    assert_eq!(
        err_path(&with("    cache:\n      shared_ttl: 0s\n")),
        "networks.mainnet.cache.shared_ttl"
    );
    // The shared tier lives in the top-level redis.
    let shared = with("    cache:\n      shared: true\n");
    assert_eq!(err_path(&shared), "networks.mainnet.cache.shared");
    let c = Config::from_yaml(&format!("{shared}redis:\n  url: redis://127.0.0.1:6379\n")).unwrap();
    assert!(c.network("mainnet").unwrap().cache.shared);
}

#[test]
fn variables_expand_in_urls_and_headers_and_errors_hide_secrets() {
    // Names no other test sets; the process environment is shared.
    std::env::set_var("RPCGATE_TEST_EXPAND_KEY", "k3y");
    let y = "networks:\n  mainnet:\n    chain_id: 1\n    upstreams:\n      - name: p\n        http: http://127.0.0.1:1/v1/${RPCGATE_TEST_EXPAND_KEY}\n        ws: ws://127.0.0.1:1/ws/${RPCGATE_TEST_EXPAND_KEY}\n        headers: { X-Api-Key: \"${RPCGATE_TEST_EXPAND_KEY}\" }\n";
    let c = Config::from_yaml(y).unwrap();
    let up = &c.networks[0].upstreams[0];
    assert_eq!(up.http.path(), "/v1/k3y");
    assert_eq!(up.ws.as_ref().unwrap().path(), "/ws/k3y");
    assert_eq!(up.headers["x-api-key"], "k3y");
    assert!(up.headers["x-api-key"].is_sensitive());
    let missing = y.replace(
        "X-Api-Key: \"${RPCGATE_TEST_EXPAND_KEY}",
        "X-Api-Key: \"${RPCGATE_TEST_EXPAND_UNSET}",
    );
    let err = Config::from_yaml(&missing).unwrap_err().to_string();
    assert_eq!(
        err,
        "networks.mainnet.upstreams[0].headers.X-Api-Key: environment variable RPCGATE_TEST_EXPAND_UNSET is not set"
    );
    // A bad URL is quoted as written, never with the secret in it.
    let bad = y.replace("http: http://127.0.0.1:1/v1/", "http: ftp://h/");
    let err = Config::from_yaml(&bad).unwrap_err().to_string();
    assert!(
        err.contains("${RPCGATE_TEST_EXPAND_KEY}") && !err.contains("k3y"),
        "{err}"
    );
}

/// The shape of issue 23, word for word, next to an execution network.
const BEACON: &str = "networks:
  mainnet:
    chain_id: 1
    upstreams:
      - name: geth
        http: http://127.0.0.1:8545
  mainnet-beacon:
    kind: beacon
    listen: 127.0.0.1:5052
    max_lag_slots: 2
    upstreams:
      - name: lighthouse-0
        http: http://lighthouse-0.beacon:5052
      - name: lighthouse-1
        http: http://lighthouse-1.beacon:5052
";

#[test]
fn beacon_networks_have_the_issue_shape() {
    let c = Config::from_yaml(BEACON).unwrap();
    assert_eq!(c.networks.len(), 1);
    assert!(
        c.networks[0].default,
        "the one execution network stays the default"
    );
    let b = &c.beacon[0];
    assert_eq!(b.name, "mainnet-beacon");
    assert_eq!(b.listen, Some("127.0.0.1:5052".parse().unwrap()));
    assert_eq!(b.max_lag_slots, 2);
    assert_eq!(b.poll_interval, std::time::Duration::from_secs(1));
    let names: Vec<&str> = b.upstreams.iter().map(|u| u.name.as_str()).collect();
    assert_eq!(names, ["lighthouse-0", "lighthouse-1"]);
    assert_eq!(b.upstreams[1].http, "http://lighthouse-1.beacon:5052");
    // A beacon network alone is a valid file.
    let alone = BEACON.replace(
        "  mainnet:\n    chain_id: 1\n    upstreams:\n      - name: geth\n        http: http://127.0.0.1:8545\n",
        "",
    );
    let c = Config::from_yaml(&alone).unwrap();
    assert!(c.networks.is_empty());
    assert_eq!(c.beacon.len(), 1);
}

#[test]
fn beacon_network_mistakes_are_named_by_key() {
    let problems = |y: &str| -> Vec<String> {
        Config::from_yaml(y)
            .unwrap_err()
            .problems()
            .iter()
            .map(|p| format!("{}: {}", p.path, p.message))
            .collect()
    };
    let bad_kind = BEACON.replace("kind: beacon", "kind: consensus");
    assert_eq!(err_path(&bad_kind), "networks.mainnet-beacon.kind");
    let chain_id = BEACON.replace("kind: beacon\n", "kind: beacon\n    chain_id: 1\n");
    let p = problems(&chain_id);
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(
        p[0].starts_with("networks.mainnet-beacon.chain_id: is a key of execution"),
        "{p:?}"
    );
    let forgot_kind = BEACON.replace("    kind: beacon\n", "");
    let p = problems(&forgot_kind);
    assert!(
        p.iter().any(|l| l.starts_with(
            "networks.mainnet-beacon.max_lag_slots: is a key of beacon networks only"
        )),
        "{p:?}"
    );
    let ws = BEACON.replace(
        "        http: http://lighthouse-0.beacon:5052\n",
        "        http: http://lighthouse-0.beacon:5052\n        ws: ws://x:1\n",
    );
    assert_eq!(err_path(&ws), "networks.mainnet-beacon.upstreams[0].ws");
    let dup = BEACON.replace("name: lighthouse-1", "name: lighthouse-0");
    assert_eq!(err_path(&dup), "networks.mainnet-beacon.upstreams[1].name");
    let no_http = BEACON.replace("        http: http://lighthouse-1.beacon:5052\n", "");
    assert_eq!(
        err_path(&no_http),
        "networks.mainnet-beacon.upstreams[1].http"
    );
    let bad_listen = BEACON.replace("listen: 127.0.0.1:5052", "listen: port-5052");
    assert_eq!(err_path(&bad_listen), "networks.mainnet-beacon.listen");
    let same_port = format!("listen: 127.0.0.1:5052\n{BEACON}");
    assert_eq!(err_path(&same_port), "networks.mainnet-beacon.listen");
    let lag = BEACON.replace("max_lag_slots: 2", "max_lag_slots: 99999");
    assert_eq!(err_path(&lag), "networks.mainnet-beacon.max_lag_slots");
    let none = BEACON.replace(
        "    upstreams:\n      - name: lighthouse-0\n        http: http://lighthouse-0.beacon:5052\n      - name: lighthouse-1\n        http: http://lighthouse-1.beacon:5052\n",
        "",
    );
    assert_eq!(err_path(&none), "networks.mainnet-beacon.upstreams");
}

#[test]
fn beacon_events_keys() {
    let c = Config::from_yaml(BEACON).unwrap();
    let e = c.beacon[0].events;
    assert_eq!(e.keepalive, std::time::Duration::from_secs(15));
    assert_eq!((e.max_streams, e.client_queue), (10_000, 256));
    let set = BEACON.replace(
        "max_lag_slots: 2",
        "max_lag_slots: 2\n    events: { keepalive: 5s, max_streams: 9, client_queue: 16 }",
    );
    let e = Config::from_yaml(&set).unwrap().beacon[0].events;
    assert_eq!(e.keepalive, std::time::Duration::from_secs(5));
    assert_eq!((e.max_streams, e.client_queue), (9, 16));
    let zero = set.replace("client_queue: 16", "client_queue: 0");
    assert_eq!(
        err_path(&zero),
        "networks.mainnet-beacon.events.client_queue"
    );
    let unknown = set.replace("client_queue: 16", "queue: 16");
    assert!(Config::from_yaml(&unknown).is_err());
    let execution = BEACON.replace(
        "    chain_id: 1\n",
        "    chain_id: 1\n    events: { keepalive: 5s }\n",
    );
    assert_eq!(err_path(&execution), "networks.mainnet.events");
}
