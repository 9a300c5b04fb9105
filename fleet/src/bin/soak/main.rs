//! `soak`: issue #24's whole scenario in one run, and a report of everything
//! that went wrong.
//!
//! ```text
//! soak --rpcgate target/release/rpcgate [--duration 1h] [--seed 7] [--out target/soak]
//! ```
//! (`loadtests/soak` builds both binaries and runs this; `DURATION`, `SEED`,
//! `INJECT` and `GROWTH_CHECK` are read from the environment too.)
//!
//! Two rpcgate processes share one redis-server (append-only file on) in front
//! of three lockstep anvil replicas mined every second, under a DApp's mixed
//! traffic, with a fault every 4-10 s chosen by the seed (see `faults.rs`).
//! Everything a client is served is checked: reads as they come
//! (`readers.rs`), streams once the chain has settled (`verify.rs`). The
//! report (`report.rs`) goes to `<out>/<UTC timestamp>/report.md`; the exit
//! code is 0 only when every count is 0 and the gateways' RSS and descriptors
//! stayed flat, 1 when not, 2 when the scenario could not be set up.
//!
//! Test support, not product: it lives in the fleet crate and starts the
//! gateway as the binary an operator runs.

mod context;
mod faults;
mod gateway;
mod readers;
mod record;
mod report;
mod streams;
mod verify;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use rpcgate_fleet::{Fleet, FleetOptions, RedisServer};
use serde_json::{json, Value};
use tokio::sync::Mutex;

use context::{Inject, Soak};
use gateway::{Gateway, Setup};
use record::{Record, ResourceSample};
use streams::{Kind, Stream};

/// A contract whose constructor logs topic 42 and whose code, on any call,
/// logs its calldata under topic 42 and returns 42 (the tests' logger).
const LOGGER_INIT: &str =
    "0x602a60006000a16016601360003960166000f3366000600037602a366000a1602a60005260206000f3";
/// How long the streams keep running after the last fault, so that they see the
/// chain settle before it is checked.
const SETTLE: Duration = Duration::from_secs(6);

#[derive(Parser)]
#[command(
    about = "Two rpcgate gateways, one redis, three anvil replicas, a DApp's traffic and a fault every 4-10 s; a report of every failed read, stale answer, gap and duplicate"
)]
struct Cli {
    /// The rpcgate binary to run.
    #[arg(long, env = "RPCGATE_BIN")]
    rpcgate: PathBuf,
    /// How long faults are injected (e.g. 75s, 10m, 1h).
    #[arg(long, env = "DURATION", default_value = "1h", value_parser = parse_duration)]
    duration: Duration,
    /// Chooses the faults and their timing (default: from the clock; the report names it).
    #[arg(long, env = "SEED")]
    seed: Option<u64>,
    /// Where the run's directory is made.
    #[arg(long, env = "SOAK_OUT", default_value = "target/soak")]
    out: PathBuf,
    /// The harness's own faults, to see each count catch its case: dup, gap, stale, send, outage.
    #[arg(long, env = "INJECT", default_value = "")]
    inject: String,
    /// 0: RSS and descriptor growth is reported but does not fail the run (short runs).
    #[arg(long, env = "GROWTH_CHECK", default_value_t = 1)]
    growth_check: u8,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: u64 = n.parse().map_err(|_| format!("not a duration: {s}"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" | "" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        "h" => Ok(Duration::from_secs(n * 3600)),
        _ => Err(format!("not a duration: {s} (use ms, s, m or h)")),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("soak: no runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("soak: {e}");
            ExitCode::from(2)
        }
    }
}

async fn run(cli: Cli) -> Result<bool, String> {
    let inject = Inject::parse(&cli.inject)?;
    let seed = cli.seed.unwrap_or_else(|| fastrand::u64(..1_000_000));
    let dir = gateway::run_dir(&cli.out)?;
    eprintln!(
        "soak: SEED={seed} DURATION={:?} -> {}",
        cli.duration,
        dir.display()
    );

    let fleet = Fleet::start(FleetOptions::default())
        .await
        .map_err(|e| e.to_string())?;
    let contract = deploy(&fleet).await?;
    // SOAK_PREMINE=n starts on a chain n blocks long (a restarted replica
    // replays it all: what an hour's chain costs, at once).
    let premine = std::env::var("SOAK_PREMINE")
        .ok()
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or(0);
    fleet
        .mine_blocks(3 + premine)
        .await
        .map_err(|e| e.to_string())?;
    let redis_dir = dir.join("redis");
    std::fs::create_dir_all(&redis_dir).map_err(|e| e.to_string())?;
    let redis = RedisServer::start_with_aof(&redis_dir)
        .await
        .map_err(|e| e.to_string())?;
    let setup = Arc::new(Setup {
        binary: cli.rpcgate.clone(),
        dir: dir.clone(),
        redis_url: redis.url(),
        upstreams: gateway::upstreams(&fleet),
        chain_id: fleet.chain_id(),
    });
    let redis = Arc::new(Mutex::new(redis));
    let mut gateways = Vec::new();
    for i in 0..2 {
        gateways.push(Arc::new(Gateway::start(&setup, i).await?));
    }
    eprintln!(
        "soak: gateways at {} and {}",
        gateways[0].url(),
        gateways[1].url()
    );

    let record = Arc::new(Record::new());
    let soak = Arc::new(Soak::new(
        fleet.clone(),
        gateways.clone(),
        record.clone(),
        contract,
        inject,
    ));
    let mining_done = Arc::new(AtomicBool::new(false));
    let miner = tokio::spawn(faults::miner(soak.clone(), mining_done.clone()));
    let sampler = tokio::spawn(sample(soak.clone()));

    let mut streams: Vec<tokio::task::JoinHandle<Stream>> = Vec::new();
    for id in 0..10 {
        streams.push(tokio::spawn(streams::subscriber(
            soak.clone(),
            id,
            id % 2,
            Kind::Heads,
        )));
    }
    for id in 0..4 {
        streams.push(tokio::spawn(streams::subscriber(
            soak.clone(),
            id,
            id % 2,
            Kind::Logs,
        )));
    }
    for id in 0..4 {
        streams.push(tokio::spawn(streams::filter(
            soak.clone(),
            id,
            Kind::BlockFilter,
        )));
    }
    for id in 0..2 {
        streams.push(tokio::spawn(streams::filter(
            soak.clone(),
            id,
            Kind::LogFilter,
        )));
    }
    let mut clients = Vec::new();
    for id in 0..4 {
        clients.push(tokio::spawn(readers::reader(soak.clone(), id)));
    }
    clients.push(tokio::spawn(readers::wallet(soak.clone())));

    let until = cli.duration.as_secs_f64();
    let scheduler = tokio::spawn(faults::scheduler(
        soak.clone(),
        setup.clone(),
        redis.clone(),
        seed,
        until / 2.0,
        until,
    ));
    let _ = scheduler.await;
    faults::heal(&soak).await;
    eprintln!("soak: faults over at {:.0}s; settling", record.now());
    tokio::time::sleep(SETTLE).await;
    soak.stop();
    for client in clients {
        let _ = client.await;
    }
    let mut finished = Vec::new();
    for stream in streams {
        if let Ok(stream) = stream.await {
            finished.push(stream);
        }
    }
    mining_done.store(true, Ordering::Relaxed);
    let _ = miner.await;
    let _ = sampler.await;

    let chain = verify::Chain::read(&fleet, &soak.contract).await?;
    for stream in &finished {
        verify::check(stream, &chain, &record);
    }
    for gateway in &gateways {
        gateway.stop().await;
    }
    let header = report::Header {
        seed,
        duration: format!("{:?}", cli.duration),
        binary: cli.rpcgate.display().to_string(),
        chain_height: chain.height(),
        inject: cli.inject.clone(),
    };
    let failures = report::write(&dir, &header, &record, cli.growth_check != 0)?;
    for count in record::Count::ALL {
        let n = record.tallies().get(&count).map_or(0, |t| t.n);
        eprintln!("soak: {:<60} {n}", count.name());
    }
    eprintln!("soak: report {}", dir.join("report.md").display());
    if failures.is_empty() {
        eprintln!("soak: PASS");
    } else {
        eprintln!("soak: FAIL: {}", failures.join("; "));
    }
    Ok(failures.is_empty())
}

/// Deploys the logging contract and returns its address.
async fn deploy(fleet: &Fleet) -> Result<String, String> {
    let (_, hash) = fleet
        .deploy(LOGGER_INIT, 200_000)
        .await
        .map_err(|e| e.to_string())?;
    fleet.mine().await.map_err(|e| e.to_string())?;
    let rpc = fleet.rpc(0).await.map_err(|e| e.to_string())?;
    let receipt = rpc
        .call("eth_getTransactionReceipt", json!([hash]))
        .await
        .map_err(|e| e.to_string())?;
    receipt
        .get("contractAddress")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or(format!("the logger was not deployed: {receipt}"))
}

/// RSS and descriptors of each gateway process every 2 s.
async fn sample(soak: Arc<Soak>) {
    while soak.pause(Duration::from_secs(2)).await {
        for gateway in &soak.gateways {
            let Some(pid) = gateway.pid() else { continue };
            if gateway.is_restarting() {
                continue;
            }
            if let Some((rss_kib, fds)) = gateway::resources(pid) {
                soak.record.sample(ResourceSample {
                    at: soak.record.now(),
                    gateway: gateway.index,
                    pid,
                    rss_kib,
                    fds,
                });
            }
        }
    }
}
