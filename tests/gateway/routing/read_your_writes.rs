//! Read-your-writes: after a send through the gateway, reads of that
//! transaction go to the replica that accepted it, while the other replicas
//! have not seen it (the fleet's replicas do not gossip, and held replicas
//! get no blocks), until the served head includes it.

use std::time::Duration;

use rpcgate_fleet::Fleet;
use serde_json::{json, Value};

use crate::support::*;

const WALLET: &str = "wallet-key-0123456789";
const WATCHER: &str = "watcher-key-0123456789";
/// Reads per kind and phase: with the feature off, each lands on a replica
/// that lacks the transaction with a chance of at least 1/3 (P2C picks the
/// accepting replica only from the pairs it is in), so all of them missing
/// it has a chance below 1e-10.
const READS: usize = 60;

/// Three replicas at height 1 and a gateway in front of them on network
/// `name`, with clients `wallet` and `watcher`; `ryw` is the
/// `read_your_writes` setting.
async fn setup(name: &str, ryw: &str) -> (Fleet, Gw) {
    let fleet = fleet(3).await;
    fleet.mine().await.unwrap();
    let network = format!("read_your_writes: {ryw}");
    let config = yaml(fleet.chain_id(), &fleet_ups(&fleet), &network)
        .replace("\n  dev:\n", &format!("\n  {name}:\n"));
    let config = format!(
        "{config}policy:\n  clients:\n    wallet:\n      key_sha256: [{}]\n    watcher:\n      key_sha256: [{}]\n",
        sha256_hex(WALLET),
        sha256_hex(WATCHER)
    );
    let gw = start_gateway(&config).await;
    wait_synced(&gw, 3, 1).await;
    (fleet, gw)
}

/// One call as the client of `key`; its `result` (panics on an error answer).
async fn read(gw: &Gw, key: &str, method: &str, params: Value) -> Value {
    let body = json!({"jsonrpc": "2.0", "id": 7, "method": method, "params": params});
    let (status, _, answer) = send(&gw.url, &[("x-api-key", key)], &body).await;
    assert_eq!(status, 200, "{method}: {answer}");
    assert!(answer.get("error").is_none(), "{method}: {answer}");
    assert_eq!(answer["id"], 7);
    answer["result"].clone()
}

/// The one replica that has `hash` in its pool (asked directly).
async fn accepting_replica(fleet: &Fleet, hash: &str) -> usize {
    let mut knowing = Vec::new();
    for i in 0..fleet.len() {
        let tx = result(
            &fleet.http_url(i),
            "eth_getTransactionByHash",
            json!([hash]),
        )
        .await;
        if !tx.is_null() {
            knowing.push(i);
        }
    }
    assert_eq!(knowing.len(), 1, "replicas that know {hash}: {knowing:?}");
    knowing[0]
}

fn nonce_of(answer: &Value) -> u64 {
    quantity(answer)
}

/// What a run of the scenario saw through the gateway as the sender.
#[derive(Debug, Default, PartialEq, Eq)]
struct Seen {
    /// `eth_getTransactionByHash` answered null while the transaction was pending.
    pending_tx_nulls: usize,
    /// `eth_getTransactionCount(DEV, "pending")` without the sent transaction.
    stale_nonces: usize,
    /// `eth_getTransactionReceipt` answered null once the accepting replica mined it.
    receipt_nulls: usize,
    /// `eth_getTransactionByHash` answered null once mined there.
    mined_tx_nulls: usize,
}

/// Sends a transfer through the gateway as the wallet; reads it back while
/// only the accepting replica has it in its pool, then while only that
/// replica has mined it (the others held back). Returns what the wallet saw,
/// the transaction's hash and the accepting replica.
async fn scenario(fleet: &Fleet, gw: &Gw) -> (Seen, String, usize) {
    let before = nonce_of(
        &result(
            &fleet.http_url(0),
            "eth_getTransactionCount",
            json!([DEV, "latest"]),
        )
        .await,
    );
    let (raw, hash) = fleet.sign_transfer(OTHER, 1).await.unwrap();
    let sent = read(gw, WALLET, "eth_sendRawTransaction", json!([raw])).await;
    assert_eq!(sent, json!(hash));
    let a = accepting_replica(fleet, &hash).await;
    let mut seen = Seen::default();

    // In one pool only.
    for _ in 0..READS {
        let tx = read(gw, WALLET, "eth_getTransactionByHash", json!([hash])).await;
        if tx.is_null() {
            seen.pending_tx_nulls += 1;
        } else {
            assert_eq!(tx["hash"], json!(hash));
            assert!(tx["blockNumber"].is_null(), "{tx}");
        }
        let n = read(
            gw,
            WALLET,
            "eth_getTransactionCount",
            json!([DEV, "pending"]),
        )
        .await;
        match nonce_of(&n) {
            n if n == before + 1 => {}
            n if n == before => seen.stale_nonces += 1,
            n => panic!("pending nonce {n}, sent with {before}"),
        }
    }

    // Mined by the accepting replica only: the others are held at height 1,
    // so the served head stays 1 (it needs two holders) and all three serve it.
    for i in (0..fleet.len()).filter(|i| *i != a) {
        fleet.hold(i).await.unwrap();
    }
    fleet.submit(raw).await.unwrap();
    assert_eq!(fleet.mine().await.unwrap(), 2);
    let name = format!("r{a}");
    wait_view(
        gw,
        "the accepting replica at 2, the others eligible at 1",
        |v| {
            v.eligible().count() == 3
                && v.served_head == Some(1)
                && v.eligible().any(|b| b.backend.name == name && b.head == 2)
        },
    )
    .await;
    for _ in 0..READS {
        let receipt = read(gw, WALLET, "eth_getTransactionReceipt", json!([hash])).await;
        if receipt.is_null() {
            seen.receipt_nulls += 1;
        } else {
            assert_eq!(receipt["transactionHash"], json!(hash));
            assert_eq!(receipt["status"], "0x1");
            assert_eq!(quantity(&receipt["blockNumber"]), 2);
        }
        let tx = read(gw, WALLET, "eth_getTransactionByHash", json!([hash])).await;
        if tx.is_null() {
            seen.mined_tx_nulls += 1;
        } else {
            assert_eq!(quantity(&tx["blockNumber"]), 2, "{tx}");
        }
    }
    (seen, hash, a)
}

/// A read-your-writes counter of the gateway's own registry.
fn counter(gw: &Gw, name: &str, family: &str, label: &str) -> u64 {
    let m = &gw.gateway.metrics().read_your_writes;
    match family {
        "reads" => m.reads.with_label_values(&[name, label]).get(),
        _ => m.evictions.with_label_values(&[name, label]).get(),
    }
}

#[tokio::test]
async fn the_sender_never_reads_null_while_the_accepting_replica_knows_its_transaction() {
    let net = "ryw_on";
    let (fleet, gw) = setup(net, "{enabled: true, ttl: 60s, max_entries: 1000}").await;
    let (seen, hash, a) = scenario(&fleet, &gw).await;
    eprintln!("read_your_writes on: {seen:?}");
    assert_eq!(
        seen,
        Seen::default(),
        "the wallet read null or a stale nonce"
    );
    // Every read of the sender above was steered (4 × READS), none fell back.
    assert_eq!(counter(&gw, net, "reads", "steered"), 4 * READS as u64);
    assert_eq!(counter(&gw, net, "reads", "fallback"), 0);
    let recent = gw.network().recent_sends.clone().unwrap();
    assert_eq!(recent.len(), 1);

    // Another client reads the hash where it was sent too (a hash is learnt
    // from its sender); its pending nonce is routed as usual and is right
    // for whichever replica answers.
    for _ in 0..10 {
        let receipt = read(&gw, WATCHER, "eth_getTransactionReceipt", json!([hash])).await;
        assert_eq!(receipt["transactionHash"], json!(hash));
        let n = read(
            &gw,
            WATCHER,
            "eth_getTransactionCount",
            json!([DEV, "pending"]),
        )
        .await;
        let mined = nonce_of(
            &result(
                &fleet.http_url(a),
                "eth_getTransactionCount",
                json!([DEV, "latest"]),
            )
            .await,
        );
        assert!((mined - 1..=mined).contains(&nonce_of(&n)), "{n}");
    }
    assert_eq!(counter(&gw, net, "reads", "steered"), 4 * READS as u64 + 10);

    // Once the served head includes the block, the send is forgotten at the
    // next steered read, and every replica answers for it.
    for i in (0..fleet.len()).filter(|i| *i != a) {
        fleet.release(i).await.unwrap();
    }
    wait_synced(&gw, 3, 2).await;
    let receipt = read(&gw, WALLET, "eth_getTransactionReceipt", json!([hash])).await;
    assert_eq!(quantity(&receipt["blockNumber"]), 2);
    assert_eq!(recent.len(), 0);
    assert_eq!(counter(&gw, net, "evictions", "included"), 1);
    let steered = counter(&gw, net, "reads", "steered");
    for _ in 0..10 {
        let receipt = read(&gw, WALLET, "eth_getTransactionReceipt", json!([hash])).await;
        assert_eq!(receipt["transactionHash"], json!(hash));
    }
    assert_eq!(
        counter(&gw, net, "reads", "steered"),
        steered,
        "no longer steered"
    );
    let text = scrape(&gw.admin).await.text;
    assert!(
        text.contains(&format!(
            "rpcgate_read_your_writes_entries{{network=\"{net}\"}} 0"
        )),
        "{text}"
    );
}

/// The same scenario with the feature off: the other replicas answer null
/// (and the stale nonce), which is what the test above rules out.
#[tokio::test]
async fn with_read_your_writes_off_the_other_replicas_answer_null() {
    let (fleet, gw) = setup("ryw_off", "{enabled: false}").await;
    assert!(gw.network().recent_sends.is_none());
    let (seen, _, _) = scenario(&fleet, &gw).await;
    eprintln!("read_your_writes off: {seen:?}");
    assert!(seen.pending_tx_nulls > 0, "{seen:?}");
    assert!(seen.stale_nonces > 0, "{seen:?}");
    assert!(seen.receipt_nulls > 0, "{seen:?}");
    assert!(seen.mined_tx_nulls > 0, "{seen:?}");
}

/// When the replica that accepted a send is down, its reads are routed as
/// usual: answered (null by the others), never an error or a hang.
#[tokio::test]
async fn reads_fall_back_to_usual_routing_when_the_accepting_replica_is_down() {
    let net = "ryw_down";
    // No wait for the send to show elsewhere: it never will (no gossip).
    let (fleet, gw) = setup(net, "{wait_for_send: 1ms}").await;
    let (raw, hash) = fleet.sign_transfer(OTHER, 1).await.unwrap();
    assert_eq!(
        read(&gw, WALLET, "eth_sendRawTransaction", json!([raw])).await,
        json!(hash)
    );
    let a = accepting_replica(&fleet, &hash).await;
    fleet.stop(a).await.unwrap();
    for _ in 0..10 {
        let tx = read(&gw, WALLET, "eth_getTransactionByHash", json!([hash])).await;
        assert!(tx.is_null(), "only the stopped replica had it: {tx}");
        pending_nonce(&gw).await;
    }
    assert_eq!(counter(&gw, net, "reads", "fallback"), 20);
    assert_eq!(counter(&gw, net, "reads", "steered"), 0);
}

/// Three replicas behind taps whose heads are polled every 30 s (no
/// newHeads), so the gateway does not notice a replica restarted within the
/// test; `ryw` is the `read_your_writes` setting.
async fn unwatched(name: &str, ryw: &str) -> (Fleet, Vec<rpcgate_fleet::Tap>, Gw) {
    let fleet = fleet(3).await;
    for i in 1..=3u64 {
        fleet.transfer(OTHER, u128::from(i)).await.unwrap();
        fleet.mine().await.unwrap();
    }
    let taps = tap_all(&fleet).await;
    let ups: Vec<Up> = taps
        .iter()
        .enumerate()
        .map(|(i, t)| up(&format!("r{i}"), t.url(), None))
        .collect();
    let network = format!("read_your_writes: {ryw}");
    let config = yaml(fleet.chain_id(), &ups, &network)
        .replace("\n  dev:\n", &format!("\n  {name}:\n"))
        .replace("      poll_interval: 50ms\n", "      poll_interval: 30s\n");
    let config = format!(
        "{config}policy:\n  clients:\n    wallet:\n      key_sha256: [{}]\n",
        sha256_hex(WALLET)
    );
    let gw = start_gateway(&config).await;
    wait_synced(&gw, 3, fleet.height().await).await;
    (fleet, taps, gw)
}

/// The wallet's pending nonce as the first replica has it mined.
async fn mined_nonce(fleet: &Fleet, i: usize) -> u64 {
    nonce_of(
        &result(
            &fleet.http_url(i),
            "eth_getTransactionCount",
            json!([DEV, "latest"]),
        )
        .await,
    )
}

/// The wallet's `pending` nonce read through the gateway.
async fn pending_nonce(gw: &Gw) -> Value {
    read(
        gw,
        WALLET,
        "eth_getTransactionCount",
        json!([DEV, "pending"]),
    )
    .await
}

/// A transfer of the wallet signed and sent through the gateway: its raw
/// bytes, its hash and the replica that accepted it.
async fn send_through(fleet: &Fleet, gw: &Gw) -> (String, String, usize) {
    let (raw, hash) = fleet.sign_transfer(OTHER, 1).await.unwrap();
    let sent = read(gw, WALLET, "eth_sendRawTransaction", json!([raw])).await;
    assert_eq!(sent, json!(hash));
    let a = accepting_replica(fleet, &hash).await;
    (raw, hash, a)
}

/// The replica that accepted a send is restarted from an older disk, three
/// blocks (three of the wallet's sends) behind and without its pool, before
/// the gateway notices (its view still has the old head); the send is mined
/// by the others. A pending-nonce read of the sender must not be answered by
/// the restarted replica (three below) but by one that shows the send.
/// With the check of the send's visibility off (`ryw_read::shows` always
/// true), every read answered three below.
#[tokio::test]
async fn a_nonce_is_never_read_from_a_replica_that_lost_the_send() {
    let net = "ryw_restarted";
    let (fleet, _taps, gw) = unwatched(net, "{}").await;
    let (raw, _, a) = send_through(&fleet, &gw).await;
    let before = mined_nonce(&fleet, (a + 1) % 3).await;
    fleet.restart_behind(a, 3).await.unwrap();
    fleet.submit(raw).await.unwrap();
    fleet.mine().await.unwrap();
    assert_eq!(mined_nonce(&fleet, a).await, before - 3, "restarted behind");
    for _ in 0..10 {
        let n = pending_nonce(&gw).await;
        assert_eq!(nonce_of(&n), before + 1, "the wallet's pending nonce");
    }
    assert_eq!(counter(&gw, net, "reads", "elsewhere"), 10);
    assert_eq!(counter(&gw, net, "reads", "steered"), 0);
}

/// The replica that accepted a send is killed with it in its pool; the
/// fleet mines it a moment later (it had been passed on). A pending-nonce
/// read made in between finds the send nowhere and waits for it to show,
/// rather than answering the count without it. With `wait_for_send: 1ms`
/// the read answered one below.
#[tokio::test]
async fn a_nonce_read_waits_for_a_send_no_replica_shows_yet() {
    let net = "ryw_wait";
    let (fleet, gw) = setup(net, "{wait_for_send: 30s}").await;
    let (raw, _, a) = send_through(&fleet, &gw).await;
    let before = mined_nonce(&fleet, (a + 1) % 3).await;
    fleet.stop(a).await.unwrap();
    fleet.submit(raw).await.unwrap();
    let url = gw.url.clone();
    let reader = tokio::spawn(async move {
        let body = json!({"jsonrpc": "2.0", "id": 7, "method": "eth_getTransactionCount", "params": [DEV, "pending"]});
        send(&url, &[("x-api-key", WALLET)], &body).await.2
    });
    // The read is under way (or not yet sent: then it finds the send mined).
    tokio::time::sleep(Duration::from_millis(300)).await;
    fleet.mine().await.unwrap();
    let answer = reader.await.unwrap();
    assert_eq!(nonce_of(&answer["result"]), before + 1, "{answer}");
}

/// The wallet's send through this gateway is mined; its next send went
/// elsewhere (through another gateway replica whose record never reached
/// Redis, say) and sits in one replica's pool only. A pending-nonce read
/// steered by the older send must count the newer one: every replica shows
/// the older send, and the highest count among them is the wallet's.
/// Taking the first replica that shows the send answered one below about
/// two reads in three.
#[tokio::test]
async fn a_nonce_read_counts_a_later_send_made_elsewhere() {
    let net = "ryw_later_elsewhere";
    let (fleet, gw) = setup(net, "{}").await;
    let (raw, hash) = fleet.sign_transfer(OTHER, 1).await.unwrap();
    let sent = read(&gw, WALLET, "eth_sendRawTransaction", json!([raw])).await;
    assert_eq!(sent, json!(hash));
    fleet.submit(raw).await.unwrap();
    let top = fleet.mine().await.unwrap();
    wait_synced(&gw, 3, top).await;
    let mined = mined_nonce(&fleet, 0).await;
    let (later, later_hash) = fleet.sign_transfer(OTHER, 2).await.unwrap();
    let took = result(&fleet.http_url(1), "eth_sendRawTransaction", json!([later])).await;
    assert_eq!(took, json!(later_hash));
    assert_eq!(accepting_replica(&fleet, &later_hash).await, 1);
    for _ in 0..12 {
        let n = pending_nonce(&gw).await;
        assert_eq!(nonce_of(&n), mined + 1, "the wallet's pending nonce");
    }
}

/// The replica that accepted a send shows it, but for a moment counts only
/// what it has mined (its pool being reset for a new block): its tap answers
/// the next two pending counts as `latest`. A pending-nonce read must not
/// take a count at or below the send's own nonce from a replica that shows
/// the send: it asks again. Without the nonce check the read answered one
/// below.
#[tokio::test]
async fn a_nonce_read_does_not_take_a_count_below_the_send_it_shows() {
    let net = "ryw_mid_update";
    let (fleet, taps, gw) = unwatched(net, "{}").await;
    let (_, _, a) = send_through(&fleet, &gw).await;
    let before = mined_nonce(&fleet, a).await;
    taps[a].count_pending_as_latest(2);
    let n = pending_nonce(&gw).await;
    assert_eq!(nonce_of(&n), before + 1, "the wallet's pending nonce");
    assert_eq!(counter(&gw, net, "reads", "steered"), 1);
}
