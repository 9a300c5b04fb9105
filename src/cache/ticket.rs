//! How a miss becomes an entry: the decision the cache makes before the
//! call ([`plan`]: may it be stored at all, bound to what, with which params
//! sent) and after it ([`Planned::entry_for`]: does the answer show it may
//! be kept). Kept apart from the lookup so that the decisions can be read,
//! and tested, over a hand-made view and chain without any backend.
//!
//! A binding says what an entry stays valid for ([`Bind`]): for good (a
//! constant, or a read of a final block), while a recent block keeps its
//! hash in the chain the cache follows, or under a block hash that no chain
//! it follows has replaced. A miss that cannot be bound is only coalesced
//! with the identical calls in flight.

use bytes::Bytes;

use super::blocks_named::blocks_named;
use super::by_hash;
use super::coalesce::Lead;
use super::store::{Bind, Stored};
use super::{bump, Cache, CacheRule, Key};
use crate::config::CacheConfig;
use crate::eth::Hash;
use crate::jsonrpc::Reply;
use crate::upstream::chain::Canon;
use crate::upstream::NetworkView;

/// How a miss will be stored, decided before the call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Plan {
    /// Not stored, only coalesced with the calls in flight.
    Coalesce,
    /// Stored with this binding, decided before the call.
    Store(Bind),
    /// Stored if the answer shows it may be (its block is final or known).
    Decide,
}

/// What was decided before the call.
#[derive(Debug)]
pub(super) struct Planned {
    pub(super) rule: CacheRule,
    pub(super) plan: Plan,
    /// The params to send instead of the caller's: the block argument
    /// rewritten to the hash the entry will be bound to.
    pub(super) pinned: Option<String>,
    /// The chain's generation when the call was planned: a reorg seen
    /// before the answer binds nothing to the chain it started from.
    pub(super) generation: u64,
}

/// Decides, before the call, how its answer may be stored.
pub(super) fn plan(
    config: &CacheConfig,
    rule: CacheRule,
    params: Option<&str>,
    view: &NetworkView,
    canon: &Canon,
) -> Planned {
    let finalized = |n: u64| view.finalized.is_some_and(|f| n <= f);
    // Block-scoped: at or below the served head, and its hash known to a
    // chain read for this view (the read is the same for everyone while
    // that block stands).
    let scoped = |n: u64| {
        let served = view.served_head?;
        if !config.block_scoped || n > served || !canon.is_current(view) {
            return None;
        }
        canon.hash(n).copied()
    };
    // Deep enough, and its hash known to a chain read for this view.
    let deep = |n: u64| {
        let c = config.confirmations?;
        let served = view.served_head?;
        if n.checked_add(c)? > served || !canon.is_current(view) {
            return None;
        }
        canon.hash(n).copied()
    };
    let bound = |n: u64| deep(n).or_else(|| scoped(n));
    let (plan, pinned) = match rule {
        CacheRule::Never | CacheRule::Coalesce => (Plan::Coalesce, None),
        CacheRule::Constant | CacheRule::ByHash(_) | CacheRule::Transaction => (Plan::Decide, None),
        CacheRule::AtBlock { number, .. } if finalized(number) => (Plan::Store(Bind::Final), None),
        CacheRule::AtBlock { number, pin_at } => match bound(number) {
            None => (Plan::Coalesce, None),
            Some(h) => match pin_at {
                None => (Plan::Store(Bind::block(number, h)), None),
                Some(i) => match params.and_then(|p| by_hash::block_param(p, i, &h)) {
                    Some(p) => (Plan::Store(Bind::block(number, h)), Some(p)),
                    None => (Plan::Coalesce, None),
                },
            },
        },
        CacheRule::LogRange { to, .. } if finalized(to) => (Plan::Store(Bind::Final), None),
        // Above finality only one block at a time, pinned by hash: a node on
        // the other side of a reorg cannot answer it with other blocks' logs.
        CacheRule::LogRange { from, to } if from == to => {
            match bound(to).and_then(|h| Some((h, by_hash::log_filter(params?, &h)?))) {
                Some((h, p)) => (Plan::Store(Bind::block(to, h)), Some(p)),
                None => (Plan::Coalesce, None),
            }
        }
        CacheRule::LogRange { .. } => (Plan::Coalesce, None),
        CacheRule::PerHead { number } => match scoped(number) {
            Some(h) => (Plan::Store(Bind::block(number, h)), None),
            None => (Plan::Coalesce, None),
        },
    };
    Planned {
        rule,
        plan,
        pinned,
        generation: canon.generation,
    }
}

impl Planned {
    /// The entry to keep for `reply`, if it may be kept, judged against the
    /// chain `canon` as it is when the answer came.
    pub(super) fn entry_for(
        &self,
        config: &CacheConfig,
        canon: &Canon,
        view: &NetworkView,
        reply: &Reply,
    ) -> Option<Stored> {
        if matches!(self.plan, Plan::Coalesce) || reply.is_error() {
            return None;
        }
        let raw = reply.raw();
        if raw == b"null" || raw.len() > config.max_entry_bytes {
            return None;
        }
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
                    let named = blocks_named(raw).ok()?;
                    let expected = (*from, *hashes.first()?);
                    if named.is_empty() || named.iter().any(|b| *b != expected) {
                        return None;
                    }
                }
                bind.clone()
            }
            (Plan::Decide, CacheRule::ByHash(h)) => {
                let named = blocks_named(raw).ok()?;
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
            (Plan::Decide, CacheRule::Transaction) => match blocks_named(raw).ok()?[..] {
                [(n, _)] if finalized(n) => Bind::Final,
                // Not final: bound to the block that holds it (a reorg may
                // move the transaction elsewhere, and then replaces that block).
                [(n, h)] if config.block_scoped && current && canon.hash(n) == Some(&h) => {
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

/// A miss the caller leads: what to send, and how to store the answer.
pub struct Ticket<'a, E> {
    cache: &'a Cache<E>,
    lead: Lead<'a, Result<Reply, E>>,
    key: Key,
    planned: Planned,
    /// The served head the answer is for, when it goes to the head store.
    head: Option<(u64, Hash)>,
}

impl<'a, E: Clone + Send + Sync + 'static> Ticket<'a, E> {
    pub(super) fn new(
        cache: &'a Cache<E>,
        lead: Lead<'a, Result<Reply, E>>,
        key: Key,
        planned: Planned,
        head: Option<(u64, Hash)>,
    ) -> Self {
        Ticket {
            cache,
            lead,
            key,
            planned,
            head,
        }
    }

    /// The params to send upstream: the router's, or pinned to the block hash
    /// the answer will be bound to.
    pub fn params<'p>(&'p self, original: Option<&'p str>) -> Option<&'p str> {
        self.planned.pinned.as_deref().or(original)
    }

    /// Stores the answer when it may be kept, hands the outcome to the
    /// followers, and returns it.
    pub async fn complete(self, view: &NetworkView, outcome: Result<Reply, E>) -> Result<Reply, E> {
        let cache = self.cache;
        if let Ok(reply) = &outcome {
            let canon = cache.canon.load();
            if let Some(entry) = self.planned.entry_for(&cache.config, &canon, view, reply) {
                if let (Some(redis), true) = (&cache.redis, self.planned.rule.is_forever()) {
                    redis.put(&self.key, &entry);
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
}
