//! Process logs: tracing to stderr, human-readable lines or JSON objects.
//!
//! The level is a tracing filter. `RUST_LOG` wins, then `--log` /
//! `RPCGATE_LOG`, then the config's `log.level`; only the last can change
//! while running, so a reload applies a new `log.level` unless the
//! environment or the command line fixed it. The filter sits behind a
//! `reload` layer for that; the format is chosen once, at start.

use std::sync::OnceLock;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, EnvFilter, Registry};

use crate::config::LogConfig;

struct Installed {
    filter: reload::Handle<EnvFilter, Registry>,
    /// Set by the environment or the command line: the config has no say.
    fixed: bool,
    /// The config level now in force, so an unchanged reload does nothing.
    level: parking_lot::Mutex<String>,
}

static INSTALLED: OnceLock<Installed> = OnceLock::new();

/// Installs the process's logger. `flag` is `--log` (or `RPCGATE_LOG`);
/// `config` is the config's `log:` when one was loaded.
pub fn init(flag: Option<&str>, json: bool, config: Option<&LogConfig>) {
    let from_env = std::env::var("RUST_LOG").ok().filter(|v| !v.is_empty());
    let configured = config.map_or("info", |c| c.level.as_str());
    let fixed = from_env.is_some() || flag.is_some();
    let level = from_env.as_deref().or(flag).unwrap_or(configured);
    let filter = EnvFilter::builder().parse_lossy(level);
    let (filter, handle) = reload::Layer::new(filter);
    // Colours only for a person at a terminal, never in files or pipes.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let json = json || config.is_some_and(|c| c.json);
    let registry = tracing_subscriber::registry().with(filter);
    let installed = if json {
        registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_writer(std::io::stderr),
            )
            .try_init()
    } else {
        registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(ansi)
                    .with_writer(std::io::stderr),
            )
            .try_init()
    };
    if installed.is_ok() {
        let _ = INSTALLED.set(Installed {
            filter: handle,
            fixed,
            level: parking_lot::Mutex::new(configured.to_string()),
        });
    }
}

/// Applies a reloaded config's `log.level`, unless the level is fixed.
pub fn apply(config: &LogConfig) {
    let Some(installed) = INSTALLED.get() else {
        return;
    };
    let mut level = installed.level.lock();
    if *level == config.level {
        return;
    }
    if installed.fixed {
        tracing::info!(
            level = %config.level,
            "log.level changed in the config, but RUST_LOG or --log sets the level"
        );
        return;
    }
    // At warn, and before the change, so that it shows whichever way the
    // level moves (unless it moves past warn).
    tracing::warn!(from = %level, to = %config.level, "log level changed");
    // Validated with the config, so it parses.
    let filter = EnvFilter::builder().parse_lossy(&config.level);
    match installed.filter.reload(filter) {
        Ok(()) => *level = config.level.clone(),
        Err(e) => tracing::warn!(error = %e, "log level could not be changed"),
    }
}
