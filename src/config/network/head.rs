//! `networks.<name>.head`: timing of the head-tracking control loops.

use std::time::Duration;

use serde::Deserialize;

use crate::config::error::Checks;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(in crate::config) struct RawHead {
    pub poll_interval: Option<String>,
    pub ws_poll_interval: Option<String>,
    pub finality_poll_interval: Option<String>,
    pub syncing_poll_interval: Option<String>,
    pub probe_timeout: Option<String>,
    pub fallback_probe_interval: Option<String>,
    pub served_head_watchdog: Option<String>,
    pub catch_up_wait: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct HeadConfig {
    /// Polling of `latest` when no WebSocket subscription is live.
    pub poll_interval: Duration,
    /// Polling of `latest` while newHeads arrive over WebSocket (a liveness check).
    pub ws_poll_interval: Duration,
    pub finality_poll_interval: Duration,
    pub syncing_poll_interval: Duration,
    pub probe_timeout: Duration,
    /// How often a `tier: fallback` upstream is probed while primaries
    /// serve (one `latest` poll, so a paid quota pays little); while it
    /// serves it is tracked like any other.
    pub fallback_probe_interval: Duration,
    /// How long a served head that no eligible backend holds is kept before
    /// it is derived again from the backends that remain.
    pub served_head_watchdog: Duration,
    /// How long backends standing below the served head (mid-reorg,
    /// restarted behind) are given to reach it again: a read of a block at
    /// or below it waits this long for a backend that has it, and after a
    /// reorg the served head is held this long before it is derived again
    /// from a shorter chain.
    pub catch_up_wait: Duration,
}

impl Default for HeadConfig {
    fn default() -> Self {
        HeadConfig {
            poll_interval: Duration::from_millis(500),
            ws_poll_interval: Duration::from_secs(2),
            finality_poll_interval: Duration::from_secs(3),
            syncing_poll_interval: Duration::from_secs(5),
            probe_timeout: Duration::from_secs(2),
            // A fallback (often a paid provider) is probed this rarely while primaries serve.
            fallback_probe_interval: Duration::from_secs(60),
            served_head_watchdog: Duration::from_secs(10),
            catch_up_wait: Duration::from_secs(2),
        }
    }
}

pub(super) fn validate(c: &mut Checks, at: &str, raw: RawHead) -> HeadConfig {
    let d = HeadConfig::default();
    let key = |k: &str| format!("{at}.{k}");
    HeadConfig {
        poll_interval: c.duration(
            &key("poll_interval"),
            raw.poll_interval.as_deref(),
            d.poll_interval,
        ),
        ws_poll_interval: c.duration(
            &key("ws_poll_interval"),
            raw.ws_poll_interval.as_deref(),
            d.ws_poll_interval,
        ),
        finality_poll_interval: c.duration(
            &key("finality_poll_interval"),
            raw.finality_poll_interval.as_deref(),
            d.finality_poll_interval,
        ),
        syncing_poll_interval: c.duration(
            &key("syncing_poll_interval"),
            raw.syncing_poll_interval.as_deref(),
            d.syncing_poll_interval,
        ),
        probe_timeout: c.duration(
            &key("probe_timeout"),
            raw.probe_timeout.as_deref(),
            d.probe_timeout,
        ),
        fallback_probe_interval: c.duration(
            &key("fallback_probe_interval"),
            raw.fallback_probe_interval.as_deref(),
            d.fallback_probe_interval,
        ),
        served_head_watchdog: c.duration(
            &key("served_head_watchdog"),
            raw.served_head_watchdog.as_deref(),
            d.served_head_watchdog,
        ),
        catch_up_wait: c.duration(
            &key("catch_up_wait"),
            raw.catch_up_wait.as_deref(),
            d.catch_up_wait,
        ),
    }
}
