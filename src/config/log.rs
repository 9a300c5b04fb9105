//! `log:`: what the process logs, and how. `RUST_LOG`, then `--log` /
//! `RPCGATE_LOG`, win over `level`; a reload applies a new `level`, while
//! `format` is read at start only (the subscriber is installed once).

use std::time::Duration;

use serde::Deserialize;

use super::error::Checks;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLog {
    pub level: Option<String>,
    pub format: Option<String>,
    pub refusals_per_second: Option<u64>,
    pub refusals_summary_interval: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// A tracing filter: `info`, or `warn,rpcgate=debug`.
    pub level: String,
    /// `format: json`: JSON objects, one per line (else human-readable lines).
    pub json: bool,
    /// Log lines of refused requests (a client's doing) written per second;
    /// the rest are counted and summed up in one line per interval below.
    pub refusals_per_second: u32,
    pub refusals_summary_interval: Duration,
}

/// `log.refusals_per_second` when absent.
pub const DEFAULT_REFUSALS_PER_SECOND: u32 = 5;
/// `log.refusals_summary_interval` when absent.
pub const DEFAULT_REFUSALS_SUMMARY_INTERVAL: Duration = Duration::from_secs(10);

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".into(),
            json: false,
            refusals_per_second: DEFAULT_REFUSALS_PER_SECOND,
            refusals_summary_interval: DEFAULT_REFUSALS_SUMMARY_INTERVAL,
        }
    }
}

pub(super) fn validate(c: &mut Checks, raw: RawLog) -> LogConfig {
    let d = LogConfig::default();
    let level = raw.level.unwrap_or(d.level);
    if let Err(e) = tracing_subscriber::EnvFilter::builder().parse(&level) {
        c.fail(
            "log.level",
            format!("{level:?} is not a log filter (e.g. info, or warn,rpcgate=debug): {e}"),
        );
    }
    let json = match raw.format.as_deref() {
        None | Some("human") => false,
        Some("json") => true,
        Some(other) => {
            c.fail("log.format", format!("{other:?} must be human or json"));
            d.json
        }
    };
    let refusals_per_second = c.range(
        "log.refusals_per_second",
        raw.refusals_per_second,
        u64::from(d.refusals_per_second),
        0,
        100_000,
    ) as u32;
    let refusals_summary_interval = c.duration(
        "log.refusals_summary_interval",
        raw.refusals_summary_interval.as_deref(),
        d.refusals_summary_interval,
    );
    if refusals_summary_interval < Duration::from_millis(100) {
        c.fail("log.refusals_summary_interval", "must be at least 100ms");
    }
    LogConfig {
        level,
        json,
        refusals_per_second,
        refusals_summary_interval,
    }
}
