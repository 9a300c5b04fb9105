//! What a shared stream has delivered, so that no `head`, `block` or
//! `finalized_checkpoint` reaches its clients twice, whichever node (or the
//! gap fill) it comes from.
//!
//! A new node's stream only carries what happens after it was opened, so
//! the duplicates a move can bring are the events the old node already
//! gave: a slower new node repeating slots already passed on, and the
//! events between opening the new stream and the end of the gap fill (both
//! carry them). Blocks and heads are therefore recognised by their block
//! root among the recently delivered ones (a competing block at a slot
//! already passed is a different root: it goes through), a finalized
//! checkpoint by its epoch. The highest slot delivered is where a gap fill
//! starts. Other topics pass through.

use std::collections::VecDeque;

use serde_json::Value;

/// Roots remembered per topic: far more than a move can repeat.
const RECENT: usize = 256;

#[derive(Default)]
pub(crate) struct Order {
    heads: VecDeque<String>,
    blocks: VecDeque<String>,
    finalized_epoch: Option<u64>,
    /// The highest slot of a head or block delivered.
    pub(crate) last_slot: Option<u64>,
}

/// A decimal quantity as the Beacon API writes it (a string), or a number.
pub(crate) fn quantity(v: &Value) -> Option<u64> {
    match v {
        Value::String(s) => s.parse().ok(),
        v => v.as_u64(),
    }
}

impl Order {
    /// Whether the event is new (then it counts as delivered).
    pub(crate) fn admit(&mut self, topic: &str, data: &[u8]) -> bool {
        if !matches!(topic, "head" | "block" | "finalized_checkpoint") {
            return true;
        }
        let Ok(v) = serde_json::from_slice::<Value>(data) else {
            return true;
        };
        match topic {
            "finalized_checkpoint" => {
                let Some(epoch) = quantity(&v["epoch"]) else {
                    return true;
                };
                if self.finalized_epoch.is_some_and(|e| epoch <= e) {
                    return false;
                }
                self.finalized_epoch = Some(epoch);
                true
            }
            _ => {
                let (Some(slot), Some(root)) = (quantity(&v["slot"]), v["block"].as_str()) else {
                    return true;
                };
                let recent = if topic == "head" {
                    &mut self.heads
                } else {
                    &mut self.blocks
                };
                if recent.iter().any(|r| r == root) {
                    return false;
                }
                if recent.len() == RECENT {
                    recent.pop_front();
                }
                recent.push_back(root.to_string());
                self.last_slot = Some(self.last_slot.map_or(slot, |l| l.max(slot)));
                true
            }
        }
    }

    pub(crate) fn finalized_epoch(&self) -> Option<u64> {
        self.finalized_epoch
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(slot: u64, root: &str) -> Vec<u8> {
        format!(r#"{{"slot":"{slot}","block":"{root}"}}"#).into_bytes()
    }

    #[test]
    fn a_repeated_root_or_epoch_is_not_delivered_twice() {
        let mut o = Order::default();
        assert!(o.admit("head", &head(5, "0xa")));
        assert!(o.admit("block", &head(5, "0xa")), "topics are apart");
        assert!(!o.admit("head", &head(5, "0xa")));
        assert!(o.admit("head", &head(6, "0xb")));
        assert!(!o.admit("head", &head(5, "0xa")), "a slower node repeats");
        assert!(o.admit("head", &head(6, "0xc")), "a competing block");
        assert_eq!(o.last_slot, Some(6));
        assert!(o.admit("finalized_checkpoint", br#"{"epoch":"2"}"#));
        assert!(!o.admit("finalized_checkpoint", br#"{"epoch":"2"}"#));
        assert!(!o.admit("finalized_checkpoint", br#"{"epoch":"1"}"#));
        assert!(o.admit("chain_reorg", b"{}"));
        assert!(o.admit("chain_reorg", b"{}"), "other topics pass");
    }
}
