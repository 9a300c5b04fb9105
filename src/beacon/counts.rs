//! A beacon network's request series: requests per path group and
//! outcome, latency per group, cache hits and misses, resolved once when
//! the network starts (the request path indexes arrays, it looks nothing
//! up by label).

use std::time::Duration;

use http::StatusCode;
use prometheus::{Histogram, IntCounter, IntGauge};

use super::paths::Group;
use super::BeaconError;
use crate::metrics::{BeaconMetrics, Label};

/// How a request ended: the `outcome` label of `rpcgate_beacon_requests_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Outcome {
    /// A 2xx answer (a node's or the cache's).
    Ok,
    /// A node's 404 (after the one retry on another node).
    NotFound,
    /// A node's other 4xx, passed through.
    ClientError,
    /// A node's 5xx, passed through (every node asked failed so).
    NodeError,
    /// Refused by the gateway: allowlist, key, rate limit, body bound, not served yet.
    Refused,
    /// No node could serve (503).
    Unavailable,
    /// No node answered (connection, timeout, an answer over the bound).
    Failed,
}

impl Label for Outcome {
    const ALL: &'static [Outcome] = &[
        Outcome::Ok,
        Outcome::NotFound,
        Outcome::ClientError,
        Outcome::NodeError,
        Outcome::Refused,
        Outcome::Unavailable,
        Outcome::Failed,
    ];

    fn label(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::NotFound => "not_found",
            Outcome::ClientError => "client_error",
            Outcome::NodeError => "node_error",
            Outcome::Refused => "refused",
            Outcome::Unavailable => "unavailable",
            Outcome::Failed => "failed",
        }
    }
}

impl Outcome {
    /// The outcome of an answer with `status`.
    pub(super) fn of_status(status: StatusCode) -> Outcome {
        if status.is_success() {
            Outcome::Ok
        } else if status == StatusCode::NOT_FOUND {
            Outcome::NotFound
        } else if status.is_server_error() {
            Outcome::NodeError
        } else if status.is_client_error() {
            Outcome::ClientError
        } else {
            Outcome::Ok
        }
    }

    /// The outcome of a failure of the gateway's own.
    pub(super) fn of_error(e: &BeaconError) -> Outcome {
        match e {
            BeaconError::NoEligibleNode | BeaconError::HeadBehindClient => Outcome::Unavailable,
            BeaconError::Node(_) | BeaconError::ReplyTooLarge(_) => Outcome::Failed,
            _ => Outcome::Refused,
        }
    }
}

const GROUPS: usize = 11;
const OUTCOMES: usize = 7;

/// One network's series.
pub(super) struct Series {
    requests: [[IntCounter; OUTCOMES]; GROUPS],
    duration: [Histogram; GROUPS],
    pub(super) cache_hits: IntCounter,
    pub(super) cache_misses: IntCounter,
    pub(super) cache_bytes: IntGauge,
}

impl Series {
    pub(super) fn new(m: &BeaconMetrics, network: &str) -> Series {
        debug_assert_eq!(Group::ALL.len(), GROUPS);
        debug_assert_eq!(Outcome::ALL.len(), OUTCOMES);
        Series {
            requests: std::array::from_fn(|g| {
                std::array::from_fn(|o| {
                    m.requests.with_label_values(&[
                        network,
                        Group::ALL[g].label(),
                        Outcome::ALL[o].label(),
                    ])
                })
            }),
            duration: std::array::from_fn(|g| {
                m.duration
                    .with_label_values(&[network, Group::ALL[g].label()])
            }),
            cache_hits: m.cache_lookups.with_label_values(&[network, "hit"]),
            cache_misses: m.cache_lookups.with_label_values(&[network, "miss"]),
            cache_bytes: m.cache_bytes.with_label_values(&[network]),
        }
    }

    pub(super) fn count(&self, group: Group, outcome: Outcome, took: Duration) {
        let g = group as usize;
        if let Some(row) = self.requests.get(g) {
            row[outcome as usize].inc();
        }
        if let Some(h) = self.duration.get(g) {
            h.observe(took.as_secs_f64());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Series arrays are indexed by `value as usize`.
    #[test]
    fn label_lists_are_in_declaration_order() {
        for (i, g) in Group::ALL.iter().enumerate() {
            assert_eq!(*g as usize, i, "{g:?}");
        }
        for (i, o) in Outcome::ALL.iter().enumerate() {
            assert_eq!(*o as usize, i, "{o:?}");
        }
    }
}
