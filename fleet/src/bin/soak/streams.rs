//! What the soak receives in order, and from whom: WebSocket `newHeads` and
//! `logs` subscriptions, and block and log filters polled alternately on both
//! gateways. Each records what it was given as a [`Stream`]; `verify.rs`
//! checks it against the chain once the run is over.
//!
//! A stream is cut into segments where it had to start again (a reconnect, a
//! filter made anew): gaps are looked for within a segment, never across the
//! time a client was away.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use super::context::{is_transport, quantity, Soak};
use super::record::Count;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Heads,
    Logs,
    BlockFilter,
    LogFilter,
}

/// One thing delivered: a block (hash, number) or a log (its block, index, removed).
#[derive(Debug, Clone)]
pub struct Item {
    pub at: f64,
    pub block_hash: String,
    pub number: Option<u64>,
    pub log_index: Option<u64>,
    pub removed: bool,
}

#[derive(Debug)]
pub struct Stream {
    pub name: String,
    pub kind: Kind,
    /// The first stream of its kind takes the injected duplicate and gap.
    first_of_kind: bool,
    /// Items offered so far (injections pick by it).
    offered: usize,
    pub segments: Vec<Vec<Item>>,
}

impl Stream {
    fn new(name: String, kind: Kind, first_of_kind: bool) -> Stream {
        Stream {
            name,
            kind,
            first_of_kind,
            offered: 0,
            segments: Vec::new(),
        }
    }

    /// A stream as received, for the checks' own tests.
    #[cfg(test)]
    pub fn recorded(kind: Kind, segments: Vec<Vec<Item>>) -> Stream {
        Stream {
            segments,
            ..Stream::new("test".into(), kind, false)
        }
    }

    fn segment(&mut self) {
        self.segments.push(Vec::new());
    }

    fn push(&mut self, soak: &Soak, item: Item) {
        if self.segments.is_empty() {
            self.segment();
        }
        self.offered += 1;
        let offered = self.offered;
        let Some(segment) = self.segments.last_mut() else {
            return;
        };
        // The 7th item (not the first or last of a segment, so a gap can show).
        if self.first_of_kind && offered == 7 && soak.inject.gap {
            eprintln!("soak: {}: injected gap", self.name);
            return;
        }
        if self.first_of_kind && offered == 4 && soak.inject.dup {
            eprintln!("soak: {}: injected duplicate", self.name);
            segment.push(item.clone());
        }
        segment.push(item);
    }
}

fn item(at: f64, value: &Value, kind: Kind) -> Option<Item> {
    match kind {
        Kind::Heads => Some(Item {
            at,
            block_hash: value.get("hash")?.as_str()?.to_owned(),
            number: value.get("number").and_then(quantity),
            log_index: None,
            removed: false,
        }),
        Kind::BlockFilter => Some(Item {
            at,
            block_hash: value.as_str()?.to_owned(),
            number: None,
            log_index: None,
            removed: false,
        }),
        Kind::Logs | Kind::LogFilter => Some(Item {
            at,
            block_hash: value.get("blockHash")?.as_str()?.to_owned(),
            number: value.get("blockNumber").and_then(quantity),
            log_index: value.get("logIndex").and_then(quantity),
            removed: value
                .get("removed")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        }),
    }
}

/// A WebSocket subscriber (`newHeads` or `logs` of the contract) on gateway `g`,
/// reconnecting to it whenever its connection ends.
pub async fn subscriber(soak: Arc<Soak>, id: usize, g: usize, kind: Kind) -> Stream {
    let name = format!(
        "ws {} #{id} on gateway {g}",
        if kind == Kind::Heads {
            "newHeads"
        } else {
            "logs"
        }
    );
    let mut stream = Stream::new(name, kind, id == 0);
    let params = match kind {
        Kind::Heads => json!(["newHeads"]),
        _ => json!(["logs", { "address": soak.contract }]),
    };
    let gateway = soak.gateways[g].clone();
    let mut dropped = false;
    while !soak.stopping() {
        let connected = tokio_tungstenite::connect_async(gateway.ws_url()).await;
        let mut ws = match connected {
            Ok((ws, _)) => ws,
            Err(error) => {
                if !gateway.is_restarting() && !soak.stopping() {
                    soak.record.fail(
                        Count::SubscriptionDrops,
                        format!("{}: connect: {error}", stream.name),
                    );
                }
                soak.pause(Duration::from_millis(250)).await;
                continue;
            }
        };
        let subscribe =
            json!({ "jsonrpc": "2.0", "id": 1, "method": "eth_subscribe", "params": params });
        if ws.send(Message::text(subscribe.to_string())).await.is_err() {
            continue;
        }
        stream.segment();
        soak.record.note("ws connections", 1);
        let ended = loop {
            let message = tokio::select! {
                m = ws.next() => m,
                _ = soak.stopped.notified() => break None,
            };
            let text = match message {
                Some(Ok(Message::Text(text))) => text,
                Some(Ok(Message::Close(frame))) => break Some(format!("closed: {frame:?}")),
                Some(Ok(_)) => continue,
                Some(Err(error)) => break Some(error.to_string()),
                None => break Some("ended".into()),
            };
            let Ok(value) = serde_json::from_str::<Value>(&text) else {
                continue;
            };
            if let Some(error) = value.get("error") {
                break Some(format!("subscribe refused: {error}"));
            }
            let Some(result) = value.get("params").and_then(|p| p.get("result")) else {
                continue;
            };
            if soak.inject.drop && id == 0 && stream.offered == 10 && !dropped {
                dropped = true;
                break Some("INJECTED: left by the harness".into());
            }
            if let Some(item) = item(soak.record.now(), result, kind) {
                soak.record.note(
                    if kind == Kind::Heads {
                        "ws heads"
                    } else {
                        "ws logs"
                    },
                    1,
                );
                stream.push(&soak, item);
            }
        };
        match ended {
            None => break,
            Some(_) if soak.stopping() => break,
            Some(_) if gateway.is_restarting() => {
                soak.record.note("ws reconnects (gateway restarting)", 1)
            }
            Some(why) => {
                soak.record
                    .fail(Count::SubscriptionDrops, format!("{}: {why}", stream.name));
                soak.pause(Duration::from_millis(250)).await;
            }
        }
    }
    stream
}

/// A block filter (or a log filter on the contract) made on gateway `id % 2`
/// and polled every second on each gateway in turn.
pub async fn filter(soak: Arc<Soak>, id: usize, kind: Kind) -> Stream {
    let label = if kind == Kind::BlockFilter {
        "block filter"
    } else {
        "log filter"
    };
    let mut stream = Stream::new(format!("{label} #{id}"), kind, id == 0);
    let mut filter_id: Option<Value> = None;
    let mut poll = id;
    while soak.pause(Duration::from_secs(1)).await {
        poll += 1;
        let g = poll % soak.gateways.len();
        let Some(current) = filter_id.clone() else {
            let made = match kind {
                Kind::BlockFilter => soak.call(g, "eth_newBlockFilter", json!([])).await,
                _ => {
                    soak.call(g, "eth_newFilter", json!([{ "address": soak.contract }]))
                        .await
                }
            };
            match made {
                Ok((value, _)) => {
                    filter_id = Some(value);
                    stream.segment();
                }
                Err(error) => {
                    soak.record.note("filter creations failed (retried)", 1);
                    eprintln!(
                        "soak: {}: create on gateway {g} failed: {error}",
                        stream.name
                    );
                }
            }
            continue;
        };
        soak.record.note("filter polls", 1);
        if soak.inject.lost && id == 0 && poll == 25 {
            eprintln!("soak: {}: INJECTED: uninstalled", stream.name);
            let _ = soak.call(g, "eth_uninstallFilter", json!([current])).await;
        }
        match soak.call(g, "eth_getFilterChanges", json!([current])).await {
            Ok((Value::Array(changes), _)) => {
                let at = soak.record.now();
                for change in &changes {
                    if let Some(item) = item(at, change, kind) {
                        stream.push(&soak, item);
                    }
                }
            }
            Ok((other, served_by)) => soak.record.fail(
                Count::FailedReads,
                format!(
                    "{}: poll on gateway {served_by}: not an array: {other}",
                    stream.name
                ),
            ),
            Err(error) if is_transport(&error) && soak.stopping() => {}
            // A poll that fails is retried by the next one, which must then deliver
            // what this one would have (a miss shows in the check); a filter the
            // gateways forgot is a failure of its own: the client must start over.
            Err(error) if error.to_string().to_ascii_lowercase().contains("not found") => {
                soak.record.fail(
                    Count::FiltersLost,
                    format!("{}: poll on gateway {g}: {error}", stream.name),
                );
                filter_id = None;
            }
            Err(error) => {
                soak.record.note("filter polls failed (retried)", 1);
                eprintln!("soak: {}: poll on gateway {g} failed: {error}", stream.name);
            }
        }
    }
    stream
}
