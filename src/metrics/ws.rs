//! The families of client WebSockets and their subscriptions (`server::ws`,
//! `crate::subscriptions`). Labels are configured network names, the
//! subscription kinds and [`WsLimit`].

use prometheus::{IntCounterVec, IntGaugeVec, Registry};

use super::{counter_vec, gauge_vec, Label};

/// A WebSocket bound that tripped: the `limit` label of
/// `rpcgate_ws_limit_hits_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WsLimit {
    /// A client closed for not reading its messages.
    QueuedBytes,
    /// eth_subscribe refused: `server.max_upstream_subscriptions`.
    UpstreamSubscriptions,
    /// eth_subscribe refused: `server.max_topics_per_connection`.
    TopicsPerConnection,
    /// A client closed for taking nothing of a write for `server.write_timeout`.
    WriteTimeout,
    /// A client closed for a frame not finished within `server.ws_frame_timeout`.
    FrameTimeout,
}

impl Label for WsLimit {
    const ALL: &'static [WsLimit] = &[
        WsLimit::QueuedBytes,
        WsLimit::UpstreamSubscriptions,
        WsLimit::TopicsPerConnection,
        WsLimit::WriteTimeout,
        WsLimit::FrameTimeout,
    ];

    fn label(self) -> &'static str {
        match self {
            WsLimit::QueuedBytes => "queued_bytes",
            WsLimit::UpstreamSubscriptions => "upstream_subscriptions",
            WsLimit::TopicsPerConnection => "topics_per_connection",
            WsLimit::WriteTimeout => "write_timeout",
            WsLimit::FrameTimeout => "frame_timeout",
        }
    }
}

pub struct WsMetrics {
    /// `rpcgate_ws_connections{network}`: open client WebSocket connections.
    pub connections: IntGaugeVec,
    /// `rpcgate_ws_subscriptions{network,kind}`: client subscriptions held now.
    pub subscriptions: IntGaugeVec,
    /// `rpcgate_ws_subscription_failovers_total{network}`: upstream
    /// subscriptions moved to another backend.
    pub failovers: IntCounterVec,
    /// `rpcgate_ws_limit_hits_total{network,limit}`, by [`WsLimit`].
    pub limit_hits: IntCounterVec,
}

impl WsMetrics {
    pub(super) fn register(r: &Registry) -> WsMetrics {
        WsMetrics {
            connections: gauge_vec(
                r,
                "rpcgate_ws_connections",
                "Open client WebSocket connections.",
                &["network"],
            ),
            subscriptions: gauge_vec(
                r,
                "rpcgate_ws_subscriptions",
                "Client eth_subscribe subscriptions held now, by kind (newHeads, logs, newPendingTransactions).",
                &["network", "kind"],
            ),
            failovers: counter_vec(
                r,
                "rpcgate_ws_subscription_failovers_total",
                "Upstream subscriptions moved to another backend after their socket dropped or their backend left the eligible set.",
                &["network"],
            ),
            limit_hits: counter_vec(
                r,
                "rpcgate_ws_limit_hits_total",
                "WebSocket bounds that tripped: queued_bytes (a client closed for not reading its messages), upstream_subscriptions and topics_per_connection (eth_subscribe refused with -32005).",
                &["network", "limit"],
            ),
        }
    }

    /// The series of a bound of `network` (made when first tripped).
    pub fn limit_hit(&self, network: &str, limit: WsLimit) -> prometheus::IntCounter {
        self.limit_hits.with_label_values(&[network, limit.label()])
    }
}
