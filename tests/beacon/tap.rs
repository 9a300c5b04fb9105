//! A faithful pass-through in front of one Lodestar node, for what Lodestar
//! cannot show by itself: it forwards every request as is and records what
//! reached it; on demand it answers 503 (a node that is down) or rewrites
//! `/eth/v1/node/syncing` to say `is_syncing` or `is_optimistic`.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

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
}

/// One request that reached the tap.
#[derive(Clone, Debug)]
pub struct Seen {
    pub path: String,
    pub body: Bytes,
    pub status: u16,
}

pub struct Tap {
    pub url: String,
    mode: Arc<AtomicU8>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

/// The gateway's own health reads: not "traffic".
const HEALTH: &[&str] = &[
    "/eth/v1/node/syncing",
    "/eth/v1/beacon/genesis",
    "/eth/v1/beacon/headers/head",
    "/eth/v1/config/spec",
];

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
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (client, node, m, s) = (client.clone(), node.clone(), m.clone(), s.clone());
                let service = service_fn(move |req| {
                    relay(client.clone(), node.clone(), m.clone(), s.clone(), req)
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
        }
    }

    pub fn set(&self, mode: Mode) {
        self.mode.store(mode as u8, Ordering::SeqCst);
    }

    pub fn reset(&self) {
        self.seen.lock().clear();
    }

    /// Requests other than the gateway's health reads.
    pub fn traffic(&self) -> Vec<Seen> {
        self.seen
            .lock()
            .iter()
            .filter(|s| !HEALTH.contains(&s.path.as_str()))
            .cloned()
            .collect()
    }
}

async fn relay(
    client: Client<HttpConnector, Full<Bytes>>,
    node: String,
    mode: Arc<AtomicU8>,
    seen: Arc<Mutex<Vec<Seen>>>,
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
    let record = |status: u16| Seen {
        path: path.clone(),
        body: body.clone(),
        status,
    };
    if mode == Mode::Down as u8 {
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
