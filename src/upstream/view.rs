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
//! one node alone cannot move it. The served head goes down in two cases
//! only, where going on would fail every read of the present: a real reorg
//! (a head that a tracker saw fall or be replaced, when no eligible backend
//! still has the old served height), and the **watchdog**: when no eligible
//! backend has held the served head for `head.served_head_watchdog`, it was
//! never real or is lost (a lying fallback that stopped serving, a fleet
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
        }
    }

    /// When the watchdog will re-derive the served head, if nobody holds it.
    fn watchdog_due(&self, rules: &Rules) -> Option<Instant> {
        self.unheld_since.map(|since| since + rules.watchdog)
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
        .map(|((b, s), e)| {
            base(s, *e)
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
        // Nobody eligible still has the served height, and a head went back: a real reorg.
        (Some(s), Some(c)) if reorged && best_head.is_some_and(|top| top < s) => Some(c),
        (s, _) => s,
    };
    // The watchdog: a served head nobody eligible holds is derived again in time.
    let held = carry
        .served
        .is_none_or(|s| best_head.is_some_and(|top| top >= s));
    if held {
        carry.unheld_since = None;
    } else {
        let since = *carry.unheld_since.get_or_insert(now);
        if now.saturating_duration_since(since) >= rules.watchdog && candidate.is_some() {
            tracing::warn!(
                network = %rules.network,
                was = ?carry.served,
                now = ?candidate,
                "no eligible backend held the served head for {:?}: derived again from the backends that remain",
                rules.watchdog
            );
            carry.served = candidate;
            carry.unheld_since = None;
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
mod tests {
    use super::*;
    use crate::config::{UpstreamConfig, UpstreamTier};
    use crate::upstream::head::BlockId;

    fn rules(max_lag: u64) -> Rules {
        Rules {
            network: "test".into(),
            max_lag,
            watchdog: Duration::from_secs(10),
        }
    }

    /// The view at this moment (the watchdog's clock is tested on its own).
    fn build(
        states: Vec<(Arc<Backend>, HeadState)>,
        max_lag: u64,
        carry: &mut ServedHead,
    ) -> NetworkView {
        super::build(states, &rules(max_lag), carry, Instant::now())
    }

    fn backend(name: &str) -> Arc<Backend> {
        backend_in(name, UpstreamTier::Primary)
    }

    fn backend_in(name: &str, tier: UpstreamTier) -> Arc<Backend> {
        let cfg = UpstreamConfig {
            name: name.into(),
            http: "http://127.0.0.1:1".parse().unwrap(),
            ws: None,
            headers: Default::default(),
            tier,
            state_history: None,
            tls: None,
        };
        Backend::new(
            "test",
            &cfg,
            crate::upstream::http_client(),
            1 << 20,
            3,
            &crate::metrics::Metrics::new(),
        )
    }

    fn at(number: u64, hash: &str, reorgs: u64) -> HeadState {
        HeadState {
            chain: ChainCheck::Ok,
            reachable: true,
            syncing: false,
            latest: Some(BlockId {
                number,
                hash: hash.into(),
            }),
            safe: None,
            finalized: None,
            reorgs,
            last_error: None,
            seen: vec![BlockId {
                number,
                hash: hash.into(),
            }],
        }
    }

    #[tokio::test]
    async fn laggards_are_not_eligible_and_the_served_head_needs_two_holders() {
        let (a, b, c) = (backend("a"), backend("b"), backend("c"));
        let mut carry = ServedHead::default();
        let v = build(
            vec![
                (a.clone(), at(10, "x", 0)),
                (b.clone(), at(9, "y", 0)),
                (c.clone(), at(6, "z", 0)),
            ],
            2,
            &mut carry,
        );
        assert_eq!(v.best_head, Some(10));
        assert_eq!(v.served_head, Some(9));
        // No two agree on a block: judged against the second-highest head.
        assert_eq!((v.agreed_head, v.agreed_confirmed), (Some(9), false));
        assert_eq!(
            v.backends[2].ineligible,
            Some(Ineligible::Lagging { behind: 3 })
        );
        assert_eq!(v.eligible().count(), 2);

        // The node that was ahead dies: the served head does not go back.
        let mut dead = at(10, "x", 0);
        dead.reachable = false;
        let v = build(
            vec![
                (a.clone(), dead),
                (b.clone(), at(9, "y", 0)),
                (c.clone(), at(8, "z", 0)),
            ],
            2,
            &mut carry,
        );
        assert_eq!(v.served_head, Some(9));

        // A lower head with no reorg seen keeps the served head.
        let v = build(
            vec![
                (a.clone(), at(8, "x", 0)),
                (b.clone(), at(8, "y", 0)),
                (c.clone(), at(8, "z", 0)),
            ],
            2,
            &mut carry,
        );
        assert_eq!(v.served_head, Some(9));
        // The same, after a reorg was seen: the served head follows the chain.
        let v = build(
            vec![(a, at(8, "x", 1)), (b, at(8, "y", 1)), (c, at(8, "z", 0))],
            2,
            &mut carry,
        );
        assert_eq!(v.served_head, Some(8));
    }

    #[tokio::test]
    async fn wrong_chain_and_syncing_are_refused() {
        let mut carry = ServedHead::default();
        let mut wrong = at(10, "x", 0);
        wrong.chain = ChainCheck::Mismatch { got: 5 };
        let mut syncing = at(3, "y", 0);
        syncing.syncing = true;
        let v = build(
            vec![
                (backend("a"), wrong),
                (backend("b"), syncing),
                (backend("c"), at(4, "z", 0)),
            ],
            2,
            &mut carry,
        );
        assert_eq!(
            v.backends[0].ineligible,
            Some(Ineligible::WrongChain { got: 5 })
        );
        assert_eq!(v.backends[1].ineligible, Some(Ineligible::Syncing));
        assert_eq!(v.best_head, Some(4));
        assert_eq!(v.served_head, Some(4));
    }

    #[tokio::test]
    async fn a_fallback_serves_only_when_no_primary_can_and_its_head_counts_only_then() {
        let (p0, p1, fb) = (
            backend("p0"),
            backend("p1"),
            backend_in("fb", UpstreamTier::Fallback),
        );
        let down = |n| {
            let mut s = at(n, "x", 0);
            s.reachable = false;
            s.last_error = Some("refused".into());
            s
        };
        let mut carry = ServedHead::default();
        let mut v = |p0s: HeadState, p1s: HeadState, fbs: HeadState| {
            let v = build(
                vec![(p0.clone(), p0s), (p1.clone(), p1s), (fb.clone(), fbs)],
                2,
                &mut carry,
            );
            v.tell_fallbacks();
            v
        };
        // Starting: no primary probed yet, so the fallback is not woken.
        let starting = HeadState {
            latest: None,
            reachable: false,
            chain: ChainCheck::Unknown,
            ..at(0, "", 0)
        };
        let view = v(starting.clone(), starting, at(3, "f", 0));
        assert!(!view.fallback_serving);
        assert_eq!(view.backends[2].ineligible, Some(Ineligible::Standby));
        assert_eq!(view.served_head, None);
        // Primaries serve: the fallback's higher head neither lags it nor counts.
        let view = v(at(10, "a", 0), at(10, "a", 0), at(20, "f", 0));
        assert_eq!(view.backends[2].ineligible, Some(Ineligible::Standby));
        assert_eq!((view.best_head, view.served_head), (Some(10), Some(10)));
        assert!(fb.in_standby());
        // Both primaries down: the fallback serves, and its head counts.
        let view = v(down(10), down(10), at(12, "f", 0));
        assert!(view.fallback_serving);
        assert!(view.backends[2].eligible());
        assert_eq!(view.served_head, Some(12));
        assert!(
            !fb.in_standby(),
            "its tracker is told to track it at full pace"
        );
        // One primary back: standby again.
        let view = v(at(12, "b", 0), down(10), at(13, "f", 0));
        assert!(!view.fallback_serving);
        assert_eq!(view.backends[2].ineligible, Some(Ineligible::Standby));
        assert_eq!(view.eligible().count(), 1);
        assert!(fb.in_standby());
    }

    #[tokio::test]
    async fn the_state_window_is_copied_into_the_view() {
        let b = backend("pruned");
        // It served state 5 deep: whatever it lacks, it keeps at least 5.
        b.held_state(95, 100);
        assert!(b.lacks_state(60, 100), "40 deep: taken as keeping 20");
        assert!(!b.lacks_state(50, 100), "50 deep teaches nothing new");
        let v = build(
            vec![(b.clone(), at(100, "x", 0))],
            2,
            &mut ServedHead::default(),
        );
        assert_eq!(v.backends[0].state_history, Some(20));
        assert!(v.backends[0].holds_state(80));
        assert!(!v.backends[0].holds_state(79));
        // Halving stops at the depth it served: lacking 8 deep gives 5, not 4.
        assert!(b.lacks_state(92, 100));
        assert_eq!(b.state_history(), Some(5));
        // A depth it served but now lacks: just below that.
        assert!(b.lacks_state(96, 100));
        assert_eq!(b.state_history(), Some(3));
        assert_eq!(b.missing_state_answers(), 4);
    }

    #[tokio::test]
    async fn one_liar_moves_neither_the_served_head_nor_finality() {
        let (a, b, c, liar) = (backend("a"), backend("b"), backend("c"), backend("liar"));
        let honest = |n: u64| {
            let mut s = at(n, &format!("h{n}"), 0);
            s.finalized = Some(n - 2);
            s
        };
        let mut lying = at(1010, "h10", 0);
        lying.finalized = Some(1008);
        let mut carry = ServedHead::default();
        let states = |l: HeadState| {
            vec![
                (a.clone(), honest(10)),
                (b.clone(), honest(10)),
                (c.clone(), honest(10)),
                (liar.clone(), l),
            ]
        };
        let v = build(states(lying.clone()), 2, &mut carry);
        assert_eq!(v.served_head, Some(10));
        assert_eq!(v.backends[3].ineligible, Some(Ineligible::Unverified));
        assert_eq!(
            v.backends[3].ask,
            Some(10),
            "its block at the agreed head is asked"
        );
        lying.note(BlockId {
            number: 10,
            hash: "h10".into(),
        });
        let v = build(states(lying.clone()), 2, &mut carry);
        assert_eq!(
            v.backends[3].ineligible,
            Some(Ineligible::AheadUnconfirmed { ahead: 1000 })
        );
        assert_eq!(
            (v.served_head, v.best_head, v.finalized),
            (Some(10), Some(10), Some(8))
        );
        // Another history at the agreed height: another chain.
        let mut other = at(12, "o12", 0);
        other.note(BlockId {
            number: 10,
            hash: "o10".into(),
        });
        let v = build(states(other), 2, &mut carry);
        assert!(matches!(
            v.backends[3].ineligible,
            Some(Ineligible::OtherChain { height: 10, .. })
        ));
        assert_eq!(v.served_head, Some(10));
        // Finalized is never above the served head, even when all claim it.
        let mut high = honest(10);
        high.finalized = Some(50);
        let v = build(
            vec![(a.clone(), high.clone()), (b.clone(), high)],
            2,
            &mut ServedHead::default(),
        );
        assert_eq!(v.finalized, Some(10));
    }

    #[tokio::test]
    async fn the_watchdog_derives_again_a_served_head_nobody_holds() {
        let (a, b) = (backend("a"), backend_in("fb", UpstreamTier::Fallback));
        let down = {
            let mut s = at(10, "h10", 0);
            s.reachable = false;
            s
        };
        let rules = rules(2);
        let mut carry = ServedHead::default();
        let t0 = Instant::now();
        // The primary is down, a lying fallback serves: one backend judged, believed.
        let v = super::build(
            vec![(a.clone(), down), (b.clone(), at(1010, "f", 0))],
            &rules,
            &mut carry,
            t0,
        );
        assert_eq!(v.served_head, Some(1010));
        // The primary is back: the fallback idles, nobody holds 1010, no reorg was seen.
        let back = || vec![(a.clone(), at(11, "h11", 0)), (b.clone(), at(1010, "f", 0))];
        let v = super::build(back(), &rules, &mut carry, t0);
        assert_eq!(v.served_head, Some(1010), "kept within the watchdog's time");
        assert_eq!(carry.watchdog_due(&rules), Some(t0 + rules.watchdog));
        let v = super::build(back(), &rules, &mut carry, t0 + rules.watchdog);
        assert_eq!(v.served_head, Some(11), "derived again from the primary");
        assert_eq!(carry.watchdog_due(&rules), None);
    }
}
