//! The head the fleet agrees on, and each backend judged against it.
//!
//! One backend must not decide the chain for everyone: a node that reports a
//! head far ahead (a bug, a proxy, anyone on the path of plain HTTP) or that
//! follows another history with the same chain id would otherwise become the
//! served head and the cache's chain. So the reference is not the highest
//! head but the **agreed head**: the highest height at which at least two of
//! the backends being judged had the same block (same hash), as their head
//! trackers saw it (`HeadState::seen`). The backends holding it are the
//! *holders*; what they saw below it is the *agreed chain*.
//!
//! A backend ahead of the agreed head is believed, and its head becomes the
//! reference, when its tracker saw it reach that head block by block from
//! the agreed block (it has the agreed hash there and a block at every height
//! above, up to its head; a missing one is asked for): a node that is merely
//! ahead of a slow or stuck fleet keeps serving, while a head that jumps
//! (inflated by 1,000, say, or near `u64::MAX`) is not believed until another
//! backend confirms it.
//!
//! Against that reference each backend is judged:
//! - **another chain**: at the highest height both it and the agreed chain
//!   know, its block has another hash;
//! - **ahead, unconfirmed**: its head is more than `max_lag_blocks` above
//!   the agreed head (nobody else has its block yet);
//! - **lagging**: more than `max_lag_blocks` below;
//! - **unverified**: it shares no height with the agreed chain yet; its
//!   tracker is asked for its block at the agreed head (one call), so this
//!   lasts one round trip.
//!
//! When no two backends agree yet (a fleet starting, two nodes a block
//! apart), the reference is the second-highest head, unconfirmed: one liar
//! still cannot move it. With a single backend judged (one primary
//! configured, or one left), its own head is the reference, as before this
//! module existed: nothing can confirm or contradict it.
//!
//! All arithmetic on numbers a backend reports saturates: a head near
//! `u64::MAX` is merely far ahead. This runs in the view builder (a control
//! loop) when heads change; the request path reads its verdicts from the
//! published view.

use std::collections::{BTreeMap, HashMap};

use super::head::{HeadState, SEEN};
use super::view::Ineligible;

/// What the judged backends agree on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// The reference head: the agreed head, or the head of a backend that
    /// reached it block by block from there (or the unconfirmed stand-in).
    pub number: u64,
    /// The agreed head and its hash, when at least two backends hold it.
    pub agreed: Option<(u64, String)>,
    /// The agreed chain: the holders' blocks at and below the agreed head.
    chain: BTreeMap<u64, String>,
}

impl Reference {
    /// At least two backends hold the agreed block.
    pub fn confirmed(&self) -> bool {
        self.agreed.is_some()
    }

    /// Whether the backend reached its head block by block from the agreed
    /// block, as its tracker saw it; else the lowest height it is missing
    /// (`None`: it cannot be, or is not above the agreed head).
    fn connected(&self, s: &HeadState) -> Result<(), Option<u64>> {
        let Some((at, hash)) = &self.agreed else {
            return Err(None);
        };
        let head = s.head();
        if head <= *at || head - at >= SEEN as u64 || s.hash_at(*at) != Some(hash.as_str()) {
            return Err(None);
        }
        match (at + 1..=head).find(|n| s.hash_at(*n).is_none()) {
            None => Ok(()),
            Some(missing) => Err(Some(missing)),
        }
    }

    /// The reference for the backends being judged (`None` when there are none).
    pub fn of(judged: &[&HeadState]) -> Option<Reference> {
        match judged {
            [] => None,
            [only] => {
                let latest = only.latest.as_ref()?;
                Some(Reference {
                    number: latest.number,
                    agreed: None,
                    chain: only
                        .seen
                        .iter()
                        .map(|b| (b.number, b.hash.clone()))
                        .collect(),
                })
            }
            _ => Some(match agreed(judged) {
                Some(mut r) => {
                    let top = judged.iter().filter(|s| r.connected(s).is_ok());
                    r.number = top.map(|s| s.head()).fold(r.number, u64::max);
                    r
                }
                None => {
                    let mut heads: Vec<u64> = judged.iter().map(|s| s.head()).collect();
                    heads.sort_unstable_by(|a, b| b.cmp(a));
                    Reference {
                        number: heads.get(1).copied().unwrap_or(0),
                        agreed: None,
                        chain: BTreeMap::new(),
                    }
                }
            }),
        }
    }

    /// Judges one backend that nothing else keeps out; `None`: eligible.
    pub fn judge(&self, s: &HeadState, max_lag: u64) -> Option<Ineligible> {
        let head = s.head();
        if self.confirmed() {
            match self.common(s) {
                Some((height, agreed, theirs)) if agreed != theirs => {
                    return Some(Ineligible::OtherChain {
                        height,
                        agreed: agreed.to_owned(),
                        theirs: theirs.to_owned(),
                    })
                }
                Some(_) => {}
                None => return Some(Ineligible::Unverified),
            }
        }
        if head > self.number.saturating_add(max_lag) {
            return Some(Ineligible::AheadUnconfirmed {
                ahead: head.saturating_sub(self.number),
            });
        }
        (head.saturating_add(max_lag) < self.number).then(|| Ineligible::Lagging {
            behind: self.number.saturating_sub(head),
        })
    }

    /// The height whose block this backend's tracker should be asked for:
    /// the reference when it has that height but did not say what is there.
    pub fn ask_of(&self, s: &HeadState) -> Option<u64> {
        let at = match &self.agreed {
            Some((agreed, _)) => s.head().min(*agreed),
            None => s.head().min(self.number),
        };
        if at != 0 && s.hash_at(at).is_none() && (!self.confirmed() || self.common(s).is_none()) {
            return Some(at);
        }
        // Above the agreed head: the first block it skipped, to believe it.
        self.connected(s).err().flatten()
    }

    /// The highest height both the backend and the agreed chain know, with
    /// the agreed hash and the backend's there.
    fn common<'a>(&'a self, s: &'a HeadState) -> Option<(u64, &'a str, &'a str)> {
        s.seen.iter().rev().find_map(|b| {
            let agreed = self.chain.get(&b.number)?;
            Some((b.number, agreed.as_str(), b.hash.as_str()))
        })
    }
}

/// The highest block at least two judged backends saw with the same hash.
fn agreed(judged: &[&HeadState]) -> Option<Reference> {
    let mut by_height: BTreeMap<u64, HashMap<&str, Vec<usize>>> = BTreeMap::new();
    for (i, s) in judged.iter().enumerate() {
        for b in &s.seen {
            by_height
                .entry(b.number)
                .or_default()
                .entry(b.hash.as_str())
                .or_default()
                .push(i);
        }
    }
    let (number, hash, holders) = by_height.iter().rev().find_map(|(n, hashes)| {
        // Two groups of two at one height: the larger, then the lower hash (stable).
        hashes
            .iter()
            .filter(|(_, who)| who.len() >= 2)
            .max_by(|a, b| a.1.len().cmp(&b.1.len()).then(b.0.cmp(a.0)))
            .map(|(h, who)| (*n, (*h).to_owned(), who.clone()))
    })?;
    let mut chain = BTreeMap::new();
    for i in holders {
        if let Some(s) = judged.get(i) {
            for b in s.seen.iter().filter(|b| b.number <= number) {
                chain.entry(b.number).or_insert_with(|| b.hash.clone());
            }
        }
    }
    Some(Reference {
        number,
        agreed: Some((number, hash)),
        chain,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::head::{BlockId, ChainCheck};

    fn saw(blocks: &[(u64, &str)]) -> HeadState {
        let mut s = HeadState {
            chain: ChainCheck::Ok,
            reachable: true,
            syncing: false,
            latest: None,
            safe: None,
            finalized: None,
            reorgs: 0,
            last_error: None,
            seen: Vec::new(),
        };
        for (n, h) in blocks {
            let b = BlockId {
                number: *n,
                hash: (*h).into(),
            };
            s.note(b.clone());
            s.latest = Some(b);
        }
        s
    }

    #[test]
    fn two_holders_make_the_reference_and_a_liar_ahead_is_held_out() {
        let honest = saw(&[(9, "a9"), (10, "a10")]);
        let slow = saw(&[(9, "a9")]);
        let liar = saw(&[(1010, "a10")]);
        let r = Reference::of(&[&honest, &slow, &honest.clone(), &liar]).unwrap();
        assert_eq!(
            (r.number, r.agreed.clone()),
            (10, Some((10, "a10".to_owned())))
        );
        assert_eq!(r.judge(&honest, 2), None);
        assert_eq!(r.judge(&slow, 2), None);
        assert_eq!(r.judge(&liar, 2), Some(Ineligible::Unverified));
        assert_eq!(r.ask_of(&liar), Some(10));
        let mut liar = liar;
        liar.note(BlockId {
            number: 10,
            hash: "a10".into(),
        });
        assert_eq!(
            r.judge(&liar, 2),
            Some(Ineligible::AheadUnconfirmed { ahead: 1000 })
        );
        assert_eq!(r.ask_of(&liar), None);
    }

    #[test]
    fn another_history_is_another_chain() {
        let a = saw(&[(10, "a10"), (11, "a11")]);
        let other = saw(&[(11, "b11"), (12, "b12"), (13, "b13")]);
        let r = Reference::of(&[&a, &a.clone(), &other]).unwrap();
        assert_eq!(r.number, 11);
        assert_eq!(
            r.judge(&other, 5),
            Some(Ineligible::OtherChain {
                height: 11,
                agreed: "a11".into(),
                theirs: "b11".into()
            })
        );
    }

    #[test]
    fn numbers_near_the_top_saturate() {
        let a = saw(&[(10, "a10")]);
        let huge = saw(&[(u64::MAX, "a10")]);
        let r = Reference::of(&[&a, &a.clone(), &huge]).unwrap();
        assert_eq!(r.number, 10);
        let mut huge = huge;
        huge.note(BlockId {
            number: 10,
            hash: "a10".into(),
        });
        assert_eq!(
            r.judge(&huge, u64::MAX),
            None,
            "max_lag of u64::MAX: nothing wraps"
        );
        assert_eq!(
            r.judge(&huge, 2),
            Some(Ineligible::AheadUnconfirmed {
                ahead: u64::MAX - 10
            })
        );
        // No agreement: the second-highest head, so one liar moves nothing.
        let b = saw(&[(11, "b11")]);
        let r = Reference::of(&[&a, &b, &saw(&[(u64::MAX, "z")])]).unwrap();
        assert_eq!((r.number, r.confirmed()), (11, false));
        // One backend judged: its own head.
        let r = Reference::of(&[&huge]).unwrap();
        assert_eq!(r.number, u64::MAX);
        assert_eq!(r.judge(&huge, 2), None);
    }

    #[test]
    fn a_backend_ahead_block_by_block_is_believed_and_a_jump_is_not() {
        let stuck = saw(&[(3, "a3")]);
        let mut ahead = saw(&[(3, "a3"), (4, "a4"), (6, "a6")]);
        let r = Reference::of(&[&stuck, &ahead]).unwrap();
        assert_eq!(r.number, 3, "block 5 unseen: not believed yet");
        assert_eq!(
            r.judge(&ahead, 2),
            Some(Ineligible::AheadUnconfirmed { ahead: 3 })
        );
        assert_eq!(r.ask_of(&ahead), Some(5), "the block it skipped is asked");
        ahead.note(BlockId {
            number: 5,
            hash: "a5".into(),
        });
        let r = Reference::of(&[&stuck, &ahead]).unwrap();
        assert_eq!(r.number, 6);
        assert_eq!(r.judge(&ahead, 2), None);
        assert_eq!(r.judge(&stuck, 2), Some(Ineligible::Lagging { behind: 3 }));
    }
}
