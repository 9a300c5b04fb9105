//! `fixed-node ADDR`: one fixed-answer node ([`rpcgate_fleet::fixed_node`])
//! on ADDR, its head fixed: the backend of the forwarding profile
//! (`loadtests/profile`) and of `loadtests/forwarding`, where what the
//! gateway costs per forwarded call is measured against the least a backend
//! can do. `--chain-id` (default 1) and `--block-time-ms` (a head that moves)
//! are for running it by hand; `--slow-logs-ms` gives it a heavy call.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use rpcgate_fleet::fixed_node::{serve, FixedChain};

/// The gateway's allocator, so that the comparison is of the work done per
/// request and not of two allocators.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Serve one fixed-answer node.
#[derive(Parser)]
struct Cli {
    /// The address to listen on (`127.0.0.1:18945`).
    addr: String,
    /// The chain id it reports.
    #[arg(long, default_value_t = 1)]
    chain_id: u64,
    /// Milliseconds between blocks; the head stays put without it.
    #[arg(long)]
    block_time_ms: Option<u64>,
    /// Milliseconds each `eth_getLogs` takes (a heavy call; default none).
    #[arg(long, default_value_t = 0)]
    slow_logs_ms: u64,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let chain = Arc::new(
        FixedChain::new(cli.chain_id, cli.block_time_ms.map(Duration::from_millis))
            .with_slow_logs(Duration::from_millis(cli.slow_logs_ms)),
    );
    let served = match tokio::net::TcpListener::bind(&cli.addr).await {
        Ok(listener) => serve(listener, chain).await,
        Err(e) => Err(e),
    };
    if let Err(e) = served {
        eprintln!("fixed-node {}: {e}", cli.addr);
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
