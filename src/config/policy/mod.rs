//! `policy:`: who may call what, and how often: trusted proxies, the
//! per-IP connection cap, the cost table's overrides, and the rules of the
//! anonymous callers and of each named client ([`clients`]), whose keys are
//! loaded and hashed in [`keys`].

mod clients;
mod keys;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;

use super::error::Checks;
use super::MethodPattern;

pub use clients::{
    AllowEntry, ClientConfig, ClientRules, LimitsConfig, Rate, DEFAULT_ANONYMOUS_LIMITS,
};
pub use keys::KeyDigest;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPolicy {
    pub trusted_proxies: Option<Vec<String>>,
    pub max_connections_per_ip: Option<u64>,
    pub redis_fallback: Option<String>,
    pub redis_timeout: Option<String>,
    pub default_cost: Option<u64>,
    pub costs: Option<BTreeMap<String, u64>>,
    anonymous: Option<clients::RawAnonymous>,
    clients: Option<BTreeMap<String, clients::RawClient>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PolicyConfig {
    /// Peers whose `X-Forwarded-For` / `Forwarded` headers are believed
    /// (IPv4-mapped IPv6 ranges are kept as IPv4, as [`canonical_ip`] does
    /// with addresses).
    pub trusted_proxies: Vec<IpNet>,
    /// Open connections from one client IP (trusted proxies are exempt).
    pub max_connections_per_ip: u32,
    pub redis_fallback: RedisFallback,
    /// One rate-limit check in Redis; past it the check counts as failed.
    pub redis_timeout: Duration,
    /// Compute units of a method the cost table does not list.
    pub default_cost: u32,
    /// Operator overrides of the built-in cost table (method or glob, units).
    pub costs: Vec<(MethodPattern, u32)>,
    /// Requests without a key; `None` when a key is required.
    pub anonymous: Option<ClientRules>,
    /// In name order.
    pub clients: Vec<ClientConfig>,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            trusted_proxies: Vec::new(),
            max_connections_per_ip: 1024,
            redis_fallback: RedisFallback::Open,
            redis_timeout: Duration::from_millis(50),
            default_cost: 20,
            costs: Vec::new(),
            anonymous: Some(ClientRules {
                limits: DEFAULT_ANONYMOUS_LIMITS,
                ..ClientRules::default()
            }),
            clients: Vec::new(),
        }
    }
}

/// What a rate-limit check does when Redis cannot answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedisFallback {
    /// Check the process-local limiter instead (each replica then enforces
    /// the whole budget on its own until Redis is back).
    Open,
    /// Refuse the call.
    Closed,
}

/// IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`) are the IPv4 address.
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

pub(super) fn validate(c: &mut Checks, raw: RawPolicy) -> PolicyConfig {
    let d = PolicyConfig::default();
    let trusted_proxies = raw
        .trusted_proxies
        .unwrap_or_default()
        .iter()
        .enumerate()
        .filter_map(|(i, text)| {
            let at = format!("policy.trusted_proxies[{i}]");
            let Some(net) = ip_net(text) else {
                c.fail(at, format!("{text:?} is not an address or a CIDR range"));
                return None;
            };
            // A proxy's forwarded address picks the caller's bucket: trusting
            // the whole Internet (0.0.0.0/0, ::/0) or a large share of it
            // lets any client name a fresh bucket for each call.
            let shortest = match net {
                IpNet::V4(_) => MIN_PROXY_PREFIX_V4,
                IpNet::V6(_) => MIN_PROXY_PREFIX_V6,
            };
            if net.prefix_len() < shortest {
                c.fail(
                    at,
                    format!("{text:?} trusts too wide a range: a trusted proxy range is at least /{shortest} (list the proxies' own addresses)"),
                );
                return None;
            }
            Some(net)
        })
        .collect();
    let redis_fallback = match raw.redis_fallback.as_deref() {
        None | Some("open") => RedisFallback::Open,
        Some("closed") => RedisFallback::Closed,
        Some(other) => {
            c.fail(
                "policy.redis_fallback",
                format!("{other:?} is not open or closed"),
            );
            d.redis_fallback
        }
    };
    let mut costs = Vec::new();
    for (method, units) in raw.costs.unwrap_or_default() {
        let at = format!("policy.costs.{method}");
        let pattern = MethodPattern::parse(&method)
            .map_err(|e| c.fail(&at, e))
            .ok();
        let units = c.range(&at, Some(units), 0, 0, 1_000_000) as u32;
        costs.extend(pattern.map(|p| (p, units)));
    }
    let anonymous = clients::anonymous(c, raw.anonymous);
    let clients = clients::clients(c, raw.clients.unwrap_or_default());
    PolicyConfig {
        trusted_proxies,
        max_connections_per_ip: c.range(
            "policy.max_connections_per_ip",
            raw.max_connections_per_ip,
            u64::from(d.max_connections_per_ip),
            1,
            10_000_000,
        ) as u32,
        redis_fallback,
        redis_timeout: c.duration(
            "policy.redis_timeout",
            raw.redis_timeout.as_deref(),
            d.redis_timeout,
        ),
        default_cost: c.range(
            "policy.default_cost",
            raw.default_cost,
            u64::from(d.default_cost),
            0,
            1_000_000,
        ) as u32,
        costs,
        anonymous,
        clients,
    }
}

/// The widest ranges `trusted_proxies` takes.
const MIN_PROXY_PREFIX_V4: u8 = 8;
const MIN_PROXY_PREFIX_V6: u8 = 32;

/// An address (a range of one) or a CIDR range; an IPv4-mapped IPv6 one
/// becomes the IPv4 range it stands for.
fn ip_net(text: &str) -> Option<IpNet> {
    let text = text.trim();
    let net = match text.parse::<IpNet>() {
        Ok(net) => net,
        Err(_) => IpNet::from(text.parse::<IpAddr>().ok()?),
    };
    match (net.addr(), net.prefix_len()) {
        (IpAddr::V6(v6), len) => match v6.to_ipv4_mapped() {
            Some(v4) if len >= 96 => IpNet::new(IpAddr::V4(v4), len - 96).ok(),
            _ => Some(net),
        },
        _ => Some(net),
    }
}
