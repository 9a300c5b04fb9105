//! One shared stream: the task that keeps a topic set's stream open on
//! one eligible node, moves it when that node fails, stops being eligible
//! or falls behind, and hands every event once to the clients' broadcast
//! ring.
//!
//! A move opens the new node's stream first and then fills the gap from
//! its REST API ([`super::fill`]), so that nothing that happens during the
//! fill is missed; [`super::order`] drops what the clients already had.
//! "Behind", for a set with `head`: the head the source streamed is more
//! than `max_lag_slots` + 1 under the head the nodes agree on (a stalled
//! stream from a node whose REST API still answers). The task ends when its
//! last client has gone (checked under the streams' lock, so that a client
//! joining at that moment gets a new stream rather than a dying one).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use serde_json::Value;
use tokio::sync::{broadcast, watch};

use super::heads::SseHead;
use super::order::{quantity, Order};
use super::sse::{self, Connected, Upstream};
use super::topics::Topics;
use super::{fill, Counts, Events, MAX_EVENT_BYTES};
use crate::beacon::node::Node;

/// Pause before asking again when no node could give the stream.
const RETRY: Duration = Duration::from_millis(250);
/// How often the source's standing and the clients are checked.
const CHECK: Duration = Duration::from_millis(250);

/// Where a shared stream stands, for clients that join it.
#[derive(Debug, Clone)]
pub(super) enum Phase {
    /// Opening its first stream.
    Connecting,
    Live,
    /// Between two nodes: clients stay, events follow.
    Moving,
    /// No node is eligible to give a first stream.
    NoNode,
    /// A node refused the topics (its words): the stream ends.
    Refused(String),
}

pub(super) struct Shared {
    tx: broadcast::Sender<Bytes>,
    phase: watch::Sender<Phase>,
    source: Mutex<Option<String>>,
}

impl Shared {
    pub(super) fn subscribe(&self) -> broadcast::Receiver<Bytes> {
        self.tx.subscribe()
    }

    pub(super) fn phase(&self) -> watch::Receiver<Phase> {
        self.phase.subscribe()
    }

    /// The node the stream comes from now.
    pub(super) fn source(&self) -> Option<String> {
        self.source.lock().clone()
    }
}

/// Starts the task of a new topic set (called under the streams' lock).
pub(super) fn start(hub: Arc<Events>, topics: Topics, capacity: usize) -> Arc<Shared> {
    let (tx, _) = broadcast::channel(capacity);
    let shared = Arc::new(Shared {
        tx,
        phase: watch::Sender::new(Phase::Connecting),
        source: Mutex::new(None),
    });
    tokio::spawn(run(hub, topics, shared.clone()));
    shared
}

/// Counts an open upstream stream while it lives.
struct Open(Arc<Counts>);

impl Open {
    fn new(counts: &Arc<Counts>) -> Open {
        counts.upstreams.fetch_add(1, Ordering::Relaxed);
        Open(counts.clone())
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.0.upstreams.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Removes the stream from the hub if no client holds it; whether it did.
fn leave(hub: &Events, key: &str, shared: &Arc<Shared>, always: bool) -> bool {
    let mut streams = hub.streams.lock();
    if !always && shared.tx.receiver_count() > 0 {
        return false;
    }
    if streams.get(key).is_some_and(|s| Arc::ptr_eq(s, shared)) {
        streams.remove(key);
    }
    true
}

/// An eligible node, another than `avoid` when there is one.
fn pick(hub: &Events, avoid: Option<usize>) -> Option<(usize, Arc<Node>)> {
    let snap = hub.snapshot.load();
    let eligible: Vec<usize> = (0..snap.nodes.len())
        .filter(|i| snap.nodes[*i].eligible())
        .collect();
    let i = eligible
        .iter()
        .find(|i| Some(**i) != avoid)
        .or(eligible.first())?;
    Some((*i, snap.nodes[*i].node.clone()))
}

async fn slots_per_epoch(hub: &Events, node: &Node) -> u64 {
    if let Some(spe) = hub.slots_per_epoch.get() {
        return *spe;
    }
    match node.get_data("/eth/v1/config/spec").await {
        Ok(spec) => match quantity(&spec["SLOTS_PER_EPOCH"]) {
            Some(spe) => *hub.slots_per_epoch.get_or_init(|| spe),
            None => 32,
        },
        Err(_) => 32,
    }
}

async fn run(hub: Arc<Events>, topics: Topics, shared: Arc<Shared>) {
    let key = topics.key();
    let query = topics.query();
    let mut order = Order::default();
    let mut avoid: Option<usize> = None;
    let mut was_live = false;
    let mut closing = hub.closing.subscribe();
    let network = hub.network.clone();
    loop {
        if *closing.borrow() {
            break;
        }
        if shared.tx.receiver_count() == 0 && leave(&hub, &key, &shared, false) {
            return;
        }
        let Some((index, node)) = pick(&hub, avoid) else {
            if !was_live {
                shared.phase.send_replace(Phase::NoNode);
            }
            tokio::time::sleep(RETRY).await;
            continue;
        };
        let Some(base) = hub.bases.get(index) else {
            break;
        };
        let up = match sse::connect(
            &hub.client,
            base,
            &query,
            hub.request_timeout,
            MAX_EVENT_BYTES,
        )
        .await
        {
            Connected::Open(up) => up,
            Connected::Refused(why) if !was_live => {
                leave(&hub, &key, &shared, true);
                shared.phase.send_replace(Phase::Refused(why));
                return;
            }
            Connected::Refused(why) | Connected::Failed(why) => {
                tracing::warn!(%network, topics = %key, node = %node.name, error = %why, "beacon event stream: cannot open");
                avoid = Some(index);
                tokio::time::sleep(RETRY).await;
                continue;
            }
        };
        let open = Open::new(&hub.counts);
        if was_live {
            hub.counts.moves.fetch_add(1, Ordering::Relaxed);
            let spe = slots_per_epoch(&hub, &node).await;
            match fill::fill(
                &node,
                &topics,
                order.last_slot,
                order.finalized_epoch(),
                spe,
            )
            .await
            {
                Ok(events) => {
                    for e in events {
                        if order.admit(&e.topic, &e.data) {
                            hub.counts.filled.fetch_add(1, Ordering::Relaxed);
                            let _ = shared.tx.send(e.frame());
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(%network, topics = %key, node = %node.name, error = %e, "beacon event stream: gap fill failed; trying another node");
                    avoid = Some(index);
                    continue;
                }
            }
        }
        was_live = true;
        *shared.source.lock() = Some(node.name.clone());
        shared.phase.send_replace(Phase::Live);
        tracing::info!(%network, topics = %key, node = %node.name, "beacon event stream open");
        let why = pump(&hub, &shared, &topics, &mut order, up, index, &mut closing).await;
        drop(open);
        *shared.source.lock() = None;
        shared.phase.send_replace(Phase::Moving);
        tracing::info!(%network, topics = %key, node = %node.name, reason = %why, "beacon event stream leaves its node");
        avoid = Some(index);
    }
    leave(&hub, &key, &shared, true);
}

/// Passes the source's events on until it should move; why it should.
async fn pump(
    hub: &Events,
    shared: &Shared,
    topics: &Topics,
    order: &mut Order,
    mut up: Upstream,
    index: usize,
    closing: &mut watch::Receiver<bool>,
) -> String {
    let mut check = tokio::time::interval(CHECK);
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut streamed_head: Option<u64> = None;
    loop {
        tokio::select! {
            next = up.next() => match next {
                Err(why) => return why,
                Ok(events) => for e in events {
                    if e.topic == "head" {
                        if let Some(h) = head_of(&e.data) {
                            streamed_head = Some(streamed_head.map_or(h.slot, |s| s.max(h.slot)));
                            hub.heads.record(index, h);
                        }
                    }
                    if order.admit(&e.topic, &e.data) {
                        // No receiver now: the next check ends the stream.
                        let _ = shared.tx.send(e.frame());
                    }
                },
            },
            _ = check.tick() => {
                if shared.tx.receiver_count() == 0 {
                    return "no clients left".into();
                }
                let snap = hub.snapshot.load();
                let Some(view) = snap.nodes.get(index) else {
                    return "the node is gone".into();
                };
                if let Some(why) = &view.ineligible {
                    return format!("not eligible: {why:?}");
                }
                if topics.has("head") {
                    let head = streamed_head.or(view.reading.head_slot);
                    if let (Some(agreed), Some(head)) = (snap.agreed_slot, head) {
                        if agreed > head + hub.max_lag_slots + 1 {
                            return format!("its stream is behind: head {head}, agreed {agreed}");
                        }
                    }
                }
            },
            _ = closing.wait_for(|c| *c) => return "the gateway is closing".into(),
        }
    }
}

fn head_of(data: &[u8]) -> Option<SseHead> {
    let v: Value = serde_json::from_slice(data).ok()?;
    Some(SseHead {
        slot: quantity(&v["slot"])?,
        root: v["block"].as_str()?.to_string(),
    })
}
