//! The block-scoped cache (on by default): a read of the present is a read
//! of the served head, the same for everyone until the head moves, and kept
//! bound to that block's hash; by-hash reads are kept from their first
//! answer. Upstream calls are counted at the backends by taps, and every
//! answer is checked against a replica.

use futures_util::future::join_all;
use serde_json::{json, Value};

use super::{tapped, wait_cache_current, Tapped};
use crate::support::*;

/// A contract that returns `block.timestamp`: its answer at `latest` changes
/// with every block, and differs between a block and its reorg replacement
/// (the fleet mines replacements a second later).
const TIMESTAMP_INIT: &str = "0x6009600c60003960096000f34260005260206000f3";

/// `clients` callers, `wave` at a time, each reading `method` with `params`;
/// their answers.
async fn callers(
    url: &str,
    clients: usize,
    wave: usize,
    method: &str,
    params: &Value,
) -> Vec<Value> {
    let mut answers = Vec::new();
    for start in (0..clients).step_by(wave) {
        let batch = (start..(start + wave).min(clients)).map(|_| call(url, method, params.clone()));
        answers.extend(join_all(batch).await);
    }
    answers
}

async fn settle(t: &Tapped, height: u64) {
    wait_synced(&t.gw, 3, height).await;
    wait_cache_current(&t.gw).await;
}

/// Asserts every answer is the replica's own for the same call.
async fn all_as_the_node(t: &Tapped, answers: &[Value], method: &str, params: &Value) -> Value {
    let truth = t
        .fleet
        .rpc(1)
        .await
        .unwrap()
        .call(method, params.clone())
        .await
        .unwrap();
    for a in answers {
        assert_eq!(a["result"], truth, "{method} {params}: {a}");
    }
    truth
}

#[tokio::test]
async fn a_read_at_latest_is_one_upstream_call_per_head_and_never_outlives_a_reorg() {
    let t = tapped(2, &[], true).await;
    let (_, deploy) = t.fleet.deploy(TIMESTAMP_INIT, 100_000).await.unwrap();
    let mut height = t.fleet.mine().await.unwrap();
    settle(&t, height).await;
    let receipt = call(&t.gw.url, "eth_getTransactionReceipt", json!([deploy])).await;
    let contract = receipt["result"]["contractAddress"]
        .as_str()
        .unwrap()
        .to_string();
    let read = json!([{"to": contract, "data": "0x"}, "latest"]);
    let url = t.gw.url.clone();

    // One block: 100 callers, 10 at a time, make one upstream call.
    t.reset();
    let answers = callers(&url, 100, 10, "eth_call", &read).await;
    let first = all_as_the_node(&t, &answers, "eth_call", &read).await;
    assert_eq!(t.upstream("eth_call"), 1, "one upstream call for the block");
    // Fee reads, per head, and the receipt of a transaction in a block
    // that is not final (bound to that block).
    let gas = callers(&url, 20, 5, "eth_gasPrice", &json!([])).await;
    all_as_the_node(&t, &gas, "eth_gasPrice", &json!([])).await;
    assert_eq!(t.upstream("eth_gasPrice"), 1);
    let receipts = callers(&url, 20, 5, "eth_getTransactionReceipt", &json!([deploy])).await;
    all_as_the_node(&t, &receipts, "eth_getTransactionReceipt", &json!([deploy])).await;
    assert!(t.upstream("eth_getTransactionReceipt") <= 1);

    // The next head: one more call, and the new block's answer.
    let checkpoint = t.fleet.checkpoint().await.unwrap();
    height = t.fleet.mine().await.unwrap();
    settle(&t, height).await;
    let answers = callers(&url, 100, 10, "eth_call", &read).await;
    let second = all_as_the_node(&t, &answers, "eth_call", &read).await;
    assert_ne!(second, first, "a new block, a new timestamp");
    assert_eq!(
        t.upstream("eth_call"),
        2,
        "one more upstream call for the next head"
    );
    assert_eq!(t.upstream("eth_gasPrice"), 1);
    callers(&url, 5, 5, "eth_gasPrice", &json!([])).await;
    assert_eq!(t.upstream("eth_gasPrice"), 2, "fee reads are kept per head");

    // A 1-block reorg replaces that head: nothing bound to it is served.
    let replaced = t.fleet.head(0).await.unwrap();
    t.fleet.reorg_to(&checkpoint, 1).await.unwrap();
    let new_top = t.fleet.head(0).await.unwrap();
    assert_eq!(new_top.number, replaced.number);
    assert_ne!(new_top.hash, replaced.hash);
    wait_trackers_at(&t.gw, &new_top.hash).await;
    let answers = callers(&url, 100, 10, "eth_call", &read).await;
    let third = all_as_the_node(&t, &answers, "eth_call", &read).await;
    assert_ne!(third, second, "the replacement block has its own timestamp");
    for a in &answers {
        assert_ne!(
            a["result"], second,
            "an answer bound to the replaced block was served"
        );
    }
}

#[tokio::test]
async fn a_block_by_hash_is_one_upstream_call_from_the_first_answer() {
    // Before the cache's chain knows the block: the chain is read by number
    // (`eth_getBlockByNumber("0x…")`), and the taps fail every such read,
    // so that chain never knows it (the head tracker reads `latest` and
    // passes). Waiting for the chain to learn the block, as the cache once
    // did, would then store nothing, and every call would go upstream.
    let fleet = fleet(3).await;
    let height = fleet.mine_blocks(3).await.unwrap();
    let mut taps = Vec::new();
    for i in 0..fleet.len() {
        let tap = rpcgate_fleet::Tap::start(&fleet.http_url(i)).await.unwrap();
        tap.fail_calls(Some(rpcgate_fleet::CallMatch {
            method: "eth_getBlockByNumber".into(),
            params_containing: Some("\"0x".into()),
        }));
        taps.push(tap);
    }
    let ups: Vec<Up> = taps
        .iter()
        .enumerate()
        .map(|(i, t)| up(&format!("r{i}"), t.url(), Some(fleet.ws_url(i))))
        .collect();
    let gw = start_gateway(&super::quiet(&yaml(fleet.chain_id(), &ups, ""))).await;
    wait_synced(&gw, 3, height).await;
    let hash = fleet.block_hash(0, height).await.unwrap().unwrap();
    let params = json!([hash, false]);
    let mut answers = Vec::new();
    for _ in 0..50 {
        answers.push(call(&gw.url, "eth_getBlockByHash", params.clone()).await);
    }
    let truth = fleet
        .rpc(1)
        .await
        .unwrap()
        .call("eth_getBlockByHash", params.clone())
        .await
        .unwrap();
    for a in &answers {
        assert_eq!(a["result"], truth);
    }
    let upstream: u64 = taps.iter().map(|t| t.count("eth_getBlockByHash")).sum();
    assert_eq!(upstream, 1, "50 identical by-hash reads, one upstream call");
}
