//! What has been delivered, so that a feed that moves to another backend
//! neither skips nor repeats: pure bookkeeping, tested alone; the fetching
//! lives in [`super::feed`].
//!
//! **Heads**: the numbers and hashes of the last delivered headers. A header
//! one above the last is delivered; one further above opens a gap, filled by
//! fetching the missing numbers first; one at or below the last is delivered
//! again only when its hash differs from what was delivered at that number (a
//! reorg, as Geth does), and is otherwise a duplicate from the new backend.
//!
//! **Logs**: the highest block whose logs are known to be complete
//! (`covered`), and the (block hash, log index) pairs delivered for recent
//! blocks. A new backend's subscription is preceded by `eth_getLogs` over
//! `covered + 1 ..= its head`; whatever that and the live stream both carry
//! is delivered once.

use std::collections::{BTreeMap, HashSet, VecDeque};

/// Headers remembered for reorg and duplicate checks.
const RECENT_HEADS: usize = 256;
/// A gap larger than this is not filled (the feed skips ahead and logs it):
/// one slow client reconnecting after hours must not fetch the whole chain.
pub const MAX_HEAD_GAP: u64 = 512;
/// Blocks of logs fetched at most after a failover (older ones are skipped).
pub const MAX_LOG_GAP: u64 = 10_000;
/// Blocks below the newest delivered log whose log identities are kept.
const RECENT_LOG_BLOCKS: u64 = 128;

/// What to do with a header from upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeadStep {
    Deliver,
    /// Already delivered with this hash.
    Skip,
    /// Fetch and deliver these numbers first, then this header.
    Fill {
        from: u64,
        to: u64,
    },
}

#[derive(Debug, Default)]
pub struct Heads {
    /// Delivered numbers and hashes, ascending; `None`: the starting point,
    /// whose hash is not known.
    recent: VecDeque<(u64, Option<String>)>,
}

impl Heads {
    /// Clients have seen up to `number` (the served head when they subscribed).
    pub fn starting_after(number: u64) -> Heads {
        Heads {
            recent: VecDeque::from([(number, None)]),
        }
    }

    pub fn judge(&self, number: u64, hash: &str) -> HeadStep {
        let Some((last, _)) = self.recent.back() else {
            return HeadStep::Deliver;
        };
        // Numbers come from backends: no arithmetic here may overflow.
        let next = last.saturating_add(1);
        if number == next {
            return HeadStep::Deliver;
        }
        if number > next {
            let from = next.max(number.saturating_sub(MAX_HEAD_GAP));
            return HeadStep::Fill {
                from,
                to: number - 1,
            };
        }
        let same = self
            .recent
            .iter()
            .any(|(n, h)| *n == number && h.as_ref().is_none_or(|h| h.eq_ignore_ascii_case(hash)));
        if same {
            HeadStep::Skip
        } else {
            HeadStep::Deliver
        }
    }

    /// Records a delivered header; a lower number (a reorg) forgets what was above it.
    pub fn delivered(&mut self, number: u64, hash: &str) {
        while self.recent.back().is_some_and(|(n, _)| *n >= number) {
            self.recent.pop_back();
        }
        self.recent.push_back((number, Some(hash.to_string())));
        if self.recent.len() > RECENT_HEADS {
            self.recent.pop_front();
        }
    }

    pub fn last(&self) -> Option<u64> {
        self.recent.back().map(|(n, _)| *n)
    }
}

#[derive(Debug, Default)]
pub struct Logs {
    covered: Option<u64>,
    seen: BTreeMap<u64, HashSet<(String, u64)>>,
}

/// The fields of a log that identify it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogId {
    pub block: u64,
    pub block_hash: String,
    pub index: u64,
    pub removed: bool,
}

impl Logs {
    /// The blocks to fetch before following a backend whose head is `head`:
    /// `None` on the first subscription (the client asked for logs from now on).
    /// At most [`MAX_LOG_GAP`] blocks, the newest.
    pub fn missing(&self, head: u64) -> Option<(u64, u64)> {
        let from = self.covered?.checked_add(1)?;
        let from = from.max(head.saturating_sub(MAX_LOG_GAP - 1));
        (from <= head).then_some((from, head))
    }

    /// Everything up to `head` has been delivered (after a fill, or at the start).
    pub fn covered_to(&mut self, head: u64) {
        self.covered = Some(self.covered.map_or(head, |c| c.max(head)));
    }

    /// Whether to deliver this log; records it.
    pub fn admit(&mut self, log: &LogId) -> bool {
        let key = (log.block_hash.to_ascii_lowercase(), log.index);
        if log.removed {
            // A reorg took it out: the client hears of it, and a later
            // re-inclusion is delivered again.
            if let Some(set) = self.seen.get_mut(&log.block) {
                set.remove(&key);
            }
            return true;
        }
        if !self.seen.entry(log.block).or_default().insert(key) {
            return false;
        }
        // Logs of block N arriving means blocks below N are complete.
        self.covered_to(log.block.saturating_sub(1));
        let keep_from = log.block.saturating_sub(RECENT_LOG_BLOCKS);
        self.seen = self.seen.split_off(&keep_from);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_start_after_what_clients_have_seen() {
        let h = Heads::starting_after(4);
        assert_eq!(h.judge(4, "a4"), HeadStep::Skip);
        assert_eq!(h.judge(5, "a5"), HeadStep::Deliver);
        assert_eq!(h.judge(7, "a7"), HeadStep::Fill { from: 5, to: 6 });
    }

    #[test]
    fn heads_in_order_gaps_duplicates_and_reorgs() {
        let mut h = Heads::default();
        assert_eq!(h.judge(5, "a5"), HeadStep::Deliver);
        h.delivered(5, "a5");
        assert_eq!(h.judge(6, "a6"), HeadStep::Deliver);
        h.delivered(6, "a6");
        // A new backend repeats what was delivered.
        assert_eq!(h.judge(6, "A6"), HeadStep::Skip);
        assert_eq!(h.judge(5, "a5"), HeadStep::Skip);
        // ...or is ahead.
        assert_eq!(h.judge(9, "a9"), HeadStep::Fill { from: 7, to: 8 });
        for (n, x) in [(7, "a7"), (8, "a8"), (9, "a9")] {
            h.delivered(n, x);
        }
        // A different hash at a delivered height is a reorg: delivered again.
        assert_eq!(h.judge(8, "b8"), HeadStep::Deliver);
        h.delivered(8, "b8");
        assert_eq!(h.last(), Some(8));
        assert_eq!(h.judge(9, "b9"), HeadStep::Deliver);
        // A huge gap is bounded.
        assert_eq!(
            h.judge(10_000, "x"),
            HeadStep::Fill {
                from: 10_000 - MAX_HEAD_GAP,
                to: 9_999
            }
        );
    }

    fn log(block: u64, hash: &str, index: u64) -> LogId {
        LogId {
            block,
            block_hash: hash.into(),
            index,
            removed: false,
        }
    }

    #[test]
    fn logs_are_filled_from_what_is_covered_and_delivered_once() {
        let mut l = Logs::default();
        assert_eq!(l.missing(10), None, "nothing to fill at the start");
        l.covered_to(10);
        assert!(l.admit(&log(11, "h11", 0)));
        assert!(l.admit(&log(11, "h11", 1)));
        assert!(!l.admit(&log(11, "H11", 1)), "the same log twice");
        // Failover: block 11 may be incomplete, so it is fetched again.
        assert_eq!(l.missing(14), Some((11, 14)));
        assert!(!l.admit(&log(11, "h11", 0)));
        assert!(l.admit(&log(11, "h11", 2)));
        assert!(l.admit(&log(13, "h13", 0)));
        l.covered_to(14);
        assert_eq!(l.missing(14), None);
        assert_eq!(
            l.missing(14 + 2 * MAX_LOG_GAP),
            Some((14 + MAX_LOG_GAP + 1, 14 + 2 * MAX_LOG_GAP))
        );
        assert!(!l.admit(&log(13, "h13", 0)), "live after the fill");
        // Removed logs always pass, and the log may come back.
        let mut gone = log(13, "h13", 0);
        gone.removed = true;
        assert!(l.admit(&gone));
        assert!(l.admit(&log(13, "h13", 0)));
    }
}
