//! The call families (`rpcgate_requests_total`, the request latency
//! histogram) and a network's series of them, resolved once and then read
//! without locks: looking a labelled series up in the registry hashes every
//! label and takes a read lock, too much for every call of the request path.

use std::collections::HashSet;
use std::sync::{LazyLock, OnceLock};
use std::time::Duration;

use arc_swap::ArcSwap;
use prometheus::{Histogram, HistogramVec, IntCounter, IntCounterVec, Registry};

use super::{counter_vec, histogram_vec, Label, LATENCY_BUCKETS};
use crate::eth::methods::{Resolved, METHODS};

/// Every method with a label of its own: the methods of the method table.
pub static KNOWN_METHODS: LazyLock<HashSet<&'static str>> =
    LazyLock::new(|| METHODS.iter().map(|m| m.name).collect());

/// The label at each position: the method table's names in its order, then
/// `other`.
static METHOD_LABELS: LazyLock<Vec<&'static str>> = LazyLock::new(|| {
    let mut labels: Vec<&'static str> = METHODS.iter().map(|m| m.name).collect();
    labels.push("other");
    labels
});

/// How one call ended, as the `outcome` label of `rpcgate_requests_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub enum Outcome {
    /// A result, from a backend or the cache.
    Ok,
    /// A backend's JSON-RPC error (a revert, a bad argument): the node's
    /// answer, passed on.
    RpcError,
    /// No answer: no backend could serve, or every attempt failed.
    Failed,
    /// A method the caller may not call.
    Blocked,
    /// Over the caller's rate limit, or over a batch's response budget.
    Limited,
    /// Not a valid JSON-RPC call.
    Invalid,
}

impl Label for Outcome {
    const ALL: &'static [Outcome] = &[
        Outcome::Ok,
        Outcome::RpcError,
        Outcome::Failed,
        Outcome::Blocked,
        Outcome::Limited,
        Outcome::Invalid,
    ];

    fn label(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::RpcError => "rpc_error",
            Outcome::Failed => "failed",
            Outcome::Blocked => "blocked",
            Outcome::Limited => "limited",
            Outcome::Invalid => "invalid",
        }
    }
}

impl Outcome {
    /// The label text (see [`Label`]), callable without the trait in scope.
    pub fn label(self) -> &'static str {
        Label::label(self)
    }
}

/// `rpcgate_requests_total` and `rpcgate_request_duration_seconds`.
pub struct CallMetrics {
    /// `rpcgate_requests_total{network,method,client,outcome}`: calls (each
    /// batch entry is one) by how they ended.
    pub requests: IntCounterVec,
    /// `rpcgate_request_duration_seconds{network,method}`: time to answer a
    /// call that was routed (a hit, or backend calls with their retries).
    pub request_duration: HistogramVec,
}

impl CallMetrics {
    pub(super) fn register(r: &Registry) -> CallMetrics {
        CallMetrics {
            requests: counter_vec(
                r,
                "rpcgate_requests_total",
                "JSON-RPC calls (each batch entry is one) by network, method, client and outcome.",
                &["network", "method", "client", "outcome"],
            ),
            request_duration: histogram_vec(
                r,
                "rpcgate_request_duration_seconds",
                "Time to answer a routed call, from the cache or backends (retries included).",
                &["network", "method"],
                LATENCY_BUCKETS,
            ),
        }
    }

    /// One network's series (made as they are first used).
    pub fn network(&self, network: &str) -> NetworkSeries {
        NetworkSeries {
            network: network.to_string(),
            requests: self.requests.clone(),
            durations: self.request_duration.clone(),
            methods: (0..METHOD_LABELS.len()).map(|_| OnceLock::new()).collect(),
        }
    }
}

/// One network's call series.
pub struct NetworkSeries {
    network: String,
    requests: IntCounterVec,
    durations: HistogramVec,
    /// By method label position (see `METHOD_LABELS`), filled on first use.
    methods: Box<[OnceLock<MethodSeries>]>,
}

struct MethodSeries {
    duration: Histogram,
    /// One entry per client seen calling this method: configured names and
    /// `anonymous`, so the list stays short and bounded by the config.
    clients: ArcSwap<Vec<ClientSeries>>,
}

#[derive(Clone)]
struct ClientSeries {
    client: Box<str>,
    /// By `Outcome as usize`.
    outcomes: [IntCounter; 6],
}

impl NetworkSeries {
    /// Counts one call of `method` by `client`; `elapsed` is given for routed calls.
    pub fn call<'a>(
        &self,
        method: impl Into<Resolved<'a>>,
        client: &str,
        outcome: Outcome,
        elapsed: Option<Duration>,
    ) {
        let labels = &*METHOD_LABELS;
        let at = method.into().position().unwrap_or(labels.len() - 1);
        let label = labels[at];
        let series = self.methods[at].get_or_init(|| MethodSeries {
            duration: self.durations.with_label_values(&[&self.network, label]),
            clients: ArcSwap::default(),
        });
        if let Some(elapsed) = elapsed {
            series.duration.observe(elapsed.as_secs_f64());
        }
        if let Some(c) = series.clients.load().iter().find(|c| &*c.client == client) {
            c.outcomes[outcome as usize].inc();
            return;
        }
        let resolved = ClientSeries {
            client: client.into(),
            outcomes: super::each::<Outcome, 6>(&self.requests, &[&self.network, label, client]),
        };
        resolved.outcomes[outcome as usize].inc();
        series.clients.rcu(|old| {
            let mut list = Vec::clone(old);
            if !list.iter().any(|c| &*c.client == client) {
                list.push(resolved.clone());
            }
            list
        });
    }
}

#[cfg(test)]
mod tests {
    use super::super::Metrics;
    use super::*;

    #[test]
    fn call_series_fold_unknown_methods_and_count_each_client_apart() {
        let metrics = Metrics::new();
        let series = metrics.calls.network("unit-net");
        let at = |method: &str, client: &str, outcome: &str| {
            metrics
                .calls
                .requests
                .with_label_values(&["unit-net", method, client, outcome])
                .get()
        };
        for _ in 0..3 {
            series.call(
                "eth_call",
                "dapp",
                Outcome::Ok,
                Some(Duration::from_millis(2)),
            );
        }
        series.call("eth_call", "anonymous", Outcome::Limited, None);
        series.call("eth_madeUp", "dapp", Outcome::Blocked, None);
        series.call("", "dapp", Outcome::Invalid, None);
        assert_eq!(at("eth_call", "dapp", "ok"), 3);
        assert_eq!(at("eth_call", "anonymous", "limited"), 1);
        assert_eq!(at("eth_call", "anonymous", "ok"), 0);
        assert_eq!(at("other", "dapp", "blocked"), 1);
        assert_eq!(at("other", "dapp", "invalid"), 1);
        let histogram = metrics
            .calls
            .request_duration
            .with_label_values(&["unit-net", "eth_call"]);
        assert_eq!(histogram.get_sample_count(), 3);
        assert!(!metrics.render().contains("eth_madeUp"));
    }
}
