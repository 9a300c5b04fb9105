//! Backend choice: power of two choices over Peak-EWMA load.
//!
//! Following tower's `balance::p2c` (Mitzenmacher, "The Power of Two Choices
//! in Randomized Load Balancing"): pick two distinct candidates at random and
//! keep the one with the lower load (`latency estimate × (in-flight + 1)`, see
//! `upstream::latency`). Comparing two random backends rather than scanning
//! for the global minimum avoids every request herding onto the same
//! momentarily-best backend, and costs O(1).

use crate::upstream::BackendView;

/// Picks one of `candidates`, or `None` when there are none.
pub(super) fn pick<'a>(candidates: &[&'a BackendView]) -> Option<&'a BackendView> {
    match candidates.len() {
        0 => None,
        1 => Some(candidates[0]),
        n => {
            let a = fastrand::usize(..n);
            let mut b = fastrand::usize(..n - 1);
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
