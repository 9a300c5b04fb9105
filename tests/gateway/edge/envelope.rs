//! The envelope as clients see it: ids, notifications, batches, bad input.

use std::io::{Read, Write};

use serde_json::{json, Value};

use crate::support::*;

async fn gateway_on_one_replica() -> (rpcgate_fleet::Fleet, Gw) {
    let fleet = fleet(1).await;
    fleet.mine_blocks(2).await.unwrap();
    let gw = gateway_over(&fleet, "", 2).await;
    (fleet, gw)
}

fn body_str(b: &bytes::Bytes) -> &str {
    std::str::from_utf8(b).unwrap()
}

#[tokio::test]
async fn ids_are_echoed_exactly() {
    let (_fleet, gw) = gateway_on_one_replica().await;
    // Forwarded (eth_getBalance) and local (eth_blockNumber) answers alike.
    for method in ["eth_getBalance", "eth_blockNumber"] {
        let params = if method == "eth_getBalance" {
            format!(r#"["{DEV}","latest"]"#)
        } else {
            "[]".into()
        };
        for id in [
            r#""abc""#,
            "7",
            "1.50",
            "-3",
            "null",
            "1e400",
            r#""\u00e9""#,
        ] {
            let body =
                format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"{method}","params":{params}}}"#);
            let (status, answer) = post(&gw.url, body).await;
            assert_eq!(status, 200);
            let text = body_str(&answer);
            assert!(
                text.starts_with(&format!(r#"{{"jsonrpc":"2.0","id":{id},"result":"#)),
                "{method} id {id}: {text}"
            );
        }
    }
}

/// An id is echoed in every answer, errors included: one longer than the
/// cap (1 KiB of JSON text) is refused with -32600 and not echoed, in a
/// batch entry too; one at the cap is echoed as usual. Seen failing with the
/// cap's check taken out of `jsonrpc::envelope`: the long id was echoed.
#[tokio::test]
async fn an_id_longer_than_the_cap_is_an_invalid_request() {
    let (_fleet, gw) = gateway_on_one_replica().await;
    let call = |id: &str| format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"eth_chainId"}}"#);
    let at_cap = format!(r#""{}""#, "a".repeat(1022));
    let (status, answer) = post(&gw.url, call(&at_cap)).await;
    assert_eq!(status, 200);
    let v: Value = serde_json::from_slice(&answer).unwrap();
    assert_eq!(v["id"].as_str().unwrap().len(), 1022, "{v}");
    assert!(v["result"].is_string(), "{v}");
    for over in [format!(r#""{}""#, "a".repeat(1023)), "9".repeat(5000)] {
        let (status, answer) = post(&gw.url, call(&over)).await;
        assert_eq!(status, 200);
        let v: Value = serde_json::from_slice(&answer).unwrap();
        assert_eq!(v["error"]["code"], -32600, "{v}");
        assert_eq!(v["id"], Value::Null, "{v}");
        assert!(
            answer.len() < 512,
            "the id is not echoed: {} bytes",
            answer.len()
        );
    }
    let batch = format!("[{},{}]", call(&"7".repeat(2000)), call("2"));
    let (_, answer) = post(&gw.url, batch).await;
    let v: Value = serde_json::from_slice(&answer).unwrap();
    assert_eq!(v[0]["error"]["code"], -32600, "{v}");
    assert_eq!(v[0]["id"], Value::Null);
    assert_eq!(v[1]["id"], 2);
    assert!(v[1]["result"].is_string(), "{v}");
}

#[tokio::test]
async fn notifications_get_no_answer() {
    let (_fleet, gw) = gateway_on_one_replica().await;
    let (status, answer) = post(
        &gw.url,
        r#"{"jsonrpc":"2.0","method":"eth_chainId","params":[]}"#,
    )
    .await;
    assert_eq!((status, answer.len()), (200, 0));
    let (status, answer) = post(
        &gw.url,
        r#"[{"jsonrpc":"2.0","method":"eth_chainId"},{"jsonrpc":"2.0","method":"eth_gasPrice"}]"#,
    )
    .await;
    assert_eq!((status, answer.len()), (200, 0));
    let (_, answer) = post(&gw.url, r#"[{"jsonrpc":"2.0","method":"eth_chainId"},{"jsonrpc":"2.0","id":"x","method":"eth_chainId"}]"#).await;
    let v: Value = serde_json::from_slice(&answer).unwrap();
    assert_eq!(v, json!([{"jsonrpc":"2.0","id":"x","result":"0x7a69"}]));
}

#[tokio::test]
async fn batches_keep_order_and_judge_entries_one_by_one() {
    let (_fleet, gw) = gateway_on_one_replica().await;
    let body = format!(
        r#"[{{"jsonrpc":"2.0","id":1,"method":"eth_chainId"}},
            {{"jsonrpc":"2.0","id":"b","method":"eth_getBalance","params":["{DEV}","0x1"]}},
            5,
            {{"jsonrpc":"2.0","id":3,"method":"eth_noSuchMethod","params":[]}},
            {{"jsonrpc":"1.0","id":4,"method":"eth_chainId"}},
            {{"jsonrpc":"2.0","id":null,"method":"eth_blockNumber"}}]"#
    );
    let (status, answer) = post(&gw.url, body).await;
    assert_eq!(status, 200);
    let v: Value = serde_json::from_slice(&answer).unwrap();
    let v = v.as_array().unwrap();
    assert_eq!(v.len(), 6);
    assert_eq!(v[0]["result"], "0x7a69");
    assert_eq!(v[1]["id"], "b");
    assert!(v[1]["result"].as_str().unwrap().starts_with("0x"));
    assert_eq!(
        (v[2]["id"].clone(), v[2]["error"]["code"].clone()),
        (Value::Null, json!(-32600))
    );
    assert_eq!(
        (v[3]["id"].clone(), v[3]["error"]["code"].clone()),
        (json!(3), json!(-32601))
    );
    assert_eq!(
        (v[4]["id"].clone(), v[4]["error"]["code"].clone()),
        (json!(4), json!(-32600))
    );
    assert_eq!(
        (v[5]["id"].clone(), v[5]["result"].clone()),
        (Value::Null, json!("0x2"))
    );
}

/// Each bad input and the answer it must get.
#[tokio::test]
async fn bad_input_gets_a_clear_answer() {
    let (_fleet, gw) = gateway_on_one_replica().await;
    let error_of = |status: u16, answer: &bytes::Bytes| -> (u16, i64, Value) {
        let v: Value =
            serde_json::from_slice(answer).unwrap_or_else(|_| panic!("not JSON: {answer:?}"));
        (
            status,
            v["error"]["code"].as_i64().unwrap(),
            v["id"].clone(),
        )
    };

    let (s, a) = post(&gw.url, "{not json").await;
    assert_eq!(error_of(s, &a), (200, -32700, Value::Null), "not JSON");
    let (s, a) = post(
        &gw.url,
        &b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"eth_\xff\"}"[..],
    )
    .await;
    assert_eq!(error_of(s, &a), (200, -32700, Value::Null), "invalid UTF-8");
    for body in ["42", "\"eth_chainId\"", "null", "true"] {
        let (s, a) = post(&gw.url, body).await;
        assert_eq!(
            error_of(s, &a),
            (200, -32600, Value::Null),
            "not an object or array: {body}"
        );
    }
    let (s, a) = post(&gw.url, "[]").await;
    assert_eq!(error_of(s, &a), (200, -32600, Value::Null), "empty batch");
    let entry = r#"{"jsonrpc":"2.0","id":1,"method":"eth_chainId"}"#;
    let over = format!("[{}]", vec![entry; 101].join(","));
    let (s, a) = post(&gw.url, over).await;
    assert_eq!(
        error_of(s, &a),
        (200, -32600, Value::Null),
        "batch over the cap"
    );
    let at_cap = format!("[{}]", vec![entry; 100].join(","));
    let (_, a) = post(&gw.url, at_cap).await;
    assert_eq!(
        serde_json::from_slice::<Value>(&a)
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        100,
        "batch at the cap"
    );

    let big = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"eth_call","params":["{}"]}}"#,
        "a".repeat(6 << 20)
    );
    let (s, a) = post(&gw.url, big).await;
    assert_eq!(error_of(s, &a).0, 413, "body over the cap");
    let (s, a) = post_with(&gw.url, entry, Some("text/plain")).await;
    assert_eq!(error_of(s, &a).0, 415, "wrong content type");
    let (s, a) = post_with(&gw.url, entry, Some("application/x-www-form-urlencoded")).await;
    assert_eq!(error_of(s, &a).0, 415, "form content type");
    let (s, _) = post_with(&gw.url, entry, None).await;
    assert_eq!(s, 200, "no content type is accepted");

    let huge_method = format!(
        r#"{{"jsonrpc":"2.0","id":"m","method":"{}","params":[]}}"#,
        "x".repeat(1 << 20)
    );
    let (s, a) = post(&gw.url, huge_method).await;
    assert_eq!(
        error_of(s, &a),
        (200, -32600, json!("m")),
        "a 1 MB method name"
    );
    assert!(a.len() < 1024, "the error does not echo the name back");

    // The gateway still serves after all of that.
    assert_eq!(result(&gw.url, "eth_chainId", json!([])).await, "0x7a69");
}

#[tokio::test]
async fn raw_tcp_garbage_and_wrong_http_are_handled() {
    let (_fleet, gw) = gateway_on_one_replica().await;
    let addr = gw.url.trim_start_matches("http://").to_string();
    // Not HTTP at all: the connection is answered with an error or closed, never hangs.
    let a = addr.clone();
    let reply = tokio::task::spawn_blocking(move || {
        let mut s = std::net::TcpStream::connect(&a).unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        s.write_all(b"\x16\x03\x01 garbage that is not HTTP\r\n\r\n")
            .unwrap();
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf);
        buf
    })
    .await
    .unwrap();
    let text = String::from_utf8_lossy(&reply);
    assert!(
        reply.is_empty() || text.starts_with("HTTP/1.1 400"),
        "{text}"
    );
    // A GET is refused with 405 and says POST.
    let response = client()
        .request(
            http::Request::get(&gw.url)
                .body(Default::default())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
    assert_eq!(response.headers()["allow"], "POST");
    // An unknown network path is a 404 with a JSON-RPC error.
    let (s, a) = post(
        &format!("{}/nope", gw.url),
        r#"{"jsonrpc":"2.0","id":1,"method":"eth_chainId"}"#,
    )
    .await;
    assert_eq!(s, 404);
    assert_eq!(
        serde_json::from_slice::<Value>(&a).unwrap()["error"]["code"],
        -32601
    );
    // The named network answers at /dev as at /.
    assert_eq!(
        result(&format!("{}/dev", gw.url), "eth_chainId", json!([])).await,
        "0x7a69"
    );
}

async fn gateway_with_server_limits(server: &str) -> (rpcgate_fleet::Fleet, Gw) {
    let fleet = fleet(1).await;
    fleet.mine_blocks(2).await.unwrap();
    let y = yaml(fleet.chain_id(), &fleet_ups(&fleet), "").replacen(
        "listen: 127.0.0.1:0\n",
        &format!("listen: 127.0.0.1:0\nserver:\n{server}"),
        1,
    );
    let gw = start_gateway(&y).await;
    wait_synced(&gw, 1, 2).await;
    (fleet, gw)
}

#[tokio::test]
async fn a_batch_stops_growing_past_its_response_budget() {
    let (_fleet, gw) =
        gateway_with_server_limits("  max_batch_response_bytes: 4096\n  batch_concurrency: 1\n")
            .await;
    let entries: Vec<Value> = (0..20)
        .map(|i| json!({"jsonrpc":"2.0","id":i,"method":"eth_getBlockByNumber","params":["0x1",true]}))
        .collect();
    let (status, answer) = post(&gw.url, Value::Array(entries).to_string()).await;
    assert_eq!(status, 200);
    let v: Value = serde_json::from_slice(&answer).unwrap();
    let v = v.as_array().unwrap();
    assert_eq!(v.len(), 20, "every entry is answered");
    let served = v.iter().filter(|e| e.get("result").is_some()).count();
    assert!((1..20).contains(&served), "served {served} of 20");
    for (i, e) in v.iter().enumerate() {
        assert_eq!(e["id"], i, "order and ids kept");
        if e.get("error").is_some() {
            assert_eq!(e["error"]["code"], -32005);
        }
    }
}

#[tokio::test]
async fn slow_clients_are_cut_off() {
    let (_fleet, gw) = gateway_with_server_limits("  body_read_timeout: 300ms\n").await;
    let addr = gw.url.trim_start_matches("http://").to_string();
    let exchange = |request: &'static [u8]| {
        let addr = addr.clone();
        tokio::task::spawn_blocking(move || {
            let mut s = std::net::TcpStream::connect(&addr).unwrap();
            s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
                .unwrap();
            s.write_all(request).unwrap();
            let mut buf = Vec::new();
            let _ = s.read_to_end(&mut buf);
            String::from_utf8_lossy(&buf).into_owned()
        })
    };
    // A body that never arrives in full: 408 with a JSON-RPC error.
    let reply = exchange(b"POST / HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"jsonrpc\"")
        .await
        .unwrap();
    assert!(reply.starts_with("HTTP/1.1 408"), "{reply}");
    assert!(reply.contains("\"error\""), "{reply}");
    // Headers that never end: the connection is closed (hyper answers 408 or just closes).
    let reply = exchange(b"POST / HTTP/1.1\r\nhost: x\r\n").await.unwrap();
    assert!(
        reply.is_empty() || reply.starts_with("HTTP/1.1 408"),
        "{reply}"
    );
}
