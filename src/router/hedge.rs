//! Hedged reads: a read that has not answered within a delay is sent to a
//! second backend too, and the first good answer wins.
//!
//! After Dean and Barroso, "The Tail at Scale" (CACM 2013): P2C over
//! Peak-EWMA (`select`) already keeps calls away from a backend that *has
//! been* slow, but it cannot know that the next answer of a fast backend
//! will be slow (a GC pause, a compaction, a backend that just turned
//! slow). A hedge bounds that tail at about the delay plus a fast answer,
//! for the price of a few extra sends.
//!
//! The rules (`networks.<name>.hedge`, see `config::hedge`):
//! - Only reads (`eth::Method::is_read`) are hedged, never a write such as
//!   `eth_sendRawTransaction`, a filter or a subscription: the method table
//!   decides, whatever the config's globs say. Hedging is off by default.
//! - The hedge goes to a backend not asked yet, chosen as the first was
//!   (P2C, or the candidates' order for a state read of unknown holders),
//!   from the same candidates: those with the call's pinned block and, for
//!   an old state read, those that hold it.
//! - At most `max_extra` hedges per call (default 1: two sends). A failed
//!   send is retried as before (`max_attempts`); a hedge does not use an
//!   attempt, and a failure of one leg waits for the other.
//! - When one answers, the sends still in flight are dropped, which makes
//!   hyper cancel their requests; they are counted
//!   (`rpcgate_hedged_losers_cancelled_total`), and the time a loser had
//!   taken is fed to its latency estimate as a lower bound
//!   (`PeakEwma::observe_at_least`), so a backend whose slow answers are
//!   always cancelled is still seen as slow.
//!
//! `delay: p95` is the first backend's own p95 latency, which is not
//! tracked as a quantile: it is taken as **three times its Peak-EWMA
//! estimate** (decayed to now), at least 1 ms and at most the call's
//! timeout. For exponentially distributed round trips p95 = ln(20) × mean
//! ≈ 3 × mean; the Peak-EWMA estimate sits above the mean (peaks are
//! believed at once), so this errs towards hedging late, i.e. rarely.
//!
//! The outcome of every answered call of a hedged method is counted in
//! `rpcgate_hedged_calls_total{network,outcome}` (`not_needed`,
//! `first_won`, `hedge_won`, `no_other_backend`).

use std::future::Future;
use std::time::Duration;

use futures_util::stream::{FuturesUnordered, StreamExt};
use tokio::time::Instant;

use super::batch::Batcher;
use crate::config::{HedgeDelay, NetworkConfig};
use crate::eth::methods::{lookup, METHODS};
use crate::jsonrpc::Reply;
use crate::metrics::{HedgeMetrics, HedgeOutcome, HedgeSeries};
use crate::upstream::{Backend, BackendView, UpstreamError};

/// `delay: p95` as a multiple of the Peak-EWMA estimate (see the module doc).
const P95_OVER_EWMA: u32 = 3;
/// The shortest delay `p95` gives (a backend answering in microseconds).
const MIN_P95_DELAY: Duration = Duration::from_millis(1);

/// A network's hedging rules, resolved per method of the table once, and
/// its counters.
pub struct Hedging {
    /// By position in `METHODS`; empty when no rule is configured.
    plans: Box<[Option<Plan>]>,
    series: Option<HedgeSeries>,
}

/// How one method is hedged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Plan {
    delay: HedgeDelay,
    max_extra: u32,
}

impl Hedging {
    pub fn new(config: &NetworkConfig, metrics: &HedgeMetrics) -> Hedging {
        if config.hedge.is_empty() {
            return Hedging::off();
        }
        let plans = METHODS
            .iter()
            .map(|m| {
                let rule = config.hedge.iter().find(|r| r.matches(m.name))?;
                m.is_read().then_some(Plan {
                    delay: rule.delay,
                    max_extra: rule.max_extra,
                })
            })
            .collect();
        Hedging {
            plans,
            series: Some(metrics.series(&config.name)),
        }
    }

    /// No method is hedged.
    pub fn off() -> Hedging {
        Hedging {
            plans: Box::new([]),
            series: None,
        }
    }

    /// The race state for one call of `method`, if it is hedged.
    pub(super) fn race(&self, method: &str) -> Option<Race<'_>> {
        if self.plans.is_empty() {
            return None;
        }
        let (i, _) = lookup(method)?;
        let plan = (*self.plans.get(i)?)?;
        Some(Race {
            plan,
            series: self.series.as_ref()?,
            extra_left: plan.max_extra,
            hedge_at: None,
            hedged: false,
            starved: false,
        })
    }
}

/// The hedging state of one call: when the next hedge is due, how many
/// may still be sent.
pub(super) struct Race<'h> {
    plan: Plan,
    series: &'h HedgeSeries,
    extra_left: u32,
    hedge_at: Option<Instant>,
    /// A hedge was sent.
    hedged: bool,
    /// A hedge was due with no backend left to ask.
    starved: bool,
}

impl Race<'_> {
    /// A send to `backend` started now, with time limit `timeout`: the next
    /// hedge (if any may be sent) is due after the delay.
    pub(super) fn started(&mut self, backend: &Backend, timeout: Duration) {
        self.hedge_at = (self.extra_left > 0)
            .then(|| Instant::now() + delay_for(self.plan.delay, backend, timeout));
    }

    /// When the next hedge is due.
    pub(super) fn hedge_at(&self) -> Option<Instant> {
        self.hedge_at
    }

    /// A hedge was sent to `backend` now.
    pub(super) fn hedged(&mut self, backend: &Backend, timeout: Duration) {
        self.hedged = true;
        self.extra_left = self.extra_left.saturating_sub(1);
        self.started(backend, timeout);
    }

    /// A hedge was due, but every candidate has been asked.
    pub(super) fn no_other_backend(&mut self) {
        self.hedge_at = None;
        self.starved = true;
    }

    /// The call got its answer from a hedge (`by_hedge`) or not, with
    /// `losers` sends still in flight, about to be dropped.
    pub(super) fn answered(&self, by_hedge: bool, losers: usize) {
        let outcome = match (by_hedge, self.hedged, self.starved) {
            (true, _, _) => HedgeOutcome::HedgeWon,
            (false, true, _) => HedgeOutcome::FirstWon,
            (false, false, true) => HedgeOutcome::NoOtherBackend,
            (false, false, false) => HedgeOutcome::NotNeeded,
        };
        self.series.outcome(outcome).inc();
        self.series.cancelled.inc_by(losers as u64);
    }
}

/// The delay before hedging a send to `backend` (see the module doc for `p95`).
fn delay_for(delay: HedgeDelay, backend: &Backend, timeout: Duration) -> Duration {
    match delay {
        HedgeDelay::After(d) => d,
        HedgeDelay::P95 => backend
            .load
            .estimate()
            .saturating_mul(P95_OVER_EWMA)
            .max(MIN_P95_DELAY)
            .min(timeout),
    }
}

/// One finished send of a call.
pub(super) struct Leg<'v> {
    pub(super) choice: &'v BackendView,
    pub(super) res: Result<Reply, UpstreamError>,
    pub(super) ejected_now: bool,
    /// Sent as a hedge (not as the first try or a retry).
    pub(super) hedge: bool,
}

/// One send of a call to `choice`. When `learn` is set and the send is
/// dropped before it finishes (another answered first), the time it had
/// taken is fed to the backend's estimate as a lower bound. `batch`: the
/// client batch this first send rides in (`super::batch`).
pub(super) async fn leg<'v>(
    choice: &'v BackendView,
    method: &str,
    params: Option<&str>,
    timeout: Duration,
    hedge: bool,
    learn: bool,
    batch: Option<&Batcher>,
) -> Leg<'v> {
    let mut pending = Pending {
        backend: &choice.backend,
        started: Instant::now(),
        armed: learn,
    };
    let (res, ejected_now) = match batch {
        // Boxed: only a client batch's entries ride in one, and a future
        // held inline makes every send's future larger (it is copied
        // whole when the call's future is boxed).
        Some(batch) => Box::pin(batch.call(&choice.backend, method, params, timeout)).await,
        None => choice.backend.call(method, params, timeout).await,
    };
    pending.armed = false;
    Leg {
        choice,
        res,
        ejected_now,
        hedge,
    }
}

/// Armed while a send is in flight; dropped armed, the send was cancelled.
struct Pending<'b> {
    backend: &'b Backend,
    started: Instant,
    armed: bool,
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.backend.load.observe_at_least(self.started.elapsed());
        }
    }
}

/// What happened next in a call's race.
pub(super) enum Next<T> {
    /// A send finished.
    Done(T),
    /// The hedge delay passed first.
    HedgeDue,
}

/// Waits for the next send of `legs` to finish, or for `hedge_at`; `None`
/// when nothing is in flight and no hedge is due.
pub(super) async fn next<F: Future>(
    legs: &mut FuturesUnordered<F>,
    hedge_at: Option<Instant>,
) -> Option<Next<F::Output>> {
    let Some(at) = hedge_at else {
        return legs.next().await.map(Next::Done);
    };
    if legs.is_empty() {
        tokio::time::sleep_until(at).await;
        return Some(Next::HedgeDue);
    }
    tokio::select! {
        biased;
        done = legs.next() => done.map(Next::Done),
        () = tokio::time::sleep_until(at) => Some(Next::HedgeDue),
    }
}

#[cfg(test)]
#[path = "hedge_tests.rs"]
mod tests;
