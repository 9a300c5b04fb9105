//! The families of calls sent to backends on the request path (probes
//! excluded), and one backend's series of them, resolved when the backend
//! is built and removed when the last backend holding them goes, so that
//! backends DNS discovery or a reload removes do not stay in `/metrics`.
//! Beside them, a network's reads that waited for a backend to reach their
//! block (`Upstreams::reaching`), by how the wait ended.

use std::collections::HashMap;

use parking_lot::Mutex;
use prometheus::{Histogram, HistogramVec, IntCounter, IntCounterVec, Registry};

use super::{counter_vec, each, histogram_vec, Label, Metrics, LATENCY_BUCKETS};

/// The `outcome` label of `rpcgate_upstream_requests_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamOutcome {
    Ok,
    RpcError,
    Connect,
    Timeout,
    Transport,
    Status,
    TooLarge,
    BadReply,
    Memory,
}

impl Label for UpstreamOutcome {
    const ALL: &'static [UpstreamOutcome] = &[
        UpstreamOutcome::Ok,
        UpstreamOutcome::RpcError,
        UpstreamOutcome::Connect,
        UpstreamOutcome::Timeout,
        UpstreamOutcome::Transport,
        UpstreamOutcome::Status,
        UpstreamOutcome::TooLarge,
        UpstreamOutcome::BadReply,
        UpstreamOutcome::Memory,
    ];

    fn label(self) -> &'static str {
        match self {
            UpstreamOutcome::Ok => "ok",
            UpstreamOutcome::RpcError => "rpc_error",
            UpstreamOutcome::Connect => "connect",
            UpstreamOutcome::Timeout => "timeout",
            UpstreamOutcome::Transport => "transport",
            UpstreamOutcome::Status => "status",
            UpstreamOutcome::TooLarge => "too_large",
            UpstreamOutcome::BadReply => "bad_reply",
            UpstreamOutcome::Memory => "memory",
        }
    }
}

/// How a read's wait for a block nobody had ended: the `outcome` label of
/// `rpcgate_block_waits_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockWait {
    /// A backend reached the block: the read went there.
    Reached,
    /// The served head was derived again below it (the chain got shorter):
    /// a read of `latest` is pinned again, a block named by number is
    /// answered as a node would (null).
    Shorter,
    /// `head.catch_up_wait` passed with neither.
    TimedOut,
}

impl Label for BlockWait {
    const ALL: &'static [BlockWait] =
        &[BlockWait::Reached, BlockWait::Shorter, BlockWait::TimedOut];

    fn label(self) -> &'static str {
        match self {
            BlockWait::Reached => "reached",
            BlockWait::Shorter => "shorter",
            BlockWait::TimedOut => "timed_out",
        }
    }
}

/// A network's `rpcgate_block_waits_total` series, by [`BlockWait`].
pub struct BlockWaitSeries([IntCounter; 3]);

impl BlockWaitSeries {
    pub fn count(&self, outcome: BlockWait) {
        self.0[outcome as usize].inc();
    }
}

pub struct UpstreamMetrics {
    /// `rpcgate_upstream_requests_total{network,backend,outcome}`.
    pub requests: IntCounterVec,
    /// `rpcgate_upstream_request_duration_seconds{network,backend}`.
    pub duration: HistogramVec,
    /// `rpcgate_upstream_batch_calls{network,backend}`: calls per batch
    /// request of client batch entries (`router::batch`): its `_count` is
    /// the batch requests, its `_sum` the calls in them.
    pub batch_calls: HistogramVec,
    /// `rpcgate_upstream_batches_refused_total{network,backend}`: batches the
    /// backend answered with something other than an array (an error for the
    /// whole batch, 413, no batch support): their calls were sent one by one.
    pub batches_refused: IntCounterVec,
    /// `rpcgate_block_waits_total{network,outcome}`: reads of a block at or
    /// below the served head that no eligible backend had, which waited for
    /// one to reach it, by [`BlockWait`].
    pub block_waits: IntCounterVec,
    /// How many live backends hold each (network, backend) series: a reload
    /// can build a backend's successor before the old one is dropped.
    holders: Mutex<HashMap<[String; 2], usize>>,
}

impl UpstreamMetrics {
    pub(super) fn register(r: &Registry) -> UpstreamMetrics {
        let labels = &["network", "backend"];
        UpstreamMetrics {
            requests: counter_vec(
                r,
                "rpcgate_upstream_requests_total",
                "Calls sent to a backend on the request path, by outcome.",
                &["network", "backend", "outcome"],
            ),
            duration: histogram_vec(
                r,
                "rpcgate_upstream_request_duration_seconds",
                "Round trip of one call to a backend.",
                labels,
                LATENCY_BUCKETS,
            ),
            batch_calls: histogram_vec(
                r,
                "rpcgate_upstream_batch_calls",
                "Calls in one batch request to a backend (entries of one client batch).",
                labels,
                &[2.0, 3.0, 5.0, 10.0, 20.0, 50.0, 100.0, 1000.0],
            ),
            batches_refused: counter_vec(
                r,
                "rpcgate_upstream_batches_refused_total",
                "Batch requests a backend answered with something other than an array; their calls went one by one.",
                labels,
            ),
            block_waits: counter_vec(
                r,
                "rpcgate_block_waits_total",
                "Reads of a block at or below the served head that no backend had, which waited for one to reach it, by outcome (reached, shorter, timed_out).",
                &["network", "outcome"],
            ),
            holders: Mutex::default(),
        }
    }
}

impl Metrics {
    /// A network's block wait series, resolved once (and so made at zero).
    pub fn block_waits(&self, network: &str) -> BlockWaitSeries {
        BlockWaitSeries(each::<BlockWait, 3>(&self.upstream.block_waits, &[network]))
    }
}

impl Metrics {
    /// The series of one backend, resolved once when the backend is built.
    pub fn upstream(&self, network: &str, backend: &str) -> UpstreamSeries {
        let m = &self.upstream;
        let labels = [network.to_string(), backend.to_string()];
        *m.holders.lock().entry(labels.clone()).or_default() += 1;
        let outcome =
            |o: UpstreamOutcome| m.requests.with_label_values(&[network, backend, o.label()]);
        UpstreamSeries {
            ok: outcome(UpstreamOutcome::Ok),
            rpc_error: outcome(UpstreamOutcome::RpcError),
            duration: m.duration.with_label_values(&[network, backend]),
            batch_calls: m.batch_calls.with_label_values(&[network, backend]),
            batch_refused: m.batches_refused.with_label_values(&[network, backend]),
            labels,
            metrics: self.clone(),
        }
    }
}

/// One backend's upstream series.
pub struct UpstreamSeries {
    metrics: Metrics,
    labels: [String; 2],
    pub ok: IntCounter,
    pub rpc_error: IntCounter,
    pub duration: Histogram,
    /// Calls per batch request (`rpcgate_upstream_batch_calls`).
    pub batch_calls: Histogram,
    /// Batches answered with a non-array (`rpcgate_upstream_batches_refused_total`).
    pub batch_refused: IntCounter,
}

impl UpstreamSeries {
    /// Counts a failed call by its kind. Failures are rare: their series are
    /// made when first counted, so `/metrics` shows only kinds that happened.
    pub fn failed(&self, kind: UpstreamOutcome) {
        let [network, backend] = &self.labels;
        self.metrics
            .upstream
            .requests
            .with_label_values(&[network, backend, kind.label()])
            .inc();
    }
}

impl Drop for UpstreamSeries {
    fn drop(&mut self) {
        let m = &self.metrics.upstream;
        // Held while the series go, so a successor cannot be resolved in between.
        let mut holders = m.holders.lock();
        let Some(n) = holders.get_mut(&self.labels) else {
            return;
        };
        *n -= 1;
        if *n > 0 {
            return;
        }
        holders.remove(&self.labels);
        let [network, backend] = &self.labels;
        let pair = [network.as_str(), backend.as_str()];
        for outcome in UpstreamOutcome::ALL {
            let _ = m
                .requests
                .remove_label_values(&[network, backend, outcome.label()]);
        }
        let _ = m.duration.remove_label_values(&pair);
        let _ = m.batch_calls.remove_label_values(&pair);
        let _ = m.batches_refused.remove_label_values(&pair);
    }
}
