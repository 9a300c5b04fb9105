//! Client policy over HTTP: keys, method rules, rate limits, forwarded
//! addresses, the per-IP connection cap, and Redis-shared limits with their
//! fallback, against a real anvil node behind a counting tap and a real
//! redis-server.

use std::time::Duration;

use rpcgate_fleet::{Fleet, RedisServer, Tap};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::*;

const OTHER_KEY: &str = "test-key-other-99999";

/// One replica behind a tap, and a gateway with `policy` (top-level YAML).
async fn setup(policy: &str) -> (Fleet, Tap, Gw) {
    super::tapped_gateway(1, ROUTING_ONLY, policy).await
}

fn rpc(id: Value, method: &str, params: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
}

fn client_section(extra: &str) -> String {
    format!(
        "policy:\n  clients:\n    dapp:\n      key_sha256: [{}]\n{extra}",
        sha256_hex(KEY)
    )
}

#[tokio::test]
async fn keys_are_accepted_in_each_place_and_a_wrong_key_gets_401() {
    let (_fleet, tap, gw) = setup(&client_section(
        "      allow: [eth_getBalance]\n  anonymous:\n    enabled: false\n",
    ))
    .await;
    let call = rpc(json!(1), "eth_getBalance", json!([DEV, "latest"]));
    let bearer = format!("Bearer {KEY}");
    for (url, headers) in [
        (gw.url.clone(), vec![("authorization", bearer.as_str())]),
        (gw.url.clone(), vec![("x-api-key", KEY)]),
        (format!("{}/dev/{KEY}", gw.url), vec![]),
    ] {
        let (status, _, v) = send(&url, &headers, &call).await;
        assert_eq!(status, 200, "{url} {headers:?}: {v}");
        assert!(v["result"].as_str().unwrap().starts_with("0x"), "{v}");
    }
    assert_eq!(tap.count("eth_getBalance"), 3);

    let unauthorized_before = gw.gateway.metrics().policy.unauthorized.get();
    for (url, headers) in [
        (gw.url.clone(), vec![("x-api-key", OTHER_KEY)]),
        (gw.url.clone(), vec![("authorization", "Bearer nope")]),
        (format!("{}/dev/{OTHER_KEY}", gw.url), vec![]),
        // No key at all, and the anonymous tier is off.
        (gw.url.clone(), vec![]),
    ] {
        let (status, headers, v) = send(&url, &headers, &call).await;
        assert_eq!(status, 401, "{v}");
        assert!(headers.contains_key("www-authenticate"));
        assert_eq!(v["error"]["code"], -32600, "{v}");
        assert!(v["error"]["message"].as_str().unwrap().contains("key"));
    }
    assert_eq!(
        tap.count("eth_getBalance"),
        3,
        "no backend call for a refused key"
    );
    assert!(gw.gateway.metrics().policy.unauthorized.get() >= unauthorized_before + 4);
    // A path with a key but no such network is still a 404.
    let (status, _, _) = send(&format!("{}/nonet/{KEY}", gw.url), &[], &call).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn default_closed_namespaces_client_globs_and_a_blocked_batch_entry() {
    let (_fleet, tap, gw) = setup(&client_section(
        "      allow: [eth_get*, anvil_nodeInfo]\n      deny: [eth_getCode]\n",
    ))
    .await;
    // Anonymous: the default list.
    for (method, params) in [
        ("anvil_mine", json!([])),
        ("evm_mine", json!([])),
        ("debug_traceTransaction", json!(["0x00"])),
        ("admin_peers", json!([])),
        ("personal_listAccounts", json!([])),
        ("txpool_content", json!([])),
        ("eth_sendTransaction", json!([{}])),
    ] {
        let (status, _, v) = send(&gw.url, &[], &rpc(json!("q"), method, params)).await;
        assert_eq!(status, 200);
        assert_eq!(v["id"], "q");
        assert_eq!(v["error"]["code"], -32601, "{method}: {v}");
        assert!(v["error"]["message"].as_str().unwrap().contains(method));
    }
    for method in [
        "anvil_mine",
        "evm_mine",
        "debug_traceTransaction",
        "admin_peers",
        "eth_sendTransaction",
    ] {
        assert_eq!(tap.count(method), 0, "{method} reached the node");
    }
    let (_, _, v) = send(
        &gw.url,
        &[],
        &rpc(json!(1), "eth_getCode", json!([DEV, "latest"])),
    )
    .await;
    assert!(v.get("result").is_some(), "{v}");

    // The client: globs, deny wins, and what the default opens is closed here.
    let key = [("x-api-key", KEY)];
    let (_, _, v) = send(
        &gw.url,
        &key,
        &rpc(json!(2), "eth_getBalance", json!([DEV, "latest"])),
    )
    .await;
    assert!(v.get("result").is_some(), "{v}");
    let (_, _, v) = send(&gw.url, &key, &rpc(json!(3), "anvil_nodeInfo", json!([]))).await;
    assert!(v.get("result").is_some(), "{v}");
    for method in ["eth_getCode", "eth_call", "net_version"] {
        let (_, _, v) = send(&gw.url, &key, &rpc(json!(4), method, json!([]))).await;
        assert_eq!(v["error"]["code"], -32601, "{method}: {v}");
    }

    // In a batch, only the blocked entry fails.
    let batch = json!([
        rpc(json!(1), "eth_getBalance", json!([DEV, "latest"])),
        rpc(json!("x"), "eth_getCode", json!([DEV, "latest"])),
        rpc(json!(3), "eth_getTransactionCount", json!([DEV, "latest"])),
    ]);
    let before = tap.count("eth_getCode");
    let (status, _, v) = send(&gw.url, &key, &batch).await;
    assert_eq!(status, 200);
    let v = v.as_array().unwrap();
    assert!(v[0]["result"].is_string(), "{v:?}");
    assert_eq!(
        (v[1]["id"].clone(), v[1]["error"]["code"].clone()),
        (json!("x"), json!(-32601))
    );
    assert!(v[2]["result"].is_string(), "{v:?}");
    assert_eq!(tap.count("eth_getCode"), before);
}

#[tokio::test]
async fn limits_answer_429_with_retry_after_and_a_batch_is_charged_by_cost() {
    // No refill during the test: one unit per 1000 s.
    let (_fleet, tap, gw) = setup(&client_section(
        "      limits:\n        compute_units_per_second: 0.001\n        compute_burst: 100\n  anonymous:\n    limits:\n      requests_per_second: 0.001\n      burst: 2\n",
    ))
    .await;
    // Anonymous: two requests, then 429 with the caller's id.
    for id in 0..2 {
        let (status, _, _) = send(&gw.url, &[], &rpc(json!(id), "eth_chainId", json!([]))).await;
        assert_eq!(status, 200);
    }
    let limited_before = gw
        .gateway
        .metrics()
        .policy
        .rate_limited
        .with_label_values(&["anonymous"])
        .get();
    let (status, headers, v) =
        send(&gw.url, &[], &rpc(json!("late"), "eth_chainId", json!([]))).await;
    assert_eq!(status, 429);
    assert_eq!(v["id"], "late");
    assert_eq!(v["error"]["code"], -32005);
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("limit exceeded"));
    let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(retry > 100, "{retry}");
    assert_eq!(
        gw.gateway
            .metrics()
            .policy
            .rate_limited
            .with_label_values(&["anonymous"])
            .get(),
        limited_before + 1
    );

    // The client: 100 units. eth_getLogs 75 + eth_chainId 1 pass, a second
    // eth_getLogs does not, eth_call (25) is over too, eth_blockNumber (5) fits: 81.
    let key = [("x-api-key", KEY)];
    let logs = rpc(
        json!(1),
        "eth_getLogs",
        json!([{"fromBlock": "0x0", "toBlock": "0x1"}]),
    );
    let batch = json!([
        logs,
        rpc(json!(2), "eth_chainId", json!([])),
        rpc(
            json!(3),
            "eth_getLogs",
            json!([{"fromBlock": "0x0", "toBlock": "0x1"}])
        ),
        rpc(json!(4), "eth_call", json!([{"to": DEV}, "latest"])),
        rpc(json!(5), "eth_blockNumber", json!([])),
    ]);
    let (status, _, v) = send(&gw.url, &key, &batch).await;
    assert_eq!(status, 200);
    let codes: Vec<Value> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["error"]["code"].clone())
        .collect();
    assert_eq!(
        codes,
        [
            Value::Null,
            Value::Null,
            json!(-32005),
            json!(-32005),
            Value::Null
        ]
    );
    assert_eq!(tap.count("eth_getLogs"), 1);
    assert_eq!(tap.count("eth_call"), 0);
    // 19 units left: eth_getBalance (15) passes, then nothing of that size.
    let (status, _, _) = send(
        &gw.url,
        &key,
        &rpc(json!(6), "eth_getBalance", json!([DEV, "latest"])),
    )
    .await;
    assert_eq!(status, 200);
    let (status, headers, v) = send(
        &gw.url,
        &key,
        &rpc(json!(7), "eth_getBalance", json!([DEV, "latest"])),
    )
    .await;
    assert_eq!((status, v["error"]["code"].clone()), (429, json!(-32005)));
    assert!(headers.contains_key("retry-after"));
    // A batch refused whole is a 429 too.
    let (status, headers, _) = send(
        &gw.url,
        &key,
        &json!([
            logs,
            rpc(json!(9), "eth_call", json!([{"to": DEV}, "latest"]))
        ]),
    )
    .await;
    assert_eq!(status, 429);
    assert!(headers.contains_key("retry-after"));
}

#[tokio::test]
async fn forwarded_for_is_honoured_only_from_a_trusted_proxy() {
    let limits = "  anonymous:\n    limits:\n      requests_per_second: 0.001\n      burst: 1\n";
    let call = rpc(json!(1), "eth_chainId", json!([]));
    // The test client connects from 127.0.0.1: a trusted proxy here.
    let (_fleet, _tap, gw) = setup(&format!(
        "policy:\n  trusted_proxies: [127.0.0.1/32]\n{limits}"
    ))
    .await;
    let from = |ip: &'static str| [("x-forwarded-for", ip)];
    assert_eq!(send(&gw.url, &from("203.0.113.1"), &call).await.0, 200);
    assert_eq!(send(&gw.url, &from("203.0.113.1"), &call).await.0, 429);
    assert_eq!(send(&gw.url, &from("203.0.113.2"), &call).await.0, 200);
    // The rightmost untrusted hop counts, not what the client wrote before it.
    assert_eq!(
        send(&gw.url, &from("203.0.113.3, 203.0.113.1"), &call)
            .await
            .0,
        429
    );
    // Not trusted: every header value is the same client, 127.0.0.1.
    let (_fleet, _tap, gw) = setup(&format!(
        "policy:\n  trusted_proxies: [10.0.0.0/8]\n{limits}"
    ))
    .await;
    assert_eq!(send(&gw.url, &from("203.0.113.1"), &call).await.0, 200);
    assert_eq!(send(&gw.url, &from("203.0.113.2"), &call).await.0, 429);
    assert_eq!(
        send(&gw.url, &[("forwarded", "for=203.0.113.4")], &call)
            .await
            .0,
        429
    );
}

#[tokio::test]
async fn connections_per_ip_are_capped() {
    let (_fleet, _tap, gw) = setup("policy:\n  max_connections_per_ip: 2\n").await;
    let addr = gw.url.trim_start_matches("http://").to_string();
    let request = b"POST / HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 47\r\n\r\n{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"eth_chainId\"}";
    async fn exchange(addr: &str, request: &[u8]) -> (tokio::net::TcpStream, String) {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(request).await.unwrap();
        let mut buf = vec![0u8; 1024];
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        (s, String::from_utf8_lossy(&buf[..n]).into_owned())
    }
    let (a, answer) = exchange(&addr, request).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let (b, answer) = exchange(&addr, request).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let (_c, answer) = exchange(&addr, request).await;
    assert!(answer.starts_with("HTTP/1.1 429"), "{answer}");
    drop((a, b));
    // Slots come back when connections close (the server notices the EOF).
    wait_for("a freed connection slot", || {
        let addr = addr.clone();
        async move { exchange(&addr, request).await.1.starts_with("HTTP/1.1 200") }
    })
    .await;
}

#[tokio::test]
async fn redis_shared_limits_fall_back_when_redis_dies_and_reconnect() {
    let mut redis = RedisServer::start().await.unwrap();
    let port = redis.port();
    for fallback in ["open", "closed"] {
        let (_fleet, _tap, gw) = setup(&format!(
            "redis:\n  url: {}\npolicy:\n  redis_fallback: {fallback}\n  redis_timeout: 500ms\n{}",
            redis.url(),
            &client_section(
                "      limits:\n        requests_per_second: 0.001\n        burst: 3\n"
            )["policy:\n".len()..],
        ))
        .await;
        let key = [("x-api-key", KEY)];
        let call = rpc(json!(1), "eth_chainId", json!([]));
        if fallback == "open" {
            // Shared: the budget lives in Redis.
            for _ in 0..3 {
                assert_eq!(send(&gw.url, &key, &call).await.0, 200);
            }
            assert_eq!(send(&gw.url, &key, &call).await.0, 429);
            let stored = redis_get(port, "rpcgate:rl:{c:dapp}:req").await;
            assert!(stored.is_some(), "the budget is kept in redis");
        }
        redis.kill().await.unwrap();
        let fallbacks = gw.gateway.metrics().policy.redis_fallbacks.get();
        let (status, _, v) = send(&gw.url, &key, &call).await;
        match fallback {
            // Open: the local limiter decides; it has its own full budget.
            "open" => {
                assert_eq!(status, 200, "{v}");
                assert_eq!(send(&gw.url, &key, &call).await.0, 200);
                assert_eq!(send(&gw.url, &key, &call).await.0, 200);
                assert_eq!(send(&gw.url, &key, &call).await.0, 429);
            }
            _ => {
                assert_eq!(status, 503, "{v}");
                assert_eq!(v["error"]["code"], -32005);
            }
        }
        assert!(gw.gateway.metrics().policy.redis_fallbacks.get() > fallbacks);
        // Redis comes back (empty): the gateway reconnects and shares again.
        redis = RedisServer::start_on(port).await.unwrap();
        wait_for("checks in redis again", || {
            let url = gw.url.clone();
            let call = call.clone();
            async move {
                send(&url, &key, &call).await;
                redis_get(port, "rpcgate:rl:{c:dapp}:req").await.is_some()
            }
        })
        .await;
    }
}

/// GET over a plain connection (the test's own look at what Redis holds).
async fn redis_get(port: u16, key: &str) -> Option<String> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).ok()?;
    let mut conn = client.get_multiplexed_async_connection().await.ok()?;
    redis::cmd("GET")
        .arg(key)
        .query_async::<Option<String>>(&mut conn)
        .await
        .ok()?
}
