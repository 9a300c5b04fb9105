//! The read stage of one beacon request, in order: the cache of answers
//! that cannot change ([`super::cache`]), the nodes that may answer
//! ([`super::choose`]: by the block or state id the path names, and for
//! `head` by what this client was served last), the send ([`super::proxy`]),
//! then what the answer teaches: the client's head floor, and the cache.
//! No step calls the next one itself.

use super::choose;
use super::health::Snapshot;
use super::node::Reply;
use super::paths::{self, Keep, Pin};
use super::proxy::{self, Owned};
use super::{cache, BeaconError, BeaconNetwork};

/// A read (`path`: the `/eth/...` path without the query) for `client`
/// (its policy bucket).
pub(super) async fn read(
    net: &BeaconNetwork,
    snapshot: &Snapshot,
    client: &str,
    path: &str,
    req: &Owned,
) -> Result<Reply, BeaconError> {
    let keep = paths::keep(&req.method, path);
    let key = (keep != Keep::Never).then(|| cache::key(req));
    if let Some(key) = &key {
        if let Some(hit) = net.cache.get(key, &net.series).await {
            return Ok(hit);
        }
    }
    let pin = paths::pin(path);
    let floor = match pin {
        Pin::Head => net.floors.floor(client),
        _ => None,
    };
    let nodes = choose::for_read(snapshot, pin, floor);
    if nodes.is_empty() && snapshot.eligible().next().is_some() {
        return Err(BeaconError::HeadBehindClient);
    }
    let (reply, view) = proxy::read(&nodes, &net.turn, req).await?;
    if pin == Pin::Head && reply.status.is_success() {
        if let Some(slot) = view.reading.head_slot {
            net.floors.served(client, slot, snapshot.agreed_slot);
        }
    }
    if let Some(key) = key {
        net.cache
            .store(key, &reply, keep, snapshot.finalized_slot, &net.series)
            .await;
    }
    Ok(reply)
}
