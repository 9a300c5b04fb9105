//! [`Tap`]: a counting relay and fault injector in front of one node.
//!
//! Gateway tests need two things anvil cannot give: a count of the calls that reached a
//! node (did the cache answer, did the router pick this backend?) and failures of the
//! kind real providers produce (HTTP 503, stalls, connections cut mid-request). The tap
//! sits between the gateway and a node's HTTP URL: it forwards every POST body as is,
//! returns the node's answer unchanged, and counts each JSON-RPC call by method (each
//! entry of a batch is one call). While a [`Fault`] is set it applies to every request.
//!
//! Calls are counted when they reach the tap, whether a fault answers them or not: the
//! counters say what the gateway sent, not what the node saw.
//!
//! [`Tap::set_state_history`] makes the node look pruned, as a snap or full Geth is:
//! a state read (`eth_getBalance`, `eth_call`, ...) whose block number is more than
//! that many blocks below the node's head (asked of the node for each such call) is
//! answered `missing trie node` without forwarding. anvil itself keeps all state.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use std::time::Duration;

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

use super::FleetError;

const MAX_BODY_BYTES: usize = 32 * 1024 * 1024;

/// What the tap does to each request while the fault is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fault {
    /// Forward faithfully.
    #[default]
    None,
    /// Answer with this HTTP status (500 if it is not a valid code) without forwarding.
    Status(u16),
    /// Wait this long, then forward.
    Delay(Duration),
    /// Close the connection without answering.
    DropConnection,
}

/// A counting relay on 127.0.0.1 in front of one node. Stops serving when dropped.
pub struct Tap {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: JoinHandle<()>,
}

struct Shared {
    target: http::Uri,
    client: Client<HttpConnector, Full<Bytes>>,
    counts: Mutex<HashMap<String, u64>>,
    total: AtomicU64,
    requests: AtomicU64,
    fault: Mutex<Fault>,
    /// When set, the fault applies only to bodies that call this method
    /// (the head tracker's probes of other methods pass).
    only: Mutex<Option<&'static str>>,
    /// Blocks of state the node seems to keep below its head (`None`: all).
    state_history: Mutex<Option<u64>>,
    missing_state: AtomicU64,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl Tap {
    /// Binds 127.0.0.1:0 and relays to `target_http_url`.
    pub async fn start(target_http_url: &str) -> Result<Self, FleetError> {
        let target = target_http_url
            .parse::<http::Uri>()
            .map_err(|_| FleetError::BadUrl(target_http_url.to_owned()))?;
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(|source| FleetError::Io {
                context: "binding the tap",
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| FleetError::Io {
            context: "reading the tap's address",
            source,
        })?;
        let shared = Arc::new(Shared {
            target,
            client: Client::builder(TokioExecutor::new()).build_http(),
            counts: Mutex::new(HashMap::new()),
            total: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            fault: Mutex::new(Fault::None),
            only: Mutex::new(None),
            state_history: Mutex::new(None),
            missing_state: AtomicU64::new(0),
        });
        let accept = tokio::spawn(accept_loop(listener, Arc::clone(&shared)));
        Ok(Self {
            addr,
            shared,
            accept,
        })
    }

    /// The URL to give the gateway in place of the node's.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// JSON-RPC calls of `method` received since start or the last [`Tap::reset`].
    pub fn count(&self, method: &str) -> u64 {
        self.shared.counts.lock().get(method).copied().unwrap_or(0)
    }

    /// All JSON-RPC calls received (a batch of three counts three).
    pub fn total(&self) -> u64 {
        self.shared.total.load(Ordering::SeqCst)
    }

    /// HTTP requests received (a batch counts once).
    pub fn requests(&self) -> u64 {
        self.shared.requests.load(Ordering::SeqCst)
    }

    pub fn reset(&self) {
        self.shared.counts.lock().clear();
        self.shared.total.store(0, Ordering::SeqCst);
        self.shared.requests.store(0, Ordering::SeqCst);
    }

    pub fn set_fault(&self, fault: Fault) {
        *self.shared.only.lock() = None;
        *self.shared.fault.lock() = fault;
    }

    /// Injects `fault` into the requests that call `method` only; the others
    /// (the gateway's head probes, say) are relayed faithfully.
    pub fn set_fault_on(&self, method: &'static str, fault: Fault) {
        *self.shared.only.lock() = Some(method);
        *self.shared.fault.lock() = fault;
    }

    pub fn fault(&self) -> Fault {
        *self.shared.fault.lock()
    }

    /// Makes the node look pruned: state reads of blocks more than `blocks` below its
    /// head get `missing trie node`. `None` forwards every call again.
    pub fn set_state_history(&self, blocks: Option<u64>) {
        *self.shared.state_history.lock() = blocks;
    }

    /// State reads answered `missing trie node` by [`Tap::set_state_history`] (not reset).
    pub fn missing_state_answers(&self) -> u64 {
        self.shared.missing_state.load(Ordering::SeqCst)
    }
}

impl Drop for Tap {
    fn drop(&mut self) {
        // Aborting the loop drops its JoinSet, which aborts the open connections too.
        self.accept.abort();
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut connections = JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "tap: accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let shared = Arc::clone(&shared);
        connections.spawn(async move {
            let service = service_fn(move |request| relay(Arc::clone(&shared), request));
            // An error here is usually an injected DropConnection or a client that went
            // away; either way the connection is over.
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn relay(
    shared: Arc<Shared>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, BoxError> {
    if request.method() != Method::POST {
        return Ok(plain(StatusCode::METHOD_NOT_ALLOWED, "tap: POST only"));
    }
    let body = match Limited::new(request.into_body(), MAX_BODY_BYTES)
        .collect()
        .await
    {
        Ok(body) => body.to_bytes(),
        Err(_) => return Ok(plain(StatusCode::PAYLOAD_TOO_LARGE, "tap: body too large")),
    };
    shared.record(&body);

    let only = *shared.only.lock();
    let applies = only.is_none_or(|m| methods_of(&body).iter().any(|x| x == m));
    let fault = if applies {
        *shared.fault.lock()
    } else {
        Fault::None
    };
    match fault {
        Fault::None => {}
        Fault::Status(code) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return Ok(plain(status, "tap: injected fault"));
        }
        Fault::Delay(delay) => tokio::time::sleep(delay).await,
        Fault::DropConnection => return Err("tap: injected connection drop".into()),
    }
    let history = *shared.state_history.lock();
    if let Some(kept) = history {
        if let Some(answer) = shared.pruned_answer(&body, kept).await {
            return Ok(answer);
        }
    }

    let upstream = Request::post(shared.target.clone())
        .header(header::CONTENT_TYPE, "application/json")
        .body(Full::new(body))?;
    let response = match shared.client.request(upstream).await {
        Ok(response) => response,
        Err(error) => return Ok(plain(StatusCode::BAD_GATEWAY, &format!("tap: {error}"))),
    };
    let (parts, body) = response.into_parts();
    let bytes = Limited::new(body, MAX_BODY_BYTES)
        .collect()
        .await?
        .to_bytes();
    let mut answer = Response::new(Full::new(bytes));
    *answer.status_mut() = parts.status;
    if let Some(content_type) = parts.headers.get(header::CONTENT_TYPE) {
        answer
            .headers_mut()
            .insert(header::CONTENT_TYPE, content_type.clone());
    }
    Ok(answer)
}

impl Shared {
    fn record(&self, body: &[u8]) {
        self.requests.fetch_add(1, Ordering::SeqCst);
        let methods = methods_of(body);
        self.total.fetch_add(methods.len() as u64, Ordering::SeqCst);
        let mut counts = self.counts.lock();
        for method in methods {
            *counts.entry(method).or_insert(0) += 1;
        }
    }
}

impl Shared {
    /// The `missing trie node` answer for a single state read of a block more than
    /// `kept` blocks below the node's head; `None` to forward the call.
    async fn pruned_answer(&self, body: &[u8], kept: u64) -> Option<Response<Full<Bytes>>> {
        let call: Value = serde_json::from_slice(body).ok()?;
        let block = state_block(&call)?;
        let head = self.node_head().await?;
        if block.saturating_add(kept) >= head {
            return None;
        }
        self.missing_state.fetch_add(1, Ordering::SeqCst);
        let answer = serde_json::json!({
            "jsonrpc": "2.0",
            "id": call.get("id").cloned().unwrap_or(Value::Null),
            "error": {"code": -32000, "message": "missing trie node 5b2e8c1f0c2d (path ) <nil>"},
        });
        let mut response = Response::new(Full::new(Bytes::from(answer.to_string())));
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        Some(response)
    }

    /// The node's head, asked of it.
    async fn node_head(&self) -> Option<u64> {
        let ask = Request::post(self.target.clone())
            .header(header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from_static(
                br#"{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber","params":[]}"#,
            )))
            .ok()?;
        let response = self.client.request(ask).await.ok()?;
        let body = Limited::new(response.into_body(), 4096)
            .collect()
            .await
            .ok()?
            .to_bytes();
        let v: Value = serde_json::from_slice(&body).ok()?;
        quantity(v.get("result")?)
    }
}

/// The block number a single state read asks for (a number, bare or as
/// `{"blockNumber": ...}`); `None` for anything else (tags, hashes, other methods).
fn state_block(call: &Value) -> Option<u64> {
    let at = match call.get("method")?.as_str()? {
        "eth_getBalance"
        | "eth_getCode"
        | "eth_getTransactionCount"
        | "eth_call"
        | "eth_estimateGas"
        | "eth_createAccessList" => 1,
        "eth_getStorageAt" | "eth_getProof" => 2,
        _ => return None,
    };
    let block = call.get("params")?.get(at)?;
    quantity(block.get("blockNumber").unwrap_or(block))
}

fn quantity(v: &Value) -> Option<u64> {
    u64::from_str_radix(v.as_str()?.strip_prefix("0x")?, 16).ok()
}

/// The method of each call in a body; a body that is not JSON-RPC yields none.
fn methods_of(body: &[u8]) -> Vec<String> {
    let method = |call: &Value| call.get("method")?.as_str().map(str::to_owned);
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Array(calls)) => calls.iter().filter_map(method).collect(),
        Ok(call) => method(&call).into_iter().collect(),
        Err(_) => Vec::new(),
    }
}

fn plain(status: StatusCode, text: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::copy_from_slice(text.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::{methods_of, state_block};

    #[test]
    fn finds_the_block_of_a_state_read() {
        let block = |body: &str| state_block(&serde_json::from_str(body).unwrap());
        assert_eq!(
            block(r#"{"method":"eth_getBalance","params":["0xab","0x1f"]}"#),
            Some(31)
        );
        assert_eq!(
            block(r#"{"method":"eth_getStorageAt","params":["0xab","0x0",{"blockNumber":"0x2"}]}"#),
            Some(2)
        );
        assert_eq!(
            block(r#"{"method":"eth_getBalance","params":["0xab","latest"]}"#),
            None
        );
        assert_eq!(
            block(r#"{"method":"eth_getBlockByNumber","params":["0x1",false]}"#),
            None
        );
    }

    #[test]
    fn counts_single_calls_and_batch_entries() {
        assert_eq!(
            methods_of(br#"{"jsonrpc":"2.0","id":1,"method":"eth_chainId"}"#),
            ["eth_chainId"]
        );
        assert_eq!(
            methods_of(br#"[{"method":"a","id":1},{"method":"b","id":2},{"id":3}]"#),
            ["a", "b"]
        );
        assert!(methods_of(b"not json").is_empty());
        assert!(methods_of(br#"{"id":1}"#).is_empty());
    }
}
