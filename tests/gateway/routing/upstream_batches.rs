//! Upstream batches (`router::batch`): the entries of one client batch that
//! miss the cache and choose the same backend reach it as one JSON array,
//! answered back by the gateway's own ids; an entry that fails inside it is
//! retried alone. Real anvil replicas behind taps, which count HTTP requests
//! and the calls in them, fail one call inside a batch, or answer a batch
//! in reverse order.
//!
//! The reads are `eth_getBlockByHash` of ten distinct blocks: distinct
//! answers (so a mix-up shows), nothing the cache or in-flight sharing could
//! answer, and a method the head trackers never call (their polls would
//! count too).

use rpcgate_fleet::{CallMatch, Fleet, Tap};
use serde_json::{json, Value};

use crate::support::*;

/// Mines ten blocks and returns their hashes (blocks 1 to 10).
async fn ten_blocks(fleet: &Fleet) -> Vec<String> {
    fleet.mine_blocks(10).await.unwrap();
    let mut hashes = Vec::new();
    for n in 1..=10 {
        hashes.push(fleet.block_hash(0, n).await.unwrap().unwrap());
    }
    hashes
}

/// A client batch reading each block by hash, the caller's ids `"c0"`...
fn batch_of(hashes: &[String]) -> Value {
    Value::Array(
        hashes
            .iter()
            .enumerate()
            .map(|(i, h)| {
                json!({"jsonrpc": "2.0", "id": format!("c{i}"), "method": "eth_getBlockByHash", "params": [h, false]})
            })
            .collect(),
    )
}

/// Every entry answered with what the replica itself says for its block.
async fn assert_answers_right(answers: &Value, hashes: &[String], replica: &str) {
    let answers = answers.as_array().unwrap_or_else(|| panic!("{answers}"));
    assert_eq!(answers.len(), hashes.len(), "{answers:?}");
    for (i, hash) in hashes.iter().enumerate() {
        let id = format!("c{i}");
        let answer = answers
            .iter()
            .find(|a| a["id"] == id.as_str())
            .unwrap_or_else(|| panic!("no answer for {id}: {answers:?}"));
        let expected = result(replica, "eth_getBlockByHash", json!([hash, false])).await;
        assert_eq!(answer["result"], expected, "entry {id}: {answer}");
        assert_eq!(answer["result"]["hash"], hash.as_str());
    }
}

/// Backends named `<prefix><i>`, each behind its tap, with newHeads
/// straight from the replica.
fn ups(fleet: &Fleet, taps: &[Tap], prefix: &str) -> Vec<Up> {
    taps.iter()
        .enumerate()
        .map(|(i, t)| up(&format!("{prefix}{i}"), t.url(), Some(fleet.ws_url(i))))
        .collect()
}

/// Network keys of every test here: none, or `upstream_batch_max: N` from
/// `RPCGATE_TEST_UPSTREAM_BATCH_MAX` (1 switches batching off, to see the
/// tests fail without it).
fn extra() -> String {
    std::env::var("RPCGATE_TEST_UPSTREAM_BATCH_MAX")
        .map(|n| format!("upstream_batch_max: {n}"))
        .unwrap_or_default()
}

#[tokio::test]
async fn a_batch_of_ten_reads_reaches_one_backend_as_one_request() {
    let fleet = fleet(1).await;
    let hashes = ten_blocks(&fleet).await;
    let taps = tap_all(&fleet).await;
    let gw = start_gateway(&yaml(
        fleet.chain_id(),
        &ups(&fleet, &taps, "one"),
        &extra(),
    ))
    .await;
    wait_synced(&gw, 1, 10).await;
    taps[0].reset();

    let answers = post_json(&gw.url, &batch_of(&hashes)).await;
    assert_answers_right(&answers, &hashes, &fleet.http_url(0)).await;
    eprintln!(
        "HTTP requests carrying the reads: {}, calls: {}, batches: {}",
        taps[0].requests_of("eth_getBlockByHash"),
        taps[0].count("eth_getBlockByHash"),
        taps[0].batches()
    );
    assert_eq!(
        taps[0].requests_of("eth_getBlockByHash"),
        1,
        "ten reads for one backend are one request"
    );
    assert_eq!(taps[0].count("eth_getBlockByHash"), 10);
    assert_eq!(taps[0].batches(), 1);
    let metrics = scrape(&gw.admin).await;
    let series = [("backend", "one0"), ("network", "dev")];
    assert_eq!(
        metrics.value("rpcgate_upstream_batch_calls_count", &series),
        1.0
    );
    assert_eq!(
        metrics.value("rpcgate_upstream_batch_calls_sum", &series),
        10.0
    );
}

#[tokio::test]
async fn with_three_backends_each_chosen_backend_gets_one_request() {
    let fleet = fleet(3).await;
    let hashes = ten_blocks(&fleet).await;
    let taps = tap_all(&fleet).await;
    let gw = start_gateway(&yaml(
        fleet.chain_id(),
        &ups(&fleet, &taps, "three"),
        &extra(),
    ))
    .await;
    wait_synced(&gw, 3, 10).await;
    for t in &taps {
        t.reset();
    }

    let answers = post_json(&gw.url, &batch_of(&hashes)).await;
    assert_answers_right(&answers, &hashes, &fleet.http_url(0)).await;
    let requests: Vec<u64> = taps
        .iter()
        .map(|t| t.requests_of("eth_getBlockByHash"))
        .collect();
    let calls: Vec<u64> = taps.iter().map(|t| t.count("eth_getBlockByHash")).collect();
    eprintln!("requests per backend: {requests:?}, calls per backend: {calls:?}");
    assert_eq!(calls.iter().sum::<u64>(), 10, "{calls:?}");
    let chosen = calls.iter().filter(|&&c| c > 0).count() as u64;
    assert!(
        requests.iter().sum::<u64>() <= chosen && requests.iter().all(|&r| r <= 1),
        "more requests than backends chosen: {requests:?} for {calls:?}"
    );
}

#[tokio::test]
async fn a_failing_entry_inside_the_batch_is_retried_alone() {
    // fail0 serves; fail1 is a fallback, asked only when every attempt at a
    // primary failed: where a retry goes is then known.
    let fleet = fleet(2).await;
    let hashes = ten_blocks(&fleet).await;
    let taps = tap_all(&fleet).await;
    let mut ups = ups(&fleet, &taps, "fail");
    ups[1] = up("fail1", taps[1].url(), Some(fleet.ws_url(1))).with("tier: fallback");
    let gw = start_gateway(&yaml(fleet.chain_id(), &ups, &extra())).await;
    wait_view(&gw, "the primary serving at 10, the fallback probed", |v| {
        v.served_head == Some(10)
            && v.backends[0].eligible()
            && v.backends[1].state.latest.is_some()
    })
    .await;
    for t in &taps {
        t.reset();
    }
    // The fourth block's read fails at the primary (a -32005 in its place in the
    // batch); the other nine are answered.
    taps[0].fail_calls(Some(CallMatch {
        method: "eth_getBlockByHash".into(),
        params_containing: Some(hashes[3].clone()),
    }));

    let answers = post_json(&gw.url, &batch_of(&hashes)).await;
    assert_answers_right(&answers, &hashes, &fleet.http_url(0)).await;
    let seen = |t: &Tap| {
        (
            t.requests_of("eth_getBlockByHash"),
            t.count("eth_getBlockByHash"),
        )
    };
    eprintln!(
        "primary (requests, calls): {:?}, fallback: {:?}",
        seen(&taps[0]),
        seen(&taps[1])
    );
    assert_eq!(
        seen(&taps[0]),
        (1, 10),
        "the batch went once, the failed read not again"
    );
    assert_eq!(
        seen(&taps[1]),
        (1, 1),
        "the failed read alone, at the other backend"
    );
    assert_eq!(taps[1].batches(), 0);
}

#[tokio::test]
async fn answers_map_back_by_the_gateways_ids_when_the_node_reorders_them() {
    let fleet = fleet(1).await;
    let hashes = ten_blocks(&fleet).await;
    let taps = tap_all(&fleet).await;
    let gw = start_gateway(&yaml(
        fleet.chain_id(),
        &ups(&fleet, &taps, "order"),
        &extra(),
    ))
    .await;
    wait_synced(&gw, 1, 10).await;
    taps[0].reset();
    taps[0].reverse_batches(true);

    let answers = post_json(&gw.url, &batch_of(&hashes)).await;
    assert_eq!(taps[0].batches(), 1, "the reads went as one batch");
    assert_answers_right(&answers, &hashes, &fleet.http_url(0)).await;
    // And in the client's own order, as it sent them.
    let ids: Vec<&Value> = answers
        .as_array()
        .unwrap()
        .iter()
        .map(|a| &a["id"])
        .collect();
    let sent: Vec<Value> = (0..10).map(|i| json!(format!("c{i}"))).collect();
    assert_eq!(ids, sent.iter().collect::<Vec<_>>());
}

#[tokio::test]
async fn a_backend_that_refuses_the_batch_gets_the_calls_one_by_one() {
    let fleet = fleet(1).await;
    let hashes = ten_blocks(&fleet).await;
    let taps = tap_all(&fleet).await;
    let gw = start_gateway(&yaml(
        fleet.chain_id(),
        &ups(&fleet, &taps, "refuse"),
        &extra(),
    ))
    .await;
    wait_synced(&gw, 1, 10).await;
    taps[0].reset();
    taps[0].refuse_batches(true);

    let answers = post_json(&gw.url, &batch_of(&hashes)).await;
    assert_answers_right(&answers, &hashes, &fleet.http_url(0)).await;
    // The refused batch, then each call alone.
    assert_eq!(taps[0].batches(), 1);
    assert_eq!(taps[0].requests_of("eth_getBlockByHash"), 11);
    let series = [("backend", "refuse0"), ("network", "dev")];
    assert_eq!(
        scrape(&gw.admin)
            .await
            .value("rpcgate_upstream_batches_refused_total", &series),
        1.0
    );
}

#[tokio::test]
async fn sends_inside_a_client_batch_go_alone() {
    let fleet = fleet(1).await;
    let hashes = ten_blocks(&fleet).await;
    let taps = tap_all(&fleet).await;
    let gw = start_gateway(&yaml(
        fleet.chain_id(),
        &ups(&fleet, &taps, "send"),
        &extra(),
    ))
    .await;
    wait_synced(&gw, 1, 10).await;
    taps[0].reset();
    let mut batch = batch_of(&hashes[..8]);
    let mut sent = Vec::new();
    for i in 0..2 {
        let (raw, hash) = fleet.sign_transfer(OTHER, 1 + i).await.unwrap();
        fleet.submit(raw.clone()).await.unwrap();
        batch.as_array_mut().unwrap().push(
            json!({"jsonrpc": "2.0", "id": format!("s{i}"), "method": "eth_sendRawTransaction", "params": [raw]}),
        );
        sent.push(hash);
    }

    let answers = post_json(&gw.url, &batch).await;
    assert_answers_right(
        &Value::Array(answers.as_array().unwrap()[..8].to_vec()),
        &hashes[..8],
        &fleet.http_url(0),
    )
    .await;
    for (i, hash) in sent.iter().enumerate() {
        let answer = &answers[8 + i];
        assert_eq!(answer["id"], format!("s{i}").as_str());
        assert_eq!(answer["result"], hash.as_str(), "{answer}");
    }
    // The eight reads in one batch; each send in a request of its own.
    assert_eq!(taps[0].batches(), 1);
    assert_eq!(taps[0].requests_of("eth_getBlockByHash"), 1);
    assert_eq!(taps[0].count("eth_getBlockByHash"), 8);
    assert_eq!(taps[0].requests_of("eth_sendRawTransaction"), 2);
    assert_eq!(taps[0].count("eth_sendRawTransaction"), 2);
}
