//! Client policy across real rpcgate processes: two replicas sharing one
//! budget through one real redis-server, and API keys that never reach the
//! logs (the whole stderr of a process at trace level is read).

use std::time::Duration;

use rpcgate_fleet::{Fleet, RedisServer};
use serde_json::{json, Value};

use crate::support::{fleet, json_or_null, post_with_headers, sha256_hex, RpcgateProcess};

const KEY: &str = "process-key-a1b2c3d4e5f6";
const WRONG_KEY: &str = "process-key-wrong-0000";

fn config(fleet: &Fleet, extra: &str) -> String {
    format!(
        "networks:\n  dev:\n    chain_id: {}\n    head:\n      poll_interval: 50ms\n    upstreams:\n      - name: r0\n        http: {}\n{extra}",
        fleet.chain_id(),
        fleet.http_url(0)
    )
}

/// POSTs `body` with extra headers; returns status and JSON answer (Null if not JSON).
async fn post(url: &str, headers: &[(&str, &str)], body: &Value) -> (u16, Value) {
    let reply = post_with_headers(url, headers, body.to_string()).await;
    (reply.status, json_or_null(&reply.body))
}

fn call(method: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": []})
}

/// Waits until the gateway serves (anonymous calls, which have no limit here).
async fn ready(gw: &RpcgateProcess) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while post(&gw.url, &[], &call("eth_chainId")).await.0 != 200 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not ready: {}",
            gw.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One replica with a mined block.
async fn mined_fleet() -> Fleet {
    let fleet = fleet(1).await;
    fleet.mine().await.unwrap();
    fleet
}

#[tokio::test]
async fn two_processes_sharing_redis_admit_one_budget() {
    const BUDGET: usize = 40;
    let fleet = mined_fleet().await;
    let redis = RedisServer::start().await.unwrap();
    // No refill during the test (one request per 1000 s): the count is exact.
    let yaml = config(
        &fleet,
        &format!(
            "redis:\n  url: {}\npolicy:\n  clients:\n    dapp:\n      key_sha256: [{}]\n      limits:\n        requests_per_second: 0.001\n        burst: {BUDGET}\n",
            redis.url(),
            sha256_hex(KEY)
        ),
    );
    let a = RpcgateProcess::start_json_log(&yaml, "info");
    let b = RpcgateProcess::start_json_log(&yaml, "info");
    ready(&a).await;
    ready(&b).await;
    // 60 requests at each replica, concurrently, interleaved.
    let mut tasks = Vec::new();
    for i in 0..120 {
        let url = if i % 2 == 0 {
            a.url.clone()
        } else {
            b.url.clone()
        };
        tasks.push(tokio::spawn(async move {
            post(&url, &[("x-api-key", KEY)], &call("eth_chainId"))
                .await
                .0
        }));
    }
    let mut by_status = std::collections::BTreeMap::new();
    for t in tasks {
        *by_status.entry(t.await.unwrap()).or_insert(0usize) += 1;
    }
    let admitted = by_status.get(&200).copied().unwrap_or(0);
    let limited = by_status.get(&429).copied().unwrap_or(0);
    assert_eq!(admitted + limited, 120, "{by_status:?}");
    // Within 10% of the budget, and far from twice it.
    assert!(
        (BUDGET * 9 / 10..=BUDGET * 11 / 10).contains(&admitted),
        "admitted {admitted} of a budget of {BUDGET}: {by_status:?}"
    );
    // Both replicas served some of it.
    for gw in [&a, &b] {
        let (status, _) = post(&gw.url, &[("x-api-key", KEY)], &call("eth_chainId")).await;
        assert_eq!(status, 429, "{}", gw.log());
    }
}

/// URL, headers, method, expected HTTP status.
type Probe<'a> = (String, Vec<(&'a str, &'a str)>, &'a str, u16);

#[tokio::test]
async fn keys_never_reach_the_logs() {
    let fleet = mined_fleet().await;
    let yaml = config(
        &fleet,
        &format!(
            "policy:\n  clients:\n    dapp:\n      key_sha256: [{}]\n      allow: [eth_chainId]\n      limits:\n        requests_per_second: 0.001\n        burst: 3\n",
            sha256_hex(KEY)
        ),
    );
    let gw = RpcgateProcess::start_json_log(&yaml, "trace");
    ready(&gw).await;
    let bearer = format!("Bearer {KEY}");
    let wrong_bearer = format!("Bearer {WRONG_KEY}");
    let keyed_path = format!("{}/dev/{KEY}", gw.url);
    let wrong_path = format!("{}/dev/{WRONG_KEY}", gw.url);
    let requests: Vec<Probe> = vec![
        (
            gw.url.clone(),
            vec![("authorization", &bearer)],
            "eth_chainId",
            200,
        ),
        (gw.url.clone(), vec![("x-api-key", KEY)], "eth_chainId", 200),
        (keyed_path.clone(), vec![], "eth_chainId", 200),
        // Over the limit, a blocked method: logged refusals, still no key.
        (keyed_path, vec![], "eth_chainId", 429),
        // A blocked method costs budget too: limited as well.
        (
            gw.url.clone(),
            vec![("x-api-key", KEY)],
            "eth_getBalance",
            429,
        ),
        (
            gw.url.clone(),
            vec![("authorization", &wrong_bearer)],
            "eth_chainId",
            401,
        ),
        (
            gw.url.clone(),
            vec![("x-api-key", WRONG_KEY)],
            "eth_chainId",
            401,
        ),
        (wrong_path, vec![], "eth_chainId", 401),
    ];
    for (url, headers, method, want) in &requests {
        let (status, v) = post(url, headers, &call(method)).await;
        assert_eq!(status, *want, "{method} at {url}: {v}");
    }
    // Let the last lines reach the reader before looking.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let log = gw.log();
    assert!(log.contains("unknown API key"), "the capture works: {log}");
    for secret in [KEY, WRONG_KEY, &sha256_hex(KEY), &sha256_hex(WRONG_KEY)] {
        assert!(
            !log.contains(secret),
            "a key or its hash in the log:\n{log}"
        );
    }
}
