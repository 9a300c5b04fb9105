//! Method routes (`routes:`): a send goes to a relay only (a `tier: route`
//! upstream, here a tap in front of a fleet replica, whose counters show
//! what it received), falls back to the primaries only when the route says
//! so, a trace route keeps to its upstream with its own timeout, and a relay
//! that answers no head probes neither needs them nor makes the gateway
//! unready. Every tap counts what reached it: 0 where nothing may go.

use std::time::Duration;

use rpcgate_fleet::{Fault, Tap};
use serde_json::json;

use crate::support::*;

/// `rpcgate_routed_calls_total` of `route` and `outcome` (0 when absent).
async fn routed(admin: &str, route: &str, outcome: &str) -> u64 {
    scrape(admin).await.value(
        "rpcgate_routed_calls_total",
        &[("route", route), ("outcome", outcome)],
    ) as u64
}

async fn readyz(admin: &str) -> u16 {
    get(&format!("{admin}/readyz")).await.0
}

fn sends(taps: &[&Tap]) -> Vec<u64> {
    taps.iter()
        .map(|t| t.count("eth_sendRawTransaction"))
        .collect()
}

/// A network of `r0`, `r1` (primaries behind `taps`) and `relay`, with
/// `route` as its one route of eth_sendRawTransaction.
fn send_config(chain_id: u64, taps: &[Tap; 2], relay: &Tap, route: &str) -> String {
    let ups = vec![
        up("r0", taps[0].url(), None),
        up("r1", taps[1].url(), None),
        up("relay", relay.url(), None).with("tier: route"),
    ];
    format!(
        "{}    routes:\n      - methods: [eth_sendRawTransaction]\n        upstreams: [relay]\n{route}",
        yaml(chain_id, &ups, ROUTING_ONLY)
    )
}

#[tokio::test]
async fn a_send_reaches_only_the_relay_and_a_down_relay_falls_back_only_when_allowed() {
    let fleet = fleet(2).await;
    fleet.mine().await.unwrap();
    let taps = [
        Tap::start(&fleet.http_url(0)).await.unwrap(),
        Tap::start(&fleet.http_url(1)).await.unwrap(),
    ];
    let relay = Tap::start(&fleet.http_url(0)).await.unwrap();
    let id = fleet.chain_id();
    let strict = start_gateway(&send_config(
        id,
        &taps,
        &relay,
        "        name: send-strict\n",
    ))
    .await;
    let lenient = start_gateway(&send_config(
        id,
        &taps,
        &relay,
        "        name: send-lenient\n        fallback: primary\n",
    ))
    .await;
    wait_synced(&strict, 2, 1).await;
    wait_synced(&lenient, 2, 1).await;
    let primaries = [&taps[0], &taps[1]];

    // Up: each gateway's send reaches the relay alone, and the hash comes back.
    for gw in [&strict, &lenient] {
        let (raw, hash) = fleet.sign_transfer(OTHER, 1).await.unwrap();
        let answer = call(&gw.url, "eth_sendRawTransaction", json!([raw])).await;
        assert_eq!(answer["result"], json!(hash), "{answer}");
    }
    assert_eq!(relay.count("eth_sendRawTransaction"), 2);
    assert_eq!(sends(&primaries), [0, 0], "a routed send reached a primary");
    assert_eq!(routed(&strict.admin, "send-strict", "routed").await, 1);
    assert_eq!(routed(&lenient.admin, "send-lenient", "routed").await, 1);
    // Ordinary calls never reach the relay (it has no head tracker either).
    let before = relay.total();
    for _ in 0..10 {
        let answer = call(&strict.url, "eth_getBalance", json!([OTHER, "latest"])).await;
        assert!(answer["result"].is_string(), "{answer}");
    }
    assert_eq!(relay.total(), before, "a read reached the relay");

    // The relay stops: refused connections, so it surely did not get the call.
    drop(relay);
    let (raw, _) = fleet.sign_transfer(OTHER, 1).await.unwrap();
    let body = json!({"jsonrpc": "2.0", "id": "tx-7", "method": "eth_sendRawTransaction", "params": [raw]});
    let answer = post_json(&strict.url, &body).await;
    assert_eq!(answer["id"], json!("tx-7"), "{answer}");
    assert_eq!(answer["error"]["code"], json!(-32000), "{answer}");
    assert!(answer.get("result").is_none(), "{answer}");
    assert_eq!(
        sends(&primaries),
        [0, 0],
        "without fallback, a send went elsewhere"
    );
    assert_eq!(routed(&strict.admin, "send-strict", "failed").await, 1);

    // With `fallback: primary`, one primary gets it (once) and answers.
    let (raw, hash) = fleet.sign_transfer(OTHER, 1).await.unwrap();
    let answer = call(&lenient.url, "eth_sendRawTransaction", json!([raw])).await;
    assert_eq!(answer["result"], json!(hash), "{answer}");
    assert_eq!(sends(&primaries).iter().sum::<u64>(), 1);
    assert_eq!(routed(&lenient.admin, "send-lenient", "fallback").await, 1);
}

#[tokio::test]
async fn a_trace_route_keeps_to_its_upstream_with_its_own_timeout() {
    let fleet = fleet(2).await;
    fleet.mine().await.unwrap();
    let (_, hash) = fleet.transfer(OTHER, 1).await.unwrap();
    let height = fleet.mine().await.unwrap();
    let taps = [
        Tap::start(&fleet.http_url(0)).await.unwrap(),
        Tap::start(&fleet.http_url(1)).await.unwrap(),
    ];
    let ups = vec![
        up("r0", taps[0].url(), None),
        up("archive", taps[1].url(), None),
    ];
    // Any attempt gets 300 ms (no method timeouts), the route's 5 s.
    let extra = format!("request_timeout: 300ms\nmethod_timeouts: {{}}\n{ROUTING_ONLY}");
    let config = format!(
        "{}    routes:\n      - methods: [\"debug_*\", \"trace_*\"]\n        upstreams: [archive]\n        timeout: 5s\n        name: traces\npolicy:\n  anonymous:\n    allow: ['@default', 'debug_*']\n",
        yaml(fleet.chain_id(), &ups, &extra)
    );
    let gw = start_gateway(&config).await;
    wait_synced(&gw, 2, height).await;

    for _ in 0..4 {
        let answer = call(&gw.url, "debug_traceTransaction", json!([hash])).await;
        assert!(answer["result"].is_object(), "{answer}");
    }
    assert_eq!(taps[1].count("debug_traceTransaction"), 4);
    assert_eq!(
        taps[0].count("debug_traceTransaction"),
        0,
        "a traced call left its route"
    );

    // Slower than any ordinary attempt may take, within the route's timeout.
    taps[1].set_fault_on(
        "debug_traceTransaction",
        Fault::Delay(Duration::from_millis(900)),
    );
    let answer = call(&gw.url, "debug_traceTransaction", json!([hash])).await;
    assert!(
        answer["result"].is_object(),
        "the route's timeout did not apply: {answer}"
    );
    assert_eq!(taps[1].count("debug_traceTransaction"), 5);
    assert_eq!(taps[0].count("debug_traceTransaction"), 0);
    // The same delay on an ordinary read times out (the network's 300 ms).
    taps[0].set_fault_on(
        "eth_getTransactionByHash",
        Fault::Delay(Duration::from_millis(900)),
    );
    taps[1].set_fault_on(
        "eth_getTransactionByHash",
        Fault::Delay(Duration::from_millis(900)),
    );
    let answer = call(&gw.url, "eth_getTransactionByHash", json!([hash])).await;
    assert_eq!(answer["error"]["code"], json!(-32000), "{answer}");
    assert_eq!(routed(&gw.admin, "traces", "routed").await, 5);
}

#[tokio::test]
async fn a_relay_that_answers_no_head_probes_is_usable_and_keeps_the_gateway_ready() {
    let fleet = fleet(1).await;
    fleet.mine().await.unwrap();
    let tap = Tap::start(&fleet.http_url(0)).await.unwrap();
    let relay = Tap::start(&fleet.http_url(0)).await.unwrap();
    // A private-mempool RPC may answer no head calls at all.
    relay.set_fault_on("eth_blockNumber", Fault::Status(404));
    let ups = vec![
        up("r0", tap.url(), None),
        up("relay", relay.url(), None).with("tier: route"),
    ];
    let policy = format!(
        "policy:\n  clients:\n    searcher:\n      key_sha256: [{}]\n      allow: ['@default', eth_sendBundle, eth_sendPrivateTransaction]\n",
        sha256_hex(KEY)
    );
    let config = format!(
        "{}    routes:\n      - methods: [eth_sendRawTransaction, eth_sendBundle, eth_sendPrivateTransaction, eth_cancelPrivateTransaction]\n        upstreams: [relay]\n        name: private\n{policy}",
        yaml(fleet.chain_id(), &ups, ROUTING_ONLY)
    );
    let gw = start_gateway(&config).await;
    wait_synced(&gw, 1, 1).await;
    assert_eq!(readyz(&gw.admin).await, 200);
    let height = fleet.mine().await.unwrap();
    wait_synced(&gw, 1, height).await;
    assert_eq!(readyz(&gw.admin).await, 200);
    assert_eq!(relay.total(), 0, "the relay got a probe or a read");
    assert!(
        gw.view().backends.iter().all(|b| b.backend.name != "relay"),
        "the relay is in the view"
    );

    let (raw, hash) = fleet.sign_transfer(OTHER, 1).await.unwrap();
    let answer = call(&gw.url, "eth_sendRawTransaction", json!([raw])).await;
    assert_eq!(answer["result"], json!(hash), "{answer}");
    assert_eq!(relay.count("eth_sendRawTransaction"), 1);
    assert_eq!(tap.count("eth_sendRawTransaction"), 0);

    // Private order flow: refused by the policy before any route for a
    // caller not allowed it; forwarded unchanged to the relay for one that is.
    let bundle = json!({"jsonrpc": "2.0", "id": 9, "method": "eth_sendBundle", "params": [{"txs": [raw], "blockNumber": hex(height + 1)}]});
    let (_, _, refused) = send(&gw.url, &[], &bundle).await;
    assert_eq!(refused["error"]["code"], json!(-32601), "{refused}");
    let why = refused["error"]["message"].as_str().unwrap();
    assert!(why.contains("not allowed"), "{refused}");
    assert_eq!(relay.count("eth_sendBundle"), 0);
    let (status, _, answered) = send(&gw.url, &[("x-api-key", KEY)], &bundle).await;
    assert_eq!(status, 200, "{answered}");
    // Anvil is no relay: its own answer (method not found) comes back as it is.
    assert_eq!(answered["id"], json!(9), "{answered}");
    let relayed = answered["error"]["message"].as_str().unwrap_or("");
    assert!(!relayed.contains("not allowed"), "{answered}");
    assert_eq!(relay.count("eth_sendBundle"), 1);
    assert_eq!(tap.count("eth_sendBundle"), 0);
    assert_eq!(routed(&gw.admin, "private", "routed").await, 2);
    assert_eq!(readyz(&gw.admin).await, 200);
}
