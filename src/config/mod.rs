//! Configuration: the YAML file an operator writes, checked and typed.
//!
//! Loading goes in three steps so that every mistake is reported with the path
//! of the key that caused it, before anything listens:
//! 1. [`raw`]: serde structs that reject unknown keys (the path of a bad key
//!    comes from `serde_path_to_error`);
//! 2. [`validate`]: semantic checks (URLs, names, durations, ranges) and
//!    defaults, producing an immutable [`Config`];
//! 3. the gateway builds its routes (networks, client policy) from that
//!    value and publishes them with one atomic swap (`control::gateway`); a
//!    reload validates a whole new [`Config`] first, so a bad file never
//!    replaces a good one.
//!
//! The `policy:` section (the client policy: keys, tiers, method rules,
//! limits) has its own module, [`client_policy`], for its validation.

mod client_policy;
mod duration;
mod expand;
mod hedge;
mod raw;
mod routes;
mod tls;
mod validate;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

pub use client_policy::{
    canonical_ip, ClientConfig, IpNet, KeyDigest, LimitsConfig, PolicyConfig, Rate, RedisFallback,
    TierConfig,
};
pub use duration::parse_duration;
pub use hedge::{HedgeDelay, HedgeRule, DEFAULT_HEDGE_MAX_EXTRA};
pub use routes::{RouteConfig, RouteFallback};
pub use tls::{ListenerTls, UpstreamTls};

/// A configuration problem, with the dotted path of the key at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
}

impl ConfigError {
    pub(crate) fn invalid(path: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError::Invalid {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// The validated configuration of one gateway process.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    /// Health, readiness and status (and metrics).
    pub admin_listen: SocketAddr,
    pub server: ServerLimits,
    /// Networks in name order.
    pub networks: Vec<NetworkConfig>,
    /// State shared by gateway replicas (rate limits, the cache's shared tier).
    pub redis: Option<RedisConfig>,
    /// Clients, keys, method rules and rate limits.
    pub policy: PolicyConfig,
    pub log: LogConfig,
}

/// `log:`. `RUST_LOG`, then `--log` / `RPCGATE_LOG`, win over `level`; a
/// reload applies a new `level`, while `format` is read at start only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// A tracing filter: `info`, or `warn,rpcgate=debug`.
    pub level: String,
    /// JSON objects, one per line (else human-readable lines).
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

#[derive(Debug, Clone, PartialEq)]
pub struct RedisConfig {
    /// `redis://host:port[/db]`
    pub url: String,
}

/// Limits applied by the HTTP stage, before any call is routed.
#[derive(Debug, Clone)]
pub struct ServerLimits {
    pub max_body_bytes: usize,
    pub max_batch_len: usize,
    pub max_connections: usize,
    pub max_method_len: usize,
    /// Once a batch's answers pass this size, its remaining entries get an error.
    pub max_batch_response_bytes: usize,
    /// Entries of one batch in flight at once.
    pub batch_concurrency: usize,
    /// Time allowed to receive a request's headers, and then its body.
    pub body_read_timeout: Duration,
    /// `eth_subscribe` subscriptions one WebSocket connection may hold.
    pub max_subscriptions_per_connection: usize,
    /// Distinct subscription topics (normalized requests) one WebSocket
    /// connection may hold; a new one past it gets -32005.
    pub max_topics_per_connection: usize,
    /// Upstream subscription feeds over the whole gateway (one per distinct
    /// topic per network); a subscription needing a new one past it gets -32005.
    pub max_upstream_subscriptions: usize,
    /// Bytes queued for one WebSocket client and not yet written; a client
    /// whose queue would pass it is disconnected (1008).
    pub ws_max_queued_bytes: usize,
    /// Params nested deeper than this (arrays and objects) are refused with
    /// -32600 before any backend sees them.
    pub max_params_depth: usize,
    /// From accept to the first complete request head (silent sockets,
    /// half-sent HTTP/2 prefaces): the connection is closed after it.
    pub first_request_timeout: Duration,
    /// A connection with no request in flight and no bytes moving is closed after this.
    pub idle_timeout: Duration,
    /// An answer the client does not take within this closes the connection.
    pub write_timeout: Duration,
    /// TCP keepalive probes on client sockets start after this much silence.
    pub tcp_keepalive: Duration,
    pub http2_max_concurrent_streams: u32,
    /// HTTP/2 PING interval, and how long a PING may go unanswered.
    pub http2_keepalive_interval: Duration,
    pub http2_keepalive_timeout: Duration,
    /// Bytes of one request's header list (HTTP/1 buffer, HTTP/2 SETTINGS).
    pub max_header_list_bytes: usize,
    /// After a 413 or 408, the rest of the body is read and discarded for at
    /// most this long and this many bytes, so the client can read the answer.
    pub lingering_close_timeout: Duration,
    pub lingering_close_bytes: usize,
    /// Bytes of upstream replies being read plus answers being written, for
    /// the whole process (see `crate::memory`).
    pub max_inflight_answer_bytes: usize,
    /// Bytes of request bodies being read and decoded, for the whole process.
    pub max_inflight_request_bytes: usize,
    /// How long a call waits for memory budget before it gets -32005.
    pub memory_wait: Duration,
    /// `server.cors`: which browser origins may call the gateway.
    pub cors: CorsConfig,
    /// Answers over HTTP say which backend served them, whether the cache
    /// did, and how many attempts it took (`X-Rpcgate-*`): for operators
    /// debugging a DApp. Off by default: it names internal backends.
    pub expose_upstream_headers: bool,
    /// `server.compression`: compressed answers and request bodies.
    pub compression: CompressionConfig,
    /// `server.tls`: serve the listener over TLS (read at start; a reload
    /// does not change it, the certificate files are watched on their own).
    pub tls: Option<ListenerTls>,
}

/// `server.compression`. On by default: every browser and most HTTP clients
/// send `Accept-Encoding`, and block and log answers shrink four to five times.
#[derive(Debug, Clone, PartialEq)]
pub struct CompressionConfig {
    /// Answers are compressed at all (request bodies are decoded either way).
    pub enabled: bool,
    /// Answers shorter than this go as they are: below about a kilobyte the
    /// saving is a few hundred bytes and the headers eat part of it.
    pub min_bytes: usize,
    /// The codings answers may use, the first preferred when the client
    /// weighs several equally. Not empty (`enabled: false` turns it off).
    pub algorithms: Vec<ContentCoding>,
    /// The `Content-Encoding`s a request body may carry; any other gets 415.
    /// The body cap applies to the decoded size.
    pub request_encodings: Vec<ContentCoding>,
}

impl Default for CompressionConfig {
    fn default() -> Self {
        CompressionConfig {
            enabled: true,
            min_bytes: 1024,
            algorithms: vec![ContentCoding::Zstd, ContentCoding::Br, ContentCoding::Gzip],
            request_encodings: vec![
                ContentCoding::Gzip,
                ContentCoding::Deflate,
                ContentCoding::Br,
                ContentCoding::Zstd,
            ],
        }
    }
}

/// An HTTP content coding (RFC 9110 section 8.4.1), by its registered token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ContentCoding {
    /// `gzip` (`x-gzip` is taken as the same).
    Gzip,
    /// `deflate`: the zlib format (RFC 1950), as HTTP defines it.
    Deflate,
    /// `br`: Brotli (RFC 7932).
    Br,
    /// `zstd`: Zstandard (RFC 8878), with a window of at most 8 MiB (RFC 9659).
    Zstd,
}

impl ContentCoding {
    pub const ALL: [ContentCoding; 4] = [
        ContentCoding::Gzip,
        ContentCoding::Deflate,
        ContentCoding::Br,
        ContentCoding::Zstd,
    ];

    /// The token in `Accept-Encoding` and `Content-Encoding`.
    pub fn token(self) -> &'static str {
        match self {
            ContentCoding::Gzip => "gzip",
            ContentCoding::Deflate => "deflate",
            ContentCoding::Br => "br",
            ContentCoding::Zstd => "zstd",
        }
    }

    /// The coding a header token names (ASCII case ignored), if any.
    pub fn from_token(token: &str) -> Option<ContentCoding> {
        if token.eq_ignore_ascii_case("x-gzip") {
            return Some(ContentCoding::Gzip);
        }
        Self::ALL
            .into_iter()
            .find(|c| token.eq_ignore_ascii_case(c.token()))
    }
}

/// `server.cors`. A public JSON-RPC endpoint uses no cookies (keys travel in
/// headers or the path), so any origin is allowed by default.
#[derive(Debug, Clone, PartialEq)]
pub struct CorsConfig {
    /// `*`, exact origins (`https://app.example.com`), or globs with one
    /// leading `*.` in the host (`https://*.example.com`). Validated.
    pub allowed_origins: Vec<String>,
    /// How long a browser may keep a preflight's answer.
    pub max_age: Duration,
}

impl Default for CorsConfig {
    fn default() -> Self {
        CorsConfig {
            allowed_origins: vec!["*".into()],
            max_age: Duration::from_secs(600),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct NetworkConfig {
    pub name: String,
    pub chain_id: u64,
    /// Also served at `/`.
    pub default: bool,
    pub max_lag_blocks: u64,
    /// Time limit of one attempt at one backend.
    pub request_timeout: Duration,
    /// Attempts of one read across backends (1 = no retry).
    pub max_attempts: usize,
    /// Consecutive failed requests after which a backend is ejected until a
    /// probe succeeds.
    pub eject_after_failures: u32,
    pub max_response_bytes: usize,
    /// `eth_getLogs` over more blocks is refused before any backend is
    /// asked (a client's own `max_logs_block_range` wins over this).
    pub max_logs_block_range: u64,
    /// Entries of one client batch that go to the same backend are sent
    /// together, at most this many per upstream request (0 or 1: each alone).
    pub upstream_batch_max: usize,
    /// Time limits of one attempt for the methods they match (an exact name
    /// or a `prefix*` glob; the first match wins), else `request_timeout`.
    pub method_timeouts: Vec<(String, Duration)>,
    pub head: HeadConfig,
    pub cache: CacheConfig,
    /// The filters the gateway answers itself (`eth_newFilter` and kin).
    pub filters: FiltersConfig,
    /// Reads of a transaction sent through the gateway go where it was sent.
    pub read_your_writes: ReadYourWritesConfig,
    /// Backends listed in the config.
    pub upstreams: Vec<UpstreamConfig>,
    /// Groups of backends found in DNS (a headless Service), added to `upstreams`.
    pub discover: Vec<DiscoverConfig>,
    /// Methods sent to named upstreams only (see [`RouteConfig`]).
    pub routes: Vec<RouteConfig>,
    /// `hedge:`: reads sent to a second backend when the first is slow
    /// (empty: never; the first entry matching a method wins).
    pub hedge: Vec<HedgeRule>,
}

/// Backends found by resolving a DNS name: one per address.
#[derive(Debug, Clone, PartialEq)]
pub struct DiscoverConfig {
    /// Prefix of the backends' names: `<name>-<address>`.
    pub name: String,
    /// e.g. `geth-headless.web3.svc.cluster.local`
    pub dns: String,
    pub http_port: u16,
    pub ws_port: Option<u16>,
    pub interval: Duration,
    /// The DNS server to ask; the system's resolver when absent.
    pub resolver: Option<SocketAddr>,
}

/// Blocks below the served head whose hashes the cache tracks (its window of
/// the canonical chain). It is a config constant because `confirmations` is
/// validated against it: a deeper binding could never be checked.
pub const CACHE_CANON_WINDOW: u64 = 128;

/// The response cache of one network (see `crate::cache`).
#[derive(Debug, Clone, PartialEq)]
pub struct CacheConfig {
    pub enabled: bool,
    /// Bound of the in-memory store: keys and results, in bytes.
    pub max_bytes: u64,
    /// Larger results are never cached.
    pub max_entry_bytes: usize,
    /// Cache reads of block N once N is this deep below the served head, even
    /// before it is finalized (bound to N's hash). `None`: finalized blocks only.
    pub confirmations: Option<u64>,
    /// Cache reads of a block above finality, `latest` pinned to the served
    /// head included, and fee reads per served head, bound to the block's
    /// hash (a reorg makes them misses). Off: final (or `confirmations`
    /// deep) blocks only.
    pub block_scoped: bool,
    /// Also keep forever-cacheable answers in the shared Redis (`redis.url`).
    pub shared: bool,
    /// How long an entry lives in the shared tier.
    pub shared_ttl: Duration,
    /// Keys longer than this (with the network's prefix) are neither written
    /// to nor read from Redis: a call with huge params cannot fill it.
    pub max_shared_key_bytes: usize,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            enabled: true,
            max_bytes: validate::DEFAULT_CACHE_MAX_BYTES,
            max_entry_bytes: validate::DEFAULT_CACHE_MAX_ENTRY_BYTES as usize,
            confirmations: None,
            block_scoped: true,
            shared: false,
            shared_ttl: Duration::from_secs(24 * 3600),
            max_shared_key_bytes: validate::DEFAULT_MAX_SHARED_KEY_BYTES,
        }
    }
}

/// `networks.<name>.filters`: filters owned by the gateway (see `crate::filters`).
#[derive(Debug, Clone, PartialEq)]
pub struct FiltersConfig {
    /// Off: the filter methods are forwarded to one backend, as before.
    pub enabled: bool,
    /// A filter not polled for this long is dropped (Geth's default: 5 minutes).
    pub expiry: Duration,
    /// Live filters one client (a key's client, or one IP when anonymous) may hold.
    pub max_per_client: usize,
    /// Live filters of this network in all.
    pub max_total: usize,
    /// Blocks one poll covers at most; a filter further behind catches up
    /// over the next polls.
    pub max_poll_blocks: u64,
    /// Pending-transaction hashes kept for pending filters (the newest), and
    /// the most one poll of such a filter returns.
    pub max_pending_hashes: usize,
}

impl Default for FiltersConfig {
    fn default() -> Self {
        FiltersConfig {
            enabled: true,
            expiry: Duration::from_secs(300),
            max_per_client: 100,
            max_total: 10_000,
            max_poll_blocks: 1000,
            max_pending_hashes: 10_000,
        }
    }
}

/// `networks.<name>.read_your_writes` (see `crate::router::ryw`).
#[derive(Debug, Clone, PartialEq)]
pub struct ReadYourWritesConfig {
    /// Off: reads of a sent transaction are routed like any other read.
    pub enabled: bool,
    /// How long a send steers reads at most (the served head including the
    /// transaction ends it sooner).
    pub ttl: Duration,
    /// Sends remembered at once; the oldest is forgotten first.
    pub max_entries: usize,
}

impl Default for ReadYourWritesConfig {
    fn default() -> Self {
        ReadYourWritesConfig {
            enabled: true,
            ttl: Duration::from_secs(60),
            max_entries: 100_000,
        }
    }
}

/// Timing of the head-tracking control loops.
#[derive(Debug, Clone, PartialEq)]
pub struct HeadConfig {
    /// Polling of `latest` when no WebSocket subscription is live.
    pub poll_interval: Duration,
    /// Polling of `latest` while newHeads arrive over WebSocket (a liveness check).
    pub ws_poll_interval: Duration,
    pub finality_poll_interval: Duration,
    pub syncing_poll_interval: Duration,
    pub probe_timeout: Duration,
    /// How often a `tier: fallback` upstream is probed while primaries
    /// serve (one `latest` poll, so a paid quota pays little); while it
    /// serves it is tracked like any other.
    pub fallback_probe_interval: Duration,
}

/// Which upstreams serve a network's calls first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Tier {
    /// Serves whenever it can.
    #[default]
    Primary,
    /// Serves only when no primary can: none is eligible, or every primary
    /// attempt at a call failed (e.g. a hosted provider with a paid quota).
    Fallback,
    /// Serves only the calls of the routes that name it (a relay such as a
    /// private-mempool RPC): no head tracking, no ordinary reads.
    Route,
}

#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamConfig {
    pub name: String,
    /// `${VAR}` already expanded: may hold a secret, never log it.
    pub http: http::Uri,
    pub ws: Option<http::Uri>,
    /// Sent with every request to this upstream only (values marked
    /// sensitive: their `Debug` hides them).
    pub headers: http::HeaderMap,
    pub tier: Tier,
    /// Blocks of state the node keeps below its head (a snap or full node:
    /// 128); `None`: unknown, learned from its answers (an archive node
    /// never teaches a bound).
    pub state_history: Option<u64>,
    /// `tls.ca_file`: roots for its https/wss URLs (else the system's).
    pub tls: Option<UpstreamTls>,
}

impl NetworkConfig {
    /// The time limit of one attempt at one backend for `method`.
    pub fn timeout_for(&self, method: &str) -> Duration {
        if let Some(timeout) = self.route_for(method).and_then(|r| r.timeout) {
            return timeout;
        }
        self.method_timeouts
            .iter()
            .find(|(pattern, _)| match pattern.strip_suffix('*') {
                Some(prefix) => method.starts_with(prefix),
                None => method == pattern,
            })
            .map_or(self.request_timeout, |(_, t)| *t)
    }
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
        let raw: raw::RawConfig = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let path = if path == "." {
                "(top level)".to_string()
            } else {
                path
            };
            ConfigError::invalid(path, e.into_inner().to_string())
        })?;
        validate::validate(raw)
    }

    pub fn network(&self, name: &str) -> Option<&NetworkConfig> {
        self.networks.iter().find(|n| n.name == name)
    }
}
