//! `rpcgate-demo`: the command line of the demo (parse arguments, start, stop on a
//! signal). What the demo does is in `run.rs`.
//!
//! A binary of the fleet crate, not of the product: it starts anvil processes and runs
//! the gateway in-process in front of them, which the product binary never does.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

mod run;

/// The gateway's allocator, so that load tests against the demo measure the gateway as
/// it ships (see `src/main.rs` of the product).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Run a local demo: a lockstep fleet of real anvil replicas with rpcgate in front.
#[derive(Parser)]
#[command(
    version,
    after_help = "anvil is found at $RPCGATE_ANVIL, else where scripts/install-anvil put it (.tools/ \
under the current directory, the executable's directory or one of their ancestors), else on PATH.\n\
Logs: RUST_LOG, if set, wins over --log / RPCGATE_LOG."
)]
struct Cli {
    /// Where the gateway listens.
    #[arg(long, default_value = "127.0.0.1:8545")]
    listen: SocketAddr,
    /// How many anvil replicas.
    #[arg(long, default_value_t = 3)]
    replicas: usize,
    /// Time between blocks.
    #[arg(long, default_value = "2s", value_parser = rpcgate::config::parse_duration)]
    block_time: Duration,
    /// Hold one replica back every N blocks (0: never).
    #[arg(long, default_value_t = 6)]
    lag_every: u32,
    /// Log filter, e.g. `info` or `warn,rpcgate=debug`. RUST_LOG wins over it.
    #[arg(long, env = "RPCGATE_LOG")]
    log: Option<String>,
    /// Log lines as JSON objects.
    #[arg(long)]
    log_json: bool,
    /// A load test: raise the connection caps and the anonymous request
    /// budget so that this many clients from this host can connect at once.
    #[arg(long)]
    load_clients: Option<usize>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    rpcgate::logs::init(cli.log.as_deref(), cli.log_json, None);
    let opts = run::DemoOptions {
        listen: cli.listen,
        replicas: cli.replicas,
        block_time: cli.block_time,
        lag_every: (cli.lag_every > 0).then_some(cli.lag_every),
        load_clients: cli.load_clients,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    match runtime.block_on(run::run(opts, shutdown_signal())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rpcgate-demo: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("a SIGTERM handler");
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = tokio::signal::ctrl_c() => tracing::info!("interrupt: shutting down"),
    }
}
