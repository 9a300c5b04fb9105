//! Read-your-writes across two gateway replicas sharing Redis: a wallet's
//! send goes through one, its pending nonce and the transaction are read
//! through the other, which has no record of its own and follows the shared
//! one to the backend that accepted the send. The fleet's replicas do not
//! gossip, so any other backend answers the old nonce and `null`.

use rpcgate_fleet::RedisServer;
use serde_json::{json, Value};

use super::with_redis;
use crate::support::*;

const WALLET: &str = "replica-wallet-key-0123456789";
/// Reads through the other gateway: each lands on a backend that lacks the
/// transaction with a chance of at least 1/3 when not steered, so all of
/// them right by chance is below 1e-10.
const READS: usize = 30;

async fn read(gw: &Gw, method: &str, params: Value) -> Value {
    let body = json!({"jsonrpc": "2.0", "id": 3, "method": method, "params": params});
    let (status, _, answer) = send(&gw.url, &[("x-api-key", WALLET)], &body).await;
    assert_eq!(status, 200, "{method}: {answer}");
    assert!(answer.get("error").is_none(), "{method}: {answer}");
    answer["result"].clone()
}

/// The send goes through A; B, which has no record of its own, reads the
/// wallet's pending nonce and the transaction by the record A shared. With
/// the send not shared (A records nothing in Redis), B's reads are routed as
/// usual and nearly all of them miss the send.
#[tokio::test]
async fn a_send_through_one_gateway_steers_reads_through_another() {
    let redis = RedisServer::start().await.unwrap();
    let fleet = fleet(3).await;
    fleet.mine().await.unwrap();
    let y = with_redis(
        &fleet,
        "",
        &[format!("url: {}", redis.url())],
        &format!(
            "policy:\n  clients:\n    wallet:\n      key_sha256: [{}]\n",
            sha256_hex(WALLET)
        ),
    );
    let a = start_gateway(&y).await;
    let b = start_gateway(&y).await;
    wait_synced(&a, 3, 1).await;
    wait_synced(&b, 3, 1).await;

    let before = quantity(
        &result(
            &fleet.http_url(0),
            "eth_getTransactionCount",
            json!([DEV, "latest"]),
        )
        .await,
    );
    let (raw, hash) = fleet.sign_transfer(OTHER, 1).await.unwrap();
    assert_eq!(
        read(&a, "eth_sendRawTransaction", json!([raw])).await,
        json!(hash)
    );

    let (mut stale_nonces, mut null_txs) = (0, 0);
    for _ in 0..READS {
        let n = quantity(&read(&b, "eth_getTransactionCount", json!([DEV, "pending"])).await);
        match n {
            n if n == before + 1 => {}
            n if n == before => stale_nonces += 1,
            n => panic!("pending nonce {n}, sent with {before}"),
        }
        if read(&b, "eth_getTransactionByHash", json!([hash]))
            .await
            .is_null()
        {
            null_txs += 1;
        }
    }
    assert_eq!(
        (stale_nonces, null_txs),
        (0, 0),
        "reads through the other gateway"
    );
    let m = scrape(&b.admin).await;
    assert!(
        m.value(
            "rpcgate_read_your_writes_reads_total",
            &[("outcome", "steered")]
        ) >= (2 * READS) as f64,
        "steered reads counted on the other gateway"
    );
}

/// Rounds of the test below: in each, a stale nonce needs the two sends on
/// different backends (2/3 by chance when not steered by the later send), so
/// all of them right by chance is below 2e-4.
const ROUNDS: usize = 8;

/// The wallet sends through B, then (its first send mined) through A, and
/// reads its pending nonce through B: B's own record names the first send's
/// backend, the shared one the later send's. The later send wins; a backend
/// that took only the first one would count one below. With B's own record
/// followed first (the shared one asked only without it), stale nonces in
/// most rounds.
#[tokio::test]
async fn the_later_send_through_another_gateway_wins_over_a_replicas_own_record() {
    let redis = RedisServer::start().await.unwrap();
    let fleet = fleet(3).await;
    fleet.mine().await.unwrap();
    let y = with_redis(
        &fleet,
        "",
        &[format!("url: {}", redis.url())],
        &format!(
            "policy:\n  clients:\n    wallet:\n      key_sha256: [{}]\n",
            sha256_hex(WALLET)
        ),
    );
    let a = start_gateway(&y).await;
    let b = start_gateway(&y).await;
    wait_synced(&a, 3, 1).await;
    wait_synced(&b, 3, 1).await;
    let mut stale = 0;
    for _ in 0..ROUNDS {
        let (first, _) = fleet.sign_transfer(OTHER, 1).await.unwrap();
        read(&b, "eth_sendRawTransaction", json!([first])).await;
        fleet.submit(first).await.unwrap();
        let height = fleet.mine().await.unwrap();
        wait_synced(&b, 3, height).await;
        let (later, _) = fleet.sign_transfer(OTHER, 1).await.unwrap();
        read(&a, "eth_sendRawTransaction", json!([later])).await;
        let mined = quantity(
            &result(
                &fleet.http_url(0),
                "eth_getTransactionCount",
                json!([DEV, "latest"]),
            )
            .await,
        );
        let n = quantity(&read(&b, "eth_getTransactionCount", json!([DEV, "pending"])).await);
        match n {
            n if n == mined + 1 => {}
            n if n == mined => stale += 1,
            n => panic!("pending nonce {n}, {mined} mined and one pending"),
        }
        fleet.submit(later).await.unwrap();
        let height = fleet.mine().await.unwrap();
        wait_synced(&a, 3, height).await;
        wait_synced(&b, 3, height).await;
    }
    assert_eq!(stale, 0, "stale pending nonces through B");
}
