//! Backend choice by head freshness: laggards get no `latest` traffic, a
//! block goes only to nodes that have it, and the head never goes back.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rpcgate::upstream::Ineligible;
use rpcgate_fleet::{Fleet, Tap};
use serde_json::json;

use crate::support::*;

/// Replicas 0 and 1 direct (with newHeads), replica 2 behind a counting tap.
async fn fleet_with_tapped_third() -> (Fleet, Tap, Gw) {
    let fleet = fleet(3).await;
    fleet.transfer(OTHER, 1).await.unwrap();
    fleet.mine_blocks(2).await.unwrap();
    let tap = Tap::start(&fleet.http_url(2)).await.unwrap();
    let ups = vec![
        up("r0", fleet.http_url(0), Some(fleet.ws_url(0))),
        up("r1", fleet.http_url(1), Some(fleet.ws_url(1))),
        up("r2", tap.url(), None),
    ];
    let gw = start_gateway(&yaml(fleet.chain_id(), &ups, "max_lag_blocks: 2")).await;
    wait_synced(&gw, 3, 2).await;
    (fleet, tap, gw)
}

/// Reads of the present that a lagging node would answer differently.
async fn latest_reads(gw: &Gw, n: usize) {
    for i in 0..n {
        let (method, params) = match i % 3 {
            0 => ("eth_getBalance", json!([OTHER, "latest"])),
            1 => ("eth_getTransactionCount", json!([DEV, "latest"])),
            _ => ("eth_call", json!([{"to": OTHER, "data": "0x"}])),
        };
        result(&gw.url, method, params).await;
    }
}

#[tokio::test]
async fn a_lagging_replica_gets_no_latest_traffic() {
    let (fleet, tap, gw) = fleet_with_tapped_third().await;
    // Behind by one: still eligible (within max_lag), but not at the served head.
    fleet.hold(2).await.unwrap();
    fleet.transfer(OTHER, 1).await.unwrap();
    let h = fleet.mine().await.unwrap();
    wait_view(&gw, "r2 one block behind, served head at h", |v| {
        v.served_head == Some(h) && v.backends[2].head == h - 1 && v.backends[2].eligible()
    })
    .await;
    tap.reset();
    latest_reads(&gw, 150).await;
    let balance = result(&gw.url, "eth_getBalance", json!([OTHER, "latest"])).await;
    let direct = fleet
        .rpc(0)
        .await
        .unwrap()
        .call("eth_getBalance", json!([OTHER, "latest"]))
        .await
        .unwrap();
    assert_eq!(balance, direct, "the answer reflects the newest block");
    for m in ["eth_getBalance", "eth_getTransactionCount", "eth_call"] {
        assert_eq!(tap.count(m), 0, "{m} reached the replica one block behind");
    }

    // Behind by three: not eligible at all.
    fleet.mine_blocks(2).await.unwrap();
    wait_view(&gw, "r2 lagging", |v| {
        v.backends[2].ineligible == Some(Ineligible::Lagging { behind: 3 })
    })
    .await;
    tap.reset();
    latest_reads(&gw, 150).await;
    // Even explicit old blocks skip an ineligible node.
    for _ in 0..50 {
        result(&gw.url, "eth_getBalance", json!([OTHER, "0x1"])).await;
    }
    assert_eq!(
        tap.count("eth_getBalance") + tap.count("eth_getTransactionCount") + tap.count("eth_call"),
        0
    );

    // Caught up: it serves again.
    fleet.release(2).await.unwrap();
    let h = fleet.height().await;
    wait_synced(&gw, 3, h).await;
}

#[tokio::test]
async fn a_block_only_two_replicas_have_never_goes_to_the_third() {
    let (fleet, tap, gw) = fleet_with_tapped_third().await;
    fleet.hold(2).await.unwrap();
    fleet.transfer(OTHER, 7).await.unwrap();
    let h = fleet.mine().await.unwrap();
    wait_view(&gw, "served head h without r2", |v| {
        v.served_head == Some(h) && v.backends[2].head == h - 1
    })
    .await;
    tap.reset();
    for _ in 0..100 {
        let count = result(
            &gw.url,
            "eth_getBlockTransactionCountByNumber",
            json!([hex(h)]),
        )
        .await;
        assert_eq!(count, "0x1");
        result(&gw.url, "eth_getBalance", json!([OTHER, hex(h)])).await;
    }
    assert_eq!(tap.count("eth_getBlockTransactionCountByNumber"), 0);
    assert_eq!(tap.count("eth_getBalance"), 0);
    // Older blocks may go to it: it has them (not asserted: P2C may prefer the others).
    for _ in 0..20 {
        result(&gw.url, "eth_getBalance", json!([OTHER, hex(h - 1)])).await;
    }
}

#[tokio::test]
async fn block_number_is_monotonic_while_a_replica_lags_and_catches_up() {
    let fleet = fleet(3).await;
    fleet.mine().await.unwrap();
    let gw = gateway_over(&fleet, "max_lag_blocks: 2", 1).await;

    // Mine continuously; now and then hold one replica back and let it catch up.
    let done = Arc::new(AtomicBool::new(false));
    let miner = {
        let (fleet, done) = (fleet.clone(), done.clone());
        tokio::spawn(async move {
            let mut round = 0u32;
            while !done.load(Ordering::Relaxed) {
                let lagger = (round as usize / 8) % 3;
                match round % 8 {
                    0 => fleet.hold(lagger).await.unwrap(),
                    5 => fleet.release(lagger).await.unwrap(),
                    _ => {}
                }
                fleet.mine().await.unwrap();
                round += 1;
                tokio::time::sleep(Duration::from_millis(15)).await;
            }
        })
    };

    let (mut last_number, mut last_latest) = (0u64, 0u64);
    let first = quantity(&result(&gw.url, "eth_blockNumber", json!([])).await);
    for i in 0..2000 {
        if i % 2 == 0 {
            let n = quantity(&result(&gw.url, "eth_blockNumber", json!([])).await);
            assert!(
                n >= last_number,
                "eth_blockNumber went back from {last_number} to {n}"
            );
            last_number = n;
        } else {
            let block = result(&gw.url, "eth_getBlockByNumber", json!(["latest", false])).await;
            let n = quantity(&block["number"]);
            assert!(
                n >= last_latest,
                "latest block went back from {last_latest} to {n}"
            );
            assert!(
                n >= last_number,
                "latest block {n} is behind eth_blockNumber {last_number}"
            );
            last_latest = n;
        }
    }
    done.store(true, Ordering::Relaxed);
    miner.await.unwrap();
    assert!(
        last_number > first + 5,
        "the chain advanced during the test ({first} -> {last_number})"
    );
}

#[tokio::test]
async fn heads_arrive_over_websocket_and_finality_is_tracked() {
    let fleet = fleet(2).await;
    fleet.mine_blocks(3).await.unwrap();
    // Polling so slow that only newHeads can move the head within the test.
    let slow =
        "head:\n  poll_interval: 60s\n  ws_poll_interval: 60s\n  finality_poll_interval: 100ms";
    let y = yaml(fleet.chain_id(), &fleet_ups(&fleet), "").replace(
        "    head:\n      poll_interval: 50ms\n      ws_poll_interval: 200ms\n      finality_poll_interval: 200ms\n",
        &slow.lines().map(|l| format!("    {l}\n")).collect::<String>(),
    );
    assert!(y.contains("60s"), "{y}");
    let gw = start_gateway(&y).await;
    wait_synced(&gw, 2, 3).await;
    let h = fleet.mine_blocks(2).await.unwrap();
    wait_synced(&gw, 2, h).await;
    // anvil with one slot per epoch: safe is latest - 1, finalized latest - 2.
    wait_view(&gw, "safe and finalized follow the chain", |v| {
        v.safe == Some(h - 1) && v.finalized == Some(h - 2)
    })
    .await;
}
