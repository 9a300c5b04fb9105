//! The view builder's decisions on hand-made head states: eligibility,
//! the agreed head, the served head and its watchdog, finality, tiers.

use super::*;
use crate::config::{UpstreamConfig, UpstreamTier};
use crate::upstream::head::BlockId;

fn rules(max_lag: u64) -> Rules {
    Rules {
        network: "test".into(),
        max_lag,
        watchdog: Duration::from_secs(10),
        catch_up: Duration::from_secs(2),
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
    // The same, after a reorg was seen: held while the nodes may still be
    // mid-reorg, then (nobody back at 9 within `catch_up`) the chain is
    // shorter and the served head follows it.
    let t0 = Instant::now();
    let reorged = || {
        vec![
            (a.clone(), at(8, "x", 1)),
            (b.clone(), at(8, "y", 1)),
            (c.clone(), at(8, "z", 0)),
        ]
    };
    let v = super::build(reorged(), &rules(2), &mut carry, t0);
    assert_eq!(v.served_head, Some(9), "held mid-reorg");
    let almost = t0 + Duration::from_millis(1900);
    let v = super::build(reorged(), &rules(2), &mut carry, almost);
    assert_eq!(v.served_head, Some(9), "held within catch_up");
    let v = super::build(
        reorged(),
        &rules(2),
        &mut carry,
        t0 + Duration::from_secs(2),
    );
    assert_eq!(v.served_head, Some(8), "the chain got shorter");
}

#[tokio::test]
async fn a_reorg_the_nodes_catch_up_from_never_lowers_the_served_head() {
    let (a, b, c) = (backend("a"), backend("b"), backend("c"));
    let mut carry = ServedHead::default();
    let t0 = Instant::now();
    let three = |n: u64, reorgs: u64| {
        vec![
            (a.clone(), at(n, "x", reorgs)),
            (b.clone(), at(n, "y", reorgs)),
            (c.clone(), at(n, "z", reorgs)),
        ]
    };
    let v = super::build(three(10, 0), &rules(2), &mut carry, t0);
    assert_eq!(v.served_head, Some(10));
    // Every node back at the fork point, then on the new branch.
    let mid = t0 + Duration::from_millis(500);
    let v = super::build(three(8, 1), &rules(2), &mut carry, mid);
    assert_eq!(v.served_head, Some(10));
    let v = super::build(
        three(10, 1),
        &rules(2),
        &mut carry,
        t0 + Duration::from_secs(1),
    );
    assert_eq!(v.served_head, Some(10));
    // Later heads below 10 are a new episode: the earlier one left no clock.
    let v = super::build(
        three(9, 2),
        &rules(2),
        &mut carry,
        t0 + Duration::from_secs(3),
    );
    assert_eq!(v.served_head, Some(10), "held anew, not lowered at once");
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
