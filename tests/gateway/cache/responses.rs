//! The response cache against a real fleet: one upstream call per cacheable
//! request (counted at the backends by taps), never a cached present, null
//! or error, coalescing, the byte bound, reorgs, and the Redis tier.

use std::time::Duration;

use futures_util::future::join_all;
use rpcgate_fleet::{Fault, RedisServer};
use serde_json::{json, Value};

use super::{quiet, tapped, tapped_with, wait_cache_current};
use crate::support::*;

fn body(id: &str, method: &str, params: &Value) -> String {
    format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"{method}","params":{params}}}"#)
}

/// POSTs one call with the raw id text `id`; returns the answer.
async fn call_with_id(url: &str, id: &str, method: &str, params: &Value) -> Value {
    let (_, bytes) = post(url, body(id, method, params)).await;
    serde_json::from_slice(&bytes).expect("a JSON answer")
}

#[tokio::test]
async fn a_repeated_cacheable_request_makes_one_upstream_call() {
    let t = tapped(4, &["confirmations: 1"], true).await;
    let url = &t.gw.url;
    let h1 = t.fleet.block_hash(0, 1).await.unwrap().unwrap();
    let genesis = t.fleet.block_hash(0, 0).await.unwrap().unwrap();
    let cases: Vec<(&str, Value)> = vec![
        ("eth_getBlockByNumber", json!(["0x1", true])),
        ("eth_getBlockByHash", json!([h1, false])),
        ("eth_getBlockByHash", json!([genesis, true])),
        ("eth_getBlockReceipts", json!(["0x1"])),
        ("eth_getBalance", json!([OTHER, "0x2"])),
        ("eth_getCode", json!([OTHER, "0x2"])),
        ("eth_getTransactionCount", json!([DEV, "0x2"])),
        ("eth_getStorageAt", json!([OTHER, "0x0", "0x2"])),
        ("eth_call", json!([{"to": OTHER, "data": "0x"}, "0x3"])),
        (
            "eth_getLogs",
            json!([{"fromBlock": "0x2", "toBlock": "0x2"}]),
        ),
        ("net_version", json!([])),
    ];
    t.reset();
    for (method, params) in &cases {
        let mut first: Option<Value> = None;
        for id in ["1", "\"a\"", "null", "1.50", "-7"] {
            let (_, bytes) = post(url, body(id, method, params)).await;
            let text = String::from_utf8_lossy(&bytes);
            assert!(
                text.starts_with(&format!(r#"{{"jsonrpc":"2.0","id":{id},"result":"#)),
                "{method}: {text}"
            );
            let v: Value = serde_json::from_slice(&bytes).unwrap();
            assert!(!v["result"].is_null(), "{method}: {v}");
            match &first {
                None => first = Some(v["result"].clone()),
                Some(r) => assert_eq!(&v["result"], r, "{method}"),
            }
        }
        let same_method = cases.iter().filter(|(m, _)| m == method).count() as u64;
        assert!(
            t.upstream(method) <= same_method,
            "{method}: {} upstream calls for {same_method} distinct requests",
            t.upstream(method)
        );
    }
    assert_eq!(
        t.upstream_total(),
        cases.len() as u64,
        "one call per distinct request"
    );
    let counts = t.cache().counts();
    assert_eq!(counts.stored, cases.len() as u64);
    assert_eq!(counts.hits, 4 * cases.len() as u64);

    // A batch: the same read three times with other ids, and one new read.
    t.reset();
    let batch = format!(
        "[{},{},{},{}]",
        body("10", "eth_getBalance", &json!([OTHER, "0x3"])),
        body("\"x\"", "eth_getBalance", &json!([OTHER, "0x3"])),
        body("12", "eth_getBalance", &json!([OTHER, "0x3"])),
        body("13", "eth_getBlockByNumber", &json!(["0x2", false])),
    );
    for _ in 0..2 {
        let (_, bytes) = post(url, batch.clone()).await;
        let answers: Vec<Value> = serde_json::from_slice(&bytes).unwrap();
        let ids: Vec<&Value> = answers.iter().map(|a| &a["id"]).collect();
        assert_eq!(ids, [&json!(10), &json!("x"), &json!(12), &json!(13)]);
        assert_eq!(answers[0]["result"], answers[1]["result"]);
        assert_eq!(answers[1]["result"], answers[2]["result"]);
        assert_eq!(answers[3]["result"]["number"], "0x2");
    }
    assert_eq!(t.upstream("eth_getBalance"), 1);
    assert_eq!(t.upstream("eth_getBlockByNumber"), 1);
}

#[tokio::test]
async fn without_block_scoping_latest_pending_null_and_errors_are_never_cached() {
    let t = tapped(4, &["confirmations: 1", "block_scoped: false"], true).await;
    let url = &t.gw.url;
    // Mined into block 5, which is not final: its lookups are not kept.
    let (_, mined_tx) = t.fleet.transfer(OTHER, 6).await.unwrap();
    t.fleet.mine().await.unwrap();
    wait_synced(&t.gw, 3, 5).await;
    wait_cache_current(&t.gw).await;
    let unknown = format!("0x{}", "ab".repeat(32));
    let cases: Vec<(&str, Value)> = vec![
        ("eth_getBalance", json!([OTHER, "latest"])),
        ("eth_getTransactionCount", json!([DEV, "pending"])),
        ("eth_getCode", json!([OTHER, "safe"])),
        ("eth_getBlockByNumber", json!(["0x5", false])), // the served head: depth 0
        ("eth_getBlockByNumber", json!(["0x99", false])), // null
        ("eth_getTransactionReceipt", json!([unknown])), // null
        ("eth_getTransactionByHash", json!([mined_tx])), // its block is not final
        ("eth_call", json!([{"data": "0xfe"}, "0x2"])),  // reverts: an error
        ("eth_getStorageAt", json!(["0xzz", "0x0", "0x2"])), // invalid: an error
        (
            "eth_getLogs",
            json!([{"fromBlock": "0x1", "toBlock": "0x3"}]),
        ), // a range above finality
    ];
    for (method, params) in &cases {
        t.reset();
        let mut answers = Vec::new();
        for _ in 0..3 {
            answers.push(call(url, method, params.clone()).await);
        }
        assert_eq!(
            t.upstream(method),
            3,
            "{method} {params} was answered from the cache: {answers:?}"
        );
    }
    assert_eq!(t.cache().counts().stored, 0);
}

#[tokio::test]
async fn a_hundred_identical_concurrent_requests_make_one_upstream_call() {
    let t = tapped(4, &["confirmations: 1"], true).await;
    for tap in &t.taps {
        tap.set_fault(Fault::Delay(Duration::from_millis(500)));
    }
    t.reset();
    let url = t.gw.url.clone();
    let params = json!([OTHER, "0x2"]);
    let answers = join_all((0..100).map(|i| {
        let (url, params) = (url.clone(), params.clone());
        async move { call_with_id(&url, &i.to_string(), "eth_getBalance", &params).await }
    }))
    .await;
    assert_eq!(t.upstream("eth_getBalance"), 1);
    for (i, a) in answers.iter().enumerate() {
        assert_eq!(a["id"], json!(i), "each caller gets its own id");
        assert_eq!(a["result"], answers[0]["result"]);
    }
    let c = t.cache().counts();
    assert_eq!(c.misses, 1);
    assert_eq!(c.coalesced + c.hits, 99, "{c:?}");
}

#[tokio::test]
async fn a_flood_of_large_answers_stays_under_the_byte_bound() {
    const BOUND: u64 = 256 * 1024;
    let t = tapped(
        3,
        &[
            &format!("max_bytes: {BOUND}"),
            "max_entry_bytes: 45000",
            "confirmations: 1",
        ],
        true,
    )
    .await;
    let cache = t.cache();
    // Contract creation code returning 20000 zero bytes, with a distinct unreachable tail.
    let call_data = |i: u32| format!("0x614e206000f3{i:08x}");
    for i in 0..60u32 {
        let r = result(
            &t.gw.url,
            "eth_call",
            json!([{"data": call_data(i)}, "0x1"]),
        )
        .await;
        assert_eq!(r.as_str().unwrap().len(), 2 + 40_000);
        if i % 10 == 9 {
            let bytes = cache.weighted_bytes().await;
            assert!(bytes <= BOUND, "{bytes} bytes cached, bound {BOUND}");
            assert!(bytes > 0);
        }
    }
    assert_eq!(
        cache.counts().stored,
        60,
        "every answer was offered to the store"
    );
    // Over max_entry_bytes: never stored.
    t.reset();
    for _ in 0..2 {
        // 24000 bytes: 48000 hex digits.
        result(
            &t.gw.url,
            "eth_call",
            json!([{"data": "0x615dc06000f3"}, "0x1"]),
        )
        .await;
    }
    assert_eq!(t.upstream("eth_call"), 2);
    assert_eq!(cache.counts().stored, 60);
}

/// PUSH1 0 PUSH1 0 LOG0 STOP: a creation that emits one log.
const EMIT_LOG: &str = "0x60006000a000";

#[tokio::test]
async fn nothing_a_reorg_replaced_is_served() {
    // Finality is read once, at start: the test replaces the three newest
    // blocks, which must not have become final meanwhile (with anvil's
    // finalized = latest - 2, a slow run used to see the oldest of them
    // finalized, cache its receipts for good, and then reorg it anyway).
    let t = tapped_with(2, &["confirmations: 1"], false, |y| {
        y.replace(
            "finality_poll_interval: 200ms",
            "finality_poll_interval: 60m",
        )
    })
    .await;
    let url = t.gw.url.clone();
    let checkpoint = t.fleet.checkpoint().await.unwrap();
    let c = checkpoint.height();
    let mut txs = Vec::new();
    for _ in 0..3 {
        txs.push(t.fleet.transfer(OTHER, 7).await.unwrap().1);
        txs.push(t.fleet.deploy(EMIT_LOG, 100_000).await.unwrap().1);
        t.fleet.mine().await.unwrap();
    }
    let top = c + 3;
    wait_synced(&t.gw, 3, top).await;
    wait_cache_current(&t.gw).await;
    let mut old_hashes = Vec::new();
    for n in c + 1..=top {
        old_hashes.push(t.fleet.block_hash(0, n).await.unwrap().unwrap());
    }

    let probes = |hashes: &[String]| -> Vec<(&'static str, Value)> {
        let mut p = Vec::new();
        for n in c + 1..=top {
            let n = hex(n);
            p.push(("eth_getBlockByNumber", json!([n, false])));
            p.push(("eth_getBlockByNumber", json!([n, true])));
            p.push(("eth_getBlockReceipts", json!([n])));
            p.push(("eth_getLogs", json!([{"fromBlock": n, "toBlock": n}])));
            p.push(("eth_getBalance", json!([OTHER, n])));
            p.push(("eth_getTransactionCount", json!([DEV, n])));
            p.push(("eth_getBlockTransactionCountByNumber", json!([n])));
        }
        for h in hashes {
            p.push(("eth_getBlockByHash", json!([h, false])));
            p.push(("eth_getBlockReceipts", json!([h])));
            p.push(("eth_getLogs", json!([{"blockHash": h}])));
        }
        for tx in &txs {
            p.push(("eth_getTransactionReceipt", json!([tx])));
            p.push(("eth_getTransactionByHash", json!([tx])));
        }
        p.push((
            "eth_getLogs",
            json!([{"fromBlock": hex(c + 1), "toBlock": hex(top)}]),
        ));
        p
    };
    let before = probes(&old_hashes);
    for _ in 0..2 {
        for (m, p) in &before {
            call(&url, m, p.clone()).await;
        }
    }
    let cache = t.cache();
    let filled = cache.counts();
    assert!(filled.stored >= 10 && filled.hits >= 10, "{filled:?}");

    // Replace the 3 blocks on every replica: same heights, other blocks.
    t.fleet.reorg_to(&checkpoint, 3).await.unwrap();
    let new_top = t.fleet.head(0).await.unwrap();
    assert_eq!(new_top.number, top);
    assert_ne!(new_top.hash, old_hashes[2]);
    wait_trackers_at(&t.gw, &new_top.hash).await;

    // Every answer now is the new chain's, as the node itself gives it.
    let direct = t.fleet.rpc(0).await.unwrap();
    for round in 0..2 {
        for (m, p) in &before {
            let via_gateway = call(&url, m, p.clone()).await;
            let truth = direct.call(m, p.clone()).await;
            let text = via_gateway.to_string();
            for old in &old_hashes {
                assert!(
                    !text.contains(old.as_str()),
                    "round {round}: {m} {p} answered with a replaced block: {text}"
                );
            }
            match truth {
                Ok(v) => assert_eq!(via_gateway["result"], v, "round {round}: {m} {p}"),
                Err(e) => assert!(via_gateway.get("error").is_some(), "{m} {p}: node said {e}"),
            }
        }
    }
    wait_for("the replaced entries evicted", || {
        let cache = cache.clone();
        async move {
            cache.entries().await;
            cache.counts().evicted_by_reorg > 0
        }
    })
    .await;
}

#[tokio::test]
async fn a_second_gateway_process_answers_from_redis() {
    let mut redis = RedisServer::start().await.expect("redis-server");
    let t = tapped(2, &[], true).await;
    // The tapped gateway has no redis: start one that has, in front of the same taps.
    let ups: Vec<Up> = t
        .taps
        .iter()
        .enumerate()
        .map(|(i, tap)| up(&format!("r{i}"), tap.url(), Some(t.fleet.ws_url(i))))
        .collect();
    let config = |listen: &str| {
        let y = quiet(&with_cache(
            &yaml(t.fleet.chain_id(), &ups, ""),
            &["shared: true"],
        ));
        format!(
            "{}redis:\n  url: {}\n",
            y.replace("127.0.0.1:0", listen),
            redis.url()
        )
    };
    let first = start_gateway(&config("127.0.0.1:0")).await;
    wait_synced(&first, 3, 2).await;
    wait_cache_current(&first).await;
    let genesis = t.fleet.block_hash(0, 0).await.unwrap().unwrap();
    let reads = [
        ("net_version", json!([])),
        ("eth_getBlockByHash", json!([genesis, false])),
        ("eth_getBlockByHash", json!([genesis, true])),
    ];
    let mut answers = Vec::new();
    for (m, p) in &reads {
        answers.push(result(&first.url, m, p.clone()).await);
    }
    let first_cache = first.network().cache.clone().unwrap();
    wait_for("the shared tier written", || {
        let done = first_cache.counts().shared_writes >= 3;
        async move { done }
    })
    .await;

    // A second gateway, a process of its own, with a cold memory.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("second.yaml");
    std::fs::write(&path, config(&format!("127.0.0.1:{port}"))).unwrap();
    let _second = tokio::process::Command::new(env!("CARGO_BIN_EXE_rpcgate"))
        .arg("--config")
        .arg(&path)
        .arg("--log")
        .arg("warn")
        .args(["--admin-listen", "127.0.0.1:0"])
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    wait_for("the second gateway serving", || {
        let url = url.clone();
        async move {
            let req = http::Request::post(&url)
                .header("content-type", "application/json")
                .body(http_body_util::Full::new(bytes::Bytes::from(
                    r#"{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber"}"#,
                )))
                .unwrap();
            match client().request(req).await {
                Ok(r) => r.status() == 200,
                Err(_) => false,
            }
        }
    })
    .await;
    t.reset();
    for ((m, p), expected) in reads.iter().zip(&answers) {
        assert_eq!(&result(&url, m, p.clone()).await, expected, "{m}");
        assert_eq!(t.upstream(m), 0, "{m} reached a backend");
    }
    // Without redis, the second gateway still serves (from the backends).
    redis.kill().await.unwrap();
    let h1 = t.fleet.block_hash(0, 1).await.unwrap().unwrap();
    let r = result(&url, "eth_getBlockByHash", json!([h1, false])).await;
    assert_eq!(r["number"], "0x1");
    assert_eq!(t.upstream("eth_getBlockByHash"), 1);
}
