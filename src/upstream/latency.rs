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
//! The request path updates it on every completion, so it lives in atomics: a
//! lost update under a race costs one sample, never a lock.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Time constant of the decay.
const TAU: Duration = Duration::from_secs(10);

pub struct PeakEwma {
    /// Estimate in nanoseconds, stored as f64 bits.
    estimate_ns: AtomicU64,
    /// Time of the last sample, in nanoseconds since `epoch`.
    last_ns: AtomicU64,
    epoch: Instant,
    in_flight: AtomicU32,
}

impl PeakEwma {
    pub fn new(initial: Duration) -> Self {
        PeakEwma {
            estimate_ns: AtomicU64::new((initial.as_nanos() as f64).to_bits()),
            last_ns: AtomicU64::new(0),
            epoch: Instant::now(),
            in_flight: AtomicU32::new(0),
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

    /// The current estimate.
    pub fn estimate(&self) -> Duration {
        Duration::from_nanos(f64::from_bits(self.estimate_ns.load(Ordering::Relaxed)) as u64)
    }

    /// Cost used to compare backends: estimate × (in-flight + 1).
    pub fn cost(&self) -> f64 {
        f64::from_bits(self.estimate_ns.load(Ordering::Relaxed)) * f64::from(self.in_flight() + 1)
    }

    /// Records the round-trip time of one completed request.
    pub fn observe(&self, rtt: Duration) {
        self.observe_at(rtt, self.epoch.elapsed())
    }

    fn observe_at(&self, rtt: Duration, now: Duration) {
        let now_ns = now.as_nanos() as u64;
        let rtt = rtt.as_nanos() as f64;
        let last = self.last_ns.swap(now_ns, Ordering::Relaxed);
        let elapsed = now_ns.saturating_sub(last) as f64;
        let _ = self
            .estimate_ns
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                let old = f64::from_bits(bits);
                let new = if rtt > old {
                    rtt
                } else {
                    let w = (-elapsed / TAU.as_nanos() as f64).exp();
                    old * w + rtt * (1.0 - w)
                };
                Some(new.to_bits())
            });
    }
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

    #[test]
    fn peaks_are_taken_at_once_and_decay_slowly() {
        let e = PeakEwma::new(Duration::from_millis(1));
        e.observe_at(Duration::from_millis(50), Duration::from_secs(1));
        assert_eq!(e.estimate(), Duration::from_millis(50));
        // A fast sample right after barely moves it.
        e.observe_at(
            Duration::from_millis(1),
            Duration::from_secs(1) + Duration::from_millis(10),
        );
        assert!(e.estimate() > Duration::from_millis(49));
        // After many time constants it converges to the fast samples.
        e.observe_at(Duration::from_millis(1), Duration::from_secs(200));
        assert!(e.estimate() < Duration::from_millis(2));
    }

    #[test]
    fn in_flight_raises_the_cost() {
        let e = PeakEwma::new(Duration::from_millis(10));
        let idle = e.cost();
        let _a = e.start();
        let _b = e.start();
        assert_eq!(e.in_flight(), 2);
        assert!((e.cost() - 3.0 * idle).abs() < 1.0);
        drop(_a);
        assert_eq!(e.in_flight(), 1);
    }
}
