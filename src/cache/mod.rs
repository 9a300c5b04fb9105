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
//!    (a typed [`CacheRule`]), only shared while in flight, or passed through.
//! 2. [`store`]: a hit is served when its binding still holds: either it is
//!    final, or every block it is bound to still has the bound hash in the
//!    [`crate::upstream::chain`], and that chain was read for the very view the request
//!    reads. Each hit is wrapped with the caller's id by the pipeline.
//!    A read of the served head above finality (mostly `latest`, pinned) is
//!    kept apart, in the [`head`] tier: one block's answers, dropped
//!    together when the head moves, without moka's per-entry bookkeeping.
//! 3. [`coalesce`]: identical calls in flight make one upstream call.
//! 4. [`shared`]: on a local miss, forever-cacheable calls look in Redis.
//! 5. The leader calls upstream (pinned to the bound block's hash, see
//!    `pin`), and [`Ticket::complete`] checks the answer against the block it
//!    will be bound to (`answer`), stores it, and hands it to its followers.
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
//! Counters ([`Counts`]) are plain atomics, for the metrics work to export.

mod answer;
mod coalesce;
mod head;
mod key;
mod pin;
pub mod rule;
mod shared;
mod store;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::{CacheConfig, RedisConfig};
use crate::eth::{Hash, Method, Pinned};
use crate::jsonrpc::Reply;
use crate::upstream::chain::{self, Canon};
use crate::upstream::NetworkView;
use coalesce::{Flights, Joined, Lead};
use head::HeadTier;
pub use key::Key;
pub use rule::CacheRule;
use shared::SharedTier;
use store::{Bind, Store, Stored};

/// How many times a follower starts over after its leader gave up, before it
/// goes upstream on its own.
const MAX_REJOIN: usize = 3;

/// Counters kept for the metrics to export.
#[derive(Debug, Default)]
pub struct Stats {
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    pub coalesced: AtomicU64,
    pub stored: AtomicU64,
    pub shared_hits: AtomicU64,
    pub shared_writes: AtomicU64,
    /// Calls whose key was over `max_shared_key_bytes`: kept out of Redis.
    pub shared_key_too_long: AtomicU64,
    pub evicted_by_reorg: AtomicU64,
    pub evicted_by_size: AtomicU64,
}

/// A copy of [`Stats`] at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub hits: u64,
    pub misses: u64,
    pub coalesced: u64,
    pub stored: u64,
    pub shared_hits: u64,
    pub shared_writes: u64,
    pub shared_key_too_long: u64,
    pub evicted_by_reorg: u64,
    pub evicted_by_size: u64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// The share of `max_bytes` the head tier may hold (the rest is moka's):
/// what one block's reads of the present may take.
fn head_bytes(max_bytes: u64) -> u64 {
    max_bytes / 4
}

/// The cache of one network; `E` is how a call that got no answer failed.
pub struct Cache<E> {
    config: CacheConfig,
    store: Store,
    head: HeadTier,
    flights: Flights<Result<Reply, E>>,
    canon: Arc<ArcSwap<Canon>>,
    shared: Option<SharedTier>,
    stats: Arc<Stats>,
}

/// How the cache answered a call without calling upstream for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// From the in-memory store.
    Hit,
    /// From the shared tier (Redis).
    SharedHit,
    /// The outcome of an identical call in flight, led by another request.
    Coalesced,
}

/// What the pipeline does with a call after asking the cache.
pub enum Lookup<'a, E> {
    /// Answered without a backend: a hit, or the outcome of an identical call.
    Answered(Result<Reply, E>, Source),
    /// Not the cache's business: call upstream as usual.
    Pass,
    /// A miss this caller leads: call upstream with [`Ticket::params`], then
    /// hand the outcome to [`Ticket::complete`].
    Fetch(Ticket<'a, E>),
}

/// How a miss will be stored.
enum Plan {
    /// Not stored, only shared with the calls in flight.
    Share,
    /// Stored with this binding, decided before the call.
    Store(Bind),
    /// Stored if the answer shows it may be (its block is final or known).
    Decide,
}

/// A miss the caller leads: what to send, and how to store the answer.
pub struct Ticket<'a, E> {
    cache: &'a Cache<E>,
    lead: Lead<'a, Result<Reply, E>>,
    key: Key,
    rule: CacheRule,
    plan: Plan,
    pinned: Option<String>,
    generation: u64,
    /// The served head the answer is for, when it goes to the head tier.
    head: Option<(u64, Hash)>,
}

impl<E: Clone + Send + Sync + 'static> Cache<E> {
    /// Creates the cache of `network` and starts its control loops: the reorg
    /// follower (woken by `published` whenever the view changes) and, with
    /// `shared`, the Redis tier. Returns the tasks to abort with the network.
    pub fn start(
        network: &str,
        config: &CacheConfig,
        redis: Option<&RedisConfig>,
        view: Arc<ArcSwap<NetworkView>>,
        published: watch::Receiver<()>,
        probe_timeout: Duration,
    ) -> (Arc<Cache<E>>, Vec<JoinHandle<()>>) {
        let stats = Arc::new(Stats::default());
        let mut tasks = Vec::new();
        let shared = match (config.shared, redis) {
            (true, Some(redis)) => {
                let (tier, t) = SharedTier::start(
                    &redis.url,
                    network,
                    config.shared_ttl,
                    config.max_shared_key_bytes,
                    stats.clone(),
                );
                tasks.extend(t);
                Some(tier)
            }
            _ => None,
        };
        let cache = Arc::new(Cache {
            config: config.clone(),
            store: Store::new(
                config.max_bytes - head_bytes(config.max_bytes),
                stats.clone(),
            ),
            head: HeadTier::new(head_bytes(config.max_bytes), stats.clone()),
            flights: Flights::default(),
            canon: Arc::new(ArcSwap::from_pointee(Canon::default())),
            shared,
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
                return Lookup::Answered(Ok(hit), Source::Hit);
            }
        }
        let key = Key::from_text(text);
        let mut rejoined = 0;
        let lead = loop {
            match self.flights.join(&key) {
                Joined::Lead(lead) => break lead,
                Joined::Follow(slot) => {
                    if let Some(outcome) = coalesce::follow(slot).await {
                        bump(&self.stats.coalesced);
                        return Lookup::Answered(outcome, Source::Coalesced);
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
                return Lookup::Answered(outcome, Source::Hit);
            }
            bump(&self.stats.misses);
            // Boxed: the Redis round trip's future is large, and a future
            // held inline is copied whole each time the request's future
            // moves (on every call, whether or not this branch runs).
            if let Some(hit) = Box::pin(self.shared_hit(&rule, &key, view)).await {
                let outcome = Ok(hit);
                lead.finish(&outcome);
                return Lookup::Answered(outcome, Source::SharedHit);
            }
        }
        let canon = self.canon.load();
        let (plan, pinned) = self.plan(&rule, params, view, &canon);
        Lookup::Fetch(Ticket {
            cache: self,
            lead,
            key,
            rule,
            plan,
            pinned,
            generation: canon.generation,
            head,
        })
    }

    /// For a read of the served head that is not final (and may be kept
    /// bound to that block): the head and its hash in the chain the cache
    /// follows. Such a read is kept in the head tier, and only looked for
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

    async fn shared_hit(&self, rule: &CacheRule, key: &Key, view: &NetworkView) -> Option<Reply> {
        let shared = self.shared.as_ref().filter(|_| rule.is_forever())?;
        let entry = shared.get(key).await?;
        if !self.holds(&entry, view) {
            return None;
        }
        bump(&self.stats.shared_hits);
        let reply = Reply::result_from(entry.result.clone());
        self.store.insert(key.clone(), entry).await;
        Some(reply)
    }

    /// Decides, before the call, how its answer may be stored.
    fn plan(
        &self,
        rule: &CacheRule,
        params: Option<&str>,
        view: &NetworkView,
        canon: &Canon,
    ) -> (Plan, Option<String>) {
        let finalized = |n: u64| view.finalized.is_some_and(|f| n <= f);
        // Block-scoped: at or below the served head, and its hash known to a
        // chain read for this view (the read is the same for everyone while
        // that block stands).
        let scoped = |n: u64| {
            let served = view.served_head?;
            if !self.config.block_scoped || n > served || !canon.is_current(view) {
                return None;
            }
            canon.hash(n).copied()
        };
        // Deep enough, and its hash known to a chain read for this view.
        let deep = |n: u64| {
            let c = self.config.confirmations?;
            let served = view.served_head?;
            if n.checked_add(c)? > served || !canon.is_current(view) {
                return None;
            }
            canon.hash(n).copied()
        };
        let bound = |n: u64| deep(n).or_else(|| scoped(n));
        match *rule {
            CacheRule::Never | CacheRule::Share => (Plan::Share, None),
            CacheRule::Constant | CacheRule::ByHash(_) | CacheRule::Transaction => {
                (Plan::Decide, None)
            }
            CacheRule::AtBlock { number, .. } if finalized(number) => {
                (Plan::Store(Bind::Final), None)
            }
            CacheRule::AtBlock { number, pin_at } => match bound(number) {
                None => (Plan::Share, None),
                Some(h) => match pin_at {
                    None => (Plan::Store(Bind::block(number, h)), None),
                    Some(i) => match params.and_then(|p| pin::block_param(p, i, &h)) {
                        Some(p) => (Plan::Store(Bind::block(number, h)), Some(p)),
                        None => (Plan::Share, None),
                    },
                },
            },
            CacheRule::LogRange { to, .. } if finalized(to) => (Plan::Store(Bind::Final), None),
            // Above finality only one block at a time, pinned by hash: a node on
            // the other side of a reorg cannot answer it with other blocks' logs.
            CacheRule::LogRange { from, to } if from == to => {
                match bound(to).and_then(|h| Some((h, pin::log_filter(params?, &h)?))) {
                    Some((h, p)) => (Plan::Store(Bind::block(to, h)), Some(p)),
                    None => (Plan::Share, None),
                }
            }
            CacheRule::LogRange { .. } => (Plan::Share, None),
            CacheRule::PerHead { number } => match scoped(number) {
                Some(h) => (Plan::Store(Bind::block(number, h)), None),
                None => (Plan::Share, None),
            },
        }
    }

    /// A snapshot of the counters.
    pub fn counts(&self) -> Counts {
        let s = &self.stats;
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Counts {
            hits: get(&s.hits),
            misses: get(&s.misses),
            coalesced: get(&s.coalesced),
            stored: get(&s.stored),
            shared_hits: get(&s.shared_hits),
            shared_writes: get(&s.shared_writes),
            shared_key_too_long: get(&s.shared_key_too_long),
            evicted_by_reorg: get(&s.evicted_by_reorg),
            evicted_by_size: get(&s.evicted_by_size),
        }
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

impl<E: Clone + Send + Sync + 'static> Ticket<'_, E> {
    /// The params to send upstream: the router's, or pinned to the block hash
    /// the answer will be bound to.
    pub fn params<'p>(&'p self, original: Option<&'p str>) -> Option<&'p str> {
        self.pinned.as_deref().or(original)
    }

    /// Stores the answer when it may be kept, hands the outcome to the
    /// followers, and returns it.
    pub async fn complete(self, view: &NetworkView, outcome: Result<Reply, E>) -> Result<Reply, E> {
        if let Ok(reply) = &outcome {
            if let Some(entry) = self.entry_for(view, reply) {
                let cache = self.cache;
                if let (Some(shared), true) = (&cache.shared, self.rule.is_forever()) {
                    shared.put(&self.key, &entry);
                }
                match (self.head, &entry.bind) {
                    (Some((n, h)), Bind::Blocks { from, hashes })
                        if *from == n && hashes[..] == [h] =>
                    {
                        cache.head.insert(n, h, self.key.clone(), entry.result);
                    }
                    // Boxed: moka's insert is a large future, and the
                    // pipeline holds this one inline on every miss.
                    _ => Box::pin(cache.store.insert(self.key.clone(), entry)).await,
                }
                bump(&cache.stats.stored);
            }
        }
        self.lead.finish(&outcome);
        outcome
    }

    /// The entry to keep for `reply`, if it may be kept.
    fn entry_for(&self, view: &NetworkView, reply: &Reply) -> Option<Stored> {
        if matches!(self.plan, Plan::Share) || reply.is_error() {
            return None;
        }
        let raw = reply.raw();
        if raw == b"null" || raw.len() > self.cache.config.max_entry_bytes {
            return None;
        }
        let canon = self.cache.canon.load();
        // A reorg seen during the call: bind nothing to the chain we started from.
        let current = canon.is_current(view) && canon.generation == self.generation;
        let finalized = |n: u64| view.finalized.is_some_and(|f| n <= f);
        let bind = match (&self.plan, &self.rule) {
            (Plan::Store(Bind::Final), _) | (Plan::Decide, CacheRule::Constant) => Bind::Final,
            (Plan::Store(bind @ Bind::Blocks { from, hashes }), _) => {
                if !current {
                    return None;
                }
                if self.pinned.is_none() && !matches!(self.rule, CacheRule::PerHead { .. }) {
                    // Unpinned (a block by number, receipts): the answer must
                    // show it comes from the bound block. A fee read names
                    // none: it is kept for the head it was asked at.
                    let named = answer::blocks_named(raw).ok()?;
                    let expected = (*from, *hashes.first()?);
                    if named.is_empty() || named.iter().any(|b| *b != expected) {
                        return None;
                    }
                }
                bind.clone()
            }
            (Plan::Decide, CacheRule::ByHash(h)) => {
                let named = answer::blocks_named(raw).ok()?;
                if named.iter().any(|(_, x)| x != h) {
                    return None;
                }
                let number = match named.first() {
                    Some((n, _)) => *n,
                    None => canon.number_of(h)?,
                };
                match canon.hash(number) {
                    _ if finalized(number) => Bind::Final,
                    Some(known) if current && known == h => Bind::block(number, *h),
                    // A chain that has another block there: this one was replaced.
                    Some(_) => return None,
                    // Not in the chain the cache follows (yet): a block's
                    // content under its hash never changes.
                    None => Bind::Hash { number, hash: *h },
                }
            }
            (Plan::Decide, CacheRule::Transaction) => match answer::blocks_named(raw).ok()?[..] {
                [(n, _)] if finalized(n) => Bind::Final,
                // Not final: bound to the block that holds it (a reorg may
                // move the transaction elsewhere, and then replaces that block).
                [(n, h)]
                    if self.cache.config.block_scoped && current && canon.hash(n) == Some(&h) =>
                {
                    Bind::block(n, h)
                }
                _ => return None,
            },
            _ => return None,
        };
        Some(Stored {
            // A copy of the result alone: the entry's weight is what it holds.
            result: Bytes::copy_from_slice(raw),
            bind,
        })
    }
}
