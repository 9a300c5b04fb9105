//! The WebSocket bounds, against a real anvil fleet with real
//! tokio-tungstenite clients: a client whose unsent bytes pass
//! `server.ws_max_queued_bytes` is closed while another keeps its heads;
//! `server.max_topics_per_connection` and `server.max_upstream_subscriptions`
//! answer -32005 (and count the hit); a message far larger than the
//! listener's small initial read buffer still arrives whole, in fragments
//! of at most `server.ws_max_frame_bytes`, while one frame over it closes
//! the connection (1009). The hit counters are read from each test's own
//! gateway.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use rpcgate_fleet::Fleet;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::MaybeTlsStream;

use super::{connect, notification, rpc, subscribe, Ws};
use crate::support::*;

const A1: &str = "0x00000000000000000000000000000000000000a1";
const A2: &str = "0x00000000000000000000000000000000000000a2";
const A3: &str = "0x00000000000000000000000000000000000000a3";

/// One replica with a mined block, and a gateway whose only network is `net`.
async fn setup(net: &str, server: &str) -> (Fleet, Gw) {
    let fleet = fleet(1).await;
    fleet.mine().await.unwrap();
    let config = format!(
        "server:\n{server}{}",
        yaml(fleet.chain_id(), &fleet_ups(&fleet), "").replace("  dev:\n", &format!("  {net}:\n"))
    );
    let gw = start_gateway(&config).await;
    wait_synced(&gw, 1, 1).await;
    (fleet, gw)
}

/// The gateway's own count of a WebSocket bound that tripped.
fn hits(gw: &Gw, net: &str, limit: &str) -> u64 {
    gw.gateway
        .metrics()
        .ws
        .limit_hits
        .with_label_values(&[net, limit])
        .get()
}

fn addr(gw: &Gw) -> SocketAddr {
    gw.url.trim_start_matches("http://").parse().unwrap()
}

/// A client whose kernel receive buffer is tiny, so that what it does not
/// read backs up into the gateway at once rather than into loopback buffers.
async fn connect_small_window(gw: &Gw) -> Ws {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(addr(gw)).await.unwrap();
    let url = format!("ws://{}/", addr(gw));
    tokio_tungstenite::client_async(url, MaybeTlsStream::Plain(stream))
        .await
        .unwrap()
        .0
}

async fn subscribe_error(ws: &mut Ws, params: Value) -> Value {
    let r = rpc(
        ws,
        &json!({"jsonrpc":"2.0","id":"s","method":"eth_subscribe","params":params}),
    )
    .await;
    assert_eq!(r["id"], "s", "{r}");
    r["error"].clone()
}

#[tokio::test]
async fn a_client_past_its_queued_bytes_is_closed_while_another_keeps_its_heads() {
    const NET: &str = "wsqueued";
    let (fleet, gw) = setup(NET, "  ws_max_queued_bytes: 16384\n  max_batch_len: 1000\n").await;
    let mut reader = connect(&gw, "/").await;
    let reader_id = subscribe(&mut reader, json!(["newHeads"])).await;
    let mut idle = connect_small_window(&gw).await;
    subscribe(&mut idle, json!(["newHeads"])).await;
    let gauge = gw
        .gateway
        .metrics()
        .ws
        .subscriptions
        .with_label_values(&[NET, "newHeads"]);
    assert_eq!(gauge.get(), 2);

    // ~41 KB answered locally per batch; the client reads none of it.
    let one = r#"{"jsonrpc":"2.0","id":1,"method":"eth_chainId"}"#;
    let batch = format!("[{}]", vec![one; 1000].join(","));
    let mut sent = 0;
    for _ in 0..40 {
        let send = idle.send(Message::text(batch.clone()));
        match tokio::time::timeout(Duration::from_secs(5), send).await {
            Ok(Ok(())) => sent += 1,
            _ => break,
        }
        if hits(&gw, NET, "queued_bytes") > 0 {
            break;
        }
    }
    wait_for("the queued-bytes bound to trip", || async {
        hits(&gw, NET, "queued_bytes") == 1
    })
    .await;
    // Its subscription is gone with it; the reader's stays.
    wait_for("the closed client's subscription to go", || async {
        gauge.get() == 1
    })
    .await;

    // The reader still gets every head.
    for _ in 0..2 {
        let height = fleet.mine().await.unwrap();
        let header = notification(&mut reader, &reader_id).await;
        assert_eq!(quantity(&header["number"]), height);
    }

    // The idle client finds its socket ended after what was already sent
    // (a Close 1008 if it got through, else the end of the stream).
    let mut answers = 0;
    let ended = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match idle.next().await {
                Some(Ok(Message::Text(_))) => answers += 1,
                Some(Ok(Message::Close(frame))) => break frame.map(|f| f.code),
                Some(Ok(_)) => {}
                Some(Err(_)) | None => break None,
            }
        }
    })
    .await
    .expect("the gateway ends the connection");
    assert!(matches!(ended, None | Some(CloseCode::Policy)), "{ended:?}");
    eprintln!("{sent} batches sent, {answers} messages received, then {ended:?}");
    assert_eq!(
        hits(&gw, NET, "queued_bytes"),
        1,
        "counted once per connection"
    );
}

#[tokio::test]
async fn distinct_topics_per_connection_are_capped() {
    const NET: &str = "wstopics";
    let (_fleet, gw) = setup(NET, "  max_topics_per_connection: 2\n").await;
    let mut ws = connect(&gw, "/").await;
    subscribe(&mut ws, json!(["newHeads"])).await;
    // The same topic again is not a new one.
    subscribe(&mut ws, json!(["newHeads"])).await;
    subscribe(&mut ws, json!(["logs", {"address": A1}])).await;
    let e = subscribe_error(&mut ws, json!(["logs", {"address": A2}])).await;
    assert_eq!(e["code"], -32005, "{e}");
    assert!(e["message"].as_str().unwrap().contains("topics"), "{e}");
    let e = subscribe_error(&mut ws, json!(["newPendingTransactions"])).await;
    assert_eq!(e["code"], -32005, "{e}");
    assert_eq!(hits(&gw, NET, "topics_per_connection"), 2);
    // A topic it holds is still open to it, spelled differently.
    subscribe(
        &mut ws,
        json!(["logs", {"address": A1.to_uppercase().replace("0X", "0x")}]),
    )
    .await;
    // Another connection has its own allowance.
    let mut other = connect(&gw, "/").await;
    subscribe(&mut other, json!(["logs", {"address": A2}])).await;
    subscribe(&mut other, json!(["newPendingTransactions"])).await;
    assert_eq!(hits(&gw, NET, "topics_per_connection"), 2);
}

#[tokio::test]
async fn upstream_feeds_are_capped_over_the_gateway() {
    const NET: &str = "wsfeeds";
    let (_fleet, gw) = setup(NET, "  max_upstream_subscriptions: 2\n").await;
    let hub = gw.gateway.subscriptions().hub(NET);
    let mut a = connect(&gw, "/").await;
    let mut b = connect(&gw, "/").await;
    let mut c = connect(&gw, "/").await;
    subscribe(&mut a, json!(["logs", {"address": A1}])).await;
    let b_sub = subscribe(&mut b, json!(["logs", {"address": A2}])).await;
    assert_eq!(hub.feeds(), 2);
    // A third distinct filter, or any other topic, would need a third feed.
    let e = subscribe_error(&mut c, json!(["logs", {"address": A3}])).await;
    assert_eq!(e["code"], -32005, "{e}");
    assert!(e["message"].as_str().unwrap().contains("upstream"), "{e}");
    let e = subscribe_error(&mut c, json!(["newHeads"])).await;
    assert_eq!(e["code"], -32005, "{e}");
    assert_eq!(hits(&gw, NET, "upstream_subscriptions"), 2);
    assert_eq!(hub.feeds(), 2);
    // Joining a running feed needs none.
    subscribe(&mut c, json!(["logs", {"address": A1}])).await;
    // A feed whose last client leaves frees its place.
    let r = rpc(
        &mut b,
        &json!({"jsonrpc":"2.0","id":9,"method":"eth_unsubscribe","params":[b_sub]}),
    )
    .await;
    assert_eq!(r["result"], true, "{r}");
    assert_eq!(hub.feeds(), 1);
    subscribe(&mut c, json!(["logs", {"address": A3}])).await;
    assert_eq!(hub.feeds(), 2);
    assert_eq!(hits(&gw, NET, "upstream_subscriptions"), 2);
}

#[tokio::test]
async fn a_message_far_larger_than_the_read_buffer_arrives_whole() {
    const NET: &str = "wslarge";
    let (fleet, gw) = setup(NET, "  max_body_bytes: 4194304\n").await;
    let mut ws = connect(&gw, "/").await;
    // A 1 MiB param: the message is 1,024 times the listener's first read
    // buffer, sent in 16 fragments of 64 KiB (the gateway takes frames of
    // up to 128 KiB). (A backend refuses calldata this large, so the call is one
    // the gateway answers itself.)
    let pad = "i".repeat(1024 * 1024);
    let call = json!({"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":[pad]}).to_string();
    let pieces: Vec<&[u8]> = call.as_bytes().chunks(64 * 1024).collect();
    for (i, piece) in pieces.iter().enumerate() {
        let opcode = if i == 0 {
            OpCode::Data(Data::Text)
        } else {
            OpCode::Data(Data::Continue)
        };
        let frame = Frame::message(piece.to_vec(), opcode, i + 1 == pieces.len());
        ws.send(Message::Frame(frame)).await.unwrap();
    }
    let r: Value = serde_json::from_str(&super::next_text(&mut ws).await).unwrap();
    assert_eq!(r["id"], 1, "{r}");
    assert_eq!(r["result"], hex(fleet.chain_id()));
    // The connection goes on with small messages after the large one.
    let r = rpc(
        &mut ws,
        &json!({"jsonrpc":"2.0","id":2,"method":"eth_chainId"}),
    )
    .await;
    assert_eq!(r["result"], hex(fleet.chain_id()), "{r}");
    // The same message in one frame: over the frame cap, closed with 1009.
    let _ = ws.send(Message::text(call)).await;
    let closed = loop {
        match tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
            Ok(Some(Ok(Message::Close(frame)))) => break frame.map(|f| f.code),
            Ok(Some(Ok(_))) => continue,
            other => panic!("no Close frame: {other:?}"),
        }
    };
    assert_eq!(closed, Some(CloseCode::Size));
}
