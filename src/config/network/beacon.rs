//! `networks.<name>` with `kind: beacon`: a consensus-layer network, its
//! beacon nodes and how their health is judged.
//!
//! A beacon network shares the `networks:` map with the execution networks
//! (one name space of paths), so its raw shape is the same serde struct; the
//! keys that mean something only for JSON-RPC are refused here by name, so
//! an operator who forgot `kind: beacon` (or added it to the wrong network)
//! reads which key does not belong instead of a generic serde error.

use std::net::SocketAddr;
use std::time::Duration;

use super::beacon_paths::{self, BeaconPathsConfig};
use super::upstream::{url, RawUpstream};
use super::RawNetwork;
use crate::config::error::{address, Checks};

/// What a network speaks: `kind:`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::config) enum NetworkKind {
    Execution,
    Beacon,
}

impl NetworkKind {
    /// `kind:` as written (absent: execution); an unknown kind is recorded
    /// and judged as execution, so the rest of the network is still checked.
    pub(in crate::config) fn of(c: &mut Checks, name: &str, raw: &RawNetwork) -> NetworkKind {
        match raw.kind.as_deref() {
            None | Some("execution") => NetworkKind::Execution,
            Some("beacon") => NetworkKind::Beacon,
            Some(other) => {
                c.fail(
                    format!("networks.{name}.kind"),
                    format!(
                        "{other:?} is not a network kind: use execution (the default) or beacon"
                    ),
                );
                NetworkKind::Execution
            }
        }
    }
}

/// A beacon network as the gateway runs it.
#[derive(Debug, Clone, PartialEq)]
pub struct BeaconNetworkConfig {
    pub name: String,
    /// Its own listener, serving `/eth/...` (besides `/<name>/eth/...` on
    /// the main one).
    pub listen: Option<SocketAddr>,
    /// A node more slots behind the agreed head serves nothing.
    pub max_lag_slots: u64,
    /// How often each node's health and head are read.
    pub poll_interval: Duration,
    /// Time limit of one request to one node.
    pub request_timeout: Duration,
    pub max_response_bytes: usize,
    pub upstreams: Vec<BeaconNodeConfig>,
    pub events: BeaconEventsConfig,
    /// The operator's allowlist additions (a reload applies them).
    pub paths: BeaconPathsConfig,
    /// Whether `/readyz` fails while this network has no eligible node
    /// (default false: a syncing beacon node does not take the JSON-RPC
    /// front out of the Service; a reload applies it).
    pub ready_required: bool,
}

impl BeaconNetworkConfig {
    /// This network without the keys a reload applies (`paths`,
    /// `ready_required`): what only a restart can change.
    pub fn restart_part(&self) -> BeaconNetworkConfig {
        BeaconNetworkConfig {
            paths: BeaconPathsConfig::default(),
            ready_required: false,
            ..self.clone()
        }
    }
}

/// `events:` of a beacon network: the event streams it serves.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BeaconEventsConfig {
    /// A comment line sent on a client's stream when nothing else was, so
    /// proxies do not cut an idle stream.
    pub keepalive: Duration,
    /// Client streams open at once in this network; one more is refused (429).
    pub max_streams: usize,
    /// Events one client may be behind; a client further behind is cut.
    pub client_queue: usize,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(in crate::config) struct RawEvents {
    pub keepalive: Option<String>,
    pub max_streams: Option<u64>,
    pub client_queue: Option<u64>,
}

/// One beacon node: `upstreams[i]` of a beacon network.
#[derive(Debug, Clone, PartialEq)]
pub struct BeaconNodeConfig {
    pub name: String,
    /// Its REST API base URL (`${VAR}` already expanded: never log it).
    pub http: http::Uri,
}

struct Defaults;

impl Defaults {
    const MAX_LAG_SLOTS: u64 = 2;
    const POLL_INTERVAL: Duration = Duration::from_secs(1);
    /// Block production and state reads can take seconds on a busy node.
    const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
    /// A mainnet state as JSON is far larger; states are debug reads, closed by default.
    const MAX_RESPONSE_BYTES: u64 = 64 * 1024 * 1024;
    const EVENTS_KEEPALIVE: Duration = Duration::from_secs(15);
    const EVENTS_MAX_STREAMS: u64 = 10_000;
    /// Events of a few slots at mainnet rates of `head`, `block` and the rest.
    const EVENTS_CLIENT_QUEUE: u64 = 256;
}

/// Checks a `kind: beacon` network.
pub(in crate::config) fn validate(
    c: &mut Checks,
    name: &str,
    raw: RawNetwork,
) -> BeaconNetworkConfig {
    let net = format!("networks.{name}");
    let at = |key: &str| format!("{net}.{key}");
    let execution_only = [
        ("chain_id", raw.chain_id.is_some()),
        ("default", raw.default),
        ("max_lag_blocks", raw.max_lag_blocks.is_some()),
        ("max_attempts", raw.max_attempts.is_some()),
        ("eject_after_failures", raw.eject_after_failures.is_some()),
        ("max_logs_block_range", raw.max_logs_block_range.is_some()),
        ("upstream_batch_max", raw.upstream_batch_max.is_some()),
        (
            "upstream_max_in_flight",
            raw.upstream_max_in_flight.is_some(),
        ),
        ("saturated_batch_max", raw.saturated_batch_max.is_some()),
        (
            "saturated_batch_max_bytes",
            raw.saturated_batch_max_bytes.is_some(),
        ),
        ("method_timeouts", raw.method_timeouts.is_some()),
        ("head", raw.head.is_some()),
        ("cache", raw.cache.is_some()),
        ("filters", raw.filters.is_some()),
        ("read_your_writes", raw.read_your_writes.is_some()),
        ("discover", raw.discover.is_some()),
        ("routes", raw.routes.is_some()),
        ("hedge", raw.hedge.is_some()),
    ];
    let raw_events = raw.events.unwrap_or_default();
    let events = BeaconEventsConfig {
        keepalive: c.duration(
            &at("events.keepalive"),
            raw_events.keepalive.as_deref(),
            Defaults::EVENTS_KEEPALIVE,
        ),
        max_streams: c.range(
            &at("events.max_streams"),
            raw_events.max_streams,
            Defaults::EVENTS_MAX_STREAMS,
            1,
            1_000_000,
        ) as usize,
        client_queue: c.range(
            &at("events.client_queue"),
            raw_events.client_queue,
            Defaults::EVENTS_CLIENT_QUEUE,
            1,
            65_536,
        ) as usize,
    };
    for (key, _) in execution_only.iter().filter(|(_, given)| *given) {
        c.fail(
            at(key),
            "is a key of execution (JSON-RPC) networks; a beacon network has kind, listen, max_lag_slots, poll_interval, request_timeout, max_response_bytes, events, paths, ready_required and upstreams",
        );
    }
    let listen = raw
        .listen
        .as_deref()
        .and_then(|l| c.ok(address(&at("listen"), l)));
    let raw_upstreams = raw.upstreams.unwrap_or_default();
    if raw_upstreams.is_empty() {
        c.fail(at("upstreams"), "at least one beacon node is required");
    }
    let mut upstreams: Vec<BeaconNodeConfig> = Vec::with_capacity(raw_upstreams.len());
    for (i, u) in raw_upstreams.into_iter().enumerate() {
        if let Some(node) = node(c, &format!("{net}.upstreams[{i}]"), u) {
            if upstreams.iter().any(|n| n.name == node.name) {
                c.fail(
                    format!("{net}.upstreams[{i}].name"),
                    format!("duplicate upstream name {:?}", node.name),
                );
            }
            upstreams.push(node);
        }
    }
    BeaconNetworkConfig {
        name: name.to_string(),
        listen,
        max_lag_slots: c.range(
            &at("max_lag_slots"),
            raw.max_lag_slots,
            Defaults::MAX_LAG_SLOTS,
            0,
            10_000,
        ),
        poll_interval: c.duration(
            &at("poll_interval"),
            raw.poll_interval.as_deref(),
            Defaults::POLL_INTERVAL,
        ),
        request_timeout: c.duration(
            &at("request_timeout"),
            raw.request_timeout.as_deref(),
            Defaults::REQUEST_TIMEOUT,
        ),
        max_response_bytes: c.range(
            &at("max_response_bytes"),
            raw.max_response_bytes,
            Defaults::MAX_RESPONSE_BYTES,
            1024,
            1 << 32,
        ) as usize,
        upstreams,
        events,
        paths: beacon_paths::validate(c, &net, raw.paths),
        ready_required: raw.ready_required.unwrap_or(false),
    }
}

/// One beacon node: a name and an http(s) URL; the execution upstream's
/// other keys are refused by name.
fn node(c: &mut Checks, at: &str, raw: RawUpstream) -> Option<BeaconNodeConfig> {
    let foreign = [
        ("ws", raw.ws.is_some()),
        ("headers", raw.headers.is_some()),
        ("tier", raw.tier.is_some()),
        ("state_history", raw.state_history.is_some()),
        ("tls", raw.tls.is_some()),
    ];
    for (key, _) in foreign.iter().filter(|(_, given)| *given) {
        c.fail(
            format!("{at}.{key}"),
            "is not a key of a beacon node (it has name and http)",
        );
    }
    let name = raw.name.filter(|n| !n.trim().is_empty());
    if name.is_none() {
        c.fail(format!("{at}.name"), "is required");
    }
    let http = match raw.http {
        None => {
            c.fail(
                format!("{at}.http"),
                "is required (the node's REST API base URL, e.g. http://beacon-0:5052)",
            );
            None
        }
        Some(t) => c.ok(url(&format!("{at}.http"), &t, "http")),
    };
    if http
        .as_ref()
        .is_some_and(|h| h.scheme_str() == Some("https"))
    {
        c.fail(
            format!("{at}.http"),
            "https beacon nodes are not supported yet: use http:// (inside the cluster)",
        );
    }
    Some(BeaconNodeConfig {
        name: name?,
        http: http?,
    })
}
