//! Redis over TLS (`rediss://`, certificates made by the test, a CA file)
//! with an ACL user whose password comes from a file and who may run only
//! the commands the gateway uses; the default user is off, so nothing works
//! unauthenticated. Rate limits (with `redis_fallback: closed`, a verdict
//! that did not come from Redis would be a 503) and filters (kept in Redis:
//! a filter call that cannot reach it fails) must both work.

use rpcgate_fleet::{RedisServer, TestCa};
use serde_json::json;

use super::with_redis;
use crate::support::*;

const KEY: &str = "tls-acl-key-0123456789";
const PASSWORD: &str = "acl-password-from-a-file-42";
/// The commands (and script commands) the gateway runs, and nothing else.
const ACL: &str = "app on >acl-password-from-a-file-42 ~* -@all +evalsha +eval +script|load +get +set +del +time +ping +zadd +zrem +zcard +zremrangebyscore +pexpire +xadd +xrange +xrevrange";

#[tokio::test]
async fn rate_limits_and_filters_work_over_tls_with_an_acl_user() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("rpcgate-redis-test-ca").unwrap();
    let leaf = ca.issue(7).unwrap();
    let (ca_file, cert, key, pw) = (
        dir.path().join("ca.pem"),
        dir.path().join("redis.crt"),
        dir.path().join("redis.key"),
        dir.path().join("redis-password"),
    );
    ca.write(&ca_file).unwrap();
    leaf.write(&cert, &key).unwrap();
    std::fs::write(&pw, format!("{PASSWORD}\n")).unwrap();
    let redis = RedisServer::start_tls(&cert, &key, &["default off", ACL])
        .await
        .unwrap();

    let fleet = fleet(1).await;
    fleet.mine().await.unwrap();
    let y = with_redis(
        &fleet,
        "",
        &[
            format!("url: {}", redis.tls_url()),
            "username: app".into(),
            format!("password_file: {}", pw.display()),
            format!("ca_file: {}", ca_file.display()),
            "prefix: tls-test".into(),
        ],
        &format!(
            "policy:\n  redis_fallback: closed\n  redis_timeout: 2s\n  clients:\n    dapp:\n      key_sha256: [{}]\n      limits:\n        requests_per_second: 0.001\n        burst: 5\n",
            sha256_hex(KEY)
        ),
    );
    let gw = start_gateway(&y).await;
    wait_synced(&gw, 1, 1).await;

    // Five admitted by Redis, then refused by it: never a 503 (no verdict).
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []});
    let mut statuses = Vec::new();
    for _ in 0..8 {
        statuses.push(send(&gw.url, &[("x-api-key", KEY)], &body).await.0);
    }
    assert_eq!(statuses, [200, 200, 200, 200, 200, 429, 429, 429]);

    // A filter lives in Redis: made, then polled after a block.
    let id = result(&gw.url, "eth_newBlockFilter", json!([])).await;
    let top = fleet.mine().await.unwrap();
    wait_synced(&gw, 1, top).await;
    let hash = fleet.block_hash(0, top).await.unwrap().unwrap();
    let mut got = Vec::new();
    for _ in 0..100 {
        let changes = result(&gw.url, "eth_getFilterChanges", json!([id])).await;
        got.extend(changes.as_array().unwrap().iter().cloned());
        if !got.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(got, vec![json!(hash)]);

    let m = scrape(&gw.admin).await;
    assert_eq!(m.value("rpcgate_redis_failures_total", &[]), 0.0);
    assert_eq!(m.value("rpcgate_policy_redis_fallbacks_total", &[]), 0.0);
}
