//! The command line: parse arguments, load the config, start.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use rpcgate::config::{Config, RuntimeLayout};
use rpcgate::control::reload::{Overrides, Watch};
use rpcgate::edge::Server;

/// Every call allocates and frees a handful of small buffers (headers, body
/// channel, cache key, answer); mimalloc's per-thread free lists make each
/// of those cheaper than glibc's malloc (about a tenth of the user-space
/// instructions of a cache hit went to malloc and free).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A JSON-RPC gateway for Ethereum node fleets.
#[derive(Parser)]
#[command(
    version,
    about,
    after_help = "Signals: SIGHUP reloads the config at once (it is also reloaded when the file \
changes, a Kubernetes ConfigMap symlink swap included); SIGTERM or Ctrl-C stops accepting, \
reports not ready, lets in-flight requests finish for --drain-timeout, and exits 0.\n\
Logs: RUST_LOG, if set, wins over --log / RPCGATE_LOG, which win over the config's log.level."
)]
struct Cli {
    /// The YAML config file to serve (see config/rpcgate.example.yaml).
    #[arg(long, short, env = "RPCGATE_CONFIG")]
    config: Option<PathBuf>,
    /// Override the `listen` address of the config.
    #[arg(long, env = "RPCGATE_LISTEN")]
    listen: Option<std::net::SocketAddr>,
    /// Override the `admin_listen` address of the config (/livez, /readyz, /status, /metrics;
    /// default 127.0.0.1:8580, clear of Prometheus's own 9090).
    #[arg(long, env = "RPCGATE_ADMIN_LISTEN")]
    admin_listen: Option<std::net::SocketAddr>,
    /// Log filter, e.g. `info` or `warn,rpcgate=debug`. RUST_LOG wins over
    /// it; it wins over the config's `log.level` (default `info`).
    #[arg(long, env = "RPCGATE_LOG", global = true)]
    log: Option<String>,
    /// Log lines as JSON objects (else as the config's `log.format` says).
    #[arg(long, global = true)]
    log_json: bool,
    /// How long in-flight requests may take to finish on shutdown (e.g. 500ms, 20s, 1m).
    #[arg(long, env = "RPCGATE_DRAIN_TIMEOUT", default_value = "10s", value_parser = rpcgate::config::parse_duration)]
    drain_timeout: Duration,
    /// How often the config file is checked for changes (SIGHUP reloads at once).
    #[arg(long, env = "RPCGATE_RELOAD_INTERVAL", default_value = "2s", value_parser = rpcgate::config::parse_duration)]
    reload_interval: Duration,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Validate a config file and exit (0 when valid, 2 when not).
    CheckConfig { file: PathBuf },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.command.is_some() {
        rpcgate::logs::init(cli.log.as_deref(), cli.log_json, None);
    }
    match &cli.command {
        Some(Command::CheckConfig { file }) => match Config::load(file) {
            Ok(c) => {
                println!(
                    "{}: valid ({} network(s))",
                    file.display(),
                    c.networks.len()
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                // One line per problem, each naming the file and the key.
                for line in e.to_string().lines() {
                    eprintln!("{}: {line}", file.display());
                }
                ExitCode::from(2)
            }
        },
        None => {
            let Some(path) = &cli.config else {
                eprintln!("rpcgate: --config FILE is required (see --help)");
                return ExitCode::from(2);
            };
            // Read once: what is validated here is what the reloader compares against.
            let loaded = match std::fs::read(path) {
                Ok(bytes) => bytes,
                Err(e) => {
                    eprintln!("{}: cannot read: {e}", path.display());
                    return ExitCode::from(2);
                }
            };
            let parsed =
                std::str::from_utf8(&loaded).map_err(|_| "the file is not UTF-8".to_string());
            let mut config =
                match parsed.and_then(|t| Config::from_yaml(t).map_err(|e| e.to_string())) {
                    Ok(c) => c,
                    Err(e) => {
                        for line in e.lines() {
                            eprintln!("{}: {line}", path.display());
                        }
                        return ExitCode::from(2);
                    }
                };
            let overrides = Overrides {
                listen: cli.listen,
                admin_listen: cli.admin_listen,
            };
            overrides.apply(&mut config);
            rpcgate::logs::init(cli.log.as_deref(), cli.log_json, Some(&config.log));
            let watch = Watch {
                path: path.clone(),
                loaded,
                every: cli.reload_interval,
                overrides,
            };
            serve(config, cli.drain_timeout, watch)
        }
    }
}

fn serve(config: Config, drain: Duration, watch: Watch) -> ExitCode {
    // With `server.runtime: per_core` the request path has runtimes of its
    // own (one per core); this one keeps only the control loops, on one thread.
    let mut builder = match config.listener.runtime {
        RuntimeLayout::Shared => tokio::runtime::Builder::new_multi_thread(),
        RuntimeLayout::PerCore => tokio::runtime::Builder::new_current_thread(),
    };
    let runtime = builder.enable_all().build().expect("a tokio runtime");
    runtime.block_on(async move {
        let server = match Server::bind(&config).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("rpcgate: cannot listen on {}: {e}", config.listener.listen);
                return ExitCode::FAILURE;
            }
        };
        tracing::info!(
            listen = %server.local_addr(),
            admin = %server.admin_addr(),
            networks = config.networks.len(),
            "rpcgate serving"
        );
        let watcher = tokio::spawn(rpcgate::control::reload::watch(watch, server.gateway()));
        let suppressed = tokio::spawn(rpcgate::logs::report_suppressed());
        server.run(shutdown_signal(), drain).await;
        watcher.abort();
        suppressed.abort();
        tracing::info!("rpcgate stopped");
        ExitCode::SUCCESS
    })
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("a SIGTERM handler");
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = tokio::signal::ctrl_c() => tracing::info!("interrupt: shutting down"),
    }
}
