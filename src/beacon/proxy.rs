//! How a request is sent: a read to one of the nodes that may answer it, a
//! block production to the healthiest node, a publish to every eligible
//! node, a subscription to every node. Which nodes may answer is decided
//! before ([`super::choose`]).
//!
//! Reads take their candidates in round-robin order from a shared
//! counter (no lock); a transport failure or a 5xx moves on to the next
//! candidate (reads are idempotent), and a 404 (a slot or root this
//! node does not have yet) is asked once of another. Block production is
//! a read too, but one whose answer is only worth anything within its
//! slot: it goes to the healthiest node first and to the next only while
//! the wall clock is still in the slot asked for (after it, the block
//! could not be published in time, and a second node's work is wasted). A publish goes to
//! the first eligible node, and once that node accepted it, to every other
//! eligible node in the background (counted per node): sent to all at once,
//! each node would also hear the item over gossip from the others, and a
//! node answers an item it already has as a failure (Lodestar's
//! `PublishError.Duplicate` in a 500), so every node could refuse what the
//! network already holds. When the first node does not accept, the others
//! are asked at once and the caller is answered by the first that accepts.
//! Subscriptions are node-local (no gossip): they go to every node at once.
//! Nothing is sent twice to the same node: a node that refused keeps its
//! answer.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};
use tokio::sync::mpsc;

use super::health::{NodeView, Snapshot};
use super::node::{Node, Outgoing, Reply};
use super::BeaconError;

/// A request as every send of a fan-out needs it (owned: sends outlive the caller).
#[derive(Clone)]
pub(super) struct Owned {
    pub method: Method,
    pub path_and_query: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Owned {
    fn outgoing(&self) -> Outgoing<'_> {
        Outgoing {
            method: &self.method,
            path_and_query: &self.path_and_query,
            headers: &self.headers,
            body: self.body.clone(),
        }
    }
}

/// A read: one of `nodes` in turn, the next on failure, one more on a 404.
/// Answers with the reply and the view of the node that gave it.
pub(super) async fn read<'s>(
    nodes: &[&'s NodeView],
    turn: &AtomicUsize,
    req: &Owned,
) -> Result<(Reply, &'s NodeView), BeaconError> {
    if nodes.is_empty() {
        return Err(BeaconError::NoEligibleNode);
    }
    let start = turn.fetch_add(1, Ordering::Relaxed);
    let order = (0..nodes.len()).filter_map(|i| nodes.get((start + i) % nodes.len()));
    let mut not_found: Option<(Reply, &NodeView)> = None;
    let mut failure: Option<Result<(Reply, &NodeView), BeaconError>> = None;
    for view in order {
        match view.node.send(req.outgoing()).await {
            Ok(r) if r.status == StatusCode::NOT_FOUND => match not_found {
                // The one retry of a 404 said 404 too: the chain lacks it.
                Some(_) => return Ok((r, view)),
                None => not_found = Some((r, view)),
            },
            Ok(r) if !r.status.is_server_error() => return Ok((r, view)),
            other => {
                if not_found.is_some() {
                    break;
                }
                failure = Some(other.map(|r| (r, *view)));
            }
        }
    }
    match not_found {
        Some(answer) => Ok(answer),
        None => failure.unwrap_or(Err(BeaconError::NoEligibleNode)),
    }
}

/// Whether the wall clock is still within `slot` (unknown timing: no).
pub(super) fn within_slot(snapshot: &Snapshot, slot: u64, now: SystemTime) -> bool {
    let (Some(genesis), Some(per)) = (snapshot.genesis_time, snapshot.seconds_per_slot) else {
        return false;
    };
    let Ok(now) = now.duration_since(UNIX_EPOCH) else {
        return false;
    };
    let end = slot
        .saturating_add(1)
        .saturating_mul(per)
        .saturating_add(genesis);
    now.as_secs() < end
}

/// Block production for `slot`: `nodes` healthiest first; the next one
/// only after a failure (transport or 5xx) and while the slot lasts.
pub(super) async fn produce(
    snapshot: &Snapshot,
    nodes: &[&NodeView],
    slot: Option<u64>,
    req: &Owned,
) -> Result<Reply, BeaconError> {
    let mut last = Err(BeaconError::NoEligibleNode);
    for (i, view) in nodes.iter().enumerate() {
        let may_retry = |now| slot.is_some_and(|s| within_slot(snapshot, s, now));
        if i > 0 && !may_retry(SystemTime::now()) {
            break;
        }
        match view.node.send(req.outgoing()).await {
            Ok(r) if !r.status.is_server_error() => return Ok(r),
            other => last = other,
        }
    }
    last
}

/// Which send a fan-out counts in.
#[derive(Clone, Copy)]
pub(super) enum FanOut {
    Publish,
    Subscribe,
}

/// Sends `req` to each of `nodes`; answers with the first success, else
/// (all done) the first node's refusal or error. A publish asks the first
/// node alone before the others (see the module doc).
pub(super) async fn fan_out(
    mut nodes: Vec<Arc<Node>>,
    req: Owned,
    kind: FanOut,
) -> Result<Reply, BeaconError> {
    if nodes.is_empty() {
        return Err(BeaconError::NoEligibleNode);
    }
    let req = Arc::new(req);
    let mut first_failure: Option<Result<Reply, BeaconError>> = None;
    if let FanOut::Publish = kind {
        let first = nodes.remove(0);
        let answer = first.send(req.outgoing()).await;
        first.publishes.count(&answer);
        match answer {
            Ok(r) if r.status.is_success() => {
                for node in nodes {
                    let req = req.clone();
                    tokio::spawn(async move {
                        let answer = node.send(req.outgoing()).await;
                        node.publishes.count(&answer);
                    });
                }
                return Ok(r);
            }
            other => first_failure = Some(other),
        }
        if nodes.is_empty() {
            return first_failure.unwrap_or(Err(BeaconError::NoEligibleNode));
        }
    }
    let (tx, mut rx) = mpsc::channel(nodes.len());
    for node in nodes {
        let (tx, req) = (tx.clone(), req.clone());
        tokio::spawn(async move {
            let answer = node.send(req.outgoing()).await;
            let counts = match kind {
                FanOut::Publish => &node.publishes,
                FanOut::Subscribe => &node.subscriptions,
            };
            counts.count(&answer);
            // The caller may be answered already: the send is counted all the same.
            let _ = tx.send(answer).await;
        });
    }
    drop(tx);
    while let Some(answer) = rx.recv().await {
        match answer {
            Ok(r) if r.status.is_success() => return Ok(r),
            // A node's refusal (400: invalid) says more than a transport error.
            Ok(r) if !matches!(&first_failure, Some(Ok(_))) => first_failure = Some(Ok(r)),
            other if first_failure.is_none() => first_failure = Some(other),
            _ => {}
        }
    }
    first_failure.unwrap_or(Err(BeaconError::NoEligibleNode))
}
