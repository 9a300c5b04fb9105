//! The metrics registry and the names of rpcgate's metrics.
//!
//! One process-wide [`prometheus::Registry`] owned here, so every metric name
//! is declared in one file: the counters and histograms the request path and
//! the upstream clients update, and (in [`state`]) the names of the gauges of
//! backends, heads, caches and reloads. Those are not kept in the registry:
//! `/metrics` reads them from the current snapshots at scrape time (see
//! `server::admin`), so the request path pays nothing for them.
//!
//! Labels only ever carry names from the config (a network, a backend, a
//! client's name or `anonymous`) and fixed words. A method name becomes a
//! label only when it is one of [`KNOWN_METHODS`] (the method table of
//! [`crate::eth::methods`]); anything else a caller invents is counted as
//! `other`. So nothing a caller sends can grow the
//! registry, and no key or key hash ever appears.

use std::collections::{HashMap, HashSet};
use std::sync::{LazyLock, OnceLock};

use parking_lot::Mutex;
use std::time::Duration;

use arc_swap::ArcSwap;
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

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

/// The metrics read from the snapshots at scrape time (see `server::admin`):
/// declared here with the others, so that every name lives in this file.
pub mod state {
    /// A metric family's name, type and help text.
    #[derive(Debug, Clone, Copy)]
    pub struct StateMetric {
        pub name: &'static str,
        pub kind: &'static str,
        pub help: &'static str,
    }

    pub const BACKEND_HEAD: StateMetric = StateMetric {
        name: "rpcgate_backend_head",
        kind: "gauge",
        help: "Latest block number of a backend.",
    };
    pub const BACKEND_LAG_BLOCKS: StateMetric = StateMetric {
        name: "rpcgate_backend_lag_blocks",
        kind: "gauge",
        help: "Blocks a backend is behind the best head.",
    };
    pub const BACKEND_ELIGIBLE: StateMetric = StateMetric {
        name: "rpcgate_backend_eligible",
        kind: "gauge",
        help: "1 when a backend may serve.",
    };
    pub const BACKEND_IN_FLIGHT: StateMetric = StateMetric {
        name: "rpcgate_backend_in_flight",
        kind: "gauge",
        help: "Requests in flight at a backend.",
    };
    pub const BACKEND_LATENCY_SECONDS: StateMetric = StateMetric {
        name: "rpcgate_backend_latency_seconds",
        kind: "gauge",
        help: "Peak-EWMA latency estimate of a backend.",
    };
    pub const SERVED_HEAD: StateMetric = StateMetric {
        name: "rpcgate_served_head",
        kind: "gauge",
        help: "The head rpcgate serves as latest.",
    };
    pub const FINALIZED_BLOCK: StateMetric = StateMetric {
        name: "rpcgate_finalized_block",
        kind: "gauge",
        help: "The finalized block of a network.",
    };
    pub const ELIGIBLE_BACKENDS: StateMetric = StateMetric {
        name: "rpcgate_eligible_backends",
        kind: "gauge",
        help: "Backends that may serve.",
    };
    pub const FALLBACK_SERVING: StateMetric = StateMetric {
        name: "rpcgate_fallback_serving",
        kind: "gauge",
        help: "1 while no primary upstream can serve and the tier: fallback upstreams do.",
    };
    pub const BACKEND_STATE_HISTORY_BLOCKS: StateMetric = StateMetric {
        name: "rpcgate_backend_state_history_blocks",
        kind: "gauge",
        help: "Blocks of state a backend keeps below its head, configured or learned (absent: not known to lack any).",
    };
    pub const BACKEND_MISSING_STATE_TOTAL: StateMetric = StateMetric {
        name: "rpcgate_backend_missing_state_total",
        kind: "counter",
        help: "Old-state reads a backend answered with missing state (retried elsewhere, not counted as failures).",
    };
    pub const CACHE_EVENTS_TOTAL: StateMetric = StateMetric {
        name: "rpcgate_cache_events_total",
        kind: "counter",
        help: "Cache lookups and stores by outcome.",
    };
    pub const CACHE_BYTES: StateMetric = StateMetric {
        name: "rpcgate_cache_bytes",
        kind: "gauge",
        help: "Bytes held by the in-memory cache (keys, answers, bookkeeping).",
    };
    pub const CACHE_MAX_BYTES: StateMetric = StateMetric {
        name: "rpcgate_cache_max_bytes",
        kind: "gauge",
        help: "The byte bound of the in-memory cache.",
    };
    pub const CACHE_ENTRIES: StateMetric = StateMetric {
        name: "rpcgate_cache_entries",
        kind: "gauge",
        help: "Entries in the in-memory cache.",
    };
    pub const RELOADS_TOTAL: StateMetric = StateMetric {
        name: "rpcgate_reloads_total",
        kind: "counter",
        help: "Config reloads by result.",
    };
    pub const RELOAD_RESTART_REQUIRED_TOTAL: StateMetric = StateMetric {
        name: "rpcgate_reload_restart_required_total",
        kind: "counter",
        help: "Applied config reloads that changed a key only a restart applies (the running value stayed), by key.",
    };
    pub const LOG_REFUSALS_SUPPRESSED_TOTAL: StateMetric = StateMetric {
        name: "rpcgate_log_refusals_suppressed_total",
        kind: "counter",
        help: "Log lines of refused requests left out (over log.refusals_per_second); each refusal is counted in its own metric.",
    };
    pub const MEMORY_INFLIGHT_BYTES: StateMetric = StateMetric {
        name: "rpcgate_memory_inflight_bytes",
        kind: "gauge",
        help: "Bytes held against a memory budget now, by kind (answers: upstream replies being read and answers being written; requests: request bodies being read).",
    };
    pub const MEMORY_BUDGET_BYTES: StateMetric = StateMetric {
        name: "rpcgate_memory_budget_bytes",
        kind: "gauge",
        help: "The bound of a memory budget, by kind (server.max_inflight_answer_bytes, server.max_inflight_request_bytes).",
    };
    pub const MEMORY_BUDGET_REFUSALS_TOTAL: StateMetric = StateMetric {
        name: "rpcgate_memory_budget_refusals_total",
        kind: "counter",
        help: "Reservations a memory budget refused after server.memory_wait, by kind; each call refused got -32005.",
    };
    pub const READY: StateMetric = StateMetric {
        name: "rpcgate_ready",
        kind: "gauge",
        help: "1 when ready for traffic.",
    };
}

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

impl Outcome {
    const ALL: [Outcome; 6] = [
        Outcome::Ok,
        Outcome::RpcError,
        Outcome::Failed,
        Outcome::Blocked,
        Outcome::Limited,
        Outcome::Invalid,
    ];

    pub fn label(self) -> &'static str {
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

/// The `outcome` labels of `rpcgate_upstream_requests_total`.
pub const UPSTREAM_OUTCOMES: &[&str] = &[
    "ok",
    "rpc_error",
    "connect",
    "timeout",
    "transport",
    "status",
    "too_large",
    "bad_reply",
    "memory",
];

/// Seconds, from half a millisecond (a cache hit) to ten seconds (a slow
/// eth_getLogs).
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

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
    /// `rpcgate_connections_closed_total{reason}`: client connections the
    /// listener closed at a deadline (`first_request`, `idle`, `write`).
    pub connections_closed: IntCounterVec,
    /// `rpcgate_policy_redis_fallbacks_total`: rate-limit checks that Redis did
    /// not answer, decided by the fallback setting instead.
    pub redis_fallbacks: IntCounter,
    /// `rpcgate_panics_total{stage}`: panics caught while answering, by
    /// where (`call`: one call's pipeline, `message`: the rest of a message).
    pub panics: IntCounterVec,
    /// `rpcgate_requests_total{network,method,client,outcome}`: calls (each
    /// batch entry is one) by how they ended.
    pub requests: IntCounterVec,
    /// `rpcgate_request_duration_seconds{network,method}`: time to answer a
    /// call that was routed (a hit, or backend calls with their retries).
    pub request_duration: HistogramVec,
    /// `rpcgate_http_responses_total{code}`: HTTP responses by status code.
    pub http_responses: IntCounterVec,
    /// Its `code="200"` series, resolved once: nearly every response is one,
    /// and a lookup by label hashes the label and takes the family's lock.
    http_ok: IntCounter,
    /// `rpcgate_upstream_requests_total{network,backend,outcome}`: calls sent
    /// to a backend on the request path (probes excluded).
    pub upstream_requests: IntCounterVec,
    /// `rpcgate_upstream_request_duration_seconds{network,backend}`.
    pub upstream_duration: HistogramVec,
    /// Client batch entries sent to a backend together (`router::batch`).
    pub upstream_batches: UpstreamBatchMetrics,
    /// How many live backends hold each (network, backend) series: a reload
    /// can build a backend's successor before the old one is dropped.
    upstream_holders: Mutex<HashMap<[String; 2], usize>>,
    // WebSocket listener and subscriptions (labels: configured network names
    // and the three subscription kinds).
    /// `rpcgate_ws_connections{network}`: open client WebSocket connections.
    pub ws_connections: IntGaugeVec,
    /// `rpcgate_ws_subscriptions{network,kind}`: client subscriptions held now.
    pub ws_subscriptions: IntGaugeVec,
    /// `rpcgate_ws_subscription_failovers_total{network}`: upstream
    /// subscriptions moved to another backend.
    pub ws_subscription_failovers: IntCounterVec,
    /// `rpcgate_ws_limit_hits_total{network,limit}`: WebSocket bounds that
    /// tripped: `queued_bytes` (a client closed for not reading),
    /// `upstream_subscriptions` and `topics_per_connection` (eth_subscribe refused).
    pub ws_limit_hits: IntCounterVec,
    /// Compressed answers and decoded request bodies (`server::compression`).
    pub compression: CompressionMetrics,
    /// The filters the gateway answers itself (see `crate::filters`).
    pub filters: FilterMetrics,
    /// Reads steered to the backend that accepted a send (see `crate::router::ryw`).
    pub read_your_writes: ReadYourWritesMetrics,
    /// Hedged reads (see `router::hedge`).
    pub hedges: HedgeMetrics,
    /// `rpcgate_tls_handshake_failures_total`: client connections to the TLS
    /// listener whose handshake failed (closed before any request).
    pub tls_handshake_failures: IntCounter,
    /// `rpcgate_tls_certificate_reloads_total{result}`: changed certificate
    /// files, `applied` or `refused` (the old pair kept serving).
    pub tls_reloads: IntCounterVec,
    /// `rpcgate_routed_calls_total{network,route,outcome}`: calls of a
    /// method route (`routes:`), by the route's configured name or index,
    /// and how they ended: `routed` (answered by the route's upstreams),
    /// `fallback` (by the network's own backends), `failed`.
    pub routed_calls: IntCounterVec,
}

/// The series of upstream batches: entries of one client batch sent to one
/// backend as one JSON array (`router::batch`).
pub struct UpstreamBatchMetrics {
    /// `rpcgate_upstream_batch_calls{network,backend}`: calls per batch
    /// request (its `_count` is the batch requests, its `_sum` the calls in them).
    pub calls: HistogramVec,
    /// `rpcgate_upstream_batches_refused_total{network,backend}`: batches the
    /// backend answered with something other than an array (an error for the
    /// whole batch, 413, no batch support): their calls were sent one by one.
    pub refused: IntCounterVec,
}

impl UpstreamBatchMetrics {
    fn new(registry: &Registry) -> UpstreamBatchMetrics {
        let calls = HistogramVec::new(
            HistogramOpts::new(
                "rpcgate_upstream_batch_calls",
                "Calls in one batch request to a backend (entries of one client batch).",
            )
            .buckets(vec![2.0, 3.0, 5.0, 10.0, 20.0, 50.0, 100.0, 1000.0]),
            &["network", "backend"],
        )
        .expect("a valid metric");
        let refused = IntCounterVec::new(
            Opts::new(
                "rpcgate_upstream_batches_refused_total",
                "Batch requests a backend answered with something other than an array; their calls went one by one.",
            ),
            &["network", "backend"],
        )
        .expect("a valid metric");
        registry
            .register(Box::new(calls.clone()))
            .expect("unique metric names");
        registry
            .register(Box::new(refused.clone()))
            .expect("unique metric names");
        UpstreamBatchMetrics { calls, refused }
    }
}

/// The series of `server::compression`. Labels are coding tokens (`gzip`,
/// `deflate`, `br`, `zstd`, or `other` for a coding we do not decode) and
/// fixed words, so a caller's header cannot grow the registry.
pub struct CompressionMetrics {
    /// `rpcgate_http_compressed_responses_total{encoding}`: answers sent compressed.
    pub responses: IntCounterVec,
    /// `rpcgate_http_compression_saved_bytes_total{encoding}`: bytes not sent
    /// thanks to compression (answer size less compressed size).
    pub saved_bytes: IntCounterVec,
    /// `rpcgate_http_decoded_requests_total{encoding,outcome}`: request bodies
    /// with a `Content-Encoding`, by outcome: `ok`, `too_large` (the decoded
    /// size passed `server.max_body_bytes`: 413), `corrupt` (400),
    /// `unsupported` (415).
    pub decoded_requests: IntCounterVec,
}

/// `rpcgate_read_your_writes*`: sends remembered so that reads of them go
/// where they were sent, by network.
pub struct ReadYourWritesMetrics {
    /// `rpcgate_read_your_writes_entries{network}`: sends remembered now.
    pub entries: IntGaugeVec,
    /// `rpcgate_read_your_writes_reads_total{network,outcome}`: reads of a
    /// remembered send, `steered` (answered by the backend that accepted it)
    /// or `fallback` (that backend could not serve: routed as usual).
    pub reads: IntCounterVec,
    /// `rpcgate_read_your_writes_evictions_total{network,reason}`: sends
    /// forgotten, because the served head includes them (`included`), after
    /// the ttl (`expired`), or to make room (`full`).
    pub evictions: IntCounterVec,
}

impl ReadYourWritesMetrics {
    fn new(registry: &Registry) -> ReadYourWritesMetrics {
        let entries = IntGaugeVec::new(
            Opts::new(
                "rpcgate_read_your_writes_entries",
                "Sends remembered so that reads of them go to the backend that accepted them.",
            ),
            &["network"],
        )
        .expect("a valid metric");
        let reads = IntCounterVec::new(
            Opts::new(
                "rpcgate_read_your_writes_reads_total",
                "Reads of a remembered send: steered to the backend that accepted it, or fallback (routed as usual).",
            ),
            &["network", "outcome"],
        )
        .expect("a valid metric");
        let evictions = IntCounterVec::new(
            Opts::new(
                "rpcgate_read_your_writes_evictions_total",
                "Sends forgotten: included in the served head, expired (ttl), or full (max_entries).",
            ),
            &["network", "reason"],
        )
        .expect("a valid metric");
        registry
            .register(Box::new(entries.clone()))
            .expect("unique metric names");
        for c in [&reads, &evictions] {
            registry
                .register(Box::new(c.clone()))
                .expect("unique metric names");
        }
        ReadYourWritesMetrics {
            entries,
            reads,
            evictions,
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
    /// `rpcgate_filters_refused_total{network,reason}`: creations refused by
    /// `max_per_client` (reason `client`) or `max_total` (reason `total`).
    pub refused: IntCounterVec,
    /// `rpcgate_filters_pending_hashes_total{network}`: pending-transaction
    /// hashes this replica's `newPendingTransactions` feed recorded for
    /// pending filters.
    pub pending_hashes: IntCounterVec,
}

impl FilterMetrics {
    fn new(registry: &Registry) -> FilterMetrics {
        let live = IntGaugeVec::new(
            Opts::new("rpcgate_filters_live", "Live filters owned by the gateway."),
            &["network"],
        )
        .expect("a valid metric");
        let counter = |name: &str, help: &str, labels: &[&str]| {
            IntCounterVec::new(Opts::new(name, help), labels).expect("a valid metric")
        };
        let created = counter(
            "rpcgate_filters_created_total",
            "Filters created (eth_newFilter, eth_newBlockFilter, eth_newPendingTransactionFilter), by kind.",
            &["network", "kind"],
        );
        let expired = counter(
            "rpcgate_filters_expired_total",
            "Filters dropped because nobody polled them within filters.expiry.",
            &["network"],
        );
        let refused = counter(
            "rpcgate_filters_refused_total",
            "Filter creations refused by filters.max_per_client (client) or filters.max_total (total).",
            &["network", "reason"],
        );
        let pending_hashes = counter(
            "rpcgate_filters_pending_hashes_total",
            "Pending-transaction hashes recorded for pending filters from this replica's newPendingTransactions feed.",
            &["network"],
        );
        registry
            .register(Box::new(live.clone()))
            .expect("unique metric names");
        for c in [&created, &expired, &refused, &pending_hashes] {
            registry
                .register(Box::new(c.clone()))
                .expect("unique metric names");
        }
        FilterMetrics {
            live,
            created,
            expired,
            refused,
            pending_hashes,
        }
    }
}

/// `rpcgate_hedged_*`: reads the router sent to a second backend (or
/// could have), by network.
pub struct HedgeMetrics {
    /// `rpcgate_hedged_calls_total{network,outcome}`: calls of a hedged
    /// method that got an answer, by [`HEDGE_OUTCOMES`]: `not_needed` (the
    /// first backend answered within the delay), `first_won`, `hedge_won`,
    /// `no_other_backend` (the delay passed with no backend left to ask).
    pub calls: IntCounterVec,
    /// `rpcgate_hedged_losers_cancelled_total{network}`: sends still in
    /// flight when another answered, dropped (their requests cancelled).
    pub cancelled: IntCounterVec,
}

/// The `outcome` label values of `rpcgate_hedged_calls_total`.
pub const HEDGE_OUTCOMES: [&str; 4] = ["not_needed", "first_won", "hedge_won", "no_other_backend"];

impl HedgeMetrics {
    fn new(registry: &Registry) -> HedgeMetrics {
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).expect("a valid metric");
            registry
                .register(Box::new(c.clone()))
                .expect("unique metric names");
            c
        };
        HedgeMetrics {
            calls: counter(
                "rpcgate_hedged_calls_total",
                "Answered calls of hedged methods, by outcome (not_needed, first_won, hedge_won, no_other_backend).",
                &["network", "outcome"],
            ),
            cancelled: counter(
                "rpcgate_hedged_losers_cancelled_total",
                "Backend calls of hedged reads cancelled because another backend answered first.",
                &["network"],
            ),
        }
    }

    /// One network's series, resolved once (the router holds them).
    pub fn series(&self, network: &str) -> HedgeSeries {
        HedgeSeries {
            outcomes: HEDGE_OUTCOMES.map(|o| self.calls.with_label_values(&[network, o])),
            cancelled: self.cancelled.with_label_values(&[network]),
        }
    }
}

/// A network's hedging counters: by position in [`HEDGE_OUTCOMES`], and
/// the cancelled losers.
#[derive(Clone)]
pub struct HedgeSeries {
    pub outcomes: [IntCounter; 4],
    pub cancelled: IntCounter,
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
        let requests = IntCounterVec::new(
            Opts::new(
                "rpcgate_requests_total",
                "JSON-RPC calls (each batch entry is one) by network, method, client and outcome.",
            ),
            &["network", "method", "client", "outcome"],
        )
        .expect("a valid metric");
        let request_duration = HistogramVec::new(
            HistogramOpts::new(
                "rpcgate_request_duration_seconds",
                "Time to answer a routed call, from the cache or backends (retries included).",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["network", "method"],
        )
        .expect("a valid metric");
        let http_responses = IntCounterVec::new(
            Opts::new(
                "rpcgate_http_responses_total",
                "HTTP responses on the JSON-RPC listener by status code.",
            ),
            &["code"],
        )
        .expect("a valid metric");
        let upstream_requests = IntCounterVec::new(
            Opts::new(
                "rpcgate_upstream_requests_total",
                "Calls sent to a backend on the request path, by outcome.",
            ),
            &["network", "backend", "outcome"],
        )
        .expect("a valid metric");
        let upstream_duration = HistogramVec::new(
            HistogramOpts::new(
                "rpcgate_upstream_request_duration_seconds",
                "Round trip of one call to a backend.",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["network", "backend"],
        )
        .expect("a valid metric");
        let connections_closed = IntCounterVec::new(
            Opts::new(
                "rpcgate_connections_closed_total",
                "Client connections closed at a deadline, by reason (first_request, idle, write).",
            ),
            &["reason"],
        )
        .expect("a valid metric");
        let panics = IntCounterVec::new(
            Opts::new(
                "rpcgate_panics_total",
                "Panics caught while answering a request, by stage (call, message); each was answered with -32603.",
            ),
            &["stage"],
        )
        .expect("a valid metric");
        for stage in ["call", "message"] {
            panics.with_label_values(&[stage]);
        }
        for c in [
            &panics,
            &requests,
            &http_responses,
            &upstream_requests,
            &connections_closed,
        ] {
            registry
                .register(Box::new(c.clone()))
                .expect("unique metric names");
        }
        for h in [&request_duration, &upstream_duration] {
            registry
                .register(Box::new(h.clone()))
                .expect("unique metric names");
        }
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
        let ws_limit_hits = ws_limit_metric(&registry);
        let compression = compression_metrics(&registry);
        let filters = FilterMetrics::new(&registry);
        let read_your_writes = ReadYourWritesMetrics::new(&registry);
        let hedges = HedgeMetrics::new(&registry);
        let upstream_batches = UpstreamBatchMetrics::new(&registry);
        let (tls_handshake_failures, tls_reloads) = tls_metrics(&registry);
        let routed_calls = routed_calls_metric(&registry);
        Metrics {
            registry,
            rate_limited,
            blocked,
            unauthorized,
            connections_refused,
            connections_closed,
            redis_fallbacks,
            panics,
            requests,
            request_duration,
            http_ok: http_responses.with_label_values(&["200"]),
            http_responses,
            upstream_requests,
            upstream_duration,
            upstream_batches,
            upstream_holders: Mutex::default(),
            ws_connections,
            ws_subscriptions,
            ws_subscription_failovers,
            ws_limit_hits,
            compression,
            filters,
            read_your_writes,
            hedges,
            tls_handshake_failures,
            tls_reloads,
            routed_calls,
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

    /// Creates a network's per-network series at zero, so that they exist
    /// (and `rate()` over them works) before the first event.
    pub fn network_started(&self, network: &str) {
        self.ws_connections.with_label_values(&[network]);
        for kind in ["newHeads", "logs", "newPendingTransactions"] {
            self.ws_subscriptions.with_label_values(&[network, kind]);
        }
        self.ws_subscription_failovers.with_label_values(&[network]);
        self.filters.live.with_label_values(&[network]);
        for kind in ["block", "log", "pending"] {
            self.filters.created.with_label_values(&[network, kind]);
        }
        self.filters.expired.with_label_values(&[network]);
        for reason in ["client", "total"] {
            self.filters.refused.with_label_values(&[network, reason]);
        }
        let ryw = &self.read_your_writes;
        ryw.entries.with_label_values(&[network]);
        for outcome in ["steered", "fallback"] {
            ryw.reads.with_label_values(&[network, outcome]);
        }
        for reason in ["included", "expired", "full"] {
            ryw.evictions.with_label_values(&[network, reason]);
        }
    }

    /// Counts one HTTP response.
    pub fn http_response(&self, code: http::StatusCode) {
        if code == http::StatusCode::OK {
            self.http_ok.inc();
            return;
        }
        self.http_responses
            .with_label_values(&[code.as_str()])
            .inc();
    }

    /// The series of one backend, resolved once when the backend is built.
    pub fn upstream(&self, network: &str, backend: &str) -> UpstreamSeries {
        let labels = [network.to_string(), backend.to_string()];
        *self
            .upstream_holders
            .lock()
            .entry(labels.clone())
            .or_default() += 1;
        let outcome = |o: &str| {
            self.upstream_requests
                .with_label_values(&[network, backend, o])
        };
        UpstreamSeries {
            labels,
            ok: outcome("ok"),
            rpc_error: outcome("rpc_error"),
            duration: self
                .upstream_duration
                .with_label_values(&[network, backend]),
            batch_calls: self
                .upstream_batches
                .calls
                .with_label_values(&[network, backend]),
            batch_refused: self
                .upstream_batches
                .refused
                .with_label_values(&[network, backend]),
        }
    }
}

/// One backend's upstream series. When the last backend holding them is
/// dropped the series leave the registry, so backends that DNS discovery or
/// reloads remove do not stay in `/metrics` forever.
pub struct UpstreamSeries {
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
    /// Counts a failed call by its kind (one of [`UPSTREAM_OUTCOMES`]).
    pub fn failed(&self, kind: &'static str) {
        let [network, backend] = &self.labels;
        metrics()
            .upstream_requests
            .with_label_values(&[network, backend, kind])
            .inc();
    }
}

impl Drop for UpstreamSeries {
    fn drop(&mut self) {
        let m = metrics();
        // Held while the series go, so a successor cannot be resolved in between.
        let mut holders = m.upstream_holders.lock();
        let Some(n) = holders.get_mut(&self.labels) else {
            return;
        };
        *n -= 1;
        if *n > 0 {
            return;
        }
        holders.remove(&self.labels);
        let [network, backend] = &self.labels;
        for outcome in UPSTREAM_OUTCOMES {
            let _ = m
                .upstream_requests
                .remove_label_values(&[network.as_str(), backend, outcome]);
        }
        let _ = m.upstream_duration.remove_label_values(&[network, backend]);
        let _ = m
            .upstream_batches
            .calls
            .remove_label_values(&[network, backend]);
        let _ = m
            .upstream_batches
            .refused
            .remove_label_values(&[network, backend]);
    }
}

/// One network's call series, resolved once and then read without locks:
/// looking a labelled series up in the registry hashes every label and
/// takes a read lock, too much for every call of the request path.
pub struct NetworkSeries {
    network: String,
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
    pub fn new(network: &str) -> NetworkSeries {
        NetworkSeries {
            network: network.to_string(),
            methods: (0..METHOD_LABELS.len()).map(|_| OnceLock::new()).collect(),
        }
    }

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
            duration: metrics()
                .request_duration
                .with_label_values(&[&self.network, label]),
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
            outcomes: Outcome::ALL.map(|o| {
                metrics()
                    .requests
                    .with_label_values(&[&self.network, label, client, o.label()])
            }),
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

/// The compression metrics, registered in `registry`.
fn compression_metrics(registry: &Registry) -> CompressionMetrics {
    let counter = |name: &str, help: &str, labels: &[&str]| {
        let c = IntCounterVec::new(Opts::new(name, help), labels).expect("a valid metric");
        registry
            .register(Box::new(c.clone()))
            .expect("unique metric names");
        c
    };
    CompressionMetrics {
        responses: counter(
            "rpcgate_http_compressed_responses_total",
            "Answers sent compressed, by content coding.",
            &["encoding"],
        ),
        saved_bytes: counter(
            "rpcgate_http_compression_saved_bytes_total",
            "Answer bytes not sent thanks to compression, by content coding.",
            &["encoding"],
        ),
        decoded_requests: counter(
            "rpcgate_http_decoded_requests_total",
            "Request bodies with a Content-Encoding, by coding and outcome (ok, too_large, corrupt, unsupported).",
            &["encoding", "outcome"],
        ),
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

/// `rpcgate_routed_calls_total`, registered in `registry`.
fn routed_calls_metric(registry: &Registry) -> IntCounterVec {
    let c = IntCounterVec::new(
        Opts::new(
            "rpcgate_routed_calls_total",
            "Calls of a method route, by network, route (its name or index) and outcome (routed, fallback, failed).",
        ),
        &["network", "route", "outcome"],
    )
    .expect("a valid metric");
    registry
        .register(Box::new(c.clone()))
        .expect("unique metric names");
    c
}

/// `rpcgate_ws_limit_hits_total`, registered in `registry`.
fn ws_limit_metric(registry: &Registry) -> IntCounterVec {
    let hits = IntCounterVec::new(
        Opts::new(
            "rpcgate_ws_limit_hits_total",
            "WebSocket bounds that tripped: queued_bytes (a client closed for not reading its messages), upstream_subscriptions and topics_per_connection (eth_subscribe refused with -32005).",
        ),
        &["network", "limit"],
    )
    .expect("a valid metric");
    registry
        .register(Box::new(hits.clone()))
        .expect("unique metric names");
    hits
}

/// The TLS listener's metrics, registered in `registry`.
fn tls_metrics(registry: &Registry) -> (IntCounter, IntCounterVec) {
    let failures = IntCounter::new(
        "rpcgate_tls_handshake_failures_total",
        "Client connections to the TLS listener whose handshake failed or did not finish in time.",
    )
    .expect("a valid metric");
    let reloads = IntCounterVec::new(
        Opts::new(
            "rpcgate_tls_certificate_reloads_total",
            "Changes of the listener's certificate files, by result (applied, refused: the old pair kept serving).",
        ),
        &["result"],
    )
    .expect("a valid metric");
    for result in ["applied", "refused"] {
        reloads.with_label_values(&[result]);
    }
    registry
        .register(Box::new(failures.clone()))
        .expect("unique metric names");
    registry
        .register(Box::new(reloads.clone()))
        .expect("unique metric names");
    (failures, reloads)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_series_fold_unknown_methods_and_count_each_client_apart() {
        let series = NetworkSeries::new("unit-net");
        let at = |method: &str, client: &str, outcome: &str| {
            metrics()
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
        let histogram = metrics()
            .request_duration
            .with_label_values(&["unit-net", "eth_call"]);
        assert_eq!(histogram.get_sample_count(), 3);
        assert!(!metrics().render().contains("eth_madeUp"));
    }

    #[test]
    fn counters_render_with_their_names() {
        metrics().rate_limited.with_label_values(&["dapp"]).inc();
        metrics().redis_fallbacks.inc();
        let text = metrics().render();
        assert!(text.contains("rpcgate_policy_rate_limited_total{client=\"dapp\"}"));
        assert!(text.contains("rpcgate_policy_redis_fallbacks_total"));
    }
}
