//! Configuration: the YAML file an operator writes, checked and typed.
//!
//! One module per section of the file (`server`, `network` and its
//! sub-sections, `policy`, `log`, `redis`, `tls`), each holding the section's
//! raw serde shape (unknown keys are rejected, and serde_path_to_error names
//! the path of one), its checks, and its typed form with its defaults. A
//! file is judged whole: every problem found is reported at once, each with
//! its key path ([`ConfigError::Invalid`]).
//!
//! The gateway builds its routes (networks, client policy) from the typed
//! [`Config`] and publishes them with one atomic swap (`control::gateway`); a
//! reload validates a whole new [`Config`] first, so a bad file never
//! replaces a good one. Which keys only a restart applies is said by
//! [`Config::restart_only_changes`] (see `restart`).

mod duration;
mod error;
mod expand;
mod log;
mod method_pattern;
mod network;
mod policy;
mod redis;
mod restart;
mod server;
#[cfg(test)]
mod tests;
mod tls;

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

pub use duration::parse_duration;
pub use error::{ConfigError, Problem};
pub use ipnet::IpNet;
pub use log::{LogConfig, DEFAULT_REFUSALS_PER_SECOND, DEFAULT_REFUSALS_SUMMARY_INTERVAL};
pub use method_pattern::MethodPattern;
pub use network::{
    BeaconEventsConfig, BeaconNetworkConfig, BeaconNodeConfig, BeaconPathsConfig, CacheConfig,
    DiscoverConfig, FiltersConfig, HeadConfig, HedgeDelay, HedgeRule, NetworkConfig,
    ReadYourWritesConfig, RouteConfig, RouteFallback, UpstreamConfig, UpstreamTier,
    CACHE_CANON_WINDOW, DEFAULT_HEDGE_MAX_EXTRA,
};
pub use policy::{
    canonical_ip, AllowEntry, ClientConfig, ClientRules, KeyDigest, LimitsConfig, PolicyConfig,
    Rate, RedisFallback, DEFAULT_ANONYMOUS_LIMITS,
};
pub use redis::{redact_url, RedisConfig, Secret};
pub use restart::RESTART_ONLY_KEYS;
pub use server::{
    CompressionConfig, ContentCoding, CorsConfig, ListenerConfig, RuntimeLayout, ServerConfig,
};
pub use tls::{ListenerTls, UpstreamTls};

use error::Checks;

/// The file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    listen: Option<String>,
    admin_listen: Option<String>,
    #[serde(default)]
    server: server::RawServer,
    networks: Option<BTreeMap<String, network::RawNetwork>>,
    redis: Option<redis::RawRedis>,
    #[serde(default)]
    policy: policy::RawPolicy,
    #[serde(default)]
    log: log::RawLog,
}

/// The validated configuration of one gateway process.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `listen`, `admin_listen` and the `server:` keys read when the
    /// listeners bind (a reload does not change them).
    pub listener: ListenerConfig,
    /// The `server:` keys read per request (a reload applies them).
    pub server: ServerConfig,
    /// Execution (JSON-RPC) networks in name order.
    pub networks: Vec<NetworkConfig>,
    /// `kind: beacon` networks in name order.
    pub beacon: Vec<BeaconNetworkConfig>,
    /// State shared by gateway replicas (rate limits, the cache's shared tier).
    pub redis: Option<RedisConfig>,
    /// Clients, keys, method rules and rate limits.
    pub policy: PolicyConfig,
    pub log: LogConfig,
}

impl Config {
    /// Reads and validates a YAML file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Config::from_yaml(&text)
    }

    /// Parses and validates YAML text.
    pub fn from_yaml(text: &str) -> Result<Config, ConfigError> {
        let de = serde_yaml_ng::Deserializer::from_str(text);
        let raw: RawConfig = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let path = if path == "." {
                "(top level)".to_string()
            } else {
                path
            };
            ConfigError::Invalid(vec![Problem::new(path, e.into_inner().to_string())])
        })?;
        let mut checks = Checks::default();
        let config = validate(&mut checks, raw);
        checks.finish(config)
    }

    pub fn network(&self, name: &str) -> Option<&NetworkConfig> {
        self.networks.iter().find(|n| n.name == name)
    }
}

/// The checks that span sections, around each section's own.
fn validate(c: &mut Checks, raw: RawConfig) -> Config {
    let (listener, server) = server::validate(
        c,
        raw.listen.as_deref(),
        raw.admin_listen.as_deref(),
        raw.server,
    );
    let raw_networks = raw.networks.unwrap_or_default();
    if raw_networks.is_empty() {
        c.fail("networks", "at least one network is required");
    }
    let (mut execution, mut beacon_raw) = (Vec::new(), Vec::new());
    for (name, net) in raw_networks {
        match network::NetworkKind::of(c, &name, &net) {
            network::NetworkKind::Execution => execution.push((name, net)),
            network::NetworkKind::Beacon => beacon_raw.push((name, net)),
        }
    }
    let only_one = execution.len() == 1;
    let networks: Vec<NetworkConfig> = execution
        .into_iter()
        .map(|(name, net)| network::validate(c, &name, net, only_one))
        .collect();
    let beacon: Vec<BeaconNetworkConfig> = beacon_raw
        .into_iter()
        .map(|(name, net)| network::validate_beacon(c, &name, net))
        .collect();
    let mut own_ports: Vec<(&str, std::net::SocketAddr)> = Vec::new();
    for b in &beacon {
        let Some(addr) = b.listen else { continue };
        let taken = [listener.listen, listener.admin_listen].contains(&addr)
            || own_ports.iter().any(|(_, a)| *a == addr);
        if taken && addr.port() != 0 {
            c.fail(
                format!("networks.{}.listen", b.name),
                format!("{addr} is already the address of another listener"),
            );
        }
        own_ports.push((&b.name, addr));
    }
    let defaults: Vec<&str> = networks
        .iter()
        .filter(|n| n.default)
        .map(|n| n.name.as_str())
        .collect();
    if defaults.len() > 1 {
        c.fail(
            format!("networks.{}.default", defaults[1]),
            format!(
                "only one network can be the default; {} already is",
                defaults[0]
            ),
        );
    }
    let written_redis = raw.redis.is_some();
    let redis = raw.redis.and_then(|r| redis::validate(c, r));
    if !written_redis {
        if let Some(net) = networks.iter().find(|n| n.cache.shared) {
            c.fail(
                format!("networks.{}.cache.shared", net.name),
                "needs the top-level redis.url",
            );
        }
    }
    let policy = policy::validate(c, raw.policy);
    let log = log::validate(c, raw.log);
    Config {
        listener,
        server,
        networks,
        beacon,
        redis,
        policy,
        log,
    }
}
