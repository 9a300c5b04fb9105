//! Where a request goes: a read to one eligible node, a publish to every
//! eligible node, a subscription to every node.
//!
//! Reads take the eligible nodes in round-robin order from a shared
//! counter (no lock); a transport failure or a 5xx moves on to the next
//! eligible node (reads are idempotent), and a 404 (a slot or root this
//! node does not have yet) is asked once of another. A publish is sent to
//! every eligible node at once, each send in a task of its own: the caller
//! is answered by the first node that accepts, the others finish in the
//! background and are counted per node. A publish is never sent twice to
//! the same node: a node that refused it keeps its answer.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};
use tokio::sync::mpsc;

use super::health::Snapshot;
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

/// A read: one eligible node, the next on failure, one more on a 404.
pub(super) async fn read(
    snapshot: &Snapshot,
    turn: &AtomicUsize,
    req: &Owned,
) -> Result<Reply, BeaconError> {
    let eligible: Vec<&Arc<Node>> = snapshot.eligible().map(|v| &v.node).collect();
    if eligible.is_empty() {
        return Err(BeaconError::NoEligibleNode);
    }
    let start = turn.fetch_add(1, Ordering::Relaxed);
    let mut not_found: Option<Reply> = None;
    let mut failure: Option<Result<Reply, BeaconError>> = None;
    for i in 0..eligible.len() {
        let node = eligible[(start + i) % eligible.len()];
        match node.send(req.outgoing()).await {
            Ok(r) if r.status == StatusCode::NOT_FOUND => match not_found {
                // The one retry of a 404 said 404 too: the chain lacks it.
                Some(_) => return Ok(r),
                None => not_found = Some(r),
            },
            Ok(r) if !r.status.is_server_error() => return Ok(r),
            other => {
                if not_found.is_some() {
                    break;
                }
                failure = Some(other);
            }
        }
    }
    match not_found {
        Some(r) => Ok(r),
        None => failure.unwrap_or(Err(BeaconError::NoEligibleNode)),
    }
}

/// Which send a fan-out counts in.
#[derive(Clone, Copy)]
pub(super) enum FanOut {
    Publish,
    Subscribe,
}

/// Sends `req` to each of `nodes` in tasks of their own; answers with the
/// first success, else (all done) the first node's refusal or error.
pub(super) async fn fan_out(
    nodes: Vec<Arc<Node>>,
    req: Owned,
    kind: FanOut,
) -> Result<Reply, BeaconError> {
    if nodes.is_empty() {
        return Err(BeaconError::NoEligibleNode);
    }
    let (tx, mut rx) = mpsc::channel(nodes.len());
    let req = Arc::new(req);
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
    let mut first_failure: Option<Result<Reply, BeaconError>> = None;
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
