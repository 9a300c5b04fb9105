//! The fleet harness against real anvil nodes: lockstep mining gives identical hashes,
//! and lag, restart and reorg scenarios end with replicas that agree again.

use std::time::{Duration, Instant};

use rpcgate_fleet::client::{json_or_null, post};
use rpcgate_fleet::{Fault, Fleet, FleetError, FleetOptions, RpcClient, Tap};
use serde_json::json;

const ALICE: &str = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";
const BOB: &str = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC";

async fn fleet(replicas: usize) -> Fleet {
    Fleet::start(FleetOptions {
        replicas,
        ..FleetOptions::default()
    })
    .await
    .expect("fleet starts (is anvil installed? run scripts/install-anvil)")
}

/// Block hashes 1..=height as replica `i` reports them.
async fn hashes(fleet: &Fleet, i: usize, height: u64) -> Vec<String> {
    let mut hashes = Vec::new();
    for n in 1..=height {
        let hash = fleet.block_hash(i, n).await.unwrap();
        hashes.push(hash.unwrap_or_else(|| panic!("replica {i} lacks block {n}")));
    }
    hashes
}

/// Every replica is at `height` and has the same hashes as replica 0 at every height.
async fn assert_in_lockstep(fleet: &Fleet, height: u64) -> Vec<String> {
    assert_eq!(fleet.height().await, height);
    let reference = hashes(fleet, 0, height).await;
    for i in 0..fleet.len() {
        assert_eq!(
            fleet.head(i).await.unwrap().number,
            height,
            "head of replica {i}"
        );
        assert_eq!(
            hashes(fleet, i, height).await,
            reference,
            "hashes of replica {i}"
        );
    }
    reference
}

async fn receipt_block(fleet: &Fleet, i: usize, tx_hash: &str) -> Option<u64> {
    let rpc = fleet.rpc(i).await.unwrap();
    let receipt = rpc
        .call("eth_getTransactionReceipt", json!([tx_hash]))
        .await
        .unwrap();
    if receipt.is_null() {
        return None;
    }
    assert_eq!(receipt["status"], "0x1", "transfer succeeded");
    let number = receipt["blockNumber"].as_str().unwrap();
    Some(u64::from_str_radix(number.trim_start_matches("0x"), 16).unwrap())
}

#[tokio::test]
async fn replicas_mine_identical_blocks() {
    let fleet = fleet(3).await;
    let (_, first) = fleet.transfer(ALICE, 1_000).await.unwrap();
    assert_eq!(fleet.mine().await.unwrap(), 1);
    assert_eq!(fleet.mine().await.unwrap(), 2);
    let (_, second) = fleet.transfer(BOB, 2_000).await.unwrap();
    let (_, third) = fleet.transfer(ALICE, 3_000).await.unwrap();
    assert_eq!(fleet.mine_blocks(2).await.unwrap(), 4);

    // A transaction that already sits in one node's pool, as if sent via the gateway.
    let (raw, fourth) = fleet.sign_transfer(BOB, 4_000).await.unwrap();
    let sent = fleet
        .rpc(1)
        .await
        .unwrap()
        .call("eth_sendRawTransaction", json!([raw]))
        .await
        .unwrap();
    assert_eq!(sent, fourth);
    fleet.submit(raw).await.unwrap();
    assert_eq!(fleet.mine().await.unwrap(), 5);

    assert_in_lockstep(&fleet, 5).await;
    for i in 0..3 {
        assert_eq!(receipt_block(&fleet, i, &first).await, Some(1));
        assert_eq!(receipt_block(&fleet, i, &second).await, Some(3));
        assert_eq!(receipt_block(&fleet, i, &third).await, Some(3));
        assert_eq!(receipt_block(&fleet, i, &fourth).await, Some(5));
    }
    let block = fleet
        .rpc(2)
        .await
        .unwrap()
        .call("eth_getBlockByNumber", json!(["0x3", false]))
        .await
        .unwrap();
    assert_eq!(block["transactions"].as_array().unwrap().len(), 2);
    let expected = FleetOptions::default().genesis_timestamp + 3 * 12;
    assert_eq!(block["timestamp"], format!("{expected:#x}"));
}

#[tokio::test]
async fn held_replica_lags_then_catches_up() {
    let fleet = fleet(3).await;
    fleet.mine_blocks(2).await.unwrap();
    fleet.hold(2).await.unwrap();
    fleet.transfer(ALICE, 5).await.unwrap();
    fleet.mine_blocks(3).await.unwrap();

    assert_eq!(fleet.head(0).await.unwrap().number, 5);
    assert_eq!(fleet.head(1).await.unwrap().number, 5);
    assert_eq!(fleet.head(2).await.unwrap().number, 2);
    assert_eq!(fleet.block_hash(2, 3).await.unwrap(), None);
    assert!(fleet.is_held(2).await.unwrap());

    fleet.release(2).await.unwrap();
    assert!(!fleet.is_held(2).await.unwrap());
    assert_in_lockstep(&fleet, 5).await;
}

#[tokio::test]
async fn restarted_replica_replays_to_the_head() {
    let fleet = fleet(3).await;
    fleet.transfer(ALICE, 7).await.unwrap();
    fleet.mine_blocks(2).await.unwrap();
    let url = fleet.http_url(1);

    fleet.stop(1).await.unwrap();
    assert!(!fleet.is_running(1).await.unwrap());
    assert!(matches!(
        fleet.head(1).await,
        Err(FleetError::ReplicaStopped(1))
    ));
    let direct = RpcClient::new(&url).unwrap();
    assert!(direct.call("eth_blockNumber", json!([])).await.is_err());

    let (_, tx) = fleet.transfer(BOB, 8).await.unwrap();
    fleet.mine_blocks(2).await.unwrap();
    fleet.restart(1).await.unwrap();

    assert_eq!(fleet.http_url(1), url, "same port after restart");
    assert_eq!(
        direct.call("eth_blockNumber", json!([])).await.unwrap(),
        "0x4"
    );
    assert_in_lockstep(&fleet, 4).await;
    assert_eq!(receipt_block(&fleet, 1, &tx).await, Some(3));
}

#[tokio::test]
async fn reorg_replaces_blocks_on_every_replica() {
    let fleet = fleet(3).await;
    fleet.transfer(ALICE, 1).await.unwrap();
    fleet.mine_blocks(2).await.unwrap();
    let checkpoint = fleet.checkpoint().await.unwrap();
    let h = checkpoint.height();
    assert_eq!(h, 2);

    let (_, orphan) = fleet.transfer(BOB, 2).await.unwrap();
    fleet.mine_blocks(3).await.unwrap();
    let before = assert_in_lockstep(&fleet, h + 3).await;
    assert_eq!(receipt_block(&fleet, 0, &orphan).await, Some(h + 1));

    assert_eq!(fleet.reorg_to(&checkpoint, 3).await.unwrap(), h + 3);
    let after = assert_in_lockstep(&fleet, h + 3).await;
    assert_eq!(
        after[..h as usize],
        before[..h as usize],
        "blocks up to the checkpoint stay"
    );
    for n in h as usize..(h + 3) as usize {
        assert_ne!(after[n], before[n], "block {} was replaced", n + 1);
    }
    // The orphaned transfer is mined again in the first replacement block.
    for i in 0..3 {
        assert_eq!(receipt_block(&fleet, i, &orphan).await, Some(h + 1));
    }

    // The checkpoint stays usable, also for a replica restarted since (no snapshot:
    // it is rebuilt from genesis) and while one replica is stopped.
    fleet.restart(2).await.unwrap();
    fleet.stop(0).await.unwrap();
    assert_eq!(fleet.reorg_to(&checkpoint, 2).await.unwrap(), h + 2);
    fleet.restart(0).await.unwrap();
    let again = assert_in_lockstep(&fleet, h + 2).await;
    assert_ne!(again[h as usize], after[h as usize]);
    assert_eq!(again[..h as usize], before[..h as usize]);
}

#[tokio::test]
async fn checkpoints_after_the_reorg_point_are_discarded() {
    let fleet = fleet(1).await;
    let early = fleet.checkpoint().await.unwrap();
    fleet.mine().await.unwrap();
    let late = fleet.checkpoint().await.unwrap();
    fleet.reorg_to(&early, 0).await.unwrap();
    assert_eq!(fleet.height().await, 0);
    assert!(matches!(
        fleet.reorg_to(&late, 1).await,
        Err(FleetError::UnknownCheckpoint(_))
    ));
}

#[tokio::test]
async fn tap_counts_calls_and_injects_faults() {
    let fleet = fleet(1).await;
    fleet.mine_blocks(3).await.unwrap();
    let tap = Tap::start(&fleet.http_url(0)).await.unwrap();
    let via_tap = RpcClient::new(&tap.url()).unwrap();

    assert_eq!(
        via_tap.call("eth_blockNumber", json!([])).await.unwrap(),
        "0x3"
    );
    assert_eq!(
        via_tap.call("eth_chainId", json!([])).await.unwrap(),
        "0x7a69"
    );
    let (status, batch) = post(
        &tap.url(),
        r#"[{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber","params":[]},
            {"jsonrpc":"2.0","id":"x","method":"net_version","params":[]}]"#,
    )
    .await;
    let batch = json_or_null(&batch);
    assert_eq!(status, 200);
    assert_eq!(batch[0]["result"], "0x3");
    assert_eq!(batch[1]["id"], "x", "answers pass through unchanged");
    assert_eq!(tap.count("eth_blockNumber"), 2);
    assert_eq!(tap.count("eth_chainId"), 1);
    assert_eq!(tap.count("net_version"), 1);
    assert_eq!(tap.count("eth_call"), 0);
    assert_eq!(tap.total(), 4);
    assert_eq!(tap.requests(), 3);

    tap.set_fault(Fault::Status(503));
    let err = via_tap
        .call("eth_blockNumber", json!([]))
        .await
        .unwrap_err();
    assert!(
        matches!(err, FleetError::HttpStatus { status: 503, .. }),
        "{err}"
    );
    assert_eq!(tap.count("eth_blockNumber"), 3, "faulted calls are counted");

    tap.set_fault(Fault::DropConnection);
    let err = via_tap
        .call("eth_blockNumber", json!([]))
        .await
        .unwrap_err();
    assert!(matches!(err, FleetError::Transport { .. }), "{err}");

    tap.set_fault(Fault::Delay(Duration::from_millis(300)));
    let started = Instant::now();
    assert_eq!(
        via_tap.call("eth_blockNumber", json!([])).await.unwrap(),
        "0x3"
    );
    assert!(started.elapsed() >= Duration::from_millis(300));

    tap.set_fault(Fault::None);
    tap.reset();
    assert_eq!(tap.total(), 0);
    assert_eq!(tap.count("eth_blockNumber"), 0);
    assert_eq!(
        via_tap.call("eth_blockNumber", json!([])).await.unwrap(),
        "0x3"
    );
    assert_eq!(tap.total(), 1);
}

#[tokio::test]
async fn autominer_mines_and_lags_without_diverging() {
    let fleet = fleet(3).await;
    let miner = fleet.spawn_autominer(Duration::from_millis(50), Some(2));
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut saw_lag = false;
    while fleet.height().await < 10 {
        assert!(Instant::now() < deadline, "autominer too slow");
        for i in 0..3 {
            saw_lag |= fleet.is_held(i).await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    miner.stop().await;
    assert!(saw_lag, "a replica was held back at some point");
    for i in 0..3 {
        assert!(
            !fleet.is_held(i).await.unwrap(),
            "stop releases replica {i}"
        );
    }
    let height = fleet.height().await;
    assert_in_lockstep(&fleet, height).await;
}

#[tokio::test]
async fn reorg_while_a_replica_is_held_back() {
    let fleet = fleet(3).await;
    fleet.mine_blocks(2).await.unwrap();
    let checkpoint = fleet.checkpoint().await.unwrap();
    fleet.mine().await.unwrap();
    fleet.hold(2).await.unwrap();
    fleet.mine_blocks(2).await.unwrap();
    let before = hashes(&fleet, 0, 5).await;

    fleet.reorg_to(&checkpoint, 4).await.unwrap();
    assert_eq!(
        fleet.head(2).await.unwrap().number,
        2,
        "held replica stays at the fork"
    );
    assert_eq!(fleet.head(0).await.unwrap().number, 6);
    fleet.release(2).await.unwrap();
    let after = assert_in_lockstep(&fleet, 6).await;
    assert_eq!(after[..2], before[..2]);
    assert_ne!(after[2], before[2]);
}

#[tokio::test]
async fn a_real_redis_server_starts_answers_and_dies() {
    use rpcgate_fleet::RedisServer;
    let mut redis = RedisServer::start().await.unwrap();
    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("SET")
        .arg("k")
        .arg("v")
        .query_async(&mut conn)
        .await
        .unwrap();
    let v: String = redis::cmd("GET")
        .arg("k")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(v, "v");
    let port = redis.port();
    redis.kill().await.unwrap();
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
    // Back on the same port, empty (no persistence).
    let _again = RedisServer::start_on(port).await.unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let v: Option<String> = redis::cmd("GET")
        .arg("k")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(v, None);
}

#[tokio::test]
async fn a_send_to_one_replica_stays_in_its_pool_across_blocks_until_mined() {
    let fleet = fleet(2).await;
    let (raw, hash) = fleet.sign_transfer(ALICE, 1).await.unwrap();
    // Sent to replica 0 alone (as the gateway does), not yet queued by the
    // fleet: a block mined now leaves it out on both replicas, and replica 0
    // still has it pending, as a real node would.
    let rpc0 = fleet.rpc(0).await.unwrap();
    rpc0.call("eth_sendRawTransaction", json!([raw.clone()]))
        .await
        .unwrap();
    fleet.mine().await.unwrap();
    assert_eq!(receipt_block(&fleet, 0, &hash).await, None);
    let pending = rpc0
        .call("eth_getTransactionByHash", json!([hash.clone()]))
        .await
        .unwrap();
    assert!(
        !pending.is_null(),
        "replica 0 dropped the send with its pool"
    );
    let count = rpc0
        .call(
            "eth_getTransactionCount",
            json!([rpcgate_fleet::DEV_ACCOUNT, "pending"]),
        )
        .await
        .unwrap();
    assert_eq!(count, json!("0x1"));
    let rpc1 = fleet.rpc(1).await.unwrap();
    let elsewhere = rpc1
        .call("eth_getTransactionByHash", json!([hash.clone()]))
        .await
        .unwrap();
    assert!(
        elsewhere.is_null(),
        "only the replica it was sent to has it"
    );
    // Queued by the fleet now: the next block carries it on both.
    fleet.submit(raw).await.unwrap();
    let height = fleet.mine().await.unwrap();
    assert_eq!(receipt_block(&fleet, 0, &hash).await, Some(height));
    assert_eq!(receipt_block(&fleet, 1, &hash).await, Some(height));
    assert_in_lockstep(&fleet, height).await;
}
