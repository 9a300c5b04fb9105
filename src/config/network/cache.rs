//! `networks.<name>.cache`: the response cache of one network (see `crate::cache`).

use std::time::Duration;

use serde::Deserialize;

use crate::config::error::Checks;

/// Blocks below the served head whose hashes the cache tracks (its window of
/// the canonical chain). It is a config constant because `confirmations` is
/// validated against it: a deeper binding could never be checked.
pub const CACHE_CANON_WINDOW: u64 = 128;
/// Deeper than this, blocks leave the cache's window of tracked hashes, so
/// `confirmations` must stay below it.
const MAX_CACHE_CONFIRMATIONS: u64 = CACHE_CANON_WINDOW - 1;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(in crate::config) struct RawCache {
    pub enabled: Option<bool>,
    pub max_bytes: Option<u64>,
    pub max_entry_bytes: Option<u64>,
    pub confirmations: Option<u64>,
    pub block_scoped: Option<bool>,
    pub shared: Option<bool>,
    pub shared_ttl: Option<String>,
    pub max_shared_key_bytes: Option<u64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CacheConfig {
    pub enabled: bool,
    /// Bound of the in-memory store: keys and results, in bytes.
    pub max_bytes: u64,
    /// Larger results are never cached.
    pub max_entry_bytes: usize,
    /// Cache reads of block N once N is this deep below the served head, even
    /// before it is finalized (bound to N's hash). `None`: finalized blocks only.
    pub confirmations: Option<u64>,
    /// Cache reads of a block above finality, `latest` pinned to the served
    /// head included, and fee reads per served head, bound to the block's
    /// hash (a reorg makes them misses). Off: final (or `confirmations`
    /// deep) blocks only.
    pub block_scoped: bool,
    /// Also keep forever-cacheable answers in the shared Redis (`redis.url`).
    pub shared: bool,
    /// How long an entry lives in the shared tier.
    pub shared_ttl: Duration,
    /// Keys longer than this (with the network's prefix) are neither written
    /// to nor read from Redis: a call with huge params cannot fill it.
    pub max_shared_key_bytes: usize,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            enabled: true,
            max_bytes: 256 * 1024 * 1024,
            max_entry_bytes: 1024 * 1024,
            confirmations: None,
            block_scoped: true,
            shared: false,
            shared_ttl: Duration::from_secs(24 * 3600),
            max_shared_key_bytes: 2048,
        }
    }
}

pub(super) fn validate(c: &mut Checks, at: &str, raw: RawCache) -> CacheConfig {
    let d = CacheConfig::default();
    let key = |k: &str| format!("{at}.{k}");
    let max_bytes = c.range(&key("max_bytes"), raw.max_bytes, d.max_bytes, 4096, 1 << 40);
    let max_entry_bytes = c.range(
        &key("max_entry_bytes"),
        raw.max_entry_bytes,
        (d.max_entry_bytes as u64).min(max_bytes),
        1,
        max_bytes,
    ) as usize;
    let confirmations = raw.confirmations.map(|n| {
        c.range(
            &key("confirmations"),
            Some(n),
            1,
            1,
            MAX_CACHE_CONFIRMATIONS,
        )
    });
    CacheConfig {
        enabled: raw.enabled.unwrap_or(d.enabled),
        max_bytes,
        max_entry_bytes,
        confirmations,
        block_scoped: raw.block_scoped.unwrap_or(d.block_scoped),
        shared: raw.shared.unwrap_or(d.shared),
        shared_ttl: c.duration(&key("shared_ttl"), raw.shared_ttl.as_deref(), d.shared_ttl),
        max_shared_key_bytes: c.range(
            &key("max_shared_key_bytes"),
            raw.max_shared_key_bytes,
            d.max_shared_key_bytes as u64,
            64,
            1 << 20,
        ) as usize,
    }
}
