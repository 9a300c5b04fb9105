//! A faithful pass-through in front of one Lodestar node, for what Lodestar
//! cannot show by itself: it forwards every request as is and records what
//! reached it; on demand it answers 503 (a node that is down, or one path
//! that fails), rewrites `/eth/v1/node/syncing` to say `is_syncing` or
//! `is_optimistic`, or holds the node's head where it was (`Held`: the
//! head reads answer what they answered when the hold began).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::{TokioExecutor, TokioIo};
use parking_lot::Mutex;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub enum Mode {
    Faithful = 0,
    Down = 1,
    Syncing = 2,
    Optimistic = 3,
    Held = 4,
}

/// One request that reached the tap.
#[derive(Clone, Debug)]
pub struct Seen {
    pub path: String,
    pub body: Bytes,
    pub status: u16,
    /// One of the gateway's health reads (a HEALTH path, no `Accept`: the
    /// test's own reads send one).
    health: bool,
    /// For a request the tap accepted itself ([`Tap::accept_path`]): when it
    /// arrived and when it was answered, in one order shared by every tap.
    pub order: Option<(u64, u64)>,
}

/// The order of arrivals and answers across taps.
static ORDER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

pub struct Tap {
    pub url: String,
    mode: Arc<AtomicU8>,
    seen: Arc<Mutex<Vec<Seen>>>,
    faults: Faults,
}

/// Per-path faults and the held head answers.
#[derive(Clone, Default)]
struct Faults {
    /// Requests whose path starts with this get 503.
    failing: Arc<Mutex<Option<String>>>,
    /// Requests whose path starts with this are accepted by the tap itself
    /// (200, a moment later), not forwarded.
    accepting: Arc<Mutex<Option<String>>>,
    /// Held answers by path (`Mode::Held`).
    held: Arc<Mutex<Vec<(String, Bytes)>>>,
}

/// The gateway's own reads of every health round: not "traffic" when they
/// come without `Accept`. (The genesis and the spec are read once, when the
/// gateway starts.)
const HEALTH: &[&str] = &[
    "/eth/v1/node/syncing",
    "/eth/v1/beacon/headers/head",
    "/eth/v1/beacon/headers/finalized",
];

/// What a held node answers from the moment the hold began.
const HELD: &[&str] = &["/eth/v1/node/syncing", "/eth/v1/beacon/headers/head"];

impl Tap {
    pub async fn start(node: &str) -> Tap {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let mode = Arc::new(AtomicU8::new(0));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let client: Client<HttpConnector, Full<Bytes>> =
            Client::builder(TokioExecutor::new()).build(HttpConnector::new());
        let node = node.to_string();
        let (m, s) = (mode.clone(), seen.clone());
        let faults = Faults::default();
        let f = faults.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (client, node, m, s, f) = (
                    client.clone(),
                    node.clone(),
                    m.clone(),
                    s.clone(),
                    f.clone(),
                );
                let service = service_fn(move |req| {
                    relay(
                        client.clone(),
                        node.clone(),
                        m.clone(),
                        s.clone(),
                        f.clone(),
                        req,
                    )
                });
                tokio::spawn(async move {
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Tap {
            url: format!("http://{addr}"),
            mode,
            seen,
            faults,
        }
    }

    pub fn set(&self, mode: Mode) {
        self.faults.held.lock().clear();
        self.mode.store(mode as u8, Ordering::SeqCst);
    }

    /// Requests whose path starts with `prefix` get 503 (`None`: no more).
    pub fn fail_path(&self, prefix: Option<&str>) {
        *self.faults.failing.lock() = prefix.map(str::to_string);
    }

    /// Requests whose path starts with `prefix` are answered 200 by the tap
    /// after 300 ms, not forwarded (`None`: no more).
    pub fn accept_path(&self, prefix: Option<&str>) {
        *self.faults.accepting.lock() = prefix.map(str::to_string);
    }

    pub fn reset(&self) {
        self.seen.lock().clear();
    }

    /// Requests other than the gateway's health reads.
    pub fn traffic(&self) -> Vec<Seen> {
        self.seen
            .lock()
            .iter()
            .filter(|s| !s.health)
            .cloned()
            .collect()
    }
}

async fn relay(
    client: Client<HttpConnector, Full<Bytes>>,
    node: String,
    mode: Arc<AtomicU8>,
    seen: Arc<Mutex<Vec<Seen>>>,
    faults: Faults,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let mode = mode.load(Ordering::SeqCst);
    let health =
        HEALTH.contains(&path.as_str()) && !parts.headers.contains_key(http::header::ACCEPT);
    let record = |status: u16| Seen {
        path: path.clone(),
        body: body.clone(),
        status,
        health,
        order: None,
    };
    let failing = faults
        .failing
        .lock()
        .as_deref()
        .is_some_and(|p| path.starts_with(p));
    let accepting = faults
        .accepting
        .lock()
        .as_deref()
        .is_some_and(|p| path.starts_with(p));
    if accepting {
        let arrived = ORDER.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(300)).await;
        let answered = ORDER.fetch_add(1, Ordering::SeqCst);
        seen.lock().push(Seen {
            order: Some((arrived, answered)),
            ..record(200)
        });
        return Ok(Response::new(Full::new(Bytes::new())));
    }
    if mode == Mode::Held as u8 && HELD.contains(&path.as_str()) {
        let held = faults.held.lock();
        if let Some((_, body)) = held.iter().find(|(p, _)| *p == path) {
            seen.lock().push(record(200));
            let mut r = Response::new(Full::new(body.clone()));
            r.headers_mut()
                .insert("content-type", "application/json".parse().unwrap());
            return Ok(r);
        }
    }
    if mode == Mode::Down as u8 || failing {
        seen.lock().push(record(503));
        let mut r = Response::new(Full::new(Bytes::from_static(b"down")));
        *r.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
        return Ok(r);
    }
    let mut out = Request::builder()
        .method(parts.method.clone())
        .uri(format!("{node}{path}"));
    for (k, v) in &parts.headers {
        if k != http::header::HOST {
            out = out.header(k, v);
        }
    }
    let answer = client
        .request(out.body(Full::new(body.clone())).unwrap())
        .await;
    let Ok(answer) = answer else {
        seen.lock().push(record(502));
        let mut r = Response::new(Full::new(Bytes::new()));
        *r.status_mut() = StatusCode::BAD_GATEWAY;
        return Ok(r);
    };
    let (mut rparts, rbody) = answer.into_parts();
    let mut rbody = rbody
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    seen.lock().push(record(rparts.status.as_u16()));
    if mode == Mode::Held as u8 && HELD.contains(&path.as_str()) && rparts.status == 200 {
        let mut held = faults.held.lock();
        if !held.iter().any(|(p, _)| *p == path) {
            held.push((path.clone(), rbody.clone()));
        }
    }
    if path == "/eth/v1/node/syncing" && mode != Mode::Faithful as u8 {
        let mut v: serde_json::Value = serde_json::from_slice(&rbody).unwrap();
        let key = if mode == Mode::Syncing as u8 {
            "is_syncing"
        } else {
            "is_optimistic"
        };
        v["data"][key] = serde_json::Value::Bool(true);
        rbody = Bytes::from(v.to_string());
        rparts.headers.remove(http::header::CONTENT_LENGTH);
    }
    Ok(Response::from_parts(rparts, Full::new(rbody)))
}
