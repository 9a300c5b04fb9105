//! Batches across clients (`upstream::client::gate`): while every slot of a
//! backend (`upstream_max_in_flight`) is busy, the reads of separate clients
//! waiting for it reach it together as one JSON array, each answered to its
//! own caller with its own id; sends wait and go alone; an entry that fails
//! inside the batch is sent again alone.
//!
//! The backend is a real anvil behind a tap. It is held busy by one slow
//! read (the tap delays `eth_getTransactionByHash` by a few seconds, long
//! enough for the calls that follow to queue on a loaded machine) with one
//! slot; the calls under test are then sent at once, from separate clients.
//! The reads are `eth_getBlockByHash` of distinct blocks: distinct answers,
//! nothing the cache or in-flight sharing could answer, and a method the
//! head trackers never call.

use std::time::Duration;

use futures_util::future::join_all;
use rpcgate_fleet::{CallMatch, Fault, Fleet, Tap};
use serde_json::{json, Value};

use crate::support::*;

/// How long the tap holds the read that keeps the slot busy.
const HOLD: Duration = Duration::from_secs(3);

/// Network keys of every test here: one slot, batches of up to 16;
/// `RPCGATE_TEST_SATURATED_BATCH_MAX=1` switches batching off, to see the
/// tests fail without it.
fn extra() -> String {
    let max = std::env::var("RPCGATE_TEST_SATURATED_BATCH_MAX").unwrap_or_else(|_| "16".into());
    format!("upstream_max_in_flight: 1\nsaturated_batch_max: {max}")
}

/// Mines ten blocks and returns their hashes (blocks 1 to 10).
async fn ten_blocks(fleet: &Fleet) -> Vec<String> {
    fleet.mine_blocks(10).await.unwrap();
    let mut hashes = Vec::new();
    for n in 1..=10 {
        hashes.push(fleet.block_hash(0, n).await.unwrap().unwrap());
    }
    hashes
}

/// Sends the slow read that holds the backend's one slot, and returns once
/// the tap has it (its answer is left to come).
async fn hold_the_slot(gw: &Gw, tap: &Tap) -> tokio::task::JoinHandle<Value> {
    tap.set_fault_on("eth_getTransactionByHash", Fault::Delay(HOLD));
    let url = gw.url.clone();
    let held = tokio::spawn(async move {
        let zero = format!("0x{}", "00".repeat(32));
        call(&url, "eth_getTransactionByHash", json!([zero])).await
    });
    wait_for("the slow read at the backend", || async move {
        tap.count("eth_getTransactionByHash") == 1
    })
    .await;
    held
}

/// One client's call, with its own id.
async fn one_call(url: &str, id: String, method: &str, params: Value) -> Value {
    post_json(
        url,
        &json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}),
    )
    .await
}

/// Each answer has its caller's id and what the node itself says.
async fn assert_own_answers(answers: &[Value], hashes: &[String], node: &str) {
    for (i, (answer, hash)) in answers.iter().zip(hashes).enumerate() {
        assert_eq!(answer["id"], format!("c{i}"), "{answer}");
        let expected = result(node, "eth_getBlockByHash", json!([hash, false])).await;
        assert_eq!(answer["result"], expected, "c{i}: {answer}");
        assert_eq!(answer["result"]["hash"], hash.as_str());
    }
}

#[tokio::test]
async fn reads_of_many_clients_reach_a_saturated_backend_as_fewer_requests() {
    let fleet = fleet(1).await;
    let hashes = ten_blocks(&fleet).await;
    let taps = tap_all(&fleet).await;
    let ups = [up("one", taps[0].url(), Some(fleet.ws_url(0)))];
    let gw = start_gateway(&yaml(fleet.chain_id(), &ups, &extra())).await;
    wait_synced(&gw, 1, 10).await;
    taps[0].reset();
    let held = hold_the_slot(&gw, &taps[0]).await;

    let answers = join_all(hashes.iter().enumerate().map(|(i, h)| {
        one_call(
            &gw.url,
            format!("c{i}"),
            "eth_getBlockByHash",
            json!([h, false]),
        )
    }))
    .await;
    assert!(held.await.unwrap().get("result").is_some());
    assert_own_answers(&answers, &hashes, &fleet.http_url(0)).await;
    let requests = taps[0].requests_of("eth_getBlockByHash");
    eprintln!(
        "ten reads: {requests} HTTP requests, {} of them arrays",
        taps[0].batches()
    );
    assert_eq!(taps[0].count("eth_getBlockByHash"), 10);
    assert!(
        requests < 10,
        "ten reads queued for a busy backend went as {requests} requests"
    );
}

#[tokio::test]
async fn sends_wait_their_turn_and_go_alone() {
    let fleet = fleet(1).await;
    let hashes = ten_blocks(&fleet).await;
    let taps = tap_all(&fleet).await;
    let ups = [up("one", taps[0].url(), Some(fleet.ws_url(0)))];
    let gw = start_gateway(&yaml(fleet.chain_id(), &ups, &extra())).await;
    wait_synced(&gw, 1, 10).await;
    let mut sends = Vec::new();
    for _ in 0..3 {
        sends.push(fleet.sign_transfer(OTHER, 1).await.unwrap());
    }
    taps[0].reset();
    let held = hold_the_slot(&gw, &taps[0]).await;

    let sent = join_all(sends.iter().enumerate().map(|(i, (raw, _))| {
        one_call(
            &gw.url,
            format!("s{i}"),
            "eth_sendRawTransaction",
            json!([raw]),
        )
    }));
    let read = join_all(hashes[..3].iter().enumerate().map(|(i, h)| {
        one_call(
            &gw.url,
            format!("c{i}"),
            "eth_getBlockByHash",
            json!([h, false]),
        )
    }));
    let (sent, read) = tokio::join!(sent, read);
    assert!(held.await.unwrap().get("result").is_some());
    for (i, (answer, (_, hash))) in sent.iter().zip(&sends).enumerate() {
        assert_eq!(answer["id"], format!("s{i}"), "{answer}");
        assert_eq!(answer["result"], hash.as_str(), "{answer}");
    }
    assert_own_answers(&read, &hashes[..3], &fleet.http_url(0)).await;
    let (calls, requests) = (
        taps[0].count("eth_sendRawTransaction"),
        taps[0].requests_of("eth_sendRawTransaction"),
    );
    eprintln!(
        "sends: {calls} calls in {requests} requests; reads in {} requests",
        taps[0].requests_of("eth_getBlockByHash")
    );
    assert_eq!(calls, 3);
    assert_eq!(requests, 3, "each send alone in its own request");
}

#[tokio::test]
async fn an_entry_that_fails_inside_the_batch_is_sent_again_alone() {
    // A primary and a fallback: the fallback is asked only when every
    // attempt at the primary failed, so where a retry went is known.
    let fleet = fleet(2).await;
    let hashes = ten_blocks(&fleet).await;
    let taps = tap_all(&fleet).await;
    let ups = [
        up("primary", taps[0].url(), Some(fleet.ws_url(0))),
        up("spare", taps[1].url(), Some(fleet.ws_url(1))).with("tier: fallback"),
    ];
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
    // The one read of another method fails wherever the primary meets it: a
    // -32005 in its place in a batch, HTTP 503 alone.
    let failing = "eth_getBlockTransactionCountByHash";
    taps[0].fail_calls(Some(CallMatch {
        method: failing.into(),
        params_containing: None,
    }));
    let held = hold_the_slot(&gw, &taps[0]).await;

    let reads = join_all(hashes.iter().enumerate().map(|(i, h)| {
        one_call(
            &gw.url,
            format!("c{i}"),
            "eth_getBlockByHash",
            json!([h, false]),
        )
    }));
    let odd = one_call(&gw.url, "odd".into(), failing, json!([hashes[3]]));
    let (reads, odd) = tokio::join!(reads, odd);
    assert!(held.await.unwrap().get("result").is_some());
    assert_own_answers(&reads, &hashes, &fleet.http_url(0)).await;
    let expected = result(&fleet.http_url(1), failing, json!([hashes[3]])).await;
    assert_eq!(odd["id"], "odd", "{odd}");
    assert_eq!(odd["result"], expected, "{odd}");
    let seen = |t: &Tap| (t.requests_of(failing), t.count(failing), t.batches());
    eprintln!(
        "the failing read at the primary (requests, calls, arrays): {:?}, at the spare: {:?}",
        seen(&taps[0]),
        seen(&taps[1])
    );
    assert!(taps[0].batches() >= 1, "the reads went in a batch");
    assert_eq!(
        (taps[0].requests_of(failing), taps[0].count(failing)),
        (2, 2),
        "in the batch, then alone"
    );
    assert_eq!(seen(&taps[1]), (1, 1, 0), "then alone at the spare");
    assert_eq!(taps[1].count("eth_getBlockByHash"), 0);
}
