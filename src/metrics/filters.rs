//! The families of the filters the gateway answers itself (`crate::filters`,
//! which resolves a network's series of them).

use prometheus::{IntCounterVec, IntGaugeVec, Registry};

use super::{counter_vec, gauge_vec, Label};

/// Which cap refused a filter: the `reason` label of
/// `rpcgate_filters_refused_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterRefusal {
    /// `filters.max_per_client`.
    Client,
    /// `filters.max_total`.
    Total,
    /// `filters.max_state_bytes`.
    Bytes,
}

impl Label for FilterRefusal {
    const ALL: &'static [FilterRefusal] = &[
        FilterRefusal::Client,
        FilterRefusal::Total,
        FilterRefusal::Bytes,
    ];

    fn label(self) -> &'static str {
        match self {
            FilterRefusal::Client => "client",
            FilterRefusal::Total => "total",
            FilterRefusal::Bytes => "bytes",
        }
    }
}

/// `rpcgate_filters*`: filters owned by the gateway, by network.
pub struct FilterMetrics {
    /// `rpcgate_filters_live{network}`: live filters (in Redis: as this
    /// replica last counted them).
    pub live: IntGaugeVec,
    /// `rpcgate_filters_created_total{network,kind}`: kind is block, log or pending.
    pub created: IntCounterVec,
    /// `rpcgate_filters_expired_total{network}`: filters dropped after `filters.expiry` without a poll.
    pub expired: IntCounterVec,
    /// `rpcgate_filters_refused_total{network,reason}`, by [`FilterRefusal`].
    pub refused: IntCounterVec,
    /// `rpcgate_filters_pending_hashes_total{network}`: pending-transaction
    /// hashes this replica's `newPendingTransactions` feed recorded for
    /// pending filters.
    pub pending_hashes: IntCounterVec,
    /// `rpcgate_filters_state_bytes{network}`: bytes the filters of this
    /// process hold (criteria and replay logs, as stored), within
    /// `filters.max_state_bytes`.
    pub state_bytes: IntGaugeVec,
}

impl FilterMetrics {
    pub(super) fn register(r: &Registry) -> FilterMetrics {
        FilterMetrics {
            live: gauge_vec(
                r,
                "rpcgate_filters_live",
                "Live filters owned by the gateway.",
                &["network"],
            ),
            created: counter_vec(
                r,
                "rpcgate_filters_created_total",
                "Filters created (eth_newFilter, eth_newBlockFilter, eth_newPendingTransactionFilter), by kind.",
                &["network", "kind"],
            ),
            expired: counter_vec(
                r,
                "rpcgate_filters_expired_total",
                "Filters dropped because nobody polled them within filters.expiry.",
                &["network"],
            ),
            refused: counter_vec(
                r,
                "rpcgate_filters_refused_total",
                "Filter creations refused by filters.max_per_client (client), filters.max_total (total) or filters.max_state_bytes (bytes).",
                &["network", "reason"],
            ),
            pending_hashes: counter_vec(
                r,
                "rpcgate_filters_pending_hashes_total",
                "Pending-transaction hashes recorded for pending filters from this replica's newPendingTransactions feed.",
                &["network"],
            ),
            state_bytes: gauge_vec(
                r,
                "rpcgate_filters_state_bytes",
                "Bytes the gateway's in-memory filters hold (criteria and logs kept for reorg replay).",
                &["network"],
            ),
        }
    }
}
