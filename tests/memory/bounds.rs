//! Bounded memory: the process's answer budget against clients that send
//! and never read (the RSS of a real rpcgate process, read from /proc), the
//! batch response budget claimed atomically by concurrent entries, and the
//! cap on keys written to the shared Redis cache.
//!
//! Big answers are real: a contract on anvil whose code returns as many
//! zero bytes as its calldata asks for (`eth_call` answers twice that in hex).

use std::time::Duration;

use redis::AsyncCommands;
use rpcgate_fleet::{Fleet, RedisServer};
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;

use crate::support::*;

/// Init code of a contract whose runtime is
/// `PUSH1 0 CALLDATALOAD PUSH1 0 RETURN`: it returns the first calldata
/// word's number of zero bytes.
const ZEROS_INIT: &str = "0x6006600c60003960066000f36000356000f3";

/// Deploys the zeros contract and returns its address.
pub(crate) async fn zeros_contract(fleet: &Fleet) -> String {
    let (_, tx) = fleet.deploy(ZEROS_INIT, 200_000).await.unwrap();
    fleet.mine().await.unwrap();
    let rpc = fleet.rpc(0).await.unwrap();
    let receipt = rpc
        .call("eth_getTransactionReceipt", json!([tx]))
        .await
        .unwrap();
    receipt["contractAddress"].as_str().unwrap().to_string()
}

/// An `eth_call` of the zeros contract answering `bytes` zero bytes.
pub(crate) fn zeros_call(id: u64, contract: &str, bytes: u64) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "eth_call",
           "params": [{"to": contract, "data": format!("0x{bytes:064x}")}, "latest"]})
}

/// POSTs `body`; the status and the JSON answer.
async fn post_value(url: &str, body: &Value) -> (u16, Value) {
    let (status, bytes) = post(url, body.to_string()).await;
    (status, json_or_null(&bytes))
}

/// A raw HTTP/1.1 client with a tiny receive buffer that sends `body` and
/// never reads: the gateway's answer stays with the gateway.
async fn send_and_never_read(url: &str, body: &str) -> tokio::net::TcpStream {
    let addr: std::net::SocketAddr = url.trim_start_matches("http://").parse().unwrap();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stream = socket.connect(addr).await.unwrap();
    let request = format!(
        "POST / HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    stream
}

const MIB: u64 = 1024 * 1024;

#[tokio::test]
async fn clients_that_never_read_hold_no_more_than_the_answer_budget() {
    let fleet = fleet(1).await;
    let contract = zeros_contract(&fleet).await;
    let budget = 32 * MIB;
    // Answers of 6 MiB (3 MiB of zeros in hex), cached (one node call per
    // block), not compressed; write_timeout long, so an unread answer stays.
    // Each is larger than the kernel's largest socket send buffer (4 MiB by
    // default): an answer small enough to be taken whole by the kernel frees
    // its budget at once, and whether the unread answers still held the
    // budget then depended on how the flood's answers spread over batches.
    let zeros = 3 * MIB;
    let yaml = format!(
        "server:\n  max_inflight_answer_bytes: {budget}\n  memory_wait: 300ms\n  write_timeout: 60s\n  compression: {{enabled: false}}\nnetworks:\n  dev:\n    chain_id: {}\n    head: {{poll_interval: 50ms}}\n    cache: {{max_entry_bytes: 8388608}}\n    upstreams:\n      - name: r0\n        http: {}\n",
        fleet.chain_id(),
        fleet.http_url(0)
    );
    // RPCGATE_MEMORY_BOUND_OFF reaches the process from this test's
    // environment: that is how the test is made to fail on purpose (the
    // budget off, the bound on memory fails).
    let gw = RpcgateProcess::start_json_log(&yaml, "info");
    wait_for("the gateway serving", || {
        let url = gw.url.clone();
        async move {
            post_value(
                &url,
                &json!({"jsonrpc":"2.0","id":1,"method":"eth_chainId"}),
            )
            .await
            .0 == 200
        }
    })
    .await;
    // Warm: one big answer read in full (and cached).
    let warm = post_value(&gw.url, &zeros_call(1, &contract, zeros))
        .await
        .1;
    assert_eq!(
        warm["result"].as_str().unwrap().len(),
        2 + 2 * zeros as usize
    );
    let baseline = gw.status_kib("VmRSS");

    // 20 clients each send a batch of 8 such calls (48 MiB of answers) and never read.
    let batch: Vec<Value> = (0..8).map(|i| zeros_call(i, &contract, zeros)).collect();
    let batch = Value::Array(batch).to_string();
    let clients = 20;
    let mut sockets = Vec::new();
    for _ in 0..clients {
        sockets.push(send_and_never_read(&gw.url, &batch).await);
    }
    wait_for("every flooding call answered or refused", || {
        let gw = &gw;
        async move {
            let m = scrape(&gw.admin).await;
            let calls = m.value("rpcgate_requests_total", &[("method", "eth_call")]);
            calls >= f64::from(8 * clients + 1)
        }
    })
    .await;
    let peak = gw.status_kib("VmHWM");
    let grown_mib = peak.saturating_sub(baseline) / 1024;
    let bound_mib = 3 * budget / MIB;
    eprintln!("RSS: {baseline} KiB before the flood, peak {peak} KiB (+{grown_mib} MiB; bound +{bound_mib} MiB)");
    assert!(
        grown_mib <= bound_mib,
        "the gateway grew by {grown_mib} MiB with {clients} unread 48 MiB answers, over {bound_mib} MiB"
    );

    // Other clients are served: small calls at once, a heavy one refused
    // with -32005 while the unread answers hold the budget.
    let (status, small) = post_value(&gw.url, &zeros_call(7, &contract, 32)).await;
    assert_eq!(status, 200, "{small}");
    assert_eq!(small["result"].as_str().unwrap().len(), 2 + 64);
    let n = result(&gw.url, "eth_blockNumber", json!([])).await;
    assert!(n.as_str().unwrap().starts_with("0x"));
    let (status, heavy) = post_value(&gw.url, &zeros_call(9, &contract, zeros)).await;
    assert_eq!(heavy["error"]["code"], -32005, "{heavy}");
    assert_eq!(heavy["id"], 9);
    assert_eq!(status, 503);
    let m = scrape(&gw.admin).await;
    let refused = m.value(
        "rpcgate_memory_budget_refusals_total",
        &[("kind", "answers")],
    );
    assert!(refused >= 1.0, "refusals counted: {}", m.text);
    let held = m.value("rpcgate_memory_inflight_bytes", &[("kind", "answers")]);
    assert!(held <= budget as f64 * 1.6, "{held} bytes held");
    assert!(
        held >= (budget / 2) as f64,
        "the unread answers hold budget: {held}"
    );
    drop(sockets);
}

#[tokio::test]
async fn concurrent_batch_entries_never_take_the_batch_past_its_budget() {
    let fleet = fleet(1).await;
    let contract = zeros_contract(&fleet).await;
    let budget = 1_048_576usize;
    // 8 entries in flight at once, each answering ~200 KB: together they
    // would pass the 1 MiB budget; no cache, so each one is a node call.
    let yaml = format!(
        "server:\n  max_batch_response_bytes: {budget}\n  batch_concurrency: 8\n{}",
        yaml(
            fleet.chain_id(),
            &fleet_ups(&fleet),
            "cache: {enabled: false}"
        )
    );
    let gw = start_gateway(&yaml).await;
    wait_view(&gw, "served head", |v| v.served_head.is_some()).await;
    let batch: Vec<Value> = (0..12)
        .map(|i| zeros_call(100 + i, &contract, 100_000 + i))
        .collect();
    let (status, answer) = post_value(&gw.url, &Value::Array(batch)).await;
    assert_eq!(status, 200);
    let entries = answer.as_array().expect("a batch answer");
    assert_eq!(entries.len(), 12);
    let mut ids: Vec<u64> = entries.iter().map(|e| e["id"].as_u64().unwrap()).collect();
    ids.sort_unstable();
    assert_eq!(ids, (100..112).collect::<Vec<_>>());
    let results: Vec<&Value> = entries
        .iter()
        .filter(|e| e.get("result").is_some())
        .collect();
    let bytes: usize = results.iter().map(|e| e.to_string().len()).sum();
    eprintln!(
        "{} answers of {bytes} bytes, budget {budget}",
        results.len()
    );
    assert!(
        bytes <= budget,
        "the batch's answers took {bytes} bytes, over {budget}"
    );
    assert!(!results.is_empty());
    let refused: Vec<&Value> = entries
        .iter()
        .filter(|e| e.get("error").is_some())
        .collect();
    assert!(!refused.is_empty());
    for e in refused {
        assert_eq!(e["error"]["code"], -32005, "{e}");
    }
}

#[tokio::test]
async fn keys_over_the_cap_stay_out_of_redis() {
    let redis = RedisServer::start().await.expect("redis-server");
    let fleet = fleet(1).await;
    fleet.mine().await.unwrap();
    // "rpcgate:cache:v1:dev:" and net_version's key fit in 100 bytes; a
    // lookup by block hash (66 characters of hash) does not.
    let yaml = format!(
        "{}redis:\n  url: {}\n",
        yaml(
            fleet.chain_id(),
            &fleet_ups(&fleet),
            "cache: {shared: true, max_shared_key_bytes: 100}"
        ),
        redis.url()
    );
    let gw = start_gateway(&yaml).await;
    wait_view(&gw, "served head", |v| v.served_head.is_some()).await;
    let cache = gw.network().cache.clone().unwrap();
    let genesis = fleet.block_hash(0, 0).await.unwrap().unwrap();
    // The shared tier connects in the background: wait for a write.
    wait_for("net_version in redis", || {
        let (url, cache) = (gw.url.clone(), cache.clone());
        async move {
            let _ = result(&url, "net_version", json!([])).await;
            cache.counts().shared_writes >= 1
        }
    })
    .await;
    let block = result(&gw.url, "eth_getBlockByHash", json!([genesis, false])).await;
    assert_eq!(block["number"], "0x0");
    let again = result(&gw.url, "eth_getBlockByHash", json!([genesis, false])).await;
    assert_eq!(again, block, "served from the local tier");
    assert!(cache.counts().shared_key_too_long >= 1);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let client = redis::Client::open(redis.url().as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = conn.keys("rpcgate:cache:*").await.unwrap();
    assert!(keys.iter().any(|k| k.contains("net_version")), "{keys:?}");
    assert!(
        !keys.iter().any(|k| k.contains("eth_getBlockByHash")),
        "a key over the cap was written: {keys:?}"
    );
    assert!(keys.iter().all(|k| k.len() <= 100), "{keys:?}");
    let metrics = scrape(&gw.admin).await;
    assert!(
        metrics.value(
            "rpcgate_cache_events_total",
            &[("event", "shared_key_too_long")]
        ) > 0.0,
        "counted in the metrics"
    );
}

#[tokio::test]
async fn log_filter_keys_in_another_case_cannot_hide_a_range() {
    let fleet = fleet(1).await;
    fleet.mine_blocks(5).await.unwrap();
    let gw = start_gateway(&yaml(
        fleet.chain_id(),
        &fleet_ups(&fleet),
        "max_logs_block_range: 2",
    ))
    .await;
    wait_view(&gw, "served head", |v| v.served_head.is_some()).await;
    let logs = |filter: Value| {
        let url = gw.url.clone();
        async move {
            post_value(
                &url,
                &json!({"jsonrpc":"2.0","id":"f","method":"eth_getLogs","params":[filter]}),
            )
            .await
            .1
        }
    };
    // Spelled as the node names them, the range is judged.
    let ok = logs(json!({"fromBlock": "0x1", "toBlock": "0x2"})).await;
    assert!(ok["result"].is_array(), "{ok}");
    let wide = logs(json!({"fromBlock": "0x0", "toBlock": "0x5"})).await;
    assert_eq!(wide["error"]["code"], -32005, "{wide}");
    // A key a node reads as a field (Go matches them ignoring case, the
    // last one wins) but spelled otherwise is refused before any backend.
    for filter in [
        json!({"FROMBLOCK": "0x0", "ToBlock": "latest"}),
        json!({"fromBlock": "0x1", "toBlock": "0x1", "TOBLOCK": "0x5"}),
        json!({"fromBloc\u{212a}": "0x0"}),
    ] {
        let answer = logs(filter.clone()).await;
        assert_eq!(answer["error"]["code"], -32602, "{filter}: {answer}");
        assert_eq!(answer["id"], "f");
    }
}
