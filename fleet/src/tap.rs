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
//!
//! For batches (a JSON array of calls, one HTTP request): [`Tap::batches`] counts the
//! requests that were arrays and [`Tap::requests_of`] the requests carrying a method;
//! [`Tap::fail_calls`] fails single calls inside a batch (answered with a -32005 error
//! in their place, the rest forwarded), [`Tap::reverse_batches`] writes a batch's
//! answers in reverse order, as a node may, and [`Tap::refuse_batches`] answers 413.
//!
//! [`Tap::lie_about_head`] makes the node report another head, as a buggy node or
//! anyone on the path of plain HTTP could: the number in `eth_blockNumber` and in
//! `eth_getBlockByNumber("latest")` is changed (the block's hash is left as is);
//! blocks asked by number are relayed faithfully.
//! [`Tap::set_body_limit`] answers 413 to a body over a limit, as Geth does over its
//! 5 MiB (anvil takes far more). [`Tap::set_head_at`] makes the node look as if it
//! stood lower than it does (a node restarted behind the head it had): a single
//! call naming a block above that head by number is answered `-32001 Resource not
//! found`; the head probes may be told that head too, or still see the node's own.

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

/// The head [`Tap::lie_about_head`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadLie {
    /// The node's head plus this many blocks.
    Ahead(u64),
    /// This number, whatever the node's head.
    At(u64),
}

impl HeadLie {
    fn apply(self, head: u64) -> u64 {
        match self {
            HeadLie::Ahead(n) => head.saturating_add(n),
            HeadLie::At(n) => n,
        }
    }
}

/// Which calls [`Tap::fail_calls`] fails.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallMatch {
    pub method: String,
    /// A piece of the params' JSON text (an address, say); `None`: any params.
    pub params_containing: Option<String>,
}

impl CallMatch {
    fn matches(&self, call: &Value) -> bool {
        call.get("method").and_then(Value::as_str) == Some(self.method.as_str())
            && self.params_containing.as_ref().is_none_or(|piece| {
                call.get("params").is_some_and(|p| {
                    p.to_string()
                        .to_ascii_lowercase()
                        .contains(&piece.to_ascii_lowercase())
                })
            })
    }
}

/// Where [`Tap::set_head_at`] makes the node seem to stand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeadAt {
    /// Calls naming a block above this by number are answered "not found".
    pub head: u64,
    /// Whether `eth_blockNumber` and `eth_getBlockByNumber("latest")` say
    /// `head` too (a node that came back behind), or are forwarded (a node
    /// whose head the gateway still believes higher).
    pub probes_see_it: bool,
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
    /// HTTP requests whose body was a JSON array.
    batches: AtomicU64,
    /// HTTP requests carrying at least one call of each method.
    requests_by_method: Mutex<HashMap<String, u64>>,
    /// Calls that fail alone (see [`Tap::fail_calls`]).
    failing: Mutex<Option<CallMatch>>,
    /// Whether a batch's answers are written in reverse order.
    reverse: std::sync::atomic::AtomicBool,
    /// Whether a batch is answered 413, as by a node that takes none.
    refuse_batches: std::sync::atomic::AtomicBool,
    fault: Mutex<Fault>,
    /// When set, the fault applies only to bodies that call this method
    /// (the head tracker's probes of other methods pass).
    only: Mutex<Option<&'static str>>,
    /// Blocks of state the node seems to keep below its head (`None`: all).
    state_history: Mutex<Option<u64>>,
    missing_state: AtomicU64,
    head_lie: Mutex<Option<HeadLie>>,
    /// Bodies over this many bytes get 413 (`None`: [`MAX_BODY_BYTES`] only).
    body_limit: Mutex<Option<usize>>,
    /// Where the node seems to stand (see [`Tap::set_head_at`]).
    head_at: Mutex<Option<HeadAt>>,
    /// Calls answered "not found" by [`Tap::set_head_at`] (not reset).
    not_found: AtomicU64,
    /// `pending` nonce reads still to be answered as `latest` (see
    /// [`Tap::count_pending_as_latest`]).
    pending_as_latest: AtomicU64,
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
            batches: AtomicU64::new(0),
            requests_by_method: Mutex::new(HashMap::new()),
            failing: Mutex::new(None),
            reverse: std::sync::atomic::AtomicBool::new(false),
            refuse_batches: std::sync::atomic::AtomicBool::new(false),
            fault: Mutex::new(Fault::None),
            only: Mutex::new(None),
            state_history: Mutex::new(None),
            pending_as_latest: AtomicU64::new(0),
            missing_state: AtomicU64::new(0),
            head_lie: Mutex::new(None),
            body_limit: Mutex::new(None),
            head_at: Mutex::new(None),
            not_found: AtomicU64::new(0),
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

    /// HTTP requests whose body was a batch (a JSON array), since start or reset.
    pub fn batches(&self) -> u64 {
        self.shared.batches.load(Ordering::SeqCst)
    }

    /// HTTP requests that carried at least one call of `method` (a batch of ten
    /// `eth_getBalance` counts once), since start or reset.
    pub fn requests_of(&self, method: &str) -> u64 {
        self.shared
            .requests_by_method
            .lock()
            .get(method)
            .copied()
            .unwrap_or(0)
    }

    pub fn reset(&self) {
        self.shared.counts.lock().clear();
        self.shared.requests_by_method.lock().clear();
        self.shared.total.store(0, Ordering::SeqCst);
        self.shared.requests.store(0, Ordering::SeqCst);
        self.shared.batches.store(0, Ordering::SeqCst);
    }

    /// Fails the calls of `method` whose params contain `params_containing` (every
    /// call of it when `None`), one call at a time: inside a batch such a call is
    /// answered with a -32005 error in its place and the others are forwarded; alone,
    /// it gets HTTP 503. `None` ends it.
    pub fn fail_calls(&self, matching: Option<CallMatch>) {
        *self.shared.failing.lock() = matching;
    }

    /// Writes the answers of every batch in reverse order (ids untouched).
    pub fn reverse_batches(&self, on: bool) {
        self.shared.reverse.store(on, Ordering::SeqCst);
    }

    /// Answers every batch with HTTP 413 and forwards nothing of it, as a node or
    /// provider that takes no batches (or none that large) does.
    pub fn refuse_batches(&self, on: bool) {
        self.shared.refuse_batches.store(on, Ordering::SeqCst);
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
    /// The next `n` single `eth_getTransactionCount(…, "pending")` calls
    /// are answered as `latest`: a node whose pool is being reset for a new
    /// block, that counts none of its pending transactions for a moment.
    pub fn count_pending_as_latest(&self, n: u64) {
        self.shared.pending_as_latest.store(n, Ordering::SeqCst);
    }

    pub fn set_state_history(&self, blocks: Option<u64>) {
        *self.shared.state_history.lock() = blocks;
    }

    /// Reports another head (see the module doc); `None` tells the truth again.
    pub fn lie_about_head(&self, lie: Option<HeadLie>) {
        *self.shared.head_lie.lock() = lie;
    }

    /// State reads answered `missing trie node` by [`Tap::set_state_history`] (not reset).
    pub fn missing_state_answers(&self) -> u64 {
        self.shared.missing_state.load(Ordering::SeqCst)
    }

    /// Answers 413 to bodies longer than `bytes` (counted first, not forwarded), as
    /// Geth does over its 5 MiB; `None` ends it.
    pub fn set_body_limit(&self, bytes: Option<usize>) {
        *self.shared.body_limit.lock() = bytes;
    }

    /// Makes the node seem to stand at `at.head` (see [`HeadAt`]); `None` ends it.
    pub fn set_head_at(&self, at: Option<HeadAt>) {
        *self.shared.head_at.lock() = at;
    }

    /// Calls answered "not found" by [`Tap::set_head_at`] (not reset).
    pub fn not_found_answers(&self) -> u64 {
        self.shared.not_found.load(Ordering::SeqCst)
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
    if shared
        .body_limit
        .lock()
        .is_some_and(|limit| body.len() > limit)
    {
        return Ok(plain(
            StatusCode::PAYLOAD_TOO_LARGE,
            "content length too large",
        ));
    }
    let head_at = *shared.head_at.lock();
    let mut body = body;
    if let Some(at) = head_at {
        if let Some(answer) = seeming_head(&body, at, &shared.not_found) {
            return Ok(answer);
        }
        if let Some(lower) = at
            .probes_see_it
            .then(|| latest_at(&body, at.head))
            .flatten()
        {
            body = lower;
        }
    }

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
    if shared.refuse_batches.load(Ordering::SeqCst) && body.trim_ascii_start().starts_with(b"[") {
        return Ok(plain(StatusCode::PAYLOAD_TOO_LARGE, "tap: batches refused"));
    }
    let failing = shared.failing.lock().clone();
    let reverse = shared.reverse.load(Ordering::SeqCst);
    if failing.is_some() || reverse {
        if let Some(answer) = shared.shaped(&body, failing.as_ref(), reverse).await {
            return Ok(answer);
        }
    }
    let history = *shared.state_history.lock();
    if let Some(kept) = history {
        if let Some(answer) = shared.pruned_answer(&body, kept).await {
            return Ok(answer);
        }
    }

    if let Some(latest) = shared.pending_count_as_latest(&body) {
        body = latest;
    }
    let body_sent = body.clone();
    let upstream = Request::post(shared.target.clone())
        .header(header::CONTENT_TYPE, "application/json")
        .body(Full::new(body))?;
    let response = match shared.client.request(upstream).await {
        Ok(response) => response,
        Err(error) => return Ok(plain(StatusCode::BAD_GATEWAY, &format!("tap: {error}"))),
    };
    let (parts, body) = response.into_parts();
    let mut bytes = Limited::new(body, MAX_BODY_BYTES)
        .collect()
        .await?
        .to_bytes();
    let lie = *shared.head_lie.lock();
    if let Some(lie) = lie {
        bytes = lied(&body_sent, bytes, lie);
    }
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
    /// `body` with `pending` turned to `latest`, when it is a single pending
    /// nonce read and [`Tap::count_pending_as_latest`] has some left.
    fn pending_count_as_latest(&self, body: &Bytes) -> Option<Bytes> {
        let mut call: Value = serde_json::from_slice(body).ok()?;
        if call["method"] != "eth_getTransactionCount" || call["params"][1] != "pending" {
            return None;
        }
        self.pending_as_latest
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .ok()?;
        call["params"][1] = Value::from("latest");
        Some(Bytes::from(call.to_string()))
    }

    fn record(&self, body: &[u8]) {
        self.requests.fetch_add(1, Ordering::SeqCst);
        if body.trim_ascii_start().starts_with(b"[") {
            self.batches.fetch_add(1, Ordering::SeqCst);
        }
        let methods = methods_of(body);
        self.total.fetch_add(methods.len() as u64, Ordering::SeqCst);
        let mut carried: Vec<&String> = methods.iter().collect();
        carried.sort();
        carried.dedup();
        let mut by_request = self.requests_by_method.lock();
        for method in carried {
            *by_request.entry(method.clone()).or_insert(0) += 1;
        }
        drop(by_request);
        let mut counts = self.counts.lock();
        for method in methods {
            *counts.entry(method).or_insert(0) += 1;
        }
    }

    /// The answer when calls fail alone or batch answers are reversed; `None` to
    /// relay the body as usual.
    async fn shaped(
        &self,
        body: &Bytes,
        failing: Option<&CallMatch>,
        reverse: bool,
    ) -> Option<Response<Full<Bytes>>> {
        let calls = match serde_json::from_slice::<Value>(body).ok()? {
            Value::Array(calls) => calls,
            call => {
                let fails = failing.is_some_and(|m| m.matches(&call));
                return fails.then(|| {
                    plain(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "tap: injected call failure",
                    )
                });
            }
        };
        let (failed, passed): (Vec<Value>, Vec<Value>) = calls
            .into_iter()
            .partition(|call| failing.is_some_and(|m| m.matches(call)));
        let mut answers: Vec<Value> = failed
            .iter()
            .map(|call| {
                serde_json::json!({
                    "jsonrpc": "2.0",
                    "id": call.get("id").cloned().unwrap_or(Value::Null),
                    "error": {"code": -32005, "message": "tap: injected failure of this call"},
                })
            })
            .collect();
        if !passed.is_empty() {
            let forwarded = Request::post(self.target.clone())
                .header(header::CONTENT_TYPE, "application/json")
                .body(Full::new(Bytes::from(Value::Array(passed).to_string())))
                .ok()?;
            let response = self.client.request(forwarded).await.ok()?;
            let bytes = Limited::new(response.into_body(), MAX_BODY_BYTES)
                .collect()
                .await
                .ok()?
                .to_bytes();
            match serde_json::from_slice::<Value>(&bytes).ok()? {
                Value::Array(mut node) => {
                    node.append(&mut answers);
                    answers = node;
                }
                _ => return None,
            }
        }
        if reverse {
            answers.reverse();
        }
        let mut response = Response::new(Full::new(Bytes::from(Value::Array(answers).to_string())));
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        Some(response)
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

/// The answer of a node standing at `at.head` to a single call, when it differs
/// from the node's own: "not found" for a block above it, or that head to a probe.
fn seeming_head(body: &[u8], at: HeadAt, not_found: &AtomicU64) -> Option<Response<Full<Bytes>>> {
    let call: Value = serde_json::from_slice(body).ok()?;
    let id = call.get("id").cloned().unwrap_or(Value::Null);
    let answer = |member: &str, value: Value| {
        let mut response = Response::new(Full::new(Bytes::from(
            serde_json::json!({"jsonrpc": "2.0", "id": id, member: value}).to_string(),
        )));
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        response
    };
    let method = call.get("method")?.as_str()?;
    let first = call.get("params").and_then(|p| p.get(0));
    if at.probes_see_it && method == "eth_blockNumber" {
        return Some(answer("result", Value::from(format!("0x{:x}", at.head))));
    }
    let named = match method {
        "eth_getBlockByNumber" | "eth_getBlockReceipts" | "eth_getHeaderByNumber" => {
            first.and_then(quantity)
        }
        _ => state_block(&call),
    };
    named.filter(|&n| n > at.head).map(|_| {
        not_found.fetch_add(1, Ordering::SeqCst);
        answer(
            "error",
            serde_json::json!({"code": -32001, "message": "Resource not found"}),
        )
    })
}

/// `eth_getBlockByNumber("latest", ..)` asked as `eth_getBlockByNumber(head, ..)`:
/// the node's own block at the height it seems to stand at, with its real hash.
fn latest_at(body: &[u8], head: u64) -> Option<Bytes> {
    let mut call: Value = serde_json::from_slice(body).ok()?;
    if call.get("method")?.as_str()? != "eth_getBlockByNumber" {
        return None;
    }
    let first = call.get_mut("params")?.get_mut(0)?;
    if first.as_str()? != "latest" {
        return None;
    }
    *first = Value::from(format!("0x{head:x}"));
    Some(Bytes::from(call.to_string()))
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

/// The node's answer to a head question, with the head [`HeadLie`] says.
fn lied(request: &[u8], answer: Bytes, lie: HeadLie) -> Bytes {
    let Ok(call) = serde_json::from_slice::<Value>(request) else {
        return answer;
    };
    let method = call.get("method").and_then(Value::as_str);
    let tag = call.pointer("/params/0").and_then(Value::as_str);
    let Ok(mut reply) = serde_json::from_slice::<Value>(&answer) else {
        return answer;
    };
    let slot = match (method, tag) {
        (Some("eth_blockNumber"), _) => reply.get_mut("result"),
        (Some("eth_getBlockByNumber"), Some("latest")) => reply.pointer_mut("/result/number"),
        _ => None,
    };
    let Some(slot) = slot else {
        return answer;
    };
    let Some(head) = quantity(slot) else {
        return answer;
    };
    *slot = Value::String(format!("0x{:x}", lie.apply(head)));
    Bytes::from(reply.to_string())
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
