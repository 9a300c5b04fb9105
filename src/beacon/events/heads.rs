//! Each node's head as its own event stream reports it: the health loop
//! reads it instead of polling `/eth/v1/beacon/headers/head` while it is
//! fresh, and polls when it is not (no stream from that node, or no head
//! event for a while: empty slots, a stalled stream).
//!
//! Fed by the shared streams (every `head` event of a stream's source node,
//! duplicates included: it is that node's view), indexed like the
//! network's nodes.

use std::time::{Duration, Instant};

use parking_lot::Mutex;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseHead {
    pub slot: u64,
    pub root: String,
}

pub struct Heads {
    by_node: Vec<Mutex<Option<(SseHead, Instant)>>>,
}

impl Heads {
    pub(crate) fn new(nodes: usize) -> Heads {
        Heads {
            by_node: (0..nodes).map(|_| Mutex::new(None)).collect(),
        }
    }

    pub(crate) fn record(&self, node: usize, head: SseHead) {
        if let Some(slot) = self.by_node.get(node) {
            *slot.lock() = Some((head, Instant::now()));
        }
    }

    /// Node `node`'s last streamed head, if it came within `max_age`.
    pub fn fresh(&self, node: usize, max_age: Duration) -> Option<SseHead> {
        let kept = self.by_node.get(node)?.lock();
        let (head, at) = kept.as_ref()?;
        (at.elapsed() <= max_age).then(|| head.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_head_is_used_while_fresh() {
        let heads = Heads::new(2);
        assert_eq!(heads.fresh(0, Duration::from_secs(60)), None);
        let h = SseHead {
            slot: 7,
            root: "0xab".into(),
        };
        heads.record(0, h.clone());
        heads.record(9, h.clone());
        assert_eq!(heads.fresh(0, Duration::from_secs(60)), Some(h));
        assert_eq!(heads.fresh(1, Duration::from_secs(60)), None);
        assert_eq!(heads.fresh(0, Duration::ZERO), None);
    }
}
