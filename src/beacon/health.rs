//! The health loop of one beacon network: it reads every node each
//! `poll_interval`, judges them together ([`super::judge`]) and publishes
//! the result as an immutable [`Snapshot`] that requests read without a
//! lock.
//!
//! Per node and round: `/eth/v1/node/syncing` (`is_syncing`,
//! `is_optimistic`, `el_offline` when the node has it), the head from the
//! node's own `head` events when an event stream of the gateway comes from
//! it and its last head event is at most two slots old
//! ([`super::events::heads`]), else from `/eth/v1/beacon/headers/head`
//! (slot and root), and once, until read,
//! `/eth/v1/beacon/genesis` (the root every node must share and the
//! genesis time) and `SECONDS_PER_SLOT` from `/eth/v1/config/spec` (the
//! wall clock a head may not pass). The finalized block's slot
//! (`/eth/v1/beacon/headers/finalized`) is read too, without a verdict of
//! its own: the cache keeps a header or block by root once it is final. A node that becomes eligible is handed
//! to the replay of subscriptions before the next round.

use std::sync::Arc;

use arc_swap::ArcSwap;
use futures_util::future::join_all;
use serde_json::Value;

use super::events::heads::{Heads, SseHead};
use super::judge::{self, Ineligible, NodeReading};
use super::node::Node;
use super::BeaconError;

/// One node in a snapshot.
pub struct NodeView {
    pub node: Arc<Node>,
    pub reading: NodeReading,
    pub ineligible: Option<Ineligible>,
    /// Slots behind the agreed head (0 when at or past it, or unknown).
    pub lag: u64,
}

impl NodeView {
    pub fn eligible(&self) -> bool {
        self.ineligible.is_none()
    }
}

/// One round's verdicts, published whole.
pub struct Snapshot {
    pub nodes: Vec<NodeView>,
    pub agreed_slot: Option<u64>,
    pub genesis: Option<String>,
    /// Rounds done (0: none yet), so a caller can wait for a fresh one.
    pub round: u64,
    /// The lowest finalized slot among eligible nodes (final on all of them).
    pub finalized_slot: Option<u64>,
    /// The chain's clock: block production is retried only within its slot.
    pub genesis_time: Option<u64>,
    pub seconds_per_slot: Option<u64>,
}

impl Snapshot {
    /// Before the first round: every node unjudged, none eligible.
    pub fn initial(nodes: &[Arc<Node>]) -> Snapshot {
        Snapshot {
            nodes: nodes
                .iter()
                .map(|n| NodeView {
                    node: n.clone(),
                    reading: NodeReading::default(),
                    ineligible: Some(Ineligible::Unreachable),
                    lag: 0,
                })
                .collect(),
            agreed_slot: None,
            genesis: None,
            round: 0,
            finalized_slot: None,
            genesis_time: None,
            seconds_per_slot: None,
        }
    }

    pub fn eligible(&self) -> impl Iterator<Item = &NodeView> {
        self.nodes.iter().filter(|n| n.eligible())
    }
}

/// A decimal quantity as the Beacon API writes it (a string), or a number.
fn quantity(v: &Value) -> Option<u64> {
    match v {
        Value::String(s) => s.parse().ok(),
        v => v.as_u64(),
    }
}

/// Reads one node for one round, keeping what is read once from `last`.
async fn read(node: &Node, last: &NodeReading, streamed: Option<SseHead>) -> NodeReading {
    let mut r = NodeReading {
        genesis: last.genesis.clone(),
        genesis_time: last.genesis_time,
        ..NodeReading::default()
    };
    let round = async {
        if r.genesis.is_none() {
            let g = node.get_data("/eth/v1/beacon/genesis").await?;
            r.genesis = g["genesis_validators_root"].as_str().map(str::to_string);
            r.genesis_time = quantity(&g["genesis_time"]);
        }
        let s = node.get_data("/eth/v1/node/syncing").await?;
        r.syncing = s["is_syncing"].as_bool().unwrap_or(true);
        r.optimistic = s["is_optimistic"].as_bool().unwrap_or(false);
        r.el_offline = s["el_offline"].as_bool().unwrap_or(false);
        r.head_slot = quantity(&s["head_slot"]);
        if let Some(head) = streamed {
            r.head_slot = Some(head.slot);
            r.head_root = Some(head.root);
            return Ok(());
        }
        let h = node.get_data("/eth/v1/beacon/headers/head").await?;
        if let Some(slot) = quantity(&h["header"]["message"]["slot"]) {
            r.head_slot = Some(slot);
        }
        r.head_root = h["root"].as_str().map(str::to_string);
        // Not a health verdict: a node that cannot say keeps nothing final.
        if let Ok(f) = node.get_data("/eth/v1/beacon/headers/finalized").await {
            r.finalized_slot = quantity(&f["header"]["message"]["slot"]);
        }
        Ok::<(), BeaconError>(())
    };
    match round.await {
        Ok(()) => r.reachable = true,
        Err(e) => r.error = Some(e.to_string()),
    }
    r
}

/// What the loop keeps between rounds.
pub struct Health {
    pub nodes: Vec<Arc<Node>>,
    pub max_lag_slots: u64,
    pub seconds_per_slot: Option<u64>,
    pub round: u64,
    /// The nodes' heads from their event streams.
    pub heads: Arc<Heads>,
}

impl Health {
    /// One round: read every node at once, judge, publish. Returns the
    /// nodes that became eligible in this round.
    pub async fn round(&mut self, published: &ArcSwap<Snapshot>) -> Vec<Arc<Node>> {
        let last = published.load_full();
        // A streamed head older than two slots (empty slots, a stalled
        // stream) is not trusted: the node is asked.
        let max_age = self
            .seconds_per_slot
            .map(|s| std::time::Duration::from_secs(2 * s));
        let reads = self
            .nodes
            .iter()
            .zip(&last.nodes)
            .enumerate()
            .map(|(i, (n, v))| {
                let streamed = max_age.and_then(|age| self.heads.fresh(i, age));
                read(n, &v.reading, streamed)
            });
        let readings: Vec<NodeReading> = join_all(reads).await;
        if self.seconds_per_slot.is_none() {
            self.seconds_per_slot = self.spec_seconds_per_slot(&readings).await;
        }
        let genesis_time = readings.iter().find_map(|r| r.genesis_time);
        let wall = judge::wall_slot(genesis_time, self.seconds_per_slot);
        let verdicts = judge::judge(&readings, self.max_lag_slots, wall);
        let agreed = verdicts.agreed_slot;
        self.round += 1;
        let finalized_slot = readings
            .iter()
            .zip(&verdicts.nodes)
            .filter(|(_, v)| v.is_none())
            .map(|(r, _)| r.finalized_slot)
            .min()
            .flatten();
        let nodes: Vec<NodeView> = self
            .nodes
            .iter()
            .zip(readings)
            .zip(verdicts.nodes)
            .map(|((node, reading), ineligible)| NodeView {
                lag: match (agreed, reading.head_slot) {
                    (Some(a), Some(s)) => a.saturating_sub(s),
                    _ => 0,
                },
                node: node.clone(),
                reading,
                ineligible,
            })
            .collect();
        let joined = nodes
            .iter()
            .zip(&last.nodes)
            .filter(|(now, before)| now.eligible() && !before.eligible())
            .map(|(now, _)| now.node.clone())
            .collect();
        published.store(Arc::new(Snapshot {
            nodes,
            agreed_slot: agreed,
            genesis: verdicts.genesis,
            round: self.round,
            finalized_slot,
            genesis_time,
            seconds_per_slot: self.seconds_per_slot,
        }));
        joined
    }

    /// `SECONDS_PER_SLOT` from the first reachable node's spec.
    async fn spec_seconds_per_slot(&self, readings: &[NodeReading]) -> Option<u64> {
        let node = self
            .nodes
            .iter()
            .zip(readings)
            .find(|(_, r)| r.reachable)?
            .0;
        let spec = node.get_data("/eth/v1/config/spec").await.ok()?;
        quantity(&spec["SECONDS_PER_SLOT"])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_are_strings_or_numbers() {
        assert_eq!(quantity(&Value::from("12")), Some(12));
        assert_eq!(quantity(&Value::from(12)), Some(12));
        assert_eq!(quantity(&Value::from("x")), None);
        assert_eq!(quantity(&Value::Null), None);
    }
}
