//! Families read from the gateway's snapshots at scrape time: the state of
//! backends, heads, caches, reloads, budgets and readiness.
//!
//! The request path pays nothing for them: nothing is counted as it
//! happens, a [`StateCollector`] asks its reader for the current values
//! when `/metrics` is scraped. Their names, types, help texts and label
//! names are declared here (so that the registry knows every family the
//! gateway exposes); the reader lives with what it reads (`server::admin`).

use std::collections::HashMap;
use std::sync::Arc;

use prometheus::core::{Collector, Desc};
use prometheus::proto::{Counter, Gauge, LabelPair, Metric, MetricFamily, MetricType};

use super::Label;

/// A family read at scrape time: its name, type, help text and label names.
#[derive(Debug)]
pub struct StateMetric {
    pub name: &'static str,
    pub kind: Kind,
    pub help: &'static str,
    pub labels: &'static [&'static str],
}

/// The Prometheus type of a [`StateMetric`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Gauge,
    /// A value that only grows, kept by its owner (an atomic).
    Counter,
}

const BACKEND: &[&str] = &["network", "backend"];
const NETWORK: &[&str] = &["network"];
const BUDGET: &[&str] = &["kind"];

pub const BACKEND_HEAD: StateMetric = StateMetric {
    name: "rpcgate_backend_head",
    kind: Kind::Gauge,
    help: "Latest block number of a backend.",
    labels: BACKEND,
};
pub const BACKEND_LAG_BLOCKS: StateMetric = StateMetric {
    name: "rpcgate_backend_lag_blocks",
    kind: Kind::Gauge,
    help: "Blocks a backend is behind the best head.",
    labels: BACKEND,
};
pub const BACKEND_ELIGIBLE: StateMetric = StateMetric {
    name: "rpcgate_backend_eligible",
    kind: Kind::Gauge,
    help: "1 when a backend may serve.",
    labels: BACKEND,
};
pub const BACKEND_IN_FLIGHT: StateMetric = StateMetric {
    name: "rpcgate_backend_in_flight",
    kind: Kind::Gauge,
    help: "Requests in flight at a backend.",
    labels: BACKEND,
};
pub const BACKEND_LATENCY_SECONDS: StateMetric = StateMetric {
    name: "rpcgate_backend_latency_seconds",
    kind: Kind::Gauge,
    help: "Peak-EWMA latency estimate of a backend.",
    labels: BACKEND,
};
pub const BACKEND_STATE_HISTORY_BLOCKS: StateMetric = StateMetric {
    name: "rpcgate_backend_state_history_blocks",
    kind: Kind::Gauge,
    help: "Blocks of state a backend keeps below its head, configured or learned (absent: not known to lack any).",
    labels: BACKEND,
};
pub const BACKEND_MISSING_STATE_TOTAL: StateMetric = StateMetric {
    name: "rpcgate_backend_missing_state_total",
    kind: Kind::Counter,
    help: "Old-state reads a backend answered with missing state (retried elsewhere, not counted as failures).",
    labels: BACKEND,
};
pub const BACKEND_CHAIN_MISMATCH_TOTAL: StateMetric = StateMetric {
    name: "rpcgate_backend_chain_mismatch_total",
    kind: Kind::Counter,
    help: "Times a backend was found on another chain than the agreeing backends (same chain id, another block hash); held out meanwhile.",
    labels: BACKEND,
};
pub const BACKEND_AHEAD_UNCONFIRMED: StateMetric = StateMetric {
    name: "rpcgate_backend_ahead_unconfirmed",
    kind: Kind::Gauge,
    help: "1 while a backend is held out for a head above the agreed head by more than max_lag_blocks that no other backend confirms.",
    labels: BACKEND,
};
pub const SERVED_HEAD: StateMetric = StateMetric {
    name: "rpcgate_served_head",
    kind: Kind::Gauge,
    help: "The head rpcgate serves as latest.",
    labels: NETWORK,
};
pub const FINALIZED_BLOCK: StateMetric = StateMetric {
    name: "rpcgate_finalized_block",
    kind: Kind::Gauge,
    help: "The finalized block of a network.",
    labels: NETWORK,
};
pub const ELIGIBLE_BACKENDS: StateMetric = StateMetric {
    name: "rpcgate_eligible_backends",
    kind: Kind::Gauge,
    help: "Backends that may serve.",
    labels: NETWORK,
};
pub const FALLBACK_SERVING: StateMetric = StateMetric {
    name: "rpcgate_fallback_serving",
    kind: Kind::Gauge,
    help: "1 while no primary upstream can serve and the tier: fallback upstreams do.",
    labels: NETWORK,
};
pub const CACHE_EVENTS_TOTAL: StateMetric = StateMetric {
    name: "rpcgate_cache_events_total",
    kind: Kind::Counter,
    help: "Cache lookups and stores by outcome.",
    labels: &["network", "event"],
};
pub const CACHE_BYTES: StateMetric = StateMetric {
    name: "rpcgate_cache_bytes",
    kind: Kind::Gauge,
    help: "Bytes held by the in-memory cache (keys, answers, bookkeeping).",
    labels: NETWORK,
};
pub const CACHE_MAX_BYTES: StateMetric = StateMetric {
    name: "rpcgate_cache_max_bytes",
    kind: Kind::Gauge,
    help: "The byte bound of the in-memory cache.",
    labels: NETWORK,
};
pub const CACHE_ENTRIES: StateMetric = StateMetric {
    name: "rpcgate_cache_entries",
    kind: Kind::Gauge,
    help: "Entries in the in-memory cache.",
    labels: NETWORK,
};
pub const RELOADS_TOTAL: StateMetric = StateMetric {
    name: "rpcgate_reloads_total",
    kind: Kind::Counter,
    help: "Config reloads by result.",
    labels: &["result"],
};
pub const RELOAD_RESTART_REQUIRED_TOTAL: StateMetric = StateMetric {
    name: "rpcgate_reload_restart_required_total",
    kind: Kind::Counter,
    help: "Applied config reloads that changed a key only a restart applies (the running value stayed), by key.",
    labels: &["key"],
};
pub const LOG_REFUSALS_SUPPRESSED_TOTAL: StateMetric = StateMetric {
    name: "rpcgate_log_refusals_suppressed_total",
    kind: Kind::Counter,
    help: "Log lines of refused requests left out (over log.refusals_per_second); each refusal is counted in its own metric.",
    labels: &[],
};
pub const MEMORY_INFLIGHT_BYTES: StateMetric = StateMetric {
    name: "rpcgate_memory_inflight_bytes",
    kind: Kind::Gauge,
    help: "Bytes held against a memory budget now, by kind (answers: upstream replies being read and answers being written; requests: request bodies being read).",
    labels: BUDGET,
};
pub const MEMORY_BUDGET_BYTES: StateMetric = StateMetric {
    name: "rpcgate_memory_budget_bytes",
    kind: Kind::Gauge,
    help: "The bound of a memory budget, by kind (server.max_inflight_answer_bytes, server.max_inflight_request_bytes).",
    labels: BUDGET,
};
pub const MEMORY_BUDGET_REFUSALS_TOTAL: StateMetric = StateMetric {
    name: "rpcgate_memory_budget_refusals_total",
    kind: Kind::Counter,
    help: "Reservations a memory budget refused after server.memory_wait, by kind; each call refused got -32005.",
    labels: BUDGET,
};
pub const READY: StateMetric = StateMetric {
    name: "rpcgate_ready",
    kind: Kind::Gauge,
    help: "1 when ready for traffic.",
    labels: &[],
};

/// Every family read at scrape time.
const BEACON_NODE: &[&str] = &["network", "node"];
const BEACON_SENDS: &[&str] = &["network", "node", "kind", "outcome"];

pub const BEACON_NODE_SLOT: StateMetric = StateMetric {
    name: "rpcgate_beacon_node_slot",
    kind: Kind::Gauge,
    help: "Head slot of a beacon node.",
    labels: BEACON_NODE,
};
pub const BEACON_NODE_LAG_SLOTS: StateMetric = StateMetric {
    name: "rpcgate_beacon_node_lag_slots",
    kind: Kind::Gauge,
    help: "Slots a beacon node is behind the head the nodes agree on.",
    labels: BEACON_NODE,
};
pub const BEACON_NODE_OPTIMISTIC: StateMetric = StateMetric {
    name: "rpcgate_beacon_node_optimistic",
    kind: Kind::Gauge,
    help: "1 when a beacon node reports is_optimistic.",
    labels: BEACON_NODE,
};
pub const BEACON_NODE_SYNCING: StateMetric = StateMetric {
    name: "rpcgate_beacon_node_syncing",
    kind: Kind::Gauge,
    help: "1 when a beacon node reports is_syncing.",
    labels: BEACON_NODE,
};
pub const BEACON_NODE_ELIGIBLE: StateMetric = StateMetric {
    name: "rpcgate_beacon_node_eligible",
    kind: Kind::Gauge,
    help: "1 when a beacon node may serve.",
    labels: BEACON_NODE,
};
pub const BEACON_NODE_SERVED_TOTAL: StateMetric = StateMetric {
    name: "rpcgate_beacon_node_served_total",
    kind: Kind::Counter,
    help: "Requests a beacon node answered (any status), health reads included.",
    labels: BEACON_NODE,
};
pub const BEACON_SENDS_TOTAL: StateMetric = StateMetric {
    name: "rpcgate_beacon_sends_total",
    kind: Kind::Counter,
    help: "Publishes and subscriptions sent to a beacon node (kind publish|subscribe), by outcome (accepted|refused|failed).",
    labels: BEACON_SENDS,
};
pub const BEACON_AGREED_SLOT: StateMetric = StateMetric {
    name: "rpcgate_beacon_agreed_slot",
    kind: Kind::Gauge,
    help: "The head slot the beacon nodes of a network agree on.",
    labels: NETWORK,
};
pub const BEACON_ELIGIBLE_NODES: StateMetric = StateMetric {
    name: "rpcgate_beacon_eligible_nodes",
    kind: Kind::Gauge,
    help: "Beacon nodes of a network that may serve.",
    labels: NETWORK,
};

pub const BEACON_EVENT_STREAMS: StateMetric = StateMetric {
    name: "rpcgate_beacon_event_streams",
    kind: Kind::Gauge,
    help: "Client event streams (/eth/v1/events) open.",
    labels: NETWORK,
};
pub const BEACON_EVENT_UPSTREAMS: StateMetric = StateMetric {
    name: "rpcgate_beacon_event_upstreams",
    kind: Kind::Gauge,
    help: "Event streams open to beacon nodes (one per distinct topic set, shared by its clients).",
    labels: NETWORK,
};
pub const BEACON_EVENT_MOVES_TOTAL: StateMetric = StateMetric {
    name: "rpcgate_beacon_event_moves_total",
    kind: Kind::Counter,
    help: "Event streams moved to another beacon node (its node failed, stopped being eligible or fell behind).",
    labels: NETWORK,
};
pub const BEACON_EVENTS_DELIVERED_TOTAL: StateMetric = StateMetric {
    name: "rpcgate_beacon_events_delivered_total",
    kind: Kind::Counter,
    help: "Events handed to client streams (one per client).",
    labels: NETWORK,
};
pub const BEACON_EVENTS_DROPPED_TOTAL: StateMetric = StateMetric {
    name: "rpcgate_beacon_events_dropped_total",
    kind: Kind::Counter,
    help: "Events lost by clients too far behind (their streams were cut).",
    labels: NETWORK,
};
pub const BEACON_EVENT_CLIENTS_CUT_TOTAL: StateMetric = StateMetric {
    name: "rpcgate_beacon_event_clients_cut_total",
    kind: Kind::Counter,
    help: "Client event streams cut for being more than events.client_queue events behind.",
    labels: NETWORK,
};
pub const BEACON_EVENTS_FILLED_TOTAL: StateMetric = StateMetric {
    name: "rpcgate_beacon_events_filled_total",
    kind: Kind::Counter,
    help: "Events read from a beacon node's REST API to fill the gap of a move.",
    labels: NETWORK,
};

pub const ALL: &[&StateMetric] = &[
    &BEACON_NODE_SLOT,
    &BEACON_NODE_LAG_SLOTS,
    &BEACON_NODE_OPTIMISTIC,
    &BEACON_NODE_SYNCING,
    &BEACON_NODE_ELIGIBLE,
    &BEACON_NODE_SERVED_TOTAL,
    &BEACON_SENDS_TOTAL,
    &BEACON_AGREED_SLOT,
    &BEACON_ELIGIBLE_NODES,
    &BEACON_EVENT_STREAMS,
    &BEACON_EVENT_UPSTREAMS,
    &BEACON_EVENT_MOVES_TOTAL,
    &BEACON_EVENTS_DELIVERED_TOTAL,
    &BEACON_EVENTS_DROPPED_TOTAL,
    &BEACON_EVENT_CLIENTS_CUT_TOTAL,
    &BEACON_EVENTS_FILLED_TOTAL,
    &BACKEND_HEAD,
    &BACKEND_LAG_BLOCKS,
    &BACKEND_ELIGIBLE,
    &BACKEND_IN_FLIGHT,
    &BACKEND_LATENCY_SECONDS,
    &BACKEND_STATE_HISTORY_BLOCKS,
    &BACKEND_MISSING_STATE_TOTAL,
    &BACKEND_CHAIN_MISMATCH_TOTAL,
    &BACKEND_AHEAD_UNCONFIRMED,
    &SERVED_HEAD,
    &FINALIZED_BLOCK,
    &ELIGIBLE_BACKENDS,
    &FALLBACK_SERVING,
    &CACHE_EVENTS_TOTAL,
    &CACHE_BYTES,
    &CACHE_MAX_BYTES,
    &CACHE_ENTRIES,
    &RELOADS_TOTAL,
    &RELOAD_RESTART_REQUIRED_TOTAL,
    &LOG_REFUSALS_SUPPRESSED_TOTAL,
    &MEMORY_INFLIGHT_BYTES,
    &MEMORY_BUDGET_BYTES,
    &MEMORY_BUDGET_REFUSALS_TOTAL,
    &READY,
];

/// A cache counter: the `event` label of `rpcgate_cache_events_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheEvent {
    Hit,
    Miss,
    Coalesced,
    Stored,
    SharedHit,
    SharedKeyTooLong,
    EvictedByReorg,
    EvictedBySize,
}

impl Label for CacheEvent {
    const ALL: &'static [CacheEvent] = &[
        CacheEvent::Hit,
        CacheEvent::Miss,
        CacheEvent::Coalesced,
        CacheEvent::Stored,
        CacheEvent::SharedHit,
        CacheEvent::SharedKeyTooLong,
        CacheEvent::EvictedByReorg,
        CacheEvent::EvictedBySize,
    ];

    fn label(self) -> &'static str {
        match self {
            CacheEvent::Hit => "hit",
            CacheEvent::Miss => "miss",
            CacheEvent::Coalesced => "coalesced",
            CacheEvent::Stored => "stored",
            CacheEvent::SharedHit => "shared_hit",
            CacheEvent::SharedKeyTooLong => "shared_key_too_long",
            CacheEvent::EvictedByReorg => "evicted_by_reorg",
            CacheEvent::EvictedBySize => "evicted_by_size",
        }
    }
}

/// How a config reload ended: the `result` label of `rpcgate_reloads_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReloadResult {
    Applied,
    Refused,
}

impl Label for ReloadResult {
    const ALL: &'static [ReloadResult] = &[ReloadResult::Applied, ReloadResult::Refused];

    fn label(self) -> &'static str {
        match self {
            ReloadResult::Applied => "applied",
            ReloadResult::Refused => "refused",
        }
    }
}

/// The samples of one scrape, grouped by family in the order first seen.
#[derive(Default)]
pub struct Scrape {
    families: Vec<MetricFamily>,
}

impl Scrape {
    /// One sample of `metric`, its label values in the order of `metric.labels`.
    pub fn sample(&mut self, metric: &StateMetric, values: &[&str], value: f64) {
        let at = match self.families.iter().position(|f| f.name() == metric.name) {
            Some(at) => at,
            None => {
                let mut family = MetricFamily::default();
                family.set_name(metric.name.to_string());
                family.set_help(metric.help.to_string());
                family.set_field_type(match metric.kind {
                    Kind::Gauge => MetricType::GAUGE,
                    Kind::Counter => MetricType::COUNTER,
                });
                self.families.push(family);
                self.families.len() - 1
            }
        };
        let mut sample = Metric::default();
        let labels = metric
            .labels
            .iter()
            .zip(values)
            .map(|(name, value)| {
                let mut pair = LabelPair::default();
                pair.set_name(name.to_string());
                pair.set_value(value.to_string());
                pair
            })
            .collect();
        sample.set_label(labels);
        match metric.kind {
            Kind::Gauge => {
                let mut g = Gauge::default();
                g.set_value(value);
                sample.set_gauge(g);
            }
            Kind::Counter => {
                let mut c = Counter::default();
                c.set_value(value);
                sample.set_counter(c);
            }
        }
        self.families[at].mut_metric().push(sample);
    }
}

/// What a [`StateCollector`] calls at each scrape.
pub type Reader = Arc<dyn Fn(&mut Scrape) + Send + Sync>;

/// A collector of the families of [`ALL`], filled by a reader at scrape time.
#[derive(Clone)]
pub struct StateCollector {
    descs: Arc<Vec<Desc>>,
    read: Reader,
}

impl StateCollector {
    pub fn new(read: Reader) -> prometheus::Result<StateCollector> {
        let descs = ALL
            .iter()
            .map(|m| {
                let labels = m.labels.iter().map(|l| l.to_string()).collect();
                Desc::new(m.name.into(), m.help.into(), labels, HashMap::new())
            })
            .collect::<prometheus::Result<Vec<Desc>>>()?;
        Ok(StateCollector {
            descs: Arc::new(descs),
            read,
        })
    }
}

impl Collector for StateCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let mut scrape = Scrape::default();
        (self.read)(&mut scrape);
        scrape.families
    }
}

#[cfg(test)]
mod tests {
    use super::super::Metrics;
    use super::*;

    #[test]
    fn state_families_render_through_the_registry() {
        let metrics = Metrics::new();
        metrics.register_state(Arc::new(|s: &mut Scrape| {
            s.sample(&BACKEND_HEAD, &["net", "b\"1"], 7.0);
            s.sample(&READY, &[], 1.0);
            s.sample(&RELOADS_TOTAL, &["applied"], 2.0);
        }));
        let text = metrics.render();
        assert!(text.contains("# HELP rpcgate_backend_head Latest block number of a backend.\n# TYPE rpcgate_backend_head gauge\nrpcgate_backend_head{network=\"net\",backend=\"b\\\"1\"} 7\n"), "{text}");
        assert!(text.contains("# TYPE rpcgate_reloads_total counter\nrpcgate_reloads_total{result=\"applied\"} 2\n"), "{text}");
        assert!(text.contains("rpcgate_ready 1\n"), "{text}");
        assert!(
            !text.contains("rpcgate_cache_bytes"),
            "no sample, no family"
        );
    }
}
