//! Filters owned by the gateway, on the 3-replica lockstep fleet: every block
//! and every log exactly once while replicas fail in turn, `removed: true`
//! after a reorg, a filter made on one gateway polled on another through
//! Redis, uninstall, expiry and the caps.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use rpcgate::subscriptions::Kind;
use rpcgate_fleet::{Fleet, RedisServer};
use serde_json::{json, Value};

use crate::support::*;

/// The topic LOGGER's constructor logs under (42).
fn topic42() -> String {
    format!("0x{:064x}", 42)
}

/// Adds a `filters:` section (lines as under it) to the network of a test config.
fn with_filters(yaml: &str, lines: &[&str]) -> String {
    let mut section = String::from("    filters:\n");
    for l in lines {
        section.push_str(&format!("      {l}\n"));
    }
    yaml.replace("    upstreams:\n", &format!("{section}    upstreams:\n"))
}

/// Queues a LOGGER deployment (its constructor logs topic 42) and mines it.
async fn mine_logging_block(fleet: &Fleet) -> u64 {
    fleet.deploy(LOGGER_INIT, 200_000).await.unwrap();
    fleet.mine().await.unwrap()
}

/// Polls `id` on `url` until `enough` of what came holds (bounded: a hang
/// guard, not a timing assert); returns everything that came, in order.
async fn poll_until(
    url: &str,
    id: &Value,
    what: &str,
    enough: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut got = Vec::new();
    loop {
        let r = result(url, "eth_getFilterChanges", json!([id])).await;
        got.extend(
            r.as_array()
                .unwrap_or_else(|| panic!("not a list: {r}"))
                .iter()
                .cloned(),
        );
        if enough(&got) {
            return got;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}; got {got:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// What a poller saw: block hashes, logs, and every error answer.
#[derive(Default)]
struct Seen {
    hashes: Vec<String>,
    logs: Vec<Value>,
    errors: Vec<Value>,
}

/// Polls a block filter and a log filter every 150 ms until stopped.
fn spawn_poller(
    url: String,
    block_filter: String,
    log_filter: String,
) -> (Arc<Mutex<Seen>>, tokio::task::JoinHandle<()>) {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let s = seen.clone();
    let task = tokio::spawn(async move {
        loop {
            for (id, is_block) in [(&block_filter, true), (&log_filter, false)] {
                let r = call(&url, "eth_getFilterChanges", json!([id])).await;
                let mut seen = s.lock();
                match r["result"].as_array() {
                    Some(items) if is_block => seen
                        .hashes
                        .extend(items.iter().map(|h| h.as_str().unwrap().to_string())),
                    Some(items) => seen.logs.extend(items.iter().cloned()),
                    None => seen.errors.push(r),
                }
            }
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    });
    (seen, task)
}

/// A log as compared across sources: where it is, and what.
/// The topic-42 logs of blocks `from..=to` as replica 0 itself has them.
async fn logs_42(fleet: &Fleet, from: u64, to: u64) -> Vec<(String, String, String, bool)> {
    let logs = fleet
        .rpc(0)
        .await
        .unwrap()
        .call(
            "eth_getLogs",
            json!([{"fromBlock": hex(from), "toBlock": hex(to), "topics": [topic42()]}]),
        )
        .await
        .unwrap();
    logs.as_array().unwrap().iter().map(log_id).collect()
}

fn log_id(log: &Value) -> (String, String, String, bool) {
    (
        log["blockHash"].as_str().unwrap().to_string(),
        log["logIndex"].as_str().unwrap().to_string(),
        log["transactionHash"].as_str().unwrap().to_string(),
        log["removed"].as_bool().unwrap_or(false),
    )
}

/// After a reorg of three logging blocks: the `first` three logs again with
/// `removed: true`, then the new chain's (`truth`), in that order.
fn assert_removed_then_new(
    first: &[Value],
    after: &[Value],
    truth: &[(String, String, String, bool)],
) {
    let removed: Vec<_> = first
        .iter()
        .map(|l| {
            let mut l = l.clone();
            l["removed"] = json!(true);
            log_id(&l)
        })
        .collect();
    let got: Vec<_> = after.iter().map(log_id).collect();
    assert_eq!(got[..3], removed[..], "the replaced logs first, removed");
    assert_eq!(got[3..], truth[..], "then the new chain's logs");
}

#[tokio::test]
async fn every_block_and_log_once_while_replicas_fail_in_turn() {
    let fleet = fleet(3).await;
    let start = fleet.mine_blocks(2).await.unwrap();
    let gw = gateway_over(&fleet, "", start).await;
    let url = gw.url.clone();
    let block_filter = result(&url, "eth_newBlockFilter", json!([])).await;
    let log_filter = result(&url, "eth_newFilter", json!([{"topics": [topic42()]}])).await;
    let (block_filter, log_filter) = (
        block_filter.as_str().unwrap().to_string(),
        log_filter.as_str().unwrap().to_string(),
    );
    assert!(block_filter.starts_with("0x") && log_filter.starts_with("0x"));
    let (seen, poller) = spawn_poller(url.clone(), block_filter, log_filter);

    for i in 0..3 {
        for _ in 0..3 {
            mine_logging_block(&fleet).await;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        fleet.stop(i).await.unwrap();
        for _ in 0..3 {
            mine_logging_block(&fleet).await;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        fleet.restart(i).await.unwrap();
    }
    let top = mine_logging_block(&fleet).await;
    wait_synced(&gw, 3, top).await;
    let want = (top - start) as usize;
    wait_for("the poller saw every block", || {
        let n = seen.lock().hashes.len();
        async move { n >= want }
    })
    .await;
    // A few more polls: nothing may come twice.
    tokio::time::sleep(Duration::from_millis(500)).await;
    poller.abort();

    let mut chain = Vec::new();
    for n in start + 1..=top {
        chain.push(fleet.block_hash(0, n).await.unwrap().unwrap());
    }
    let truth = logs_42(&fleet, start + 1, top).await;
    assert_eq!(truth.len(), want, "one logging deployment per block");
    let seen = seen.lock();
    assert!(seen.errors.is_empty(), "errors: {:?}", seen.errors);
    assert_eq!(seen.hashes, chain, "every block hash once, in order");
    let logs: Vec<_> = seen.logs.iter().map(log_id).collect();
    assert_eq!(logs, truth, "every log once, in order");
}

#[tokio::test]
async fn a_reorg_under_a_log_filter_delivers_removed_logs_then_the_new_ones() {
    let fleet = fleet(3).await;
    let start = fleet.mine_blocks(2).await.unwrap();
    // Finality is read once, at start, so the replaced blocks stay above it
    // (anvil here finalizes latest - 2); the cache is off, so the filters'
    // own chain follower is the one under test.
    let y = yaml(fleet.chain_id(), &fleet_ups(&fleet), "")
        .replace(
            "finality_poll_interval: 200ms",
            "finality_poll_interval: 60m",
        )
        .replace(
            "    upstreams:\n",
            "    cache:\n      enabled: false\n    upstreams:\n",
        );
    let gw = start_gateway(&y).await;
    wait_synced(&gw, 3, start).await;
    let url = gw.url.clone();
    let id = result(&url, "eth_newFilter", json!([{"topics": [topic42()]}])).await;
    let checkpoint = fleet.checkpoint().await.unwrap();
    for _ in 0..3 {
        mine_logging_block(&fleet).await;
    }
    let top = start + 3;
    wait_synced(&gw, 3, top).await;
    let first = poll_until(&url, &id, "the three logs", |got| got.len() >= 3).await;
    assert_eq!(first.len(), 3);
    assert!(first.iter().all(|l| l["removed"] == false));

    fleet.reorg_to(&checkpoint, 3).await.unwrap();
    let new_top = fleet.head(0).await.unwrap();
    assert_eq!(new_top.number, top);
    wait_trackers_at(&gw, &new_top.hash).await;
    let truth = logs_42(&fleet, start + 1, top).await;
    assert_eq!(truth.len(), 3, "the replaced deployments landed again");
    let after = poll_until(&url, &id, "the removed logs and the new ones", |got| {
        got.len() >= 6
    })
    .await;
    assert_removed_then_new(&first, &after, &truth);
    let again = result(&url, "eth_getFilterChanges", json!([id])).await;
    assert_eq!(again, json!([]), "nothing twice");
}

/// A 3-replica fleet `blocks` high, a Redis, and two gateways sharing it,
/// both synced.
async fn two_gateways_on_redis(blocks: u64) -> (Fleet, RedisServer, Gw, Gw, u64) {
    let fleet = fleet(3).await;
    let start = fleet.mine_blocks(blocks).await.unwrap();
    let redis = RedisServer::start().await.unwrap();
    let y = format!(
        "{}redis:\n  url: {}\n",
        yaml(fleet.chain_id(), &fleet_ups(&fleet), ""),
        redis.url()
    );
    let a = start_gateway(&y).await;
    let b = start_gateway(&y).await;
    wait_synced(&a, 3, start).await;
    wait_synced(&b, 3, start).await;
    (fleet, redis, a, b, start)
}

#[tokio::test]
async fn a_filter_made_on_one_gateway_is_polled_on_another() {
    let (fleet, _redis, a, b, start) = two_gateways_on_redis(2).await;
    let blocks = result(&a.url, "eth_newBlockFilter", json!([])).await;
    let logs = result(&a.url, "eth_newFilter", json!([{"topics": [topic42()]}])).await;
    let mut hashes = Vec::new();
    let mut seen_logs = Vec::new();
    for round in 0..4 {
        let top = mine_logging_block(&fleet).await;
        wait_synced(&a, 3, top).await;
        wait_synced(&b, 3, top).await;
        // Alternate: each poll on the other gateway than the last.
        let gw = if round % 2 == 0 { &b } else { &a };
        let want = (top - start) as usize;
        let have = hashes.len();
        hashes.extend(
            poll_until(&gw.url, &blocks, "the new block", |got| {
                have + got.len() >= want
            })
            .await,
        );
        let have = seen_logs.len();
        seen_logs.extend(
            poll_until(&gw.url, &logs, "the new log", |got| {
                have + got.len() >= want
            })
            .await,
        );
    }
    let top = start + 4;
    let mut chain = Vec::new();
    for n in start + 1..=top {
        chain.push(json!(fleet.block_hash(0, n).await.unwrap().unwrap()));
    }
    assert_eq!(
        hashes, chain,
        "every block once, in order, across two gateways"
    );
    assert_eq!(seen_logs.len(), 4);
    let from_a = result(&a.url, "eth_getFilterLogs", json!([logs])).await;
    let from_b = result(&b.url, "eth_getFilterLogs", json!([logs])).await;
    assert_eq!(from_a, from_b);
    assert_eq!(
        result(&b.url, "eth_uninstallFilter", json!([blocks])).await,
        json!(true)
    );
    assert_eq!(
        result(&a.url, "eth_uninstallFilter", json!([blocks])).await,
        json!(false)
    );
    let gone = call(&a.url, "eth_getFilterChanges", json!([blocks])).await;
    assert_eq!(gone["error"]["code"], -32000, "{gone}");
    assert_eq!(gone["error"]["message"], "filter not found");
}

/// One call from the anonymous client at `ip` (believed through X-Forwarded-For).
async fn call_from(url: &str, ip: &str, method: &str, params: Value) -> Value {
    let body = json!({"jsonrpc": "2.0", "id": 7, "method": method, "params": params});
    let reply = post_with_headers(url, &[("x-forwarded-for", ip)], body.to_string()).await;
    serde_json::from_slice(&reply.body).unwrap()
}

#[tokio::test]
async fn uninstall_expiry_and_caps() {
    let fleet = fleet(3).await;
    let start = fleet.mine_blocks(1).await.unwrap();
    let y = format!(
        "{}policy:\n  trusted_proxies: [127.0.0.1/32]\n",
        with_filters(
            &yaml(fleet.chain_id(), &fleet_ups(&fleet), ""),
            &["expiry: 1s", "max_per_client: 2", "max_total: 3"],
        )
    );
    let gw = start_gateway(&y).await;
    wait_synced(&gw, 3, start).await;
    let url = gw.url.as_str();

    // Uninstall: true, then false; an unknown id is Geth's "filter not found".
    let id = call_from(url, "10.0.0.1", "eth_newBlockFilter", json!([])).await;
    let id = id["result"].as_str().unwrap().to_string();
    let unknown = call(url, "eth_getFilterChanges", json!(["0x1234"])).await;
    assert_eq!(unknown["error"]["code"], -32000, "{unknown}");
    assert_eq!(unknown["error"]["message"], "filter not found");
    // Ids answer their owner only (the filter is 10.0.0.1's).
    let uninstall = |ip| call_from(url, ip, "eth_uninstallFilter", json!([id]));
    assert_eq!(uninstall("10.0.0.1").await["result"], json!(true));
    assert_eq!(uninstall("10.0.0.1").await["result"], json!(false));
    let bad = call(url, "eth_newFilter", json!([{"fromBlock": "soon"}])).await;
    assert_eq!(bad["error"]["code"], -32602, "{bad}");

    // Caps: two per client, three in all; -32005 past them.
    let mut ids = Vec::new();
    for (ip, ok) in [
        ("10.0.0.1", true),
        ("10.0.0.1", true),
        ("10.0.0.1", false),
        ("10.0.0.2", true),
        ("10.0.0.3", false),
    ] {
        let r = call_from(url, ip, "eth_newPendingTransactionFilter", json!([])).await;
        if ok {
            ids.push(
                r["result"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{r}"))
                    .to_string(),
            );
        } else {
            assert_eq!(r["error"]["code"], -32005, "{ip}: {r}");
            assert_eq!(r["id"], 7);
        }
    }
    let per_client = call_from(url, "10.0.0.1", "eth_newFilter", json!([{}])).await;
    assert!(
        per_client["error"]["message"]
            .as_str()
            .unwrap()
            .contains("max_per_client"),
        "{per_client}"
    );
    let total = call_from(url, "10.0.0.3", "eth_newFilter", json!([{}])).await;
    assert!(
        total["error"]["message"]
            .as_str()
            .unwrap()
            .contains("max_total"),
        "{total}"
    );
    // A pending-transaction filter answers an empty list (no pending feed over HTTP).
    let poll = || call_from(url, "10.0.0.1", "eth_getFilterChanges", json!([ids[0]]));
    assert_eq!(poll().await["result"], json!([]));

    // Expiry: a filter polled every 300 ms lives on; the others, unpolled
    // for over a second, are gone, and their places free.
    for _ in 0..8 {
        assert_eq!(poll().await["result"], json!([]));
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    for (id, owner) in ids[1..].iter().zip(["10.0.0.1", "10.0.0.2"]) {
        let r = call_from(url, owner, "eth_getFilterChanges", json!([id])).await;
        assert_eq!(r["error"]["message"], "filter not found", "{id}: {r}");
    }
    let again = call_from(url, "10.0.0.3", "eth_newBlockFilter", json!([])).await;
    assert!(again["result"].is_string(), "{again}");
    let metrics = scrape(&gw.admin).await.text;
    assert!(
        metrics.contains("rpcgate_filters_expired_total{network=\"dev\"}"),
        "{metrics}"
    );
    assert!(metrics.contains("rpcgate_filters_refused_total{network=\"dev\",reason=\"total\"}"));
}

/// Mines blocks of one transfer each until a poll of the pending filter `id`
/// on `url` returns one of their hashes: the gateway's feed is then
/// subscribed (a hang guard bounds it, not a timing assert). Returns what the
/// polls returned on the way.
async fn warm_pending(fleet: &Fleet, url: &str, id: &Value) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut sent = Vec::new();
    let mut got = Vec::new();
    loop {
        let (_, hash) = fleet.transfer(OTHER, 1).await.unwrap();
        sent.push(hash.to_ascii_lowercase());
        fleet.mine().await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        let r = result(url, "eth_getFilterChanges", json!([id])).await;
        got.extend(strings(&r));
        if got.iter().any(|h| sent.contains(h)) {
            return got;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the pending filter never saw a sent transaction; got {got:?}, sent {sent:?}"
        );
    }
}

fn strings(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(|h| h.as_str().unwrap().to_ascii_lowercase())
        .collect()
}

/// Sends `n` transfers in one block and polls, alternating between `urls`,
/// until all their hashes came; returns everything the polls returned.
async fn pending_round(
    fleet: &Fleet,
    urls: &[&str],
    id: &Value,
    n: usize,
) -> (Vec<String>, Vec<String>) {
    let mut sent = Vec::new();
    for _ in 0..n {
        let (_, hash) = fleet.transfer(OTHER, 1).await.unwrap();
        sent.push(hash.to_ascii_lowercase());
    }
    fleet.mine().await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut got = Vec::new();
    for poll in 0.. {
        let url = urls[poll % urls.len()];
        let r = result(url, "eth_getFilterChanges", json!([id])).await;
        got.extend(strings(&r));
        if sent.iter().all(|h| got.contains(h)) {
            return (sent, got);
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "pending hashes missing: sent {sent:?}, got {got:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    unreachable!()
}

/// Fails when nobody feeds pending filters (they answer `[]` forever) or a
/// hash is delivered twice.
#[tokio::test]
async fn pending_filters_get_each_announced_transaction_once() {
    let fleet = fleet(3).await;
    let start = fleet.mine_blocks(1).await.unwrap();
    let gw = gateway_over(&fleet, "", start).await;
    let url = gw.url.as_str();
    let first = result(url, "eth_newPendingTransactionFilter", json!([])).await;
    let mut all = warm_pending(&fleet, url, &first).await;
    // A filter made now gets only what comes after it.
    let second = result(url, "eth_newPendingTransactionFilter", json!([])).await;
    assert_eq!(
        result(url, "eth_getFilterChanges", json!([second])).await,
        json!([])
    );
    let mut sent = Vec::new();
    for _ in 0..3 {
        let (s, got) = pending_round(&fleet, &[url], &first, 2).await;
        sent.extend(s);
        all.extend(got);
    }
    let mut unique = all.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), all.len(), "a hash delivered twice: {all:?}");
    let later = strings(&result(url, "eth_getFilterChanges", json!([second])).await);
    for h in &sent {
        assert!(later.contains(h), "the second filter lacks {h}: {later:?}");
    }
    let metrics = scrape(&gw.admin).await.text;
    assert!(
        metrics.contains("rpcgate_filters_pending_hashes_total{network=\"dev\"}"),
        "{metrics}"
    );
}

/// With Redis, a pending filter made on one gateway is polled on another,
/// both feeding the shared log: each hash once. Fails without the
/// once-per-hash marker (both feeds append every hash).
#[tokio::test]
async fn a_pending_filter_is_polled_on_two_gateways_through_redis() {
    let (fleet, _redis, a, b, _) = two_gateways_on_redis(1).await;
    let id = result(&a.url, "eth_newPendingTransactionFilter", json!([])).await;
    let mut all = warm_pending(&fleet, &a.url, &id).await;
    // b's first poll makes b feed the log too; then both feeds run.
    all.extend(strings(
        &result(&b.url, "eth_getFilterChanges", json!([id])).await,
    ));
    for gw in [&a, &b] {
        let hub = gw.gateway.subscriptions().hub("dev");
        wait_for("a pending feed on each gateway", || {
            let carried = hub.carrier(Kind::NewPendingTransactions).is_some();
            async move { carried }
        })
        .await;
    }
    let mut sent = Vec::new();
    for _ in 0..3 {
        let (s, got) = pending_round(&fleet, &[&a.url, &b.url], &id, 2).await;
        sent.extend(s);
        all.extend(got);
    }
    let mut unique = all.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), all.len(), "a hash delivered twice: {all:?}");
}

/// Polls the block filter and the log filter alternately on `gws` (one poll
/// of each per gateway in turn) until `enough` holds for what came (bounded:
/// a hang guard); returns the hashes and the logs.
async fn poll_alternately(
    gws: [&Gw; 2],
    blocks: &Value,
    logs: &Value,
    what: &str,
    enough: impl Fn(&[Value], &[Value]) -> bool,
) -> (Vec<Value>, Vec<Value>) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let (mut hashes, mut seen_logs) = (Vec::new(), Vec::new());
    for round in 0.. {
        let url = &gws[round % 2].url;
        for (id, into) in [(blocks, &mut hashes), (logs, &mut seen_logs)] {
            let r = result(url, "eth_getFilterChanges", json!([id])).await;
            into.extend(r.as_array().unwrap_or_else(|| panic!("{r}")).clone());
        }
        if enough(&hashes, &seen_logs) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}; blocks {hashes:?}, logs {seen_logs:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (hashes, seen_logs)
}

/// Anvil with one slot per epoch calls latest - 2 finalized, and a 3-block
/// reorg replaces that block too. Two gateways sharing Redis, finality
/// followed: the filters take back what they delivered of every replaced
/// block, the "finalized" one included, and deliver all of the new chain.
#[tokio::test]
async fn a_reorg_below_a_shallow_finalized_block_reaches_filters_on_both_gateways() {
    let (fleet, _redis, a, b, start) = two_gateways_on_redis(2).await;
    let blocks = result(&a.url, "eth_newBlockFilter", json!([])).await;
    let logs = result(&a.url, "eth_newFilter", json!([{"topics": [topic42()]}])).await;
    let checkpoint = fleet.checkpoint().await.unwrap();
    for _ in 0..3 {
        let top = mine_logging_block(&fleet).await;
        wait_synced(&a, 3, top).await;
        wait_synced(&b, 3, top).await;
    }
    let top = start + 3;
    for gw in [&a, &b] {
        wait_view(gw, "the first of the three blocks finalized", |v| {
            v.finalized == Some(start + 1)
        })
        .await;
    }
    let (first, first_logs) =
        poll_alternately([&a, &b], &blocks, &logs, "the three blocks", |h, l| {
            h.len() >= 3 && l.len() >= 3
        })
        .await;
    assert_eq!(first.len(), 3);

    fleet.reorg_to(&checkpoint, 3).await.unwrap();
    let new_top = fleet.head(0).await.unwrap();
    assert_eq!(new_top.number, top);
    wait_trackers_at(&a, &new_top.hash).await;
    wait_trackers_at(&b, &new_top.hash).await;
    let mut chain = Vec::new();
    for n in start + 1..=top {
        chain.push(json!(fleet.block_hash(0, n).await.unwrap().unwrap()));
    }
    let truth = logs_42(&fleet, start + 1, top).await;
    assert_eq!(truth.len(), 3, "the replaced deployments landed again");
    let (after, after_logs) = poll_alternately(
        [&b, &a],
        &blocks,
        &logs,
        "the new blocks, the removed logs and the new ones",
        |h, l| h.len() >= 3 && l.len() >= 6,
    )
    .await;
    assert_eq!(after, chain, "every new block, the finalized one first");
    assert_removed_then_new(&first_logs, &after_logs, &truth);
}

/// A pass-through in front of Redis that, once armed, holds the next
/// script call naming `armed` (and everything the gateway sends after it,
/// so order is kept) for `hold`: a write that reaches Redis after the
/// gateway stopped waiting for its answer.
struct LateWrites {
    port: u16,
    armed: Arc<Mutex<Option<String>>>,
}

impl LateWrites {
    async fn start(redis_port: u16, hold: Duration) -> LateWrites {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let armed: Arc<Mutex<Option<String>>> = Arc::default();
        let watch = armed.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = tokio::net::TcpStream::connect(("127.0.0.1", redis_port)).await
                else {
                    continue;
                };
                let (mut from_client, mut to_client) = client.into_split();
                let (mut from_server, mut to_server) = server.into_split();
                tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut from_server, &mut to_client).await;
                });
                let watch = watch.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 64 * 1024];
                    let mut until = tokio::time::Instant::now();
                    loop {
                        let n = match from_client.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => n,
                        };
                        let chunk = &buf[..n];
                        let text = String::from_utf8_lossy(chunk).to_ascii_uppercase();
                        let held = {
                            let mut armed = watch.lock();
                            let hit = armed.as_ref().is_some_and(|id| {
                                text.contains("EVALSHA") && text.contains(&id.to_ascii_uppercase())
                            });
                            if hit {
                                *armed = None;
                            }
                            hit
                        };
                        if held {
                            until = tokio::time::Instant::now() + hold;
                        }
                        tokio::time::sleep_until(until).await;
                        if to_server.write_all(chunk).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        LateWrites { port, armed }
    }
}

#[tokio::test]
async fn a_poll_whose_save_redis_answers_late_still_delivers_its_blocks() {
    // A filter poll saves where the filter now stands; when Redis's answer
    // comes after the gateway stopped waiting, the save was applied all the
    // same, and failing the poll would lose its blocks: the next poll
    // starts after them.
    let fleet = fleet(1).await;
    let start = fleet.mine_blocks(1).await.unwrap();
    let redis = RedisServer::start().await.unwrap();
    let late = LateWrites::start(redis.port(), Duration::from_millis(1500)).await;
    let y = format!(
        "{}redis:\n  url: redis://127.0.0.1:{}\n",
        yaml(fleet.chain_id(), &fleet_ups(&fleet), ""),
        late.port
    );
    let gw = start_gateway(&y).await;
    wait_synced(&gw, 1, start).await;
    let id = result(&gw.url, "eth_newBlockFilter", json!([])).await;
    let mut got: Vec<Value> = Vec::new();
    for _ in 0..3 {
        let top = fleet.mine().await.unwrap();
        wait_synced(&gw, 1, top).await;
        *late.armed.lock() = id.as_str().map(str::to_string);
        // This poll's save is held past the gateway's wait; later polls
        // are not. Polls that fail are asked again, as a client would.
        for _ in 0..5 {
            let r = call(&gw.url, "eth_getFilterChanges", json!([id])).await;
            if let Some(list) = r["result"].as_array() {
                got.extend(list.iter().cloned());
                if got.len() as u64 >= top - start {
                    break;
                }
            }
        }
    }
    let mut chain = Vec::new();
    for n in start + 1..=start + 3 {
        chain.push(json!(fleet.block_hash(0, n).await.unwrap().unwrap()));
    }
    assert_eq!(got, chain, "every block once, in order");
}
