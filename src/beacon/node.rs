//! One beacon node: its REST client, its request counters, and how a
//! request is passed to it untouched.
//!
//! The gateway forwards bytes, it does not re-encode: the query string
//! verbatim, the body as sent, and the headers that carry meaning for the
//! Beacon API (`Accept`, `Content-Type`, `Eth-Consensus-Version` and the
//! other `Eth-*` ones). The caller's credentials for the gateway (its API
//! key) never reach a node. A reply is read whole against the network's
//! response bound, then handed back with the node's headers minus the
//! hop-by-hop ones and the node's own CORS answer (the edge makes its own).
//!
//! Each answered request updates the node's latency estimate (an
//! exponentially weighted mean, health reads included, so an idle node has
//! one too): block production goes to the fastest node among the highest.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName};
use http::{Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use super::BeaconError;
use crate::config::BeaconNodeConfig;

/// Outcomes of the publishes and subscriptions sent to one node.
#[derive(Default)]
pub struct SendCounts {
    pub accepted: AtomicU64,
    pub refused: AtomicU64,
    pub failed: AtomicU64,
}

impl SendCounts {
    pub fn count(&self, answer: &Result<Reply, BeaconError>) {
        let counter = match answer {
            Ok(r) if r.status.is_success() => &self.accepted,
            Ok(_) => &self.refused,
            Err(_) => &self.failed,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// A node's answer, read whole.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// What a request carries to a node.
pub struct Outgoing<'a> {
    pub method: &'a Method,
    /// Path and query as the caller sent them (network prefix removed).
    pub path_and_query: &'a str,
    pub headers: &'a HeaderMap,
    pub body: Bytes,
}

pub struct Node {
    pub name: String,
    base: Uri,
    client: Client<HttpConnector, Full<Bytes>>,
    timeout: Duration,
    max_bytes: usize,
    /// Requests answered by this node (any status), for tests and `/status`.
    pub served: AtomicU64,
    pub publishes: SendCounts,
    pub subscriptions: SendCounts,
    /// Mean answer time, microseconds (0: none yet); see [`Node::latency`].
    latency_micros: AtomicU64,
}

impl Node {
    pub fn new(config: &BeaconNodeConfig, timeout: Duration, max_bytes: usize) -> Node {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(2)));
        Node {
            name: config.name.clone(),
            base: config.http.clone(),
            client: Client::builder(TokioExecutor::new()).build(connector),
            timeout,
            max_bytes,
            served: AtomicU64::new(0),
            publishes: SendCounts::default(),
            subscriptions: SendCounts::default(),
            latency_micros: AtomicU64::new(0),
        }
    }

    /// The node's mean answer time (zero before its first answer).
    pub fn latency(&self) -> Duration {
        Duration::from_micros(self.latency_micros.load(Ordering::Relaxed))
    }

    /// Folds one answer time into the mean (weight 1/8: a few slow answers
    /// move it, one does not). Racing updates may lose one sample: harmless.
    fn observe(&self, took: Duration) {
        let sample = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        let old = self.latency_micros.load(Ordering::Relaxed);
        let new = if old == 0 {
            sample
        } else {
            old - old / 8 + sample / 8
        };
        self.latency_micros.store(new.max(1), Ordering::Relaxed);
    }

    /// The node's URL for `path_and_query` (its base path, if any, first).
    fn url(&self, path_and_query: &str) -> Result<Uri, BeaconError> {
        let base = self.base.to_string();
        let url = format!("{}{}", base.trim_end_matches('/'), path_and_query);
        url.parse().map_err(|_| BeaconError::BadPath)
    }

    /// Sends one request and reads the reply whole.
    pub async fn send(&self, out: Outgoing<'_>) -> Result<Reply, BeaconError> {
        let mut req = Request::builder()
            .method(out.method.clone())
            .uri(self.url(out.path_and_query)?);
        if let Some(headers) = req.headers_mut() {
            for (name, value) in out.headers {
                if forwarded_request_header(name) {
                    headers.append(name, value.clone());
                }
            }
        }
        let req = req
            .body(Full::new(out.body))
            .map_err(|_| BeaconError::BadPath)?;
        let started = Instant::now();
        let exchange = async {
            let reply = self
                .client
                .request(req)
                .await
                .map_err(|e| BeaconError::Node(format!("{}: {e}", self.name)))?;
            let (parts, body) = reply.into_parts();
            let body = Limited::new(body, self.max_bytes)
                .collect()
                .await
                .map_err(|_| BeaconError::ReplyTooLarge(self.max_bytes))?
                .to_bytes();
            let mut headers = parts.headers;
            strip_reply_headers(&mut headers);
            Ok(Reply {
                status: parts.status,
                headers,
                body,
            })
        };
        let reply = tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| {
                BeaconError::Node(format!(
                    "{}: no answer within {:?}",
                    self.name, self.timeout
                ))
            })?;
        if reply.is_ok() {
            self.served.fetch_add(1, Ordering::Relaxed);
            self.observe(started.elapsed());
        }
        reply
    }

    /// A GET of the node's own API, its `data` parsed (the health loop's reads).
    pub async fn get_data(&self, path: &str) -> Result<serde_json::Value, BeaconError> {
        let headers = HeaderMap::new();
        let reply = self
            .send(Outgoing {
                method: &Method::GET,
                path_and_query: path,
                headers: &headers,
                body: Bytes::new(),
            })
            .await?;
        if !reply.status.is_success() {
            return Err(BeaconError::Node(format!(
                "{}: {path}: HTTP {}",
                self.name, reply.status
            )));
        }
        let mut value: serde_json::Value = serde_json::from_slice(&reply.body)
            .map_err(|e| BeaconError::Node(format!("{}: {path}: {e}", self.name)))?;
        Ok(value
            .get_mut("data")
            .map(serde_json::Value::take)
            .unwrap_or_default())
    }
}

/// Request headers that mean something to a beacon node.
fn forwarded_request_header(name: &HeaderName) -> bool {
    name == header::ACCEPT || name == header::CONTENT_TYPE || name.as_str().starts_with("eth-")
}

/// Hop-by-hop headers, and the node's CORS answer (the edge gives its own).
fn strip_reply_headers(headers: &mut HeaderMap) {
    for name in [
        header::CONNECTION,
        header::TRANSFER_ENCODING,
        header::CONTENT_LENGTH,
        header::UPGRADE,
        header::VARY,
        HeaderName::from_static("keep-alive"),
    ] {
        headers.remove(name);
    }
    let cors: Vec<HeaderName> = headers
        .keys()
        .filter(|k| k.as_str().starts_with("access-control-"))
        .cloned()
        .collect();
    for name in cors {
        headers.remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_meaningful_headers_go_to_a_node() {
        for ok in ["accept", "content-type", "eth-consensus-version"] {
            assert!(
                forwarded_request_header(&HeaderName::from_static(ok)),
                "{ok}"
            );
        }
        for no in [
            "authorization",
            "x-api-key",
            "cookie",
            "host",
            "x-forwarded-for",
        ] {
            assert!(
                !forwarded_request_header(&HeaderName::from_static(no)),
                "{no}"
            );
        }
    }
}
