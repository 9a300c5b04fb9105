//! Panic safety: a panic while one request is answered costs that request
//! only. The panic is injected through the test-only hook
//! (`rpcgate::calls::panics::inject_panic`, which exists only in builds with
//! debug assertions) on method names no other test calls.

use futures_util::SinkExt;
use rpcgate::calls::panics::{inject_panic, Stage};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use super::hostile::{normal_call_works, ws_next, RawConn, Ws};
use crate::support::*;

const IN_CALL: &str = "rpcgate_testPanicInCall";
const IN_MESSAGE: &str = "rpcgate_testPanicInMessage";

fn caught(gw: &Gw, stage: Stage) -> u64 {
    gw.gateway.metrics().listener.panics(stage).get()
}

#[tokio::test]
async fn a_panic_answers_its_request_with_an_internal_error_and_nothing_else() {
    inject_panic(IN_CALL, Stage::Call);
    inject_panic(IN_MESSAGE, Stage::Message);
    let fleet = fleet(1).await;
    fleet.mine_blocks(2).await.unwrap();
    let policy =
        format!("policy:\n  anonymous:\n    allow: ['@default', {IN_CALL}, {IN_MESSAGE}]\n");
    let config = format!("{}{policy}", yaml(fleet.chain_id(), &fleet_ups(&fleet), ""));
    let gw = start_gateway(&config).await;
    wait_synced(&gw, 1, 2).await;
    let (calls_before, messages_before) = (caught(&gw, Stage::Call), caught(&gw, Stage::Message));

    let gw = tokio::task::spawn_blocking(move || {
        let mut conn = RawConn::open(&gw);
        // One call: HTTP 500, -32603 with the caller's id.
        let r = conn.post(format!(r#"{{"jsonrpc":"2.0","id":"p1","method":"{IN_CALL}","params":[]}}"#).as_bytes());
        assert_eq!(r.status, 500);
        assert_eq!(r.error(), (-32603, json!("p1")));
        // The same connection, and a new one, still work.
        normal_call_works(&mut conn);
        normal_call_works(&mut RawConn::open(&gw));

        // In a batch: that entry gets -32603 with its id, the others their answers.
        let r = conn.post(
            format!(
                r#"[{{"jsonrpc":"2.0","id":1,"method":"eth_chainId"}},
                    {{"jsonrpc":"2.0","id":2,"method":"{IN_CALL}"}},
                    {{"jsonrpc":"2.0","id":3,"method":"eth_blockNumber"}}]"#
            )
            .as_bytes(),
        );
        assert_eq!(r.status, 200);
        let v = r.json();
        assert_eq!(v[0], json!({"jsonrpc":"2.0","id":1,"result":"0x7a69"}));
        assert_eq!((v[1]["id"].clone(), v[1]["error"]["code"].clone()), (json!(2), json!(-32603)));
        assert_eq!(v[2]["result"], "0x2");
        normal_call_works(&mut conn);

        // Outside any call (while the message is admitted): one -32603, HTTP 500.
        let r = conn.post(
            format!(r#"[{{"jsonrpc":"2.0","id":1,"method":"eth_chainId"}},{{"jsonrpc":"2.0","id":2,"method":"{IN_MESSAGE}"}}]"#)
                .as_bytes(),
        );
        assert_eq!(r.status, 500);
        assert_eq!(r.error(), (-32603, Value::Null));
        normal_call_works(&mut conn);
        normal_call_works(&mut RawConn::open(&gw));
        gw
    })
    .await
    .unwrap();
    assert!(caught(&gw, Stage::Call) >= calls_before + 2, "counted");
    assert!(caught(&gw, Stage::Message) > messages_before, "counted");

    // Over WebSocket: the same answer with the id, and the socket goes on.
    let (mut ws, _) = tokio_tungstenite::connect_async(gw.url.replace("http://", "ws://"))
        .await
        .unwrap();
    let v = exchange(
        &mut ws,
        format!(r#"{{"jsonrpc":"2.0","id":"w","method":"{IN_CALL}"}}"#),
    )
    .await;
    assert_eq!(
        (v["id"].clone(), v["error"]["code"].clone()),
        (json!("w"), json!(-32603))
    );
    let v = exchange(
        &mut ws,
        format!(r#"{{"jsonrpc":"2.0","id":"m","method":"{IN_MESSAGE}"}}"#),
    )
    .await;
    assert_eq!(
        (v["id"].clone(), v["error"]["code"].clone()),
        (Value::Null, json!(-32603))
    );
    let v = exchange(
        &mut ws,
        r#"{"jsonrpc":"2.0","id":"ok","method":"eth_chainId"}"#.into(),
    )
    .await;
    assert_eq!(v["result"], "0x7a69");
    // And plain HTTP from a new client.
    assert_eq!(result(&gw.url, "eth_chainId", json!([])).await, "0x7a69");
}

async fn exchange(ws: &mut Ws, body: String) -> Value {
    ws.send(Message::text(body)).await.unwrap();
    ws_next(ws).await.expect("an answer")
}
