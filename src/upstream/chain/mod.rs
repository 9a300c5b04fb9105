//! The canonical chain: the hashes of the recent blocks, as the served head
//! reached them. The cache binds entries to it and the gateway's filters read
//! their logs and blocks against it.
//!
//! An entry for a block that is not final yet is bound to that block's hash.
//! A hit is served only when this chain still has that hash at that height,
//! and only when the chain was rebuilt for the very view the request reads
//! (same served head, same count of reorgs seen by the head trackers): in the
//! moment between a reorg being seen and the chain being read again, bound
//! entries are misses, never stale hits.
//!
//! The chain is rebuilt by the reorg control loop ([`follow()`]), never by
//! the request path, and published as an immutable snapshot. It covers at most
//! [`CACHE_CANON_WINDOW`](crate::config::CACHE_CANON_WINDOW) blocks below the served head. A first
//! read stops above the finalized block; known blocks are kept below it, and
//! read again there when a reorg replaced one: a node's `finalized` may be
//! shallower than its reorgs (a devnet, anvil with one slot per epoch), and
//! a filter must see every block it delivered replaced ([`rebuild_above`]).

use std::future::Future;

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::eth::Hash;
use crate::upstream::NetworkView;

mod follow;

pub use follow::follow;

/// What a view says about the chain: its served head and the reorgs its
/// trackers have counted. A chain built for another stamp is not trusted.
pub fn stamp_of(view: &NetworkView) -> Option<(u64, u64)> {
    let served = view.served_head?;
    Some((served, view.backends.iter().map(|b| b.state.reorgs).sum()))
}

/// An immutable snapshot of the recent canonical hashes.
#[derive(Debug, Clone, Default)]
pub struct Canon {
    /// The view this chain was read for.
    pub stamp: Option<(u64, u64)>,
    /// Height of `hashes[0]`.
    base: u64,
    hashes: Vec<Hash>,
    /// Bumped whenever a known hash was replaced.
    pub generation: u64,
}

impl Canon {
    pub fn hash(&self, n: u64) -> Option<&Hash> {
        let i = n.checked_sub(self.base)?;
        self.hashes.get(usize::try_from(i).ok()?)
    }

    /// The height of a recent block, by hash.
    pub fn number_of(&self, h: &Hash) -> Option<u64> {
        self.hashes
            .iter()
            .position(|x| x == h)
            .map(|i| self.base + i as u64)
    }

    /// The lowest height this chain knows.
    pub fn base(&self) -> u64 {
        self.base
    }

    /// The highest height this chain knows (the served head it was read for).
    pub fn top(&self) -> Option<u64> {
        (!self.hashes.is_empty()).then(|| self.base + self.hashes.len() as u64 - 1)
    }

    pub fn is_current(&self, view: &NetworkView) -> bool {
        self.stamp.is_some() && self.stamp == stamp_of(view)
    }

    fn iter(&self) -> impl Iterator<Item = (u64, &Hash)> {
        self.hashes
            .iter()
            .enumerate()
            .map(|(i, h)| (self.base + i as u64, h))
    }
}

/// A block header as the reorg loop reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub number: u64,
    pub hash: Hash,
    pub parent: Hash,
}

/// Reads the chain from `top` down until it meets `old` (or reaches `lower`)
/// and returns the new chain, covering `lower..=top` at most, with the blocks
/// of `old` that it replaced. Only the blocks that changed are fetched: one
/// header per new block, plus one per replaced block on a reorg.
pub async fn rebuild<F, Fut>(
    old: &Canon,
    top: u64,
    lower: u64,
    fetch: F,
) -> Result<(Canon, Vec<(u64, Hash)>), String>
where
    F: FnMut(u64) -> Fut,
    Fut: Future<Output = Result<Header, String>>,
{
    rebuild_above(old, top, lower, lower, fetch).await
}

/// [`rebuild`], where `lower` (the block above the finalized one) is where
/// a first read stops and `floor` (at or below it: the window's depth) is
/// how deep known blocks are kept. Below `lower` the chain is read only to
/// meet the known one: when the block read at `lower` does not sit on the
/// known block below it (a node's finalized block was replaced after all: a
/// shallow `finalized`, as a devnet or anvil with one slot per epoch reports
/// it), or blocks came faster than this loop. Cutting the window at
/// `lower` would forget a replaced block, and a filter that delivered it
/// would never see its replacement.
pub async fn rebuild_above<F, Fut>(
    old: &Canon,
    top: u64,
    lower: u64,
    floor: u64,
    mut fetch: F,
) -> Result<(Canon, Vec<(u64, Hash)>), String>
where
    F: FnMut(u64) -> Fut,
    Fut: Future<Output = Result<Header, String>>,
{
    let lower = lower.min(top);
    let floor = floor.min(lower);
    let mut fresh: Vec<Header> = Vec::new(); // from the top down
    let mut n = top;
    let mut expect: Option<Hash> = None;
    loop {
        let header = fetch(n).await?;
        if header.number != n || expect.is_some_and(|e| e != header.hash) {
            return Err(format!("the chain changed while block {n} was read"));
        }
        let parent = header.parent;
        fresh.push(header);
        if n == floor || old.hash(n - 1) == Some(&parent) {
            break;
        }
        // Below finality, read on only to meet the known chain: a replaced
        // block of it, or the blocks between it and the fresh ones.
        let meets = old.top().is_some_and(|t| t >= floor && old.base() < n);
        if n <= lower && !meets {
            break;
        }
        expect = Some(parent);
        n -= 1;
    }
    let low = n;
    let fresh_hash = |m: u64| -> Option<&Hash> {
        (low..=top)
            .contains(&m)
            .then(|| &fresh[(top - m) as usize].hash)
    };
    let replaced: Vec<(u64, Hash)> = old
        .iter()
        .filter(|(m, h)| *m >= low && fresh_hash(*m) != Some(*h))
        .map(|(m, h)| (m, *h))
        .collect();
    // Only blocks that join the fresh ones (a chain has no holes).
    let joins = low > 0 && old.hash(low - 1).is_some();
    let kept: Vec<Hash> = old
        .iter()
        .filter(|(m, _)| joins && *m >= floor && *m < low)
        .map(|(_, h)| *h)
        .collect();
    let base = low - kept.len() as u64;
    let mut hashes = kept;
    hashes.extend(fresh.iter().rev().map(|h| h.hash));
    let generation = old.generation + u64::from(!replaced.is_empty());
    Ok((
        Canon {
            stamp: None,
            base,
            hashes,
            generation,
        },
        replaced,
    ))
}

/// Follows the canonical chain of a network whose cache is off, for the
/// gateway's filters: the same reorg loop, with nothing to evict.
pub fn follow_alone(
    network: &str,
    view: Arc<ArcSwap<NetworkView>>,
    published: watch::Receiver<()>,
    probe_timeout: Duration,
) -> (Arc<ArcSwap<Canon>>, JoinHandle<()>) {
    let chain = Arc::new(ArcSwap::from_pointee(Canon::default()));
    let task = tokio::spawn(follow(
        network.to_string(),
        chain.clone(),
        view,
        published,
        probe_timeout,
        |_| {},
    ));
    (chain, task)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn h(fork: u8, n: u64) -> Hash {
        let mut x = [0u8; 32];
        x[0] = fork;
        x[24..].copy_from_slice(&n.to_be_bytes());
        x
    }

    /// A chain where blocks above `fork_at` belong to fork `fork`.
    fn chain(fork: u8, fork_at: u64, top: u64) -> HashMap<u64, Header> {
        let id = |n: u64| if n > fork_at { h(fork, n) } else { h(0, n) };
        (0..=top)
            .map(|n| {
                let parent = if n == 0 { [0; 32] } else { id(n - 1) };
                (
                    n,
                    Header {
                        number: n,
                        hash: id(n),
                        parent,
                    },
                )
            })
            .collect()
    }

    async fn build(
        old: &Canon,
        c: &HashMap<u64, Header>,
        top: u64,
        lower: u64,
    ) -> (Canon, Vec<(u64, Hash)>, usize) {
        let mut calls = 0;
        let (canon, replaced) = rebuild(old, top, lower, |n| {
            calls += 1;
            let got = c.get(&n).cloned().ok_or_else(|| "missing".to_string());
            async move { got }
        })
        .await
        .unwrap();
        (canon, replaced, calls)
    }

    #[tokio::test]
    async fn follows_new_blocks_with_one_read_each() {
        let c = chain(0, 100, 20);
        let (canon, replaced, calls) = build(&Canon::default(), &c, 10, 3).await;
        assert_eq!(calls, 8, "the first build reads the window");
        assert!(replaced.is_empty());
        assert_eq!(canon.hash(3), Some(&h(0, 3)));
        assert_eq!(canon.hash(2), None);
        assert_eq!(canon.hash(11), None);
        assert_eq!(canon.number_of(&h(0, 7)), Some(7));
        let (canon, replaced, calls) = build(&canon, &c, 12, 5).await;
        assert_eq!(calls, 2);
        assert!(replaced.is_empty());
        assert_eq!(canon.hash(4), None, "below the window");
        assert_eq!(canon.hash(5), Some(&h(0, 5)));
        assert_eq!(canon.hash(12), Some(&h(0, 12)));
        assert_eq!(canon.generation, 0);
    }

    #[tokio::test]
    async fn a_reorg_replaces_exactly_the_forked_blocks() {
        let (canon, _, _) = build(&Canon::default(), &chain(0, 100, 12), 12, 5).await;
        // Blocks 10..=12 replaced, the new chain as long as the old.
        let (next, mut replaced, calls) = build(&canon, &chain(1, 9, 12), 12, 5).await;
        replaced.sort();
        assert_eq!(
            replaced,
            vec![(10, h(0, 10)), (11, h(0, 11)), (12, h(0, 12))]
        );
        assert_eq!(calls, 3);
        assert_eq!(next.hash(11), Some(&h(1, 11)));
        assert_eq!(next.hash(9), Some(&h(0, 9)));
        assert_eq!(next.generation, 1);
        // A shorter chain: the blocks above its top are replaced too.
        let (after, replaced, _) = build(&next, &chain(2, 8, 10), 10, 5).await;
        assert_eq!(replaced.len(), 4);
        assert_eq!(after.hash(11), None);
        assert_eq!(after.hash(9), Some(&h(2, 9)));
    }

    #[tokio::test]
    async fn a_replaced_finalized_block_is_read_and_the_window_keeps_its_depth() {
        let fetch = |c: HashMap<u64, Header>| {
            move |n: u64| {
                let got = c.get(&n).cloned().ok_or_else(|| "missing".to_string());
                async move { got }
            }
        };
        let (canon, _) = rebuild_above(&Canon::default(), 12, 11, 3, fetch(chain(0, 100, 12)))
            .await
            .unwrap();
        assert_eq!(canon.base(), 11, "the first build reads down to finality");
        let (canon, _) = rebuild_above(&canon, 14, 13, 5, fetch(chain(0, 100, 14)))
            .await
            .unwrap();
        assert_eq!(canon.base(), 11, "known blocks are kept below finality");
        // Finality says 12; blocks 12..=14 are replaced all the same.
        let (next, mut replaced) = rebuild_above(&canon, 14, 13, 5, fetch(chain(1, 11, 14)))
            .await
            .unwrap();
        replaced.sort();
        assert_eq!(
            replaced,
            vec![(12, h(0, 12)), (13, h(0, 13)), (14, h(0, 14))]
        );
        assert_eq!(next.hash(12), Some(&h(1, 12)));
        assert_eq!(next.hash(11), Some(&h(0, 11)));
        assert_eq!(next.base(), 11);
        // Blocks faster than the loop: the gap below finality is read.
        let (later, _) = rebuild_above(&next, 18, 17, 5, fetch(chain(1, 11, 18)))
            .await
            .unwrap();
        assert_eq!(later.base(), 11);
        assert_eq!(later.hash(15), Some(&h(1, 15)));
    }

    #[tokio::test]
    async fn a_chain_that_moves_while_read_is_an_error() {
        let old = Canon::default();
        let a = chain(0, 100, 12);
        let b = chain(1, 5, 12);
        let r = rebuild(&old, 12, 5, |n| {
            // The top comes from fork 1, the rest from fork 0.
            let got = if n == 12 {
                b[&n].clone()
            } else {
                a[&n].clone()
            };
            async move { Ok(got) }
        })
        .await;
        assert!(r.is_err());
    }
}
