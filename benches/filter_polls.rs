//! Filter polls on one gateway in front of the 3-replica anvil fleet, with
//! 1,000 live block filters and 1,000 live log filters: polls per second,
//! upstream calls per poll (counted by `rpcgate_upstream_requests_total`),
//! and memory per filter (the process's RSS growth over 10,000 filters).
//!
//! Baseline, measured in the same run over the same client and connection
//! pool: `eth_blockNumber`, which the gateway answers without a backend. A
//! block-filter poll must cost no upstream call; a log-filter poll one
//! `eth_getLogs` when a block is new, none when nothing is.
//!
//! Run: `cargo bench --bench filter_polls` (or, reusing the test build,
//! `cargo test --release --bench filter_polls -- --bench`). Without
//! `--bench` (as `cargo test` runs it) it does nothing. Figures are ratios
//! on a shared, noisy machine.

// Bench code: no API, and a failed unwrap stops the run.
#![allow(unreachable_pub, clippy::unwrap_used)]

use std::time::{Duration, Instant};

use rpcgate::config::Config;
use rpcgate::edge::Server;
use rpcgate_fleet::client::call;
use rpcgate_fleet::{Fleet, FleetOptions};
use serde_json::{json, Value};

const FILTERS: usize = 1000;
const POLLS: usize = 4000;
const CONCURRENCY: usize = 16;

fn upstream_calls(metrics: &rpcgate::metrics::Metrics) -> u64 {
    metrics
        .render()
        .lines()
        .filter(|l| l.starts_with("rpcgate_upstream_requests_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        .unwrap_or(0)
        * 1024
}

/// `POLLS` calls of `method` over `ids` (round-robin), `CONCURRENCY` at once;
/// returns calls per second.
async fn rate(url: &str, method: &str, ids: &[Value]) -> f64 {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..CONCURRENCY {
        let (url, method, ids) = (url.to_string(), method.to_string(), ids.to_vec());
        tasks.push(tokio::spawn(async move {
            for i in (w..POLLS).step_by(CONCURRENCY) {
                let params = if ids.is_empty() {
                    json!([])
                } else {
                    json!([ids[i % ids.len()]])
                };
                let r = call(&url, &method, params).await;
                assert!(r.get("error").is_none(), "{method}: {r}");
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    POLLS as f64 / started.elapsed().as_secs_f64()
}

async fn create(url: &str, method: &str, params: Value, n: usize) -> Vec<Value> {
    let mut ids = Vec::with_capacity(n);
    for _ in 0..n {
        let r = call(url, method, params.clone()).await;
        ids.push(r["result"].clone());
    }
    ids
}

async fn run() {
    let fleet = Fleet::start(FleetOptions::default()).await.unwrap();
    let top = fleet.mine_blocks(2).await.unwrap();
    let mut yaml = format!(
        "listen: 127.0.0.1:0\nadmin_listen: 127.0.0.1:0\nlog:\n  level: warn\nnetworks:\n  dev:\n    chain_id: {}\n    filters:\n      max_per_client: 20000\n      max_total: 20000\n    upstreams:\n",
        fleet.chain_id()
    );
    for i in 0..fleet.len() {
        yaml.push_str(&format!(
            "      - name: r{i}\n        http: {}\n        ws: {}\n",
            fleet.http_url(i),
            fleet.ws_url(i)
        ));
    }
    let config = Config::from_yaml(&yaml).unwrap();
    let server = Server::bind(&config).await.unwrap();
    let url = format!("http://{}", server.local_addr());
    let metrics = server.gateway().metrics().clone();
    tokio::spawn(server.run(std::future::pending(), Duration::from_secs(1)));
    let deadline = Instant::now() + Duration::from_secs(20);
    while call(&url, "eth_blockNumber", json!([])).await["result"] != json!(format!("{top:#x}")) {
        assert!(Instant::now() < deadline, "the gateway did not sync");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    let rss0 = rss_bytes();
    let blocks = create(&url, "eth_newBlockFilter", json!([]), FILTERS).await;
    let topic = format!("0x{:064x}", 42);
    let logs = create(&url, "eth_newFilter", json!([{"topics": [topic]}]), FILTERS).await;
    let extra = create(&url, "eth_newBlockFilter", json!([]), 8000).await;
    let per_filter = rss_bytes().saturating_sub(rss0) as f64 / (2 * FILTERS + extra.len()) as f64;

    let base = rate(&url, "eth_blockNumber", &[]).await;
    let before = upstream_calls(&metrics);
    let block_rate = rate(&url, "eth_getFilterChanges", &blocks).await;
    let block_calls = upstream_calls(&metrics) - before;
    let before = upstream_calls(&metrics);
    let idle_log_rate = rate(&url, "eth_getFilterChanges", &logs).await;
    let idle_log_calls = upstream_calls(&metrics) - before;
    // One new block (with a log), then each log filter polled once.
    fleet.deploy("0x602a60006000a1", 100_000).await.unwrap();
    let top = fleet.mine().await.unwrap();
    while call(&url, "eth_blockNumber", json!([])).await["result"] != json!(format!("{top:#x}")) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = upstream_calls(&metrics);
    for id in &logs {
        let r = call(&url, "eth_getFilterChanges", json!([id])).await;
        assert_eq!(r["result"].as_array().map(Vec::len), Some(1), "{r}");
    }
    let new_block_calls = upstream_calls(&metrics) - before;

    println!("filter polls, 1 gateway, 3 anvil replicas, {FILTERS} block + {FILTERS} log filters live, {CONCURRENCY} concurrent clients");
    println!("  baseline eth_blockNumber (local answer): {base:.0} calls/s");
    println!("  block-filter polls: {block_rate:.0} polls/s ({:.2} of baseline), upstream calls per poll {:.3}", block_rate / base, block_calls as f64 / POLLS as f64);
    println!("  log-filter polls, nothing new: {idle_log_rate:.0} polls/s ({:.2} of baseline), upstream calls per poll {:.3}", idle_log_rate / base, idle_log_calls as f64 / POLLS as f64);
    println!(
        "  log-filter polls after one new block: upstream calls per poll {:.3}",
        new_block_calls as f64 / FILTERS as f64
    );
    println!(
        "  memory per filter (RSS growth over {} filters): {per_filter:.0} bytes",
        2 * FILTERS + extra.len()
    );
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("filter_polls: run with --bench (cargo bench) to measure");
        return;
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(run());
}
