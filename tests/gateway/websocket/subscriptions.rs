//! JSON-RPC and eth_subscribe over a client WebSocket, with a real
//! tokio-tungstenite client, against a real anvil fleet: answers as over
//! HTTP, newHeads and logs in order across the loss of the backend carrying
//! the upstream subscription, logs of orphaned blocks removed once on a
//! reorg, multiplexing, shutdown, gauges. The bounds on a connection
//! (queued bytes, topics, upstream feeds) are in `limits`.

use std::collections::BTreeSet;

use futures_util::SinkExt;
use rpcgate::subscriptions::Kind;
use rpcgate_fleet::Fleet;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

use super::{close_code, connect, exchange, next_text, notification, rpc, subscribe, Ws};
use crate::support::*;

/// Topic 42: what the logger contract's constructor logs.
const TOPIC_42: &str = "0x000000000000000000000000000000000000000000000000000000000000002a";

/// A fleet of `n` with one mined block and a gateway in front, all synced.
async fn setup(n: usize, extra_top: &str) -> (Fleet, Gw) {
    let fleet = fleet(n).await;
    fleet.mine().await.unwrap();
    let config = format!(
        "{extra_top}{}",
        yaml(fleet.chain_id(), &fleet_ups(&fleet), "")
    );
    let gw = start_gateway(&config).await;
    wait_synced(&gw, n, 1).await;
    (fleet, gw)
}

fn replica_index(name: &str) -> usize {
    name.trim_start_matches('r')
        .parse()
        .expect("a fleet backend")
}

#[tokio::test]
async fn calls_over_a_websocket_answer_as_over_http() {
    let extra = format!(
        "server:\n  max_body_bytes: 2048\npolicy:\n  clients:\n    dapp:\n      key_sha256: [{}]\n",
        sha256_hex(KEY)
    );
    let (fleet, gw) = setup(2, &extra).await;
    fleet.transfer(OTHER, 77).await.unwrap();
    let height = fleet.mine().await.unwrap();
    wait_synced(&gw, 2, height).await;
    let mut ws = connect(&gw, "/").await;

    // The same answers as over HTTP, ids echoed byte for byte.
    for (id, method, params) in [
        ("7", "eth_chainId", json!([])),
        ("\"abc\"", "eth_blockNumber", json!([])),
        ("1.50", "eth_getBalance", json!([OTHER, "latest"])),
        ("null", "eth_getBlockByNumber", json!(["0x1", false])),
        (
            "-3",
            "eth_getBalance",
            json!(["0xnot-an-address", "latest"]),
        ),
    ] {
        let body =
            format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"{method}","params":{params}}}"#);
        let text = exchange(&mut ws, &body).await;
        assert!(text.contains(&format!("\"id\":{id},")), "{text}");
        let (_, http) = post(&gw.url, body).await;
        let http: Value = serde_json::from_slice(&http).unwrap();
        assert_eq!(
            serde_json::from_str::<Value>(&text).unwrap(),
            http,
            "{method}"
        );
    }
    // A batch: answers in order, nothing for the notification.
    let batch = rpc(
        &mut ws,
        &json!([
            {"jsonrpc":"2.0","id":1,"method":"eth_chainId"},
            {"jsonrpc":"2.0","method":"eth_chainId"},
            {"jsonrpc":"2.0","id":"two","method":"eth_blockNumber"},
        ]),
    )
    .await;
    assert_eq!(batch.as_array().unwrap().len(), 2, "{batch}");
    assert_eq!(batch[0]["result"], hex(fleet.chain_id()));
    assert_eq!(
        (batch[1]["id"].clone(), batch[1]["result"].clone()),
        (json!("two"), json!(hex(height)))
    );
    // A method outside the allowlist: -32601 with the caller's id.
    let blocked = rpc(
        &mut ws,
        &json!({"jsonrpc":"2.0","id":9,"method":"eth_accounts"}),
    )
    .await;
    assert_eq!(
        (blocked["id"].clone(), blocked["error"]["code"].clone()),
        (json!(9), json!(-32601))
    );
    // Not JSON: -32700, id null.
    let bad: Value = serde_json::from_str(&exchange(&mut ws, "{nope").await).unwrap();
    assert_eq!(
        (bad["id"].clone(), bad["error"]["code"].clone()),
        (Value::Null, json!(-32700))
    );
    // JSON in a binary frame is answered like text.
    ws.send(Message::binary(
        r#"{"jsonrpc":"2.0","id":5,"method":"eth_chainId"}"#
            .as_bytes()
            .to_vec(),
    ))
    .await
    .unwrap();
    let v: Value = serde_json::from_str(&next_text(&mut ws).await).unwrap();
    assert_eq!(v["result"], hex(fleet.chain_id()));
    // A bad subscription is refused with the id.
    let e = rpc(
        &mut ws,
        &json!({"jsonrpc":"2.0","id":4,"method":"eth_subscribe","params":["syncing"]}),
    )
    .await;
    assert_eq!(
        (e["id"].clone(), e["error"]["code"].clone()),
        (json!(4), json!(-32602))
    );
    let e = rpc(
        &mut ws,
        &json!({"jsonrpc":"2.0","id":3,"method":"eth_unsubscribe","params":["0x1234"]}),
    )
    .await;
    assert_eq!(e["result"], json!(false));

    // Over HTTP, eth_subscribe is a clear error.
    let e = call(&gw.url, "eth_subscribe", json!(["newHeads"])).await;
    assert_eq!(e["error"]["code"], -32000, "{e}");
    assert!(e["error"]["message"]
        .as_str()
        .unwrap()
        .contains("WebSocket"));

    // Over max_body_bytes: close 1009.
    let big = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":["{}"]}}"#,
        "x".repeat(4096)
    );
    ws.send(Message::text(big)).await.unwrap();
    assert_eq!(close_code(&mut ws).await, Some(CloseCode::Size));

    // A key in the path works; an unknown key is refused before upgrading.
    let mut keyed = connect(&gw, &format!("/dev/{KEY}")).await;
    let v = rpc(
        &mut keyed,
        &json!({"jsonrpc":"2.0","id":1,"method":"eth_chainId"}),
    )
    .await;
    assert_eq!(v["result"], hex(fleet.chain_id()));
    let url = format!(
        "{}/dev/not-the-key-at-all",
        gw.url.replace("http://", "ws://")
    );
    match tokio_tungstenite::connect_async(url).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 401)
        }
        other => panic!(
            "expected HTTP 401, got {:?}",
            other.map(|(_, r)| r.status())
        ),
    }
}

#[tokio::test]
async fn new_heads_arrive_once_in_order() {
    let (fleet, gw) = setup(2, "").await;
    let mut ws = connect(&gw, "/dev").await;
    let id = subscribe(&mut ws, json!(["newHeads"])).await;
    let mut seen = Vec::new();
    for _ in 0..5 {
        let h = fleet.mine().await.unwrap();
        let header = notification(&mut ws, &id).await;
        seen.push(quantity(&header["number"]));
        assert_eq!(*seen.last().unwrap(), h);
        assert_eq!(
            header["hash"],
            json!(fleet.block_hash(0, h).await.unwrap().unwrap())
        );
    }
    assert_eq!(seen, (2..=6).collect::<Vec<_>>());
}

/// Waits until the feed of `kind` is subscribed on a backend; returns its index.
async fn carrier(gw: &Gw, kind: Kind) -> usize {
    let hub = gw.gateway.subscriptions().hub("dev");
    let mut found = None;
    wait_for("an upstream subscription", || {
        found = hub.carrier(kind);
        let done = found.is_some();
        async move { done }
    })
    .await;
    replica_index(&found.unwrap())
}

#[tokio::test]
async fn new_heads_have_no_gap_when_the_carrying_backend_stops() {
    let (fleet, gw) = setup(3, "").await;
    let mut ws = connect(&gw, "/dev").await;
    let id = subscribe(&mut ws, json!(["newHeads"])).await;
    let mut numbers = Vec::new();
    for _ in 0..2 {
        fleet.mine().await.unwrap();
        numbers.push(quantity(&notification(&mut ws, &id).await["number"]));
    }
    let hub = gw.gateway.subscriptions().hub("dev");
    let carrying = carrier(&gw, Kind::NewHeads).await;
    // The carrier misses two blocks the others get (it stays eligible: two
    // behind is within max_lag_blocks), then dies, and mining goes on: the
    // client must still see every number, from the backend that takes over.
    fleet.hold(carrying).await.unwrap();
    fleet.mine_blocks(2).await.unwrap();
    fleet.stop(carrying).await.unwrap();
    for _ in 0..3 {
        fleet.mine().await.unwrap();
    }
    let top = fleet.height().await;
    while numbers.last() != Some(&top) {
        numbers.push(quantity(&notification(&mut ws, &id).await["number"]));
    }
    assert_eq!(
        numbers,
        (2..=top).collect::<Vec<_>>(),
        "every block once, in order"
    );
    assert!(hub.failovers() >= 1);
    let now = carrier(&gw, Kind::NewHeads).await;
    assert_ne!(now, carrying);
}

#[tokio::test]
async fn logs_have_no_gap_when_the_carrying_backend_stops() {
    let (fleet, gw) = setup(3, "").await;
    let mut ws = connect(&gw, "/dev").await;
    let id = subscribe(&mut ws, json!(["logs", {"topics": [TOPIC_42]}])).await;
    // One contract deployment per block; each constructor logs topic 42.
    let deploy_and_mine = || async {
        fleet.deploy(LOGGER_INIT, 200_000).await.unwrap();
        fleet.mine().await.unwrap()
    };
    let mut blocks = Vec::new();
    for _ in 0..2 {
        let h = deploy_and_mine().await;
        let log = notification(&mut ws, &id).await;
        assert_eq!(quantity(&log["blockNumber"]), h);
        blocks.push(h);
    }
    let carrying = carrier(&gw, Kind::Logs).await;
    fleet.hold(carrying).await.unwrap();
    for _ in 0..2 {
        deploy_and_mine().await;
    }
    fleet.stop(carrying).await.unwrap();
    for _ in 0..2 {
        deploy_and_mine().await;
    }
    let top = fleet.height().await;
    let mut keys = BTreeSet::new();
    while blocks.last() != Some(&top) {
        let log = notification(&mut ws, &id).await;
        assert_eq!(log["topics"][0], TOPIC_42);
        assert!(
            keys.insert((log["blockHash"].to_string(), log["logIndex"].to_string())),
            "a log delivered twice: {log}"
        );
        blocks.push(quantity(&log["blockNumber"]));
    }
    let first = blocks[0];
    assert_eq!(
        blocks,
        (first..=top).collect::<Vec<_>>(),
        "one log per block, none missing"
    );
    assert!(gw.gateway.subscriptions().hub("dev").failovers() >= 1);
}

#[tokio::test]
async fn clients_with_the_same_subscription_share_one_upstream() {
    let (fleet, gw) = setup(2, "").await;
    let hub = gw.gateway.subscriptions().hub("dev");
    let (mut a, mut b) = (connect(&gw, "/").await, connect(&gw, "/dev").await);
    let ida = subscribe(&mut a, json!(["newHeads"])).await;
    let idb = subscribe(&mut b, json!(["newHeads"])).await;
    assert_ne!(ida, idb);
    assert!(ida.starts_with("0x") && ida.len() == 34, "{ida}");
    let h = fleet.mine().await.unwrap();
    assert_eq!(quantity(&notification(&mut a, &ida).await["number"]), h);
    assert_eq!(quantity(&notification(&mut b, &idb).await["number"]), h);
    assert_eq!((hub.feeds(), hub.upstream_subscribes()), (1, 1));
    // Another kind is another upstream subscription.
    let idl = subscribe(&mut b, json!(["logs", {}])).await;
    wait_for("a second feed", || {
        let n = hub.upstream_subscribes();
        async move { n == 2 }
    })
    .await;
    assert_eq!(hub.feeds(), 2);
    // The last client leaving stops a feed: by unsubscribing, or by closing.
    let r = rpc(
        &mut b,
        &json!({"jsonrpc":"2.0","id":1,"method":"eth_unsubscribe","params":[idl]}),
    )
    .await;
    assert_eq!(r["result"], true);
    assert_eq!(hub.feeds(), 1);
    a.close(None).await.unwrap();
    let h = fleet.mine().await.unwrap();
    assert_eq!(quantity(&notification(&mut b, &idb).await["number"]), h);
    assert_eq!(hub.feeds(), 1);
    drop(b);
    wait_for("no feed left", || {
        let n = hub.feeds();
        async move { n == 0 }
    })
    .await;
    assert_eq!(hub.upstream_subscribes(), 2);
}

#[tokio::test]
async fn the_subscription_cap_holds_per_connection() {
    let (_fleet, gw) = setup(1, "server:\n  max_subscriptions_per_connection: 2\n").await;
    let mut ws = connect(&gw, "/").await;
    subscribe(&mut ws, json!(["newHeads"])).await;
    subscribe(&mut ws, json!(["newPendingTransactions"])).await;
    let e = rpc(
        &mut ws,
        &json!({"jsonrpc":"2.0","id":3,"method":"eth_subscribe","params":["newHeads"]}),
    )
    .await;
    assert_eq!(e["error"]["code"], -32005, "{e}");
    // Another connection has its own allowance.
    let mut other = connect(&gw, "/").await;
    subscribe(&mut other, json!(["newHeads"])).await;
}

#[tokio::test]
async fn shutdown_closes_websockets_with_going_away() {
    let (_fleet, gw) = setup(1, "").await;
    let mut ws = connect(&gw, "/").await;
    subscribe(&mut ws, json!(["newHeads"])).await;
    drop(gw); // fires the server's shutdown future
    assert_eq!(close_code(&mut ws).await, Some(CloseCode::Away));
}

#[tokio::test]
async fn websocket_gauges_go_up_and_back_down() {
    let fleet = fleet(1).await;
    fleet.mine().await.unwrap();
    let config =
        yaml(fleet.chain_id(), &fleet_ups(&fleet), "").replace("  dev:\n", "  wsgauges:\n");
    let gw = start_gateway(&config).await;
    let m = &gw.gateway.metrics().ws;
    let conns = m.connections.with_label_values(&["wsgauges"]);
    let heads = m.subscriptions.with_label_values(&["wsgauges", "newHeads"]);
    let logs = m.subscriptions.with_label_values(&["wsgauges", "logs"]);
    let mut ws = connect(&gw, "/").await;
    let id = subscribe(&mut ws, json!(["newHeads"])).await;
    subscribe(&mut ws, json!(["logs"])).await;
    assert_eq!((conns.get(), heads.get(), logs.get()), (1, 1, 1));
    rpc(
        &mut ws,
        &json!({"jsonrpc":"2.0","id":1,"method":"eth_unsubscribe","params":[id]}),
    )
    .await;
    assert_eq!((heads.get(), logs.get()), (0, 1));
    ws.close(None).await.unwrap();
    wait_for("gauges back to zero", || {
        let (c, l) = (conns.get(), logs.get());
        async move { c == 0 && l == 0 }
    })
    .await;
    assert!(scrape(&gw.admin)
        .await
        .text
        .contains("rpcgate_ws_connections{network=\"wsgauges\"} 0"));
}

#[tokio::test]
async fn new_heads_move_off_a_backend_that_falls_behind() {
    let (fleet, gw) = setup(3, "").await;
    let mut ws = connect(&gw, "/dev").await;
    let id = subscribe(&mut ws, json!(["newHeads"])).await;
    fleet.mine().await.unwrap();
    let mut numbers = vec![quantity(&notification(&mut ws, &id).await["number"])];
    let carrying = carrier(&gw, Kind::NewHeads).await;
    // Its socket stays up, but it gets no blocks: once it lags more than
    // max_lag_blocks (2) it is not eligible, and the feed moves.
    fleet.hold(carrying).await.unwrap();
    fleet.mine_blocks(3).await.unwrap();
    let hub = gw.gateway.subscriptions().hub("dev");
    wait_for("the feed to move", || {
        let moved = hub.failovers() >= 1;
        async move { moved }
    })
    .await;
    let top = fleet.mine().await.unwrap();
    while numbers.last() != Some(&top) {
        numbers.push(quantity(&notification(&mut ws, &id).await["number"]));
    }
    assert_eq!(numbers, (2..=top).collect::<Vec<_>>());
    assert_ne!(carrier(&gw, Kind::NewHeads).await, carrying);
}

#[tokio::test]
async fn new_heads_repeat_a_number_only_after_a_reorg() {
    let (fleet, gw) = setup(2, "").await;
    let mut ws = connect(&gw, "/dev").await;
    let id = subscribe(&mut ws, json!(["newHeads"])).await;
    let mut seen = Vec::new();
    fleet.mine().await.unwrap();
    let checkpoint = fleet.checkpoint().await.unwrap();
    fleet.mine_blocks(2).await.unwrap();
    for _ in 0..3 {
        let h = notification(&mut ws, &id).await;
        seen.push((quantity(&h["number"]), h["hash"].clone()));
    }
    // Blocks 3 and 4 are replaced, and 5 is new.
    let top = fleet.reorg_to(&checkpoint, 3).await.unwrap();
    while seen.last().map(|(n, _)| *n) != Some(top) {
        let h = notification(&mut ws, &id).await;
        seen.push((quantity(&h["number"]), h["hash"].clone()));
    }
    let numbers: Vec<u64> = seen.iter().map(|(n, _)| *n).collect();
    assert_eq!(numbers, [2, 3, 4, 3, 4, 5]);
    assert_ne!(seen[1].1, seen[3].1, "block 3 again, with its new hash");
    assert_eq!(
        seen[3].1,
        json!(fleet.block_hash(0, 3).await.unwrap().unwrap())
    );
}

#[tokio::test]
async fn a_feed_that_moves_after_a_reorg_delivers_the_new_branch_from_where_it_forks() {
    let (fleet, gw) = setup(2, "").await;
    let mut ws = connect(&gw, "/dev").await;
    let id = subscribe(&mut ws, json!(["newHeads"])).await;
    let mut seen = Vec::new();
    fleet.mine().await.unwrap();
    let checkpoint = fleet.checkpoint().await.unwrap();
    fleet.mine_blocks(2).await.unwrap();
    for _ in 0..3 {
        let h = notification(&mut ws, &id).await;
        seen.push((quantity(&h["number"]), h["hash"].clone()));
    }
    // Both nodes go away, blocks 3 and 4 are replaced and 5 is new, and one
    // node comes back on the new branch: the feed moves to it with its head
    // (5) one above what clients have (4), on another branch.
    fleet.stop(0).await.unwrap();
    fleet.stop(1).await.unwrap();
    let top = fleet.reorg_to(&checkpoint, 3).await.unwrap();
    fleet.restart(0).await.unwrap();
    while seen.last().map(|(n, _)| *n) != Some(top) {
        let h = notification(&mut ws, &id).await;
        seen.push((quantity(&h["number"]), h["hash"].clone()));
    }
    let numbers: Vec<u64> = seen.iter().map(|(n, _)| *n).collect();
    assert_eq!(numbers, [2, 3, 4, 3, 4, 5], "the new branch from block 3");
    for (n, hash) in &seen[3..] {
        assert_eq!(
            *hash,
            json!(fleet.block_hash(0, *n).await.unwrap().unwrap())
        );
    }
}

#[tokio::test]
async fn logs_of_orphaned_blocks_come_back_removed_once() {
    let (fleet, gw) = setup(2, "").await;
    let (mut ws, id, mut seen, kept, checkpoint) = three_logged_blocks(&fleet, &gw).await;
    // Both deployments land again in the first replacement block; anvil
    // announces no removal itself, so what the client gets is the gateway's.
    let top = fleet.reorg_to(&checkpoint, 2).await.unwrap();
    let replacement = kept + 1;
    logs_until(&mut ws, &id, &mut seen, replacement).await;
    // One more block, so that a late or repeated removal would show.
    fleet.deploy(LOGGER_INIT, 200_000).await.unwrap();
    fleet.mine().await.unwrap();
    logs_until(&mut ws, &id, &mut seen, top + 1).await;

    assert_replaced_once(&fleet, &seen, replacement).await;
}

#[tokio::test]
async fn a_feed_that_moves_after_a_reorg_takes_back_the_replaced_blocks() {
    let (fleet, gw) = setup(2, "").await;
    let (mut ws, id, mut seen, kept, checkpoint) = three_logged_blocks(&fleet, &gw).await;
    // Both nodes go away, the chain is replaced from `kept + 1` up (both
    // deployments land again in the first replacement block), and one node
    // comes back on the new branch: the feed moves to it with two delivered
    // blocks replaced, one of them below what its logs had covered.
    fleet.stop(0).await.unwrap();
    fleet.stop(1).await.unwrap();
    fleet.reorg_to(&checkpoint, 3).await.unwrap();
    fleet.restart(0).await.unwrap();
    fleet.deploy(LOGGER_INIT, 200_000).await.unwrap();
    let last = fleet.mine().await.unwrap();
    logs_until(&mut ws, &id, &mut seen, last).await;

    assert_replaced_once(&fleet, &seen, kept + 1).await;
}

/// A logs subscription (topic 42) and three blocks with one log each,
/// a checkpoint taken after the first: the socket, the subscription, the
/// logs seen, the first block and the checkpoint.
async fn three_logged_blocks(
    fleet: &Fleet,
    gw: &Gw,
) -> (Ws, String, Vec<SeenLog>, u64, rpcgate_fleet::Checkpoint) {
    let mut ws = connect(gw, "/dev").await;
    let id = subscribe(&mut ws, json!(["logs", {"topics": [TOPIC_42]}])).await;
    let mut seen = Vec::new();
    fleet.deploy(LOGGER_INIT, 200_000).await.unwrap();
    let kept = fleet.mine().await.unwrap();
    logs_until(&mut ws, &id, &mut seen, kept).await;
    let checkpoint = fleet.checkpoint().await.unwrap();
    for _ in 0..2 {
        fleet.deploy(LOGGER_INIT, 200_000).await.unwrap();
        let h = fleet.mine().await.unwrap();
        logs_until(&mut ws, &id, &mut seen, h).await;
    }
    assert_eq!(seen.len(), 3);
    (ws, id, seen, kept, checkpoint)
}

/// After the three logs of [`three_logged_blocks`], `seen` takes back the
/// last two once each, in order, before any new log, then carries both
/// deployments again in block `replacement` with its new hash.
async fn assert_replaced_once(fleet: &Fleet, seen: &[SeenLog], replacement: u64) {
    let orphaned = &seen[1..3];
    let after = &seen[3..];
    let removed: Vec<_> = after.iter().filter(|(r, ..)| *r).cloned().collect();
    let expected: Vec<_> = orphaned
        .iter()
        .map(|(_, n, h, i)| (true, *n, h.clone(), i.clone()))
        .collect();
    assert_eq!(
        removed, expected,
        "each orphaned log removed once, in order: {after:?}"
    );
    let first_new = after.iter().position(|(r, ..)| !r).unwrap();
    assert!(
        after[first_new..].iter().all(|(r, ..)| !r),
        "removals come before the logs of the replacing block: {after:?}"
    );
    let new_hash = json!(fleet.block_hash(0, replacement).await.unwrap().unwrap());
    let fresh: Vec<_> = after[first_new..]
        .iter()
        .filter(|(_, n, ..)| *n == replacement)
        .collect();
    assert_eq!(
        fresh.len(),
        2,
        "both logs again, in the replacement: {after:?}"
    );
    assert!(fresh.iter().all(|(_, _, h, _)| *h == new_hash));
}

/// A log as the client saw it: (removed, block number, block hash, log index).
type SeenLog = (bool, u64, Value, Value);

/// Reads logs of subscription `id` into `seen` until one of block `top`
/// that is not a removal.
async fn logs_until(ws: &mut Ws, id: &str, seen: &mut Vec<SeenLog>, top: u64) {
    while !seen.iter().any(|(r, n, _, _)| !r && *n == top) {
        let log = notification(ws, id).await;
        assert_eq!(log["topics"][0], TOPIC_42);
        seen.push((
            log["removed"] == json!(true),
            quantity(&log["blockNumber"]),
            log["blockHash"].clone(),
            log["logIndex"].clone(),
        ));
    }
}
