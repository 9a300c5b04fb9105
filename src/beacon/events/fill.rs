//! Filling the gap a move leaves: the blocks (and heads) a client would
//! have seen from the old node while the stream moved, read from the new
//! node's REST API (headers by slot), and its finalized checkpoint if it
//! moved on meanwhile.
//!
//! The new node's stream is opened first, so everything after the fill is
//! on it; the fill covers the slots after the last one delivered up to the
//! new node's head. Each filled slot gives a `block` and then a `head`
//! event, as a node emits them on import; a head's duty dependent roots are
//! the block roots at the last slot of the two previous epochs (the
//! genesis block before that), as the Beacon API defines them. An empty
//! slot (404) has no event. At most `MAX_FILL` slots are filled: a longer
//! gap is a node that was far behind, and its clients get the newest part.

use std::collections::HashMap;

use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};
use serde_json::{json, Value};

use super::order::quantity;
use super::sse::RawEvent;
use super::topics::Topics;
use crate::beacon::node::{Node, Outgoing};

/// Slots filled at most after one move.
pub(crate) const MAX_FILL: u64 = 256;

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct FillError(String);

/// A GET of the node's API: `Ok(None)` for a 404, its `data` otherwise.
async fn get(node: &Node, path: &str) -> Result<Option<Value>, FillError> {
    let headers = HeaderMap::new();
    let reply = node
        .send(Outgoing {
            method: &Method::GET,
            path_and_query: path,
            headers: &headers,
            body: Bytes::new(),
        })
        .await
        .map_err(|e| FillError(e.to_string()))?;
    if reply.status == StatusCode::NOT_FOUND {
        return Ok(None);
    }
    if !reply.status.is_success() {
        return Err(FillError(format!("{path}: HTTP {}", reply.status)));
    }
    let mut v: Value =
        serde_json::from_slice(&reply.body).map_err(|e| FillError(format!("{path}: {e}")))?;
    Ok(Some(v["data"].take()))
}

/// A header read by slot or root: (slot, block root, state root).
struct Header {
    slot: u64,
    root: String,
    state: String,
}

fn header_of(v: &Value) -> Option<Header> {
    Some(Header {
        slot: quantity(&v["header"]["message"]["slot"])?,
        root: v["root"].as_str()?.to_string(),
        state: v["header"]["message"]["state_root"].as_str()?.to_string(),
    })
}

/// The reads of one fill, with the roots by slot it has seen.
struct Filler<'a> {
    node: &'a Node,
    roots: HashMap<u64, Option<String>>,
}

impl Filler<'_> {
    async fn header(&mut self, at: &str) -> Result<Option<Header>, FillError> {
        let h = get(self.node, &format!("/eth/v1/beacon/headers/{at}")).await?;
        Ok(h.as_ref().and_then(header_of))
    }

    async fn root_at(&mut self, slot: u64) -> Result<Option<String>, FillError> {
        if let Some(r) = self.roots.get(&slot) {
            return Ok(r.clone());
        }
        let r = self.header(&slot.to_string()).await?.map(|h| h.root);
        self.roots.insert(slot, r.clone());
        Ok(r)
    }

    /// The root of the newest block at or before `slot`.
    async fn root_at_or_before(&mut self, slot: u64, spe: u64) -> Result<String, FillError> {
        let mut s = slot;
        for _ in 0..=2 * spe {
            if let Some(r) = self.root_at(s).await? {
                return Ok(r);
            }
            if s == 0 {
                break;
            }
            s -= 1;
        }
        Err(FillError(format!(
            "no block at or {} slots before {slot}",
            2 * spe
        )))
    }

    /// The duty dependent root of `epoch`: the block root at its start slot minus one.
    async fn dependent_root(&mut self, epoch: u64, spe: u64) -> Result<String, FillError> {
        match (epoch * spe).checked_sub(1) {
            Some(slot) => self.root_at_or_before(slot, spe).await,
            None => self.root_at_or_before(0, spe).await,
        }
    }
}

/// The events of the slots after `after` up to `node`'s head (block then
/// head per slot, as `topics` asks), and a newer finalized checkpoint.
pub(crate) async fn fill(
    node: &Node,
    topics: &Topics,
    after: Option<u64>,
    finalized_epoch: Option<u64>,
    slots_per_epoch: u64,
) -> Result<Vec<RawEvent>, FillError> {
    let mut f = Filler {
        node,
        roots: HashMap::new(),
    };
    let mut events = Vec::new();
    let spe = slots_per_epoch.max(1);
    if let Some(after) = after.filter(|_| topics.has("head") || topics.has("block")) {
        let head = f
            .header("head")
            .await?
            .ok_or_else(|| FillError("the node has no head".into()))?;
        let first = (after + 1).max(head.slot.saturating_sub(MAX_FILL - 1));
        for slot in first..=head.slot {
            let Some(h) = f.header(&slot.to_string()).await? else {
                f.roots.insert(slot, None);
                continue;
            };
            f.roots.insert(slot, Some(h.root.clone()));
            if topics.has("block") {
                let data = json!({"slot": slot.to_string(), "block": h.root, "execution_optimistic": false});
                events.push(event("block", &data));
            }
            if topics.has("head") {
                let epoch = slot / spe;
                let current = f.dependent_root(epoch, spe).await?;
                let previous = f.dependent_root(epoch.saturating_sub(1), spe).await?;
                let data = json!({
                    "slot": h.slot.to_string(),
                    "block": h.root,
                    "state": h.state,
                    "epoch_transition": slot % spe == 0,
                    "previous_duty_dependent_root": previous,
                    "current_duty_dependent_root": current,
                    "execution_optimistic": false,
                });
                events.push(event("head", &data));
            }
        }
    }
    if let Some(known) = finalized_epoch.filter(|_| topics.has("finalized_checkpoint")) {
        let checkpoints = get(node, "/eth/v1/beacon/states/head/finality_checkpoints").await?;
        let finalized = checkpoints.as_ref().map(|c| &c["finalized"]);
        if let Some((epoch, root)) =
            finalized.and_then(|c| Some((quantity(&c["epoch"])?, c["root"].as_str()?.to_string())))
        {
            if epoch > known {
                let state = f.header(&root).await?.map(|h| h.state).unwrap_or_default();
                let data = json!({"block": root, "state": state, "epoch": epoch.to_string(), "execution_optimistic": false});
                events.push(event("finalized_checkpoint", &data));
            }
        }
    }
    Ok(events)
}

fn event(topic: &str, data: &Value) -> RawEvent {
    RawEvent {
        topic: topic.to_string(),
        data: Bytes::from(data.to_string()),
    }
}
