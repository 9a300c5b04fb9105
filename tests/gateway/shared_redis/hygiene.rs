//! What the gateway does with a plain Redis: a batch's rate limits cost one
//! script call (counted by Redis itself, `INFO commandstats`), every key
//! carries `redis.prefix` and the network's name and chain id, and a cache
//! value in Redis that is not what a gateway wrote is not served.

use redis::AsyncCommands;
use rpcgate_fleet::RedisServer;
use serde_json::{json, Value};

use super::with_redis;
use crate::cache::wait_cache_current;
use crate::support::*;

async fn redis_conn(redis: &RedisServer) -> redis::aio::MultiplexedConnection {
    redis::Client::open(redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// Script calls Redis has run (EVALSHA and EVAL, failed ones too).
async fn script_calls(conn: &mut redis::aio::MultiplexedConnection) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(conn)
        .await
        .unwrap();
    info.lines()
        .filter(|l| l.starts_with("cmdstat_evalsha:") || l.starts_with("cmdstat_eval:"))
        .filter_map(|l| {
            l.split([':', ','])
                .find_map(|kv| kv.strip_prefix("calls="))
                .and_then(|n| n.parse::<u64>().ok())
        })
        .sum()
}

fn batch(n: usize) -> Value {
    Value::Array(
        (0..n)
            .map(|i| json!({"jsonrpc": "2.0", "id": i, "method": "eth_chainId", "params": []}))
            .collect(),
    )
}

#[tokio::test]
async fn a_batch_is_judged_by_one_script_call_in_order() {
    let redis = RedisServer::start().await.unwrap();
    let mut conn = redis_conn(&redis).await;
    let fleet = fleet(1).await;
    let y = with_redis(
        &fleet,
        "",
        &[format!("url: {}", redis.url()), "prefix: batch-test".into()],
        "policy:\n  redis_fallback: closed\n  redis_timeout: 2s\n  anonymous:\n    limits:\n      requests_per_second: 0.001\n      burst: 60\n",
    );
    let gw = start_gateway(&y).await;
    wait_synced(&gw, 1, 0).await;
    // One call first: the script is loaded into Redis on its first use.
    assert_eq!(send(&gw.url, &[], &batch(1)[0]).await.0, 200);
    let before = script_calls(&mut conn).await;
    let (status, _, answer) = send(&gw.url, &[], &batch(50)).await;
    assert_eq!(status, 200);
    assert!(answer
        .as_array()
        .unwrap()
        .iter()
        .all(|a| a["result"].is_string()));
    assert_eq!(
        script_calls(&mut conn).await - before,
        1,
        "one script call for 50 entries"
    );
    // The budget was charged for every entry: of 20 more, 9 pass.
    let (_, _, answer) = send(&gw.url, &[], &batch(20)).await;
    let passed = answer
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["result"].is_string())
        .count();
    assert_eq!(passed, 9, "{answer}");
    // The keys are the deployment's.
    let keys: Vec<String> = conn.keys("*").await.unwrap();
    assert!(!keys.is_empty());
    assert!(
        keys.iter().all(|k| k.starts_with("batch-test:rl:{ip:")),
        "{keys:?}"
    );
}

#[tokio::test]
async fn a_cache_value_that_is_not_json_is_not_served() {
    let redis = RedisServer::start().await.unwrap();
    let mut conn = redis_conn(&redis).await;
    let fleet = fleet(1).await;
    fleet.mine().await.unwrap();
    let y = with_cache(
        &with_redis(
            &fleet,
            "",
            &[format!("url: {}", redis.url()), "prefix: hygiene".into()],
            "",
        ),
        &["shared: true"],
    );
    let a = start_gateway(&y).await;
    wait_synced(&a, 1, 1).await;
    wait_cache_current(&a).await;
    let genesis = fleet.block_hash(0, 0).await.unwrap().unwrap();
    let params = json!([genesis, false]);
    let truth = result(&a.url, "eth_getBlockByHash", params.clone()).await;
    let cache = a.network().cache.clone().unwrap();
    wait_for("the shared tier written", || {
        let done = cache.counts().shared_writes >= 1;
        async move { done }
    })
    .await;
    // Namespaced: the prefix, then the network's name and chain id.
    let space = format!("hygiene:cache:v1:dev@{}:", fleet.chain_id());
    let keys: Vec<String> = conn.keys("hygiene:cache:*").await.unwrap();
    assert!(!keys.is_empty());
    assert!(keys.iter().all(|k| k.starts_with(&space)), "{keys:?}");
    // Whoever can write to Redis writes a final entry that is not JSON.
    for k in &keys {
        let _: () = conn.set(k, b"F{\"forged\":".to_vec()).await.unwrap();
    }
    // A second gateway with a cold memory reads it, refuses it, asks a backend.
    let b = start_gateway(&y).await;
    wait_synced(&b, 1, 1).await;
    wait_cache_current(&b).await;
    assert_eq!(result(&b.url, "eth_getBlockByHash", params).await, truth);
    let m = scrape(&b.admin).await;
    assert!(
        m.value("rpcgate_redis_invalid_values_total", &[("kind", "cache")]) >= 1.0,
        "the forged value was counted"
    );
}
