//! The reorg control loop: keeps the canonical chain ([`super`]) in step
//! with the network view, and tells its owner which blocks a reorg replaced
//! (the cache evicts the entries bound to them). The same loop runs alone,
//! with nobody to tell, for the gateway's filters when a network's cache is
//! off ([`super::follow_alone`]).
//!
//! It wakes whenever the view builder publishes. When the view's stamp (served
//! head, reorgs counted by the trackers) differs from the chain's, it reads
//! headers from a backend at the served head, from the top down until it
//! meets the chain it knew: one header per new block, a few more on a reorg.
//! The new chain is published first (from then on, bound entries of replaced
//! blocks are misses), then those entries are dropped from the store. The
//! request path never waits for this loop: until it catches up, bound entries
//! are simply misses.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use serde::Deserialize;
use tokio::sync::watch;

use super::{rebuild_above, stamp_of, Canon, Header};
use crate::config::CACHE_CANON_WINDOW as CANON_WINDOW;
use crate::eth::{parse_hash, parse_quantity, Hash};
use crate::upstream::{Backend, NetworkView};

/// Wait before trying again after a failed read of the chain.
const RETRY: Duration = Duration::from_millis(200);

/// Keeps `chain` in step with `view`, calling `replaced` with the blocks a
/// reorg replaced once the new chain is published. `network` names the
/// network in logs.
pub async fn follow(
    network: String,
    chain: Arc<ArcSwap<Canon>>,
    view: Arc<ArcSwap<NetworkView>>,
    mut published: watch::Receiver<()>,
    probe_timeout: Duration,
    replaced: impl Fn(Vec<(u64, Hash)>) + Send,
) {
    loop {
        let v = view.load_full();
        let mut failed = false;
        if let Some(stamp) = stamp_of(&v) {
            if chain.load().stamp != Some(stamp) {
                match refresh(&chain, &v, stamp, probe_timeout).await {
                    Ok(blocks) if blocks.is_empty() => {}
                    Ok(blocks) => {
                        tracing::info!(
                            network = %network, blocks = blocks.len(),
                            "reorg replaced blocks; dropping what was bound to them"
                        );
                        replaced(blocks);
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "could not read the chain; bound entries are misses until it can");
                        failed = true;
                    }
                }
            }
        }
        if failed {
            tokio::select! {
                _ = tokio::time::sleep(RETRY) => continue,
                changed = published.changed() => if changed.is_err() { return },
            }
        } else if published.changed().await.is_err() {
            return;
        }
    }
}

/// Reads the chain for `stamp` and publishes it; returns the replaced blocks.
async fn refresh(
    chain: &ArcSwap<Canon>,
    view: &NetworkView,
    stamp: (u64, u64),
    timeout: Duration,
) -> Result<Vec<(u64, Hash)>, String> {
    let served = stamp.0;
    let old = chain.load_full();
    // Prefer a backend exactly at the served head whose head differs from
    // what we knew: it has seen the change this refresh is about.
    let backend = view
        .eligible()
        .filter(|b| b.head >= served && !b.backend.is_ejected())
        .min_by_key(|b| {
            let changed = b.state.latest.as_ref().and_then(|l| {
                let known = old.hash(l.number)?;
                Some(parse_hash(&l.hash).as_ref() != Some(known))
            });
            (b.head, !changed.unwrap_or(true))
        })
        .map(|b| b.backend.clone())
        .ok_or("no backend at the served head")?;
    let floor = served.saturating_sub(CANON_WINDOW - 1);
    let lower = match view.finalized {
        Some(f) => floor.max(f.saturating_add(1).min(served)),
        None => floor,
    };
    let (mut next, replaced) = rebuild_above(&old, served, lower, floor, |n| {
        header(backend.clone(), n, timeout)
    })
    .await?;
    next.stamp = Some(stamp);
    chain.store(Arc::new(next));
    Ok(replaced)
}

async fn header(backend: Arc<Backend>, n: u64, timeout: Duration) -> Result<Header, String> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Wire {
        number: String,
        hash: String,
        parent_hash: String,
    }
    let params = format!("[\"0x{n:x}\",false]");
    let reply = backend
        .exchange("eth_getBlockByNumber", Some(&params), timeout)
        .await
        .map_err(|e| e.to_string())?;
    let wire = reply
        .parse_result::<Option<Wire>>()
        .flatten()
        .ok_or_else(|| format!("{} has no block {n}", backend.name))?;
    match (
        parse_quantity(&wire.number),
        parse_hash(&wire.hash),
        parse_hash(&wire.parent_hash),
    ) {
        (Some(number), Some(hash), Some(parent)) => Ok(Header {
            number,
            hash,
            parent,
        }),
        _ => Err(format!("{} sent an unreadable header", backend.name)),
    }
}
