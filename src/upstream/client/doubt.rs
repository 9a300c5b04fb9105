//! Doubts about a backend's head: "its head is unknown until probed again".
//!
//! A head is only as good as the backend's last answer. After a reconnect
//! (probes refused, then accepted; a newHeads feed lost and regained) a node
//! may be another process, restarted behind the head it had; an answer that
//! says a block it claimed is not there shows the same. Whoever sees such
//! evidence (the head tracker, the feed, the router) raises a doubt; the
//! view builder keeps a doubted backend out of the reads of the present,
//! and its head tracker probes `latest` at once. Only a probe that *started*
//! after the doubt settles it, so a probe already in flight (answered from
//! before the restart) cannot.
//!
//! Two counters rather than a flag: a doubt raised while a probe is in
//! flight stays raised when that probe ends.

use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::Notify;

/// The doubts raised about one backend's head, and how many are settled.
#[derive(Default)]
pub struct HeadDoubt {
    raised: AtomicU64,
    settled: AtomicU64,
    wake: Notify,
}

/// What a probe saw when it started: settles the doubts raised before it.
#[derive(Debug, Clone, Copy)]
pub struct ProbeStart(u64);

impl HeadDoubt {
    /// Its head is unknown until a probe that starts now answers.
    pub fn raise(&self) {
        self.raised.fetch_add(1, Ordering::AcqRel);
        self.wake.notify_one();
    }

    /// Whether a doubt is raised and not settled yet.
    pub fn doubted(&self) -> bool {
        self.raised.load(Ordering::Acquire) > self.settled.load(Ordering::Acquire)
    }

    /// Taken when a probe of `latest` starts.
    pub fn probe_start(&self) -> ProbeStart {
        ProbeStart(self.raised.load(Ordering::Acquire))
    }

    /// The probe that began at `start` answered: the doubts raised before
    /// it are settled. Returns whether that ended the doubt.
    pub fn settle(&self, start: ProbeStart) -> bool {
        let was = self.doubted();
        self.settled.fetch_max(start.0, Ordering::AcqRel);
        was && !self.doubted()
    }

    /// Resolves when a doubt is raised (for the head tracker).
    pub async fn raised(&self) {
        self.wake.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_probe_started_after_the_doubt_settles_it() {
        let d = HeadDoubt::default();
        assert!(!d.doubted());
        let early = d.probe_start();
        d.raise();
        assert!(d.doubted());
        assert!(!d.settle(early), "a probe from before the doubt");
        assert!(d.doubted());
        let late = d.probe_start();
        d.raise(); // raised again while that probe is in flight
        assert!(!d.settle(late));
        assert!(d.doubted());
        assert!(d.settle(d.probe_start()));
        assert!(!d.doubted());
    }
}
