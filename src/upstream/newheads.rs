//! newHeads over WebSocket: the lowest-delay source of a backend's head.
//!
//! The subscription only feeds the head tracker; if it drops, the tracker's
//! polling takes over at its fast interval until a reconnect succeeds. A
//! feed that comes back may come from a node restarted behind: its head is
//! doubted (`client::HeadDoubt`) until the tracker probes it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use super::client::Backend;
use super::head::BlockId;
use crate::eth::parse_quantity;

const SUBSCRIBE: &str =
    r#"{"jsonrpc":"2.0","id":1,"method":"eth_subscribe","params":["newHeads"]}"#;

#[derive(Deserialize)]
struct Notification {
    params: Option<NotificationParams>,
}

#[derive(Deserialize)]
struct NotificationParams {
    result: Header,
}

#[derive(Deserialize)]
struct Header {
    number: String,
    hash: String,
}

/// Follows newHeads until the receiver is gone, reconnecting with backoff.
pub(super) async fn follow(
    url: http::Uri,
    client: Arc<Backend>,
    heads: mpsc::Sender<BlockId>,
    live: Arc<AtomicBool>,
) {
    let backend = &client.name;
    let mut backoff = Duration::from_millis(250);
    let mut lost = false;
    loop {
        match session(&url, &client, &heads, &live, lost).await {
            Ok(()) => return, // the tracker is gone
            Err(e) => {
                if live.swap(false, Ordering::Relaxed) {
                    lost = true;
                    tracing::warn!(%backend, error = %e, "newHeads subscription lost; polling instead");
                    backoff = Duration::from_millis(250);
                } else {
                    tracing::debug!(%backend, error = %e, "newHeads subscription failed");
                }
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(15));
    }
}

/// One connection: Ok when the receiver is gone, Err when the connection ends.
async fn session(
    url: &http::Uri,
    client: &Backend,
    heads: &mpsc::Sender<BlockId>,
    live: &AtomicBool,
    regained: bool,
) -> Result<(), String> {
    let mut ws = tokio::time::timeout(Duration::from_secs(5), client.connect_ws(url))
        .await
        .map_err(|_| "connect timed out".to_string())??;
    ws.send(Message::text(SUBSCRIBE))
        .await
        .map_err(|e| e.to_string())?;
    while let Some(msg) = ws.next().await {
        let msg = msg.map_err(|e| e.to_string())?;
        let text = match &msg {
            Message::Text(t) => t.as_str(),
            Message::Close(_) => return Err("closed by the backend".into()),
            _ => continue,
        };
        if text.contains("\"eth_subscription\"") {
            let Ok(Notification { params: Some(p) }) = serde_json::from_str::<Notification>(text)
            else {
                continue;
            };
            let Some(number) = parse_quantity(&p.result.number) else {
                continue;
            };
            if heads
                .send(BlockId {
                    number,
                    hash: p.result.hash,
                })
                .await
                .is_err()
            {
                return Ok(());
            }
        } else if text.contains("\"error\"") {
            return Err(format!("subscription refused: {text}"));
        } else {
            // The confirmation of the subscription.
            if regained && !live.load(Ordering::Relaxed) {
                client.head_doubt.raise();
            }
            live.store(true, Ordering::Relaxed);
        }
    }
    Err("connection ended".into())
}
