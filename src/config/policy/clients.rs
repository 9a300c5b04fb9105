//! `policy.anonymous` and `policy.clients.<name>`: the rules of one class of
//! callers ([`ClientRules`]: which methods, how often, from which origins).

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use serde::Deserialize;

use super::keys::{keys, KeyDigest};
use crate::config::error::Checks;
use crate::config::MethodPattern;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(in crate::config) struct RawAnonymous {
    pub enabled: Option<bool>,
    pub allow: Option<Vec<String>>,
    pub deny: Option<Vec<String>>,
    pub limits: Option<RawLimits>,
    pub aggregate_limits: Option<RawLimits>,
    pub max_logs_block_range: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(in crate::config) struct RawClient {
    pub key_sha256: Option<Vec<String>>,
    pub keys_env: Option<String>,
    pub keys_file: Option<String>,
    pub allow: Option<Vec<String>>,
    pub deny: Option<Vec<String>>,
    pub limits: Option<RawLimits>,
    pub allowed_origins: Option<Vec<String>>,
    pub max_logs_block_range: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(in crate::config) struct RawLimits {
    pub requests_per_second: Option<f64>,
    pub burst: Option<u64>,
    pub compute_units_per_second: Option<f64>,
    pub compute_burst: Option<u64>,
}

/// What one class of callers may do: a named client, or the anonymous callers.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClientRules {
    /// Methods allowed; `None` means the default list.
    pub allow: Option<Vec<AllowEntry>>,
    pub deny: Vec<MethodPattern>,
    pub limits: LimitsConfig,
    /// The anonymous tier's budgets for all its callers together, beside
    /// each IP's own (`policy.anonymous.aggregate_limits`); unused for a
    /// named client, whose `limits` are already one budget.
    pub aggregate: LimitsConfig,
    /// Browser origins this client's pages may call from (a named client's
    /// `allowed_origins`); `None`: the list of `server.cors`.
    pub allowed_origins: Option<Vec<String>>,
    /// Blocks one `eth_getLogs` may span for these callers; `None`: the network's.
    pub max_logs_block_range: Option<u64>,
}

/// One entry of an `allow` list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowEntry {
    /// `@default`: the default list (the method table's open methods).
    OpenMethods,
    Pattern(MethodPattern),
}

#[derive(Debug, Clone, PartialEq)]
pub struct ClientConfig {
    pub name: String,
    pub keys: Vec<KeyDigest>,
    pub rules: ClientRules,
}

/// Limits of one client (or of each IP of the anonymous callers); `None`: unlimited.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LimitsConfig {
    pub requests: Option<Rate>,
    pub compute_units: Option<Rate>,
}

/// A sustained rate and the burst admitted at once after idling.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub per_second: f64,
    pub burst: u32,
}

/// Each anonymous IP's budgets when `policy.anonymous.limits` is absent
/// (or there is no `policy:` at all): a gateway that names no policy still
/// keeps one address from taking the whole fleet. `limits: {}` says
/// "unlimited" explicitly.
pub const DEFAULT_ANONYMOUS_LIMITS: LimitsConfig = LimitsConfig {
    requests: Some(Rate {
        per_second: 50.0,
        burst: 100,
    }),
    compute_units: Some(Rate {
        per_second: 1000.0,
        burst: 2000,
    }),
};

impl Rate {
    /// Time to earn back one unit.
    pub fn interval(&self) -> Duration {
        Duration::from_secs_f64(1.0 / self.per_second)
    }
}

pub(super) fn anonymous(c: &mut Checks, raw: Option<RawAnonymous>) -> Option<ClientRules> {
    let Some(raw) = raw else {
        return Some(ClientRules {
            limits: DEFAULT_ANONYMOUS_LIMITS,
            ..ClientRules::default()
        });
    };
    if raw.enabled == Some(false) {
        return None;
    }
    let at = "policy.anonymous";
    let defaulted = raw.limits.is_none();
    let mut rules = rules(c, at, raw.allow, raw.deny, raw.limits);
    if defaulted {
        rules.limits = DEFAULT_ANONYMOUS_LIMITS;
    }
    rules.aggregate = raw
        .aggregate_limits
        .map(|l| limits(c, "policy.anonymous.aggregate_limits", l))
        .unwrap_or_default();
    rules.max_logs_block_range = logs_range(c, at, raw.max_logs_block_range);
    Some(rules)
}

pub(super) fn clients(c: &mut Checks, raw: BTreeMap<String, RawClient>) -> Vec<ClientConfig> {
    let mut owners: HashMap<KeyDigest, String> = HashMap::new();
    let mut clients = Vec::with_capacity(raw.len());
    for (name, client) in raw {
        let at = format!("policy.clients.{name}");
        // The name goes into metric labels and Redis keys.
        if name.is_empty()
            || name == "anonymous"
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            c.fail(
                &at,
                "a client name uses letters, digits, '-' and '_' (and is not \"anonymous\")",
            );
        }
        let keys = keys(c, &at, &client);
        for key in &keys {
            if let Some(other) = owners.insert(*key, name.clone()) {
                c.fail(
                    &at,
                    format!("a key of this client is also a key of {other}"),
                );
                break;
            }
        }
        let mut rules = rules(c, &at, client.allow, client.deny, client.limits);
        rules.allowed_origins =
            origins(c, &format!("{at}.allowed_origins"), client.allowed_origins);
        rules.max_logs_block_range = logs_range(c, &at, client.max_logs_block_range);
        clients.push(ClientConfig { name, keys, rules });
    }
    clients
}

/// A client's own `max_logs_block_range`, when it has one.
fn logs_range(c: &mut Checks, at: &str, value: Option<u64>) -> Option<u64> {
    if value == Some(0) {
        c.fail(
            format!("{at}.max_logs_block_range"),
            "must be at least 1 (one block)",
        );
    }
    value
}

fn rules(
    c: &mut Checks,
    at: &str,
    allow: Option<Vec<String>>,
    deny: Option<Vec<String>>,
    limits: Option<RawLimits>,
) -> ClientRules {
    let allow = allow.map(|list| {
        list.iter()
            .enumerate()
            .filter_map(|(i, p)| {
                if p == "@default" {
                    return Some(AllowEntry::OpenMethods);
                }
                pattern(c, &format!("{at}.allow[{i}]"), p).map(AllowEntry::Pattern)
            })
            .collect()
    });
    let deny = deny
        .unwrap_or_default()
        .iter()
        .enumerate()
        .filter_map(|(i, p)| pattern(c, &format!("{at}.deny[{i}]"), p))
        .collect();
    let limits = limits
        .map(|l| self::limits(c, &format!("{at}.limits"), l))
        .unwrap_or_default();
    ClientRules {
        allow,
        deny,
        limits,
        aggregate: LimitsConfig::default(),
        allowed_origins: None,
        max_logs_block_range: None,
    }
}

/// One `limits:` block (at `at`): each budget absent is unlimited.
fn limits(c: &mut Checks, at: &str, l: RawLimits) -> LimitsConfig {
    LimitsConfig {
        requests: rate(
            c,
            at,
            ("requests_per_second", l.requests_per_second),
            ("burst", l.burst),
        ),
        compute_units: rate(
            c,
            at,
            ("compute_units_per_second", l.compute_units_per_second),
            ("compute_burst", l.compute_burst),
        ),
    }
}

/// A method pattern of an allow or deny list (where `@default` may also stand).
fn pattern(c: &mut Checks, at: &str, text: &str) -> Option<MethodPattern> {
    MethodPattern::parse(text)
        .map_err(|e| c.fail(at, format!("{e}, or @default")))
        .ok()
}

fn origins(c: &mut Checks, at: &str, raw: Option<Vec<String>>) -> Option<Vec<String>> {
    for (i, origin) in raw.iter().flatten().enumerate() {
        if origin != "*" && !crate::config::server::origin_pattern_ok(origin) {
            c.fail(
                format!("{at}[{i}]"),
                format!("{origin:?} is not \"*\" or an origin like https://app.example.com or https://*.example.com"),
            );
        }
    }
    raw
}

fn rate(
    c: &mut Checks,
    at: &str,
    (rate_key, per_second): (&str, Option<f64>),
    (burst_key, burst): (&str, Option<u64>),
) -> Option<Rate> {
    let Some(per_second) = per_second else {
        if burst.is_some() {
            c.fail(
                format!("{at}.{burst_key}"),
                format!("needs {rate_key} beside it"),
            );
        }
        return None;
    };
    if !(0.0001..=10_000_000.0).contains(&per_second) {
        c.fail(
            format!("{at}.{rate_key}"),
            format!("{per_second} is out of range (0.0001 to 10000000)"),
        );
        return None;
    }
    let default_burst = per_second.ceil().max(1.0) as u64;
    let burst = c.range(
        &format!("{at}.{burst_key}"),
        burst,
        default_burst,
        1,
        u64::from(u32::MAX),
    ) as u32;
    Some(Rate { per_second, burst })
}
