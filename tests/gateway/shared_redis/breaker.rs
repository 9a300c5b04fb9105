//! Redis frozen (SIGSTOP: connections accepted, nothing answered) for 5 s
//! under load: once the circuit breaker opens, calls stop waiting
//! `redis_timeout` each and take the fallback (`open`: the local limiter) at
//! once. Asserted on counts, not time: the Redis calls that waited (failed
//! or timed out) stay a handful (the ones before the breaker opened, and one
//! probe per cool-down), while the calls served during the freeze are many
//! times what waiting calls could have been. After the thaw the breaker
//! closes and Redis decides again.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rpcgate_fleet::RedisServer;
use serde_json::json;

use super::with_redis;
use crate::support::*;

/// Clients calling in parallel.
const CLIENTS: u64 = 8;
/// Each Redis call's deadline: without a breaker, a frozen Redis makes every
/// call wait this long, so CLIENTS clients could make at most
/// CLIENTS * 5 s / 250 ms = 160 calls in the freeze.
const REDIS_TIMEOUT_MS: u64 = 250;
const FAILURES_TO_OPEN: u64 = 3;

#[tokio::test]
async fn a_frozen_redis_costs_calls_nothing_once_the_breaker_opens() {
    let redis = RedisServer::start().await.unwrap();
    let fleet = fleet(1).await;
    fleet.mine().await.unwrap();
    let y = with_redis(
        &fleet,
        "",
        &[
            format!("url: {}", redis.url()),
            format!("breaker_failures: {FAILURES_TO_OPEN}"),
            "breaker_cooldown: 1s".into(),
        ],
        &format!("policy:\n  redis_fallback: open\n  redis_timeout: {REDIS_TIMEOUT_MS}ms\n  anonymous:\n    limits:\n      requests_per_second: 100000\n      burst: 100000\n"),
    );
    let gw = start_gateway(&y).await;
    wait_synced(&gw, 1, 1).await;

    let served = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        let (url, served, failed, stop) =
            (gw.url.clone(), served.clone(), failed.clone(), stop.clone());
        clients.push(tokio::spawn(async move {
            let body = json!({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []});
            while !stop.load(Ordering::Relaxed) {
                let (status, _, answer) = send(&url, &[], &body).await;
                if status == 200 && answer.get("result").is_some() {
                    served.fetch_add(1, Ordering::Relaxed);
                } else {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    // Load with Redis answering, then frozen for 5 s, then thawed.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = scrape(&gw.admin).await;
    let served_before = served.load(Ordering::Relaxed);
    redis.freeze().unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let frozen = scrape(&gw.admin).await;
    let served_frozen = served.load(Ordering::Relaxed) - served_before;
    redis.thaw().unwrap();
    wait_for("the breaker closed after the thaw", || {
        let admin = gw.admin.clone();
        async move {
            scrape(&admin)
                .await
                .value("rpcgate_redis_breaker_open", &[])
                == 0.0
        }
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.unwrap();
    }

    let delta = |name: &str| frozen.value(name, &[]) - before.value(name, &[]);
    let waited = delta("rpcgate_redis_failures_total");
    let skipped = delta("rpcgate_redis_skipped_total");
    let opened = delta("rpcgate_redis_breaker_opened_total");
    eprintln!(
        "during the freeze: {served_frozen} calls served, {waited} waited for redis, {skipped} skipped it, breaker opened {opened}x"
    );
    assert_eq!(failed.load(Ordering::Relaxed), 0, "every call answered");
    assert!(opened >= 1.0, "the breaker opened");
    // Before opening: at most FAILURES_TO_OPEN + CLIENTS in flight; then one
    // probe per 1 s cool-down (and the clients in flight with each).
    let bound = (FAILURES_TO_OPEN + CLIENTS + 6 * (1 + CLIENTS)) as f64;
    assert!(
        waited <= bound,
        "{waited} calls waited for a frozen redis (bound {bound})"
    );
    let without_breaker = CLIENTS * 5000 / REDIS_TIMEOUT_MS;
    assert!(
        served_frozen > 3 * without_breaker,
        "{served_frozen} calls served in the freeze; waiting calls could make {without_breaker}"
    );
    assert!(
        skipped > 2.0 * without_breaker as f64,
        "{skipped} calls skipped redis"
    );
    // Redis decides again.
    let after = scrape(&gw.admin).await;
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []});
    assert_eq!(send(&gw.url, &[], &body).await.0, 200);
    let last = scrape(&gw.admin).await;
    assert_eq!(
        last.value("rpcgate_redis_skipped_total", &[]),
        after.value("rpcgate_redis_skipped_total", &[])
    );
}
