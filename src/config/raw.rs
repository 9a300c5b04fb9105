//! The YAML schema exactly as operators write it.
//!
//! Every struct rejects unknown keys, so a typo such as `max_lag_block` is an
//! error that names its path instead of a silently ignored setting. Values are
//! kept as written (strings for URLs and durations); `validate` turns this into
//! the typed [`super::Config`] and is the only place that judges them.

use std::collections::BTreeMap;

use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    pub listen: Option<String>,
    pub admin_listen: Option<String>,
    #[serde(default)]
    pub server: RawServer,
    pub networks: Option<BTreeMap<String, RawNetwork>>,
    pub redis: Option<RawRedis>,
    #[serde(default)]
    pub policy: RawPolicy,
    #[serde(default)]
    pub log: RawLog,
}

/// `log:`: what the process logs, and how.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLog {
    pub level: Option<String>,
    pub format: Option<String>,
    pub refusals_per_second: Option<u64>,
    pub refusals_summary_interval: Option<String>,
}

/// `policy:`: who may call what, and how often (see `config::policy`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPolicy {
    pub trusted_proxies: Option<Vec<String>>,
    pub max_connections_per_ip: Option<u64>,
    pub redis_fallback: Option<String>,
    pub redis_timeout: Option<String>,
    pub default_cost: Option<u64>,
    pub costs: Option<BTreeMap<String, u64>>,
    pub anonymous: Option<RawAnonymous>,
    pub clients: Option<BTreeMap<String, RawClient>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAnonymous {
    pub enabled: Option<bool>,
    pub allow: Option<Vec<String>>,
    pub deny: Option<Vec<String>>,
    pub limits: Option<RawLimits>,
    pub max_logs_block_range: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawClient {
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
pub(super) struct RawLimits {
    pub requests_per_second: Option<f64>,
    pub burst: Option<u64>,
    pub compute_units_per_second: Option<f64>,
    pub compute_burst: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRedis {
    pub url: Option<String>,
}

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
    #[serde(default)]
    pub cors: RawCors,
    #[serde(default)]
    pub compression: RawCompression,
    pub tls: Option<RawListenerTls>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCompression {
    pub enabled: Option<bool>,
    pub min_bytes: Option<u64>,
    pub algorithms: Option<Vec<String>>,
    pub request_encodings: Option<Vec<String>>,
}

/// `server.tls`: the listener's certificate and key (PEM files).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawListenerTls {
    pub cert_file: Option<String>,
    pub key_file: Option<String>,
    pub reload_interval: Option<String>,
}

/// An upstream's `tls`: whom to trust for its https:// and wss:// URLs.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawUpstreamTls {
    pub ca_file: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCors {
    pub allowed_origins: Option<Vec<String>>,
    pub max_age: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNetwork {
    pub chain_id: Option<u64>,
    #[serde(default)]
    pub default: bool,
    pub max_lag_blocks: Option<u64>,
    pub request_timeout: Option<String>,
    pub max_attempts: Option<u64>,
    pub eject_after_failures: Option<u64>,
    pub max_response_bytes: Option<u64>,
    pub max_logs_block_range: Option<u64>,
    pub upstream_batch_max: Option<u64>,
    pub method_timeouts: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub head: RawHead,
    #[serde(default)]
    pub cache: RawCache,
    #[serde(default)]
    pub filters: RawFilters,
    #[serde(default)]
    pub read_your_writes: RawReadYourWrites,
    pub upstreams: Option<Vec<RawUpstream>>,
    pub discover: Option<Vec<RawDiscover>>,
    pub routes: Option<Vec<super::routes::RawRoute>>,
    pub hedge: Option<Vec<RawHedge>>,
}

/// One entry of `hedge:` (see `config::hedge`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHedge {
    pub methods: Option<Vec<String>>,
    pub delay: Option<String>,
    pub max_extra: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDiscover {
    pub name: Option<String>,
    pub dns: Option<String>,
    pub http_port: Option<u16>,
    pub ws_port: Option<u16>,
    pub interval: Option<String>,
    pub resolver: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCache {
    pub enabled: Option<bool>,
    pub max_bytes: Option<u64>,
    pub max_entry_bytes: Option<u64>,
    pub confirmations: Option<u64>,
    pub block_scoped: Option<bool>,
    pub shared: Option<bool>,
    pub shared_ttl: Option<String>,
    pub max_shared_key_bytes: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFilters {
    pub enabled: Option<bool>,
    pub expiry: Option<String>,
    pub max_per_client: Option<u64>,
    pub max_total: Option<u64>,
    pub max_poll_blocks: Option<u64>,
    pub max_pending_hashes: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawReadYourWrites {
    pub enabled: Option<bool>,
    pub ttl: Option<String>,
    pub max_entries: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHead {
    pub poll_interval: Option<String>,
    pub ws_poll_interval: Option<String>,
    pub finality_poll_interval: Option<String>,
    pub syncing_poll_interval: Option<String>,
    pub probe_timeout: Option<String>,
    pub fallback_probe_interval: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawUpstream {
    pub name: Option<String>,
    pub http: Option<String>,
    pub ws: Option<String>,
    pub headers: Option<std::collections::BTreeMap<String, String>>,
    pub tier: Option<String>,
    pub state_history: Option<u64>,
    pub tls: Option<RawUpstreamTls>,
}
