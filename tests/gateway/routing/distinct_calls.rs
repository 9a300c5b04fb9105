//! Every answer goes back to its own call: 10,000 distinct calls from 64
//! concurrent clients through one saturated backend (a single anvil, which
//! serves one call at a time while 64 wait), so the gateway's upstream
//! connections are reused for thousands of calls each, under contention.
//!
//! The call is `web3_sha3` of data unique to it: the node's answer is the
//! Keccak-256 of that data, computed here too, so an answer delivered to
//! another call (a connection's bytes read by the wrong caller, a reply
//! paired with the wrong id) cannot pass. Each call carries its own id,
//! numbers and strings alternating, checked as sent.
//!
//! `RPCGATE_TEST_SWAP_ANSWERS=1` swaps the answers of two calls of one
//! client before they are checked, to see the test fail as a mix-up would.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use serde_json::{json, Value};
use sha3::{Digest, Keccak256};

use crate::support::*;

const CLIENTS: usize = 64;
const CALLS: usize = 10_000;

/// Call `n`'s data: its number spelled in 8 bytes, then 24 of pattern.
fn data(n: usize) -> Vec<u8> {
    let mut d = (n as u64).to_be_bytes().to_vec();
    d.extend((0..24u8).map(|i| i.wrapping_mul(37) ^ (n as u8)));
    d
}

fn hex(bytes: &[u8]) -> String {
    let digits: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("0x{digits}")
}

/// Call `n`'s id: a number for even `n`, a string for odd.
fn id(n: usize) -> Value {
    if n.is_multiple_of(2) {
        json!(n)
    } else {
        json!(format!("call-{n}"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_distinct_calls_from_64_clients_each_get_their_own_answer() {
    let fleet = fleet(1).await;
    let gw = Arc::new(gateway_over(&fleet, ROUTING_ONLY, 0).await);
    let mut clients = Vec::new();
    for c in 0..CLIENTS {
        let url = gw.url.clone();
        clients.push(tokio::spawn(async move {
            // One keep-alive connection per client.
            let http = client();
            let mut answers = Vec::new();
            for n in (c..CALLS).step_by(CLIENTS) {
                let body = json!({"jsonrpc": "2.0", "id": id(n), "method": "web3_sha3", "params": [hex(&data(n))]});
                let request = http::Request::post(&url)
                    .header(http::header::CONTENT_TYPE, "application/json")
                    .body(Full::new(Bytes::from(body.to_string())))
                    .unwrap();
                let response = http.request(request).await.expect("HTTP exchange");
                let bytes = response.into_body().collect().await.unwrap().to_bytes();
                let answer: Value = serde_json::from_slice(&bytes)
                    .unwrap_or_else(|_| panic!("call {n}: not JSON: {bytes:?}"));
                answers.push((n, answer));
            }
            if c == 0 && std::env::var("RPCGATE_TEST_SWAP_ANSWERS").is_ok() {
                answers.swap(0, 1);
                let (a, b) = (answers[0].0, answers[1].0);
                (answers[0].0, answers[1].0) = (b, a);
            }
            answers
        }));
    }
    let mut checked = 0;
    for client in clients {
        for (n, answer) in client.await.unwrap() {
            assert_eq!(answer["id"], id(n), "call {n}'s id: {answer}");
            let expected = hex(&Keccak256::digest(data(n)));
            assert_eq!(
                answer["result"].as_str(),
                Some(expected.as_str()),
                "call {n}'s answer: {answer}"
            );
            checked += 1;
        }
    }
    assert_eq!(checked, CALLS);
}
