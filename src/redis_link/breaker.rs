//! A circuit breaker for Redis: after `failures` failed or slow calls in a
//! row, Redis is skipped for `cooldown`, so that callers take their fallback
//! at once instead of each waiting out its deadline. When the cool-down has
//! passed, one call (the probe) is let through; while it is out the others
//! keep skipping. Its success closes the breaker, its failure opens it for
//! another cool-down. A probe whose caller gave up (its future dropped)
//! cannot wedge the breaker: the next cool-down lets another probe through.
//!
//! The state is two atomic words, read without a lock on every call: the
//! failures in a row, and the instant (milliseconds since the breaker was
//! made, plus one; 0 while closed) until which calls skip Redis.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// What the breaker says about one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pass {
    /// Closed: make the call.
    Closed,
    /// Open, cool-down over: this call is the probe.
    Probe,
    /// Open: do not call Redis.
    Skip,
}

/// What a call's end did to the breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    None,
    Opened,
    Closed,
}

pub struct Breaker {
    epoch: Instant,
    threshold: u32,
    cooldown_ms: u64,
    failures: AtomicU32,
    /// 0 while closed; else (ms since `epoch`) + 1 until which calls skip.
    open_until: AtomicU64,
}

impl Breaker {
    pub fn new(threshold: u32, cooldown: Duration) -> Breaker {
        Breaker {
            epoch: Instant::now(),
            threshold: threshold.max(1),
            cooldown_ms: (cooldown.as_millis() as u64).max(1),
            failures: AtomicU32::new(0),
            open_until: AtomicU64::new(0),
        }
    }

    fn now(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64 + 1
    }

    pub fn is_open(&self) -> bool {
        self.open_until.load(Ordering::Relaxed) != 0
    }

    pub fn pass(&self) -> Pass {
        self.pass_at(self.now())
    }

    fn pass_at(&self, now: u64) -> Pass {
        let until = self.open_until.load(Ordering::Relaxed);
        if until == 0 {
            return Pass::Closed;
        }
        if now < until {
            return Pass::Skip;
        }
        // One caller wins the probe; the others skip until it ends.
        match self.open_until.compare_exchange(
            until,
            now + self.cooldown_ms,
            Ordering::AcqRel,
            Ordering::Relaxed,
        ) {
            Ok(_) => Pass::Probe,
            Err(_) => Pass::Skip,
        }
    }

    pub fn succeeded(&self) -> Change {
        self.failures.store(0, Ordering::Relaxed);
        if self.open_until.swap(0, Ordering::AcqRel) != 0 {
            Change::Closed
        } else {
            Change::None
        }
    }

    pub fn failed(&self) -> Change {
        self.failed_at(self.now())
    }

    fn failed_at(&self, now: u64) -> Change {
        if self.open_until.load(Ordering::Relaxed) != 0 {
            // A failed probe: the cool-down its pass set stands.
            return Change::None;
        }
        let failures = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
        if failures < self.threshold {
            return Change::None;
        }
        match self.open_until.compare_exchange(
            0,
            now + self.cooldown_ms,
            Ordering::AcqRel,
            Ordering::Relaxed,
        ) {
            Ok(_) => Change::Opened,
            Err(_) => Change::None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_failures_probes_once_and_closes_on_success() {
        let b = Breaker::new(3, Duration::from_millis(100));
        assert_eq!(b.pass_at(1), Pass::Closed);
        assert_eq!(b.failed_at(1), Change::None);
        assert_eq!(b.failed_at(1), Change::None);
        assert_eq!(b.failed_at(1), Change::Opened);
        assert_eq!(b.pass_at(50), Pass::Skip);
        // Cool-down over: one probe, the others skip while it is out.
        assert_eq!(b.pass_at(101), Pass::Probe);
        assert_eq!(b.pass_at(102), Pass::Skip);
        // The probe fails: another cool-down.
        assert_eq!(b.failed_at(110), Change::None);
        assert_eq!(b.pass_at(150), Pass::Skip);
        assert_eq!(b.pass_at(201), Pass::Probe);
        assert_eq!(b.succeeded(), Change::Closed);
        assert_eq!(b.pass_at(202), Pass::Closed);
        // A success resets the count.
        b.failed_at(203);
        b.failed_at(203);
        b.succeeded();
        assert_eq!(b.failed_at(204), Change::None);
        assert_eq!(b.pass_at(205), Pass::Closed);
    }

    #[test]
    fn an_abandoned_probe_does_not_wedge_it() {
        let b = Breaker::new(1, Duration::from_millis(10));
        assert_eq!(b.failed_at(1), Change::Opened);
        assert_eq!(b.pass_at(11), Pass::Probe);
        // Its caller went away without a verdict; the next cool-down lets another through.
        assert_eq!(b.pass_at(15), Pass::Skip);
        assert_eq!(b.pass_at(21), Pass::Probe);
    }
}
