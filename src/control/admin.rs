//! The admin listener: liveness, readiness and status for operators and
//! Kubernetes probes, kept off the JSON-RPC port so that it can be firewalled
//! separately and keeps answering while the RPC listener drains.
//!
//! - `/livez`: the process is up (200).
//! - `/readyz`: 200 when every network required for readiness
//!   (`ready_required`: execution networks by default, beacon networks
//!   not) has an eligible backend or node and the gateway is not shutting
//!   down; 503 with the reasons otherwise. `/readyz/<network>`: the same
//!   for one network of either kind, required or not (404: no such network),
//!   for operators who probe each front on its own.
//! - `/status`: JSON, per network and backend: head, lag, latency estimate,
//!   in-flight requests, eligibility and the reason when not eligible.
//! - `/metrics`: Prometheus text, the gateway's registry ([`crate::metrics`])
//!   through one encoder. The state of backends, heads, caches and reloads
//!   is in it too: a collector registered here reads the current snapshots
//!   at scrape time, so the request path pays nothing for it.
//!
//! Nothing here needs a secret, so the listener's defences are against being
//! reached at all by the wrong party:
//! - DNS rebinding: a page a developer opens can point its own name at
//!   127.0.0.1 and read the answers as same-origin. Such a request always
//!   carries that name in `Host`, so only `localhost`, IP literals (what
//!   probes and scrapers that address a pod use) and the names of
//!   `server.admin_hosts` are answered; any other name gets 421.
//! - At most `server.admin_max_connections` connections are open at once;
//!   one past it gets a 503 written without waiting and is closed, so a
//!   flood of idle sockets cannot hold the probes' listener.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use super::Gateway;
use crate::config::UpstreamTier;
use crate::metrics::state::{self, ReloadResult, Scrape};
use crate::metrics::Label;
use crate::upstream::Ineligible;

/// Serves the admin endpoints until the task is aborted, at most
/// `max_connections` connections at once.
pub async fn serve(listener: TcpListener, gateway: Arc<Gateway>, max_connections: usize) {
    let slots = Arc::new(Semaphore::new(max_connections));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "admin accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nretry-after: 1\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";
            let _ = stream.try_write(BUSY);
            if crate::logs::refusal_line() {
                tracing::info!(%peer, "admin connection refused: server.admin_max_connections are open");
            }
            continue;
        };
        let gateway = gateway.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let gateway = gateway.clone();
                async move { Ok::<_, Infallible>(route(&gateway, &req)) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .serve_connection(TokioIo::new(stream), service)
                .await;
            drop(slot);
        });
    }
}

/// Whether a request's `Host` may be answered: absent (HTTP/1.0; a browser
/// always sends one), an IP literal, `localhost`, or one of `allowed`.
fn host_allowed(host: Option<&HeaderValue>, allowed: &[String]) -> bool {
    let Some(host) = host else { return true };
    let Ok(host) = host.to_str() else {
        return false;
    };
    let name = match host.strip_prefix('[') {
        // [v6]:port
        Some(rest) => {
            return rest
                .split(']')
                .next()
                .is_some_and(|ip| ip.parse::<std::net::Ipv6Addr>().is_ok())
        }
        None => host.rsplit_once(':').map_or(host, |(name, _port)| name),
    };
    let name = name.strip_suffix('.').unwrap_or(name);
    name.parse::<std::net::Ipv4Addr>().is_ok()
        || name.eq_ignore_ascii_case("localhost")
        || allowed.iter().any(|a| name.eq_ignore_ascii_case(a))
}

fn route(gateway: &Gateway, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let hosts = &gateway.table().server.admin_hosts;
    if !host_allowed(req.headers().get(header::HOST), hosts) {
        return text(
            StatusCode::MISDIRECTED_REQUEST,
            "this Host is not served here: use localhost, an IP address, or a name of server.admin_hosts\n",
        );
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "GET only\n");
    }
    match req.uri().path() {
        "/livez" => text(StatusCode::OK, "ok\n"),
        "/readyz" => {
            let not_ready = gateway.not_ready();
            if not_ready.is_empty() {
                text(StatusCode::OK, "ready\n")
            } else {
                text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    &format!("not ready: {}\n", not_ready.join("; ")),
                )
            }
        }
        path if path.starts_with("/readyz/") => {
            let name = &path["/readyz/".len()..];
            match gateway.network_not_ready(name) {
                None => text(StatusCode::NOT_FOUND, "no such network\n"),
                Some(reasons) if reasons.is_empty() => text(StatusCode::OK, "ready\n"),
                Some(reasons) => text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    &format!("not ready: {}\n", reasons.join("; ")),
                ),
            }
        }
        "/status" => {
            let body =
                serde_json::to_vec_pretty(&status(gateway)).expect("a JSON value serializes");
            let mut r = Response::new(Full::new(Bytes::from(body)));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            r
        }
        "/metrics" => {
            let body = gateway.metrics().render();
            let mut r = Response::new(Full::new(Bytes::from(body)));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            r
        }
        _ => text(
            StatusCode::NOT_FOUND,
            "unknown path: try /livez, /readyz, /readyz/<network>, /status or /metrics\n",
        ),
    }
}

/// The status document.
pub fn status(gateway: &Gateway) -> Value {
    let routes = gateway.table();
    let mut networks = serde_json::Map::new();
    let mut names: Vec<&String> = routes.networks.keys().collect();
    names.sort();
    for name in names {
        let net = &routes.networks[name];
        let view = net.view();
        let best = view.best_head.unwrap_or(0);
        let backends: Vec<Value> = view
            .backends
            .iter()
            .map(|b| {
                json!({
                    "name": b.backend.name,
                    "eligible": b.eligible(),
                    "reason": b.ineligible.as_ref().map(ToString::to_string),
                    "head": b.state.latest.as_ref().map(|l| l.number),
                    "head_hash": b.state.latest.as_ref().map(|l| l.hash.clone()),
                    "lag": b.state.latest.as_ref().map(|l| best.saturating_sub(l.number)),
                    "safe": b.state.safe,
                    "finalized": b.state.finalized,
                    "syncing": b.state.syncing,
                    "reachable": b.state.reachable,
                    "latency_ms": b.backend.load.estimate().as_secs_f64() * 1000.0,
                    "in_flight": b.backend.load.in_flight(),
                    "last_error": b.state.last_error,
                    "tier": match b.backend.tier {
                        UpstreamTier::Primary => "primary",
                        UpstreamTier::Fallback => "fallback",
                        UpstreamTier::Route => "route",
                    },
                    "state_history": b.state_history,
                })
            })
            .collect();
        networks.insert(
            name.clone(),
            json!({
                "chain_id": net.config.chain_id,
                "default": net.config.default,
                "served_head": view.served_head,
                "best_head": view.best_head,
                "agreed_head": view.agreed_head,
                "agreed_confirmed": view.agreed_confirmed,
                "safe": view.safe,
                "finalized": view.finalized,
                "eligible": view.eligible().count(),
                "fallback_serving": view.fallback_serving,
                "ready_required": net.config.ready_required,
                "backends": backends,
            }),
        );
    }
    json!({
        "ready": gateway.not_ready().is_empty(),
        "networks": networks,
        "beacon_networks": super::beacon_status::status(gateway),
    })
}

fn text(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::copy_from_slice(body.as_bytes())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// Registers the gateway's state families in its registry: read from the
/// current snapshots at each scrape. The reader holds the gateway weakly (the
/// gateway holds the registry), so a dropped gateway reads as nothing.
pub(super) fn register_state(gateway: &Arc<Gateway>) {
    let weak = Arc::downgrade(gateway);
    gateway
        .metrics()
        .register_state(Arc::new(move |out: &mut Scrape| {
            if let Some(gateway) = weak.upgrade() {
                read_state(&gateway, out);
            }
        }));
}

/// Gauges and counters read from the gateway's snapshots.
fn read_state(gateway: &Gateway, out: &mut Scrape) {
    let routes = gateway.table();
    let mut names: Vec<&String> = routes.networks.keys().collect();
    names.sort();
    for name in &names {
        let net = &routes.networks[*name];
        let view = net.view();
        let best = view.best_head.unwrap_or(0);
        for b in &view.backends {
            let labels = [name.as_str(), b.backend.name.as_str()];
            if let Some(h) = b.state.latest.as_ref().map(|l| l.number) {
                out.sample(&state::BACKEND_HEAD, &labels, h as f64);
                let lag = best.saturating_sub(h) as f64;
                out.sample(&state::BACKEND_LAG_BLOCKS, &labels, lag);
            }
            let eligible = f64::from(u8::from(b.eligible()));
            out.sample(&state::BACKEND_ELIGIBLE, &labels, eligible);
            let in_flight = f64::from(b.backend.load.in_flight());
            out.sample(&state::BACKEND_IN_FLIGHT, &labels, in_flight);
            let latency = b.backend.load.estimate().as_secs_f64();
            out.sample(&state::BACKEND_LATENCY_SECONDS, &labels, latency);
            if let Some(kept) = b.state_history {
                out.sample(&state::BACKEND_STATE_HISTORY_BLOCKS, &labels, kept as f64);
            }
            let missing = b.backend.missing_state_answers() as f64;
            out.sample(&state::BACKEND_MISSING_STATE_TOTAL, &labels, missing);
            let mismatches = b.backend.chain_mismatches() as f64;
            out.sample(&state::BACKEND_CHAIN_MISMATCH_TOTAL, &labels, mismatches);
            let ahead = matches!(b.ineligible, Some(Ineligible::AheadUnconfirmed { .. }));
            out.sample(
                &state::BACKEND_AHEAD_UNCONFIRMED,
                &labels,
                f64::from(u8::from(ahead)),
            );
        }
        let labels = [name.as_str()];
        if let Some(h) = view.served_head {
            out.sample(&state::SERVED_HEAD, &labels, h as f64);
        }
        if let Some(f) = view.finalized {
            out.sample(&state::FINALIZED_BLOCK, &labels, f as f64);
        }
        let eligible = view.eligible().count() as f64;
        out.sample(&state::ELIGIBLE_BACKENDS, &labels, eligible);
        let fallback = f64::from(u8::from(view.fallback_serving));
        out.sample(&state::FALLBACK_SERVING, &labels, fallback);
        if let Some(cache) = &net.cache {
            for (event, n) in cache.counts().events() {
                let labels = [name.as_str(), event.label()];
                out.sample(&state::CACHE_EVENTS_TOTAL, &labels, n as f64);
            }
            let (bytes, entries) = cache.size_now();
            out.sample(&state::CACHE_BYTES, &labels, bytes as f64);
            out.sample(&state::CACHE_MAX_BYTES, &labels, cache.max_bytes() as f64);
            out.sample(&state::CACHE_ENTRIES, &labels, entries as f64);
        }
    }
    for &result in ReloadResult::ALL {
        let n = match result {
            ReloadResult::Applied => &gateway.reloads.applied,
            ReloadResult::Refused => &gateway.reloads.refused,
        };
        let n = n.load(std::sync::atomic::Ordering::Relaxed) as f64;
        out.sample(&state::RELOADS_TOTAL, &[result.label()], n);
    }
    for (key, n) in gateway.reloads.restart_required_by_key() {
        out.sample(&state::RELOAD_RESTART_REQUIRED_TOTAL, &[key], n as f64);
    }
    let suppressed = crate::logs::refusals_suppressed() as f64;
    out.sample(&state::LOG_REFUSALS_SUPPRESSED_TOTAL, &[], suppressed);
    for budget in [crate::memory::answers(), crate::memory::requests()] {
        let labels = [budget.kind()];
        out.sample(&state::MEMORY_INFLIGHT_BYTES, &labels, budget.used() as f64);
        out.sample(&state::MEMORY_BUDGET_BYTES, &labels, budget.limit() as f64);
        let refused = budget.refusals() as f64;
        out.sample(&state::MEMORY_BUDGET_REFUSALS_TOTAL, &labels, refused);
    }
    super::beacon_status::read_state(gateway, out);
    let ready = f64::from(u8::from(gateway.not_ready().is_empty()));
    out.sample(&state::READY, &[], ready);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_a_rebinding_page_cannot_name() {
        let ok = |h: &str, allowed: &[&str]| {
            let allowed: Vec<String> = allowed.iter().map(|s| s.to_string()).collect();
            host_allowed(Some(&HeaderValue::from_str(h).unwrap()), &allowed)
        };
        assert!(host_allowed(None, &[]));
        assert!(ok("127.0.0.1:8580", &[]));
        assert!(ok("10.1.2.3:8580", &[]));
        assert!(ok("[::1]:8580", &[]));
        assert!(ok("localhost:8580", &[]));
        assert!(ok("LOCALHOST.", &[]));
        assert!(ok("admin.svc:8580", &["admin.svc"]));
        assert!(!ok("evil.example:8580", &[]));
        assert!(!ok("evil.example", &["admin.svc"]));
        assert!(!ok("localhost.evil.example", &[]));
        assert!(!ok("[evil]:80", &[]));
    }
}
