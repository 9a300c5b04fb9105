//! The head store: answers bound to the served head, kept together and
//! dropped together when the head moves.
//!
//! Most reads a DApp makes name `latest`, which the pipeline pins to the
//! served head N, so most stored answers are good for one block (about 12 s
//! on mainnet) and are not asked for again once the head has passed. moka
//! would keep each of them until its byte bound pushes it out, and it charges
//! every insert for the bookkeeping it needs to choose what to evict (a lock
//! per key, the frequency sketch, the write queue): measured with callgrind,
//! that insert was the largest single part of what the pipeline spends on a
//! forwarded call. This store holds one *generation*: the answers bound to one
//! block (its number and hash) in a sharded map, bounded by bytes. An answer
//! for a later head starts a new generation, and the old one is dropped
//! whole, off the request path. An answer that finds the generation full is
//! not kept; the next block starts empty.
//!
//! A hit is served only for the generation's block, and the cache asks only
//! when that block is the served head with its hash in the chain the cache
//! follows (the check every block-bound entry gets), so a reorg that replaces
//! the head makes the whole generation a miss at once; the reorg loop then
//! drops it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;
use bytes::Bytes;
use dashmap::DashMap;

use super::key::Key;
use super::store::{Hasher, ENTRY_OVERHEAD};
use super::Stats;
use crate::eth::Hash;

/// How often an insert retries when another one swapped the generation
/// under it; past that the answer is simply not kept.
const SWAP_TRIES: usize = 3;

pub(super) struct HeadStore {
    current: ArcSwap<Generation>,
    max_bytes: usize,
    stats: Arc<Stats>,
}

/// The answers bound to one block.
struct Generation {
    number: u64,
    hash: Hash,
    entries: DashMap<Key, Bytes, Hasher>,
    /// What the entries weigh, as [`weight`] counts it.
    bytes: AtomicUsize,
}

impl Generation {
    fn new(number: u64, hash: Hash) -> Generation {
        Generation {
            number,
            hash,
            entries: DashMap::with_hasher(Hasher::default()),
            bytes: AtomicUsize::new(0),
        }
    }

    fn is(&self, number: u64, hash: &Hash) -> bool {
        self.number == number && self.hash == *hash
    }
}

fn weight(key: &str, result: &[u8]) -> usize {
    key.len() + result.len() + ENTRY_OVERHEAD
}

impl HeadStore {
    pub(super) fn new(max_bytes: u64, stats: Arc<Stats>) -> HeadStore {
        HeadStore {
            // Block 0 under an all-zero hash: no real block, so the first
            // answer starts a generation of its own.
            current: ArcSwap::from_pointee(Generation::new(0, [0; 32])),
            max_bytes: usize::try_from(max_bytes).unwrap_or(usize::MAX),
            stats,
        }
    }

    /// The answer kept for `key` at block `number` with `hash`.
    pub(super) fn get(&self, number: u64, hash: &Hash, key: &str) -> Option<Bytes> {
        let generation = self.current.load();
        if !generation.is(number, hash) {
            return None;
        }
        generation.entries.get(key).map(|e| e.value().clone())
    }

    /// Keeps `result` for `key` at block `number` with `hash`; whether it was
    /// kept (not when the generation is full, or a later block's is held).
    pub(super) fn insert(&self, number: u64, hash: Hash, key: Key, result: Bytes) -> bool {
        for _ in 0..SWAP_TRIES {
            let generation = self.current.load();
            if generation.is(number, &hash) {
                return self.keep(&generation, key, result);
            }
            // A caller on an older view than the generation's: not kept.
            if number < generation.number {
                return false;
            }
            // A later head, or another block at the same height (a reorg).
            let fresh = Arc::new(Generation::new(number, hash));
            let before = self.current.compare_and_swap(&*generation, fresh);
            if Arc::ptr_eq(&*before, &*generation) {
                retire(arc_swap::Guard::into_inner(generation));
            }
        }
        false
    }

    fn keep(&self, generation: &Generation, key: Key, result: Bytes) -> bool {
        let w = weight(key.as_str(), &result);
        if generation.bytes.fetch_add(w, Ordering::Relaxed) + w > self.max_bytes {
            generation.bytes.fetch_sub(w, Ordering::Relaxed);
            // Counted as an eviction for size: what tells an operator that
            // `max_bytes` is too small for a block's reads.
            self.stats.evicted_by_size.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        if let Some(old) = generation.entries.insert(key.clone(), result) {
            generation
                .bytes
                .fetch_sub(weight(key.as_str(), &old), Ordering::Relaxed);
        }
        true
    }

    /// Drops the generation if a reorg replaced its block.
    pub(super) fn evict_bound_to(&self, replaced: &[(u64, Hash)]) {
        let generation = self.current.load_full();
        if !replaced.iter().any(|(n, h)| generation.is(*n, h)) {
            return;
        }
        let empty = Arc::new(Generation::new(generation.number, [0; 32]));
        let before = self.current.compare_and_swap(&generation, empty);
        if Arc::ptr_eq(&*before, &generation) {
            let dropped = generation.entries.len() as u64;
            self.stats
                .evicted_by_reorg
                .fetch_add(dropped, Ordering::Relaxed);
            retire(generation);
        }
    }

    /// Bytes and entries held.
    pub(super) fn size(&self) -> (u64, u64) {
        let generation = self.current.load();
        let bytes = generation.bytes.load(Ordering::Relaxed) as u64;
        (bytes, generation.entries.len() as u64)
    }
}

/// Drops a generation off the request path: a block's worth of answers can
/// be hundreds of thousands of entries, too many to free inside one call.
/// Whoever holds the last reference frees it; usually this task.
fn retire(generation: Arc<Generation>) {
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => {
            runtime.spawn_blocking(move || drop(generation));
        }
        Err(_) => drop(generation),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(max_bytes: u64) -> HeadStore {
        HeadStore::new(max_bytes, Arc::new(Stats::default()))
    }

    fn key(i: u32) -> Key {
        Key::new("eth_getBalance", Some(&format!("[\"0x{i:x}\",\"0x7\"]")))
    }

    #[tokio::test]
    async fn answers_live_for_their_block_and_go_when_the_head_moves() {
        let t = store(1 << 20);
        let (a, b) = ([1; 32], [2; 32]);
        assert!(t.insert(7, a, key(1), Bytes::from_static(b"\"0x1\"")));
        assert_eq!(t.get(7, &a, key(1).as_str()).unwrap(), "\"0x1\"");
        // Another hash at that height, or another height: not this answer.
        assert!(t.get(7, &b, key(1).as_str()).is_none());
        assert!(t.get(8, &a, key(1).as_str()).is_none());
        // The next head starts over; an answer for the old one is not kept.
        assert!(t.insert(8, b, key(2), Bytes::from_static(b"\"0x2\"")));
        assert!(t.get(7, &a, key(1).as_str()).is_none());
        assert!(!t.insert(7, a, key(1), Bytes::from_static(b"\"0x1\"")));
        assert_eq!(t.size().1, 1);
    }

    #[tokio::test]
    async fn a_generation_stays_under_its_byte_bound() {
        let stats = Arc::new(Stats::default());
        let t = HeadStore::new(10_000, stats.clone());
        let h = [3; 32];
        let kept = (0..100)
            .filter(|i| t.insert(9, h, key(*i), Bytes::from(vec![b'a'; 400])))
            .count();
        let (bytes, entries) = t.size();
        assert!(bytes <= 10_000, "{bytes}");
        assert_eq!(entries as usize, kept);
        assert!((10..30).contains(&kept), "{kept} kept");
        assert_eq!(
            stats.evicted_by_size.load(Ordering::Relaxed) as usize,
            100 - kept,
            "every answer not kept is counted"
        );
        // The same key again replaces its answer without counting it twice.
        let t = store(10_000);
        assert!(t.insert(9, h, key(0), Bytes::from(vec![b'a'; 400])));
        let once = t.size();
        assert!(t.insert(9, h, key(0), Bytes::from(vec![b'b'; 400])));
        assert_eq!(t.size(), once);
        assert_eq!(t.get(9, &h, key(0).as_str()).unwrap()[0], b'b');
    }

    #[tokio::test]
    async fn a_reorg_of_the_head_drops_the_generation() {
        let stats = Arc::new(Stats::default());
        let t = HeadStore::new(1 << 20, stats.clone());
        let h = [4; 32];
        for i in 0..5 {
            t.insert(11, h, key(i), Bytes::from_static(b"1"));
        }
        t.evict_bound_to(&[(11, [5; 32])]);
        assert_eq!(t.size().1, 5, "another block's reorg leaves it");
        t.evict_bound_to(&[(10, [9; 32]), (11, h)]);
        assert_eq!(t.size(), (0, 0));
        assert!(t.get(11, &h, key(0).as_str()).is_none());
        assert_eq!(stats.evicted_by_reorg.load(Ordering::Relaxed), 5);
    }
}
