//! Client mistakes are not backend faults (security review F5, F7): a call
//! the backends refuse for its size, and a revert whose reason reads like a
//! pruned node's error, each reach one backend once and leave every backend
//! as it was: no ejection, no retry, no fallback, no state window learned.

use rpcgate_fleet::Tap;
use serde_json::{json, Value};

use crate::support::*;

/// Geth's request body limit (`defaultBodyLimit`, 5 MiB), and the gateway's
/// default `server.max_body_bytes`.
const GETH_BODY_LIMIT: usize = 5 * 1024 * 1024;

/// Three primaries (the fleet's replicas) and a `tier: fallback` upstream
/// (replica 0 again), each behind a tap; `extra` network keys. No cache:
/// every read reaches a backend.
async fn tapped(fleet: &rpcgate_fleet::Fleet, extra: &str) -> (Vec<Tap>, Gw) {
    let mut taps = tap_all(fleet).await;
    taps.push(Tap::start(&fleet.http_url(0)).await.unwrap());
    let ups: Vec<Up> = taps
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let u = up(&format!("r{i}"), t.url(), None);
            if i == 3 {
                u.with("tier: fallback")
            } else {
                u
            }
        })
        .collect();
    let y = with_cache(&yaml(fleet.chain_id(), &ups, extra), &["enabled: false"]);
    let gw = start_gateway(&y).await;
    let height = fleet.height().await;
    wait_view(&gw, "three primaries at the head", |v| {
        v.eligible().count() == 3 && v.served_head == Some(height)
    })
    .await;
    (taps, gw)
}

/// An `eth_call` without a block argument whose body is `len` bytes: the
/// gateway pins `latest`, appending the block number, so it leaves longer.
fn call_body_of(len: usize) -> String {
    let body = |n: usize| {
        json!({"jsonrpc":"2.0","id":1,"method":"eth_call","params":[{"to": format!("0x{}", "00".repeat(20)), "data": format!("0x{}", "00".repeat(n))}]}).to_string()
    };
    let n = (len - body(0).len()) / 2;
    let out = body(n);
    assert!(
        out.len() <= len && out.len() + 2 > len,
        "{} for {len}",
        out.len()
    );
    out
}

fn calls_of(taps: &[Tap], method: &str) -> Vec<u64> {
    taps.iter().map(|t| t.count(method)).collect()
}

#[tokio::test]
async fn a_body_that_outgrows_the_backends_limit_when_pinned_ejects_nothing() {
    let fleet = fleet(3).await;
    fleet.mine_blocks(3).await.unwrap();
    // The gateway judges the backends' limit higher than it is (6 MiB); the
    // nodes refuse over Geth's 5 MiB, as Geth does (413).
    let (taps, gw) = tapped(
        &fleet,
        "max_upstream_body_bytes: 6291456\neject_after_failures: 2",
    )
    .await;
    for t in &taps {
        t.set_body_limit(Some(GETH_BODY_LIMIT));
    }
    // At the gateway's own cap; pinned, a few bytes over the nodes' limit.
    let body = call_body_of(GETH_BODY_LIMIT - 1);
    for round in 0..3 {
        let (status, bytes) = post(&gw.url, body.clone()).await;
        let answer = json_or_null(&bytes);
        assert_eq!(status, 200, "round {round}: {answer}");
        assert_eq!(answer["id"], 1, "{answer}");
        assert_eq!(answer["error"]["code"], -32600, "{answer}");
        let message = answer["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("too large"), "{message}");
    }
    let calls = calls_of(&taps, "eth_call");
    eprintln!("eth_call reaching r0, r1, r2, the fallback: {calls:?}");
    assert_eq!(
        calls[..3].iter().sum::<u64>(),
        3,
        "one backend call per request: {calls:?}"
    );
    assert_eq!(calls[3], 0, "the fallback was called: {calls:?}");
    let view = gw.view();
    assert_eq!(view.eligible().count(), 3, "a backend left the view");
    assert!(view.backends.iter().all(|b| !b.backend.is_ejected()));
    assert!(!view.fallback_serving);

    // With the backends' limit as it is (the default, Geth's 5 MiB), the
    // same call is refused before it is sent: no backend call at all.
    let (taps2, gw2) = tapped(&fleet, "").await;
    let (status, bytes) = post(&gw2.url, body).await;
    let answer = json_or_null(&bytes);
    assert_eq!(
        (status, &answer["error"]["code"]),
        (200, &json!(-32600)),
        "{answer}"
    );
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("limit is 5242880 bytes"),
        "{answer}"
    );
    assert_eq!(calls_of(&taps2, "eth_call"), [0, 0, 0, 0]);
    drop(taps);
}

/// Init code that reverts with `Error("missing trie node")` (security
/// review F7): a revert reason is the caller's text.
const REVERTS_MISSING_TRIE_NODE: &str = concat!(
    "0x6064600c60003960646000fd",
    "08c379a0",
    "0000000000000000000000000000000000000000000000000000000000000020",
    "0000000000000000000000000000000000000000000000000000000000000011",
    "6d697373696e672074726965206e6f6465000000000000000000000000000000",
);

#[tokio::test]
async fn a_revert_reading_missing_trie_node_teaches_nothing_and_is_asked_once() {
    let fleet = fleet(3).await;
    fleet.mine_blocks(12).await.unwrap();
    let (taps, gw) = tapped(&fleet, "").await;
    let head = fleet.height().await;
    for depth in [2, 5, 10] {
        let params = json!([{"data": REVERTS_MISSING_TRIE_NODE}, hex(head - depth)]);
        let answer: Value = call(&gw.url, "eth_call", params).await;
        let message = answer["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("missing trie node"),
            "the node's revert: {answer}"
        );
    }
    let calls = calls_of(&taps, "eth_call");
    eprintln!("eth_call reaching r0, r1, r2, the fallback: {calls:?}");
    assert_eq!(
        calls.iter().sum::<u64>(),
        3,
        "one backend call per read: {calls:?}"
    );
    let view = gw.view();
    let kept: Vec<_> = view
        .backends
        .iter()
        .map(|b| b.backend.state_history())
        .collect();
    assert_eq!(kept, [None, None, None, None], "a window was learned");
    assert!(view
        .backends
        .iter()
        .all(|b| b.backend.missing_state_answers() == 0));
    assert_eq!(view.eligible().count(), 3);
}
