//! The in-memory store: a moka cache bounded by bytes.
//!
//! Each entry weighs its key, its result and its binding, plus a fixed
//! overhead for the map's own bookkeeping, so `max_bytes` bounds what the
//! answers really hold. moka admits and evicts by TinyLFU: a flood of
//! one-off answers does not push out the ones clients keep asking for.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;

use super::key::Key;
use super::Stats;
use crate::eth::Hash;
use crate::upstream::chain::Canon;

/// Bytes charged per entry beyond its key and value (map node, Arc headers).
pub(super) const ENTRY_OVERHEAD: usize = 96;

/// What an answer stays valid for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Bind {
    /// Valid for good (a constant, or a read of a finalized block).
    Final,
    /// Valid while blocks `from..` still have these hashes.
    Blocks { from: u64, hashes: Arc<[Hash]> },
    /// A read of the block with this hash: what a block holds under its hash
    /// never changes, so it is valid from the first answer, before the
    /// chain the cache follows knows the block, and until a chain it follows
    /// has another block at that height (a reorg replaced it).
    Hash { number: u64, hash: Hash },
}

impl Bind {
    pub(super) fn block(number: u64, hash: Hash) -> Bind {
        Bind::Blocks {
            from: number,
            hashes: Arc::new([hash]),
        }
    }

    /// Whether the answer may be served under `canon` with `finalized` final.
    pub(super) fn holds(&self, canon: &Canon, current: bool, finalized: Option<u64>) -> bool {
        match self {
            Bind::Final => true,
            Bind::Blocks { from, hashes } => {
                current
                    && hashes
                        .iter()
                        .zip(*from..)
                        .all(|(h, n)| match canon.hash(n) {
                            Some(known) => known == h,
                            // Below the window: only a final block stays valid.
                            None => finalized.is_some_and(|f| n <= f),
                        })
            }
            Bind::Hash { number, hash } => match canon.hash(*number) {
                Some(known) => current && known == hash,
                None => true,
            },
        }
    }

    fn touches(&self, replaced: &[(u64, Hash)]) -> bool {
        match self {
            Bind::Final => false,
            Bind::Blocks { from, hashes } => hashes
                .iter()
                .zip(*from..)
                .any(|(h, n)| replaced.iter().any(|(rn, rh)| *rn == n && rh == h)),
            Bind::Hash { number, hash } => replaced.iter().any(|(n, h)| n == number && h == hash),
        }
    }

    fn weight(&self) -> usize {
        match self {
            Bind::Final => 0,
            Bind::Blocks { hashes, .. } => 32 * hashes.len(),
            Bind::Hash { .. } => 40,
        }
    }
}

/// A cached answer: the raw `result` text and what it is bound to.
#[derive(Debug, Clone)]
pub(super) struct Stored {
    pub result: Bytes,
    pub bind: Bind,
}

/// Keys are hashed with foldhash (seeded per process) rather than SipHash:
/// a call hashes its key several times (look up, join, store), and SipHash
/// was the larger part of that.
pub(super) type Hasher = foldhash::fast::RandomState;

pub(super) struct Store {
    entries: moka::future::Cache<Key, Stored, Hasher>,
}

impl Store {
    pub(super) fn new(max_bytes: u64, stats: Arc<Stats>) -> Store {
        let entries = moka::future::Cache::builder()
            .max_capacity(max_bytes)
            .weigher(|k: &Key, e: &Stored| u32::try_from(weight(k, e)).unwrap_or(u32::MAX))
            .support_invalidation_closures()
            .eviction_listener(move |_, _, cause| {
                if cause == moka::notification::RemovalCause::Size {
                    stats.evicted_by_size.fetch_add(1, Ordering::Relaxed);
                }
            })
            .build_with_hasher(Hasher::default());
        Store { entries }
    }

    pub(super) async fn get(&self, key: &str) -> Option<Stored> {
        self.entries.get(key).await
    }

    pub(super) async fn insert(&self, key: Key, entry: Stored) {
        self.entries.insert(key, entry).await;
    }

    /// Drops every entry bound to a replaced block (applied by moka in the
    /// background; hits check their binding meanwhile).
    pub(super) fn evict_bound_to(&self, replaced: Vec<(u64, Hash)>, stats: Arc<Stats>) {
        let registered = self.entries.invalidate_entries_if(move |_, e| {
            let hit = e.bind.touches(&replaced);
            if hit {
                stats.evicted_by_reorg.fetch_add(1, Ordering::Relaxed);
            }
            hit
        });
        if let Err(e) = registered {
            tracing::warn!(error = %e, "cache: could not register reorg eviction");
        }
    }

    /// The weight of all entries, in bytes, once moka's pending work is done.
    pub(super) async fn weighted_bytes(&self) -> u64 {
        self.entries.run_pending_tasks().await;
        self.entries.weighted_size()
    }

    /// The weight and count of entries as last accounted, without waiting
    /// for moka's pending work: for metrics, read at scrape time.
    pub(super) fn size_now(&self) -> (u64, u64) {
        (self.entries.weighted_size(), self.entries.entry_count())
    }

    pub(super) async fn len(&self) -> u64 {
        self.entries.run_pending_tasks().await;
        self.entries.entry_count()
    }
}

fn weight(k: &Key, e: &Stored) -> usize {
    k.len() + e.result.len() + e.bind.weight() + ENTRY_OVERHEAD
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_byte_bound_holds() {
        let stats = Arc::new(Stats::default());
        let store = Store::new(64 * 1024, stats.clone());
        for i in 0..200 {
            let key = Key::new("eth_call", Some(&format!("[{i}]")));
            let entry = Stored {
                result: Bytes::from(vec![b'a'; 4000]),
                bind: Bind::Final,
            };
            store.insert(key, entry).await;
        }
        let bytes = store.weighted_bytes().await;
        assert!(bytes <= 64 * 1024, "{bytes} bytes");
        assert!(bytes > 0);
        assert!(stats.evicted_by_size.load(Ordering::Relaxed) > 0);
    }

    #[test]
    fn bindings_follow_the_chain() {
        let h = |x: u8| [x; 32];
        let bind = Bind::block(7, h(1));
        let empty = Canon::default();
        assert!(Bind::Final.holds(&empty, false, None));
        assert!(
            !bind.holds(&empty, false, Some(9)),
            "a stale chain serves no bound entry"
        );
        assert!(
            bind.holds(&empty, true, Some(7)),
            "final and below the window"
        );
        assert!(!bind.holds(&empty, true, Some(6)));
        assert!(bind.touches(&[(7, h(1))]));
        assert!(!bind.touches(&[(7, h(2))]));
        assert!(!bind.touches(&[(8, h(1))]));
    }
}
