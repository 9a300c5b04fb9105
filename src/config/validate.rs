//! Semantic checks and defaults: raw YAML in, an immutable [`Config`] out.
//! Every error names the dotted path of the key at fault.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::time::Duration;

use super::raw::{
    RawCache, RawConfig, RawDiscover, RawFilters, RawHead, RawLog, RawNetwork, RawReadYourWrites,
    RawRedis, RawUpstream,
};
use super::{
    parse_duration, CacheConfig, CompressionConfig, Config, ConfigError, ContentCoding,
    DiscoverConfig, FiltersConfig, HeadConfig, LogConfig, NetworkConfig, ReadYourWritesConfig,
    RedisConfig, ServerLimits, Tier, UpstreamConfig, CACHE_CANON_WINDOW,
};

pub(super) const DEFAULT_LISTEN: &str = "127.0.0.1:8545";
/// 8580, not 9090: 9090 is Prometheus's own default, and the two often share a host.
pub(super) const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:8580";
pub(super) const DEFAULT_MAX_BODY_BYTES: u64 = 5 * 1024 * 1024;
pub(super) const DEFAULT_MAX_BATCH_LEN: u64 = 100;
pub(super) const DEFAULT_MAX_CONNECTIONS: u64 = 10_000;
pub(super) const DEFAULT_MAX_METHOD_LEN: u64 = 128;
pub(super) const DEFAULT_MAX_BATCH_RESPONSE_BYTES: u64 = 25 * 1024 * 1024;
pub(super) const DEFAULT_BATCH_CONCURRENCY: u64 = 8;
/// `server.max_inflight_answer_bytes` and `server.max_inflight_request_bytes`: 256 MiB.
pub(super) const DEFAULT_MAX_INFLIGHT_BYTES: u64 = 256 * 1024 * 1024;
/// `cache.max_shared_key_bytes`.
pub(super) const DEFAULT_MAX_SHARED_KEY_BYTES: usize = 2048;
pub(super) const DEFAULT_MAX_SUBSCRIPTIONS_PER_CONNECTION: u64 = 100;
pub(super) const DEFAULT_MAX_TOPICS_PER_CONNECTION: u64 = 16;
pub(super) const DEFAULT_MAX_UPSTREAM_SUBSCRIPTIONS: u64 = 1000;
pub(super) const DEFAULT_WS_MAX_QUEUED_BYTES: u64 = 16 * 1024 * 1024;
pub(super) const DEFAULT_MAX_LAG_BLOCKS: u64 = 2;
pub(super) const DEFAULT_MAX_ATTEMPTS: u64 = 3;
pub(super) const DEFAULT_EJECT_AFTER_FAILURES: u64 = 3;
pub(super) const DEFAULT_MAX_RESPONSE_BYTES: u64 = 64 * 1024 * 1024;
pub(super) const DEFAULT_MAX_LOGS_BLOCK_RANGE: u64 = 10_000;
pub(super) const DEFAULT_MAX_PARAMS_DEPTH: u64 = 64;
/// Calls of one client batch sent to one backend in one request, at most.
pub(super) const DEFAULT_UPSTREAM_BATCH_MAX: u64 = 10;
/// Tracing and debugging calls replay blocks: they need far longer than reads.
pub(super) const DEFAULT_METHOD_TIMEOUTS: [(&str, Duration); 2] = [
    ("debug_*", Duration::from_secs(120)),
    ("trace_*", Duration::from_secs(120)),
];
/// A fallback (often a paid provider) is probed this rarely while primaries serve.
pub(super) const DEFAULT_FALLBACK_PROBE_INTERVAL: Duration = Duration::from_secs(60);
/// `state_history` above this is a typo: an archive node is written by leaving it out.
pub(super) const MAX_STATE_HISTORY: u64 = 1 << 40;
pub(super) const DEFAULT_CACHE_MAX_BYTES: u64 = 256 * 1024 * 1024;
pub(super) const DEFAULT_CACHE_MAX_ENTRY_BYTES: u64 = 1024 * 1024;
/// Deeper than this, blocks leave the cache's window of tracked hashes
/// ([`CACHE_CANON_WINDOW`]), so `confirmations` must stay below it.
pub(super) const MAX_CACHE_CONFIRMATIONS: u64 = CACHE_CANON_WINDOW - 1;

pub(super) fn validate(raw: RawConfig) -> Result<Config, ConfigError> {
    let listen = address("listen", raw.listen.as_deref().unwrap_or(DEFAULT_LISTEN))?;
    let admin_listen = address(
        "admin_listen",
        raw.admin_listen.as_deref().unwrap_or(DEFAULT_ADMIN_LISTEN),
    )?;

    let server = ServerLimits {
        max_body_bytes: in_range(
            "server.max_body_bytes",
            raw.server.max_body_bytes,
            DEFAULT_MAX_BODY_BYTES,
            1,
            1 << 30,
        )?,
        max_batch_len: in_range(
            "server.max_batch_len",
            raw.server.max_batch_len,
            DEFAULT_MAX_BATCH_LEN,
            1,
            100_000,
        )?,
        max_connections: in_range(
            "server.max_connections",
            raw.server.max_connections,
            DEFAULT_MAX_CONNECTIONS,
            1,
            10_000_000,
        )?,
        max_method_len: in_range(
            "server.max_method_len",
            raw.server.max_method_len,
            DEFAULT_MAX_METHOD_LEN,
            8,
            4096,
        )?,
        max_batch_response_bytes: in_range(
            "server.max_batch_response_bytes",
            raw.server.max_batch_response_bytes,
            DEFAULT_MAX_BATCH_RESPONSE_BYTES,
            1024,
            1 << 32,
        )?,
        batch_concurrency: in_range(
            "server.batch_concurrency",
            raw.server.batch_concurrency,
            DEFAULT_BATCH_CONCURRENCY,
            1,
            1000,
        )?,
        body_read_timeout: duration(
            "server.body_read_timeout",
            raw.server.body_read_timeout.as_deref(),
            Duration::from_secs(30),
        )?,
        max_subscriptions_per_connection: in_range(
            "server.max_subscriptions_per_connection",
            raw.server.max_subscriptions_per_connection,
            DEFAULT_MAX_SUBSCRIPTIONS_PER_CONNECTION,
            1,
            100_000,
        )?,
        max_topics_per_connection: in_range(
            "server.max_topics_per_connection",
            raw.server.max_topics_per_connection,
            DEFAULT_MAX_TOPICS_PER_CONNECTION,
            1,
            100_000,
        )?,
        max_upstream_subscriptions: in_range(
            "server.max_upstream_subscriptions",
            raw.server.max_upstream_subscriptions,
            DEFAULT_MAX_UPSTREAM_SUBSCRIPTIONS,
            1,
            1_000_000,
        )?,
        ws_max_queued_bytes: in_range(
            "server.ws_max_queued_bytes",
            raw.server.ws_max_queued_bytes,
            DEFAULT_WS_MAX_QUEUED_BYTES,
            1024,
            1 << 32,
        )?,
        cors: cors(raw.server.cors)?,
        compression: compression(raw.server.compression)?,
        max_params_depth: in_range(
            "server.max_params_depth",
            raw.server.max_params_depth,
            DEFAULT_MAX_PARAMS_DEPTH,
            2,
            1024,
        )?,
        first_request_timeout: duration(
            "server.first_request_timeout",
            raw.server.first_request_timeout.as_deref(),
            Duration::from_secs(10),
        )?,
        idle_timeout: duration(
            "server.idle_timeout",
            raw.server.idle_timeout.as_deref(),
            Duration::from_secs(60),
        )?,
        write_timeout: duration(
            "server.write_timeout",
            raw.server.write_timeout.as_deref(),
            Duration::from_secs(30),
        )?,
        tcp_keepalive: duration(
            "server.tcp_keepalive",
            raw.server.tcp_keepalive.as_deref(),
            Duration::from_secs(60),
        )?,
        http2_max_concurrent_streams: in_range(
            "server.http2_max_concurrent_streams",
            raw.server.http2_max_concurrent_streams,
            32,
            1,
            1000,
        )? as u32,
        http2_keepalive_interval: duration(
            "server.http2_keepalive_interval",
            raw.server.http2_keepalive_interval.as_deref(),
            Duration::from_secs(20),
        )?,
        http2_keepalive_timeout: duration(
            "server.http2_keepalive_timeout",
            raw.server.http2_keepalive_timeout.as_deref(),
            Duration::from_secs(10),
        )?,
        max_header_list_bytes: in_range(
            "server.max_header_list_bytes",
            raw.server.max_header_list_bytes,
            64 * 1024,
            8192,
            1 << 20,
        )?,
        lingering_close_timeout: duration(
            "server.lingering_close_timeout",
            raw.server.lingering_close_timeout.as_deref(),
            Duration::from_secs(2),
        )?,
        lingering_close_bytes: in_range(
            "server.lingering_close_bytes",
            raw.server.lingering_close_bytes,
            16 * 1024 * 1024,
            0,
            1 << 30,
        )?,
        expose_upstream_headers: raw.server.expose_upstream_headers.unwrap_or(false),
        max_inflight_answer_bytes: in_range(
            "server.max_inflight_answer_bytes",
            raw.server.max_inflight_answer_bytes,
            DEFAULT_MAX_INFLIGHT_BYTES,
            1 << 20,
            1 << 40,
        )?,
        max_inflight_request_bytes: in_range(
            "server.max_inflight_request_bytes",
            raw.server.max_inflight_request_bytes,
            DEFAULT_MAX_INFLIGHT_BYTES,
            1 << 20,
            1 << 40,
        )?,
        memory_wait: duration(
            "server.memory_wait",
            raw.server.memory_wait.as_deref(),
            Duration::from_secs(2),
        )?,
        tls: super::tls::listener(raw.server.tls)?,
    };

    let raw_networks = raw
        .networks
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ConfigError::invalid("networks", "at least one network is required"))?;
    let only_one = raw_networks.len() == 1;
    let mut networks = Vec::with_capacity(raw_networks.len());
    for (name, net) in raw_networks {
        networks.push(network(&name, net, only_one)?);
    }
    let defaults: Vec<&str> = networks
        .iter()
        .filter(|n| n.default)
        .map(|n| n.name.as_str())
        .collect();
    if defaults.len() > 1 {
        return Err(ConfigError::invalid(
            format!("networks.{}.default", defaults[1]),
            format!(
                "only one network can be the default; {} already is",
                defaults[0]
            ),
        ));
    }
    let redis = match raw.redis {
        None => None,
        Some(r) => Some(redis(r)?),
    };
    if let Some(net) = networks.iter().find(|n| n.cache.shared) {
        if redis.is_none() {
            return Err(ConfigError::invalid(
                format!("networks.{}.cache.shared", net.name),
                "needs the top-level redis.url",
            ));
        }
    }
    let policy = super::client_policy::policy(raw.policy)?;
    let log = log(raw.log)?;
    Ok(Config {
        listen,
        admin_listen,
        server,
        networks,
        redis,
        policy,
        log,
    })
}

fn log(raw: RawLog) -> Result<LogConfig, ConfigError> {
    let level = raw.level.unwrap_or_else(|| LogConfig::default().level);
    if let Err(e) = tracing_subscriber::EnvFilter::builder().parse(&level) {
        return Err(ConfigError::invalid(
            "log.level",
            format!("{level:?} is not a log filter (e.g. info, or warn,rpcgate=debug): {e}"),
        ));
    }
    let json = match raw.format.as_deref() {
        None | Some("human") => false,
        Some("json") => true,
        Some(other) => {
            return Err(ConfigError::invalid(
                "log.format",
                format!("{other:?} must be human or json"),
            ))
        }
    };
    let refusals_per_second = in_range(
        "log.refusals_per_second",
        raw.refusals_per_second,
        u64::from(super::DEFAULT_REFUSALS_PER_SECOND),
        0,
        100_000,
    )? as u32;
    let refusals_summary_interval = duration(
        "log.refusals_summary_interval",
        raw.refusals_summary_interval.as_deref(),
        super::DEFAULT_REFUSALS_SUMMARY_INTERVAL,
    )?;
    if refusals_summary_interval < Duration::from_millis(100) {
        return Err(ConfigError::invalid(
            "log.refusals_summary_interval",
            "must be at least 100ms",
        ));
    }
    Ok(LogConfig {
        level,
        json,
        refusals_per_second,
        refusals_summary_interval,
    })
}

fn network(name: &str, raw: RawNetwork, only_one: bool) -> Result<NetworkConfig, ConfigError> {
    let at = |key: &str| format!("networks.{name}.{key}");
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(ConfigError::invalid(
            format!("networks.{name}"),
            "a network name is served as a URL path: use letters, digits, '-' and '_'",
        ));
    }
    let chain_id = raw.chain_id.ok_or_else(|| {
        ConfigError::invalid(
            at("chain_id"),
            "is required (each backend's eth_chainId is checked against it)",
        )
    })?;
    let discover = raw
        .discover
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(i, d)| discover(&format!("networks.{name}.discover[{i}]"), d))
        .collect::<Result<Vec<_>, _>>()?;
    let upstreams_raw = raw.upstreams.unwrap_or_default();
    if upstreams_raw.is_empty() && discover.is_empty() {
        return Err(ConfigError::invalid(
            at("upstreams"),
            "at least one upstream (or a discover group) is required",
        ));
    }
    let mut seen = HashSet::new();
    let mut upstreams = Vec::with_capacity(upstreams_raw.len());
    for (i, u) in upstreams_raw.into_iter().enumerate() {
        let up = upstream(&format!("networks.{name}.upstreams[{i}]"), u)?;
        if !seen.insert(up.name.clone()) {
            return Err(ConfigError::invalid(
                format!("networks.{name}.upstreams[{i}].name"),
                format!("duplicate upstream name {:?}", up.name),
            ));
        }
        upstreams.push(up);
    }
    if discover.is_empty() && upstreams.iter().all(|u| u.tier != Tier::Primary) {
        return Err(ConfigError::invalid(
            at("upstreams"),
            "no upstream is tier: primary; at least one must be (fallbacks serve only when no primary can, route-only upstreams only their routes)",
        ));
    }
    let routes = super::routes::validate(&format!("networks.{name}"), raw.routes, &upstreams)?;
    Ok(NetworkConfig {
        name: name.to_string(),
        chain_id,
        default: raw.default || only_one,
        max_lag_blocks: in_range(
            &at("max_lag_blocks"),
            raw.max_lag_blocks,
            DEFAULT_MAX_LAG_BLOCKS,
            0,
            1_000_000,
        )? as u64,
        request_timeout: duration(
            &at("request_timeout"),
            raw.request_timeout.as_deref(),
            Duration::from_secs(10),
        )?,
        max_attempts: in_range(
            &at("max_attempts"),
            raw.max_attempts,
            DEFAULT_MAX_ATTEMPTS,
            1,
            10,
        )?,
        eject_after_failures: in_range(
            &at("eject_after_failures"),
            raw.eject_after_failures,
            DEFAULT_EJECT_AFTER_FAILURES,
            1,
            1000,
        )? as u32,
        max_response_bytes: in_range(
            &at("max_response_bytes"),
            raw.max_response_bytes,
            DEFAULT_MAX_RESPONSE_BYTES,
            1024,
            1 << 32,
        )?,
        max_logs_block_range: in_range(
            &at("max_logs_block_range"),
            raw.max_logs_block_range,
            DEFAULT_MAX_LOGS_BLOCK_RANGE,
            1,
            u64::MAX,
        )? as u64,
        upstream_batch_max: in_range(
            &at("upstream_batch_max"),
            raw.upstream_batch_max,
            DEFAULT_UPSTREAM_BATCH_MAX,
            0,
            1000,
        )?,
        method_timeouts: method_timeouts(&at("method_timeouts"), raw.method_timeouts)?,
        head: head(&at("head"), raw.head)?,
        cache: cache(&at("cache"), raw.cache)?,
        filters: filters(&at("filters"), raw.filters)?,
        read_your_writes: read_your_writes(&at("read_your_writes"), raw.read_your_writes)?,
        upstreams,
        discover,
        routes,
        hedge: super::hedge::rules(&at("hedge"), raw.hedge)?,
    })
}

/// `method_timeouts:`: method name or `prefix*` glob -> duration. Given, it
/// replaces the defaults (`debug_*` and `trace_*`: 120s); exact names are
/// tried before globs, longer globs before shorter ones.
fn method_timeouts(
    at: &str,
    raw: Option<BTreeMap<String, String>>,
) -> Result<Vec<(String, Duration)>, ConfigError> {
    let Some(raw) = raw else {
        return Ok(DEFAULT_METHOD_TIMEOUTS
            .iter()
            .map(|(p, t)| (p.to_string(), *t))
            .collect());
    };
    let mut out = Vec::with_capacity(raw.len());
    for (pattern, text) in raw {
        let key = format!("{at}.{pattern}");
        let name = pattern.strip_suffix('*').unwrap_or(&pattern);
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(ConfigError::invalid(
                key,
                "is not a method name or a `prefix*` glob",
            ));
        }
        let timeout = duration(&key, Some(&text), Duration::ZERO)?;
        out.push((pattern, timeout));
    }
    // Most specific first: exact names, then the longest prefixes.
    out.sort_by_key(|(p, _)| (p.ends_with('*'), std::cmp::Reverse(p.len())));
    Ok(out)
}

fn discover(at: &str, raw: RawDiscover) -> Result<DiscoverConfig, ConfigError> {
    let key = |k: &str| format!("{at}.{k}");
    let name = raw
        .name
        .filter(|n| !n.trim().is_empty())
        .ok_or_else(|| ConfigError::invalid(key("name"), "is required"))?;
    let dns = raw.dns.filter(|d| !d.trim().is_empty()).ok_or_else(|| {
        ConfigError::invalid(
            key("dns"),
            "is required (a DNS name, e.g. a headless Service)",
        )
    })?;
    let http_port = raw
        .http_port
        .filter(|p| *p != 0)
        .ok_or_else(|| ConfigError::invalid(key("http_port"), "is required (1 to 65535)"))?;
    let resolver = match raw.resolver {
        None => None,
        Some(r) => Some(address(&key("resolver"), &r)?),
    };
    Ok(DiscoverConfig {
        name,
        dns,
        http_port,
        ws_port: raw.ws_port.filter(|p| *p != 0),
        interval: duration(
            &key("interval"),
            raw.interval.as_deref(),
            Duration::from_secs(10),
        )?,
        resolver,
    })
}

fn address(at: &str, text: &str) -> Result<SocketAddr, ConfigError> {
    text.parse().map_err(|_| {
        ConfigError::invalid(
            at,
            format!("{text:?} is not an address like 127.0.0.1:8545"),
        )
    })
}

fn redis(raw: RawRedis) -> Result<RedisConfig, ConfigError> {
    let url = raw
        .url
        .ok_or_else(|| ConfigError::invalid("redis.url", "is required (redis://host:port)"))?;
    let parsed: http::Uri = url
        .parse()
        .map_err(|_| ConfigError::invalid("redis.url", format!("{url:?} is not a URL")))?;
    if parsed.scheme_str() != Some("redis") || parsed.host().is_none_or(str::is_empty) {
        return Err(ConfigError::invalid(
            "redis.url",
            format!("{url:?} must look like redis://host:port"),
        ));
    }
    Ok(RedisConfig { url })
}

fn filters(at: &str, raw: RawFilters) -> Result<FiltersConfig, ConfigError> {
    let key = |k: &str| format!("{at}.{k}");
    let d = FiltersConfig::default();
    let expiry = duration(&key("expiry"), raw.expiry.as_deref(), d.expiry)?;
    if expiry < Duration::from_secs(1) {
        return Err(ConfigError::invalid(key("expiry"), "must be at least 1s"));
    }
    let max_total = in_range(
        &key("max_total"),
        raw.max_total,
        d.max_total as u64,
        1,
        10_000_000,
    )?;
    Ok(FiltersConfig {
        enabled: raw.enabled.unwrap_or(d.enabled),
        expiry,
        max_per_client: in_range(
            &key("max_per_client"),
            raw.max_per_client,
            (d.max_per_client as u64).min(max_total as u64),
            1,
            max_total as u64,
        )?,
        max_total,
        max_poll_blocks: in_range(
            &key("max_poll_blocks"),
            raw.max_poll_blocks,
            d.max_poll_blocks,
            1,
            1_000_000,
        )? as u64,
        max_pending_hashes: in_range(
            &key("max_pending_hashes"),
            raw.max_pending_hashes,
            d.max_pending_hashes as u64,
            1,
            1_000_000,
        )?,
    })
}

fn read_your_writes(at: &str, raw: RawReadYourWrites) -> Result<ReadYourWritesConfig, ConfigError> {
    let key = |k: &str| format!("{at}.{k}");
    let d = ReadYourWritesConfig::default();
    let ttl = duration(&key("ttl"), raw.ttl.as_deref(), d.ttl)?;
    if ttl < Duration::from_secs(1) || ttl > Duration::from_secs(3600) {
        return Err(ConfigError::invalid(key("ttl"), "must be from 1s to 1h"));
    }
    Ok(ReadYourWritesConfig {
        enabled: raw.enabled.unwrap_or(d.enabled),
        ttl,
        max_entries: in_range(
            &key("max_entries"),
            raw.max_entries,
            d.max_entries as u64,
            1,
            10_000_000,
        )?,
    })
}

fn cache(at: &str, raw: RawCache) -> Result<CacheConfig, ConfigError> {
    let key = |k: &str| format!("{at}.{k}");
    let max_bytes = in_range(
        &key("max_bytes"),
        raw.max_bytes,
        DEFAULT_CACHE_MAX_BYTES,
        4096,
        1 << 40,
    )? as u64;
    let max_entry_bytes = in_range(
        &key("max_entry_bytes"),
        raw.max_entry_bytes,
        DEFAULT_CACHE_MAX_ENTRY_BYTES.min(max_bytes),
        1,
        max_bytes,
    )?;
    let confirmations = match raw.confirmations {
        None => None,
        Some(c) => Some(in_range(
            &key("confirmations"),
            Some(c),
            c,
            1,
            MAX_CACHE_CONFIRMATIONS,
        )? as u64),
    };
    let defaults = CacheConfig::default();
    Ok(CacheConfig {
        enabled: raw.enabled.unwrap_or(true),
        max_bytes,
        max_entry_bytes,
        confirmations,
        block_scoped: raw.block_scoped.unwrap_or(true),
        shared: raw.shared.unwrap_or(false),
        shared_ttl: duration(
            &key("shared_ttl"),
            raw.shared_ttl.as_deref(),
            defaults.shared_ttl,
        )?,
        max_shared_key_bytes: in_range(
            &key("max_shared_key_bytes"),
            raw.max_shared_key_bytes,
            DEFAULT_MAX_SHARED_KEY_BYTES as u64,
            64,
            1 << 20,
        )?,
    })
}

fn head(at: &str, raw: RawHead) -> Result<HeadConfig, ConfigError> {
    let key = |k: &str| format!("{at}.{k}");
    Ok(HeadConfig {
        poll_interval: duration(
            &key("poll_interval"),
            raw.poll_interval.as_deref(),
            Duration::from_millis(500),
        )?,
        ws_poll_interval: duration(
            &key("ws_poll_interval"),
            raw.ws_poll_interval.as_deref(),
            Duration::from_secs(2),
        )?,
        finality_poll_interval: duration(
            &key("finality_poll_interval"),
            raw.finality_poll_interval.as_deref(),
            Duration::from_secs(3),
        )?,
        syncing_poll_interval: duration(
            &key("syncing_poll_interval"),
            raw.syncing_poll_interval.as_deref(),
            Duration::from_secs(5),
        )?,
        probe_timeout: duration(
            &key("probe_timeout"),
            raw.probe_timeout.as_deref(),
            Duration::from_secs(2),
        )?,
        fallback_probe_interval: duration(
            &key("fallback_probe_interval"),
            raw.fallback_probe_interval.as_deref(),
            DEFAULT_FALLBACK_PROBE_INTERVAL,
        )?,
    })
}

fn upstream(at: &str, raw: RawUpstream) -> Result<UpstreamConfig, ConfigError> {
    let name = raw
        .name
        .filter(|n| !n.trim().is_empty())
        .ok_or_else(|| ConfigError::invalid(format!("{at}.name"), "is required"))?;
    let http_url = raw.http.ok_or_else(|| {
        ConfigError::invalid(
            format!("{at}.http"),
            "is required (the node's HTTP JSON-RPC URL)",
        )
    })?;
    let http = url(&format!("{at}.http"), &http_url, "http")?;
    let ws = match raw.ws {
        Some(ws) => Some(url(&format!("{at}.ws"), &ws, "ws")?),
        None => None,
    };
    let uses_tls = http.scheme_str() == Some("https")
        || ws.as_ref().is_some_and(|w| w.scheme_str() == Some("wss"));
    let tls = super::tls::upstream(at, raw.tls, uses_tls)?;
    let mut headers = http::HeaderMap::new();
    for (key, template) in raw.headers.unwrap_or_default() {
        let at = format!("{at}.headers.{key}");
        let name = http::HeaderName::from_bytes(key.as_bytes())
            .map_err(|_| ConfigError::invalid(&at, "is not a valid header name"))?;
        let value = super::expand::from_env(&at, &template)?;
        let mut value = http::HeaderValue::from_str(&value).map_err(|_| {
            ConfigError::invalid(&at, format!("{template:?} is not a valid header value"))
        })?;
        value.set_sensitive(true);
        headers.insert(name, value);
    }
    let tier = match raw.tier.as_deref() {
        None | Some("primary") => Tier::Primary,
        Some("fallback") => Tier::Fallback,
        Some("route") => Tier::Route,
        Some(other) => {
            return Err(ConfigError::invalid(
                format!("{at}.tier"),
                format!("{other:?} is not a tier: use primary (the default), fallback or route"),
            ))
        }
    };
    let state_history = match raw.state_history {
        None => None,
        Some(n) => Some(in_range(
            &format!("{at}.state_history"),
            Some(n),
            n,
            0,
            MAX_STATE_HISTORY,
        )? as u64),
    };
    Ok(UpstreamConfig {
        name,
        http,
        ws,
        headers,
        tier,
        state_history,
        tls,
    })
}

/// Parses `template` (with `${VAR}` expanded) as a URL of `scheme` or its
/// TLS form (`https`, `wss`); errors quote the template, never the expanded
/// text.
fn url(at: &str, template: &str, scheme: &str) -> Result<http::Uri, ConfigError> {
    let bad = |why: &str| ConfigError::invalid(at, format!("{template:?} {why}"));
    let text = super::expand::from_env(at, template)?;
    let uri: http::Uri = text.parse().map_err(|_| bad("is not a URL"))?;
    match uri.scheme_str() {
        Some(s) if s == scheme || s == format!("{scheme}s") => {}
        _ => return Err(bad(&format!("must start with {scheme}:// or {scheme}s://"))),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(bad("has no host"));
    }
    Ok(uri)
}

/// `server.cors`: each origin is `*`, or `scheme://host[:port]` whose host
/// may start with one `*.` (any subdomain, not the bare domain).
fn cors(raw: super::raw::RawCors) -> Result<super::CorsConfig, ConfigError> {
    let default = super::CorsConfig::default();
    let allowed_origins = raw.allowed_origins.unwrap_or(default.allowed_origins);
    for (i, origin) in allowed_origins.iter().enumerate() {
        if origin != "*" && !origin_pattern_ok(origin) {
            return Err(ConfigError::invalid(
                format!("server.cors.allowed_origins[{i}]"),
                format!("{origin:?} is not \"*\" or an origin like https://app.example.com or https://*.example.com (no path, no trailing slash)"),
            ));
        }
    }
    let max_age = duration(
        "server.cors.max_age",
        raw.max_age.as_deref(),
        default.max_age,
    )?;
    if max_age > Duration::from_secs(24 * 3600) {
        return Err(ConfigError::invalid(
            "server.cors.max_age",
            "at most 24h (browsers cap it lower anyway)",
        ));
    }
    Ok(super::CorsConfig {
        allowed_origins,
        max_age,
    })
}

/// `server.compression`: codings by their tokens, each named once; answers
/// may use gzip, br and zstd (deflate is taken in request bodies only: its
/// two incompatible readings in the wild make it a poor answer coding).
fn compression(raw: super::raw::RawCompression) -> Result<CompressionConfig, ConfigError> {
    let default = CompressionConfig::default();
    let codings = |key: &str,
                   names: Option<Vec<String>>,
                   fallback: Vec<ContentCoding>,
                   answer: bool|
     -> Result<Vec<ContentCoding>, ConfigError> {
        let Some(names) = names else {
            return Ok(fallback);
        };
        let mut out = Vec::with_capacity(names.len());
        for (i, name) in names.iter().enumerate() {
            let at = format!("server.compression.{key}[{i}]");
            let offered: &[&str] = if answer {
                &["br", "gzip", "zstd"]
            } else {
                &["br", "deflate", "gzip", "zstd"]
            };
            let coding = ContentCoding::from_token(name)
                .filter(|c| offered.contains(&c.token()))
                .ok_or_else(|| {
                    ConfigError::invalid(
                        &at,
                        format!("{name:?} is not one of {}", offered.join(", ")),
                    )
                })?;
            if out.contains(&coding) {
                return Err(ConfigError::invalid(&at, format!("{name} is listed twice")));
            }
            out.push(coding);
        }
        Ok(out)
    };
    let algorithms = codings("algorithms", raw.algorithms, default.algorithms, true)?;
    if algorithms.is_empty() {
        return Err(ConfigError::invalid(
            "server.compression.algorithms",
            "at least one coding (to send answers as they are, set enabled: false)",
        ));
    }
    Ok(CompressionConfig {
        enabled: raw.enabled.unwrap_or(default.enabled),
        min_bytes: in_range(
            "server.compression.min_bytes",
            raw.min_bytes,
            default.min_bytes as u64,
            0,
            1 << 30,
        )?,
        algorithms,
        request_encodings: codings(
            "request_encodings",
            raw.request_encodings,
            default.request_encodings,
            false,
        )?,
    })
}

pub(super) fn origin_pattern_ok(origin: &str) -> bool {
    let Some((scheme, rest)) = origin.split_once("://") else {
        return false;
    };
    let host_ok = |h: &str| {
        !h.is_empty()
            && h.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'[' | b']' | b':'))
    };
    let host = rest.strip_prefix("*.").unwrap_or(rest);
    !scheme.is_empty()
        && scheme.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'+' || b == b'-' || b == b'.'
        })
        && host_ok(host)
        && !host.contains('*')
}

pub(super) fn duration(
    at: &str,
    text: Option<&str>,
    default: Duration,
) -> Result<Duration, ConfigError> {
    match text {
        None => Ok(default),
        Some(t) => {
            let d = parse_duration(t).map_err(|e| ConfigError::invalid(at, e))?;
            if d.is_zero() {
                return Err(ConfigError::invalid(at, "must be greater than zero"));
            }
            Ok(d)
        }
    }
}

pub(super) fn in_range(
    at: &str,
    value: Option<u64>,
    default: u64,
    min: u64,
    max: u64,
) -> Result<usize, ConfigError> {
    let v = value.unwrap_or(default);
    if v < min || v > max {
        return Err(ConfigError::invalid(
            at,
            format!("{v} is out of range ({min} to {max})"),
        ));
    }
    Ok(v as usize)
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, ConfigError};

    const GOOD: &str = r#"
listen: 127.0.0.1:8545
networks:
  mainnet:
    chain_id: 1
    default: true
    max_lag_blocks: 2
    upstreams:
      - name: geth-0
        http: http://127.0.0.1:9545
        ws: ws://127.0.0.1:9545
      - name: geth-1
        http: http://127.0.0.1:9546
"#;

    fn err_path(yaml: &str) -> String {
        match Config::from_yaml(yaml) {
            Err(ConfigError::Invalid { path, .. }) => path,
            other => panic!("expected an invalid config, got {other:?}"),
        }
    }

    #[test]
    fn the_documented_shape_loads() {
        let c = Config::from_yaml(GOOD).unwrap();
        let n = c.network("mainnet").unwrap();
        assert_eq!(n.chain_id, 1);
        assert!(n.default);
        assert_eq!(n.upstreams.len(), 2);
        assert_eq!(n.upstreams[0].ws.as_ref().unwrap().port_u16(), Some(9545));
        assert_eq!(c.server.max_batch_len, 100);
        assert_eq!(c.server.max_body_bytes, 5 * 1024 * 1024);
        assert_eq!(c.server.max_subscriptions_per_connection, 100);
        assert_eq!(c.server.max_topics_per_connection, 16);
        assert_eq!(c.server.max_upstream_subscriptions, 1000);
        assert_eq!(c.server.ws_max_queued_bytes, 16 * 1024 * 1024);
    }

    #[test]
    fn tiers_and_state_history() {
        use crate::config::Tier;
        let c = Config::from_yaml(GOOD).unwrap();
        let n = &c.networks[0];
        assert_eq!(n.upstreams[0].tier, Tier::Primary);
        assert_eq!(n.upstreams[0].state_history, None);
        assert_eq!(
            n.head.fallback_probe_interval,
            std::time::Duration::from_secs(60)
        );
        let y = GOOD.replace(
            "        http: http://127.0.0.1:9546\n",
            "        http: http://127.0.0.1:9546\n        tier: fallback\n        state_history: 128\n",
        );
        let y = y.replace(
            "    upstreams:",
            "    head:\n      fallback_probe_interval: 5m\n    upstreams:",
        );
        let c = Config::from_yaml(&y).unwrap();
        let n = &c.networks[0];
        assert_eq!(n.upstreams[1].tier, Tier::Fallback);
        assert_eq!(n.upstreams[1].state_history, Some(128));
        assert_eq!(
            n.head.fallback_probe_interval,
            std::time::Duration::from_secs(300)
        );

        let bad_tier = GOOD.replace(
            "        http: http://127.0.0.1:9546\n",
            "        http: http://127.0.0.1:9546\n        tier: backup\n",
        );
        assert_eq!(err_path(&bad_tier), "networks.mainnet.upstreams[1].tier");
        let huge = GOOD.replace(
            "        http: http://127.0.0.1:9546\n",
            "        http: http://127.0.0.1:9546\n        state_history: 9999999999999\n",
        );
        assert_eq!(
            err_path(&huge),
            "networks.mainnet.upstreams[1].state_history"
        );
        let zero = y.replace("fallback_probe_interval: 5m", "fallback_probe_interval: 0s");
        assert_eq!(
            err_path(&zero),
            "networks.mainnet.head.fallback_probe_interval"
        );
        let only_fallbacks = "networks:\n  m:\n    chain_id: 1\n    upstreams:\n      - name: p\n        http: http://127.0.0.1:1\n        tier: fallback\n";
        assert_eq!(err_path(only_fallbacks), "networks.m.upstreams");
    }

    #[test]
    fn the_websocket_bounds_are_checked() {
        for key in [
            "max_topics_per_connection",
            "max_upstream_subscriptions",
            "ws_max_queued_bytes",
        ] {
            let y = format!("server:\n  {key}: 0\n{GOOD}");
            assert_eq!(err_path(&y), format!("server.{key}"));
        }
        let y = format!("server:\n  ws_max_queued_bytes: 65536\n  max_topics_per_connection: 2\n  max_upstream_subscriptions: 5\n{GOOD}");
        let c = Config::from_yaml(&y).unwrap();
        assert_eq!(c.server.ws_max_queued_bytes, 65536);
        assert_eq!(c.server.max_topics_per_connection, 2);
        assert_eq!(c.server.max_upstream_subscriptions, 5);
    }

    #[test]
    fn the_subscription_cap_is_checked() {
        let y = format!("server:\n  max_subscriptions_per_connection: 0\n{GOOD}");
        assert_eq!(err_path(&y), "server.max_subscriptions_per_connection");
        let y = format!("server:\n  max_subscriptions_per_connection: 3\n{GOOD}");
        let c = Config::from_yaml(&y).unwrap();
        assert_eq!(c.server.max_subscriptions_per_connection, 3);
    }

    #[test]
    fn unknown_keys_name_their_path() {
        let y = GOOD.replace("max_lag_blocks", "max_lag_block");
        assert_eq!(err_path(&y), "networks.mainnet.max_lag_block");
        let y = GOOD.replace("ws: ws", "wss_url: ws");
        assert_eq!(err_path(&y), "networks.mainnet.upstreams[0].wss_url");
    }

    #[test]
    fn bad_values_name_their_path() {
        assert_eq!(
            err_path(&GOOD.replace("http://127.0.0.1:9546", "ftp://x")),
            "networks.mainnet.upstreams[1].http"
        );
        assert_eq!(
            err_path(&GOOD.replace("http://127.0.0.1:9546", "not a url")),
            "networks.mainnet.upstreams[1].http"
        );
        assert_eq!(
            err_path(&GOOD.replace("geth-1", "geth-0")),
            "networks.mainnet.upstreams[1].name"
        );
        assert_eq!(
            err_path(&GOOD.replace("chain_id: 1", "chain_id: one")),
            "networks.mainnet.chain_id"
        );
        assert_eq!(
            err_path(&GOOD.replace("127.0.0.1:8545", "nowhere")),
            "listen"
        );
        let empty = "networks:\n  mainnet:\n    chain_id: 1\n    upstreams: []\n";
        assert_eq!(err_path(empty), "networks.mainnet.upstreams");
        assert_eq!(err_path("listen: 127.0.0.1:1\n"), "networks");
    }

    #[test]
    fn redis_url_is_checked() {
        let c =
            Config::from_yaml(&format!("{GOOD}redis:\n  url: redis://127.0.0.1:6379\n")).unwrap();
        assert_eq!(c.redis.unwrap().url, "redis://127.0.0.1:6379");
        assert_eq!(
            err_path(&format!("{GOOD}redis:\n  url: http://x\n")),
            "redis.url"
        );
        assert_eq!(
            err_path(&format!("{GOOD}redis:\n  host: x\n")),
            "redis.host"
        );
    }

    #[test]
    fn heavy_call_bounds_have_defaults_and_are_checked() {
        use std::time::Duration;
        let c = Config::from_yaml(GOOD).unwrap();
        let n = c.network("mainnet").unwrap();
        assert_eq!(n.max_logs_block_range, 10_000);
        assert_eq!(c.server.max_params_depth, 64);
        assert_eq!(
            n.timeout_for("debug_traceTransaction"),
            Duration::from_secs(120)
        );
        assert_eq!(n.timeout_for("trace_block"), Duration::from_secs(120));
        assert_eq!(n.timeout_for("eth_call"), Duration::from_secs(10));
        let with = |keys: &str| {
            GOOD.replace(
                "    max_lag_blocks: 2\n",
                &format!("    max_lag_blocks: 2\n{keys}"),
            )
        };
        let c = Config::from_yaml(&with(
            "    method_timeouts:\n      eth_*: 1s\n      eth_call: 3s\n      eth_get*: 2s\n",
        ))
        .unwrap();
        let n = c.network("mainnet").unwrap();
        assert_eq!(n.timeout_for("eth_call"), Duration::from_secs(3));
        assert_eq!(n.timeout_for("eth_getLogs"), Duration::from_secs(2));
        assert_eq!(n.timeout_for("eth_chainId"), Duration::from_secs(1));
        // Given, the map replaces the defaults.
        assert_eq!(n.timeout_for("debug_x"), Duration::from_secs(10));
        assert_eq!(
            err_path(&with("    method_timeouts:\n      eth_call: 0s\n")),
            "networks.mainnet.method_timeouts.eth_call"
        );
        assert_eq!(
            err_path(&with("    method_timeouts:\n      'eth-*x': 1s\n")),
            "networks.mainnet.method_timeouts.eth-*x"
        );
        assert_eq!(
            err_path(&with("    max_logs_block_range: 0\n")),
            "networks.mainnet.max_logs_block_range"
        );
        assert_eq!(n.upstream_batch_max, 10);
        assert_eq!(
            err_path(&with("    upstream_batch_max: 1001\n")),
            "networks.mainnet.upstream_batch_max"
        );
        assert_eq!(
            err_path(&format!("{GOOD}server:\n  max_params_depth: 1\n")),
            "server.max_params_depth"
        );
        assert_eq!(
            err_path(&format!(
                "{GOOD}policy:\n  anonymous:\n    max_logs_block_range: 0\n"
            )),
            "policy.anonymous.max_logs_block_range"
        );
        let c = Config::from_yaml(&format!(
            "{GOOD}policy:\n  anonymous:\n    max_logs_block_range: 5\n"
        ))
        .unwrap();
        assert_eq!(c.policy.anonymous.unwrap().max_logs_block_range, Some(5));
    }

    #[test]
    fn discover_groups() {
        let y = "networks:\n  m:\n    chain_id: 1\n    discover:\n      - name: geth\n        dns: geth-headless.web3.svc.cluster.local\n        http_port: 8545\n        ws_port: 8546\n";
        let c = Config::from_yaml(y).unwrap();
        let d = &c.networks[0].discover[0];
        assert_eq!(
            (d.http_port, d.ws_port, d.interval.as_secs()),
            (8545, Some(8546), 10)
        );
        assert!(c.networks[0].upstreams.is_empty());
        assert_eq!(
            err_path(&y.replace("        http_port: 8545\n", "")),
            "networks.m.discover[0].http_port"
        );
        assert_eq!(
            err_path(&y.replace("dns:", "dnss:")),
            "networks.m.discover[0].dnss"
        );
    }

    #[test]
    fn cache_keys_are_checked() {
        let c = Config::from_yaml(GOOD).unwrap();
        let cache = &c.network("mainnet").unwrap().cache;
        assert!(cache.enabled);
        assert_eq!(cache.max_bytes, 256 * 1024 * 1024);
        assert_eq!(cache.max_entry_bytes, 1024 * 1024);
        assert_eq!(cache.confirmations, None);
        assert!(!cache.shared);
        let with =
            |section: &str| GOOD.replace("    upstreams:", &format!("{section}    upstreams:"));
        let c = Config::from_yaml(&with(
            "    cache:\n      max_bytes: 65536\n      confirmations: 3\n",
        ))
        .unwrap();
        let cache = &c.network("mainnet").unwrap().cache;
        assert_eq!(cache.max_bytes, 65536);
        assert_eq!(
            cache.max_entry_bytes, 65536,
            "the entry limit follows a small store"
        );
        assert_eq!(cache.confirmations, Some(3));
        assert_eq!(
            err_path(&with("    cache:\n      max_byte: 1\n")),
            "networks.mainnet.cache.max_byte"
        );
        assert_eq!(
            err_path(&with("    cache:\n      max_bytes: 10\n")),
            "networks.mainnet.cache.max_bytes"
        );
        assert_eq!(
            err_path(&with(
                "    cache:\n      max_bytes: 65536\n      max_entry_bytes: 65537\n"
            )),
            "networks.mainnet.cache.max_entry_bytes"
        );
        assert_eq!(
            err_path(&with("    cache:\n      confirmations: 0\n")),
            "networks.mainnet.cache.confirmations"
        );
        assert_eq!(
            err_path(&with("    cache:\n      confirmations: 100000\n")),
            "networks.mainnet.cache.confirmations"
        );
        assert_eq!(
            err_path(&with("    cache:\n      shared_ttl: 0s\n")),
            "networks.mainnet.cache.shared_ttl"
        );
        // The shared tier lives in the top-level redis.
        let shared = with("    cache:\n      shared: true\n");
        assert_eq!(err_path(&shared), "networks.mainnet.cache.shared");
        let c =
            Config::from_yaml(&format!("{shared}redis:\n  url: redis://127.0.0.1:6379\n")).unwrap();
        assert!(c.network("mainnet").unwrap().cache.shared);
    }

    #[test]
    fn only_one_default() {
        let two = format!(
            "{GOOD}  goerli:\n    chain_id: 5\n    default: true\n    upstreams:\n      - name: a\n        http: http://127.0.0.1:1\n"
        );
        assert_eq!(err_path(&two), "networks.mainnet.default");
    }

    #[test]
    fn variables_expand_in_urls_and_headers_and_errors_hide_secrets() {
        // Names no other test sets; the process environment is shared.
        std::env::set_var("RPCGATE_TEST_EXPAND_KEY", "k3y");
        let y = "networks:\n  mainnet:\n    chain_id: 1\n    upstreams:\n      - name: p\n        http: http://127.0.0.1:1/v1/${RPCGATE_TEST_EXPAND_KEY}\n        ws: ws://127.0.0.1:1/ws/${RPCGATE_TEST_EXPAND_KEY}\n        headers: { X-Api-Key: \"${RPCGATE_TEST_EXPAND_KEY}\" }\n";
        let c = Config::from_yaml(y).unwrap();
        let up = &c.networks[0].upstreams[0];
        assert_eq!(up.http.path(), "/v1/k3y");
        assert_eq!(up.ws.as_ref().unwrap().path(), "/ws/k3y");
        assert_eq!(up.headers["x-api-key"], "k3y");
        assert!(up.headers["x-api-key"].is_sensitive());
        let missing = y.replace(
            "X-Api-Key: \"${RPCGATE_TEST_EXPAND_KEY}",
            "X-Api-Key: \"${RPCGATE_TEST_EXPAND_UNSET}",
        );
        let err = Config::from_yaml(&missing).unwrap_err().to_string();
        assert_eq!(
            err,
            "networks.mainnet.upstreams[0].headers.X-Api-Key: environment variable RPCGATE_TEST_EXPAND_UNSET is not set"
        );
        // A bad URL is quoted as written, never with the secret in it.
        let bad = y.replace("http: http://127.0.0.1:1/v1/", "http: ftp://h/");
        let err = Config::from_yaml(&bad).unwrap_err().to_string();
        assert!(
            err.contains("${RPCGATE_TEST_EXPAND_KEY}") && !err.contains("k3y"),
            "{err}"
        );
    }

    #[test]
    fn cors_origins() {
        use std::time::Duration;
        let with = |cors: &str| format!("server:\n  cors:\n{cors}{GOOD}");
        let c = Config::from_yaml(GOOD).unwrap();
        assert_eq!(c.server.cors.allowed_origins, vec!["*".to_string()]);
        assert_eq!(c.server.cors.max_age, Duration::from_secs(600));
        let c = Config::from_yaml(&with(
            "    allowed_origins: [\"https://*.example.com\", \"http://127.0.0.1:3000\"]\n    max_age: 60s\n",
        ))
        .unwrap();
        assert_eq!(c.server.cors.allowed_origins.len(), 2);
        assert_eq!(c.server.cors.max_age, Duration::from_secs(60));
        assert_eq!(
            err_path(&with("    allowed_origins: [\"*\", \"https://a.com/\"]\n")),
            "server.cors.allowed_origins[1]"
        );
        assert_eq!(
            err_path(&with("    allowed_origins: [\"example.com\"]\n")),
            "server.cors.allowed_origins[0]"
        );
        assert_eq!(
            err_path(&with("    max_age: 90000s\n")),
            "server.cors.max_age"
        );
        assert_eq!(err_path(&with("    origins: []\n")), "server.cors.origins");
    }

    #[test]
    fn compression_settings() {
        use crate::config::ContentCoding::{Br, Deflate, Gzip, Zstd};
        let with = |c: &str| format!("server:\n  compression:\n{c}{GOOD}");
        let c = Config::from_yaml(GOOD).unwrap().server.compression;
        assert!(c.enabled);
        assert_eq!(c.min_bytes, 1024);
        assert_eq!(c.algorithms, vec![Zstd, Br, Gzip]);
        assert_eq!(c.request_encodings, vec![Gzip, Deflate, Br, Zstd]);
        let c = Config::from_yaml(&with(
            "    enabled: false\n    min_bytes: 0\n    algorithms: [gzip, BR]\n    request_encodings: [gzip]\n",
        ))
        .unwrap()
        .server
        .compression;
        assert!(!c.enabled);
        assert_eq!(c.min_bytes, 0);
        assert_eq!(c.algorithms, vec![Gzip, Br]);
        assert_eq!(c.request_encodings, vec![Gzip]);
        for (bad, path) in [
            ("    algorithms: []\n", "server.compression.algorithms"),
            (
                "    algorithms: [gzip, lz4]\n",
                "server.compression.algorithms[1]",
            ),
            (
                "    algorithms: [deflate]\n",
                "server.compression.algorithms[0]",
            ),
            (
                "    algorithms: [br, br]\n",
                "server.compression.algorithms[1]",
            ),
            (
                "    request_encodings: [compress]\n",
                "server.compression.request_encodings[0]",
            ),
            ("    min_bytes: -1\n", "server.compression.min_bytes"),
            ("    level: 9\n", "server.compression.level"),
        ] {
            assert_eq!(err_path(&with(bad)), path, "{bad}");
        }
    }

    #[test]
    fn the_default_admin_port_is_clear_of_prometheus() {
        let c = Config::from_yaml(GOOD).unwrap();
        assert_eq!(c.admin_listen.port(), 8580);
    }
}
