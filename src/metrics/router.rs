//! The router's families: hedged reads (`router::hedge`), reads steered to
//! the backend that accepted a send (`router::ryw`), and method routes
//! (`router::routes`), each with a network's series resolved once.

use prometheus::{IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Registry};

use super::{counter_vec, each, gauge_vec, Label};

/// How a hedged call was answered: the `outcome` label of
/// `rpcgate_hedged_calls_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HedgeOutcome {
    /// The first backend answered within the delay.
    NotNeeded,
    /// A hedge was sent, and the first backend still answered first.
    FirstWon,
    HedgeWon,
    /// The delay passed with no backend left to ask.
    NoOtherBackend,
}

impl Label for HedgeOutcome {
    const ALL: &'static [HedgeOutcome] = &[
        HedgeOutcome::NotNeeded,
        HedgeOutcome::FirstWon,
        HedgeOutcome::HedgeWon,
        HedgeOutcome::NoOtherBackend,
    ];

    fn label(self) -> &'static str {
        match self {
            HedgeOutcome::NotNeeded => "not_needed",
            HedgeOutcome::FirstWon => "first_won",
            HedgeOutcome::HedgeWon => "hedge_won",
            HedgeOutcome::NoOtherBackend => "no_other_backend",
        }
    }
}

/// `rpcgate_hedged_*`: reads the router sent to a second backend (or
/// could have), by network.
pub struct HedgeMetrics {
    /// `rpcgate_hedged_calls_total{network,outcome}`: calls of a hedged
    /// method that got an answer, by [`HedgeOutcome`].
    pub calls: IntCounterVec,
    /// `rpcgate_hedged_losers_cancelled_total{network}`: sends still in
    /// flight when another answered, dropped (their requests cancelled).
    pub cancelled: IntCounterVec,
}

impl HedgeMetrics {
    pub(super) fn register(r: &Registry) -> HedgeMetrics {
        HedgeMetrics {
            calls: counter_vec(
                r,
                "rpcgate_hedged_calls_total",
                "Answered calls of hedged methods, by outcome (not_needed, first_won, hedge_won, no_other_backend).",
                &["network", "outcome"],
            ),
            cancelled: counter_vec(
                r,
                "rpcgate_hedged_losers_cancelled_total",
                "Backend calls of hedged reads cancelled because another backend answered first.",
                &["network"],
            ),
        }
    }

    /// One network's series, resolved once (the router holds them).
    pub fn series(&self, network: &str) -> HedgeSeries {
        HedgeSeries {
            outcomes: each::<HedgeOutcome, 4>(&self.calls, &[network]),
            cancelled: self.cancelled.with_label_values(&[network]),
        }
    }
}

/// A network's hedging counters.
#[derive(Clone)]
pub struct HedgeSeries {
    outcomes: [IntCounter; 4],
    pub cancelled: IntCounter,
}

impl HedgeSeries {
    pub fn outcome(&self, outcome: HedgeOutcome) -> &IntCounter {
        &self.outcomes[outcome as usize]
    }
}

/// How a read of a remembered send went: the `outcome` label of
/// `rpcgate_read_your_writes_reads_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RywRead {
    /// Answered by the backend that accepted the send.
    Steered,
    /// A nonce answered by another backend that shows the send (the one
    /// that accepted it could not serve, or had lost it).
    Elsewhere,
    /// No backend could serve it as a read of the send: routed as usual.
    Fallback,
}

impl Label for RywRead {
    const ALL: &'static [RywRead] = &[RywRead::Steered, RywRead::Elsewhere, RywRead::Fallback];

    fn label(self) -> &'static str {
        match self {
            RywRead::Steered => "steered",
            RywRead::Elsewhere => "elsewhere",
            RywRead::Fallback => "fallback",
        }
    }
}

/// Why a send was forgotten: the `reason` label of
/// `rpcgate_read_your_writes_evictions_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EvictionReason {
    /// The served head includes it.
    Included,
    /// After the ttl.
    Expired,
    /// To make room (`max_entries`).
    Full,
}

impl Label for EvictionReason {
    const ALL: &'static [EvictionReason] = &[
        EvictionReason::Included,
        EvictionReason::Expired,
        EvictionReason::Full,
    ];

    fn label(self) -> &'static str {
        match self {
            EvictionReason::Included => "included",
            EvictionReason::Expired => "expired",
            EvictionReason::Full => "full",
        }
    }
}

/// `rpcgate_read_your_writes*`: sends remembered so that reads of them go
/// where they were sent, by network.
pub struct ReadYourWritesMetrics {
    /// `rpcgate_read_your_writes_entries{network}`: sends remembered now.
    pub entries: IntGaugeVec,
    /// `rpcgate_read_your_writes_reads_total{network,outcome}`, by [`RywRead`].
    pub reads: IntCounterVec,
    /// `rpcgate_read_your_writes_evictions_total{network,reason}`, by
    /// [`EvictionReason`].
    pub evictions: IntCounterVec,
}

impl ReadYourWritesMetrics {
    pub(super) fn register(r: &Registry) -> ReadYourWritesMetrics {
        ReadYourWritesMetrics {
            entries: gauge_vec(
                r,
                "rpcgate_read_your_writes_entries",
                "Sends remembered so that reads of them go to the backend that accepted them.",
                &["network"],
            ),
            reads: counter_vec(
                r,
                "rpcgate_read_your_writes_reads_total",
                "Reads of a remembered send: steered to the backend that accepted it, or fallback (routed as usual).",
                &["network", "outcome"],
            ),
            evictions: counter_vec(
                r,
                "rpcgate_read_your_writes_evictions_total",
                "Sends forgotten: included in the served head, expired (ttl), or full (max_entries).",
                &["network", "reason"],
            ),
        }
    }

    /// One network's series, resolved once (and so made at zero).
    pub fn series(&self, network: &str) -> RywSeries {
        RywSeries {
            entries: self.entries.with_label_values(&[network]),
            reads: each::<RywRead, 3>(&self.reads, &[network]),
            evictions: each::<EvictionReason, 3>(&self.evictions, &[network]),
        }
    }
}

/// A network's read-your-writes series.
pub struct RywSeries {
    pub entries: IntGauge,
    reads: [IntCounter; 3],
    evictions: [IntCounter; 3],
}

impl RywSeries {
    pub fn read(&self, outcome: RywRead) -> &IntCounter {
        &self.reads[outcome as usize]
    }

    pub fn eviction(&self, reason: EvictionReason) -> &IntCounter {
        &self.evictions[reason as usize]
    }
}

/// How a routed call ended: the `outcome` label of
/// `rpcgate_routed_calls_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteOutcome {
    /// Answered by the route's upstreams.
    Routed,
    /// Answered by the network's own backends (`fallback: primary`).
    Fallback,
    Failed,
}

impl Label for RouteOutcome {
    const ALL: &'static [RouteOutcome] = &[
        RouteOutcome::Routed,
        RouteOutcome::Fallback,
        RouteOutcome::Failed,
    ];

    fn label(self) -> &'static str {
        match self {
            RouteOutcome::Routed => "routed",
            RouteOutcome::Fallback => "fallback",
            RouteOutcome::Failed => "failed",
        }
    }
}

/// `rpcgate_routed_calls_total{network,route,outcome}`: calls of a method
/// route (`routes:`), by the route's configured name or index, and how they
/// ended.
pub struct RouteMetrics {
    pub calls: IntCounterVec,
}

impl RouteMetrics {
    pub(super) fn register(r: &Registry) -> RouteMetrics {
        RouteMetrics {
            calls: counter_vec(
                r,
                "rpcgate_routed_calls_total",
                "Calls of a method route, by network, route (its name or index) and outcome (routed, fallback, failed).",
                &["network", "route", "outcome"],
            ),
        }
    }

    /// The series of a network's routes, by their position in its config
    /// (resolved once, and so made at zero).
    pub fn series<'a>(&self, network: &str, routes: impl Iterator<Item = &'a str>) -> RouteSeries {
        RouteSeries(
            routes
                .map(|route| each::<RouteOutcome, 3>(&self.calls, &[network, route]))
                .collect(),
        )
    }
}

/// A network's route counters, by route position.
#[derive(Default)]
pub struct RouteSeries(Box<[[IntCounter; 3]]>);

impl RouteSeries {
    /// Counts one call of the route at `position`.
    pub fn count(&self, position: usize, outcome: RouteOutcome) {
        if let Some(route) = self.0.get(position) {
            route[outcome as usize].inc();
        }
    }
}
