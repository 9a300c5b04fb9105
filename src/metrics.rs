//! The metrics registry and the names of rpcgate's metrics.
//!
//! One process-wide [`prometheus::Registry`] owned here, so every metric name
//! is declared in one file. Today it holds the client-policy counters; issue 5
//! extends it (request latency, backend health, the `/metrics` endpoint).
//!
//! Labels only ever carry names from the config (a client's name, or
//! `anonymous`) and fixed words: nothing a caller sends becomes a label, so a
//! client cannot grow the registry, and no key or key hash ever appears.

use std::sync::LazyLock;

use prometheus::{Encoder, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder};

pub struct Metrics {
    pub registry: Registry,
    /// `rpcgate_policy_rate_limited_total{client}`: calls refused by a rate limit.
    pub rate_limited: IntCounterVec,
    /// `rpcgate_policy_blocked_total{client}`: calls to a method the client may not call.
    pub blocked: IntCounterVec,
    /// `rpcgate_policy_unauthorized_total`: requests with an unknown key, or
    /// with none where a key is required.
    pub unauthorized: IntCounter,
    /// `rpcgate_policy_connections_refused_total`: connections over the per-IP cap.
    pub connections_refused: IntCounter,
    /// `rpcgate_policy_redis_fallbacks_total`: rate-limit checks that Redis did
    /// not answer, decided by the fallback setting instead.
    pub redis_fallbacks: IntCounter,
    // WebSocket listener and subscriptions (labels: configured network names
    // and the three subscription kinds).
    /// `rpcgate_ws_connections{network}`: open client WebSocket connections.
    pub ws_connections: IntGaugeVec,
    /// `rpcgate_ws_subscriptions{network,kind}`: client subscriptions held now.
    pub ws_subscriptions: IntGaugeVec,
    /// `rpcgate_ws_subscription_failovers_total{network}`: upstream
    /// subscriptions moved to another backend.
    pub ws_subscription_failovers: IntCounterVec,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// The process's metrics.
pub fn metrics() -> &'static Metrics {
    &METRICS
}

impl Metrics {
    fn new() -> Metrics {
        let registry = Registry::new();
        let rate_limited = IntCounterVec::new(
            Opts::new(
                "rpcgate_policy_rate_limited_total",
                "Calls refused by a client's rate limit (requests or compute units).",
            ),
            &["client"],
        )
        .expect("a valid metric");
        let blocked = IntCounterVec::new(
            Opts::new(
                "rpcgate_policy_blocked_total",
                "Calls to a method the client may not call.",
            ),
            &["client"],
        )
        .expect("a valid metric");
        let unauthorized = IntCounter::new(
            "rpcgate_policy_unauthorized_total",
            "Requests with an unknown API key, or without one where a key is required.",
        )
        .expect("a valid metric");
        let connections_refused = IntCounter::new(
            "rpcgate_policy_connections_refused_total",
            "Connections refused because their client IP had too many open.",
        )
        .expect("a valid metric");
        let redis_fallbacks = IntCounter::new(
            "rpcgate_policy_redis_fallbacks_total",
            "Rate-limit checks Redis did not answer, decided by the fallback setting.",
        )
        .expect("a valid metric");
        for c in [&rate_limited, &blocked] {
            registry
                .register(Box::new(c.clone()))
                .expect("unique metric names");
        }
        for c in [&unauthorized, &connections_refused, &redis_fallbacks] {
            registry
                .register(Box::new(c.clone()))
                .expect("unique metric names");
        }
        let (ws_connections, ws_subscriptions, ws_subscription_failovers) = ws_metrics(&registry);
        Metrics {
            registry,
            rate_limited,
            blocked,
            unauthorized,
            connections_refused,
            redis_fallbacks,
            ws_connections,
            ws_subscriptions,
            ws_subscription_failovers,
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("encoding into a Vec cannot fail");
        String::from_utf8(out).expect("the text format is UTF-8")
    }
}

/// The WebSocket metrics, registered in `registry`.
fn ws_metrics(registry: &Registry) -> (IntGaugeVec, IntGaugeVec, IntCounterVec) {
    let connections = IntGaugeVec::new(
        Opts::new(
            "rpcgate_ws_connections",
            "Open client WebSocket connections.",
        ),
        &["network"],
    )
    .expect("a valid metric");
    let subscriptions = IntGaugeVec::new(
        Opts::new(
            "rpcgate_ws_subscriptions",
            "Client eth_subscribe subscriptions held now, by kind (newHeads, logs, newPendingTransactions).",
        ),
        &["network", "kind"],
    )
    .expect("a valid metric");
    let failovers = IntCounterVec::new(
        Opts::new(
            "rpcgate_ws_subscription_failovers_total",
            "Upstream subscriptions moved to another backend after their socket dropped or their backend left the eligible set.",
        ),
        &["network"],
    )
    .expect("a valid metric");
    for g in [&connections, &subscriptions] {
        registry
            .register(Box::new(g.clone()))
            .expect("unique metric names");
    }
    registry
        .register(Box::new(failovers.clone()))
        .expect("unique metric names");
    (connections, subscriptions, failovers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_render_with_their_names() {
        metrics().rate_limited.with_label_values(&["dapp"]).inc();
        metrics().redis_fallbacks.inc();
        let text = metrics().render();
        assert!(text.contains("rpcgate_policy_rate_limited_total{client=\"dapp\"}"));
        assert!(text.contains("rpcgate_policy_redis_fallbacks_total"));
    }
}
