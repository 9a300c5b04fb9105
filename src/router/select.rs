//! Backend choice: power of two choices over Peak-EWMA load.
//!
//! Following tower's `balance::p2c` (Mitzenmacher, "The Power of Two Choices
//! in Randomized Load Balancing"): pick two distinct candidates at random and
//! keep the one with the lower load (`latency estimate × (in-flight + 1)`, see
//! `upstream::latency`). Comparing two random backends rather than scanning
//! for the global minimum avoids every request herding onto the same
//! momentarily-best backend, and costs O(1).
//!
//! The random source is passed in, so a test (or a bench) seeds it and sees
//! the same choices every run; the router uses a fresh generator per call.

//!
//! Two filters narrow the candidates before the pick. **Tiers**: a
//! fallback in standby is no candidate; [`idle_fallbacks`] lists those the
//! router tries once every primary attempt at a call has failed. **State**:
//! a read of block N's state goes only to backends that hold it
//! ([`holding_state`]), so old state goes to archive nodes while recent
//! state still spreads over every node; when none is known to hold it,
//! all are tried in order of the state they keep (archive and unknown
//! first), since what is known may be out of date.

use fastrand::Rng;

use crate::upstream::{BackendView, Ineligible, NetworkView};

/// Eligible, not ejected since the snapshot, and with a head of at least `min_head`.
pub fn candidates(view: &NetworkView, min_head: u64) -> Vec<&BackendView> {
    view.eligible()
        .filter(|b| b.head >= min_head && !b.backend.is_ejected())
        .collect()
}

/// Fallbacks in standby (primaries serve) that are otherwise healthy, for a
/// call whose every primary attempt failed. Their head is known only from
/// a rare probe, so it is not held against `min_head`: the call's params
/// carry the pinned block number, which the node answers for or refuses.
pub fn idle_fallbacks(view: &NetworkView) -> Vec<&BackendView> {
    view.backends
        .iter()
        .filter(|b| b.ineligible == Some(Ineligible::Standby) && !b.backend.is_ejected())
        .collect()
}

/// The candidates for a read of block `block`'s state: those that hold it,
/// to choose among (`false`); or, when none is known to, all of them with
/// the ones that keep the most state first, to try in that order (`true`).
pub fn holding_state(mut candidates: Vec<&BackendView>, block: u64) -> (Vec<&BackendView>, bool) {
    if candidates.iter().any(|b| b.holds_state(block)) {
        candidates.retain(|b| b.holds_state(block));
        return (candidates, false);
    }
    candidates.sort_by_key(|b| std::cmp::Reverse(b.state_history.unwrap_or(u64::MAX)));
    (candidates, true)
}

/// Picks one of `candidates`, or `None` when there are none.
pub fn pick<'a>(candidates: &[&'a BackendView], rng: &mut Rng) -> Option<&'a BackendView> {
    match candidates.len() {
        0 => None,
        1 => Some(candidates[0]),
        n => {
            let a = rng.usize(..n);
            let mut b = rng.usize(..n - 1);
            if b >= a {
                b += 1;
            }
            let (a, b) = (candidates[a], candidates[b]);
            Some(if b.backend.load.cost() < a.backend.load.cost() {
                b
            } else {
                a
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::config::UpstreamConfig;
    use crate::router::tests::views_of as view_of;
    use crate::upstream::Backend;

    fn backends(n: usize, rtt: Duration) -> Vec<Arc<Backend>> {
        (0..n)
            .map(|i| {
                let cfg = UpstreamConfig {
                    name: format!("b{i}"),
                    http: "http://127.0.0.1:1".parse().unwrap(),
                    ws: None,
                    headers: Default::default(),
                    tier: Default::default(),
                    state_history: None,
                    tls: None,
                };
                let b = Backend::new(
                    "select-test",
                    &cfg,
                    crate::upstream::http_client(),
                    1 << 20,
                    3,
                    &crate::metrics::Metrics::new(),
                );
                b.load.observe(rtt);
                b
            })
            .collect()
    }

    /// How many of `picks` choices went to each backend.
    fn shares(views: &[BackendView], picks: usize, rng: &mut Rng) -> Vec<usize> {
        let refs: Vec<&BackendView> = views.iter().collect();
        let mut n = vec![0; views.len()];
        for _ in 0..picks {
            let chosen = pick(&refs, rng).unwrap();
            n[views.iter().position(|v| std::ptr::eq(v, chosen)).unwrap()] += 1;
        }
        n
    }

    #[tokio::test(start_paused = true)]
    async fn equal_backends_share_evenly_and_a_seed_repeats_the_choices() {
        let views = view_of(&backends(3, Duration::from_millis(2)));
        let n = shares(&views, 3000, &mut Rng::with_seed(1));
        for c in &n {
            assert!((900..=1100).contains(c), "{n:?}");
        }
        assert_eq!(n, shares(&views, 3000, &mut Rng::with_seed(1)));
        assert_ne!(n, shares(&views, 3000, &mut Rng::with_seed(2)));
    }

    #[tokio::test(start_paused = true)]
    async fn the_costliest_backend_never_wins_and_in_flight_counts() {
        let bs = backends(4, Duration::from_millis(2));
        bs[3].load.observe(Duration::from_millis(50));
        // In flight counts too: a fast backend holding requests looks busy.
        let _held: Vec<_> = (0..30).map(|_| bs[1].load.start()).collect();
        let views = view_of(&bs);
        let n = shares(&views, 4000, &mut Rng::with_seed(3));
        // The busy one (2 ms × 31) loses every pair; the slow idle one
        // (50 ms) wins only against it, in one pair of six.
        assert_eq!(n[1], 0, "{n:?}");
        assert!((500..=850).contains(&n[3]), "{n:?}");
        for c in [n[0], n[2]] {
            assert!((1500..=1850).contains(&c), "{n:?}");
        }
        assert!(pick(&[], &mut Rng::with_seed(3)).is_none());
        assert!(std::ptr::eq(
            pick(&[&views[3]], &mut Rng::with_seed(3)).unwrap(),
            &views[3]
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn a_readmitted_backend_gets_its_share_back_at_once() {
        let bs = backends(3, Duration::from_millis(2));
        // bs[0] failed: it carries the failure penalty (the request timeout).
        bs[0].load.observe(Duration::from_secs(10));
        let views = view_of(&bs);
        assert_eq!(shares(&views, 300, &mut Rng::with_seed(4))[0], 0);
        // Without traffic, reading alone decays the penalty: after a minute
        // it is far smaller, though still above the healthy backends.
        tokio::time::advance(Duration::from_secs(60)).await;
        assert!(bs[0].load.estimate() < Duration::from_millis(30));
        // The others kept serving meanwhile.
        bs[1].load.observe(Duration::from_millis(2));
        bs[2].load.observe(Duration::from_millis(2));
        // Re-admission by a probe that took 2 ms: a fair share at once.
        bs[0].load.reset(Duration::from_millis(2));
        let n = shares(&views, 3000, &mut Rng::with_seed(4));
        assert!(n[0] >= 800, "{n:?}");
    }

    /// A probe's round trip can be far slower than the answers the busy
    /// peers give (a fresh connection, a loaded machine). The re-admitted
    /// backend still gets one trial request at once, and its answer, not
    /// the probe, then sets its estimate.
    #[tokio::test(start_paused = true)]
    async fn a_slow_probe_does_not_keep_a_readmitted_backend_out() {
        let bs = backends(3, Duration::from_millis(2));
        bs[0].load.observe(Duration::from_secs(10));
        let views = view_of(&bs);
        bs[0].load.reset(Duration::from_millis(20));
        // Untried and idle: it wins every pair it is in.
        let n = shares(&views, 300, &mut Rng::with_seed(5));
        assert!(n[0] >= 150, "{n:?}");
        // With its trial in flight it is judged by the probe's 20 ms: no more.
        let trial = bs[0].load.start();
        assert_eq!(shares(&views, 300, &mut Rng::with_seed(5))[0], 0);
        // The trial's answer took 2 ms, like its peers': a fair share.
        bs[0].load.observe(Duration::from_millis(2));
        drop(trial);
        assert_eq!(bs[0].load.estimate(), Duration::from_millis(2));
        let n = shares(&views, 3000, &mut Rng::with_seed(5));
        assert!(n[0] >= 800, "{n:?}");
    }
}
