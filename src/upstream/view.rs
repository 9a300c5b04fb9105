//! The network view: which backends may serve, and the head the gateway serves.
//!
//! A control loop rebuilds the view whenever a head tracker publishes, and
//! stores it in an `ArcSwap`; the request path loads it once per request (so
//! every entry of a batch sees the same head) and never waits on this loop.
//!
//! **Eligible**: reachable, on the configured chain, not syncing, not ejected,
//! and on the chain and within `max_lag_blocks` of the head the fleet agrees
//! on (see `agree`: the highest block two backends hold with the same hash;
//! a backend ahead of it by more than the lag, or on another history, is
//! held out until another backend confirms its block).
//!
//! **Tiers**: a `tier: fallback` backend is in standby (not eligible, and
//! its head counts for nothing) while a primary can serve: one is eligible,
//! or has not been probed yet (so a starting gateway does not wake its
//! fallbacks). When none can, the fallbacks are judged like primaries and
//! serve; the view says so (`fallback_serving`) and tells each fallback's
//! head tracker, which probes it at full pace only then (`set_standby`).
//!
//! **State history**: each backend's window of state (configured or learned
//! from its "missing trie node" answers, see `Backend::lacks_state`) is
//! copied into the view, so the router's state filter reads the snapshot.
//!
//! **Served head** (what `latest` means to clients): the second-highest head
//! among eligible backends (the highest when only one is eligible), and
//! never lower than before. Eligible backends share the agreed chain, so a
//! served block is held by two backends on one chain whenever two are
//! eligible. Requiring two
//! holders costs the few milliseconds a block takes to reach the second
//! node, and buys this: when the one node that was ahead dies, another still
//! has the served block, so `latest` neither goes backwards nor stalls; and
//! one node alone cannot move it.
//!
//! Nodes standing lower than the served head do not lower it: mid-reorg a
//! node drops to the fork point before it imports the new branch, and a
//! node restarted from an older disk comes back behind; the chain is not
//! shorter for that. The served head is held, and reads of blocks nobody
//! has right now wait for a backend to reach them (`Upstreams::reaching`).
//! It goes down in two cases only, where going on would fail every read of
//! the present: a **shorter chain** (a head that a tracker saw fall or be
//! replaced, and no eligible backend back at the served height within
//! `head.catch_up_wait`), and the **watchdog**: when no eligible backend
//! has held the served head for `head.served_head_watchdog`, it was never
//! real or is lost (a lying fallback that stopped serving, a fleet
//! restarted on a new chain), and it is derived again from the backends
//! that remain. Monotonic reads are kept everywhere else; those two are the
//! documented exceptions, and each is logged.
//!
//! **Safe and finalized**: the second-highest among eligible backends (the
//! value when one is eligible), never above the served head: one backend's
//! claim alone does not make answers final for the cache.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::sync::{watch, Notify};
use tokio::time::Instant;

use super::agree::Reference;
use super::client::Backend;
use super::head::{ChainCheck, HeadState};
use super::reasons::Reasons;
use crate::config::UpstreamTier;

/// Why a backend is not eligible.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ineligible {
    Unreachable,
    WrongChain {
        got: u64,
    },
    ChainUnchecked,
    Syncing,
    NoHead,
    /// Its head is in doubt (a reconnect, a block it claimed and denied):
    /// out of reads until a probe answers.
    HeadUnknown,
    Ejected,
    Lagging {
        behind: u64,
    },
    /// Ahead of the agreed head by more than the lag: nobody confirms its block.
    AheadUnconfirmed {
        ahead: u64,
    },
    /// Its block at a height of the agreed chain has another hash.
    OtherChain {
        height: u64,
        agreed: String,
        theirs: String,
    },
    /// It shares no block with the agreed chain yet (asked for one).
    Unverified,
    /// A fallback, idle while a primary can serve.
    Standby,
}

impl std::fmt::Display for Ineligible {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Ineligible::Unreachable => f.write_str("unreachable"),
            Ineligible::WrongChain { got } => write!(f, "serves chain id {got}"),
            Ineligible::ChainUnchecked => f.write_str("chain id not checked yet"),
            Ineligible::Syncing => f.write_str("syncing"),
            Ineligible::NoHead => f.write_str("no head yet"),
            Ineligible::HeadUnknown => f.write_str("head unknown until probed again"),
            Ineligible::Ejected => f.write_str("ejected after failed requests"),
            Ineligible::Lagging { behind } => write!(f, "lagging {behind} blocks"),
            Ineligible::AheadUnconfirmed { ahead } => {
                write!(
                    f,
                    "ahead, unconfirmed: {ahead} blocks above the agreed head"
                )
            }
            Ineligible::OtherChain {
                height,
                agreed,
                theirs,
            } => write!(
                f,
                "on another chain: block {height} is {theirs} here, {agreed} on the others"
            ),
            Ineligible::Unverified => f.write_str("chain not confirmed yet"),
            Ineligible::Standby => f.write_str("fallback, idle while a primary serves"),
        }
    }
}

#[derive(Clone)]
pub struct BackendView {
    pub backend: Arc<Backend>,
    pub state: HeadState,
    /// The head number (0 when unknown).
    pub head: u64,
    pub ineligible: Option<Ineligible>,
    /// Blocks of state kept below its head (`Backend::state_history` when
    /// the view was built); `None`: not known to lack any.
    pub state_history: Option<u64>,
    /// A height whose block its tracker is to be asked for (see `agree`).
    pub ask: Option<u64>,
}

impl BackendView {
    pub fn eligible(&self) -> bool {
        self.ineligible.is_none()
    }

    /// Whether it holds the state of block `block`, as far as is known.
    pub fn holds_state(&self, block: u64) -> bool {
        self.state_history
            .is_none_or(|kept| block.saturating_add(kept) >= self.head)
    }
}

/// An immutable snapshot of one network's backends.
#[derive(Clone, Default)]
pub struct NetworkView {
    pub backends: Vec<BackendView>,
    pub best_head: Option<u64>,
    /// The head the judged backends agree on (see `agree`).
    pub agreed_head: Option<u64>,
    /// At least two backends hold `agreed_head` with the same hash.
    pub agreed_confirmed: bool,
    pub served_head: Option<u64>,
    pub safe: Option<u64>,
    pub finalized: Option<u64>,
    /// No primary can serve: the fallbacks do.
    pub fallback_serving: bool,
}

impl NetworkView {
    pub fn eligible(&self) -> impl Iterator<Item = &BackendView> {
        self.backends.iter().filter(|b| b.eligible())
    }

    /// Whether a read of block `block` that no eligible backend has may
    /// wait for one to reach it (`Upstreams::reaching`): the gateway served
    /// it (at or below the served head) and some backend still answers its
    /// probes and is not ejected (a primary: fallbacks are what a call
    /// falls back on, not what it waits for). With every primary
    /// unreachable or ejected there is nothing to wait for: the call goes
    /// on at once (to a fallback, or fails).
    pub fn worth_waiting_for(&self, block: u64) -> bool {
        self.served_head.is_some_and(|s| block <= s)
            && self.backends.iter().any(|b| {
                b.state.reachable
                    && !b.backend.is_ejected()
                    && b.backend.tier == UpstreamTier::Primary
            })
    }

    /// Tells each fallback whether it serves, so that its head tracker
    /// probes it at full pace only then; and each tracker asked for a block
    /// which one.
    pub fn tell_fallbacks(&self) {
        for b in &self.backends {
            b.backend.set_standby(!self.fallback_serving);
            if let Some(n) = b.ask {
                b.backend.ask(n);
            }
        }
    }
}

/// A backend and its tracker's channel.
#[derive(Clone)]
pub struct Tracked {
    pub backend: Arc<Backend>,
    pub state: watch::Receiver<HeadState>,
}

/// The state the view builder carries from one build to the next.
#[derive(Default, Clone)]
pub struct ServedHead {
    served: Option<u64>,
    reorgs_seen: u64,
    safe: Option<u64>,
    finalized: Option<u64>,
    /// Since when no eligible backend holds the served head.
    unheld_since: Option<Instant>,
    /// A head went back while the served head was not held: if nobody
    /// reaches it within `catch_up`, the chain got shorter.
    reorg_unheld: bool,
}

impl ServedHead {
    /// Continues from an earlier view of the same network (after a reload),
    /// so the served head does not go back when the config changes.
    pub fn continuing(view: &NetworkView) -> ServedHead {
        ServedHead {
            served: view.served_head,
            reorgs_seen: view.backends.iter().map(|b| b.state.reorgs).sum(),
            safe: view.safe,
            finalized: view.finalized,
            unheld_since: None,
            reorg_unheld: false,
        }
    }

    /// When the served head will be derived again, if nobody holds it.
    fn watchdog_due(&self, rules: &Rules) -> Option<Instant> {
        self.unheld_since
            .map(|since| since + self.unheld_limit(rules))
    }

    /// How long a served head nobody holds is kept: `catch_up` after a
    /// reorg (then the chain got shorter), else the watchdog's time.
    fn unheld_limit(&self, rules: &Rules) -> Duration {
        if self.reorg_unheld {
            rules.catch_up
        } else {
            rules.watchdog
        }
    }
}

/// How a network judges its backends.
#[derive(Debug, Clone)]
pub struct Rules {
    /// The network's name (for the log).
    pub network: String,
    pub max_lag: u64,
    /// How long a served head nobody eligible holds is kept.
    pub watchdog: Duration,
    /// How long it is kept after a reorg (`head.catch_up_wait`).
    pub catch_up: Duration,
}

/// Rebuilds the view whenever a tracker publishes or `refresh` is signalled
/// (the request path ejected a backend), or the watchdog is due, and
/// announces each new view on `published` (the cache's reorg loop follows
/// it). Ends when the trackers are gone; the owner aborts it when the
/// network is dropped.
pub async fn run(
    mut tracked: Vec<Tracked>,
    rules: Rules,
    refresh: Arc<Notify>,
    out: Arc<ArcSwap<NetworkView>>,
    published: watch::Sender<()>,
    mut carry: ServedHead,
) {
    let mut reasons = Reasons::default();
    loop {
        let states: Vec<(Arc<Backend>, HeadState)> = tracked
            .iter_mut()
            .map(|t| (t.backend.clone(), t.state.borrow_and_update().clone()))
            .collect();
        let now = Instant::now();
        let view = build(states, &rules, &mut carry, now);
        reasons.note(&rules.network, &view, now);
        view.tell_fallbacks();
        out.store(Arc::new(view));
        published.send_replace(());
        let due = carry.watchdog_due(&rules);
        let watchdog = async move {
            match due {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        if tracked.is_empty() {
            refresh.notified().await;
            continue;
        }
        let any = futures_util::future::select_all(
            tracked.iter_mut().map(|t| Box::pin(t.state.changed())),
        );
        tokio::select! {
            (changed, _, _) = any => if changed.is_err() { return },
            _ = refresh.notified() => {}
            _ = watchdog => {}
        }
    }
}

/// Computes a view from the trackers' states at `now` (pure, for tests).
pub fn build(
    states: Vec<(Arc<Backend>, HeadState)>,
    rules: &Rules,
    carry: &mut ServedHead,
    now: Instant,
) -> NetworkView {
    let ejected: Vec<bool> = states.iter().map(|(b, _)| b.is_ejected()).collect();
    let doubted: Vec<bool> = states.iter().map(|(b, _)| b.head_doubt.doubted()).collect();
    let base = |s: &HeadState, ejected: bool| -> Option<Ineligible> {
        if !s.reachable {
            return Some(Ineligible::Unreachable);
        }
        match s.chain {
            ChainCheck::Ok => {}
            ChainCheck::Mismatch { got } => return Some(Ineligible::WrongChain { got }),
            ChainCheck::Unknown => return Some(Ineligible::ChainUnchecked),
        }
        if s.syncing {
            return Some(Ineligible::Syncing);
        }
        if s.latest.is_none() {
            return Some(Ineligible::NoHead);
        }
        ejected.then_some(Ineligible::Ejected)
    };
    let primary = |b: &Backend| b.tier == UpstreamTier::Primary;
    let primary_can_serve = states
        .iter()
        .zip(&ejected)
        .any(|((b, s), e)| primary(b) && (base(s, *e).is_none() || s.starting()));
    let fallback_serving = !primary_can_serve && states.iter().any(|(b, _)| !primary(b));
    // Before the agreement: what keeps a backend out whatever the heads.
    let before_lag: Vec<Option<Ineligible>> = states
        .iter()
        .zip(&ejected)
        .zip(&doubted)
        .map(|(((b, s), e), d)| {
            base(s, *e)
                .or_else(|| d.then_some(Ineligible::HeadUnknown))
                .or_else(|| (!primary(b) && !fallback_serving).then_some(Ineligible::Standby))
        })
        .collect();
    let judged: Vec<&HeadState> = states
        .iter()
        .zip(&before_lag)
        .filter(|(_, out)| out.is_none())
        .map(|((_, s), _)| s)
        .collect();
    let reference = Reference::of(&judged);
    let judged_count = judged.len();
    let backends: Vec<BackendView> = states
        .into_iter()
        .zip(before_lag)
        .map(|((backend, state), out)| {
            let head = state.head();
            let judged = out.is_none();
            let ineligible = out.or_else(|| {
                reference
                    .as_ref()
                    .and_then(|r| r.judge(&state, rules.max_lag))
            });
            let ask = reference
                .as_ref()
                .filter(|_| judged)
                .and_then(|r| r.ask_of(&state));
            let state_history = backend.state_history();
            BackendView {
                backend,
                state,
                head,
                ineligible,
                state_history,
                ask,
            }
        })
        .collect();

    let mut heads: Vec<u64> = backends
        .iter()
        .filter(|b| b.eligible())
        .map(|b| b.head)
        .collect();
    heads.sort_unstable_by(|a, b| b.cmp(a));
    let best_head = heads.first().copied();
    // At start, one backend answering first does not set the head alone
    // while others of its tier are still being probed (it may be the liar).
    let serving_tier = |b: &Backend| primary(b) != fallback_serving;
    let others_starting = judged_count < 2
        && backends
            .iter()
            .any(|b| serving_tier(&b.backend) && b.state.starting());
    let candidate = if carry.served.is_none() && others_starting {
        None
    } else {
        heads.get(1).or(heads.first()).copied()
    };
    let reorgs: u64 = backends.iter().map(|b| b.state.reorgs).sum();
    let reorged = reorgs != carry.reorgs_seen;
    carry.reorgs_seen = reorgs;
    let mut rederived = false;
    carry.served = match (carry.served, candidate) {
        (None, c) => c,
        (Some(s), Some(c)) if c >= s => Some(c),
        // Lower heads (mid-reorg, restarted behind) hold it: see below.
        (s, _) => s,
    };
    // A served head nobody eligible holds is derived again in time: soon
    // after a reorg (the chain got shorter), late otherwise (the watchdog).
    let held = carry
        .served
        .is_none_or(|s| best_head.is_some_and(|top| top >= s));
    if held {
        carry.unheld_since = None;
        carry.reorg_unheld = false;
    } else {
        let since = *carry.unheld_since.get_or_insert(now);
        carry.reorg_unheld |= reorged;
        let limit = carry.unheld_limit(rules);
        if now.saturating_duration_since(since) >= limit && candidate.is_some() {
            if carry.reorg_unheld {
                tracing::info!(
                    network = %rules.network,
                    was = ?carry.served,
                    now = ?candidate,
                    "after a reorg no eligible backend reached the served head within {limit:?}: the chain is shorter, the head derived again"
                );
            } else {
                tracing::warn!(
                    network = %rules.network,
                    was = ?carry.served,
                    now = ?candidate,
                    "no eligible backend held the served head for {limit:?}: derived again from the backends that remain"
                );
            }
            carry.served = candidate;
            carry.unheld_since = None;
            carry.reorg_unheld = false;
            rederived = true;
        }
    }
    // Second-highest among eligible (the value when one is): one backend's claim is not enough.
    let agreed_value = |f: fn(&HeadState) -> Option<u64>| {
        let mut v: Vec<u64> = backends
            .iter()
            .filter(|b| b.eligible())
            .filter_map(|b| f(&b.state))
            .collect();
        v.sort_unstable_by(|a, b| b.cmp(a));
        let v = v.get(1).or(v.first()).copied();
        match (v, carry.served) {
            (Some(v), Some(served)) => Some(v.min(served)),
            (v, _) => v,
        }
    };
    carry.safe = carry.safe.max(agreed_value(|s| s.safe));
    carry.finalized = carry.finalized.max(agreed_value(|s| s.finalized));
    if reorged || rederived {
        // Finality does not go back, but a restarted fleet (a new chain) must reset it.
        carry.safe = agreed_value(|s| s.safe);
        carry.finalized = agreed_value(|s| s.finalized);
    }
    NetworkView {
        backends,
        best_head,
        agreed_head: reference.as_ref().map(|r| r.number),
        agreed_confirmed: reference.as_ref().is_some_and(Reference::confirmed),
        served_head: carry.served,
        safe: carry.safe,
        finalized: carry.finalized,
        fallback_serving,
    }
}

#[cfg(test)]
#[path = "view_tests.rs"]
mod tests;
