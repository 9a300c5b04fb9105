//! `bench-nodes`: the backends of the published benchmark (`loadtests/run`), in
//! a process of their own so that the harness can measure their CPU apart
//! from the gateway's.
//!
//! - `bench-nodes anvil`: a lockstep fleet of real anvil replicas (see
//!   [`rpcgate_fleet::Fleet`]) mining a block every `--block-time`, never
//!   lagging; one transfer is mined first so that receipts and logs exist.
//! - `bench-nodes fixed`: `--replicas` fixed-answer nodes ([`rpcgate_fleet::fixed_node`]):
//!   the cheapest backend that rpcgate still accepts as a node.
//!
//! Prints one line per backend, `backend HTTP_URL WS_URL` (`-` when there is
//! none), then `tx HASH` (anvil only) and `ready`, and serves until SIGTERM
//! or Ctrl-C. The anvil processes are its children: the harness finds them
//! through /proc to add their CPU time.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::{Parser, ValueEnum};
use rpcgate_fleet::fixed_node::{self, FixedChain};
use rpcgate_fleet::{Fleet, FleetOptions};

/// The gateway's allocator, as in the demo: every Rust process of the
/// benchmark allocates alike.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Clone, Copy, ValueEnum)]
enum Kind {
    /// Real anvil replicas in lockstep.
    Anvil,
    /// Fixed-answer nodes.
    Fixed,
}

/// Start the backends of the load tests and print where they listen.
#[derive(Parser)]
#[command(
    after_help = "anvil is found at $RPCGATE_ANVIL, else under .tools/ (scripts/install-anvil), else on PATH."
)]
struct Cli {
    kind: Kind,
    /// How many backends.
    #[arg(long, default_value_t = 3)]
    replicas: usize,
    /// Time between blocks (whole seconds for anvil).
    #[arg(long, default_value = "2s", value_parser = rpcgate::config::parse_duration)]
    block_time: Duration,
    /// The chain id every backend reports.
    #[arg(long, default_value_t = 31337)]
    chain_id: u64,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    rpcgate::logs::init(Some("warn"), false, None);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("bench-nodes: no tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench-nodes: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), Box<dyn std::error::Error>> {
    match cli.kind {
        Kind::Fixed => {
            let chain = Arc::new(FixedChain::new(cli.chain_id, Some(cli.block_time)));
            for _ in 0..cli.replicas.max(1) {
                let addr = fixed_node::spawn(chain.clone()).await?;
                println!("backend http://{addr} -");
            }
            println!("ready");
            shutdown_signal().await;
        }
        Kind::Anvil => {
            let block_secs = cli.block_time.as_secs().max(1);
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(1_700_000_000, |d| d.as_secs());
            let fleet = Fleet::start(FleetOptions {
                replicas: cli.replicas.max(1),
                chain_id: cli.chain_id,
                genesis_timestamp: now,
                block_time_secs: block_secs,
            })
            .await?;
            let (_, tx) = fleet
                .transfer(rpcgate_fleet::RECEIVER_ACCOUNT, 10u128.pow(18))
                .await?;
            fleet.mine().await?;
            for i in 0..fleet.len() {
                println!("backend {} {}", fleet.http_url(i), fleet.ws_url(i));
            }
            println!("tx {tx}");
            println!("ready");
            let miner = fleet.spawn_autominer(Duration::from_secs(block_secs), None);
            shutdown_signal().await;
            miner.stop().await;
            drop(fleet);
        }
    }
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
