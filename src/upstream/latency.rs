//! Peak-EWMA latency estimate per backend, lock-free.
//!
//! The estimate follows tower's `load::PeakEwma` (after Finagle's): a sample
//! above the current estimate replaces it at once (peaks are believed
//! immediately, so a backend that slows down is avoided quickly), a sample
//! below it is blended in with a weight that decays with the time since the
//! last sample (`w = exp(-elapsed / tau)`), so a backend recovers gradually.
//! The load of a backend is `estimate * (in_flight + 1)`: a fast backend that
//! already holds many requests looks as costly as a slow idle one.
//!
//! Between samples the estimate decays towards zero, and it is decayed when
//! it is *read*, not only when a sample arrives (as tower does: a read is an
//! update with a zero round trip). Without that, a backend whose estimate
//! holds a failure penalty would only recover through traffic that its
//! penalty keeps away from it. A read computes the decayed value without
//! storing it, so reading stays a pair of atomic loads. A backend that is
//! re-admitted after an ejection starts again from a neutral estimate
//! ([`PeakEwma::reset`]): the round trip of the probe that re-admitted it.
//!
//! That neutral estimate is *provisional* until the backend's first real
//! answer, as is a new backend's initial one: while it has no request in
//! flight its cost is zero, so the next pick that draws it sends it one
//! request, and that answer's round trip replaces the estimate outright
//! (no blending). Without this a probe's round trip, taken on a busy
//! machine or over a fresh connection, could sit above the estimates of
//! peers that serve all the traffic; since every estimate moves towards
//! its samples with the same time constant, the ratio would hold and the
//! backend would stay starved for tens of seconds. One request in flight
//! ends the free pass, so a burst does not land on an untried backend.
//!
//! The request path updates it on every completion, so it lives in atomics: a
//! lost update under a race costs one sample, never a lock. Time is tokio's
//! clock, so tests drive the decay with `tokio::time::pause`.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// Time constant of the decay.
const TAU: Duration = Duration::from_secs(10);

pub struct PeakEwma {
    /// Estimate in nanoseconds at `last_ns`, stored as f64 bits.
    estimate_ns: AtomicU64,
    /// Time of the last sample, in nanoseconds since `epoch`.
    last_ns: AtomicU64,
    epoch: Instant,
    in_flight: AtomicU32,
    /// No answer since `new` or `reset`: the estimate is a guess.
    provisional: AtomicBool,
}

impl PeakEwma {
    pub fn new(initial: Duration) -> Self {
        PeakEwma {
            estimate_ns: AtomicU64::new(nanos(initial).to_bits()),
            last_ns: AtomicU64::new(0),
            epoch: Instant::now(),
            in_flight: AtomicU32::new(0),
            provisional: AtomicBool::new(true),
        }
    }

    /// Marks a request in flight until the guard drops.
    pub fn start(&self) -> InFlight<'_> {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(self)
    }

    pub fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// The current estimate, decayed to now.
    pub fn estimate(&self) -> Duration {
        Duration::from_nanos(self.estimate_ns_at(self.now()) as u64)
    }

    /// Cost used to compare backends: estimate (decayed to now) × (in-flight + 1);
    /// zero for a provisional estimate with nothing in flight (its trial).
    pub fn cost(&self) -> f64 {
        let in_flight = self.in_flight();
        if in_flight == 0 && self.provisional.load(Ordering::Relaxed) {
            return 0.0;
        }
        self.estimate_ns_at(self.now()) * f64::from(in_flight + 1)
    }

    /// Whether no answer has been seen since `new` or `reset`.
    #[cfg(test)]
    pub fn is_provisional(&self) -> bool {
        self.provisional.load(Ordering::Relaxed)
    }

    /// Records the round-trip time of one completed request.
    pub fn observe(&self, rtt: Duration) {
        self.observe_at(rtt, self.now())
    }

    /// Records that a request has taken `elapsed` so far without an answer
    /// (it was cancelled: another backend answered a hedged read first). That
    /// is a lower bound of its round trip, so it may raise the estimate, as
    /// a peak, but never lowers it: a backend whose slow answers are always
    /// cancelled would otherwise never be seen as slow.
    pub fn observe_at_least(&self, elapsed: Duration) {
        let now = self.now();
        if nanos(elapsed) > self.estimate_ns_at(now) {
            self.observe_at(elapsed, now);
        }
    }

    /// Forgets the history: the estimate becomes `neutral` as of now (a
    /// re-admitted backend's penalty from before its ejection says nothing
    /// of the node that answered the probe).
    pub fn reset(&self, neutral: Duration) {
        self.last_ns.store(self.now(), Ordering::Relaxed);
        self.estimate_ns
            .store(nanos(neutral).to_bits(), Ordering::Relaxed);
        self.provisional.store(true, Ordering::Relaxed);
    }

    fn now(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    /// The stored estimate decayed towards zero by the time since its sample.
    fn estimate_ns_at(&self, now_ns: u64) -> f64 {
        let last = self.last_ns.load(Ordering::Relaxed);
        let stored = f64::from_bits(self.estimate_ns.load(Ordering::Relaxed));
        stored * decay(now_ns.saturating_sub(last))
    }

    fn observe_at(&self, rtt: Duration, now_ns: u64) {
        let rtt = nanos(rtt);
        let last = self.last_ns.swap(now_ns, Ordering::Relaxed);
        // A plain load first: the swap (a locked write) is paid once, not per answer.
        if self.provisional.load(Ordering::Relaxed)
            && self.provisional.swap(false, Ordering::Relaxed)
        {
            // The first real round trip: it replaces the guess.
            self.estimate_ns.store(rtt.to_bits(), Ordering::Relaxed);
            return;
        }
        let w = decay(now_ns.saturating_sub(last));
        let _ = self
            .estimate_ns
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                // The old estimate decayed to now, plus the new sample's share.
                let decayed = f64::from_bits(bits) * w;
                let new = if rtt > decayed {
                    rtt
                } else {
                    decayed + rtt * (1.0 - w)
                };
                Some(new.to_bits())
            });
    }
}

/// The weight left to an estimate `elapsed_ns` old.
fn decay(elapsed_ns: u64) -> f64 {
    (-(elapsed_ns as f64) / nanos(TAU)).exp()
}

fn nanos(d: Duration) -> f64 {
    d.as_nanos() as f64
}

pub struct InFlight<'a>(&'a PeakEwma);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;
    const S: u64 = 1_000 * MS;

    #[test]
    fn peaks_are_taken_at_once_and_decay_slowly() {
        let e = PeakEwma::new(Duration::from_millis(1));
        e.observe_at(Duration::from_millis(50), S);
        assert_eq!(e.estimate_ns_at(S), 50.0 * MS as f64);
        // A fast sample right after barely moves it.
        e.observe_at(Duration::from_millis(1), S + 10 * MS);
        assert!(e.estimate_ns_at(S + 10 * MS) > 49.0 * MS as f64);
        // After many time constants it converges to the fast samples.
        e.observe_at(Duration::from_millis(1), 200 * S);
        assert!(e.estimate_ns_at(200 * S) < 2.0 * MS as f64);
    }

    #[test]
    fn the_estimate_decays_when_read_without_samples() {
        let e = PeakEwma::new(Duration::from_millis(1));
        // A failure penalty, then no traffic at all.
        e.observe_at(Duration::from_secs(10), S);
        assert_eq!(e.estimate_ns_at(S), 10.0 * S as f64);
        let after_tau = e.estimate_ns_at(S + 10 * S);
        assert!((after_tau / (10.0 * S as f64) - (-1.0f64).exp()).abs() < 1e-9);
        assert!(e.estimate_ns_at(S + 100 * S) < 1.0 * MS as f64);
        // Reading stored nothing: a sample now blends with the decayed value.
        e.observe_at(Duration::from_millis(2), S + 100 * S);
        let now = e.estimate_ns_at(S + 100 * S);
        assert!(now > 1.9 * MS as f64 && now < 2.5 * MS as f64, "{now}");
    }

    #[tokio::test(start_paused = true)]
    async fn reset_forgets_a_penalty_and_time_decays_it() {
        let e = PeakEwma::new(Duration::from_millis(1));
        e.observe(Duration::from_secs(10));
        assert_eq!(e.estimate(), Duration::from_secs(10));
        tokio::time::advance(Duration::from_secs(20)).await;
        let decayed = e.estimate();
        assert!(decayed < Duration::from_millis(1400) && decayed > Duration::from_millis(1300));
        e.reset(Duration::from_millis(3));
        assert_eq!(e.estimate(), Duration::from_millis(3));
    }

    #[tokio::test(start_paused = true)]
    async fn a_provisional_estimate_costs_nothing_once_and_its_first_answer_replaces_it() {
        let e = PeakEwma::new(Duration::from_millis(5));
        e.observe(Duration::from_millis(1));
        e.reset(Duration::from_millis(40));
        assert!(e.is_provisional());
        assert_eq!(e.cost(), 0.0);
        let trial = e.start();
        assert_eq!(e.cost(), 2.0 * 40.0 * MS as f64);
        // A fast first answer is taken whole, not blended into the guess.
        e.observe(Duration::from_millis(2));
        drop(trial);
        assert!(!e.is_provisional());
        assert_eq!(e.estimate(), Duration::from_millis(2));
        assert_eq!(e.cost(), 2.0 * MS as f64);
    }

    #[tokio::test(start_paused = true)]
    async fn a_lower_bound_raises_the_estimate_but_never_lowers_it() {
        let e = PeakEwma::new(Duration::from_millis(5));
        e.observe_at_least(Duration::from_millis(50));
        assert_eq!(e.estimate(), Duration::from_millis(50));
        e.observe_at_least(Duration::from_millis(1));
        assert_eq!(e.estimate(), Duration::from_millis(50));
    }

    #[test]
    fn in_flight_raises_the_cost() {
        let e = PeakEwma::new(Duration::from_millis(10));
        let _a = e.start();
        let _b = e.start();
        assert_eq!(e.in_flight(), 2);
        let three = e.cost();
        drop(_a);
        assert_eq!(e.in_flight(), 1);
        // Twice the estimate now, three times before (the decay in between is negligible).
        assert!((three / e.cost() - 1.5).abs() < 1e-3);
    }
}
