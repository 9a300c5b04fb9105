//! The Beacon API front's request families: requests per path group and
//! outcome, their latency per group, and the cache of answers that cannot
//! change. The beacon module resolves a network's series once, when the
//! network starts (its path groups are its own closed set of words); the
//! nodes' state (slot, lag, eligibility) is read at scrape time instead
//! (see [`super::state`]).

use prometheus::{HistogramVec, IntCounterVec, IntGaugeVec, Registry};

use super::{counter_vec, gauge_vec, histogram_vec, LATENCY_BUCKETS};

/// `rpcgate_beacon_*` families updated on the request path.
pub struct BeaconMetrics {
    /// `rpcgate_beacon_requests_total{network,group,outcome}`.
    pub requests: IntCounterVec,
    /// `rpcgate_beacon_request_duration_seconds{network,group}`.
    pub duration: HistogramVec,
    /// `rpcgate_beacon_cache_lookups_total{network,result}`: hit or miss.
    pub cache_lookups: IntCounterVec,
    /// `rpcgate_beacon_cache_bytes{network}`: bytes of answers held.
    pub cache_bytes: IntGaugeVec,
}

impl BeaconMetrics {
    pub(super) fn register(r: &Registry) -> BeaconMetrics {
        BeaconMetrics {
            requests: counter_vec(
                r,
                "rpcgate_beacon_requests_total",
                "Beacon API requests answered, by path group (state, block, beacon, config, node, validator, produce, publish, subscribe, events, closed) and outcome (ok, not_found, client_error, node_error, refused, unavailable, failed).",
                &["network", "group", "outcome"],
            ),
            duration: histogram_vec(
                r,
                "rpcgate_beacon_request_duration_seconds",
                "Time to answer a Beacon API request, by path group, from its routing to its answer (the body read included).",
                &["network", "group"],
                LATENCY_BUCKETS,
            ),
            cache_lookups: counter_vec(
                r,
                "rpcgate_beacon_cache_lookups_total",
                "Cacheable Beacon API reads (genesis, spec, fork schedule, deposit contract, headers and blocks by root), by result (hit, miss).",
                &["network", "result"],
            ),
            cache_bytes: gauge_vec(
                r,
                "rpcgate_beacon_cache_bytes",
                "Bytes of Beacon API answers held in the cache.",
                &["network"],
            ),
        }
    }
}
