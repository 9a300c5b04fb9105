//! JSON-RPC and eth_subscribe over a client WebSocket (real
//! tokio-tungstenite clients), and the bounds on what a connection may hold.
//! The client helpers below are shared by both files.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::support::*;

mod limits;
mod subscriptions;

pub(crate) type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

pub(crate) const WAIT: Duration = Duration::from_secs(20);

/// A client WebSocket to `path` of the gateway.
pub(crate) async fn connect(gw: &Gw, path: &str) -> Ws {
    let url = format!("{}{path}", gw.url.replace("http://", "ws://"));
    tokio_tungstenite::connect_async(url)
        .await
        .expect("WebSocket handshake")
        .0
}

/// The next text message (pings and pongs skipped), as raw text.
pub(crate) async fn next_text(ws: &mut Ws) -> String {
    loop {
        let message = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("a message in time")
            .expect("the socket is open")
            .expect("a valid frame");
        match message {
            Message::Text(t) => return t.as_str().to_string(),
            Message::Close(c) => panic!("closed: {c:?}"),
            _ => {}
        }
    }
}

/// Sends `body` and returns the next message that is not a notification, as raw text.
pub(crate) async fn exchange(ws: &mut Ws, body: &str) -> String {
    ws.send(Message::text(body)).await.unwrap();
    loop {
        let text = next_text(ws).await;
        if !text.contains("\"eth_subscription\"") {
            return text;
        }
    }
}

pub(crate) async fn rpc(ws: &mut Ws, body: &Value) -> Value {
    serde_json::from_str(&exchange(ws, &body.to_string()).await).unwrap()
}

pub(crate) async fn subscribe(ws: &mut Ws, params: Value) -> String {
    let r = rpc(
        ws,
        &json!({"jsonrpc":"2.0","id":"sub","method":"eth_subscribe","params":params}),
    )
    .await;
    r["result"]
        .as_str()
        .unwrap_or_else(|| panic!("eth_subscribe failed: {r}"))
        .to_string()
}

/// The next notification's result for subscription `id`.
pub(crate) async fn notification(ws: &mut Ws, id: &str) -> Value {
    loop {
        let v: Value = serde_json::from_str(&next_text(ws).await).unwrap();
        if v["method"] == "eth_subscription" && v["params"]["subscription"] == id {
            return v["params"]["result"].clone();
        }
    }
}

/// The close code the server sends next (messages before it are skipped).
pub(crate) async fn close_code(ws: &mut Ws) -> Option<CloseCode> {
    loop {
        match tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("a close in time")
        {
            Some(Ok(Message::Close(frame))) => return frame.map(|f| f.code),
            Some(Ok(_)) => {}
            Some(Err(e)) => panic!("no Close frame: {e}"),
            None => return None,
        }
    }
}
