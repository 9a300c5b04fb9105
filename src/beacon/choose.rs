//! Which eligible nodes may answer a request, from the snapshot alone.
//!
//! - A read naming `head` goes only to nodes at the **served head**: the
//!   agreed slot and the root most eligible nodes at it hold (the first seen
//!   on a tie). A node one block behind would answer with an older head,
//!   and a node on another fork with another chain. Nor does it go to a node
//!   behind what this client was served last ([`HeadFloors`], per client as
//!   the JSON-RPC side keys them: `c:<name>` or `ip:<addr>`): when the
//!   served head goes back (the node that held it died), a client that has
//!   seen slot N is answered only by nodes at N or above, or told to come
//!   back (503) rather than shown the chain going backwards.
//! - A read naming a slot goes to the nodes whose head reached it (all
//!   eligible nodes if none did: the slot is in the future and every node
//!   says so the same way).
//! - A root, `finalized`, `justified`, `genesis` or no id: any eligible node
//!   (a node that lacks a root says 404 and another is asked, see
//!   [`super::proxy`]).
//! - Block production: the healthiest first, by highest head, then lowest
//!   mean latency ([`by_health`]).

use std::cmp::Reverse;

use dashmap::DashMap;

use super::health::{NodeView, Snapshot};
use super::paths::Pin;

/// The served head: its slot and root.
pub(super) fn served_head(s: &Snapshot) -> Option<(u64, &str)> {
    let slot = s.agreed_slot?;
    let mut roots: Vec<(&str, usize)> = Vec::new();
    for root in s
        .eligible()
        .filter(|v| v.reading.head_slot == Some(slot))
        .filter_map(|v| v.reading.head_root.as_deref())
    {
        match roots.iter_mut().find(|(r, _)| *r == root) {
            Some((_, n)) => *n += 1,
            None => roots.push((root, 1)),
        }
    }
    let best = roots.iter().map(|(_, n)| *n).max()?;
    roots
        .into_iter()
        .find(|(_, n)| *n == best)
        .map(|(r, _)| (slot, r))
}

/// The eligible nodes that may answer a read naming `pin`, for a client
/// last served the head at `floor` (empty: none may, for now).
pub(super) fn for_read(s: &Snapshot, pin: Pin, floor: Option<u64>) -> Vec<&NodeView> {
    match pin {
        Pin::Head => {
            let floor = floor.unwrap_or(0);
            let reached = |v: &&NodeView| v.reading.head_slot.is_some_and(|h| h >= floor);
            match served_head(s) {
                Some((slot, root)) if slot >= floor => s
                    .eligible()
                    .filter(|v| v.reading.head_root.as_deref() == Some(root))
                    .collect(),
                // The served head went back below what this client saw:
                // only nodes still at or above it.
                _ => s.eligible().filter(reached).collect(),
            }
        }
        Pin::Slot(slot) => {
            let have: Vec<&NodeView> = s
                .eligible()
                .filter(|v| v.reading.head_slot.is_some_and(|h| h >= slot))
                .collect();
            if have.is_empty() {
                s.eligible().collect()
            } else {
                have
            }
        }
        Pin::Root | Pin::Any => s.eligible().collect(),
    }
}

/// The eligible nodes, healthiest first: highest head, then lowest latency.
pub(super) fn by_health(s: &Snapshot) -> Vec<&NodeView> {
    let mut nodes: Vec<&NodeView> = s.eligible().collect();
    nodes.sort_by_key(|v| (Reverse(v.reading.head_slot), v.node.latency()));
    nodes
}

/// The head slot each client was last served, so a `head` read never goes
/// back for it. Bounded: past `max_entries`, the clients whose floor is
/// below the served head (they constrain nothing now) are forgotten first.
pub(super) struct HeadFloors {
    by_client: DashMap<String, u64>,
    max_entries: usize,
}

impl HeadFloors {
    pub(super) fn new(max_entries: usize) -> HeadFloors {
        HeadFloors {
            by_client: DashMap::new(),
            max_entries,
        }
    }

    pub(super) fn floor(&self, client: &str) -> Option<u64> {
        self.by_client.get(client).map(|f| *f)
    }

    /// `client` was answered by a node whose head was at `slot`.
    pub(super) fn served(&self, client: &str, slot: u64, served_slot: Option<u64>) {
        if let Some(mut f) = self.by_client.get_mut(client) {
            *f = (*f).max(slot);
            return;
        }
        if self.by_client.len() >= self.max_entries {
            let below = served_slot.unwrap_or(u64::MAX);
            self.by_client.retain(|_, f| *f >= below);
            if self.by_client.len() >= self.max_entries {
                // All at the served head: any may go, each is re-learnt at its next read.
                self.by_client.clear();
            }
        }
        self.by_client.insert(client.to_string(), slot);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::beacon::judge::NodeReading;
    use crate::beacon::node::Node;
    use crate::config::BeaconNodeConfig;

    fn view(name: &str, slot: u64, root: &str, eligible: bool) -> NodeView {
        let config = BeaconNodeConfig {
            name: name.into(),
            http: "http://127.0.0.1:9".parse().unwrap(),
        };
        NodeView {
            node: Arc::new(Node::new(&config, std::time::Duration::from_secs(1), 1024)),
            reading: NodeReading {
                reachable: true,
                head_slot: Some(slot),
                head_root: Some(root.into()),
                ..NodeReading::default()
            },
            ineligible: (!eligible).then_some(super::super::judge::Ineligible::Behind),
            lag: 0,
        }
    }

    fn snapshot(nodes: Vec<NodeView>, agreed: u64) -> Snapshot {
        Snapshot {
            nodes,
            agreed_slot: Some(agreed),
            genesis: None,
            round: 1,
            finalized_slot: None,
            genesis_time: None,
            seconds_per_slot: None,
        }
    }

    fn names(v: Vec<&NodeView>) -> Vec<String> {
        v.into_iter().map(|v| v.node.name.clone()).collect()
    }

    #[test]
    fn head_reads_go_to_nodes_at_the_served_head_by_root() {
        let s = snapshot(
            vec![
                view("a", 10, "0xaa", true),
                view("b", 9, "0x99", true),
                view("c", 10, "0xaa", true),
                view("d", 10, "0xfork", true),
                view("e", 10, "0xaa", false),
            ],
            10,
        );
        assert_eq!(served_head(&s), Some((10, "0xaa")));
        assert_eq!(names(for_read(&s, Pin::Head, None)), ["a", "c"]);
        assert_eq!(names(for_read(&s, Pin::Head, Some(10))), ["a", "c"]);
        assert_eq!(names(for_read(&s, Pin::Slot(10), None)), ["a", "c", "d"]);
        assert_eq!(
            names(for_read(&s, Pin::Slot(9), None)),
            ["a", "b", "c", "d"]
        );
        assert_eq!(names(for_read(&s, Pin::Slot(50), None)).len(), 4);
        assert_eq!(names(for_read(&s, Pin::Root, None)).len(), 4);
    }

    #[test]
    fn a_client_is_never_served_a_head_behind_the_last_one() {
        // The node at 12 died: the served head went back to 11.
        let s = snapshot(
            vec![view("a", 11, "0xbb", true), view("b", 11, "0xbb", true)],
            11,
        );
        assert_eq!(
            names(for_read(&s, Pin::Head, Some(12))),
            Vec::<String>::new()
        );
        let s = snapshot(
            vec![view("a", 11, "0xbb", true), view("b", 12, "0xcc", true)],
            11,
        );
        assert_eq!(names(for_read(&s, Pin::Head, Some(12))), ["b"]);
        assert_eq!(names(for_read(&s, Pin::Head, Some(11))), ["a"]);
    }

    #[test]
    fn floors_rise_and_stay_bounded() {
        let f = HeadFloors::new(2);
        f.served("c:a", 5, Some(5));
        f.served("c:a", 4, Some(5));
        assert_eq!(f.floor("c:a"), Some(5));
        f.served("c:b", 6, Some(6));
        // Full: "c:a" (5, below the served head 6) goes.
        f.served("c:c", 6, Some(6));
        assert_eq!(f.floor("c:a"), None);
        assert_eq!(f.floor("c:b"), Some(6));
        assert_eq!(f.floor("c:c"), Some(6));
    }

    #[test]
    fn production_prefers_the_highest_head() {
        let s = snapshot(
            vec![
                view("a", 9, "0x1", true),
                view("b", 10, "0x2", true),
                view("c", 10, "0x2", false),
            ],
            10,
        );
        assert_eq!(names(by_health(&s)), ["b", "a"]);
    }
}
