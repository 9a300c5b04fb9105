//! A validator client through the gateway: a `lodestar validator` with the 8
//! interop keys (the only validators of the chain) does every duty through
//! the gateway's own listener, in front of three Lodestar beacon nodes that
//! run no validators, while nodes behind the gateway are killed (SIGKILL)
//! and started again on an empty data directory. Blocks must keep coming
//! after every kill and after the node serves again; with
//! `RPCGATE_VC_CHECKPOINT=justified` (or `finalized`) the run then waits for
//! that checkpoint to move past where it was at the first kill.
//! Missed slots are counted per failover, from the kill to two slots after
//! the node serves again, and before the first kill as the baseline.
//!
//! The suite runs one failover and no checkpoint wait (about two minutes, a
//! minute of it the genesis delay); `scripts/beacon-failover` runs more
//! (`RPCGATE_VC_FAILOVERS`) and waits for finality. Three nodes, because a
//! Lodestar node without peers calls itself stalled (syncing): with two,
//! killing one would take the other out too.

use std::time::{Duration, Instant};

use crate::chain::{get_bytes, get_json, Chain};
use crate::{start_gateway_over, Running, DEVNETS, KEY};

/// What the run waits for after the failovers (`RPCGATE_VC_CHECKPOINT`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Checkpoint {
    /// Nothing (the suite: the justified checkpoint first moves at slot 24, 96 s in).
    None,
    /// The justified checkpoint past where it was at the first kill.
    Justified,
    /// The finalized one too.
    Finalized,
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn slot_of(v: &serde_json::Value) -> Option<u64> {
    v["data"]["header"]["message"]["slot"]
        .as_str()?
        .parse()
        .ok()
}

async fn head_slot(node: &str) -> Option<u64> {
    slot_of(&get_json(&format!("{node}/eth/v1/beacon/headers/head")).await?)
}

/// (justified, finalized) epochs of the node's head state.
async fn checkpoints(node: &str) -> Option<(u64, u64)> {
    let v = get_json(&format!(
        "{node}/eth/v1/beacon/states/head/finality_checkpoints"
    ))
    .await?;
    let epoch = |k: &str| v["data"][k]["epoch"].as_str()?.parse::<u64>().ok();
    Some((epoch("current_justified")?, epoch("finalized")?))
}

/// Slots in `from..to` without a block, as `node` sees its canonical chain.
async fn missed(node: &str, from: u64, to: u64) -> Vec<u64> {
    let mut missed = Vec::new();
    for slot in from..to {
        if get_json(&format!("{node}/eth/v1/beacon/headers/{slot}"))
            .await
            .is_none()
        {
            missed.push(slot);
        }
    }
    missed
}

/// Waits for `ok`, polling every 200 ms, for at most `slots` slots; on
/// timeout fails with the logs of the validator client and every node.
async fn wait_for<F, Fut>(chain: &Chain, what: &str, slots: u64, mut ok: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(slots * chain.slot_seconds);
    while !ok().await {
        if Instant::now() > deadline {
            let mut logs = format!("validator client:\n{}\n", chain.log_tail(None));
            for i in 0..chain.urls.len() {
                logs += &format!("node {}:\n{}\n", i + 1, chain.log_tail(Some(i)));
            }
            panic!("timed out waiting for: {what}\n{logs}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn eligible(gw: &Running) -> Vec<String> {
    let net = gw.gateway.beacon().by_name["lh"].clone();
    let snap = net.snapshot();
    snap.eligible().map(|v| v.node.name.clone()).collect()
}

fn subscriptions_accepted(gw: &Running, node: usize) -> u64 {
    let net = gw.gateway.beacon().by_name["lh"].clone();
    let snap = net.snapshot();
    snap.nodes[node]
        .node
        .subscriptions
        .accepted
        .load(std::sync::atomic::Ordering::Relaxed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validator_client_through_the_gateway() {
    let _one_devnet_at_a_time = DEVNETS.lock().await;
    let started = Instant::now();
    let failovers = env_usize("RPCGATE_VC_FAILOVERS", 1);
    let checkpoint = match std::env::var("RPCGATE_VC_CHECKPOINT").as_deref() {
        Ok("finalized") => Checkpoint::Finalized,
        Ok("justified") => Checkpoint::Justified,
        _ => Checkpoint::None,
    };
    let Some(mut chain) = Chain::start(3).await else {
        return;
    };
    let gw = start_gateway_over(&chain.urls).await;
    // The key in the base URL: the validator client sends no headers of its own.
    chain.start_validator(&format!("{}/{KEY}", gw.own));
    let watch = chain.urls[0].clone();
    let slots_to_start = chain.genesis_time.saturating_sub(now_secs()) / chain.slot_seconds + 8;
    wait_for(
        &chain,
        "the chain's first blocks, produced through the gateway (on a loaded machine: raise GENESIS_DELAY)",
        slots_to_start,
        || async { head_slot(&watch).await.is_some_and(|s| s >= 4) },
    )
    .await;
    let first_kill = chain.clock_slot();
    let baseline = missed(&watch, 1, first_kill).await;
    let (justified_at_start, finalized_at_start) = checkpoints(&watch).await.unwrap();
    let mut report = vec![format!(
        "baseline: {} of {} slots missed before the first kill {baseline:?}",
        baseline.len(),
        first_kill.saturating_sub(1)
    )];
    for f in 0..failovers {
        // Nodes 2 and 3 in turn: node 1 is the others' boot node and the watch.
        let victim = 1 + f % 2;
        let name = format!("n{}", victim + 1);
        let kill_slot = chain.clock_slot();
        chain.kill_node(victim);
        wait_for(&chain, &format!("{name} out of service"), 30, || async {
            !eligible(&gw).contains(&name)
        })
        .await;
        wait_for(&chain, "3 blocks after the kill", 30, || async {
            let Some(head) = head_slot(&watch).await else {
                return false;
            };
            let slots = head.saturating_sub(kill_slot);
            let lost = missed(&watch, kill_slot + 1, head + 1).await.len() as u64;
            slots.saturating_sub(lost) >= 3
        })
        .await;
        let before = subscriptions_accepted(&gw, victim);
        chain.start_node(victim);
        wait_for(&chain, &format!("{name} serving again"), 120, || async {
            eligible(&gw).len() == 3
        })
        .await;
        let rejoin_slot = chain.clock_slot();
        wait_for(&chain, "2 blocks after the rejoin", 30, || async {
            let Some(head) = head_slot(&watch).await else {
                return false;
            };
            let slots = head.saturating_sub(rejoin_slot);
            let lost = missed(&watch, rejoin_slot + 1, head + 1).await.len() as u64;
            head >= rejoin_slot + 2 && slots.saturating_sub(lost) >= 2
        })
        .await;
        let lost = missed(&watch, kill_slot, rejoin_slot + 2).await;
        report.push(format!(
            "failover {}: {name} killed at slot {kill_slot}, serving again at {rejoin_slot}: {} of {} slots missed {lost:?}; the node accepted {} subscriptions since",
            f + 1,
            lost.len(),
            rejoin_slot + 2 - kill_slot,
            subscriptions_accepted(&gw, victim) - before
        ));
    }
    match checkpoint {
        Checkpoint::None => {}
        Checkpoint::Justified | Checkpoint::Finalized => {
            let finality = checkpoint == Checkpoint::Finalized;
            let what = if finality {
                format!("finalized epoch past {finalized_at_start}")
            } else {
                format!("justified epoch past {justified_at_start}")
            };
            wait_for(&chain, &what, 40, || async {
                checkpoints(&watch).await.is_some_and(|(j, fin)| {
                    j > justified_at_start && (!finality || fin > finalized_at_start)
                })
            })
            .await;
        }
    }
    let (j, fin) = checkpoints(&watch).await.unwrap();
    report.push(format!(
        "checkpoints: justified {justified_at_start} -> {j}, finalized {finalized_at_start} -> {fin}; head slot {:?}; run time {:.0} s",
        head_slot(&watch).await,
        started.elapsed().as_secs_f64()
    ));
    eprintln!(
        "validator client through the gateway:\n  {}",
        report.join("\n  ")
    );
    shipped_beacon_queries_read_exported_names(&gw).await;
}

/// Every `rpcgate_beacon_*` name the shipped dashboard and alert rules read
/// is exported by a gateway whose beacon nodes answer (the gateway tests'
/// Prometheus check has no beacon node, so it leaves these names to this test).
async fn shipped_beacon_queries_read_exported_names(gw: &Running) {
    let text = get_bytes(&format!("{}/metrics", gw.admin)).await.unwrap();
    let text = String::from_utf8_lossy(&text);
    let exported: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    let mut read = 0;
    for file in [
        "k8s/monitoring/grafana-dashboard.json",
        "k8s/monitoring/alerts.yaml",
    ] {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
        let shipped = std::fs::read_to_string(path).unwrap();
        for name in shipped
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|w| w.starts_with("rpcgate_beacon_"))
        {
            read += 1;
            assert!(
                exported.contains(&name),
                "{file} reads {name}, which rpcgate does not export"
            );
        }
    }
    assert!(read > 0, "the shipped files read beacon metrics");
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}
