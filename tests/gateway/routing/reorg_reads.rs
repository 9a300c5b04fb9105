//! Reads across a reorg that lowers every node for a moment (issue 24, item
//! 1). Mid-reorg a node stands at the fork point before it imports the new
//! branch; when every node does at once, none has the block the gateway
//! last served. The chain is not shorter for that: the served head is held
//! (`eth_blockNumber` never goes back), and a read of the served block waits
//! for a node to reach it on the new branch rather than getting `null` or
//! the node's "not found".
//!
//! Taps make the moment last as long as the test needs: every replica's
//! head probes and its reads by number say it stands at the fork point,
//! while the fleet really reorganises behind them; then the taps let go.

use rpcgate_fleet::{Checkpoint, Fleet, HeadAt, Tap};
use serde_json::{json, Value};

use crate::support::*;

/// Three tapped replicas at `fork + 2` (a checkpoint at `fork`), a gateway
/// with no cache that gives lowered nodes a minute to catch up (so the wait
/// never ends on its own on a loaded machine), synced.
async fn at_fork() -> (Fleet, Vec<Tap>, Gw, Checkpoint) {
    let fleet = fleet(3).await;
    fleet.mine_blocks(2).await.unwrap();
    let checkpoint = fleet.checkpoint().await.unwrap();
    let height = fleet.mine_blocks(2).await.unwrap();
    let taps = tap_all(&fleet).await;
    let ups: Vec<Up> = taps
        .iter()
        .enumerate()
        .map(|(i, t)| up(&format!("r{i}"), t.url(), None))
        .collect();
    // `REORG_READS_CATCH_UP=1ms` switches the hold and the wait off (as
    // good as), to see both tests fail.
    let catch_up = std::env::var("REORG_READS_CATCH_UP").unwrap_or_else(|_| "60s".into());
    let y = with_cache(&yaml(fleet.chain_id(), &ups, ""), &["enabled: false"]).replace(
        "      probe_timeout: 1s\n",
        &format!("      probe_timeout: 1s\n      catch_up_wait: {catch_up}\n"),
    );
    let gw = start_gateway(&y).await;
    wait_synced(&gw, 3, height).await;
    (fleet, taps, gw, checkpoint)
}

/// Every replica seems to stand at the fork point, and the gateway's
/// trackers have seen it.
async fn lower_all(gw: &Gw, taps: &[Tap], fork: u64) {
    for t in taps {
        t.set_head_at(Some(HeadAt {
            head: fork,
            probes_see_it: true,
        }));
    }
    wait_view(gw, "every tracker at the fork point", |v| {
        v.backends
            .iter()
            .all(|b| b.state.latest.as_ref().is_some_and(|l| l.number == fork))
    })
    .await;
}

fn release_all(taps: &[Tap]) {
    for t in taps {
        t.set_head_at(None);
    }
}

async fn block_number(gw: &Gw) -> u64 {
    let n = result(&gw.url, "eth_blockNumber", json!([])).await;
    u64::from_str_radix(n.as_str().unwrap().trim_start_matches("0x"), 16).unwrap()
}

#[tokio::test]
async fn a_read_of_the_served_head_mid_reorg_gets_the_block_of_the_new_branch() {
    let (fleet, taps, gw, checkpoint) = at_fork().await;
    let fork = checkpoint.height();
    let height = fork + 2;
    lower_all(&gw, &taps, fork).await;
    // The read of the block the gateway served, while no node has it.
    let url = gw.url.clone();
    let read = tokio::spawn(async move {
        call(&url, "eth_getBlockByNumber", json!([hex(height), false])).await
    });
    // The fleet imports the new branch behind the taps, then they let go.
    fleet.reorg_to(&checkpoint, 2).await.unwrap();
    let new_hash = fleet.block_hash(0, height).await.unwrap().unwrap();
    // Sequencing only (the read must start waiting before the nodes come
    // back); no assertion depends on how long anything took.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    release_all(&taps);
    let answer: Value = read.await.unwrap();
    assert!(answer.get("error").is_none(), "{answer}");
    assert_ne!(
        answer["result"],
        Value::Null,
        "null for the served head: {answer}"
    );
    assert_eq!(answer["result"]["number"], json!(hex(height)), "{answer}");
    assert_eq!(
        answer["result"]["hash"],
        json!(new_hash),
        "the new branch's block: {answer}"
    );
    let reached = scrape(&gw.admin)
        .await
        .value("rpcgate_block_waits_total", &[("outcome", "reached")]);
    eprintln!("reads that waited for a node to reach their block: {reached}");
    assert!(
        reached >= 1.0,
        "the read never waited: the test shows nothing"
    );
}

#[tokio::test]
async fn the_served_head_never_goes_back_across_such_a_reorg() {
    let (fleet, taps, gw, checkpoint) = at_fork().await;
    let fork = checkpoint.height();
    let height = fork + 2;
    let mut seen = vec![block_number(&gw).await];
    lower_all(&gw, &taps, fork).await;
    for _ in 0..5 {
        seen.push(block_number(&gw).await);
    }
    fleet.reorg_to(&checkpoint, 2).await.unwrap();
    let new_top = fleet.head(0).await.unwrap();
    for _ in 0..5 {
        seen.push(block_number(&gw).await);
    }
    release_all(&taps);
    wait_trackers_at(&gw, &new_top.hash).await;
    seen.push(block_number(&gw).await);
    eprintln!("eth_blockNumber across the reorg: {seen:?}");
    assert!(
        seen.windows(2).all(|w| w[0] <= w[1]),
        "the served head went back: {seen:?}"
    );
    assert!(seen.iter().all(|n| *n >= height), "{seen:?}");
}
