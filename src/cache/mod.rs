//! The response cache: answers that cannot change, served from memory, and
//! never anything a reorg replaced.
//!
//! The pipeline asks the cache after `latest` was pinned to the served head,
//! so keys hold the pinned params, and before the router: a [`Lookup`] either
//! answers the call, passes it through, or hands the caller a [`Ticket`] to
//! call upstream with and complete. The cache never calls a backend for a
//! request itself, and knows nothing of the router: what a flight ends with
//! is `Result<Reply, E>` for the pipeline's error type `E`. One call goes:
//!
//! 1. [`rule`]: the method and params decide whether the call may be cached
//!    (a typed [`CacheRule`]), only coalesced while in flight, or passed through.
//! 2. [`store`]: a hit is served when its binding still holds: either it is
//!    final, or every block it is bound to still has the bound hash in the
//!    [`crate::upstream::chain`], and that chain was read for the very view the request
//!    reads. Each hit is wrapped with the caller's id by the pipeline.
//!    A read of the served head above finality (mostly `latest`, pinned) is
//!    kept apart, in the [`head`] store: one block's answers, dropped
//!    together when the head moves, without moka's per-entry bookkeeping.
//! 3. [`coalesce`]: identical calls in flight make one upstream call.
//! 4. [`redis`]: on a local miss, forever-cacheable calls look in Redis.
//! 5. [`ticket`]: the leader calls upstream (pinned to the bound block's
//!    hash, see [`by_hash`]), and [`Ticket::complete`] checks the answer
//!    against the block it will be bound to ([`blocks_named`]), stores it,
//!    and hands it to its followers. How a miss may become an entry is
//!    decided there, before the call and then from the answer.
//!
//! Errors, `null` and answers over `max_entry_bytes` are never stored. With
//! `block_scoped` (the default), a read of a block above finality, `latest`
//! pinned to the served head included, is stored bound to that block's hash:
//! it is the same question for everyone while that block stands, and ages
//! out by bytes once the head has moved on. Without it, only final blocks
//! (or blocks `confirmations` deep) are stored. A read by block hash is
//! stored from its first answer.
//! The reorg control loop ([`crate::upstream::chain::follow`]), beside the request path, keeps the canonical
//! chain current and drops entries bound to replaced blocks.
//!
//! Counters ([`Stats`]) are plain atomics, read as [`Counts`] by the metrics.

mod blocks_named;
mod by_hash;
mod coalesce;
mod head;
mod key;
mod redis;
pub mod rule;
mod store;
mod ticket;
#[cfg(test)]
mod ticket_tests;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use self::redis::RedisStore;
use crate::config::CacheConfig;
use crate::eth::{Hash, Method, Pinned};
use crate::jsonrpc::Reply;
use crate::metrics::state::CacheEvent;
use crate::redis_link::RedisLink;
use crate::upstream::chain::{self, Canon};
use crate::upstream::NetworkView;
use coalesce::{Flights, Joined};
use head::HeadStore;
pub use key::Key;
pub use rule::CacheRule;
use store::{Store, Stored};
pub use ticket::Ticket;

/// How many times a follower starts over after its leader gave up, before it
/// goes upstream on its own.
const MAX_REJOIN: usize = 3;

/// The cache's event counters, one field each. [`Stats`] is what the cache
/// bumps; `Counts<u64>` is a copy at one moment, which the metrics read
/// through [`Counts::events`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts<T = u64> {
    pub hits: T,
    pub misses: T,
    pub coalesced: T,
    pub stored: T,
    /// Hits in Redis (`cache.shared`).
    pub shared_hits: T,
    /// Entries written to Redis (not exported: tests wait on it).
    pub shared_writes: T,
    /// Calls whose key was over `max_shared_key_bytes`: kept out of Redis.
    pub shared_key_too_long: T,
    pub evicted_by_reorg: T,
    pub evicted_by_size: T,
}

/// The live counters.
pub type Stats = Counts<AtomicU64>;

impl<T> Counts<T> {
    fn map<U>(&self, f: impl Fn(&T) -> U) -> Counts<U> {
        Counts {
            hits: f(&self.hits),
            misses: f(&self.misses),
            coalesced: f(&self.coalesced),
            stored: f(&self.stored),
            shared_hits: f(&self.shared_hits),
            shared_writes: f(&self.shared_writes),
            shared_key_too_long: f(&self.shared_key_too_long),
            evicted_by_reorg: f(&self.evicted_by_reorg),
            evicted_by_size: f(&self.evicted_by_size),
        }
    }
}

impl Counts<u64> {
    /// The exported counters with their `event` label of
    /// `rpcgate_cache_events_total`.
    pub fn events(&self) -> [(CacheEvent, u64); 8] {
        [
            (CacheEvent::Hit, self.hits),
            (CacheEvent::Miss, self.misses),
            (CacheEvent::Coalesced, self.coalesced),
            (CacheEvent::Stored, self.stored),
            (CacheEvent::SharedHit, self.shared_hits),
            (CacheEvent::SharedKeyTooLong, self.shared_key_too_long),
            (CacheEvent::EvictedByReorg, self.evicted_by_reorg),
            (CacheEvent::EvictedBySize, self.evicted_by_size),
        ]
    }
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// The share of `max_bytes` the head store may hold (the rest is moka's):
/// what one block's reads of the present may take.
fn head_bytes(max_bytes: u64) -> u64 {
    max_bytes / 4
}

/// The cache of one network; `E` is how a call that got no answer failed.
pub struct Cache<E> {
    config: CacheConfig,
    store: Store,
    head: HeadStore,
    flights: Flights<Result<Reply, E>>,
    canon: Arc<ArcSwap<Canon>>,
    redis: Option<RedisStore>,
    stats: Arc<Stats>,
}

/// How the cache took part in a call, sent in the `X-Rpcgate-Cache` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheUse {
    /// Answered by the gateway itself (`eth_blockNumber`, `eth_chainId`,
    /// the gateway's filters).
    Local,
    /// Not the cache's business (writes, node state, steered reads), or
    /// the network has no cache.
    Pass,
    /// Looked up and not there: fetched from a backend (and stored when
    /// the answer may be kept).
    Miss,
    /// From memory.
    Hit,
    /// From Redis.
    Redis,
    /// The outcome of an identical call in flight, led by another request.
    Coalesced,
}

impl CacheUse {
    /// The header's value. Redis hits say `shared`, after `cache.shared`.
    pub fn label(self) -> &'static str {
        match self {
            CacheUse::Local => "local",
            CacheUse::Pass => "pass",
            CacheUse::Miss => "miss",
            CacheUse::Hit => "hit",
            CacheUse::Redis => "shared",
            CacheUse::Coalesced => "coalesced",
        }
    }
}

/// What the pipeline does with a call after asking the cache.
pub enum Lookup<'a, E> {
    /// Answered without a backend: a hit (memory or Redis), or the outcome
    /// of an identical call (never [`CacheUse::Local`], `Pass` or `Miss`).
    Answered(Result<Reply, E>, CacheUse),
    /// Not the cache's business: call upstream as usual.
    Pass,
    /// A miss this caller leads: call upstream with [`Ticket::params`], then
    /// hand the outcome to [`Ticket::complete`].
    Fetch(Ticket<'a, E>),
}

impl<E: Clone + Send + Sync + 'static> Cache<E> {
    /// Creates the cache of `network` and starts its control loops: the reorg
    /// follower (woken by `published` whenever the view changes) and, with
    /// `cache.shared`, the Redis store. Returns the tasks to abort with the network.
    pub fn start(
        network: &str,
        config: &CacheConfig,
        redis: Option<(&Arc<RedisLink>, &str)>,
        view: Arc<ArcSwap<NetworkView>>,
        published: watch::Receiver<()>,
        probe_timeout: Duration,
    ) -> (Arc<Cache<E>>, Vec<JoinHandle<()>>) {
        let stats = Arc::new(Stats::default());
        let mut tasks = Vec::new();
        let redis = match (config.shared, redis) {
            (true, Some((link, space))) => {
                let (store, t) = RedisStore::start(
                    link.clone(),
                    space,
                    config.shared_ttl,
                    config.max_shared_key_bytes,
                    stats.clone(),
                );
                tasks.extend(t);
                Some(store)
            }
            _ => None,
        };
        let cache = Arc::new(Cache {
            config: config.clone(),
            store: Store::new(
                config.max_bytes - head_bytes(config.max_bytes),
                stats.clone(),
            ),
            head: HeadStore::new(head_bytes(config.max_bytes), stats.clone()),
            flights: Flights::default(),
            canon: Arc::new(ArcSwap::from_pointee(Canon::default())),
            redis,
            stats,
        });
        let evictor = cache.clone();
        tasks.push(tokio::spawn(chain::follow(
            network.to_string(),
            cache.canon.clone(),
            view,
            published,
            probe_timeout,
            move |replaced| {
                evictor.head.evict_bound_to(&replaced);
                evictor
                    .store
                    .evict_bound_to(replaced, evictor.stats.clone());
            },
        )));
        (cache, tasks)
    }

    /// The canonical chain this cache follows (for the gateway's filters,
    /// which read the same hashes instead of asking a backend again).
    pub fn chain(&self) -> Arc<ArcSwap<Canon>> {
        self.canon.clone()
    }

    /// Looks a call of `method` up (`spec`: its entry in the method table)
    /// by its pinned params: `pinned` holds the params it will send
    /// (`latest` pinned) and the block argument.
    pub async fn lookup<'a>(
        &'a self,
        view: &NetworkView,
        method: &str,
        spec: Option<&Method>,
        pinned: &Pinned<'_>,
    ) -> Lookup<'a, E> {
        let params = pinned.params.as_deref();
        let rule = rule::decide(spec, pinned);
        if rule == CacheRule::Never {
            return Lookup::Pass;
        }
        let mut text = key::text(method, params);
        if let CacheRule::PerHead { number } = rule {
            // Fee reads name no block: the key says which head it is for.
            text.push('@');
            text.push_str(&number.to_string());
        }
        let head = self.at_head(&rule, view);
        if rule.may_store() {
            if let Some(hit) = self.hit(&text, head, view).await {
                return Lookup::Answered(Ok(hit), CacheUse::Hit);
            }
        }
        let key = Key::from_text(text);
        let mut rejoined = 0;
        let lead = loop {
            match self.flights.join(&key) {
                Joined::Lead(lead) => break lead,
                Joined::Follow(slot) => {
                    // Boxed: following an identical call is the rarer way.
                    if let Some(outcome) = Box::pin(coalesce::follow(slot)).await {
                        bump(&self.stats.coalesced);
                        return Lookup::Answered(outcome, CacheUse::Coalesced);
                    }
                    rejoined += 1;
                    if rejoined >= MAX_REJOIN {
                        return Lookup::Pass;
                    }
                }
            }
        };
        if rule.may_store() {
            // The leader before us may have stored it between our look and our join.
            if let Some(hit) = self.hit(key.as_str(), head, view).await {
                let outcome = Ok(hit);
                lead.finish(&outcome);
                return Lookup::Answered(outcome, CacheUse::Hit);
            }
            bump(&self.stats.misses);
            // Boxed: the Redis round trip's future is large, and a future
            // held inline is copied whole each time the request's future
            // moves (on every call, whether or not this branch runs).
            // Only made when it may find something: boxing it allocates
            // and copies the future, whether or not it is polled.
            let shared = self.redis.is_some() && rule.is_forever();
            if let Some(hit) = match shared {
                true => Box::pin(self.redis_hit(&rule, &key, view)).await,
                false => None,
            } {
                let outcome = Ok(hit);
                lead.finish(&outcome);
                return Lookup::Answered(outcome, CacheUse::Redis);
            }
        }
        let planned = ticket::plan(&self.config, rule, params, view, &self.canon.load());
        Lookup::Fetch(Ticket::new(self, lead, key, planned, head))
    }

    /// For a read of the served head that is not final (and may be kept
    /// bound to that block): the head and its hash in the chain the cache
    /// follows. Such a read is kept in the head store, and only looked for
    /// there.
    fn at_head(&self, rule: &CacheRule, view: &NetworkView) -> Option<(u64, Hash)> {
        let (CacheRule::AtBlock { number, .. } | CacheRule::PerHead { number }) = *rule else {
            return None;
        };
        if !self.config.block_scoped
            || view.served_head != Some(number)
            || view.finalized.is_some_and(|f| number <= f)
        {
            return None;
        }
        let canon = self.canon.load();
        if !canon.is_current(view) {
            return None;
        }
        canon.hash(number).map(|h| (number, *h))
    }

    async fn hit(&self, key: &str, head: Option<(u64, Hash)>, view: &NetworkView) -> Option<Reply> {
        if let Some((number, hash)) = head {
            // The block and its hash were read from the chain for this very
            // view: a generation of that block holds.
            let result = self.head.get(number, &hash, key)?;
            bump(&self.stats.hits);
            return Some(Reply::result_from(result));
        }
        let entry = self.store.get(key).await?;
        if !self.holds(&entry, view) {
            return None;
        }
        bump(&self.stats.hits);
        Some(Reply::result_from(entry.result))
    }

    fn holds(&self, entry: &Stored, view: &NetworkView) -> bool {
        let canon = self.canon.load();
        entry
            .bind
            .holds(&canon, canon.is_current(view), view.finalized)
    }

    async fn redis_hit(&self, rule: &CacheRule, key: &Key, view: &NetworkView) -> Option<Reply> {
        let redis = self.redis.as_ref().filter(|_| rule.is_forever())?;
        let entry = redis.get(key).await?;
        if !self.holds(&entry, view) {
            return None;
        }
        bump(&self.stats.shared_hits);
        let reply = Reply::result_from(entry.result.clone());
        self.store.insert(key.clone(), entry).await;
        Some(reply)
    }

    /// A snapshot of the counters.
    pub fn counts(&self) -> Counts {
        self.stats.map(|c| c.load(Ordering::Relaxed))
    }

    /// Bytes held by the in-memory store (after its pending housekeeping).
    pub async fn weighted_bytes(&self) -> u64 {
        self.store.weighted_bytes().await + self.head.size().0
    }

    /// Entries in the in-memory store (after its pending housekeeping).
    pub async fn entries(&self) -> u64 {
        self.store.len().await + self.head.size().1
    }

    /// Bytes and entries held, as last accounted (for metrics).
    pub fn size_now(&self) -> (u64, u64) {
        let (bytes, entries) = self.store.size_now();
        let (head_bytes, head_entries) = self.head.size();
        (bytes + head_bytes, entries + head_entries)
    }

    pub fn max_bytes(&self) -> u64 {
        self.config.max_bytes
    }

    /// Whether the cache's chain was read for `view`, so that entries bound
    /// to recent blocks can be stored and served.
    pub fn chain_current(&self, view: &NetworkView) -> bool {
        self.canon.load().is_current(view)
    }

    /// Calls in flight that followers may join.
    pub fn in_flight(&self) -> usize {
        self.flights.in_flight()
    }
}
