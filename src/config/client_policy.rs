//! The `policy:` section: clients and their keys, method rules, rate limits.
//!
//! Keys never live in the validated config in clear: whatever the source
//! (`key_sha256`, an env var, a file), each key becomes its SHA-256 digest here,
//! and [`KeyDigest`]'s `Debug` prints nothing of it, so a config dumped into a
//! log leaks no key and no hash. Error messages name the source, never its text.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::raw::{RawAnonymous, RawClient, RawLimits, RawPolicy};
use super::validate::{duration, in_range};
use super::ConfigError;

pub(super) const DEFAULT_MAX_CONNECTIONS_PER_IP: u64 = 1024;
pub(super) const DEFAULT_COST: u64 = 20;
/// Shorter keys are guessable by brute force through the gateway itself.
pub(super) const MIN_KEY_LEN: usize = 16;

#[derive(Debug, Clone, PartialEq)]
pub struct PolicyConfig {
    /// Peers whose `X-Forwarded-For` / `Forwarded` headers are believed.
    pub trusted_proxies: Vec<IpNet>,
    /// Open connections from one client IP (trusted proxies are exempt).
    pub max_connections_per_ip: u32,
    pub redis_fallback: RedisFallback,
    /// One rate-limit check in Redis; past it the check counts as failed.
    pub redis_timeout: Duration,
    /// Compute units of a method the cost table does not list.
    pub default_cost: u32,
    /// Operator overrides of the built-in cost table (method or glob, units).
    pub costs: Vec<(String, u32)>,
    /// Requests without a key; `None` when a key is required.
    pub anonymous: Option<TierConfig>,
    /// In name order.
    pub clients: Vec<ClientConfig>,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            trusted_proxies: Vec::new(),
            max_connections_per_ip: DEFAULT_MAX_CONNECTIONS_PER_IP as u32,
            redis_fallback: RedisFallback::Open,
            redis_timeout: Duration::from_millis(50),
            default_cost: DEFAULT_COST as u32,
            costs: Vec::new(),
            anonymous: Some(TierConfig::default()),
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

/// What one tier of callers may do: a named client, or the anonymous tier.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TierConfig {
    /// Method names and globs; `None` means the default list.
    pub allow: Option<Vec<String>>,
    pub deny: Vec<String>,
    pub limits: LimitsConfig,
    /// Browser origins this client's pages may call from (a named client's
    /// `allowed_origins`); `None`: the list of `server.cors`.
    pub allowed_origins: Option<Vec<String>>,
    /// Blocks one `eth_getLogs` may span for this tier; `None`: the network's.
    pub max_logs_block_range: Option<u64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ClientConfig {
    pub name: String,
    pub keys: Vec<KeyDigest>,
    pub tier: TierConfig,
}

/// Limits of one client (or of each IP of the anonymous tier); `None`: unlimited.
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

impl Rate {
    /// Time to earn back one unit.
    pub fn interval(&self) -> Duration {
        Duration::from_secs_f64(1.0 / self.per_second)
    }
}

/// The SHA-256 of one API key.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyDigest(pub [u8; 32]);

impl KeyDigest {
    pub fn of(key: &str) -> KeyDigest {
        KeyDigest(Sha256::digest(key.as_bytes()).into())
    }
}

impl std::fmt::Debug for KeyDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyDigest(..)")
    }
}

/// An address range such as `10.0.0.0/8`, `::1/128` or a single address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl IpNet {
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, canonical_ip(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                mask(u32::from(net).into(), 32, self.prefix)
                    == mask(u32::from(ip).into(), 32, self.prefix)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                mask(u128::from(net), 128, self.prefix) == mask(u128::from(ip), 128, self.prefix)
            }
            _ => false,
        }
    }
}

/// IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`) are the IPv4 address.
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

fn mask(bits: u128, width: u8, prefix: u8) -> u128 {
    if prefix == 0 {
        return 0;
    }
    let keep = u128::MAX << (width - prefix);
    bits & keep
        & if width == 128 {
            u128::MAX
        } else {
            (1u128 << width) - 1
        }
}

pub(super) fn policy(raw: RawPolicy) -> Result<PolicyConfig, ConfigError> {
    let mut trusted_proxies = Vec::new();
    for (i, text) in raw.trusted_proxies.unwrap_or_default().iter().enumerate() {
        trusted_proxies.push(ip_net(&format!("policy.trusted_proxies[{i}]"), text)?);
    }
    let redis_fallback = match raw.redis_fallback.as_deref() {
        None | Some("open") => RedisFallback::Open,
        Some("closed") => RedisFallback::Closed,
        Some(other) => {
            return Err(ConfigError::invalid(
                "policy.redis_fallback",
                format!("{other:?} is not open or closed"),
            ))
        }
    };
    let mut costs = Vec::new();
    for (method, units) in raw.costs.unwrap_or_default() {
        let at = format!("policy.costs.{method}");
        pattern(&at, &method, false)?;
        costs.push((method, in_range(&at, Some(units), 0, 0, 1_000_000)? as u32));
    }
    let anonymous = anonymous(raw.anonymous)?;
    let clients = clients(raw.clients.unwrap_or_default())?;
    Ok(PolicyConfig {
        trusted_proxies,
        max_connections_per_ip: in_range(
            "policy.max_connections_per_ip",
            raw.max_connections_per_ip,
            DEFAULT_MAX_CONNECTIONS_PER_IP,
            1,
            10_000_000,
        )? as u32,
        redis_fallback,
        redis_timeout: duration(
            "policy.redis_timeout",
            raw.redis_timeout.as_deref(),
            Duration::from_millis(50),
        )?,
        default_cost: in_range(
            "policy.default_cost",
            raw.default_cost,
            DEFAULT_COST,
            0,
            1_000_000,
        )? as u32,
        costs,
        anonymous,
        clients,
    })
}

fn anonymous(raw: Option<RawAnonymous>) -> Result<Option<TierConfig>, ConfigError> {
    let Some(raw) = raw else {
        return Ok(Some(TierConfig::default()));
    };
    if raw.enabled == Some(false) {
        return Ok(None);
    }
    let mut anonymous = tier("policy.anonymous", raw.allow, raw.deny, raw.limits)?;
    anonymous.max_logs_block_range = logs_range("policy.anonymous", raw.max_logs_block_range)?;
    Ok(Some(anonymous))
}

/// A tier's own `max_logs_block_range`, when it has one.
fn logs_range(at: &str, value: Option<u64>) -> Result<Option<u64>, ConfigError> {
    match value {
        Some(0) => Err(ConfigError::invalid(
            format!("{at}.max_logs_block_range"),
            "must be at least 1 (one block)",
        )),
        other => Ok(other),
    }
}

fn clients(raw: BTreeMap<String, RawClient>) -> Result<Vec<ClientConfig>, ConfigError> {
    let mut owners: HashMap<KeyDigest, String> = HashMap::new();
    let mut clients = Vec::with_capacity(raw.len());
    for (name, c) in raw {
        let at = format!("policy.clients.{name}");
        // The name goes into metric labels and Redis keys.
        if name.is_empty()
            || name == "anonymous"
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(ConfigError::invalid(
                at,
                "a client name uses letters, digits, '-' and '_' (and is not \"anonymous\")",
            ));
        }
        let keys = keys(&at, &c)?;
        for key in &keys {
            if let Some(other) = owners.insert(*key, name.clone()) {
                return Err(ConfigError::invalid(
                    at,
                    format!("a key of this client is also a key of {other}"),
                ));
            }
        }
        let mut tier = tier(&at, c.allow, c.deny, c.limits)?;
        tier.allowed_origins = origins(&format!("{at}.allowed_origins"), c.allowed_origins)?;
        tier.max_logs_block_range = logs_range(&at, c.max_logs_block_range)?;
        clients.push(ClientConfig { name, keys, tier });
    }
    Ok(clients)
}

fn keys(at: &str, raw: &RawClient) -> Result<Vec<KeyDigest>, ConfigError> {
    let mut keys = Vec::new();
    for (i, hex) in raw.key_sha256.iter().flatten().enumerate() {
        keys.push(digest_hex(hex).ok_or_else(|| {
            ConfigError::invalid(
                format!("{at}.key_sha256[{i}]"),
                "is not a SHA-256 digest (64 hex digits)",
            )
        })?);
    }
    if let Some(var) = &raw.keys_env {
        let path = format!("{at}.keys_env");
        let text = std::env::var(var).map_err(|_| {
            ConfigError::invalid(&path, format!("environment variable {var} is not set"))
        })?;
        keys.extend(clear_keys(&path, &text)?);
    }
    if let Some(file) = &raw.keys_file {
        let path = format!("{at}.keys_file");
        let text = std::fs::read_to_string(file)
            .map_err(|e| ConfigError::invalid(&path, format!("cannot read {file}: {e}")))?;
        keys.extend(clear_keys(&path, &text)?);
    }
    if keys.is_empty() {
        return Err(ConfigError::invalid(
            at,
            "needs at least one key (key_sha256, keys_env or keys_file)",
        ));
    }
    Ok(keys)
}

/// Keys separated by commas, spaces or newlines; `#` starts a comment line.
fn clear_keys(at: &str, text: &str) -> Result<Vec<KeyDigest>, ConfigError> {
    let mut keys = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with('#') {
            continue;
        }
        for key in line.split([',', ' ', '\t']).filter(|k| !k.is_empty()) {
            if key.len() < MIN_KEY_LEN || !key.bytes().all(|b| b.is_ascii_graphic() && b != b'/') {
                // Which key is wrong stays unsaid: the message may reach a log.
                return Err(ConfigError::invalid(
                    at,
                    format!(
                        "keys must be at least {MIN_KEY_LEN} printable characters, without '/'"
                    ),
                ));
            }
            keys.push(KeyDigest::of(key));
        }
    }
    if keys.is_empty() {
        return Err(ConfigError::invalid(at, "holds no key"));
    }
    Ok(keys)
}

fn digest_hex(text: &str) -> Option<KeyDigest> {
    let text = text.trim();
    if text.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(KeyDigest(out))
}

fn tier(
    at: &str,
    allow: Option<Vec<String>>,
    deny: Option<Vec<String>>,
    limits: Option<RawLimits>,
) -> Result<TierConfig, ConfigError> {
    if let Some(allow) = &allow {
        for (i, p) in allow.iter().enumerate() {
            pattern(&format!("{at}.allow[{i}]"), p, true)?;
        }
    }
    let deny = deny.unwrap_or_default();
    for (i, p) in deny.iter().enumerate() {
        pattern(&format!("{at}.deny[{i}]"), p, true)?;
    }
    let limits = match limits {
        None => LimitsConfig::default(),
        Some(l) => LimitsConfig {
            requests: rate(
                &format!("{at}.limits"),
                ("requests_per_second", l.requests_per_second),
                ("burst", l.burst),
            )?,
            compute_units: rate(
                &format!("{at}.limits"),
                ("compute_units_per_second", l.compute_units_per_second),
                ("compute_burst", l.compute_burst),
            )?,
        },
    };
    Ok(TierConfig {
        allow,
        deny,
        limits,
        allowed_origins: None,
        max_logs_block_range: None,
    })
}

fn origins(at: &str, raw: Option<Vec<String>>) -> Result<Option<Vec<String>>, ConfigError> {
    for (i, origin) in raw.iter().flatten().enumerate() {
        if origin != "*" && !super::validate::origin_pattern_ok(origin) {
            return Err(ConfigError::invalid(
                format!("{at}[{i}]"),
                format!("{origin:?} is not \"*\" or an origin like https://app.example.com or https://*.example.com"),
            ));
        }
    }
    Ok(raw)
}

fn rate(
    at: &str,
    (rate_key, per_second): (&str, Option<f64>),
    (burst_key, burst): (&str, Option<u64>),
) -> Result<Option<Rate>, ConfigError> {
    let Some(per_second) = per_second else {
        if burst.is_some() {
            return Err(ConfigError::invalid(
                format!("{at}.{burst_key}"),
                format!("needs {rate_key} beside it"),
            ));
        }
        return Ok(None);
    };
    if !(0.0001..=10_000_000.0).contains(&per_second) {
        return Err(ConfigError::invalid(
            format!("{at}.{rate_key}"),
            format!("{per_second} is out of range (0.0001 to 10000000)"),
        ));
    }
    let default_burst = per_second.ceil().max(1.0) as u64;
    let burst = in_range(
        &format!("{at}.{burst_key}"),
        burst,
        default_burst,
        1,
        u32::MAX as u64,
    )? as u32;
    Ok(Some(Rate { per_second, burst }))
}

/// A method name or glob (`*` matches any run of characters), or `@default`.
fn pattern(at: &str, p: &str, default_ok: bool) -> Result<(), ConfigError> {
    let ok = (default_ok && p == "@default")
        || (!p.is_empty()
            && p.len() <= 128
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '*'));
    if ok {
        Ok(())
    } else {
        Err(ConfigError::invalid(
            at,
            format!(
                "{p:?} is not a method name or glob (letters, digits, '_', '*'){}",
                if default_ok { " or @default" } else { "" }
            ),
        ))
    }
}

fn ip_net(at: &str, text: &str) -> Result<IpNet, ConfigError> {
    let bad = || ConfigError::invalid(at, format!("{text:?} is not an address or a CIDR range"));
    let (addr, prefix) = match text.split_once('/') {
        Some((a, p)) => (a, Some(p.parse::<u8>().map_err(|_| bad())?)),
        None => (text, None),
    };
    let addr = canonical_ip(addr.trim().parse::<IpAddr>().map_err(|_| bad())?);
    let width = if addr.is_ipv4() { 32 } else { 128 };
    let prefix = prefix.unwrap_or(width);
    if prefix > width {
        return Err(bad());
    }
    Ok(IpNet { addr, prefix })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    const BASE: &str = "networks:\n  dev:\n    chain_id: 1\n    upstreams:\n      - name: a\n        http: http://127.0.0.1:1\n";

    fn load(policy: &str) -> Result<Config, ConfigError> {
        Config::from_yaml(&format!("{BASE}policy:\n{policy}"))
    }

    fn err_path(policy: &str) -> String {
        match load(policy) {
            Err(ConfigError::Invalid { path, .. }) => path,
            other => panic!("expected an invalid config, got {other:?}"),
        }
    }

    const HASH: &str = "5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8";

    #[test]
    fn without_a_policy_section_anonymous_callers_get_the_defaults() {
        let c = Config::from_yaml(BASE).unwrap();
        assert!(c.policy.anonymous.is_some());
        assert!(c.policy.clients.is_empty());
        assert_eq!(c.policy.redis_fallback, RedisFallback::Open);
    }

    #[test]
    fn a_full_policy_loads() {
        std::env::set_var(
            "RPCGATE_TEST_KEYS_A",
            "k-aaaaaaaaaaaaaaaa, k-bbbbbbbbbbbbbbbb",
        );
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("keys");
        std::fs::write(&file, "# rotated 2024\nk-cccccccccccccccc\n\n").unwrap();
        let c = load(&format!(
            "  trusted_proxies: [10.0.0.0/8, '::1']\n  redis_fallback: closed\n  costs:\n    eth_getLogs: 100\n    debug_*: 500\n  anonymous:\n    limits:\n      requests_per_second: 0.5\n  clients:\n    dapp:\n      key_sha256: [{HASH}]\n      keys_env: RPCGATE_TEST_KEYS_A\n      keys_file: {}\n      allow: ['@default', debug_traceTransaction]\n      deny: [eth_sendRawTransaction]\n      limits:\n        requests_per_second: 10\n        burst: 20\n        compute_units_per_second: 300\n",
            file.display()
        ))
        .unwrap();
        let p = &c.policy;
        assert_eq!(p.redis_fallback, RedisFallback::Closed);
        assert!(p.trusted_proxies[0].contains("10.1.2.3".parse().unwrap()));
        assert!(p.trusted_proxies[0].contains("::ffff:10.1.2.3".parse().unwrap()));
        assert!(!p.trusted_proxies[0].contains("11.0.0.1".parse().unwrap()));
        assert!(p.trusted_proxies[1].contains("::1".parse().unwrap()));
        let dapp = &p.clients[0];
        assert_eq!(dapp.keys.len(), 4);
        assert!(dapp.keys.contains(&KeyDigest::of("password")));
        assert!(dapp.keys.contains(&KeyDigest::of("k-bbbbbbbbbbbbbbbb")));
        assert!(dapp.keys.contains(&KeyDigest::of("k-cccccccccccccccc")));
        let r = dapp.tier.limits.requests.unwrap();
        assert_eq!((r.per_second, r.burst), (10.0, 20));
        assert_eq!(dapp.tier.limits.compute_units.unwrap().burst, 300);
        let anon = p.anonymous.as_ref().unwrap();
        assert_eq!(anon.limits.requests.unwrap().burst, 1);
        assert_eq!(
            anon.limits.requests.unwrap().interval(),
            Duration::from_secs(2)
        );
        // A dumped config shows no key material.
        let dump = format!("{c:?}");
        assert!(!dump.contains(HASH) && !dump.contains("k-aaaa"), "{dump}");
    }

    #[test]
    fn bad_policies_name_their_path() {
        assert_eq!(
            err_path("  trusted_proxies: [10.0.0.0/33]\n"),
            "policy.trusted_proxies[0]"
        );
        assert_eq!(
            err_path("  redis_fallback: maybe\n"),
            "policy.redis_fallback"
        );
        let key = "a".repeat(64);
        assert_eq!(
            err_path(&format!(
                "  clients:\n    dapp:\n      key_sha256: [{key}]\n      allowed_origins: [\"https://*.dapp.test\", \"dapp.test\"]\n"
            )),
            "policy.clients.dapp.allowed_origins[1]"
        );
        assert_eq!(
            err_path("  costs:\n    'eth getLogs': 3\n"),
            "policy.costs.eth getLogs"
        );
        assert_eq!(
            err_path("  clients:\n    dapp:\n      allow: [eth_*]\n"),
            "policy.clients.dapp"
        );
        assert_eq!(
            err_path("  clients:\n    dapp:\n      key_sha256: [abc]\n"),
            "policy.clients.dapp.key_sha256[0]"
        );
        assert_eq!(
            err_path(&format!(
                "  clients:\n    dapp:\n      key_sha256: [{HASH}]\n      deny: ['eth-x']\n"
            )),
            "policy.clients.dapp.deny[0]"
        );
        assert_eq!(
            err_path(&format!("  clients:\n    a:\n      key_sha256: [{HASH}]\n    b:\n      key_sha256: [{HASH}]\n")),
            "policy.clients.b"
        );
        assert_eq!(
            err_path("  clients:\n    dapp:\n      keys_env: RPCGATE_TEST_NO_SUCH_VAR\n"),
            "policy.clients.dapp.keys_env"
        );
        std::env::set_var("RPCGATE_TEST_SHORT_KEY", "short");
        let e =
            load("  clients:\n    dapp:\n      keys_env: RPCGATE_TEST_SHORT_KEY\n").unwrap_err();
        assert!(!e.to_string().contains("short\""), "{e}");
        assert_eq!(
            err_path("  anonymous:\n    limits:\n      burst: 5\n"),
            "policy.anonymous.limits.burst"
        );
        assert_eq!(
            err_path("  anonymous:\n    limits:\n      requests_per_second: 0\n"),
            "policy.anonymous.limits.requests_per_second"
        );
        assert_eq!(
            err_path("  anonymous:\n    limit: {}\n"),
            "policy.anonymous.limit"
        );
        assert_eq!(
            err_path(&format!(
                "  clients:\n    anonymous:\n      key_sha256: [{HASH}]\n"
            )),
            "policy.clients.anonymous"
        );
    }

    #[test]
    fn anonymous_can_be_turned_off() {
        let c = load("  anonymous:\n    enabled: false\n").unwrap();
        assert!(c.policy.anonymous.is_none());
    }
}
