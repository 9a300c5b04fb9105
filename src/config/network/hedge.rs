//! `networks.<name>.hedge`: reads sent to a second backend when the first
//! is slow to answer (request hedging, off by default).
//!
//! Each entry names methods (exact names or globs) and when to
//! hedge them: after a fixed `delay`, or after the first backend's own p95
//! latency (`delay: p95`, estimated by the router from its Peak-EWMA, see
//! `router::hedge`). The first entry that matches a method wins. Only reads
//! are ever hedged (`eth::Method::is_read`): naming a write such as
//! `eth_sendRawTransaction`, a filter method or an unknown method is an
//! error here, and a glob (`eth_*`) matches only the reads among the
//! methods it covers. The list is kept apart from any per-route settings so
//! that a route may later carry its own entries of the same shape.

use std::time::Duration;

use serde::Deserialize;

use crate::config::error::Checks;
use crate::config::{parse_duration, MethodPattern};
use crate::eth::methods::{lookup, METHODS};

/// Extra sends per call when `max_extra` is absent: one hedge, so a call
/// reaches at most two backends (before any retry after a failure).
pub const DEFAULT_HEDGE_MAX_EXTRA: u32 = 1;
/// The most `max_extra` may be: hedging multiplies a slow backend's load.
const MAX_HEDGE_MAX_EXTRA: u64 = 2;

/// One entry of `hedge:` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(in crate::config) struct RawHedge {
    pub methods: Option<Vec<String>>,
    pub delay: Option<String>,
    pub max_extra: Option<u64>,
}

/// One `hedge:` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct HedgeRule {
    /// Method names or globs (each covering at least one read).
    pub methods: Vec<MethodPattern>,
    pub delay: HedgeDelay,
    /// Hedges one call may send (each to a backend not yet asked).
    pub max_extra: u32,
}

/// When a read that has not answered yet is sent again elsewhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HedgeDelay {
    /// After this long.
    After(Duration),
    /// After the first backend's p95 latency, as the router estimates it.
    P95,
}

impl HedgeRule {
    /// Whether this entry covers `method` (a read; the caller checks that).
    pub fn matches(&self, method: &str) -> bool {
        self.methods.iter().any(|pattern| pattern.matches(method))
    }
}

/// Checks `hedge:` at `at` (`networks.<name>.hedge`).
pub(super) fn rules(c: &mut Checks, at: &str, raw: Option<Vec<RawHedge>>) -> Vec<HedgeRule> {
    raw.unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(i, r)| rule(c, &format!("{at}[{i}]"), r))
        .collect()
}

fn rule(c: &mut Checks, at: &str, raw: RawHedge) -> HedgeRule {
    let key = |k: &str| format!("{at}.{k}");
    let written = raw.methods.unwrap_or_default();
    if written.is_empty() {
        c.fail(
            key("methods"),
            "is required: the read methods to hedge (names or globs)",
        );
    }
    let methods = written
        .iter()
        .enumerate()
        .filter_map(|(i, pattern)| method(c, &format!("{}[{i}]", key("methods")), pattern))
        .collect();
    let delay = match raw.delay.as_deref().map(str::trim) {
        None | Some("p95") => HedgeDelay::P95,
        Some(text) => match parse_duration(text) {
            Err(e) => {
                c.fail(key("delay"), format!("{e} (or `p95`)"));
                HedgeDelay::P95
            }
            Ok(d) if d.is_zero() => {
                c.fail(key("delay"), "must be greater than zero (or `p95`)");
                HedgeDelay::P95
            }
            Ok(d) => HedgeDelay::After(d),
        },
    };
    let max_extra = raw.max_extra.unwrap_or(u64::from(DEFAULT_HEDGE_MAX_EXTRA));
    if !(1..=MAX_HEDGE_MAX_EXTRA).contains(&max_extra) {
        c.fail(
            key("max_extra"),
            format!("{max_extra} is out of range (1 to {MAX_HEDGE_MAX_EXTRA})"),
        );
    }
    HedgeRule {
        methods,
        delay,
        max_extra: max_extra.clamp(1, MAX_HEDGE_MAX_EXTRA) as u32,
    }
}

/// An exact name must be a known read; a glob must cover at least one.
fn method(c: &mut Checks, at: &str, text: &str) -> Option<MethodPattern> {
    let pattern = match MethodPattern::parse(text) {
        Ok(p) => p,
        Err(e) => {
            c.fail(at, e);
            return None;
        }
    };
    if !pattern.is_exact() {
        if !METHODS
            .iter()
            .any(|m| m.is_read() && pattern.matches(m.name))
        {
            c.fail(
                at,
                format!("{text:?} matches no read method the gateway knows"),
            );
            return None;
        }
        return Some(pattern);
    }
    match lookup(text) {
        Some((_, m)) if m.is_read() => Some(pattern),
        Some(_) => {
            c.fail(
                at,
                format!("{text} is not a read: only reads are hedged (a write or a filter must reach one node once)"),
            );
            None
        }
        None => {
            c.fail(
                at,
                format!("{text} is not a method the gateway knows, so it cannot tell it is a read"),
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, ConfigError};

    fn with(hedge: &str) -> Result<Vec<HedgeRule>, ConfigError> {
        let yaml = format!(
            "networks:\n  n:\n    chain_id: 1\n    hedge:\n{hedge}    upstreams:\n      - name: u\n        http: http://127.0.0.1:1\n"
        );
        Config::from_yaml(&yaml).map(|c| c.networks[0].hedge.clone())
    }

    fn err_path(hedge: &str) -> String {
        match with(hedge) {
            Err(e) if !e.problems().is_empty() => e.problems()[0].path.clone(),
            other => panic!("expected an error, got {other:?}"),
        }
    }

    #[test]
    fn off_by_default_and_read_as_written() {
        let none = "networks:\n  n:\n    chain_id: 1\n    upstreams:\n      - name: u\n        http: http://127.0.0.1:1\n";
        assert!(Config::from_yaml(none).unwrap().networks[0]
            .hedge
            .is_empty());
        let rules = with(
            "      - methods: [eth_call, 'eth_getBlockBy*']\n        delay: 50ms\n      - methods: [eth_getLogs]\n        delay: p95\n        max_extra: 2\n",
        )
        .unwrap();
        assert_eq!(
            rules,
            [
                HedgeRule {
                    methods: vec![
                        MethodPattern::parse("eth_call").unwrap(),
                        MethodPattern::parse("eth_getBlockBy*").unwrap()
                    ],
                    delay: HedgeDelay::After(Duration::from_millis(50)),
                    max_extra: 1,
                },
                HedgeRule {
                    methods: vec![MethodPattern::parse("eth_getLogs").unwrap()],
                    delay: HedgeDelay::P95,
                    max_extra: 2,
                },
            ]
        );
        assert!(rules[0].matches("eth_getBlockByHash") && !rules[0].matches("eth_getLogs"));
        // `delay` defaults to p95.
        assert_eq!(
            with("      - methods: [eth_call]\n").unwrap()[0].delay,
            HedgeDelay::P95
        );
    }

    #[test]
    fn writes_unknown_methods_and_bad_values_name_their_key() {
        let at = "networks.n.hedge[0]";
        for (hedge, key) in [
            ("      - methods: [eth_sendRawTransaction]\n", "methods[0]"),
            ("      - methods: [eth_call, eth_newFilter]\n", "methods[1]"),
            ("      - methods: [eth_getFilterChanges]\n", "methods[0]"),
            ("      - methods: [eth_notAMethod]\n", "methods[0]"),
            ("      - methods: ['eth_send*']\n", "methods[0]"),
            ("      - methods: ['eth-*']\n", "methods[0]"),
            ("      - methods: []\n", "methods"),
            ("      - delay: 5ms\n", "methods"),
            ("      - methods: [eth_call]\n        delay: 0ms\n", "delay"),
            (
                "      - methods: [eth_call]\n        delay: soon\n",
                "delay",
            ),
            (
                "      - methods: [eth_call]\n        max_extra: 0\n",
                "max_extra",
            ),
            (
                "      - methods: [eth_call]\n        max_extra: 3\n",
                "max_extra",
            ),
        ] {
            assert_eq!(err_path(hedge), format!("{at}.{key}"), "{hedge}");
        }
        assert_eq!(
            err_path("      - methods: [eth_call]\n        after: 5ms\n"),
            "networks.n.hedge[0].after"
        );
    }
}
