//! Process logs: tracing to stderr, human-readable lines or JSON objects.
//!
//! The level is a tracing filter. `RUST_LOG` wins, then `--log` /
//! `RPCGATE_LOG`, then the config's `log.level`; only the last can change
//! while running, so a reload applies a new `log.level` unless the
//! environment or the command line fixed it. The filter sits behind a
//! `reload` layer for that; the format is chosen once, at start.
//!
//! ## One event, one line, whatever a client sends
//!
//! Method names, error messages that quote them, user agents and origins
//! come from clients, and a newline in one of them would forge a log line.
//! Escaping happens in the formatter, not where values are recorded: the
//! formatter sees every field of every event, so a call site written
//! tomorrow cannot forget it, and nothing is escaped twice (a wrapper at the
//! call site would be escaped again by the JSON encoder). The human format
//! writes fields through [`text`]'s visitor, which escapes control
//! characters (C0 with `\n`, `\r`, `\t`, DEL, C1), the Unicode line and
//! paragraph separators and the invisible direction and width marks, as
//! `\n` or `\u{2028}`. The JSON encoder already escapes C0; [`text`]'s
//! writer adds `\u` escapes for the rest, which only ever occur inside JSON
//! strings, so each line is still the same JSON value.
//!
//! ## Refusals, at most a few lines a second
//!
//! A refused request (unknown key, blocked method, rate limit, a body over
//! the cap) is the client's doing, and a key scan makes thousands a second.
//! Each is counted in its metric as before; its log line goes through
//! [`refusal_line`], which lets `log.refusals_per_second` through each
//! second and counts the rest, and [`report_suppressed`] writes one line
//! per `log.refusals_summary_interval` with how many were left out (also
//! `rpcgate_log_refusals_suppressed_total`).

mod text;

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

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
    if let Some(c) = config {
        refusals_configure(c);
    }
    let registry = tracing_subscriber::registry().with(filter);
    let installed = if json {
        registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_writer(text::JsonEscaping(std::io::stderr)),
            )
            .try_init()
    } else {
        registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(ansi)
                    .fmt_fields(text::EscapedFields)
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
    refusals_configure(config);
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

/// The refusal lines of the current second, and those left out.
struct Refusals {
    /// Seconds since `START` of the second `used` counts in.
    second: AtomicU64,
    used: AtomicU32,
    per_second: AtomicU32,
    summary_every_ms: AtomicU64,
    /// Left out since the last summary line.
    pending: AtomicU64,
    /// Left out since the process started (the metric).
    total: AtomicU64,
}

static REFUSALS: Refusals = Refusals {
    second: AtomicU64::new(0),
    used: AtomicU32::new(0),
    per_second: AtomicU32::new(crate::config::DEFAULT_REFUSALS_PER_SECOND),
    summary_every_ms: AtomicU64::new(
        crate::config::DEFAULT_REFUSALS_SUMMARY_INTERVAL.as_millis() as u64
    ),
    pending: AtomicU64::new(0),
    total: AtomicU64::new(0),
};

static START: OnceLock<Instant> = OnceLock::new();

fn refusals_configure(config: &LogConfig) {
    REFUSALS
        .per_second
        .store(config.refusals_per_second, Ordering::Relaxed);
    let ms = u64::try_from(config.refusals_summary_interval.as_millis()).unwrap_or(u64::MAX);
    REFUSALS.summary_every_ms.store(ms, Ordering::Relaxed);
}

/// Whether the log line of one refusal may be written now: true for the
/// first `log.refusals_per_second` of each second. A `false` is counted and
/// reported by [`report_suppressed`]. Atomics only (two threads starting a
/// new second at once may let one extra line through).
pub fn refusal_line() -> bool {
    let now = START.get_or_init(Instant::now).elapsed().as_secs();
    let second = REFUSALS.second.load(Ordering::Relaxed);
    if now != second
        && REFUSALS
            .second
            .compare_exchange(second, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    {
        REFUSALS.used.store(0, Ordering::Relaxed);
    }
    let limit = REFUSALS.per_second.load(Ordering::Relaxed);
    if REFUSALS.used.fetch_add(1, Ordering::Relaxed) < limit {
        return true;
    }
    REFUSALS.pending.fetch_add(1, Ordering::Relaxed);
    REFUSALS.total.fetch_add(1, Ordering::Relaxed);
    false
}

/// Refusal lines left out since the process started.
pub fn refusals_suppressed() -> u64 {
    REFUSALS.total.load(Ordering::Relaxed)
}

/// The control loop that says how many refusal lines were left out: one
/// line per `log.refusals_summary_interval`, only when some were.
pub async fn report_suppressed() {
    loop {
        let every = Duration::from_millis(REFUSALS.summary_every_ms.load(Ordering::Relaxed));
        tokio::time::sleep(every).await;
        let n = REFUSALS.pending.swap(0, Ordering::Relaxed);
        if n > 0 {
            tracing::info!(
                suppressed = n,
                per_second = REFUSALS.per_second.load(Ordering::Relaxed),
                "refusals not logged (over log.refusals_per_second); each is counted in its metric"
            );
        }
    }
}
