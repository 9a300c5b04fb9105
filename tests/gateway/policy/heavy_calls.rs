//! Heavy calls refused before any backend is asked, counted at the backend's
//! Tap: `eth_getLogs` over too many blocks (single, batch, WebSocket; the
//! network's bound and a client's own), params nested too deep; and
//! per-method timeouts.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use rpcgate_fleet::tap::{Fault, Tap};
use rpcgate_fleet::Fleet;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use crate::support::*;

/// Three mined blocks behind a tap, and a gateway with `network` keys and
/// the top-level `policy` YAML.
async fn tapped(network: &str, policy: &str) -> (Fleet, Tap, Gw) {
    super::tapped_gateway(3, network, policy).await
}

fn logs(id: u64, filter: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "eth_getLogs", "params": [filter]})
}

/// From block 0 to 50,000,000: what an attacker sends.
fn huge() -> Value {
    json!({"fromBlock": "0x0", "toBlock": hex(50_000_000)})
}

fn assert_refused(answer: &Value, id: u64, limit: u64) {
    assert_eq!(answer["id"], id, "{answer}");
    assert_eq!(answer["error"]["code"], -32005, "{answer}");
    let message = answer["error"]["message"].as_str().unwrap();
    assert!(message.contains(&limit.to_string()), "{message}");
    assert!(answer.get("result").is_none(), "{answer}");
}

#[tokio::test]
async fn log_ranges_over_the_limit_never_reach_a_backend() {
    let policy = format!(
        "policy:\n  clients:\n    indexer:\n      key_sha256: [{}]\n      max_logs_block_range: 100000000\n",
        sha256_hex(KEY)
    );
    // The default bound: 10,000 blocks.
    let (_fleet, tap, gw) = tapped("", &policy).await;
    tap.reset();

    // Single.
    let answer = post_json(&gw.url, &logs(1, huge())).await;
    assert_refused(&answer, 1, 10_000);
    // `latest` is the served head: 10,001 blocks below it is one too many.
    let answer = post_json(
        &gw.url,
        &logs(2, json!({"fromBlock": "0x0", "toBlock": hex(10_000)})),
    )
    .await;
    assert_refused(&answer, 2, 10_000);
    assert_eq!(tap.count("eth_getLogs"), 0);

    // Batch: the heavy entries are refused, the others are served; a
    // `blockHash` filter is one block, whatever else it says.
    let block = result(&gw.url, "eth_getBlockByNumber", json!(["0x1", false])).await;
    let hash = block["hash"].as_str().unwrap().to_string();
    let batch = json!([
        logs(3, huge()),
        logs(4, json!({"fromBlock": "0x1", "toBlock": "0x3"})),
        logs(
            5,
            json!({"blockHash": hash, "fromBlock": "0x0", "toBlock": hex(50_000_000)})
        ),
        logs(6, json!({"fromBlock": "earliest", "toBlock": hex(1 << 40)})),
    ]);
    let answers = post_json(&gw.url, &batch).await;
    let by_id = |id: u64| {
        answers
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["id"] == id)
            .unwrap()
            .clone()
    };
    assert_refused(&by_id(3), 3, 10_000);
    assert_refused(&by_id(6), 6, 10_000);
    assert!(by_id(4)["result"].is_array(), "{answers}");
    // Sent as one block; the node itself refuses a hash with a range.
    assert_ne!(by_id(5)["error"]["code"], -32005, "{answers}");
    assert_eq!(
        tap.count("eth_getLogs"),
        2,
        "only the light filters were sent"
    );

    // WebSocket.
    tap.reset();
    let url = gw.url.replace("http://", "ws://");
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    ws.send(Message::text(logs(7, huge()).to_string()))
        .await
        .unwrap();
    let answer = loop {
        match tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => break serde_json::from_str::<Value>(&t).unwrap(),
            Ok(Some(Ok(_))) => continue,
            other => panic!("no answer: {other:?}"),
        }
    };
    assert_refused(&answer, 7, 10_000);
    assert_eq!(tap.count("eth_getLogs"), 0);

    // A client with its own, larger bound gets the same huge filter through.
    let (status, _, answer) = send(&gw.url, &[("x-api-key", KEY)], &logs(8, huge())).await;
    assert_eq!(status, 200);
    assert!(answer.get("result").is_some(), "{answer}");
    assert_eq!(tap.count("eth_getLogs"), 1);
}

#[tokio::test]
async fn a_network_bound_applies_and_a_client_bound_can_be_tighter() {
    let policy = format!(
        "policy:\n  anonymous:\n    max_logs_block_range: 2\n  clients:\n    indexer:\n      key_sha256: [{}]\n",
        sha256_hex(KEY)
    );
    let (_fleet, tap, gw) = tapped("max_logs_block_range: 3", &policy).await;
    tap.reset();
    let three = json!({"fromBlock": "0x1", "toBlock": "0x3"});
    // Anonymous: its own bound of 2.
    assert_refused(&post_json(&gw.url, &logs(1, three.clone())).await, 1, 2);
    // The client has no bound of its own: the network's 3.
    let (_, _, answer) = send(&gw.url, &[("x-api-key", KEY)], &logs(2, three)).await;
    assert!(answer["result"].is_array(), "{answer}");
    let four = json!({"fromBlock": "0x0", "toBlock": "0x3"});
    let (_, _, answer) = send(&gw.url, &[("x-api-key", KEY)], &logs(3, four)).await;
    assert_refused(&answer, 3, 3);
    assert_eq!(tap.count("eth_getLogs"), 1);
}

#[tokio::test]
async fn params_nested_too_deep_never_reach_a_backend() {
    let (_fleet, tap, gw) = tapped("", "").await;
    tap.reset();
    for depth in [65, 100_000] {
        let params = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        let body =
            format!(r#"{{"jsonrpc":"2.0","id":"deep","method":"eth_call","params":{params}}}"#);
        let (status, reply) = post(&gw.url, body).await;
        assert_eq!(status, 200);
        let answer: Value = serde_json::from_slice(&reply).unwrap();
        assert_eq!(answer["id"], "deep", "{answer}");
        assert_eq!(answer["error"]["code"], -32600, "{answer}");
    }
    // At the bound, the call goes through (and the node judges it).
    let params = format!(
        "[{{\"to\":\"{OTHER}\"}},\"latest\",{}{}]",
        "[".repeat(62),
        "]".repeat(62)
    );
    let body = format!(r#"{{"jsonrpc":"2.0","id":1,"method":"eth_call","params":{params}}}"#);
    let (status, _) = post(&gw.url, body).await;
    assert_eq!(status, 200);
    assert_eq!(tap.count("eth_call"), 1);
    // A normal request right after is served.
    assert!(result(&gw.url, "eth_getBalance", json!([OTHER, "latest"]))
        .await
        .is_string());
}

#[tokio::test]
async fn method_timeouts_override_the_network_timeout() {
    let network = "request_timeout: 300ms\nmax_attempts: 1\nmethod_timeouts: {eth_getBalance: 5s, 'eth_get*': 200ms}";
    let (_fleet, tap, gw) = tapped(network, "").await;
    tap.set_fault(Fault::Delay(Duration::from_millis(700)));
    // eth_getCode matches the glob: 200ms, too short for the delay.
    let code = call(&gw.url, "eth_getCode", json!([OTHER, "latest"])).await;
    assert!(
        code["error"]["message"]
            .as_str()
            .unwrap()
            .contains("upstream"),
        "{code}"
    );
    // eth_getBalance has its own 5s: served despite the delay.
    let balance = call(&gw.url, "eth_getBalance", json!([OTHER, "latest"])).await;
    tap.set_fault(Fault::None);
    assert!(balance["result"].is_string(), "{balance}");
}
