//! Which beacon nodes may serve: the agreed head and each node's verdict,
//! a pure function of what the health loop read, so it is tested alone.
//!
//! The agreed head must not follow one node: with three or more nodes it is
//! the highest slot a majority has reached (the `n/2 + 1`-th highest head),
//! so a single node racing ahead (or lying) neither becomes the reference
//! nor pushes the honest majority out as "behind". Two nodes cannot outvote
//! each other; there the higher head is the reference, but a head past the
//! wall-clock slot is never believed. The genesis every node must share is
//! the one most nodes report (the first seen on a tie).

use std::time::{SystemTime, UNIX_EPOCH};

/// One node as the health loop last read it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeReading {
    /// The last round of requests answered.
    pub reachable: bool,
    /// `genesis_validators_root`, once read.
    pub genesis: Option<String>,
    /// `genesis_time` (seconds since the epoch), with the root.
    pub genesis_time: Option<u64>,
    pub head_slot: Option<u64>,
    pub head_root: Option<String>,
    /// The slot of the node's finalized block, when it said.
    pub finalized_slot: Option<u64>,
    pub syncing: bool,
    pub optimistic: bool,
    /// `el_offline` when the node reports it (absent: taken as online).
    pub el_offline: bool,
    /// Why the last round failed, for `/status`.
    pub error: Option<String>,
}

/// Why a node serves nothing now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ineligible {
    Unreachable,
    NoGenesis,
    OtherGenesis,
    Syncing,
    Optimistic,
    ElOffline,
    NoHead,
    HeadInFuture,
    Behind,
}

impl Ineligible {
    pub fn label(self) -> &'static str {
        match self {
            Ineligible::Unreachable => "unreachable",
            Ineligible::NoGenesis => "genesis not read yet",
            Ineligible::OtherGenesis => "another genesis than the other nodes",
            Ineligible::Syncing => "syncing",
            Ineligible::Optimistic => "optimistic",
            Ineligible::ElOffline => "execution layer offline",
            Ineligible::NoHead => "head not read yet",
            Ineligible::HeadInFuture => "head past the wall-clock slot",
            Ineligible::Behind => "behind the agreed head",
        }
    }
}

/// The verdicts of one round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdicts {
    pub genesis: Option<String>,
    pub agreed_slot: Option<u64>,
    /// Per node, in the order of the readings.
    pub nodes: Vec<Option<Ineligible>>,
}

/// The current wall-clock slot of a chain, when its timing is known.
pub fn wall_slot(genesis_time: Option<u64>, seconds_per_slot: Option<u64>) -> Option<u64> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).ok()?.as_secs();
    let per = seconds_per_slot.filter(|s| *s > 0)?;
    Some(now.saturating_sub(genesis_time?) / per)
}

/// Judges every node of one round. `wall` is the wall-clock slot, when known.
pub fn judge(readings: &[NodeReading], max_lag_slots: u64, wall: Option<u64>) -> Verdicts {
    let genesis = majority_genesis(readings);
    // A head may be one slot past the wall clock: clocks differ a little.
    let believable = |slot: u64| wall.is_none_or(|w| slot <= w + 1);
    let first = |r: &NodeReading| -> Option<Ineligible> {
        if !r.reachable {
            return Some(Ineligible::Unreachable);
        }
        match (&r.genesis, &genesis) {
            (None, _) => return Some(Ineligible::NoGenesis),
            (Some(g), Some(m)) if g != m => return Some(Ineligible::OtherGenesis),
            _ => {}
        }
        if r.syncing {
            return Some(Ineligible::Syncing);
        }
        if r.optimistic {
            return Some(Ineligible::Optimistic);
        }
        if r.el_offline {
            return Some(Ineligible::ElOffline);
        }
        match r.head_slot {
            None => Some(Ineligible::NoHead),
            Some(s) if !believable(s) => Some(Ineligible::HeadInFuture),
            Some(_) => None,
        }
    };
    let mut nodes: Vec<Option<Ineligible>> = readings.iter().map(first).collect();
    let mut heads: Vec<u64> = readings
        .iter()
        .zip(&nodes)
        .filter(|(_, v)| v.is_none())
        .filter_map(|(r, _)| r.head_slot)
        .collect();
    heads.sort_unstable_by(|a, b| b.cmp(a));
    let agreed_slot = match heads.len() {
        0 => None,
        1 | 2 => heads.first().copied(),
        n => heads.get(n / 2).copied().or(heads.last().copied()),
    };
    if let Some(agreed) = agreed_slot {
        for (r, v) in readings.iter().zip(nodes.iter_mut()) {
            let behind = r.head_slot.is_some_and(|s| s + max_lag_slots < agreed);
            if v.is_none() && behind {
                *v = Some(Ineligible::Behind);
            }
        }
    }
    Verdicts {
        genesis,
        agreed_slot,
        nodes,
    }
}

/// The genesis root most reachable nodes report.
fn majority_genesis(readings: &[NodeReading]) -> Option<String> {
    let mut counts: Vec<(&String, usize)> = Vec::new();
    for g in readings.iter().filter_map(|r| r.genesis.as_ref()) {
        match counts.iter_mut().find(|(seen, _)| *seen == g) {
            Some((_, n)) => *n += 1,
            None => counts.push((g, 1)),
        }
    }
    let best = counts.iter().map(|(_, n)| *n).max()?;
    counts
        .into_iter()
        .find(|(_, n)| *n == best)
        .map(|(g, _)| g.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(slot: u64) -> NodeReading {
        NodeReading {
            reachable: true,
            genesis: Some("0xg".into()),
            head_slot: Some(slot),
            ..NodeReading::default()
        }
    }

    #[test]
    fn one_node_racing_ahead_does_not_set_the_agreed_head() {
        let v = judge(&[at(100), at(100), at(500)], 2, None);
        assert_eq!(v.agreed_slot, Some(100));
        assert_eq!(v.nodes, [None, None, None]);
        let v = judge(&[at(100), at(97), at(101)], 2, None);
        assert_eq!(v.agreed_slot, Some(100));
        assert_eq!(v.nodes, [None, Some(Ineligible::Behind), None]);
    }

    #[test]
    fn two_nodes_take_the_higher_head_but_not_one_past_the_wall_clock() {
        let v = judge(&[at(100), at(90)], 2, Some(100));
        assert_eq!(v.agreed_slot, Some(100));
        assert_eq!(v.nodes, [None, Some(Ineligible::Behind)]);
        let v = judge(&[at(100), at(900)], 2, Some(100));
        assert_eq!(v.agreed_slot, Some(100));
        assert_eq!(v.nodes, [None, Some(Ineligible::HeadInFuture)]);
    }

    #[test]
    fn unhealthy_nodes_are_named_and_do_not_vote() {
        let syncing = NodeReading {
            syncing: true,
            ..at(300)
        };
        let optimistic = NodeReading {
            optimistic: true,
            ..at(300)
        };
        let el = NodeReading {
            el_offline: true,
            ..at(300)
        };
        let other = NodeReading {
            genesis: Some("0xh".into()),
            ..at(300)
        };
        let down = NodeReading {
            reachable: false,
            ..at(300)
        };
        let v = judge(
            &[at(10), syncing, optimistic, el, other, down, at(10)],
            2,
            None,
        );
        assert_eq!(v.agreed_slot, Some(10));
        assert_eq!(v.genesis.as_deref(), Some("0xg"));
        assert_eq!(
            v.nodes,
            [
                None,
                Some(Ineligible::Syncing),
                Some(Ineligible::Optimistic),
                Some(Ineligible::ElOffline),
                Some(Ineligible::OtherGenesis),
                Some(Ineligible::Unreachable),
                None
            ]
        );
    }
}
