//! Head tracking: one control loop per backend.
//!
//! The loop owns everything known about a backend's chain position and
//! publishes it as an immutable [`HeadState`] on a `watch` channel, which the
//! view builder of every network using this backend waits on. Nothing on the
//! request path writes here.
//!
//! - chain id: checked first, and again whenever the backend was unreachable
//!   (a restarted node may be a different node); a mismatch refuses it.
//! - latest: newHeads over WebSocket when configured (lowest delay), and
//!   polling of `eth_getBlockByNumber("latest")` always: fast while no
//!   subscription is live, slow (a liveness check) while one is.
//! - safe and finalized: polled.
//! - the heads it saw (number and hash, the last [`SEEN`]), and the block at
//!   a height the view builder asks about (`Backend::ask`): what the view
//!   compares between backends to tell one chain from another (see `agree`).
//! - syncing: `eth_syncing` polled.
//! - reachability: a failed probe marks the backend unreachable; a successful
//!   one re-admits a backend that the request path ejected.
//! - doubts (`client::HeadDoubt`): a backend that was unreachable, or whose
//!   newHeads feed came back, or that denied a block it claimed (seen by the
//!   router), may be a node restarted behind: its head is unknown until a
//!   probe of `latest` that started after the doubt answers. The doubt wakes
//!   this loop to probe at once, and that probe's head is taken even when it
//!   is below the one the feed pushed.
//!
//! A `tier: fallback` backend in standby (primaries serve, see `view`) is
//! probed only every `fallback_probe_interval` (its chain id, then `latest`
//! alone: a paid quota pays one call per interval), with no newHeads
//! subscription. When the view builder wakes it to serve, it is tracked at
//! full pace at once, so its head is fresh within one round trip.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::client::Backend;
use super::newheads;
use crate::config::{HeadConfig, UpstreamTier};
use crate::eth::parse_quantity;

/// A block's number and hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockId {
    pub number: u64,
    pub hash: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainCheck {
    /// Not checked yet (or not reachable since the last check).
    Unknown,
    Ok,
    Mismatch {
        got: u64,
    },
}

/// What the head tracker knows of one backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeadState {
    pub chain: ChainCheck,
    pub reachable: bool,
    pub syncing: bool,
    pub latest: Option<BlockId>,
    pub safe: Option<u64>,
    pub finalized: Option<u64>,
    /// How many times the head went back or was replaced at the same height.
    pub reorgs: u64,
    pub last_error: Option<String>,
    /// Blocks it had at recent heights, ascending by number, one per
    /// height: the heads it reported and the blocks it was asked about.
    pub seen: Vec<BlockId>,
}

/// How many recent blocks a tracker remembers per backend.
pub const SEEN: usize = 64;

impl HeadState {
    pub(super) fn initial() -> Self {
        HeadState {
            chain: ChainCheck::Unknown,
            reachable: false,
            syncing: false,
            latest: None,
            safe: None,
            finalized: None,
            reorgs: 0,
            last_error: None,
            seen: Vec::new(),
        }
    }

    /// Its head's number (0 when unknown).
    pub fn head(&self) -> u64 {
        self.latest.as_ref().map_or(0, |l| l.number)
    }

    /// The hash of its block at `number`, if it reported one.
    pub fn hash_at(&self, number: u64) -> Option<&str> {
        self.seen
            .binary_search_by_key(&number, |b| b.number)
            .ok()
            .and_then(|i| self.seen.get(i))
            .map(|b| b.hash.as_str())
    }

    /// Remembers the block it has at a height (replacing an older answer).
    pub fn note(&mut self, block: BlockId) {
        match self.seen.binary_search_by_key(&block.number, |b| b.number) {
            Ok(i) => {
                if let Some(slot) = self.seen.get_mut(i) {
                    *slot = block;
                }
            }
            Err(i) => self.seen.insert(i, block),
        }
        if self.seen.len() > SEEN {
            let extra = self.seen.len() - SEEN;
            self.seen.drain(..extra);
        }
    }

    /// Not probed to a verdict yet: no head, no error, no chain mismatch
    /// (a gateway that just started, or a backend just added).
    pub fn starting(&self) -> bool {
        self.latest.is_none()
            && self.last_error.is_none()
            && !matches!(self.chain, ChainCheck::Mismatch { .. })
    }

    fn set_latest(&mut self, head: BlockId) {
        if let Some(old) = &self.latest {
            if head.number < old.number || (head.number == old.number && head.hash != old.hash) {
                self.reorgs += 1;
                // What it had at these heights is gone (or was never true).
                self.seen.retain(|b| b.number < head.number);
            }
        }
        self.note(head.clone());
        self.latest = Some(head);
    }
}

/// How long a refused backend waits before its chain id is checked again.
const RECHECK_MISMATCH: Duration = Duration::from_secs(30);

/// Starts the tracker of one backend. The task ends when `stop` turns true or
/// every receiver is gone.
pub fn spawn(
    backend: Arc<Backend>,
    chain_id: u64,
    cfg: HeadConfig,
) -> (watch::Receiver<HeadState>, tokio::task::JoinHandle<()>) {
    let (tx, rx) = watch::channel(HeadState::initial());
    let ws_live = Arc::new(AtomicBool::new(false));
    let task = tokio::spawn(
        Tracker {
            backend,
            chain_id,
            cfg,
            tx,
            ws_live,
        }
        .run(),
    );
    (rx, task)
}

struct Tracker {
    backend: Arc<Backend>,
    chain_id: u64,
    cfg: HeadConfig,
    tx: watch::Sender<HeadState>,
    ws_live: Arc<AtomicBool>,
}

#[derive(Deserialize)]
struct BlockHeader {
    number: String,
    hash: String,
}

impl Tracker {
    async fn run(self) {
        let ws_live = self.ws_live.clone();
        let (heads_tx, mut heads_rx) = mpsc::channel::<BlockId>(16);
        let mut ws: Option<AbortOnDrop> = None;
        let mut next_latest = Instant::now();
        let mut next_finality = Instant::now();
        let mut next_syncing = Instant::now();
        loop {
            if self.tx.is_closed() {
                return;
            }
            let standby = self.standby();
            if standby {
                // Dropping the task aborts the subscription.
                ws = None;
                ws_live.store(false, Ordering::Relaxed);
            } else if ws.is_none() {
                ws = self.backend.ws.clone().map(|url| {
                    AbortOnDrop(tokio::spawn(newheads::follow(
                        url,
                        self.backend.clone(),
                        heads_tx.clone(),
                        ws_live.clone(),
                    )))
                });
            }
            if self.tx.borrow().chain != ChainCheck::Ok {
                let wait = self.check_chain().await;
                if self.tx.borrow().chain != ChainCheck::Ok {
                    let wait = if standby {
                        wait.max(self.cfg.fallback_probe_interval)
                    } else {
                        wait
                    };
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = self.backend.standby_changed() => {}
                    }
                    continue;
                }
                next_latest = Instant::now();
                next_finality = Instant::now();
                next_syncing = Instant::now();
            }
            let rare = self.cfg.fallback_probe_interval;
            tokio::select! {
                _ = tokio::time::sleep_until(next_latest) => {
                    self.poll_latest().await;
                    let every = if self.standby() {
                        rare
                    } else if ws_live.load(Ordering::Relaxed) {
                        self.cfg.ws_poll_interval
                    } else {
                        self.cfg.poll_interval
                    };
                    next_latest = Instant::now() + every;
                }
                _ = tokio::time::sleep_until(next_finality) => {
                    // In standby only `latest` is probed: finality and
                    // syncing are read again the moment it serves.
                    if !self.standby() {
                        self.poll_finality().await;
                    }
                    next_finality = Instant::now() + if self.standby() { rare } else { self.cfg.finality_poll_interval };
                }
                _ = tokio::time::sleep_until(next_syncing) => {
                    if !self.standby() {
                        self.poll_syncing().await;
                    }
                    next_syncing = Instant::now() + if self.standby() { rare } else { self.cfg.syncing_poll_interval };
                }
                Some(head) = heads_rx.recv() => {
                    self.publish(|s| s.set_latest(head));
                }
                _ = self.backend.asked() => self.answer_ask().await,
                _ = self.backend.head_doubt.raised() => {
                    next_latest = Instant::now();
                }
                _ = self.backend.standby_changed() => {
                    let now = Instant::now();
                    if self.standby() {
                        next_latest = now + rare;
                        next_finality = now + rare;
                        next_syncing = now + rare;
                    } else {
                        next_latest = now;
                        next_finality = now;
                        next_syncing = now;
                    }
                }
            }
        }
    }

    /// A fallback idle while primaries serve.
    fn standby(&self) -> bool {
        self.backend.tier == UpstreamTier::Fallback && self.backend.in_standby()
    }

    fn publish(&self, change: impl FnOnce(&mut HeadState)) {
        self.tx.send_if_modified(|s| {
            let before = s.clone();
            change(s);
            *s != before
        });
    }

    fn unreachable(&self, error: String) {
        if self.tx.borrow().reachable {
            self.backend.head_doubt.raise();
        }
        self.publish(|s| {
            s.reachable = false;
            // A node that comes back may be another node: check its chain again.
            s.chain = ChainCheck::Unknown;
            s.last_error = Some(error);
        });
    }

    /// A probe that took `probe_rtt` succeeded.
    fn reachable(&self, probe_rtt: Duration) {
        let was_unreachable = !self.tx.borrow().reachable;
        let readmitted = self.backend.readmit(probe_rtt, was_unreachable);
        let back = |s: &mut HeadState| {
            s.reachable = true;
            s.last_error = None;
        };
        if readmitted {
            tracing::info!(backend = %self.backend.name, "backend re-admitted after a successful probe");
            // Its ejection is not part of the head state, so the state may
            // be unchanged: tell the view builder anyway, or the backend
            // would stay out of the view until the next head.
            self.tx.send_modify(back);
        } else {
            self.publish(back);
        }
    }

    /// Checks eth_chainId; returns how long to wait before the next attempt.
    async fn check_chain(&self) -> Duration {
        let started = Instant::now();
        match self
            .backend
            .exchange("eth_chainId", None, self.cfg.probe_timeout)
            .await
        {
            Err(e) => {
                self.unreachable(e.to_string());
                self.cfg.poll_interval
            }
            Ok(reply) => {
                let got = reply
                    .parse_result::<String>()
                    .as_deref()
                    .and_then(parse_quantity);
                match got {
                    Some(got) if got == self.chain_id => {
                        tracing::info!(backend = %self.backend.name, chain_id = got, "backend chain id verified");
                        self.reachable(started.elapsed());
                        self.publish(|s| s.chain = ChainCheck::Ok);
                        Duration::ZERO
                    }
                    Some(got) => {
                        tracing::error!(
                            backend = %self.backend.name, expected = self.chain_id, got,
                            "backend refused: it serves another chain"
                        );
                        self.publish(|s| {
                            s.reachable = true;
                            s.chain = ChainCheck::Mismatch { got };
                            s.last_error =
                                Some(format!("chain id {got}, expected {}", self.chain_id));
                        });
                        RECHECK_MISMATCH
                    }
                    None => {
                        self.unreachable("eth_chainId returned no number".into());
                        self.cfg.poll_interval
                    }
                }
            }
        }
    }

    async fn poll_latest(&self) {
        let started = Instant::now();
        let probe = self.backend.head_doubt.probe_start();
        match self.block("latest").await {
            Ok(Some(head)) => {
                self.reachable(started.elapsed());
                // A poll that started before the last pushed head may be
                // older than it; not when that head is in doubt.
                let doubted = self.backend.head_doubt.doubted();
                let stale = self.ws_live.load(Ordering::Relaxed)
                    && !doubted
                    && self
                        .tx
                        .borrow()
                        .latest
                        .as_ref()
                        .is_some_and(|l| l.number > head.number);
                // Settled first, so that the view built on this head sees the
                // backend eligible with it: a lower head and the reorg it
                // counts are judged together, and re-derive the served head.
                let settled = self.backend.head_doubt.settle(probe);
                if settled {
                    tracing::debug!(backend = %self.backend.name, head = head.number, "backend head probed again after a doubt");
                }
                if !stale {
                    self.tx.send_if_modified(|s| {
                        let before = s.clone();
                        s.set_latest(head);
                        // The doubt is not part of the head state: tell the
                        // view builder even when the head is the same.
                        settled || *s != before
                    });
                } else if settled {
                    self.tx.send_modify(|_| {});
                }
            }
            Ok(None) => self.unreachable("latest block has no number".into()),
            Err(e) => self.unreachable(e),
        }
    }

    /// Reads its block at the height the view builder asked about.
    async fn answer_ask(&self) {
        let Some(number) = self.backend.take_ask() else {
            return;
        };
        if self.tx.borrow().hash_at(number).is_some() {
            return;
        }
        if let Ok(Some(block)) = self.block(&format!("0x{number:x}")).await {
            if block.number == number {
                self.publish(|s| s.note(block));
            }
        }
    }

    async fn poll_finality(&self) {
        let safe = self.block("safe").await;
        let finalized = self.block("finalized").await;
        // Nodes before the merge, or without finality, answer an error or null: not a fault.
        self.publish(|s| {
            s.safe = safe.ok().flatten().map(|b| b.number);
            s.finalized = finalized.ok().flatten().map(|b| b.number);
        });
    }

    async fn poll_syncing(&self) {
        match self
            .backend
            .exchange("eth_syncing", Some("[]"), self.cfg.probe_timeout)
            .await
        {
            // `false` when in sync, an object with progress otherwise.
            Ok(reply) if !reply.is_error() => {
                let syncing = reply.raw() != b"false";
                if syncing != self.tx.borrow().syncing {
                    tracing::warn!(backend = %self.backend.name, syncing, "backend sync state changed");
                }
                self.publish(|s| s.syncing = syncing);
            }
            Ok(_) => {}
            Err(e) => self.unreachable(e.to_string()),
        }
    }

    async fn block(&self, tag: &str) -> Result<Option<BlockId>, String> {
        let params = format!("[\"{tag}\",false]");
        let reply = self
            .backend
            .exchange(
                "eth_getBlockByNumber",
                Some(&params),
                self.cfg.probe_timeout,
            )
            .await
            .map_err(|e| e.to_string())?;
        Ok(reply
            .parse_result::<Option<BlockHeader>>()
            .flatten()
            .and_then(|h| {
                Some(BlockId {
                    number: parse_quantity(&h.number)?,
                    hash: h.hash,
                })
            }))
    }
}

/// Parses a hex quantity such as `"0x1b4"`.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replaced_or_lower_head_counts_as_a_reorg() {
        let mut s = HeadState::initial();
        let id = |n, h: &str| BlockId {
            number: n,
            hash: h.into(),
        };
        s.set_latest(id(5, "a"));
        s.set_latest(id(6, "b"));
        assert_eq!(s.reorgs, 0);
        s.set_latest(id(6, "c"));
        assert_eq!(s.reorgs, 1);
        s.set_latest(id(4, "d"));
        assert_eq!(s.reorgs, 2);
        // What it had at and above the new head is forgotten.
        assert_eq!(s.hash_at(5), None);
        assert_eq!(s.hash_at(6), None);
        assert_eq!(s.hash_at(4), Some("d"));
    }

    #[test]
    fn the_seen_blocks_stay_sorted_and_bounded() {
        let mut s = HeadState::initial();
        for n in (0..100u64).rev() {
            s.note(BlockId {
                number: n * 2,
                hash: format!("h{n}"),
            });
        }
        assert_eq!(s.seen.len(), SEEN);
        assert!(s.seen.windows(2).all(|w| w[0].number < w[1].number));
        assert_eq!(s.hash_at(198), Some("h99"));
        assert_eq!(s.hash_at(0), None, "the lowest are dropped first");
    }
}
