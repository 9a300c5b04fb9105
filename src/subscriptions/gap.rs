//! What has been delivered, so that a feed that moves to another backend
//! neither skips nor repeats: pure bookkeeping, tested alone; the fetching
//! lives in [`super::feed`].
//!
//! **Heads**: the numbers and hashes of the last delivered headers. A header
//! one above the last is delivered; one further above opens a gap, filled by
//! fetching the missing numbers first; one at or below the last is delivered
//! again only when its hash differs from what was delivered at that number (a
//! reorg, as Geth does), and is otherwise a duplicate from the new backend.
//! A header whose parent is not the header delivered one below it shows
//! that the chain changed below it too (a feed that moved after a reorg sees
//! only the new branch's top): the feed fetches the replacements back to
//! where the branches meet and delivers them first ([`Heads::hash_at`]).
//!
//! **Logs**: the highest block whose logs are known to be complete
//! (`covered`), and the (block hash, log index) pairs delivered for recent
//! blocks. A new backend's subscription is preceded by `eth_getLogs` over
//! `covered + 1 ..= its head`; whatever that and the live stream both carry
//! is delivered once.
//!
//! **Removed logs**: the delivered logs of recent blocks are kept (bounded by
//! blocks and bytes), because neither a node that leaves reorgs unannounced
//! (anvil) nor a feed that moved to another backend tells clients what a
//! reorg took back. A new log of a block whose hash the feed has not
//! delivered, at or below the highest block it did deliver, means the chain
//! changed there: what was delivered at that height and above is sent again
//! with `"removed": true` (as Geth does), once, before the new log. A removal
//! the upstream sends itself passes once: it is not repeated for a log
//! already announced removed, nor announced for a log it already removed.

use std::collections::{BTreeMap, HashSet, VecDeque};

use serde_json::{Map, Value};

/// Headers remembered for reorg and duplicate checks.
const RECENT_HEADS: usize = 256;
/// Delivered headers a feed walks back at most to find where a new branch
/// meets what clients have seen (a deeper reorg is announced from there).
pub const MAX_REORG_WALK: usize = 64;
/// A gap larger than this is not filled (the feed skips ahead and logs it):
/// one slow client reconnecting after hours must not fetch the whole chain.
pub const MAX_HEAD_GAP: u64 = 512;
/// Blocks of logs fetched at most after a failover (older ones are skipped).
pub const MAX_LOG_GAP: u64 = 10_000;
/// Blocks below the newest delivered log whose log identities are kept.
const RECENT_LOG_BLOCKS: u64 = 128;
/// Delivered blocks whose logs a moved feed reads again (a reorg deeper than
/// this while the feed moves is not announced). Far within
/// [`RECENT_LOG_BLOCKS`], so that the logs read again are known.
pub const RECHECK_LOG_BLOCKS: u64 = 16;
/// Bytes of delivered logs a feed keeps for removal on a reorg: past it, the
/// oldest blocks go first (a reorg that deep is not announced by the gateway).
const MAX_HELD_BYTES: usize = 4 << 20;

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

    /// The hash delivered at `number`, if it is remembered.
    pub fn hash_at(&self, number: u64) -> Option<&str> {
        self.recent
            .iter()
            .rev()
            .find(|(n, _)| *n == number)
            .and_then(|(_, h)| h.as_deref())
    }
}

/// A log's key within its height: (block hash in lower case, log index).
type LogKey = (String, u64);
/// Delivered logs of one block: each log's index and the text delivered.
type HeldLogs = Vec<(u64, Box<[u8]>)>;

#[derive(Debug, Default)]
pub struct Logs {
    covered: Option<u64>,
    seen: BTreeMap<u64, HashSet<LogKey>>,
    /// Delivered logs by (height, block hash), each with its index and the
    /// text delivered: what a reorg takes back.
    held: BTreeMap<(u64, String), HeldLogs>,
    held_bytes: usize,
    /// Logs announced removed by this feed, by height: the upstream's own
    /// removal of them is not delivered a second time.
    retracted: BTreeMap<u64, HashSet<LogKey>>,
}

/// What to deliver for one log from upstream.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Admitted {
    /// Earlier logs a reorg took out, as `"removed": true` notifications, to
    /// be delivered first.
    pub removed: Vec<Vec<u8>>,
    /// Whether the log itself is delivered.
    pub deliver: bool,
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
    ///
    /// The fill starts [`RECHECK_LOG_BLOCKS`] below what is covered: the
    /// blocks last delivered may have been replaced while no backend was
    /// followed (a reorg the old backend never announced, or one the new
    /// backend is past). Their logs come again; those of unchanged blocks are
    /// known and skipped, and those of a replaced block take back what was
    /// delivered from its height up (see [`Logs::admit`]).
    pub fn missing(&self, head: u64) -> Option<(u64, u64)> {
        let from = self
            .covered?
            .checked_add(1)?
            .saturating_sub(RECHECK_LOG_BLOCKS);
        let from = from.max(head.saturating_sub(MAX_LOG_GAP - 1));
        (from <= head).then_some((from, head))
    }

    /// Everything up to `head` has been delivered (after a fill, or at the start).
    pub fn covered_to(&mut self, head: u64) {
        self.covered = Some(self.covered.map_or(head, |c| c.max(head)));
    }

    /// What to deliver for this log (`raw`: its text); records it.
    pub fn admit(&mut self, log: &LogId, raw: &[u8]) -> Admitted {
        let hash = log.block_hash.to_ascii_lowercase();
        let key = (hash.clone(), log.index);
        if log.removed {
            // A reorg took it out: the client hears of it once, and a later
            // re-inclusion is delivered again.
            if let Some(set) = self.seen.get_mut(&log.block) {
                set.remove(&key);
            }
            self.forget_held(log.block, &key);
            // Delivered unless the client was already told (by this feed or
            // by an earlier copy of the same removal).
            let fresh = self.retracted.entry(log.block).or_default().insert(key);
            return Admitted {
                removed: Vec::new(),
                deliver: fresh,
            };
        }
        if self.seen.get(&log.block).is_some_and(|s| s.contains(&key)) {
            return Admitted::default();
        }
        let removed = self.orphaned_by(log.block, &hash);
        if let Some(set) = self.retracted.get_mut(&log.block) {
            set.remove(&key);
        }
        self.seen.entry(log.block).or_default().insert(key);
        self.hold(log.block, hash, log.index, raw);
        // Logs of block N arriving means blocks below N are complete.
        self.covered_to(log.block.saturating_sub(1));
        let keep_from = log.block.saturating_sub(RECENT_LOG_BLOCKS);
        self.seen = self.seen.split_off(&keep_from);
        self.retracted = self.retracted.split_off(&keep_from);
        while self
            .held
            .first_key_value()
            .is_some_and(|((n, _), _)| *n < keep_from)
            || self.held_bytes > MAX_HELD_BYTES
        {
            self.pop_oldest_held();
        }
        Admitted {
            removed,
            deliver: true,
        }
    }

    /// A new log of `block` with `hash`: when that block was not delivered
    /// and a block at or above its height was, the chain changed there, and
    /// every delivered block from that height up is taken back.
    fn orphaned_by(&mut self, block: u64, hash: &str) -> Vec<Vec<u8>> {
        let known = self.held.contains_key(&(block, hash.to_string()))
            || self
                .seen
                .get(&block)
                .is_some_and(|set| set.iter().any(|(h, _)| h == hash));
        if known {
            return Vec::new();
        }
        let gone = self.held.split_off(&(block, String::new()));
        let mut removed = Vec::new();
        for ((n, h), logs) in gone {
            for (index, raw) in logs {
                self.held_bytes = self.held_bytes.saturating_sub(raw.len());
                let key = (h.clone(), index);
                if let Some(set) = self.seen.get_mut(&n) {
                    set.remove(&key);
                }
                self.retracted.entry(n).or_default().insert(key);
                removed.extend(as_removed(&raw));
            }
        }
        removed
    }

    fn hold(&mut self, block: u64, hash: String, index: u64, raw: &[u8]) {
        self.held_bytes = self.held_bytes.saturating_add(raw.len());
        self.held
            .entry((block, hash))
            .or_default()
            .push((index, raw.into()));
    }

    fn forget_held(&mut self, block: u64, (hash, index): &LogKey) {
        let at = (block, hash.clone());
        let Some(logs) = self.held.get_mut(&at) else {
            return;
        };
        let before: usize = logs.iter().map(|(_, raw)| raw.len()).sum();
        logs.retain(|(i, _)| i != index);
        let after: usize = logs.iter().map(|(_, raw)| raw.len()).sum();
        self.held_bytes = self.held_bytes.saturating_sub(before - after);
        if logs.is_empty() {
            self.held.remove(&at);
        }
    }

    fn pop_oldest_held(&mut self) {
        if let Some((_, logs)) = self.held.pop_first() {
            let bytes: usize = logs.iter().map(|(_, raw)| raw.len()).sum();
            self.held_bytes = self.held_bytes.saturating_sub(bytes);
        }
    }
}

/// The log in `raw` marked `"removed": true`; `None` if it is not an object.
fn as_removed(raw: &[u8]) -> Option<Vec<u8>> {
    let mut log: Map<String, Value> = serde_json::from_slice(raw).ok()?;
    log.insert("removed".into(), Value::Bool(true));
    serde_json::to_vec(&log).ok()
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

    /// The text of a log as a node sends it.
    fn text(id: &LogId) -> Vec<u8> {
        serde_json::json!({
            "blockNumber": format!("{:#x}", id.block),
            "blockHash": id.block_hash,
            "logIndex": format!("{:#x}", id.index),
            "removed": id.removed,
        })
        .to_string()
        .into_bytes()
    }

    fn admit(l: &mut Logs, id: &LogId) -> Admitted {
        l.admit(id, &text(id))
    }

    fn delivers(l: &mut Logs, id: &LogId) -> bool {
        admit(l, id).deliver
    }

    /// (block, hash, index) of each removal, checking it says `removed: true`.
    fn removals(a: &Admitted) -> Vec<(u64, String, u64)> {
        a.removed
            .iter()
            .map(|raw| {
                let v: Value = serde_json::from_slice(raw).unwrap();
                assert_eq!(v["removed"], Value::Bool(true));
                let q = |k: &str| crate::eth::parse_quantity(v[k].as_str().unwrap()).unwrap();
                let hash = v["blockHash"].as_str().unwrap().to_string();
                (q("blockNumber"), hash, q("logIndex"))
            })
            .collect()
    }

    #[test]
    fn a_moved_feed_reads_the_last_delivered_blocks_again() {
        let mut l = Logs::default();
        l.covered_to(100);
        assert_eq!(l.missing(100), Some((101 - RECHECK_LOG_BLOCKS, 100)));
        assert_eq!(l.missing(98), Some((101 - RECHECK_LOG_BLOCKS, 98)));
        assert_eq!(l.missing(100 - RECHECK_LOG_BLOCKS), None);
        assert!(delivers(&mut l, &log(101, "a101", 0)));
        assert!(delivers(&mut l, &log(102, "a102", 0)));
        // The feed moves; block 102 was replaced meanwhile. Reading again
        // from below finds 101 unchanged and 102 new: the old 102 is taken
        // back before the new one is delivered.
        let (from, to) = l.missing(103).unwrap();
        assert!(from <= 101 && to == 103);
        assert!(!delivers(&mut l, &log(101, "a101", 0)));
        let replaced = admit(&mut l, &log(102, "b102", 0));
        assert!(replaced.deliver);
        assert_eq!(removals(&replaced), vec![(102, "a102".to_string(), 0)]);
    }

    #[test]
    fn logs_are_filled_from_what_is_covered_and_delivered_once() {
        let mut l = Logs::default();
        assert_eq!(l.missing(10), None, "nothing to fill at the start");
        l.covered_to(10);
        assert!(delivers(&mut l, &log(11, "h11", 0)));
        assert!(delivers(&mut l, &log(11, "h11", 1)));
        assert!(!delivers(&mut l, &log(11, "H11", 1)), "the same log twice");
        // Failover: block 11 may be incomplete, so it is fetched again, and
        // the blocks below it may have been replaced.
        assert_eq!(l.missing(14), Some((0, 14)));
        assert!(!delivers(&mut l, &log(11, "h11", 0)));
        assert!(delivers(&mut l, &log(11, "h11", 2)));
        assert!(delivers(&mut l, &log(13, "h13", 0)));
        l.covered_to(14);
        assert_eq!(l.missing(14), Some((0, 14)));
        assert_eq!(
            l.missing(14 + 2 * MAX_LOG_GAP),
            Some((14 + MAX_LOG_GAP + 1, 14 + 2 * MAX_LOG_GAP))
        );
        assert!(!delivers(&mut l, &log(13, "h13", 0)), "live after the fill");
        // Removed logs pass once, and the log may come back.
        let mut gone = log(13, "h13", 0);
        gone.removed = true;
        assert!(delivers(&mut l, &gone));
        assert!(delivers(&mut l, &log(13, "h13", 0)));
    }

    #[test]
    fn a_reorg_takes_back_the_delivered_logs_of_replaced_blocks_once() {
        let mut l = Logs::default();
        for id in [
            log(5, "a5", 0),
            log(6, "a6", 0),
            log(6, "a6", 1),
            log(7, "a7", 0),
        ] {
            let a = admit(&mut l, &id);
            assert!(a.deliver && a.removed.is_empty(), "{id:?}");
        }
        // A new block at height 6: 6 and 7 of the old branch are taken back,
        // in order, before the new log; 5 stays.
        let a = admit(&mut l, &log(6, "b6", 0));
        assert!(a.deliver);
        assert_eq!(
            removals(&a),
            [
                (6, "a6".into(), 0),
                (6, "a6".into(), 1),
                (7, "a7".into(), 0)
            ]
        );
        // More logs of the new branch take nothing back.
        assert!(admit(&mut l, &log(6, "b6", 1)).removed.is_empty());
        assert!(admit(&mut l, &log(7, "b7", 0)).removed.is_empty());
        // The node's own removal of a log already taken back is not repeated.
        let mut late = log(7, "a7", 0);
        late.removed = true;
        assert!(!delivers(&mut l, &late));
        // A fork below the newest block whose new branch has no log at the
        // fork height: the first new log below the top reveals it.
        let a = admit(&mut l, &log(6, "c6", 0));
        assert_eq!(
            removals(&a),
            [
                (6, "b6".into(), 0),
                (6, "b6".into(), 1),
                (7, "b7".into(), 0)
            ]
        );
        // Back to the first branch: its logs are delivered again, and what
        // replaced them is taken back.
        let a = admit(&mut l, &log(6, "a6", 0));
        assert!(a.deliver);
        assert_eq!(removals(&a), [(6, "c6".into(), 0)]);
    }

    #[test]
    fn a_removal_the_node_sent_is_not_announced_again() {
        let mut l = Logs::default();
        for id in [log(5, "a5", 0), log(6, "a6", 0)] {
            assert!(delivers(&mut l, &id));
        }
        // Geth's way: the node removes what the reorg took out, then sends the
        // new branch; the gateway adds no second removal.
        let mut gone = log(6, "a6", 0);
        gone.removed = true;
        let a = admit(&mut l, &gone);
        assert!(a.deliver && a.removed.is_empty());
        assert!(!delivers(&mut l, &gone), "the same removal twice");
        let a = admit(&mut l, &log(6, "b6", 0));
        assert!(a.deliver && a.removed.is_empty(), "{:?}", removals(&a));
    }

    #[test]
    fn held_logs_are_bounded_by_blocks_and_bytes() {
        let mut l = Logs::default();
        for n in 0..3 * RECENT_LOG_BLOCKS {
            delivers(&mut l, &log(n, &format!("a{n}"), 0));
        }
        assert!(l.held.len() as u64 <= RECENT_LOG_BLOCKS + 1);
        let big = vec![b' '; MAX_HELD_BYTES / 4];
        for n in 1000..1010 {
            l.admit(&log(n, &format!("a{n}"), 0), &big);
        }
        assert!(l.held_bytes <= MAX_HELD_BYTES);
        let held: usize = l.held.values().flatten().map(|(_, r)| r.len()).sum();
        assert_eq!(held, l.held_bytes);
        // A reorg below what is held still takes back what is held.
        let a = admit(&mut l, &log(1000, "b1000", 0));
        assert!(a.removed.is_empty(), "blank text is no log to remove");
        assert!(l.held.is_empty() || l.held.keys().all(|(n, _)| *n == 1000));
    }
}
