//! The beacon networks in `/status` and `/metrics`: what their health loops
//! last published, read at request or scrape time (nothing is counted on
//! the request path).

use std::sync::atomic::Ordering;

use serde_json::{json, Value};

use super::Gateway;
use crate::beacon::events::Counts as EventCounts;
use crate::beacon::SendCounts;
use crate::metrics::state::{self, Scrape};

/// `beacon_networks` of the status document.
pub(super) fn status(gateway: &Gateway) -> Value {
    let mut out = serde_json::Map::new();
    let mut names: Vec<&String> = gateway.beacon().by_name.keys().collect();
    names.sort();
    for name in names {
        let net = &gateway.beacon().by_name[name];
        let snap = net.snapshot();
        let nodes: Vec<Value> = snap
            .nodes
            .iter()
            .map(|v| {
                let r = &v.reading;
                json!({
                    "name": v.node.name,
                    "eligible": v.eligible(),
                    "reason": v.ineligible.map(|i| i.label()),
                    "reachable": r.reachable,
                    "head_slot": r.head_slot,
                    "head_root": r.head_root,
                    "lag": v.lag,
                    "syncing": r.syncing,
                    "optimistic": r.optimistic,
                    "el_offline": r.el_offline,
                    "last_error": r.error,
                    "served": v.node.served.load(Ordering::Relaxed),
                })
            })
            .collect();
        out.insert(
            name.clone(),
            json!({
                "listen": net.config.listen.map(|a| a.to_string()),
                "agreed_slot": snap.agreed_slot,
                "genesis_validators_root": snap.genesis,
                "eligible": snap.eligible().count(),
                "ready_required": net.ready_required(),
                "nodes": nodes,
            }),
        );
    }
    Value::Object(out)
}

/// The beacon families of a scrape.
pub(super) fn read_state(gateway: &Gateway, out: &mut Scrape) {
    let mut names: Vec<&String> = gateway.beacon().by_name.keys().collect();
    names.sort();
    for name in names {
        let snap = gateway.beacon().by_name[name].snapshot();
        for v in &snap.nodes {
            let labels = [name.as_str(), v.node.name.as_str()];
            if let Some(slot) = v.reading.head_slot {
                out.sample(&state::BEACON_NODE_SLOT, &labels, slot as f64);
            }
            out.sample(&state::BEACON_NODE_LAG_SLOTS, &labels, v.lag as f64);
            let flag = |b: bool| f64::from(u8::from(b));
            out.sample(
                &state::BEACON_NODE_OPTIMISTIC,
                &labels,
                flag(v.reading.optimistic),
            );
            out.sample(
                &state::BEACON_NODE_SYNCING,
                &labels,
                flag(v.reading.syncing),
            );
            out.sample(&state::BEACON_NODE_ELIGIBLE, &labels, flag(v.eligible()));
            let served = v.node.served.load(Ordering::Relaxed) as f64;
            out.sample(&state::BEACON_NODE_SERVED_TOTAL, &labels, served);
            for (kind, counts) in [
                ("publish", &v.node.publishes),
                ("subscribe", &v.node.subscriptions),
            ] {
                sends(out, &labels, kind, counts);
            }
        }
        let labels = [name.as_str()];
        if let Some(slot) = snap.agreed_slot {
            out.sample(&state::BEACON_AGREED_SLOT, &labels, slot as f64);
        }
        let eligible = snap.eligible().count() as f64;
        out.sample(&state::BEACON_ELIGIBLE_NODES, &labels, eligible);
        events(out, &labels, &gateway.beacon().by_name[name].events.counts);
    }
}

fn sends(out: &mut Scrape, node: &[&str; 2], kind: &str, counts: &SendCounts) {
    for (outcome, n) in [
        ("accepted", &counts.accepted),
        ("refused", &counts.refused),
        ("failed", &counts.failed),
    ] {
        let labels = [node[0], node[1], kind, outcome];
        out.sample(
            &state::BEACON_SENDS_TOTAL,
            &labels,
            n.load(Ordering::Relaxed) as f64,
        );
    }
}

/// The event stream families of one network.
fn events(out: &mut Scrape, labels: &[&str; 1], counts: &EventCounts) {
    let n = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed) as f64;
    let streams = counts.clients.load(Ordering::Relaxed) as f64;
    out.sample(&state::BEACON_EVENT_STREAMS, labels, streams);
    let upstreams = counts.upstreams.load(Ordering::Relaxed) as f64;
    out.sample(&state::BEACON_EVENT_UPSTREAMS, labels, upstreams);
    out.sample(&state::BEACON_EVENT_MOVES_TOTAL, labels, n(&counts.moves));
    out.sample(
        &state::BEACON_EVENTS_DELIVERED_TOTAL,
        labels,
        n(&counts.delivered),
    );
    out.sample(
        &state::BEACON_EVENTS_DROPPED_TOTAL,
        labels,
        n(&counts.dropped),
    );
    out.sample(
        &state::BEACON_EVENT_CLIENTS_CUT_TOTAL,
        labels,
        n(&counts.cut),
    );
    out.sample(
        &state::BEACON_EVENTS_FILLED_TOTAL,
        labels,
        n(&counts.filled),
    );
}
