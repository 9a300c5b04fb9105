//! Benchmark (2) of the cache issue, as a test: upstream calls per client call
//! on a read-heavy DApp mix, counted by taps in front of every replica.
//!
//! Everything the backends receive counts: the clients' calls that the cache
//! did not answer, the head trackers' polls (at the production intervals) and
//! the reorg loop's header reads. Blocks keep coming during the run. The mix:
//! eth_call, transaction and block receipts, blocks by number and by hash,
//! balances, each at `latest`, at recent explicit blocks and at old ones,
//! drawn from small pools of popular accounts, blocks and transactions.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::future::join_all;
use http_body_util::{BodyExt, Full};
use serde_json::{json, Value};

use super::{tapped, Tapped};
use crate::support::*;

const CLIENTS: usize = 8;
const CALLS_PER_CLIENT: usize = 300;
/// A new block every this many client calls (of all clients together).
const BLOCK_EVERY: usize = 400;

fn production_intervals(yaml: &str) -> String {
    yaml.replace("ws_poll_interval: 200ms", "ws_poll_interval: 2s")
        .replace("poll_interval: 50ms", "poll_interval: 500ms")
        .replace(
            "finality_poll_interval: 200ms",
            "finality_poll_interval: 3s",
        )
        .replace("syncing_poll_interval: 500ms", "syncing_poll_interval: 5s")
}

/// One call of the mix, drawn with `rng` against the chain at `head`.
/// Without `latest`, the reads of the present are explicit recent blocks.
fn draw(
    rng: &mut fastrand::Rng,
    head: u64,
    txs: &[String],
    hashes: &[String],
    latest: bool,
) -> (String, Value) {
    let old = |rng: &mut fastrand::Rng| hex(1 + rng.u64(..20));
    let recent = |rng: &mut fastrand::Rng| hex(head - rng.u64(..8));
    let now = |rng: &mut fastrand::Rng| {
        if latest {
            json!("latest")
        } else {
            json!(recent(rng))
        }
    };
    let account = |rng: &mut fastrand::Rng| [OTHER, DEV][rng.usize(..2)];
    let (m, p) = match rng.u32(..100) {
        0..=9 => (
            "eth_call",
            json!([{"to": account(rng), "data": "0x"}, now(rng)]),
        ),
        10..=19 => (
            "eth_call",
            json!([{"to": account(rng), "data": "0x"}, recent(rng)]),
        ),
        20..=24 => (
            "eth_call",
            json!([{"to": account(rng), "data": "0x"}, old(rng)]),
        ),
        25..=39 => (
            "eth_getTransactionReceipt",
            json!([txs[rng.usize(..txs.len())]]),
        ),
        40..=44 => ("eth_getBlockReceipts", json!([old(rng)])),
        45..=49 => ("eth_getBlockByNumber", json!([now(rng), false])),
        50..=59 => ("eth_getBlockByNumber", json!([recent(rng), false])),
        60..=64 => ("eth_getBlockByNumber", json!([old(rng), true])),
        65..=74 => (
            "eth_getBlockByHash",
            json!([hashes[rng.usize(..hashes.len())], false]),
        ),
        75..=79 => ("eth_getBalance", json!([account(rng), now(rng)])),
        80..=89 => ("eth_getBalance", json!([account(rng), recent(rng)])),
        _ => ("eth_getBalance", json!([account(rng), old(rng)])),
    };
    (m.to_string(), p)
}

#[tokio::test]
async fn a_read_heavy_mix_makes_few_upstream_calls() {
    // 90 blocks: anvil finalizes 64 blocks behind its head, so the oldest are final.
    let t: Tapped = tapped(1, &["confirmations: 3"], false).await;
    let mut txs = Vec::new();
    for _ in 0..30 {
        txs.push(t.fleet.transfer(OTHER, 3).await.unwrap().1);
        t.fleet.mine_blocks(3).await.unwrap();
    }
    let head = t.fleet.height().await;
    // The setup's gateway polls at test speed: measure with a fresh one.
    let Tapped {
        fleet,
        taps,
        gw: setup,
    } = t;
    drop(setup);
    let ups: Vec<Up> = taps
        .iter()
        .enumerate()
        .map(|(i, tap)| up(&format!("r{i}"), tap.url(), Some(fleet.ws_url(i))))
        .collect();
    let y = with_cache(&yaml(fleet.chain_id(), &ups, ""), &["confirmations: 3"]);
    let y = production_intervals(&y);
    let mut hashes = Vec::new();
    for n in (head - 40..head).step_by(4) {
        hashes.push(fleet.block_hash(0, n).await.unwrap().unwrap());
    }

    // Each mix against a fresh gateway: a cold cache.
    let explicit = run_mix(&y, &fleet, &taps, &txs, &hashes, false).await;
    let with_latest = run_mix(&y, &fleet, &taps, &txs, &hashes, true).await;
    eprintln!(
        "read-heavy mix: explicit recent and old blocks {explicit:.3}, with 20% latest reads {with_latest:.3} upstream calls per client call (trackers and reorg loop included)"
    );
    let ratio = explicit;
    assert!(ratio <= 0.3, "{ratio:.3} upstream calls per client call");
}

/// Runs the mix from `CLIENTS` concurrent clients; returns upstream calls per client call.
async fn run_mix(
    config: &str,
    fleet: &rpcgate_fleet::Fleet,
    taps: &[rpcgate_fleet::Tap],
    txs: &[String],
    hashes: &[String],
    latest: bool,
) -> f64 {
    let gw = start_gateway(config).await;
    wait_synced(&gw, 3, fleet.height().await).await;
    super::wait_cache_current(&gw).await;
    let finalized = gw.network().view().finalized.unwrap_or(0);
    taps.iter().for_each(|tap| tap.reset());
    let done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let url = gw.url.clone();
    let (txs, hashes) = (txs.to_vec(), hashes.to_vec());
    let clients = (0..CLIENTS).map(|c| {
        let (url, txs, hashes, done, fleet) = (
            url.clone(),
            txs.clone(),
            hashes.clone(),
            done.clone(),
            fleet.clone(),
        );
        async move {
            let client = client();
            let mut rng = fastrand::Rng::with_seed(c as u64 + 1);
            for _ in 0..CALLS_PER_CLIENT {
                let head = fleet.height().await;
                let (m, p) = draw(&mut rng, head, &txs, &hashes, latest);
                let body = json!({"jsonrpc": "2.0", "id": 1, "method": m, "params": p});
                let req = http::Request::post(&url)
                    .header("content-type", "application/json")
                    .body(Full::new(Bytes::from(body.to_string())))
                    .unwrap();
                let answer = client
                    .request(req)
                    .await
                    .unwrap()
                    .into_body()
                    .collect()
                    .await;
                let v: Value = serde_json::from_slice(&answer.unwrap().to_bytes()).unwrap();
                assert!(v.get("error").is_none(), "{m} {p}: {v}");
                let n = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                if n % BLOCK_EVERY == 0 {
                    fleet.transfer(OTHER, 1).await.unwrap();
                    fleet.mine().await.unwrap();
                }
            }
        }
    });
    join_all(clients).await;
    let calls = (CLIENTS * CALLS_PER_CLIENT) as f64;
    let upstream = taps.iter().map(|tap| tap.total()).sum::<u64>() as f64;
    let ratio = upstream / calls;
    let c = gw
        .network()
        .cache
        .clone()
        .expect("the cache is on")
        .counts();
    eprintln!(
        "mix (latest: {latest}): {calls} client calls, {upstream} upstream calls: {ratio:.3} per client call; finalized {finalized} at start; {c:?}"
    );
    ratio
}
