//! One poll of a filter against the canonical chain, in steps that do no
//! I/O (so they are tested alone): rewind past blocks a reorg replaced, pick
//! the blocks to look at, and accept what `eth_getLogs` said about them.
//!
//! The chain is the gateway's own window of canonical hashes
//! ([`Canon`], kept by the reorg loop at the served head). A block filter
//! needs nothing else: its poll costs no upstream call. A log filter asks
//! `eth_getLogs` for the blocks since its last poll, up to the top of that
//! chain, and checks each log's block hash against it.

use serde_json::Value;

use super::state::{hash_tag, State};
use crate::upstream::chain::Canon;

/// Blocks a filter remembers for reorg detection at most (the canonical
/// window is no deeper).
pub(super) const MAX_RECENT: usize = crate::config::CACHE_CANON_WINDOW as usize;

/// Forgets blocks below the window, finds the lowest remembered block the
/// chain has replaced, and rewinds the filter to it: returns the logs
/// delivered from the replaced blocks, marked `removed: true`, in the order
/// they were delivered. Blocks above the chain's top are not judged (another
/// replica's chain, or this one's, may simply be behind).
pub(super) fn rewind(state: &mut State, chain: &Canon) -> Vec<Value> {
    let Some(top) = chain.top() else {
        return Vec::new();
    };
    let base = chain.base();
    let forgotten = state.recent.iter().take_while(|(n, _)| *n < base).count();
    state.recent.drain(..forgotten);
    state
        .logs
        .retain(|log| block_number(log).is_none_or(|n| n >= base));
    let fork = state
        .recent
        .iter()
        .take_while(|(n, _)| *n <= top)
        .find(|(n, tag)| chain.hash(*n).map(hash_tag) != Some(*tag))
        .map(|(n, _)| *n);
    let Some(fork) = fork else {
        return Vec::new();
    };
    state.recent.retain(|(n, _)| *n < fork);
    state.next = state.next.min(fork);
    let (gone, kept): (Vec<Value>, Vec<Value>) = std::mem::take(&mut state.logs)
        .into_iter()
        .partition(|log| block_number(log).is_some_and(|n| n >= fork));
    state.logs = kept;
    gone.into_iter()
        .map(|mut log| {
            if let Some(object) = log.as_object_mut() {
                object.insert("removed".into(), Value::Bool(true));
            }
            log
        })
        .collect()
}

/// The blocks this poll looks at: from the filter's next block up to the
/// chain's top, its own `end`, and `max_blocks` in all.
pub(super) fn span(
    state: &State,
    chain: &Canon,
    end: Option<u64>,
    max_blocks: u64,
) -> Option<(u64, u64)> {
    let top = chain.top()?;
    let last = top
        .min(end.unwrap_or(u64::MAX))
        .min(state.next.saturating_add(max_blocks - 1));
    (state.next <= last).then_some((state.next, last))
}

/// A block filter's poll on `chain`: the heights to look at, lowest first,
/// or `None` when nothing is to be delivered.
///
/// A block filter's cursor is a chain position, not a number: `recent`
/// holds the (height, hash tag) of every block it delivered within the
/// window (several at one height when replicas disagreed), `next` the
/// height after the highest. Polled on replicas that momentarily disagree
/// (one behind, one on a branch the others left), a poll
/// - on a chain whose top is below the cursor is behind it: it delivers
///   nothing and leaves the filter as it is (its chain is not evidence of
///   a reorg, only of lag);
/// - else starts at the lowest height whose block on this chain was not
///   delivered (a reorg seen here, or a branch another replica served),
///   and the caller skips every block already delivered ([`delivered`]):
///   no hash comes twice, and every block of this chain above the filter's
///   start comes once.
pub(super) fn block_span(state: &mut State, chain: &Canon, max_blocks: u64) -> Option<(u64, u64)> {
    let top = chain.top()?;
    let base = chain.base();
    state.recent.retain(|(n, _)| *n >= base);
    if top.saturating_add(1) < state.next {
        return None;
    }
    let low = state
        .recent
        .iter()
        .map(|(n, _)| *n)
        .min()
        .unwrap_or(state.next);
    let fork = (low.max(base)..state.next).find(|n| {
        chain
            .hash(*n)
            .is_some_and(|h| !delivered(state, *n, hash_tag(h)))
    });
    let from = fork.unwrap_or(state.next);
    let last = top.min(from.saturating_add(max_blocks - 1));
    (from <= last).then_some((from, last))
}

/// Whether the block filter delivered the block at `n` with this hash tag.
pub(super) fn delivered(state: &State, n: u64, tag: u64) -> bool {
    state.recent.contains(&(n, tag))
}

/// Records a block filter's delivery of block `n` (hash tag `tag`), within
/// a bound: the oldest deliveries go first.
pub(super) fn record_delivery(state: &mut State, n: u64, tag: u64) {
    state.recent.push_back((n, tag));
    while state.recent.len() > 2 * MAX_RECENT {
        state.recent.pop_front();
    }
    state.next = state.next.max(n + 1);
}

/// Keeps a log filter's replay logs within `max_bytes` (as JSON): the
/// oldest blocks are forgotten with their logs, as if they were final.
pub(super) fn trim_replay(state: &mut State, max_bytes: usize) {
    let size = |log: &Value| serde_json::to_vec(log).map_or(usize::MAX, |v| v.len());
    let mut total: usize = state.logs.iter().map(size).fold(0, usize::saturating_add);
    while total > max_bytes {
        let Some((n, _)) = state.recent.pop_front() else {
            state.logs.clear();
            return;
        };
        let (gone, kept): (Vec<Value>, Vec<Value>) = std::mem::take(&mut state.logs)
            .into_iter()
            .partition(|log| block_number(log).is_none_or(|b| b <= n));
        state.logs = kept;
        total = total.saturating_sub(gone.iter().map(size).fold(0, usize::saturating_add));
    }
}

/// Remembers blocks `from..=to` (those the chain knows) and moves past them.
pub(super) fn advance(state: &mut State, chain: &Canon, from: u64, to: u64) {
    for n in from..=to {
        if let Some(h) = chain.hash(n) {
            state.recent.push_back((n, hash_tag(h)));
        }
    }
    while state.recent.len() > MAX_RECENT {
        if let Some((n, _)) = state.recent.pop_front() {
            state
                .logs
                .retain(|log| block_number(log).is_none_or(|b| b > n));
        }
    }
    state.next = to + 1;
}

/// The chain moved while the logs were read: this answer is not the chain's.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Moved;

/// Checks the logs `eth_getLogs` gave for `from..=to` against the chain,
/// keeps those of blocks a reorg may still replace, and moves past the span.
pub(super) fn accept_logs(
    state: &mut State,
    chain: &Canon,
    from: u64,
    to: u64,
    logs: &[Value],
) -> Result<(), Moved> {
    for log in logs {
        let n = block_number(log).ok_or(Moved)?;
        if n < from || n > to {
            return Err(Moved);
        }
        if let Some(known) = chain.hash(n) {
            let given = log
                .get("blockHash")
                .and_then(Value::as_str)
                .and_then(crate::eth::parse_hash);
            if given.as_ref() != Some(known) {
                return Err(Moved);
            }
        }
    }
    let base = chain.base();
    state.logs.extend(
        logs.iter()
            .filter(|log| block_number(log).is_some_and(|n| n >= base && chain.hash(n).is_some()))
            .cloned(),
    );
    advance(state, chain, from, to);
    Ok(())
}

fn block_number(log: &Value) -> Option<u64> {
    crate::eth::parse_quantity(log.get("blockNumber")?.as_str()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eth::Hash;
    use crate::filters::state::KindName;
    use crate::upstream::chain::{rebuild, Header};

    fn h(fork: u8, n: u64) -> Hash {
        let mut x = [0u8; 32];
        x[0] = fork;
        x[1..9].copy_from_slice(&n.to_be_bytes());
        x
    }

    /// The chain `0..=top` where blocks above `fork_at` are of fork `fork`,
    /// as the reorg loop would build it over `lower..=top`.
    async fn chain(fork: u8, fork_at: u64, top: u64, lower: u64) -> Canon {
        let id = move |n: u64| if n > fork_at { h(fork, n) } else { h(0, n) };
        let (canon, _) = rebuild(&Canon::default(), top, lower, |n| async move {
            Ok(Header {
                number: n,
                hash: id(n),
                parent: if n == 0 { [0; 32] } else { id(n - 1) },
            })
        })
        .await
        .unwrap();
        canon
    }

    fn log(fork: u8, n: u64, i: u64) -> Value {
        serde_json::json!({
            "blockNumber": format!("0x{n:x}"),
            "blockHash": crate::eth::hash::to_hex(&h(fork, n)),
            "logIndex": format!("0x{i:x}"),
            "removed": false,
        })
    }

    #[tokio::test]
    async fn a_block_filter_sees_each_block_once_and_the_new_ones_after_a_reorg() {
        let mut s = State::new("c".into(), KindName::Block, None, 11);
        let c = chain(0, 100, 14, 0).await;
        assert_eq!(span(&s, &c, None, 1000), Some((11, 14)));
        advance(&mut s, &c, 11, 14);
        assert_eq!(span(&s, &c, None, 1000), None, "nothing new");
        assert!(rewind(&mut s, &c).is_empty());
        // Blocks 13 and 14 replaced, and one more mined.
        let c = chain(1, 12, 15, 0).await;
        assert!(
            rewind(&mut s, &c).is_empty(),
            "a block filter has no logs to remove"
        );
        assert_eq!(span(&s, &c, None, 1000), Some((13, 15)));
        assert_eq!(
            span(&s, &c, None, 2),
            Some((13, 14)),
            "max_blocks bounds a poll"
        );
    }

    /// One block filter poll on `c`, as `Filters::changes` runs it: the
    /// hashes delivered.
    fn poll_blocks(s: &mut State, c: &Canon) -> Vec<Hash> {
        let mut out = Vec::new();
        if let Some((from, to)) = block_span(s, c, 1000) {
            for n in from..=to {
                let h = *c.hash(n).unwrap();
                if !delivered(s, n, hash_tag(&h)) {
                    record_delivery(s, n, hash_tag(&h));
                    out.push(h);
                }
            }
        }
        out
    }

    #[tokio::test]
    async fn replicas_that_disagree_never_deliver_a_hash_twice_nor_skip_one() {
        let mut s = State::new("c".into(), KindName::Block, None, 11);
        let mut seen = Vec::new();
        // Replica A on the main chain; B behind it, then on a branch of its
        // own from 15 (it missed blocks the others mined), then back.
        let a = chain(0, 100, 20, 0).await;
        let b_behind = chain(0, 100, 17, 0).await;
        let b_branch = chain(3, 14, 22, 0).await;
        let a_later = chain(0, 100, 24, 0).await;
        seen.extend(poll_blocks(&mut s, &a));
        assert_eq!(seen.len(), 10);
        assert!(poll_blocks(&mut s, &b_behind).is_empty(), "behind: []");
        assert_eq!(s.next, 21, "a poll behind the cursor keeps it");
        seen.extend(poll_blocks(&mut s, &b_branch));
        seen.extend(poll_blocks(&mut s, &a));
        seen.extend(poll_blocks(&mut s, &a_later));
        seen.extend(poll_blocks(&mut s, &b_branch));
        let mut unique = seen.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), seen.len(), "no hash delivered twice");
        for n in 11..=24 {
            assert!(
                seen.contains(&h(0, n)),
                "block {n} of the main chain delivered"
            );
        }
    }

    #[test]
    fn replay_logs_are_kept_within_their_bytes() {
        let mut s = State::new("c".into(), KindName::Log, None, 10);
        for n in 10..20 {
            s.recent.push_back((n, n));
            s.logs.push(log(0, n, 0));
        }
        let one = serde_json::to_vec(&s.logs[9]).unwrap().len();
        trim_replay(&mut s, one * 3);
        assert_eq!(s.logs.len(), 3);
        assert_eq!(
            s.recent.front(),
            Some(&(17, 17)),
            "the oldest blocks go first"
        );
        trim_replay(&mut s, 0);
        assert!(s.logs.is_empty());
    }

    #[tokio::test]
    async fn replaced_logs_come_back_removed_then_the_new_ones() {
        let mut s = State::new("c".into(), KindName::Log, None, 10);
        let c = chain(0, 100, 12, 0).await;
        let first = vec![log(0, 10, 0), log(0, 11, 1), log(0, 12, 2)];
        accept_logs(&mut s, &c, 10, 12, &first).unwrap();
        let c2 = chain(2, 10, 12, 0).await;
        let removed = rewind(&mut s, &c2);
        assert_eq!(removed.len(), 2);
        assert_eq!(removed[0]["blockNumber"], "0xb");
        assert_eq!(removed[1]["blockNumber"], "0xc");
        assert!(removed.iter().all(|l| l["removed"] == true));
        assert_eq!(s.next, 11);
        assert_eq!(s.logs.len(), 1, "the log of block 10 stays");
        // Logs of the old fork for the new span: the chain moved under us.
        assert_eq!(
            accept_logs(&mut s, &c2, 11, 12, &[log(0, 11, 0)]),
            Err(Moved)
        );
        accept_logs(&mut s, &c2, 11, 12, &[log(2, 12, 0)]).unwrap();
        assert_eq!(s.next, 13);
        assert!(
            rewind(&mut s, &c2).is_empty(),
            "no reorg: nothing removed twice"
        );
    }

    #[tokio::test]
    async fn a_chain_that_is_behind_the_filter_is_not_a_reorg() {
        let mut s = State::new("c".into(), KindName::Log, None, 10);
        let ahead = chain(0, 100, 12, 0).await;
        accept_logs(&mut s, &ahead, 10, 12, &[log(0, 12, 0)]).unwrap();
        let behind = chain(0, 100, 11, 0).await;
        assert!(rewind(&mut s, &behind).is_empty());
        assert_eq!(span(&s, &behind, None, 10), None);
        assert_eq!(s.logs.len(), 1);
    }

    #[tokio::test]
    async fn blocks_below_the_window_are_forgotten_and_memory_is_bounded() {
        let mut s = State::new("c".into(), KindName::Log, None, 0);
        let c = chain(0, 1000, 300, 300 - MAX_RECENT as u64 + 1).await;
        s.next = c.base();
        accept_logs(&mut s, &c, c.base(), 300, &[log(0, 300, 0)]).unwrap();
        assert_eq!(s.recent.len(), MAX_RECENT);
        let later = chain(0, 1000, 500, 500 - MAX_RECENT as u64 + 1).await;
        assert!(rewind(&mut s, &later).is_empty());
        assert!(s.recent.is_empty() && s.logs.is_empty());
    }
}
