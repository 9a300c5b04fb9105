//! Archive and pruned nodes: two replicas behind taps that answer `missing
//! trie node` for state more than 4 blocks below their head (as a snap or
//! full Geth does below head-128), one archive replica. Old-state reads
//! must all succeed and, once the gateway knows (learned or configured),
//! never reach the pruned ones; reads of the present still spread over all
//! three.

use rpcgate_fleet::{Fleet, Tap};
use serde_json::json;

use crate::support::*;

/// The fleet's head during the test: blocks 1 to 10 are 30 or more deep.
const HEAD: u64 = 40;
/// What the pruned taps keep below their head.
const KEPT: u64 = 4;

struct Pruned {
    fleet: Fleet,
    /// r0 and r1 pruned, r2 archive.
    taps: Vec<Tap>,
    gw: Gw,
}

/// Three replicas at [`HEAD`] with OTHER's balance changing in blocks 1 to
/// 10; `pruned_keys` go on the two pruned upstreams. No cache: every read
/// reaches a backend, where the taps count it.
async fn pruned_fleet(pruned_keys: &[&str]) -> Pruned {
    let fleet = fleet(3).await;
    for i in 1..=10u64 {
        fleet.transfer(OTHER, u128::from(i)).await.unwrap();
        fleet.mine().await.unwrap();
    }
    fleet.mine_blocks(HEAD - 10).await.unwrap();
    let taps = tap_all(&fleet).await;
    let mut ups = Vec::new();
    for (i, tap) in taps.iter().enumerate() {
        let mut u = up(&format!("r{i}"), tap.url(), None);
        if i < 2 {
            tap.set_state_history(Some(KEPT));
            for k in pruned_keys {
                u = u.with(k);
            }
        }
        ups.push(u);
    }
    let y = with_cache(&yaml(fleet.chain_id(), &ups, ""), &["enabled: false"]);
    let gw = start_gateway(&y).await;
    wait_synced(&gw, 3, HEAD).await;
    Pruned { fleet, taps, gw }
}

impl Pruned {
    /// OTHER's balance at `block` through the gateway, checked against the
    /// archive replica itself: a result, and the right one.
    async fn old_read(&self, block: u64) {
        let params = json!([OTHER, hex(block)]);
        let answer = call(&self.gw.url, "eth_getBalance", params.clone()).await;
        let truth = result(&self.fleet.http_url(2), "eth_getBalance", params).await;
        assert_eq!(
            answer.get("result"),
            Some(&truth),
            "block {block}: {answer}"
        );
    }

    fn balance_reads(&self) -> Vec<u64> {
        self.taps
            .iter()
            .map(|t| t.count("eth_getBalance"))
            .collect()
    }

    /// Equal latency estimates, reset in an order rotating with `i`.
    fn even_loads(&self, i: usize) {
        let view = self.gw.view();
        for k in 0..3 {
            let b = &view.backends[(i + k) % 3];
            b.backend.load.reset(std::time::Duration::from_millis(1));
        }
    }

    fn reset(&self) {
        for t in &self.taps {
            t.reset();
        }
    }

    /// Reads of the present (`latest`): spread over all three. The archive's
    /// latency estimate carries the old reads (slower on anvil), and loopback
    /// round trips on a loaded machine vary, so the estimates are made equal
    /// before each read (in a rotating order: the first one reset has decayed
    /// a hair more by the pick, and P2C keeps the strictly cheaper): the
    /// phase shows that no node is filtered out, not how P2C weighs latencies.
    async fn latest_reads_spread(&self) {
        self.reset();
        for i in 0..150 {
            self.even_loads(i);
            let balance = result(&self.gw.url, "eth_getBalance", json!([OTHER, "latest"])).await;
            assert!(balance.as_str().unwrap().starts_with("0x"));
        }
        let n = self.balance_reads();
        eprintln!("latest reads per replica (pruned, pruned, archive): {n:?}");
        assert_eq!(n.iter().sum::<u64>(), 150);
        // A fair share is 50; a node filtered out would get 0.
        assert!(n.iter().all(|&c| c >= 20), "latest reads not spread: {n:?}");
    }
}

#[tokio::test]
async fn old_state_reads_learn_which_nodes_are_pruned_and_go_to_the_archive() {
    let p = pruned_fleet(&[]).await;
    // The first few: a pruned node may be asked, answers `missing trie
    // node`, and the read is retried on another at once (0 client errors).
    // Loads are made even before every read here: latency alone would
    // already keep a node never asked (its first estimate is 5 ms) away.
    for i in 0..30u64 {
        p.even_loads(i as usize);
        p.old_read(1 + i % 10).await;
    }
    let learned: Vec<u64> = p.taps.iter().map(Tap::missing_state_answers).collect();
    eprintln!("missing trie node answers while learning: {learned:?}");
    // One answer teaches a window of half its depth (15 to 19 here), which
    // every later read (30 to 39 deep) is below; a read that comes before
    // the view is rebuilt may meet the same node once more.
    assert!(
        learned[0] >= 1 && learned[1] >= 1 && learned[0] + learned[1] <= 6,
        "{learned:?}"
    );
    assert_eq!(learned[2], 0);
    let view = p.gw.view();
    let kept: Vec<_> = view.backends.iter().map(|b| b.state_history).collect();
    eprintln!("state windows learned: {kept:?}");
    assert!(
        kept[..2].iter().all(|k| k.is_some_and(|k| k < HEAD - 10)),
        "{kept:?}"
    );
    assert_eq!(kept[2], None);
    // No ejection, no failure: both pruned nodes still serve.
    assert_eq!(view.eligible().count(), 3);

    // Afterwards: none of the old reads reaches the pruned nodes.
    p.reset();
    for i in 0..100u64 {
        p.even_loads(i as usize);
        p.old_read(1 + i % 10).await;
    }
    assert_eq!(
        p.balance_reads(),
        [0, 0, 100],
        "old reads reached a pruned node"
    );
    p.latest_reads_spread().await;
}

#[tokio::test]
async fn configured_state_history_keeps_old_reads_off_pruned_nodes_from_the_start() {
    let p = pruned_fleet(&["state_history: 4"]).await;
    for i in 0..60u64 {
        p.even_loads(i as usize);
        p.old_read(1 + i % 10).await;
    }
    assert_eq!(
        p.balance_reads(),
        [0, 0, 60],
        "old reads reached a pruned node"
    );
    let missing: Vec<u64> = p.taps.iter().map(Tap::missing_state_answers).collect();
    assert_eq!(missing, [0, 0, 0]);
    // Block HEAD - 4 is within the window: the pruned nodes serve it too
    // (loads made even, as for the latest reads below).
    p.reset();
    for i in 0..90 {
        p.even_loads(i);
        p.old_read(HEAD - KEPT).await;
    }
    let n = p.balance_reads();
    eprintln!("reads of block HEAD-4 per replica: {n:?}");
    assert_eq!(n.iter().sum::<u64>(), 90);
    assert!(
        n.iter().all(|&c| c >= 12),
        "reads within the window not spread: {n:?}"
    );
    p.latest_reads_spread().await;
}
