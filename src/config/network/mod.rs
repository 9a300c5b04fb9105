//! `networks.<name>`: one chain served at `/<name>`, its backends and how
//! calls reach them. Each sub-section has its own file (head tracking, the
//! cache, filters and read-your-writes, upstreams and discovery, routes,
//! hedging); this one holds the network's own keys and `method_timeouts`.

mod beacon;
mod beacon_paths;
mod cache;
mod filters;
mod head;
mod hedge;
mod routes;
#[cfg(test)]
mod tests;
mod upstream;

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use serde::Deserialize;

use super::error::Checks;
use super::MethodPattern;

pub(super) use beacon::{validate as validate_beacon, NetworkKind};
pub use beacon::{BeaconEventsConfig, BeaconNetworkConfig, BeaconNodeConfig};
pub use beacon_paths::BeaconPathsConfig;
pub use cache::{CacheConfig, CACHE_CANON_WINDOW};
pub use filters::{FiltersConfig, ReadYourWritesConfig};
pub use head::HeadConfig;
pub use hedge::{HedgeDelay, HedgeRule, DEFAULT_HEDGE_MAX_EXTRA};
pub use routes::{RouteConfig, RouteFallback};
pub use upstream::{DiscoverConfig, UpstreamConfig, UpstreamTier};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNetwork {
    /// `execution` (the default) or `beacon` (see [`beacon`]).
    pub kind: Option<String>,
    /// Beacon networks only: their own listener.
    pub listen: Option<String>,
    /// Beacon networks only.
    pub max_lag_slots: Option<u64>,
    /// Beacon networks only.
    pub poll_interval: Option<String>,
    /// Beacon networks only: `/eth/v1/events`.
    pub events: Option<beacon::RawEvents>,
    /// Beacon networks only: the operator's allowlist additions.
    pub paths: Option<beacon_paths::RawPaths>,
    /// Whether `/readyz` needs this network to have an eligible backend
    /// (execution, default true) or node (beacon, default false).
    pub ready_required: Option<bool>,
    pub chain_id: Option<u64>,
    #[serde(default)]
    pub default: bool,
    pub max_lag_blocks: Option<u64>,
    pub request_timeout: Option<String>,
    pub max_attempts: Option<u64>,
    pub eject_after_failures: Option<u64>,
    pub max_response_bytes: Option<u64>,
    pub max_upstream_body_bytes: Option<u64>,
    pub max_logs_block_range: Option<u64>,
    pub upstream_batch_max: Option<u64>,
    pub upstream_max_in_flight: Option<u64>,
    pub saturated_batch_max: Option<u64>,
    pub saturated_batch_max_bytes: Option<u64>,
    pub method_timeouts: Option<BTreeMap<String, String>>,
    pub head: Option<head::RawHead>,
    pub cache: Option<cache::RawCache>,
    pub filters: Option<filters::RawFilters>,
    pub read_your_writes: Option<filters::RawReadYourWrites>,
    pub upstreams: Option<Vec<upstream::RawUpstream>>,
    pub discover: Option<Vec<upstream::RawDiscover>>,
    pub routes: Option<Vec<routes::RawRoute>>,
    pub hedge: Option<Vec<hedge::RawHedge>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NetworkConfig {
    pub name: String,
    pub chain_id: u64,
    /// Also served at `/`.
    pub default: bool,
    pub max_lag_blocks: u64,
    /// Time limit of one attempt at one backend.
    pub request_timeout: Duration,
    /// Attempts of one read across backends (1 = no retry).
    pub max_attempts: usize,
    /// Consecutive failed requests after which a backend is ejected until a
    /// probe succeeds.
    pub eject_after_failures: u32,
    pub max_response_bytes: usize,
    /// A request body for a backend longer than this is not sent: the
    /// client gets an error (the backends' own limit; Geth's is 5 MiB, and
    /// pinning `latest` makes a body a few bytes longer than the client's).
    pub max_upstream_body_bytes: usize,
    /// `eth_getLogs` over more blocks is refused before any backend is
    /// asked (a client's own `max_logs_block_range` wins over this).
    pub max_logs_block_range: u64,
    /// Entries of one client batch that go to the same backend are sent
    /// together, at most this many per upstream request (0 or 1: each alone).
    pub upstream_batch_max: usize,
    /// Requests in flight to one backend at once (0: no limit); more wait,
    /// within their time limit, for one to finish.
    pub upstream_max_in_flight: usize,
    /// Reads waiting for a saturated backend (all `upstream_max_in_flight`
    /// busy) go to it together on the next free slot, at most this many a
    /// request (0 or 1: each alone).
    pub saturated_batch_max: usize,
    /// ... and at most this many request bytes a batch.
    pub saturated_batch_max_bytes: usize,
    /// Time limits of one attempt for the methods they match, most specific
    /// first (exact names, then longer patterns); else `request_timeout`.
    pub method_timeouts: Vec<(MethodPattern, Duration)>,
    pub head: HeadConfig,
    pub cache: CacheConfig,
    /// The filters the gateway answers itself (`eth_newFilter` and kin).
    pub filters: FiltersConfig,
    /// Reads of a transaction sent through the gateway go where it was sent.
    pub read_your_writes: ReadYourWritesConfig,
    /// Backends listed in the config.
    pub upstreams: Vec<UpstreamConfig>,
    /// Groups of backends found in DNS (a headless Service), added to `upstreams`.
    pub discover: Vec<DiscoverConfig>,
    /// Methods sent to named upstreams only (see [`RouteConfig`]).
    pub routes: Vec<RouteConfig>,
    /// `hedge:`: reads sent to a second backend when the first is slow
    /// (empty: never; the first entry matching a method wins).
    pub hedge: Vec<HedgeRule>,
    /// `/readyz` fails while this network has no eligible backend (default
    /// true; false for a network whose outage should not take the others
    /// out of a load balancer).
    pub ready_required: bool,
}

/// The defaults of a network's own keys (its sections have their own).
struct Defaults;

impl Defaults {
    const MAX_LAG_BLOCKS: u64 = 2;
    const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
    const MAX_ATTEMPTS: u64 = 3;
    const EJECT_AFTER_FAILURES: u64 = 3;
    const MAX_RESPONSE_BYTES: u64 = 64 * 1024 * 1024;
    /// Geth's `defaultBodyLimit` (rpc/http.go).
    const MAX_UPSTREAM_BODY_BYTES: u64 = 5 * 1024 * 1024;
    const MAX_LOGS_BLOCK_RANGE: u64 = 10_000;
    /// Calls of one client batch sent to one backend in one request, at most.
    const UPSTREAM_BATCH_MAX: u64 = 10;
    /// No bound on a backend's requests in flight: nothing queues, nothing
    /// is batched across clients.
    const UPSTREAM_MAX_IN_FLIGHT: u64 = 0;
    /// Off: it did not win both measures of `loadtests/saturated-batch`.
    const SATURATED_BATCH_MAX: u64 = 0;
    const SATURATED_BATCH_MAX_BYTES: u64 = 256 * 1024;
    /// Tracing and debugging calls replay blocks: they need far longer than reads.
    const METHOD_TIMEOUTS: [(&'static str, Duration); 2] = [
        ("debug_*", Duration::from_secs(120)),
        ("trace_*", Duration::from_secs(120)),
    ];
}

impl NetworkConfig {
    /// The time limit of one attempt at one backend for `method`.
    pub fn timeout_for(&self, method: &str) -> Duration {
        if let Some(timeout) = self.route_for(method).and_then(|r| r.timeout) {
            return timeout;
        }
        self.method_timeouts
            .iter()
            .find(|(pattern, _)| pattern.matches(method))
            .map_or(self.request_timeout, |(_, t)| *t)
    }
}

/// Checks `networks.<name>`; `only_one` makes it the default network.
pub(super) fn validate(
    c: &mut Checks,
    name: &str,
    raw: RawNetwork,
    only_one: bool,
) -> NetworkConfig {
    let net = format!("networks.{name}");
    let at = |key: &str| format!("{net}.{key}");
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        c.fail(
            &net,
            "a network name is served as a URL path: use letters, digits, '-' and '_'",
        );
    }
    let beacon_only = [
        ("listen", raw.listen.is_some()),
        ("max_lag_slots", raw.max_lag_slots.is_some()),
        ("poll_interval", raw.poll_interval.is_some()),
        ("events", raw.events.is_some()),
        ("paths", raw.paths.is_some()),
    ];
    for (key, _) in beacon_only.iter().filter(|(_, given)| *given) {
        c.fail(
            at(key),
            "is a key of beacon networks only (add `kind: beacon`)",
        );
    }
    let chain_id = raw.chain_id.unwrap_or_else(|| {
        c.fail(
            at("chain_id"),
            "is required (each backend's eth_chainId is checked against it)",
        );
        0
    });
    let raw_discover = raw.discover.unwrap_or_default();
    let some_discover = !raw_discover.is_empty();
    let discover = raw_discover
        .into_iter()
        .enumerate()
        .filter_map(|(i, d)| upstream::discover(c, &format!("{net}.discover[{i}]"), d))
        .collect::<Vec<_>>();
    let upstreams_raw = raw.upstreams.unwrap_or_default();
    if upstreams_raw.is_empty() && !some_discover {
        c.fail(
            at("upstreams"),
            "at least one upstream (or a discover group) is required",
        );
    }
    let mut seen = HashSet::new();
    let mut upstreams = Vec::with_capacity(upstreams_raw.len());
    for (i, u) in upstreams_raw.into_iter().enumerate() {
        let up = upstream::validate(c, &format!("{net}.upstreams[{i}]"), u);
        if !up.name.is_empty() && !seen.insert(up.name.clone()) {
            c.fail(
                format!("{net}.upstreams[{i}].name"),
                format!("duplicate upstream name {:?}", up.name),
            );
        }
        upstreams.push(up);
    }
    if !some_discover
        && !upstreams.is_empty()
        && upstreams.iter().all(|u| u.tier != UpstreamTier::Primary)
    {
        c.fail(
            at("upstreams"),
            "no upstream is tier: primary; at least one must be (fallbacks serve only when no primary can, route-only upstreams only their routes)",
        );
    }
    let routes = routes::validate(c, &net, raw.routes, &upstreams);
    let count = |c: &mut Checks, key: &str, v: Option<u64>, d: u64, min: u64, max: u64| {
        c.range(&at(key), v, d, min, max)
    };
    NetworkConfig {
        name: name.to_string(),
        chain_id,
        default: raw.default || only_one,
        max_lag_blocks: count(
            c,
            "max_lag_blocks",
            raw.max_lag_blocks,
            Defaults::MAX_LAG_BLOCKS,
            0,
            1_000_000,
        ),
        request_timeout: c.duration(
            &at("request_timeout"),
            raw.request_timeout.as_deref(),
            Defaults::REQUEST_TIMEOUT,
        ),
        max_attempts: count(
            c,
            "max_attempts",
            raw.max_attempts,
            Defaults::MAX_ATTEMPTS,
            1,
            10,
        ) as usize,
        eject_after_failures: count(
            c,
            "eject_after_failures",
            raw.eject_after_failures,
            Defaults::EJECT_AFTER_FAILURES,
            1,
            1000,
        ) as u32,
        max_response_bytes: count(
            c,
            "max_response_bytes",
            raw.max_response_bytes,
            Defaults::MAX_RESPONSE_BYTES,
            1024,
            1 << 32,
        ) as usize,
        max_upstream_body_bytes: count(
            c,
            "max_upstream_body_bytes",
            raw.max_upstream_body_bytes,
            Defaults::MAX_UPSTREAM_BODY_BYTES,
            1024,
            1 << 32,
        ) as usize,
        max_logs_block_range: count(
            c,
            "max_logs_block_range",
            raw.max_logs_block_range,
            Defaults::MAX_LOGS_BLOCK_RANGE,
            1,
            u64::MAX,
        ),
        upstream_batch_max: count(
            c,
            "upstream_batch_max",
            raw.upstream_batch_max,
            Defaults::UPSTREAM_BATCH_MAX,
            0,
            1000,
        ) as usize,
        upstream_max_in_flight: count(
            c,
            "upstream_max_in_flight",
            raw.upstream_max_in_flight,
            Defaults::UPSTREAM_MAX_IN_FLIGHT,
            0,
            100_000,
        ) as usize,
        saturated_batch_max: count(
            c,
            "saturated_batch_max",
            raw.saturated_batch_max,
            Defaults::SATURATED_BATCH_MAX,
            0,
            1000,
        ) as usize,
        saturated_batch_max_bytes: count(
            c,
            "saturated_batch_max_bytes",
            raw.saturated_batch_max_bytes,
            Defaults::SATURATED_BATCH_MAX_BYTES,
            1024,
            1 << 32,
        ) as usize,
        method_timeouts: method_timeouts(c, &at("method_timeouts"), raw.method_timeouts),
        head: head::validate(c, &at("head"), raw.head.unwrap_or_default()),
        cache: cache::validate(c, &at("cache"), raw.cache.unwrap_or_default()),
        filters: filters::filters(c, &at("filters"), raw.filters.unwrap_or_default()),
        read_your_writes: filters::read_your_writes(
            c,
            &at("read_your_writes"),
            raw.read_your_writes.unwrap_or_default(),
        ),
        upstreams,
        discover,
        routes,
        hedge: hedge::rules(c, &at("hedge"), raw.hedge),
        ready_required: raw.ready_required.unwrap_or(true),
    }
}

/// `method_timeouts:`: method pattern -> duration. Given, it replaces the
/// defaults (`debug_*` and `trace_*`: 120s); exact names are tried before
/// globs, longer globs before shorter ones.
fn method_timeouts(
    c: &mut Checks,
    at: &str,
    raw: Option<BTreeMap<String, String>>,
) -> Vec<(MethodPattern, Duration)> {
    let Some(raw) = raw else {
        return Defaults::METHOD_TIMEOUTS
            .iter()
            .filter_map(|(p, t)| Some((MethodPattern::parse(p).ok()?, *t)))
            .collect();
    };
    let mut out = Vec::with_capacity(raw.len());
    for (pattern, text) in raw {
        let key = format!("{at}.{pattern}");
        let pattern = MethodPattern::parse(&pattern)
            .map_err(|e| c.fail(&key, e))
            .ok();
        let timeout = c.ok(super::error::duration(&key, &text));
        if let (Some(p), Some(t)) = (pattern, timeout) {
            out.push((p, t));
        }
    }
    // Most specific first: exact names, then the longest patterns.
    out.sort_by_key(|(p, _)| (!p.is_exact(), std::cmp::Reverse(p.as_str().len())));
    out
}
