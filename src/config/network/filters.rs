//! `networks.<name>.filters` (filters owned by the gateway, see
//! `crate::filters`) and `networks.<name>.read_your_writes` (see
//! `crate::router::ryw`): two small per-network sections of bounds.

use std::time::Duration;

use serde::Deserialize;

use crate::config::error::Checks;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(in crate::config) struct RawFilters {
    pub enabled: Option<bool>,
    pub expiry: Option<String>,
    pub max_per_client: Option<u64>,
    pub max_total: Option<u64>,
    pub max_poll_blocks: Option<u64>,
    pub max_pending_hashes: Option<u64>,
    pub max_replay_bytes: Option<u64>,
    pub max_state_bytes: Option<u64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct FiltersConfig {
    /// Off: the filter methods are forwarded to one backend.
    pub enabled: bool,
    /// A filter not polled for this long is dropped (Geth's default: 5 minutes).
    pub expiry: Duration,
    /// Live filters one client (a key's client, or one IP when anonymous) may hold.
    pub max_per_client: usize,
    /// Live filters of this network in all.
    pub max_total: usize,
    /// Blocks one poll covers at most; a filter further behind catches up
    /// over the next polls.
    pub max_poll_blocks: u64,
    /// Pending-transaction hashes kept for pending filters (the newest), and
    /// the most one poll of such a filter returns.
    pub max_pending_hashes: usize,
    /// Bytes of delivered logs one log filter keeps to replay them as
    /// `removed: true` after a reorg; past it the oldest blocks are treated
    /// as final (their logs are not replayed).
    pub max_replay_bytes: usize,
    /// Bytes all filters of this network hold in this process (criteria and
    /// replay logs, as stored): a filter that would pass it is refused, a
    /// poll that would drops its replay logs.
    pub max_state_bytes: usize,
}

impl Default for FiltersConfig {
    fn default() -> Self {
        FiltersConfig {
            enabled: true,
            expiry: Duration::from_secs(300),
            max_per_client: 100,
            max_total: 10_000,
            max_poll_blocks: 1000,
            max_pending_hashes: 10_000,
            max_replay_bytes: 1 << 20,
            max_state_bytes: 256 << 20,
        }
    }
}

pub(super) fn filters(c: &mut Checks, at: &str, raw: RawFilters) -> FiltersConfig {
    let key = |k: &str| format!("{at}.{k}");
    let d = FiltersConfig::default();
    let expiry = c.duration(&key("expiry"), raw.expiry.as_deref(), d.expiry);
    if expiry < Duration::from_secs(1) {
        c.fail(key("expiry"), "must be at least 1s");
    }
    let max_total = c.range(
        &key("max_total"),
        raw.max_total,
        d.max_total as u64,
        1,
        10_000_000,
    );
    FiltersConfig {
        enabled: raw.enabled.unwrap_or(d.enabled),
        expiry,
        max_per_client: c.range(
            &key("max_per_client"),
            raw.max_per_client,
            (d.max_per_client as u64).min(max_total),
            1,
            max_total,
        ) as usize,
        max_total: max_total as usize,
        max_poll_blocks: c.range(
            &key("max_poll_blocks"),
            raw.max_poll_blocks,
            d.max_poll_blocks,
            1,
            1_000_000,
        ),
        max_pending_hashes: c.range(
            &key("max_pending_hashes"),
            raw.max_pending_hashes,
            d.max_pending_hashes as u64,
            1,
            1_000_000,
        ) as usize,
        max_replay_bytes: c.range(
            &key("max_replay_bytes"),
            raw.max_replay_bytes,
            d.max_replay_bytes as u64,
            0,
            1 << 30,
        ) as usize,
        max_state_bytes: c.range(
            &key("max_state_bytes"),
            raw.max_state_bytes,
            d.max_state_bytes as u64,
            1 << 20,
            1 << 40,
        ) as usize,
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(in crate::config) struct RawReadYourWrites {
    pub enabled: Option<bool>,
    pub ttl: Option<String>,
    pub max_entries: Option<u64>,
    pub wait_for_send: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ReadYourWritesConfig {
    /// Off: reads of a sent transaction are routed like any other read.
    pub enabled: bool,
    /// How long a send steers reads at most (the served head including the
    /// transaction ends it sooner).
    pub ttl: Duration,
    /// Sends remembered at once; the oldest is forgotten first.
    pub max_entries: usize,
    /// How long a `pending` nonce read waits for the send to show on some
    /// backend (the one that took it went away before passing it on).
    pub wait_for_send: Duration,
}

impl Default for ReadYourWritesConfig {
    fn default() -> Self {
        ReadYourWritesConfig {
            enabled: true,
            ttl: Duration::from_secs(60),
            max_entries: 100_000,
            wait_for_send: Duration::from_secs(2),
        }
    }
}

pub(super) fn read_your_writes(
    c: &mut Checks,
    at: &str,
    raw: RawReadYourWrites,
) -> ReadYourWritesConfig {
    let key = |k: &str| format!("{at}.{k}");
    let d = ReadYourWritesConfig::default();
    let ttl = c.duration(&key("ttl"), raw.ttl.as_deref(), d.ttl);
    if ttl < Duration::from_secs(1) || ttl > Duration::from_secs(3600) {
        c.fail(key("ttl"), "must be from 1s to 1h");
    }
    let wait_for_send = c.duration(
        &key("wait_for_send"),
        raw.wait_for_send.as_deref(),
        d.wait_for_send,
    );
    if wait_for_send > Duration::from_secs(30) {
        c.fail(key("wait_for_send"), "must be from 0s to 30s");
    }
    ReadYourWritesConfig {
        enabled: raw.enabled.unwrap_or(d.enabled),
        ttl,
        max_entries: c.range(
            &key("max_entries"),
            raw.max_entries,
            d.max_entries as u64,
            1,
            10_000_000,
        ) as usize,
        wait_for_send,
    }
}
