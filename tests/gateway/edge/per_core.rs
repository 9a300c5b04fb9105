//! `server.runtime: per_core`: one single-threaded runtime per core, each
//! accepting on its own `SO_REUSEPORT` socket of the listen address. Every
//! core's socket must be served (the kernel hands each new connection to
//! one of them), every call must get its own answer, and a stop must close
//! every socket.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpStream;

use crate::support::*;

/// Connections opened at once: the kernel spreads them over the cores'
/// sockets by a hash of the address pair, so each socket gets some (all on
/// one of two: a chance of 2^-31).
const CONNECTIONS: u64 = 32;
const CALLS_PER_CONNECTION: u64 = 4;

/// One connection of its own, `CALLS_PER_CONNECTION` distinct balance reads
/// over it (keep-alive), each answer checked against its call.
async fn one_connection(addr: SocketAddr, n: u64) {
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    for i in 0..CALLS_PER_CONNECTION {
        let id = n * 100 + i;
        // A fresh address per call: nothing is shared or cached.
        let who = format!("0x{:040x}", 0x5000 + id);
        let body = json!({"jsonrpc": "2.0", "id": id, "method": "eth_getBalance", "params": [who, "latest"]});
        let request = http::Request::post("/")
            .header("content-type", "application/json")
            .header("host", addr.to_string())
            .body(Full::new(Bytes::from(body.to_string())))
            .expect("a request");
        let answered = tokio::time::timeout(Duration::from_secs(30), sender.send_request(request))
            .await
            .unwrap_or_else(|_| {
                panic!("connection {n}: no answer within 30s (is its core's socket accepting?)")
            })
            .expect("an answer");
        assert_eq!(answered.status(), 200, "connection {n}, call {i}");
        let bytes = answered
            .into_body()
            .collect()
            .await
            .expect("a body")
            .to_bytes();
        let answer: Value = serde_json::from_slice(&bytes).expect("JSON");
        assert_eq!(answer["id"], json!(id), "its own id: {answer}");
        assert_eq!(
            answer["result"],
            json!("0x0"),
            "an unused address: {answer}"
        );
    }
}

#[tokio::test]
async fn every_core_accepts_answers_its_calls_and_closes_its_socket_at_stop() {
    let fleet = fleet(1).await;
    fleet.mine().await.unwrap();
    let config = format!(
        "{}server:\n  runtime: per_core\n",
        yaml(fleet.chain_id(), &[up("r0", fleet.http_url(0), None)], "")
    );
    let gw = start_gateway(&config).await;
    wait_synced(&gw, 1, 1).await;
    let addr: SocketAddr = gw.url.trim_start_matches("http://").parse().unwrap();
    let clients: Vec<_> = (0..CONNECTIONS)
        .map(|n| tokio::spawn(one_connection(addr, n)))
        .collect();
    for client in clients {
        client.await.expect("a client task");
    }

    // Stopping ends every core's accept loop: no socket is left on the port.
    drop(gw);
    wait_for("every core's socket closed after stop", || async move {
        TcpStream::connect(addr).await.is_err()
    })
    .await;
}
