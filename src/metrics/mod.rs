//! The Prometheus registry of one gateway, and the one way a metric gets
//! into it.
//!
//! A [`Metrics`] handle (an `Arc` inside, cheap to clone) is made once per
//! gateway and handed down to the components that count, so two gateways in
//! one process (tests, the demo) count apart. Each group of families lives
//! in a file of its own here and registers itself through the helpers below
//! ([`counter_vec`] and kin), the only code that builds and registers a
//! metric. The hot path never looks a series up by label: each component
//! resolves the series it updates once, when it is built (a network, a
//! backend, a hub), and keeps them.
//!
//! The state of backends, heads, caches, reloads and budgets is not counted
//! on the request path: a [`prometheus::core::Collector`] reads the current
//! snapshots at scrape time (see [`state`]; the gateway registers its own),
//! so `/metrics` is one `registry.gather()` through one encoder.
//!
//! Labels only ever carry names from the config (a network, a backend, a
//! client's name or `anonymous`) and fixed words, each set of fixed words an
//! enum implementing [`Label`]. A method name becomes a label only when it
//! is one of [`KNOWN_METHODS`] (the method table of [`crate::eth::methods`]);
//! anything else a caller invents is counted as `other`. So nothing a caller
//! sends can grow the registry, and no key or key hash ever appears.

mod beacon;
mod calls;
mod edge;
mod filters;
mod policy;
mod redis;
mod router;
pub mod state;
mod upstream;
mod ws;

use std::ops::Deref;
use std::sync::Arc;

use prometheus::core::Collector;
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

pub use beacon::BeaconMetrics;
pub use calls::{CallMetrics, NetworkSeries, Outcome, KNOWN_METHODS};
pub use edge::{CompressionMetrics, DecodeOutcome, ListenerMetrics, PanicStage, TlsReload};
pub use filters::{FilterMetrics, FilterRefusal};
pub use policy::PolicyMetrics;
pub use redis::RedisMetrics;
pub use router::{
    EvictionReason, HedgeMetrics, HedgeOutcome, HedgeSeries, ReadYourWritesMetrics, RouteMetrics,
    RouteOutcome, RouteSeries, RywRead, RywSeries,
};
pub use upstream::{BlockWait, BlockWaitSeries, UpstreamMetrics, UpstreamOutcome, UpstreamSeries};
pub use ws::{WsLimit, WsMetrics};

/// A closed set of label values: each value's text, and every value, so
/// that a family's series can be made at zero from the same list the code
/// counts with.
pub trait Label: Copy + 'static {
    /// Every value, in the order a series array is indexed by.
    const ALL: &'static [Self];
    /// The label text.
    fn label(self) -> &'static str;
}

/// Seconds, from half a millisecond (a cache hit) to ten seconds (a slow
/// eth_getLogs).
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// One gateway's metrics: its registry and the families registered in it.
#[derive(Clone)]
pub struct Metrics(Arc<Families>);

/// The families of one registry, by the component that updates them.
pub struct Families {
    registry: Registry,
    pub policy: PolicyMetrics,
    pub calls: CallMetrics,
    pub upstream: UpstreamMetrics,
    pub listener: ListenerMetrics,
    pub compression: CompressionMetrics,
    pub ws: WsMetrics,
    pub filters: FilterMetrics,
    pub read_your_writes: ReadYourWritesMetrics,
    pub hedges: HedgeMetrics,
    pub routes: RouteMetrics,
    pub redis: RedisMetrics,
    pub beacon: BeaconMetrics,
}

impl Deref for Metrics {
    type Target = Families;

    fn deref(&self) -> &Families {
        &self.0
    }
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

impl Metrics {
    /// A new registry with every family of rpcgate in it.
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let r = &registry;
        Metrics(Arc::new(Families {
            policy: PolicyMetrics::register(r),
            calls: CallMetrics::register(r),
            upstream: UpstreamMetrics::register(r),
            listener: ListenerMetrics::register(r),
            compression: CompressionMetrics::register(r),
            ws: WsMetrics::register(r),
            filters: FilterMetrics::register(r),
            read_your_writes: ReadYourWritesMetrics::register(r),
            hedges: HedgeMetrics::register(r),
            routes: RouteMetrics::register(r),
            redis: RedisMetrics::register(r),
            beacon: BeaconMetrics::register(r),
            registry,
        }))
    }

    pub fn registry(&self) -> &Registry {
        &self.0.registry
    }

    /// Adds the families read at scrape time, filled by `read` (see [`state`]).
    pub fn register_state(&self, read: state::Reader) {
        build(&self.0.registry, state::StateCollector::new(read));
    }

    /// The Prometheus text exposition of every family: the one path
    /// `/metrics` takes.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        // Writing into a Vec fails only on a family the encoder cannot
        // express, which the helpers below never build.
        let _ = TextEncoder::new().encode(&self.0.registry.gather(), &mut out);
        String::from_utf8_lossy(&out).into_owned()
    }

    /// Makes the series of a network that no component of it resolves at
    /// zero, so that they exist (and `rate()` over them works) before the
    /// first event.
    pub fn network_started(&self, network: &str) {
        self.ws.connections.with_label_values(&[network]);
        self.ws.failovers.with_label_values(&[network]);
        self.read_your_writes.series(network);
    }
}

/// A counter without labels, registered in `registry`.
fn counter(registry: &Registry, name: &str, help: &str) -> IntCounter {
    build(registry, IntCounter::with_opts(Opts::new(name, help)))
}

/// A counter family, registered in `registry`.
fn counter_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    build(registry, IntCounterVec::new(Opts::new(name, help), labels))
}

/// A gauge family, registered in `registry`.
fn gauge_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    build(registry, IntGaugeVec::new(Opts::new(name, help), labels))
}

/// A histogram family with `buckets`, registered in `registry`.
fn histogram_vec(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
    buckets: &[f64],
) -> HistogramVec {
    let opts = HistogramOpts::new(name, help).buckets(buckets.to_vec());
    build(registry, HistogramVec::new(opts, labels))
}

/// `made`, registered in `registry`.
///
/// The one `expect` of metric registration: every name, help text and label
/// set is a constant of this module, and each family is registered once per
/// registry (by [`Metrics::new`]), so a failure here is a programming error
/// that the first test run meets, never a condition of the running gateway.
fn build<C: Collector + Clone + 'static>(registry: &Registry, made: prometheus::Result<C>) -> C {
    made.and_then(|c| registry.register(Box::new(c.clone())).map(|()| c))
        .expect("a valid metric, registered once")
}

/// One series per value of `L` (indexed by its position in `L::ALL`), after
/// the fixed `labels`, resolved once.
pub fn each<L: Label, const N: usize>(family: &IntCounterVec, labels: &[&str]) -> [IntCounter; N] {
    assert_eq!(N, L::ALL.len(), "one series per label value");
    std::array::from_fn(|i| {
        let mut values: Vec<&str> = labels.to_vec();
        values.push(L::ALL[i].label());
        family.with_label_values(&values)
    })
}

/// [`each`] for a gauge family.
pub fn each_gauge<L: Label, const N: usize>(
    family: &IntGaugeVec,
    labels: &[&str],
) -> [IntGauge; N] {
    assert_eq!(N, L::ALL.len(), "one series per label value");
    std::array::from_fn(|i| {
        let mut values: Vec<&str> = labels.to_vec();
        values.push(L::ALL[i].label());
        family.with_label_values(&values)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_render_with_their_names() {
        let m = Metrics::new();
        m.policy.rate_limited.with_label_values(&["dapp"]).inc();
        m.policy.redis_fallbacks.inc();
        let text = m.render();
        assert!(text.contains("rpcgate_policy_rate_limited_total{client=\"dapp\"}"));
        assert!(text.contains("rpcgate_policy_redis_fallbacks_total"));
    }

    /// Series arrays are indexed by `value as usize`: each `ALL` must list
    /// its values in declaration order.
    #[test]
    fn label_lists_are_in_declaration_order() {
        fn check<L: Label + std::fmt::Debug>(index: fn(L) -> usize) {
            for (i, v) in L::ALL.iter().enumerate() {
                assert_eq!(index(*v), i, "{v:?} out of place in ALL");
            }
        }
        check::<Outcome>(|v| v as usize);
        check::<UpstreamOutcome>(|v| v as usize);
        check::<PanicStage>(|v| v as usize);
        check::<TlsReload>(|v| v as usize);
        check::<DecodeOutcome>(|v| v as usize);
        check::<FilterRefusal>(|v| v as usize);
        check::<WsLimit>(|v| v as usize);
        check::<HedgeOutcome>(|v| v as usize);
        check::<RywRead>(|v| v as usize);
        check::<EvictionReason>(|v| v as usize);
        check::<RouteOutcome>(|v| v as usize);
        check::<state::CacheEvent>(|v| v as usize);
        check::<state::ReloadResult>(|v| v as usize);
    }

    #[test]
    fn two_handles_count_apart() {
        let (a, b) = (Metrics::new(), Metrics::new());
        a.policy.unauthorized.inc();
        assert_eq!(a.policy.unauthorized.get(), 1);
        assert_eq!(b.policy.unauthorized.get(), 0);
        assert_eq!(
            a.clone().policy.unauthorized.get(),
            1,
            "a clone is the same handle"
        );
    }
}
