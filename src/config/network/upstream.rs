//! `networks.<name>.upstreams[i]`: one backend as listed in the file, and
//! `discover[i]`: a group of backends found in DNS.

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;

use crate::config::error::{address, Checks, Problem};
use crate::config::tls::{RawUpstreamTls, UpstreamTls};

/// `state_history` above this is a typo: an archive node is written by leaving it out.
const MAX_STATE_HISTORY: u64 = 1 << 40;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(in crate::config) struct RawUpstream {
    pub name: Option<String>,
    pub http: Option<String>,
    pub ws: Option<String>,
    pub headers: Option<std::collections::BTreeMap<String, String>>,
    pub tier: Option<String>,
    pub state_history: Option<u64>,
    pub tls: Option<RawUpstreamTls>,
}

/// Which upstreams serve a network's calls first (`tier:`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UpstreamTier {
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
    pub tier: UpstreamTier,
    /// Blocks of state the node keeps below its head (a snap or full node:
    /// 128); `None`: unknown, learned from its answers (an archive node
    /// never teaches a bound).
    pub state_history: Option<u64>,
    /// `tls.ca_file`: roots for its https/wss URLs (else the system's).
    pub tls: Option<UpstreamTls>,
}

/// Checks one upstream. An upstream with problems still comes back (with
/// stand-ins for what was wrong), so that checks naming it (routes,
/// duplicate names) judge the rest of the file as written.
pub(super) fn validate(c: &mut Checks, at: &str, raw: RawUpstream) -> UpstreamConfig {
    let name = raw
        .name
        .filter(|n| !n.trim().is_empty())
        .unwrap_or_else(|| {
            c.fail(format!("{at}.name"), "is required");
            String::new()
        });
    let http = match raw.http {
        None => {
            c.fail(
                format!("{at}.http"),
                "is required (the node's HTTP JSON-RPC URL)",
            );
            None
        }
        Some(t) => c.ok(url(&format!("{at}.http"), &t, "http")),
    };
    let ws = raw
        .ws
        .and_then(|ws| c.ok(url(&format!("{at}.ws"), &ws, "ws")));
    let uses_tls = http
        .as_ref()
        .is_some_and(|h| h.scheme_str() == Some("https"))
        || ws.as_ref().is_some_and(|w| w.scheme_str() == Some("wss"));
    let tls = c
        .ok(crate::config::tls::upstream(at, raw.tls, uses_tls))
        .flatten();
    let mut headers = http::HeaderMap::new();
    for (key, template) in raw.headers.unwrap_or_default() {
        let at = format!("{at}.headers.{key}");
        if let Some((name, value)) = c.ok(header(&at, &key, &template)) {
            headers.insert(name, value);
        }
    }
    let tier = match raw.tier.as_deref() {
        None | Some("primary") => UpstreamTier::Primary,
        Some("fallback") => UpstreamTier::Fallback,
        Some("route") => UpstreamTier::Route,
        Some(other) => {
            c.fail(
                format!("{at}.tier"),
                format!("{other:?} is not a tier: use primary (the default), fallback or route"),
            );
            UpstreamTier::Primary
        }
    };
    let state_history = raw.state_history.map(|n| {
        c.range(
            &format!("{at}.state_history"),
            Some(n),
            0,
            0,
            MAX_STATE_HISTORY,
        )
    });
    UpstreamConfig {
        name,
        http: http.unwrap_or_else(|| http::Uri::from_static("http://invalid")),
        ws,
        headers,
        tier,
        state_history,
        tls,
    }
}

fn header(
    at: &str,
    key: &str,
    template: &str,
) -> Result<(http::HeaderName, http::HeaderValue), Problem> {
    let name = http::HeaderName::from_bytes(key.as_bytes())
        .map_err(|_| Problem::new(at, "is not a valid header name"))?;
    let value = crate::config::expand::from_env(at, template)?;
    let mut value = http::HeaderValue::from_str(&value)
        .map_err(|_| Problem::new(at, format!("{template:?} is not a valid header value")))?;
    value.set_sensitive(true);
    Ok((name, value))
}

/// Parses `template` (with `${VAR}` expanded) as a URL of `scheme` or its
/// TLS form (`https`, `wss`); errors quote the template, never the expanded
/// text.
pub(super) fn url(at: &str, template: &str, scheme: &str) -> Result<http::Uri, Problem> {
    let bad = |why: &str| Problem::new(at, format!("{template:?} {why}"));
    let text = crate::config::expand::from_env(at, template)?;
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(in crate::config) struct RawDiscover {
    pub name: Option<String>,
    pub dns: Option<String>,
    pub http_port: Option<u16>,
    pub ws_port: Option<u16>,
    pub interval: Option<String>,
    pub resolver: Option<String>,
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

/// `discover[i].interval` when absent.
const DEFAULT_DISCOVER_INTERVAL: Duration = Duration::from_secs(10);

pub(super) fn discover(c: &mut Checks, at: &str, raw: RawDiscover) -> Option<DiscoverConfig> {
    let key = |k: &str| format!("{at}.{k}");
    let name = raw.name.filter(|n| !n.trim().is_empty());
    if name.is_none() {
        c.fail(key("name"), "is required");
    }
    let dns = raw.dns.filter(|d| !d.trim().is_empty());
    if dns.is_none() {
        c.fail(
            key("dns"),
            "is required (a DNS name, e.g. a headless Service)",
        );
    }
    let http_port = raw.http_port.filter(|p| *p != 0);
    if http_port.is_none() {
        c.fail(key("http_port"), "is required (1 to 65535)");
    }
    let resolver = raw
        .resolver
        .and_then(|r| c.ok(address(&key("resolver"), &r)));
    let interval = c.duration(
        &key("interval"),
        raw.interval.as_deref(),
        DEFAULT_DISCOVER_INTERVAL,
    );
    Some(DiscoverConfig {
        name: name?,
        dns: dns?,
        http_port: http_port?,
        ws_port: raw.ws_port.filter(|p| *p != 0),
        interval,
        resolver,
    })
}
