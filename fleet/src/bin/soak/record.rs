//! The soak's bookkeeping: every count that must stay 0 (with its first cases),
//! the faults with their times, latencies per method per window, and the
//! gateways' resources over time.
//!
//! One shared [`Record`] behind short locks: the soak's clients are few (tens)
//! and the record is touched once per call, so a mutex is no bottleneck, and
//! one owner keeps the report's numbers consistent with each other.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// Cases kept per count: the report names the first few, the rest are counted.
const CASES_KEPT: usize = 8;
/// Latencies are summarised per window of this length.
pub const WINDOW: Duration = Duration::from_secs(10);

/// The counts a healthy gateway keeps at 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Count {
    FailedReads,
    StaleSameGateway,
    StaleAcrossGateways,
    HeadsGaps,
    HeadsDuplicates,
    LogsGaps,
    LogsDuplicates,
    LogsNotRemoved,
    SubscriptionDrops,
    BlockFilterMisses,
    BlockFilterDuplicates,
    LogFilterMisses,
    LogFilterDuplicates,
    LogFilterNotRemoved,
    FiltersLost,
    SendErrors,
}

impl Count {
    pub const ALL: [Count; 16] = [
        Count::FailedReads,
        Count::StaleSameGateway,
        Count::StaleAcrossGateways,
        Count::HeadsGaps,
        Count::HeadsDuplicates,
        Count::LogsGaps,
        Count::LogsDuplicates,
        Count::LogsNotRemoved,
        Count::SubscriptionDrops,
        Count::BlockFilterMisses,
        Count::BlockFilterDuplicates,
        Count::LogFilterMisses,
        Count::LogFilterDuplicates,
        Count::LogFilterNotRemoved,
        Count::FiltersLost,
        Count::SendErrors,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Count::FailedReads => "failed reads",
            Count::StaleSameGateway => "stale answers (same gateway)",
            Count::StaleAcrossGateways => "stale answers (across gateways)",
            Count::HeadsGaps => "WebSocket newHeads gaps",
            Count::HeadsDuplicates => "WebSocket newHeads duplicates",
            Count::LogsGaps => "WebSocket logs gaps",
            Count::LogsDuplicates => "WebSocket logs duplicates",
            Count::LogsNotRemoved => "WebSocket logs of reorged blocks without removed:true",
            Count::SubscriptionDrops => "WebSocket subscriptions dropped (gateway up)",
            Count::BlockFilterMisses => "block filter misses",
            Count::BlockFilterDuplicates => "block filter duplicates",
            Count::LogFilterMisses => "log filter misses",
            Count::LogFilterDuplicates => "log filter duplicates",
            Count::LogFilterNotRemoved => "log filter logs of reorged blocks without removed:true",
            Count::FiltersLost => "filters lost (not found when polled)",
            Count::SendErrors => "send errors (wallet)",
        }
    }
}

/// One occurrence of a count: when, and what.
#[derive(Debug, Clone)]
pub struct Case {
    pub at: f64,
    pub what: String,
}

#[derive(Debug, Default, Clone)]
pub struct Tally {
    pub n: u64,
    pub cases: Vec<Case>,
}

/// A fault the scheduler injected, from its start to its end (seconds since start).
#[derive(Debug, Clone)]
pub struct FaultEvent {
    pub start: f64,
    pub end: f64,
    pub what: String,
}

/// One sample of a gateway process.
#[derive(Debug, Clone)]
pub struct ResourceSample {
    pub at: f64,
    pub gateway: usize,
    pub pid: u32,
    pub rss_kib: u64,
    pub fds: u64,
}

pub struct Record {
    start: Instant,
    tallies: Mutex<BTreeMap<Count, Tally>>,
    info: Mutex<BTreeMap<&'static str, u64>>,
    faults: Mutex<Vec<FaultEvent>>,
    /// (window, method) -> latencies in microseconds.
    latency: Mutex<BTreeMap<(u64, &'static str), Vec<u32>>>,
    resources: Mutex<Vec<ResourceSample>>,
}

impl Record {
    pub fn new() -> Record {
        Record {
            start: Instant::now(),
            tallies: Mutex::new(BTreeMap::new()),
            info: Mutex::new(BTreeMap::new()),
            faults: Mutex::new(Vec::new()),
            latency: Mutex::new(BTreeMap::new()),
            resources: Mutex::new(Vec::new()),
        }
    }

    /// Seconds since the soak started.
    pub fn now(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }

    /// Counts one case of `count`, seen now.
    pub fn fail(&self, count: Count, what: impl Into<String>) {
        let at = self.now();
        self.fail_at(count, at, what);
    }

    /// Counts one case of `count`, seen at `at` (a check made after the run).
    pub fn fail_at(&self, count: Count, at: f64, what: impl Into<String>) {
        let what = what.into();
        let mut tallies = self.tallies.lock();
        let tally = tallies.entry(count).or_default();
        tally.n += 1;
        if tally.n <= CASES_KEPT as u64 {
            eprintln!("soak: t={at:.1}s {}: {what}", count.name());
        }
        if tally.cases.len() < CASES_KEPT {
            tally.cases.push(Case { at, what });
        }
    }

    /// Adds to an informational total (reads made, heads received, ...).
    pub fn note(&self, what: &'static str, n: u64) {
        *self.info.lock().entry(what).or_default() += n;
    }

    pub fn latency(&self, method: &'static str, took: Duration) {
        let window = self.start.elapsed().as_secs() / WINDOW.as_secs();
        let micros = u32::try_from(took.as_micros()).unwrap_or(u32::MAX);
        self.latency
            .lock()
            .entry((window, method))
            .or_default()
            .push(micros);
    }

    /// Starts a fault; returns its index for [`Record::fault_end`].
    pub fn fault_start(&self, what: impl Into<String>) -> usize {
        let what = what.into();
        let at = self.now();
        eprintln!("soak: t={at:.1}s fault: {what}");
        let mut faults = self.faults.lock();
        faults.push(FaultEvent {
            start: at,
            end: at,
            what,
        });
        faults.len() - 1
    }

    pub fn fault_end(&self, index: usize) {
        let at = self.now();
        if let Some(fault) = self.faults.lock().get_mut(index) {
            fault.end = at;
        }
    }

    pub fn sample(&self, sample: ResourceSample) {
        self.resources.lock().push(sample);
    }

    pub fn tallies(&self) -> BTreeMap<Count, Tally> {
        self.tallies.lock().clone()
    }

    pub fn info(&self) -> BTreeMap<&'static str, u64> {
        self.info.lock().clone()
    }

    pub fn faults(&self) -> Vec<FaultEvent> {
        self.faults.lock().clone()
    }

    pub fn resources(&self) -> Vec<ResourceSample> {
        self.resources.lock().clone()
    }

    /// Per method, per window: (window start in s, count, p50 ms, p99 ms).
    pub fn latency_summary(&self) -> BTreeMap<&'static str, Vec<(f64, usize, f64, f64)>> {
        let mut out: BTreeMap<&'static str, Vec<(f64, usize, f64, f64)>> = BTreeMap::new();
        for ((window, method), values) in self.latency.lock().iter_mut() {
            values.sort_unstable();
            let at = |q: f64| {
                let i = ((values.len() as f64 - 1.0) * q).round() as usize;
                f64::from(values[i.min(values.len() - 1)]) / 1000.0
            };
            if values.is_empty() {
                continue;
            }
            out.entry(method).or_default().push((
                (*window * WINDOW.as_secs()) as f64,
                values.len(),
                at(0.5),
                at(0.99),
            ));
        }
        out
    }
}
