//! The `newPendingTransactions` feed of pending-transaction filters.
//!
//! A pending filter (`eth_newPendingTransactionFilter`) lives in `filters`,
//! which sits below `subscriptions` and cannot subscribe by itself. This
//! loop joins the two: once a second it looks at every network, and while a
//! network's filters say a pending filter is in use
//! (`Filters::pending_wanted`), it holds one subscription of the network's
//! hub, exactly as a WebSocket client would (so it shares the upstream feed
//! with client subscriptions and moves with it when a backend fails), and
//! hands each announced hash to the filters. When no pending filter has been
//! used for `filters.expiry`, the subscription is dropped, and with it the
//! upstream one when nobody else needs it.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::Bytes;
use futures_util::FutureExt;
use serde_json::value::RawValue;
use tokio::task::JoinHandle;

use super::gateway::Gateway;
use crate::subscriptions::{Hub, Outbox, Session, SessionLimits};

/// How often the loop looks for networks whose pending filters are in use.
const EVERY: Duration = Duration::from_secs(1);
/// Bytes of announcements queued for the feed task; past it the feed is
/// dropped and started again on the next look (what came meanwhile is lost,
/// as announcements are when no feed runs).
const QUEUE_BYTES: usize = 4 << 20;
/// Hashes handed to the filters at once.
const CHUNK: usize = 1000;

/// Runs until the gateway is dropped.
pub(super) fn spawn(gateway: Weak<Gateway>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut feeds: HashMap<String, JoinHandle<()>> = HashMap::new();
        let mut tick = tokio::time::interval(EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(g) = gateway.upgrade() else {
                break;
            };
            let routes = g.table();
            feeds.retain(|name, task| {
                let wanted = routes
                    .networks
                    .get(name)
                    .and_then(|n| n.filters.as_ref())
                    .is_some_and(|f| f.pending_wanted());
                if !wanted || task.is_finished() {
                    task.abort();
                }
                wanted && !task.is_finished()
            });
            for (name, network) in &routes.networks {
                let wanted = network.filters.as_ref().is_some_and(|f| f.pending_wanted());
                if wanted && !feeds.contains_key(name) {
                    let hub = g.subscriptions().hub(name);
                    let feeds_cap = routes.server.max_upstream_subscriptions;
                    let task = tokio::spawn(feed(gateway.clone(), name.clone(), hub, feeds_cap));
                    feeds.insert(name.clone(), task);
                }
            }
        }
        for task in feeds.values() {
            task.abort();
        }
    })
}

/// One network's subscription, until it is aborted (the session's drop
/// unsubscribes).
async fn feed(gateway: Weak<Gateway>, network: String, hub: Arc<Hub>, feeds_cap: usize) {
    // Not a client's connection: its overflows are not the clients' metric.
    let (outbox, mut announced) = Outbox::new(QUEUE_BYTES, None);
    let limits = SessionLimits {
        subscriptions: 1,
        topics: 1,
        feeds: feeds_cap,
        feeds_per_client: feeds_cap,
    };
    let session = Session::new(hub, "gateway:pending".into(), outbox.clone(), limits);
    let topic = RawValue::from_string(r#"["newPendingTransactions"]"#.into())
        .expect("a constant JSON array");
    match session.call("eth_subscribe", Some(&topic)) {
        Ok(answer) => session.activate(answer.created.as_slice()),
        Err(e) => {
            tracing::warn!(%network, error = %e, "pending filters: cannot subscribe to newPendingTransactions");
            return;
        }
    }
    tracing::debug!(%network, "pending filters: newPendingTransactions feed started");
    let mut hashes = Vec::new();
    loop {
        let message = tokio::select! {
            m = announced.recv() => m,
            () = outbox.overflowed() => return,
        };
        let Some(message) = message else {
            return;
        };
        announced.written(message.len());
        hashes.extend(hash_of(&message));
        while hashes.len() < CHUNK {
            match announced.recv().now_or_never() {
                Some(Some(m)) => {
                    announced.written(m.len());
                    hashes.extend(hash_of(&m));
                }
                _ => break,
            }
        }
        // The current network each time: a reload may have replaced it.
        let filters = gateway
            .upgrade()
            .and_then(|g| g.table().networks.get(&network).cloned());
        let Some(network) = filters else {
            return;
        };
        if let Some(filters) = &network.filters {
            filters.record_pending(&hashes).await;
        }
        hashes.clear();
    }
}

/// The hash an `eth_subscription` notification of `newPendingTransactions`
/// carries (`params.result`, a string; a full transaction's `hash` if a
/// backend sends objects).
fn hash_of(message: &Bytes) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Note {
        params: Params,
    }
    #[derive(serde::Deserialize)]
    struct Params {
        result: serde_json::Value,
    }
    let note: Note = serde_json::from_slice(message).ok()?;
    let hash = match note.params.result {
        serde_json::Value::String(s) => s,
        serde_json::Value::Object(mut tx) => match tx.remove("hash") {
            Some(serde_json::Value::String(s)) => s,
            _ => return None,
        },
        _ => return None,
    };
    crate::eth::parse_hash(&hash).map(|_| hash.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_read_from_notifications() {
        let h = "0xAbababababababababababababababababababababababababababababababab";
        let note = format!(
            r#"{{"jsonrpc":"2.0","method":"eth_subscription","params":{{"subscription":"0x1","result":"{h}"}}}}"#
        );
        assert_eq!(hash_of(&Bytes::from(note)), Some(h.to_ascii_lowercase()));
        let object = format!(
            r#"{{"jsonrpc":"2.0","method":"eth_subscription","params":{{"subscription":"0x1","result":{{"hash":"{h}","nonce":"0x1"}}}}}}"#
        );
        assert_eq!(hash_of(&Bytes::from(object)), Some(h.to_ascii_lowercase()));
        let bad = r#"{"jsonrpc":"2.0","method":"eth_subscription","params":{"subscription":"0x1","result":"0x12"}}"#;
        assert_eq!(hash_of(&Bytes::from(bad)), None);
    }
}
