//! The admin listener: liveness, readiness and status for operators and
//! Kubernetes probes, kept off the JSON-RPC port so that it can be firewalled
//! separately and keeps answering while the RPC listener drains.
//!
//! - `/livez`: the process is up (200).
//! - `/readyz`: 200 when every network has an eligible backend and the
//!   gateway is not shutting down; 503 with the reasons otherwise.
//! - `/status`: JSON, per network and backend: head, lag, latency estimate,
//!   in-flight requests, eligibility and the reason when not eligible.

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

use super::Gateway;

/// Serves the admin endpoints until the task is aborted.
pub async fn serve(listener: TcpListener, gateway: Arc<Gateway>) {
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "admin accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
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
        });
    }
}

fn route(gateway: &Gateway, req: &Request<Incoming>) -> Response<Full<Bytes>> {
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
        _ => text(
            StatusCode::NOT_FOUND,
            "unknown path: try /livez, /readyz or /status\n",
        ),
    }
}

/// The status document.
pub fn status(gateway: &Gateway) -> Value {
    let routes = gateway.routes();
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
                "safe": view.safe,
                "finalized": view.finalized,
                "eligible": view.eligible().count(),
                "backends": backends,
            }),
        );
    }
    json!({ "ready": gateway.not_ready().is_empty(), "networks": networks })
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
