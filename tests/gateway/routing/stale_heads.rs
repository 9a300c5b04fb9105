//! A backend's head is only as good as its last answer (issue 24, item 1).
//! Taps make replicas look as if they stood lower than the gateway last saw
//! them (a node restarted behind its head): they answer `-32001 Resource not
//! found` for blocks above that. A read pinned to the served head must still
//! be answered, from another backend or, when none has the block any more,
//! from the re-derived head; the client never sees the node's "not found".

use std::time::Duration;

use rpcgate_fleet::{Fleet, HeadAt, Tap};
use serde_json::{json, Value};

use crate::support::*;

/// Three replicas behind taps (no newHeads: the taps see every probe), no
/// cache; `slow_polls`: `latest` is polled every 30 s, so only a doubt makes
/// the trackers look again within the test.
async fn tapped(slow_polls: bool) -> (Fleet, Vec<Tap>, Gw, u64) {
    let fleet = fleet(3).await;
    for i in 1..=4u64 {
        fleet.transfer(OTHER, u128::from(i)).await.unwrap();
        fleet.mine().await.unwrap();
    }
    let height = fleet.height().await;
    let taps = tap_all(&fleet).await;
    let ups: Vec<Up> = taps
        .iter()
        .enumerate()
        .map(|(i, t)| up(&format!("r{i}"), t.url(), None))
        .collect();
    let mut y = with_cache(&yaml(fleet.chain_id(), &ups, ""), &["enabled: false"]);
    if slow_polls {
        y = y.replace("      poll_interval: 50ms\n", "      poll_interval: 30s\n");
    }
    let gw = start_gateway(&y).await;
    wait_synced(&gw, 3, height).await;
    (fleet, taps, gw, height)
}

/// `r`'s latency estimate small and the others' large: P2C prefers it
/// whenever it is one of the two it draws.
fn prefer(gw: &Gw, r: usize) {
    for (i, b) in gw.view().backends.iter().enumerate() {
        let rtt = if i == r {
            Duration::from_micros(10)
        } else {
            Duration::from_secs(1)
        };
        b.backend.load.reset(rtt);
    }
}

fn no_not_found(answer: &Value) {
    assert_ne!(
        answer["error"]["code"], -32001,
        "the node's not-found reached the client: {answer}"
    );
    assert!(answer.get("error").is_none(), "{answer}");
}

#[tokio::test]
async fn a_backend_that_denies_a_block_it_claimed_is_passed_over_at_once() {
    let (fleet, taps, gw, height) = tapped(false).await;
    // r0 answers its probes as the node it is (at `height`) but says the
    // block at `height` is not there, as a node restarted behind does.
    taps[0].set_head_at(Some(HeadAt {
        head: height - 1,
        probes_see_it: false,
    }));
    let truth = result(
        &fleet.http_url(1),
        "eth_getBalance",
        json!([OTHER, hex(height)]),
    )
    .await;
    for _ in 0..20 {
        prefer(&gw, 0);
        let answer = call(&gw.url, "eth_getBalance", json!([OTHER, "latest"])).await;
        no_not_found(&answer);
        assert_eq!(answer["result"], truth, "{answer}");
        prefer(&gw, 0);
        let block = call(&gw.url, "eth_getBlockByNumber", json!(["latest", false])).await;
        no_not_found(&block);
        assert_eq!(block["result"]["number"], json!(hex(height)), "{block}");
    }
    let denied = taps[0].not_found_answers();
    let others: Vec<u64> = taps[1..]
        .iter()
        .map(|t| t.count("eth_getBalance"))
        .collect();
    eprintln!("r0 denied {denied} reads; r1, r2 answered {others:?} balance reads");
    assert!(denied >= 1, "r0 was never asked: the test shows nothing");
    assert_eq!(
        others.iter().sum::<u64>(),
        20,
        "every balance read answered elsewhere"
    );
    // Denials are not failures: nothing ejected.
    assert!(gw.view().backends.iter().all(|b| !b.backend.is_ejected()));
}

#[tokio::test]
async fn when_no_backend_has_the_pinned_block_the_head_is_derived_again() {
    let (fleet, taps, gw, height) = tapped(true).await;
    // The whole fleet came back one block lower (a reorg to a shorter
    // branch, or every node restarted behind): probes now say so too, but
    // the trackers poll only every 30 s; the served head is still `height`.
    for t in &taps {
        t.set_head_at(Some(HeadAt {
            head: height - 1,
            probes_see_it: true,
        }));
    }
    assert_eq!(gw.view().served_head, Some(height));
    let truth = result(
        &fleet.http_url(0),
        "eth_getBalance",
        json!([OTHER, hex(height - 1)]),
    )
    .await;
    let answer = call(&gw.url, "eth_getBalance", json!([OTHER, "latest"])).await;
    no_not_found(&answer);
    assert_eq!(
        answer["result"], truth,
        "pinned again to the re-derived head: {answer}"
    );
    assert_eq!(gw.view().served_head, Some(height - 1));
    let denied: Vec<u64> = taps.iter().map(Tap::not_found_answers).collect();
    eprintln!("denials per replica before the head was derived again: {denied:?}");
    assert!(denied.iter().sum::<u64>() >= 1);
}
