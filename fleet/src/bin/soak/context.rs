//! What every soak task shares: the fleet, the gateways, the record, the
//! contract, the stop signal and the injections; and the one call helper that
//! times a call and tells a failover (the gateway restarted on purpose) from
//! a failure.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rpcgate_fleet::{Fleet, FleetError};
use serde_json::Value;

use super::gateway::Gateway;
use super::record::Record;

/// Faults of the harness's own making, to show that each count detects its case
/// (`INJECT=dup,gap,stale,send,outage,lost,drop`).
#[derive(Debug, Default, Clone, Copy)]
pub struct Inject {
    /// One item of the first stream of each kind is recorded twice.
    pub dup: bool,
    /// One item of the first stream of each kind is not recorded.
    pub gap: bool,
    /// Reader 0 records once a head 3 blocks above what it was served.
    pub stale: bool,
    /// The wallet sends once with a nonce already used.
    pub send: bool,
    /// Every replica is stopped for 3 s once: reads cannot be answered.
    pub outage: bool,
    /// Filter #0 of each kind is uninstalled behind its poller's back once.
    pub lost: bool,
    /// Subscriber #0 of each kind leaves its connection once, as if dropped.
    pub drop: bool,
}

impl Inject {
    pub fn parse(text: &str) -> Result<Inject, String> {
        let mut inject = Inject::default();
        for word in text.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            match word {
                "dup" => inject.dup = true,
                "gap" => inject.gap = true,
                "stale" => inject.stale = true,
                "send" => inject.send = true,
                "outage" => inject.outage = true,
                "lost" => inject.lost = true,
                "drop" => inject.drop = true,
                other => {
                    return Err(format!(
                        "INJECT: unknown {other:?} (dup, gap, stale, send, outage, lost, drop)"
                    ))
                }
            }
        }
        Ok(inject)
    }
}

pub struct Soak {
    pub fleet: Fleet,
    pub gateways: Vec<Arc<Gateway>>,
    pub record: Arc<Record>,
    /// The logging contract: one event per block, answers 42 to any call.
    pub contract: String,
    pub inject: Inject,
    /// Held while blocks are applied to replicas (mining, replays, reorgs) and
    /// while the wallet sends: a send through a gateway that reached a replica
    /// between its pool being dropped and `evm_mine` would slip into that block
    /// on that replica only, and the replicas would disagree for good.
    pub chain: tokio::sync::Mutex<()>,
    stopping: AtomicBool,
    pub stopped: tokio::sync::Notify,
}

impl Soak {
    pub fn new(
        fleet: Fleet,
        gateways: Vec<Arc<Gateway>>,
        record: Arc<Record>,
        contract: String,
        inject: Inject,
    ) -> Soak {
        Soak {
            fleet,
            gateways,
            record,
            contract,
            inject,
            chain: tokio::sync::Mutex::new(()),
            stopping: AtomicBool::new(false),
            stopped: tokio::sync::Notify::new(),
        }
    }

    pub fn stopping(&self) -> bool {
        self.stopping.load(Ordering::Relaxed)
    }

    pub fn stop(&self) {
        self.stopping.store(true, Ordering::Relaxed);
        self.stopped.notify_waiters();
    }

    /// Sleeps `d`, or less when the soak stops; false when it stopped.
    pub async fn pause(&self, d: Duration) -> bool {
        if self.stopping() {
            return false;
        }
        tokio::select! {
            _ = tokio::time::sleep(d) => !self.stopping(),
            _ = self.stopped.notified() => false,
        }
    }

    /// Calls `method` on gateway `g`; when that gateway is being restarted on
    /// purpose and the call did not reach an answer, it goes to the other one
    /// (a client behind a Service would be sent there). Returns the answer and
    /// the gateway that gave it.
    pub async fn call(
        &self,
        g: usize,
        method: &'static str,
        params: Value,
    ) -> Result<(Value, usize), FleetError> {
        let first = self.timed(g, method, params.clone()).await;
        match first {
            Err(ref e) if is_transport(e) && self.gateways[g].is_restarting() => {
                self.record.note("failovers (gateway restarting)", 1);
                let other = (g + 1) % self.gateways.len();
                self.timed(other, method, params).await.map(|v| (v, other))
            }
            other => other.map(|v| (v, g)),
        }
    }

    async fn timed(
        &self,
        g: usize,
        method: &'static str,
        params: Value,
    ) -> Result<Value, FleetError> {
        let started = Instant::now();
        let answer = self.gateways[g].client.call(method, params).await;
        self.record.latency(method, started.elapsed());
        answer
    }
}

/// The call got no answer from the gateway (refused, reset, timed out).
pub fn is_transport(error: &FleetError) -> bool {
    matches!(
        error,
        FleetError::Transport { .. } | FleetError::Timeout { .. } | FleetError::HttpStatus { .. }
    )
}

/// A `0x` quantity as a number.
pub fn quantity(value: &Value) -> Option<u64> {
    value
        .as_str()
        .and_then(|s| s.strip_prefix("0x"))
        .and_then(|h| u64::from_str_radix(h, 16).ok())
}
