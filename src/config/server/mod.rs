//! `listen`, `admin_listen` and `server:`: the client-facing listeners and
//! what they allow per request.
//!
//! The keys fall in two types by *when they are read*, so the reload rule is
//! visible in the types:
//! - [`ListenerConfig`]: read once, when the listeners bind and build their
//!   HTTP/1 and h2 connection settings; a reload that changes one of these
//!   keys takes no effect until a restart, and says so
//!   ([`super::Config::restart_only_changes`]).
//! - [`ServerConfig`]: read per request from the routes the gateway
//!   publishes, so a reload applies it to the next request.
//!
//! `server.body_read_timeout` feeds both: hyper's header read timeout is set
//! at bind, the body read per request.

mod compression;
mod cors;
#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;

use super::error::{address, Checks};
use super::tls::{ListenerTls, RawListenerTls};

pub use compression::{CompressionConfig, ContentCoding};
pub(super) use cors::origin_pattern_ok;
pub use cors::CorsConfig;

/// `server:` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawServer {
    pub max_body_bytes: Option<u64>,
    pub max_batch_len: Option<u64>,
    pub max_connections: Option<u64>,
    pub max_method_len: Option<u64>,
    pub max_batch_response_bytes: Option<u64>,
    pub batch_concurrency: Option<u64>,
    pub body_read_timeout: Option<String>,
    pub max_subscriptions_per_connection: Option<u64>,
    pub max_topics_per_connection: Option<u64>,
    pub max_upstream_subscriptions: Option<u64>,
    pub ws_max_queued_bytes: Option<u64>,
    pub ws_max_frame_bytes: Option<u64>,
    pub ws_frame_timeout: Option<String>,
    pub max_params_depth: Option<u64>,
    pub first_request_timeout: Option<String>,
    pub idle_timeout: Option<String>,
    pub write_timeout: Option<String>,
    pub tcp_keepalive: Option<String>,
    pub http2_max_concurrent_streams: Option<u64>,
    pub http2_keepalive_interval: Option<String>,
    pub http2_keepalive_timeout: Option<String>,
    pub max_header_list_bytes: Option<u64>,
    pub lingering_close_timeout: Option<String>,
    pub lingering_close_bytes: Option<u64>,
    pub expose_upstream_headers: Option<bool>,
    pub max_inflight_answer_bytes: Option<u64>,
    pub max_inflight_request_bytes: Option<u64>,
    pub memory_wait: Option<String>,
    pub admin_hosts: Option<Vec<String>>,
    pub admin_max_connections: Option<u64>,
    pub runtime: Option<String>,
    #[serde(default)]
    pub cors: cors::RawCors,
    #[serde(default)]
    pub compression: compression::RawCompression,
    pub tls: Option<RawListenerTls>,
}

/// What the listeners read once, when they bind (a reload does not change it).
#[derive(Debug, Clone, PartialEq)]
pub struct ListenerConfig {
    /// `listen`: the JSON-RPC listener (HTTP and WebSocket).
    pub listen: SocketAddr,
    /// `admin_listen`: health, readiness, status and metrics.
    pub admin_listen: SocketAddr,
    /// `server.max_connections`: open client connections at once.
    pub max_connections: usize,
    /// `server.admin_max_connections`: open admin connections at once; past
    /// it a connection gets 503 and is closed.
    pub admin_max_connections: usize,
    /// `server.body_read_timeout`, as hyper's limit on reading a request head.
    pub header_read_timeout: Duration,
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
    /// `server.tls`: serve the listener over TLS (the certificate files are
    /// watched on their own, see `config::tls`).
    pub tls: Option<ListenerTls>,
    /// `server.runtime`: which threads serve client connections.
    pub runtime: RuntimeLayout,
}

/// `server.runtime`: how client connections are spread over threads.
///
/// Control loops (head tracking, health, reload, the admin listener) run on
/// the process's own runtime either way; only the request path moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuntimeLayout {
    /// `shared` (the default): one work-stealing runtime for everything.
    Shared,
    /// `per_core`: one single-threaded runtime per core, each accepting on
    /// its own socket of the listen address (`SO_REUSEPORT`, the kernel
    /// spreads connections), so a request is read, answered and written by
    /// one thread without waking another.
    PerCore,
}

impl Default for ListenerConfig {
    fn default() -> Self {
        ListenerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8545)),
            // 8580, not 9090: 9090 is Prometheus's own default, and the two often share a host.
            admin_listen: SocketAddr::from(([127, 0, 0, 1], 8580)),
            max_connections: 10_000,
            admin_max_connections: 32,
            header_read_timeout: ServerConfig::default().body_read_timeout,
            first_request_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            write_timeout: Duration::from_secs(30),
            tcp_keepalive: Duration::from_secs(60),
            http2_max_concurrent_streams: 32,
            http2_keepalive_interval: Duration::from_secs(20),
            http2_keepalive_timeout: Duration::from_secs(10),
            max_header_list_bytes: 64 * 1024,
            tls: None,
            runtime: RuntimeLayout::Shared,
        }
    }
}

/// `server:` keys read per request from the published routes: a reload
/// applies them to the next request.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    pub max_body_bytes: usize,
    pub max_batch_len: usize,
    pub max_method_len: usize,
    /// Once a batch's answers pass this size, its remaining entries get an error.
    pub max_batch_response_bytes: usize,
    /// Entries of one batch in flight at once.
    pub batch_concurrency: usize,
    /// Time allowed to receive a request's body (see [`ListenerConfig`] for its head).
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
    /// The largest WebSocket frame a client may send (a larger message comes
    /// in fragments): what one frame header can make the gateway allocate.
    pub ws_max_frame_bytes: usize,
    /// A WebSocket frame not complete this long after its first byte closes
    /// the connection (1008).
    pub ws_frame_timeout: Duration,
    /// Params nested deeper than this (arrays and objects) are refused with
    /// -32600 before any backend sees them.
    pub max_params_depth: usize,
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
    /// `server.admin_hosts`: host names the admin listener answers to
    /// besides `localhost` and IP literals (lower case, without port).
    pub admin_hosts: Vec<String>,
}

/// `server.max_inflight_answer_bytes` and `server.max_inflight_request_bytes`: 256 MiB.
const DEFAULT_MAX_INFLIGHT_BYTES: usize = 256 * 1024 * 1024;

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_body_bytes: 5 * 1024 * 1024,
            max_batch_len: 100,
            max_method_len: 128,
            max_batch_response_bytes: 25 * 1024 * 1024,
            batch_concurrency: 8,
            body_read_timeout: Duration::from_secs(30),
            max_subscriptions_per_connection: 100,
            max_topics_per_connection: 16,
            max_upstream_subscriptions: 1000,
            ws_max_queued_bytes: 16 * 1024 * 1024,
            ws_max_frame_bytes: 128 * 1024,
            ws_frame_timeout: Duration::from_secs(10),
            max_params_depth: 64,
            lingering_close_timeout: Duration::from_secs(2),
            lingering_close_bytes: 16 * 1024 * 1024,
            max_inflight_answer_bytes: DEFAULT_MAX_INFLIGHT_BYTES,
            max_inflight_request_bytes: DEFAULT_MAX_INFLIGHT_BYTES,
            memory_wait: Duration::from_secs(2),
            cors: CorsConfig::default(),
            expose_upstream_headers: false,
            compression: CompressionConfig::default(),
            admin_hosts: Vec::new(),
        }
    }
}

/// Checks `listen`, `admin_listen` and `server:`.
pub(super) fn validate(
    c: &mut Checks,
    listen: Option<&str>,
    admin_listen: Option<&str>,
    raw: RawServer,
) -> (ListenerConfig, ServerConfig) {
    let (dl, ds) = (ListenerConfig::default(), ServerConfig::default());
    let at = |k: &str| format!("server.{k}");
    // A bounded count as `usize` (every bound here fits in one).
    let count = |c: &mut Checks, key: &str, v: Option<u64>, d: usize, min: u64, max: u64| {
        c.range(&at(key), v, d as u64, min, max) as usize
    };
    let server = ServerConfig {
        max_body_bytes: count(
            c,
            "max_body_bytes",
            raw.max_body_bytes,
            ds.max_body_bytes,
            1,
            1 << 30,
        ),
        max_batch_len: count(
            c,
            "max_batch_len",
            raw.max_batch_len,
            ds.max_batch_len,
            1,
            100_000,
        ),
        max_method_len: count(
            c,
            "max_method_len",
            raw.max_method_len,
            ds.max_method_len,
            8,
            4096,
        ),
        max_batch_response_bytes: count(
            c,
            "max_batch_response_bytes",
            raw.max_batch_response_bytes,
            ds.max_batch_response_bytes,
            1024,
            1 << 32,
        ),
        batch_concurrency: count(
            c,
            "batch_concurrency",
            raw.batch_concurrency,
            ds.batch_concurrency,
            1,
            1000,
        ),
        body_read_timeout: c.duration(
            &at("body_read_timeout"),
            raw.body_read_timeout.as_deref(),
            ds.body_read_timeout,
        ),
        max_subscriptions_per_connection: count(
            c,
            "max_subscriptions_per_connection",
            raw.max_subscriptions_per_connection,
            ds.max_subscriptions_per_connection,
            1,
            100_000,
        ),
        max_topics_per_connection: count(
            c,
            "max_topics_per_connection",
            raw.max_topics_per_connection,
            ds.max_topics_per_connection,
            1,
            100_000,
        ),
        max_upstream_subscriptions: count(
            c,
            "max_upstream_subscriptions",
            raw.max_upstream_subscriptions,
            ds.max_upstream_subscriptions,
            1,
            1_000_000,
        ),
        ws_max_queued_bytes: count(
            c,
            "ws_max_queued_bytes",
            raw.ws_max_queued_bytes,
            ds.ws_max_queued_bytes,
            1024,
            1 << 32,
        ),
        ws_max_frame_bytes: count(
            c,
            "ws_max_frame_bytes",
            raw.ws_max_frame_bytes,
            ds.ws_max_frame_bytes,
            1024,
            1 << 30,
        ),
        ws_frame_timeout: c.duration(
            &at("ws_frame_timeout"),
            raw.ws_frame_timeout.as_deref(),
            ds.ws_frame_timeout,
        ),
        max_params_depth: count(
            c,
            "max_params_depth",
            raw.max_params_depth,
            ds.max_params_depth,
            2,
            1024,
        ),
        lingering_close_timeout: c.duration(
            &at("lingering_close_timeout"),
            raw.lingering_close_timeout.as_deref(),
            ds.lingering_close_timeout,
        ),
        lingering_close_bytes: count(
            c,
            "lingering_close_bytes",
            raw.lingering_close_bytes,
            ds.lingering_close_bytes,
            0,
            1 << 30,
        ),
        max_inflight_answer_bytes: count(
            c,
            "max_inflight_answer_bytes",
            raw.max_inflight_answer_bytes,
            ds.max_inflight_answer_bytes,
            1 << 20,
            1 << 40,
        ),
        max_inflight_request_bytes: count(
            c,
            "max_inflight_request_bytes",
            raw.max_inflight_request_bytes,
            ds.max_inflight_request_bytes,
            1 << 20,
            1 << 40,
        ),
        memory_wait: c.duration(
            &at("memory_wait"),
            raw.memory_wait.as_deref(),
            ds.memory_wait,
        ),
        cors: cors::validate(c, raw.cors),
        expose_upstream_headers: raw
            .expose_upstream_headers
            .unwrap_or(ds.expose_upstream_headers),
        compression: compression::validate(c, raw.compression),
        admin_hosts: admin_hosts(c, raw.admin_hosts.unwrap_or_default()),
    };
    let listener = ListenerConfig {
        listen: listen
            .and_then(|t| c.ok(address("listen", t)))
            .unwrap_or(dl.listen),
        admin_listen: admin_listen
            .and_then(|t| c.ok(address("admin_listen", t)))
            .unwrap_or(dl.admin_listen),
        max_connections: count(
            c,
            "max_connections",
            raw.max_connections,
            dl.max_connections,
            1,
            10_000_000,
        ),
        admin_max_connections: count(
            c,
            "admin_max_connections",
            raw.admin_max_connections,
            dl.admin_max_connections,
            1,
            100_000,
        ),
        header_read_timeout: server.body_read_timeout,
        first_request_timeout: c.duration(
            &at("first_request_timeout"),
            raw.first_request_timeout.as_deref(),
            dl.first_request_timeout,
        ),
        idle_timeout: c.duration(
            &at("idle_timeout"),
            raw.idle_timeout.as_deref(),
            dl.idle_timeout,
        ),
        write_timeout: c.duration(
            &at("write_timeout"),
            raw.write_timeout.as_deref(),
            dl.write_timeout,
        ),
        tcp_keepalive: c.duration(
            &at("tcp_keepalive"),
            raw.tcp_keepalive.as_deref(),
            dl.tcp_keepalive,
        ),
        http2_max_concurrent_streams: count(
            c,
            "http2_max_concurrent_streams",
            raw.http2_max_concurrent_streams,
            dl.http2_max_concurrent_streams as usize,
            1,
            1000,
        ) as u32,
        http2_keepalive_interval: c.duration(
            &at("http2_keepalive_interval"),
            raw.http2_keepalive_interval.as_deref(),
            dl.http2_keepalive_interval,
        ),
        http2_keepalive_timeout: c.duration(
            &at("http2_keepalive_timeout"),
            raw.http2_keepalive_timeout.as_deref(),
            dl.http2_keepalive_timeout,
        ),
        max_header_list_bytes: count(
            c,
            "max_header_list_bytes",
            raw.max_header_list_bytes,
            dl.max_header_list_bytes,
            8192,
            1 << 20,
        ),
        tls: raw.tls.and_then(|t| super::tls::listener(c, t)),
        runtime: runtime_layout(c, raw.runtime.as_deref()),
    };
    (listener, server)
}

/// `server.runtime`: `shared` or `per_core`.
fn runtime_layout(c: &mut Checks, raw: Option<&str>) -> RuntimeLayout {
    match raw {
        None | Some("shared") => RuntimeLayout::Shared,
        Some("per_core") => RuntimeLayout::PerCore,
        Some(other) => {
            c.fail(
                "server.runtime",
                format!("{other:?} is not a runtime layout (shared or per_core)"),
            );
            RuntimeLayout::Shared
        }
    }
}

/// `server.admin_hosts`: plain DNS names (letters, digits, '-', '.'), kept
/// in lower case; a port or a scheme is a mistake worth naming.
fn admin_hosts(c: &mut Checks, raw: Vec<String>) -> Vec<String> {
    let mut hosts = Vec::with_capacity(raw.len());
    for (i, host) in raw.into_iter().enumerate() {
        let ok = !host.is_empty()
            && host.len() <= 253
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
        if ok {
            hosts.push(host.to_ascii_lowercase());
        } else {
            c.fail(
                format!("server.admin_hosts[{i}]"),
                format!("{host:?} is not a host name (no scheme, port or path: e.g. rpcgate-admin.monitoring.svc)"),
            );
        }
    }
    hosts
}
