//! Reload honesty: a reload applies every key it can to the next request,
//! and a key only a restart applies is kept at its running value, with a
//! warning and a count in `rpcgate_reload_restart_required_total{key}`.

use std::time::Duration;

use rpcgate::config::{Config, ServerConfig};
use rpcgate::control::reload::{reload, Overrides};
use serde_json::{json, Value};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use crate::support::*;

/// The `server:` section of the second config: every key read per request
/// set away from its default.
const SERVER_RELOADED: &str = "server:
  max_body_bytes: 4096
  max_batch_len: 7
  max_method_len: 64
  max_batch_response_bytes: 65536
  batch_concurrency: 3
  body_read_timeout: 20s
  max_subscriptions_per_connection: 5
  max_topics_per_connection: 4
  max_upstream_subscriptions: 50
  ws_max_queued_bytes: 65536
  ws_max_frame_bytes: 32768
  ws_frame_timeout: 5s
  max_params_depth: 10
  lingering_close_timeout: 1s
  lingering_close_bytes: 1024
  max_inflight_answer_bytes: 536870912
  max_inflight_request_bytes: 536870912
  memory_wait: 1s
  admin_hosts: [admin.test]
  expose_upstream_headers: true
  cors: {allowed_origins: [\"https://dapp.test\"], max_age: 60s}
  compression: {enabled: false, min_bytes: 10, algorithms: [gzip, br, zstd], request_encodings: [gzip, br]}
";

/// Network keys of the second config, set away from their defaults.
const NETWORK_RELOADED: &str = "max_lag_blocks: 5
request_timeout: 7s
max_attempts: 2
eject_after_failures: 9
max_response_bytes: 1048576
max_logs_block_range: 500
upstream_batch_max: 4
method_timeouts: {eth_call: 3s, 'debug_*': 1m}
cache: {enabled: true, max_bytes: 65536, max_entry_bytes: 4096, confirmations: 3, block_scoped: false, max_shared_key_bytes: 128}
filters: {enabled: true, expiry: 1m, max_per_client: 3, max_total: 9, max_poll_blocks: 50, max_pending_hashes: 20}
read_your_writes: {enabled: false, ttl: 5s, max_entries: 10}
hedge: [{methods: [eth_getBalance], delay: 40ms, max_extra: 1}]
";

const POLICY_RELOADED: &str = "policy:
  max_connections_per_ip: 500
  redis_timeout: 80ms
  default_cost: 7
  costs: {eth_call: 30}
  anonymous:
    deny: [eth_blockNumber]
log:
  level: info,rpcgate=debug
  refusals_per_second: 2
  refusals_summary_interval: 3s
";

fn apply(gw: &Gw, yaml: &str) {
    assert!(
        reload(
            &gw.gateway,
            std::path::Path::new("reload-test.yaml"),
            yaml.as_bytes(),
            Overrides::default(),
        ),
        "the reload was refused"
    );
}

/// Each reloadable `server:` key differs between the two configs. The
/// destructuring names every field, so a new key fails to compile here
/// until the test changes it too.
fn assert_every_server_key_differs(old: &ServerConfig, new: &ServerConfig) {
    let ServerConfig {
        max_body_bytes,
        max_batch_len,
        max_method_len,
        max_batch_response_bytes,
        batch_concurrency,
        body_read_timeout,
        max_subscriptions_per_connection,
        max_topics_per_connection,
        max_upstream_subscriptions,
        ws_max_queued_bytes,
        ws_max_frame_bytes,
        ws_frame_timeout,
        max_params_depth,
        lingering_close_timeout,
        lingering_close_bytes,
        max_inflight_answer_bytes,
        max_inflight_request_bytes,
        memory_wait,
        cors,
        expose_upstream_headers,
        compression,
        admin_hosts,
    } = new;
    let differs = [
        ("max_body_bytes", *max_body_bytes != old.max_body_bytes),
        ("max_batch_len", *max_batch_len != old.max_batch_len),
        ("max_method_len", *max_method_len != old.max_method_len),
        (
            "max_batch_response_bytes",
            *max_batch_response_bytes != old.max_batch_response_bytes,
        ),
        (
            "batch_concurrency",
            *batch_concurrency != old.batch_concurrency,
        ),
        (
            "body_read_timeout",
            *body_read_timeout != old.body_read_timeout,
        ),
        (
            "max_subscriptions_per_connection",
            *max_subscriptions_per_connection != old.max_subscriptions_per_connection,
        ),
        (
            "max_topics_per_connection",
            *max_topics_per_connection != old.max_topics_per_connection,
        ),
        (
            "max_upstream_subscriptions",
            *max_upstream_subscriptions != old.max_upstream_subscriptions,
        ),
        (
            "ws_max_queued_bytes",
            *ws_max_queued_bytes != old.ws_max_queued_bytes,
        ),
        (
            "ws_max_frame_bytes",
            *ws_max_frame_bytes != old.ws_max_frame_bytes,
        ),
        (
            "ws_frame_timeout",
            *ws_frame_timeout != old.ws_frame_timeout,
        ),
        (
            "max_params_depth",
            *max_params_depth != old.max_params_depth,
        ),
        (
            "lingering_close_timeout",
            *lingering_close_timeout != old.lingering_close_timeout,
        ),
        (
            "lingering_close_bytes",
            *lingering_close_bytes != old.lingering_close_bytes,
        ),
        (
            "max_inflight_answer_bytes",
            *max_inflight_answer_bytes != old.max_inflight_answer_bytes,
        ),
        (
            "max_inflight_request_bytes",
            *max_inflight_request_bytes != old.max_inflight_request_bytes,
        ),
        ("memory_wait", *memory_wait != old.memory_wait),
        ("admin_hosts", *admin_hosts != old.admin_hosts),
        (
            "cors.allowed_origins",
            cors.allowed_origins != old.cors.allowed_origins,
        ),
        ("cors.max_age", cors.max_age != old.cors.max_age),
        (
            "expose_upstream_headers",
            *expose_upstream_headers != old.expose_upstream_headers,
        ),
        (
            "compression.enabled",
            compression.enabled != old.compression.enabled,
        ),
        (
            "compression.min_bytes",
            compression.min_bytes != old.compression.min_bytes,
        ),
        (
            "compression.algorithms",
            compression.algorithms != old.compression.algorithms,
        ),
        (
            "compression.request_encodings",
            compression.request_encodings != old.compression.request_encodings,
        ),
    ];
    for (key, changed) in differs {
        assert!(changed, "server.{key} is the same in both configs");
    }
}

async fn preflight_origin(gw: &Gw, origin: &str) -> Option<String> {
    let request = http::Request::builder()
        .method("OPTIONS")
        .uri(&gw.url)
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .body(Default::default())
        .unwrap();
    let reply = client().request(request).await.unwrap();
    reply
        .headers()
        .get("access-control-allow-origin")
        .map(|v| v.to_str().unwrap().to_string())
}

fn batch(n: usize) -> Value {
    Value::Array(
        (0..n)
            .map(|i| json!({"jsonrpc":"2.0","id":i,"method":"eth_chainId"}))
            .collect(),
    )
}

#[tokio::test]
async fn a_reload_applies_every_reloadable_key() {
    let fleet = fleet(1).await;
    fleet.mine().await.unwrap();
    let ups = fleet_ups(&fleet);
    let first = yaml(fleet.chain_id(), &ups, "");
    let second = format!(
        "{SERVER_RELOADED}{POLICY_RELOADED}{}",
        yaml(fleet.chain_id(), &ups, NETWORK_RELOADED)
    );
    let (old, new) = (
        Config::from_yaml(&first).unwrap(),
        Config::from_yaml(&second).unwrap(),
    );
    assert_every_server_key_differs(&old.server, &new.server);
    assert_ne!(old.networks, new.networks);
    assert_ne!(old.policy, new.policy);
    assert_ne!(old.log, new.log);

    let gw = start_gateway(&first).await;
    wait_synced(&gw, 1, 1).await;
    // Before: the defaults let all of these through.
    let big = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":[],"pad":"{}"}}"#,
        "x".repeat(5000)
    );
    assert_eq!(post(&gw.url, big.clone()).await.0, 200);
    assert_eq!(
        preflight_origin(&gw, "https://other.test").await.as_deref(),
        Some("https://other.test")
    );
    assert!(post_json(&gw.url, &batch(8)).await.is_array());
    assert!(result(&gw.url, "eth_blockNumber", json!([]))
        .await
        .is_string());

    apply(&gw, &second);
    wait_synced(&gw, 1, 1).await;

    // The snapshot the hot path reads holds every new value.
    let routes = gw.gateway.table();
    assert_eq!(routes.server, new.server);
    assert_eq!(gw.network().config, new.networks[0]);
    // Only the header part of body_read_timeout waits for a restart.
    assert_eq!(old.restart_only_changes(&new), ["server.body_read_timeout"]);
    assert_eq!(
        gw.gateway
            .reloads
            .restart_required("server.body_read_timeout"),
        1
    );

    // And requests see them.
    assert_eq!(post(&gw.url, big).await.0, 413, "max_body_bytes");
    assert_eq!(
        preflight_origin(&gw, "https://dapp.test").await.as_deref(),
        Some("https://dapp.test"),
        "cors.allowed_origins"
    );
    assert_eq!(
        preflight_origin(&gw, "https://other.test").await,
        None,
        "cors.allowed_origins"
    );
    let answer = post_json(&gw.url, &batch(8)).await;
    assert_eq!(answer["error"]["code"], -32600, "max_batch_len: {answer}");
    let refused = call(&gw.url, "eth_blockNumber", json!([])).await;
    assert!(
        refused["error"].is_object(),
        "policy.anonymous.deny: {refused}"
    );
    let (status, headers, _) = {
        let r = post_with_headers(
            &gw.url,
            &[("content-type", "application/json")],
            r#"{"jsonrpc":"2.0","id":1,"method":"eth_getBalance","params":["0x70997970C51812dc3A010C7d01b54e5C0979720C","latest"]}"#,
        )
        .await;
        (r.status, r.headers, r.body)
    };
    assert_eq!(status, 200);
    assert!(
        headers.contains_key("x-rpcgate-upstream"),
        "expose_upstream_headers: {headers:?}"
    );
}

#[tokio::test]
async fn a_restart_only_key_keeps_its_running_value_and_is_counted() {
    let fleet = fleet(1).await;
    fleet.mine().await.unwrap();
    let net = yaml(fleet.chain_id(), &fleet_ups(&fleet), "");
    let first = format!("server:\n  first_request_timeout: 300ms\n{net}");
    let second = format!("server:\n  first_request_timeout: 60s\n{net}");
    let gw = start_gateway(&first).await;
    wait_synced(&gw, 1, 1).await;
    let key = "server.first_request_timeout";
    assert_eq!(gw.gateway.reloads.restart_required(key), 0);

    apply(&gw, &second);

    assert_eq!(gw.gateway.reloads.restart_required(key), 1);
    let text = scrape(&gw.admin).await.text;
    assert!(
        text.contains(&format!(
            "rpcgate_reload_restart_required_total{{key=\"{key}\"}} 1"
        )),
        "{text}"
    );
    assert!(
        text.contains("rpcgate_reload_restart_required_total{key=\"listen\"} 0"),
        "{text}"
    );
    // The listener still closes a silent connection after 300ms, not 60s.
    let addr = gw.url.trim_start_matches("http://").to_string();
    let mut silent = TcpStream::connect(&addr).await.unwrap();
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(5), silent.read(&mut buf)).await;
    assert!(
        matches!(read, Ok(Ok(0)) | Ok(Err(_))),
        "a silent connection stayed open past the running first_request_timeout: {read:?}"
    );
    // Reloading the same file again warns again: the key still waits.
    apply(&gw, &second);
    assert_eq!(gw.gateway.reloads.restart_required(key), 2);
}
