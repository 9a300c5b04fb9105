//! One backend node: its HTTP connections (`post`), its load, its failure count.
//!
//! Every call carries our own small integer id upstream (some nodes reject or
//! normalize ids such as `1.50`); the caller's id is put back by the
//! response stage. A reply is kept as the backend's bytes plus the span of its
//! `result` or `error` member, so that member is copied out verbatim.
//!
//! A reply's body is read against the process's answer budget
//! ([`crate::memory::answers`]), chunk by chunk; the reply holds that
//! permit until it is dropped. Its clones (the cache's copy, calls that
//! joined it in flight) do not: the cache has its own byte bound. A read
//! the budget cannot take within `server.memory_wait` fails with
//! [`UpstreamError::MemoryBudget`], which is the gateway's state, not the
//! backend's: not retried, not counted against the backend.
//!
//! Failures the request caused are not the backend's either
//! ([`UpstreamError::client_caused`]): a body over the backends' own limit
//! (refused here before it is sent, or answered 413), another 4xx but 429,
//! a reply over `max_response_bytes`, a timeout of a call that runs on the
//! caller's own long clock. They neither eject nor weigh on the latency
//! estimate, and no other backend is asked: it would fail the same way.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper_util::client::legacy::connect::HttpConnector;

use super::latency::PeakEwma;
use super::tls::{self, Connector, UpstreamStream};
use crate::config::{UpstreamConfig, UpstreamTier};
use crate::jsonrpc::Reply;
use crate::metrics::{Metrics, UpstreamOutcome, UpstreamSeries};
use post::Transport;

pub(super) mod batch;
mod doubt;
mod gate;
mod post;

pub use doubt::HeadDoubt;

/// How backends open connections: TCP settings shared by the plain
/// backends of a process (a TLS backend gets its own, with its roots). Each
/// backend keeps its own connections (`pool`).
#[derive(Clone)]
pub struct HttpClient {
    connector: Connector,
}

/// The connection settings of plain-HTTP backends.
pub fn http_client() -> HttpClient {
    HttpClient {
        connector: connector_with(None),
    }
}

/// A connector whose `https` connections use `tls`.
fn connector_with(tls: Option<Arc<rustls::ClientConfig>>) -> Connector {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(Duration::from_secs(2)));
    connector.set_keepalive(Some(Duration::from_secs(30)));
    Connector::new(connector, tls)
}

/// `error` and its sources, one after the other: hyper's own text says only
/// "client error (Connect)", the reason (a refused certificate, say) is in
/// its sources. None of them holds the URL.
pub(super) fn with_sources(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

/// Why a call to a backend did not produce a JSON-RPC reply.
#[derive(Debug, Clone, thiserror::Error)]
pub enum UpstreamError {
    #[error("cannot connect: {0}")]
    Connect(String),
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error("connection failed: {0}")]
    Transport(String),
    #[error("HTTP status {0}")]
    Status(u16),
    /// A 4xx other than 429 without a JSON-RPC body: the node refused the
    /// request as such (413: too large for it).
    #[error("the backend refused the request (HTTP status {0})")]
    Refused(u16),
    /// The body would exceed `max_upstream_body_bytes`: not sent.
    #[error("request of {len} bytes exceeds the backends' limit of {max} bytes")]
    RequestTooLarge { len: usize, max: usize },
    #[error("reply larger than {0} bytes")]
    TooLarge(usize),
    /// A call that runs on its caller's own long clock (a method with a
    /// longer `method_timeouts` entry, `eth_sendRawTransactionSync`) ran out.
    #[error("the call did not finish within its {0:?} limit")]
    CallTimeout(Duration),
    #[error("reply is not a JSON-RPC response")]
    BadReply,
    #[error("server busy: memory budget")]
    MemoryBudget,
}

impl UpstreamError {
    /// Its `outcome` label in the upstream metrics.
    pub fn outcome(&self) -> UpstreamOutcome {
        match self {
            UpstreamError::Connect(_) => UpstreamOutcome::Connect,
            UpstreamError::Timeout(_) | UpstreamError::CallTimeout(_) => UpstreamOutcome::Timeout,
            UpstreamError::Transport(_) => UpstreamOutcome::Transport,
            UpstreamError::Status(_) | UpstreamError::Refused(_) => UpstreamOutcome::Status,
            UpstreamError::TooLarge(_) | UpstreamError::RequestTooLarge { .. } => {
                UpstreamOutcome::TooLarge
            }
            UpstreamError::BadReply => UpstreamOutcome::BadReply,
            UpstreamError::MemoryBudget => UpstreamOutcome::Memory,
        }
    }

    /// Whether another backend may do better with the same read: not when
    /// the request caused the failure, nor when the gateway's memory did.
    pub fn worth_retrying(&self) -> bool {
        !self.client_caused() && !matches!(self, UpstreamError::MemoryBudget)
    }

    /// Whether the request, not the backend, caused the failure: it says
    /// nothing of the backend's health (F5 of the security review: a body
    /// that grows past Geth's 5 MiB when pinned made every backend "fail").
    pub fn client_caused(&self) -> bool {
        matches!(
            self,
            UpstreamError::Refused(_)
                | UpstreamError::RequestTooLarge { .. }
                | UpstreamError::TooLarge(_)
                | UpstreamError::CallTimeout(_)
        )
    }

    /// Whether the backend surely did not act on the request: a write such as
    /// `eth_sendRawTransaction` may be sent elsewhere only then.
    pub fn surely_not_received(&self) -> bool {
        matches!(self, UpstreamError::Connect(_) | UpstreamError::Status(429))
    }
}

/// `state_history` when none is known.
const UNKNOWN_HISTORY: u64 = u64::MAX;

/// How long a learned state window holds: then reads below it may reach
/// the backend again, and its next "missing state" answer teaches it anew.
/// A node that was resyncing, or whose operator raised its history, is not
/// kept narrow for the life of the process.
const RELEARN_AFTER: Duration = Duration::from_secs(600);

/// Methods that carry the caller's own clock: a timeout of theirs is the
/// call's, not the backend's.
const CALLER_TIMED: [&str; 1] = ["eth_sendRawTransactionSync"];

/// Milliseconds since the first call in this process (for atomics).
fn now_ms() -> u64 {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    let epoch = *EPOCH.get_or_init(Instant::now);
    u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// [`RELEARN_AFTER`] in milliseconds.
fn relearn_ms() -> u64 {
    u64::try_from(RELEARN_AFTER.as_millis()).unwrap_or(u64::MAX)
}

/// What a backend is asked to do per request, beyond its URL: the limits of
/// the network that uses it.
#[derive(Debug, Clone, Copy)]
pub struct CallLimits {
    /// A reply longer than this is an error ([`UpstreamError::TooLarge`]).
    pub max_reply_bytes: usize,
    /// A request body longer than this is not sent (the backends' own
    /// limit: Geth's is 5 MiB).
    pub max_request_bytes: usize,
    /// Consecutive failures that eject it.
    pub eject_after: u32,
    /// The network's `request_timeout`: a call given longer (its
    /// `method_timeouts` entry) runs on its own clock.
    pub request_timeout: Duration,
    /// Requests in flight to it at once (0: no limit), and how reads that
    /// wait for one are batched (see [`gate`]).
    pub max_in_flight: usize,
    pub saturated_batch_max: usize,
    pub saturated_batch_max_bytes: usize,
}

/// One backend node of a network.
pub struct Backend {
    pub name: String,
    pub ws: Option<http::Uri>,
    /// The upstream's own headers (`headers:`), on every HTTP request and
    /// WebSocket handshake to it.
    pub headers: http::HeaderMap,
    /// Its HTTP connections.
    transport: Transport,
    /// Its bound on requests in flight, and the queue of reads batched
    /// while it is reached (None: no bound).
    gate: Option<gate::Gate>,
    /// TLS settings for its https/wss URLs (None when it has neither).
    tls: Option<Arc<rustls::ClientConfig>>,
    next_id: AtomicU64,
    max_reply_bytes: usize,
    max_request_bytes: usize,
    request_timeout: Duration,
    pub load: PeakEwma,
    consecutive_failures: AtomicU32,
    ejected: AtomicBool,
    eject_after: u32,
    /// Whether its head is known (see [`HeadDoubt`]).
    pub head_doubt: HeadDoubt,
    series: UpstreamSeries,
    pub tier: UpstreamTier,
    /// `state_history` from the config, else [`UNKNOWN_HISTORY`].
    configured_history: u64,
    /// The window its "missing state" answers have taught (blocks of state
    /// kept below its head), else [`UNKNOWN_HISTORY`]; only lowered, and
    /// forgotten [`RELEARN_AFTER`] the last lesson.
    learned_history: AtomicU64,
    /// Until when it holds ([`now_ms`]): [`RELEARN_AFTER`] the last time it
    /// was lowered.
    learned_until: AtomicU64,
    /// The deepest state read it answered (blocks below its head then).
    proven_history: AtomicU64,
    /// State reads it answered with "missing state" (retried elsewhere).
    missing_state: AtomicU64,
    /// For a fallback: idle while primaries serve (set by the view builder).
    standby: AtomicBool,
    /// Tells the head tracker that `standby` changed.
    standby_changed: tokio::sync::Notify,
    /// A height whose block the view builder wants from it (0: none).
    ask: AtomicU64,
    /// Tells the head tracker that `ask` changed.
    asked: tokio::sync::Notify,
    /// Times the view found it on another chain than the agreeing backends.
    chain_mismatches: AtomicU64,
}

impl Backend {
    pub fn new(
        network: &str,
        cfg: &UpstreamConfig,
        client: HttpClient,
        max_reply_bytes: usize,
        eject_after: u32,
        metrics: &Metrics,
    ) -> Arc<Backend> {
        let limits = CallLimits {
            max_reply_bytes,
            max_request_bytes: usize::MAX,
            eject_after,
            request_timeout: Duration::MAX,
            max_in_flight: 0,
            saturated_batch_max: 0,
            saturated_batch_max_bytes: 0,
        };
        Backend::with_limits(network, cfg, client, limits, metrics)
    }

    /// [`Backend::new`] with all of its network's per-request limits.
    pub fn with_limits(
        network: &str,
        cfg: &UpstreamConfig,
        client: HttpClient,
        limits: CallLimits,
        metrics: &Metrics,
    ) -> Arc<Backend> {
        let uses_tls = tls::is_tls(&cfg.http) || cfg.ws.as_ref().is_some_and(tls::is_tls);
        let tls = uses_tls.then(|| tls::client_config(cfg.tls.as_ref()));
        let connector = match &tls {
            Some(config) if tls::is_tls(&cfg.http) => connector_with(Some(config.clone())),
            _ => client.connector,
        };
        Arc::new(Backend {
            name: cfg.name.clone(),
            ws: cfg.ws.clone(),
            headers: cfg.headers.clone(),
            transport: Transport::new(connector, &cfg.http, &cfg.headers),
            gate: gate::Gate::new(&limits),
            tls,
            next_id: AtomicU64::new(1),
            max_reply_bytes: limits.max_reply_bytes,
            max_request_bytes: limits.max_request_bytes,
            request_timeout: limits.request_timeout,
            load: PeakEwma::new(Duration::from_millis(5)),
            consecutive_failures: AtomicU32::new(0),
            ejected: AtomicBool::new(false),
            eject_after: limits.eject_after,
            head_doubt: HeadDoubt::default(),
            series: metrics.upstream(network, &cfg.name),
            tier: cfg.tier,
            configured_history: cfg.state_history.unwrap_or(UNKNOWN_HISTORY),
            learned_history: AtomicU64::new(UNKNOWN_HISTORY),
            learned_until: AtomicU64::new(0),
            proven_history: AtomicU64::new(0),
            missing_state: AtomicU64::new(0),
            standby: AtomicBool::new(cfg.tier == UpstreamTier::Fallback),
            standby_changed: tokio::sync::Notify::new(),
            ask: AtomicU64::new(0),
            asked: tokio::sync::Notify::new(),
            chain_mismatches: AtomicU64::new(0),
        })
    }

    /// Blocks of state it keeps below its head, as configured or learned
    /// (the smaller); `None`: not known to lack any (an archive node).
    pub fn state_history(&self) -> Option<u64> {
        let kept = self.configured_history.min(self.learned());
        (kept != UNKNOWN_HISTORY).then_some(kept)
    }

    /// The learned window while it holds, else [`UNKNOWN_HISTORY`].
    fn learned(&self) -> u64 {
        let learned = self.learned_history.load(Ordering::Relaxed);
        if learned == UNKNOWN_HISTORY || now_ms() < self.learned_until.load(Ordering::Relaxed) {
            learned
        } else {
            UNKNOWN_HISTORY
        }
    }

    /// Notes that it lacked the state of block `block` while at head `head`
    /// (depth `d = head - block`): it keeps fewer than `d` blocks. The
    /// window is then taken as half of that, but never below a depth it has
    /// served (see [`Backend::held_state`]): stepping down by one block at a
    /// time would let a client walking forward through history (an indexer,
    /// each read one block shallower) hit the pruned node on every read,
    /// while halving finds the window in a few answers; the cost is that the
    /// window may be taken up to twice too small, sending some reads to an
    /// archive node that the pruned one could have served. Returns whether
    /// that narrowed what was known (the view should be rebuilt).
    pub fn lacks_state(&self, block: u64, head: u64) -> bool {
        self.missing_state.fetch_add(1, Ordering::Relaxed);
        let depth = head.saturating_sub(block);
        let served = self.proven_history.load(Ordering::Relaxed);
        let kept = (depth / 2).max(served.min(depth.saturating_sub(1)));
        if self.learned() == UNKNOWN_HISTORY {
            // Nothing learned, or the lesson expired: this one starts anew.
            self.learned_history
                .store(UNKNOWN_HISTORY, Ordering::Relaxed);
        }
        let before = self.learned_history.fetch_min(kept, Ordering::Relaxed);
        let narrowed = kept < before;
        if narrowed {
            self.learned_until
                .store(now_ms().saturating_add(relearn_ms()), Ordering::Relaxed);
        }
        narrowed && kept < self.configured_history
    }

    /// Notes that it answered a read of block `block`'s state at head `head`:
    /// it keeps at least `head - block` blocks, a floor for what
    /// [`Backend::lacks_state`] learns.
    pub fn held_state(&self, block: u64, head: u64) {
        let depth = head.saturating_sub(block);
        if depth > self.proven_history.load(Ordering::Relaxed) {
            self.proven_history.fetch_max(depth, Ordering::Relaxed);
        }
    }

    /// State reads it answered with "missing state".
    pub fn missing_state_answers(&self) -> u64 {
        self.missing_state.load(Ordering::Relaxed)
    }

    /// A fallback idle while primaries serve: probed rarely, sent nothing.
    pub fn in_standby(&self) -> bool {
        self.standby.load(Ordering::Relaxed)
    }

    /// Moves a fallback in or out of standby (the view builder decides);
    /// its head tracker is woken to change its pace.
    pub fn set_standby(&self, standby: bool) {
        if self.tier == UpstreamTier::Fallback
            && self.standby.swap(standby, Ordering::Relaxed) != standby
        {
            self.standby_changed.notify_one();
        }
    }

    /// Resolves when `standby` changed since the last call (for the head tracker).
    pub(super) async fn standby_changed(&self) {
        self.standby_changed.notified().await;
    }

    /// Asks its head tracker for its block at `number` (the view builder
    /// compares it with the others'); repeated asks of one height wake it once.
    pub fn ask(&self, number: u64) {
        if number != 0 && self.ask.swap(number, Ordering::Relaxed) != number {
            self.asked.notify_one();
        }
    }

    /// Resolves when the view builder asked for a block (for the head tracker).
    pub(super) async fn asked(&self) {
        self.asked.notified().await;
    }

    /// The height asked about, cleared: a later ask of it wakes the tracker again.
    pub(super) fn take_ask(&self) -> Option<u64> {
        Some(self.ask.swap(0, Ordering::Relaxed)).filter(|n| *n != 0)
    }

    /// Counts a move onto another chain than the agreeing backends'.
    pub fn count_chain_mismatch(&self) {
        self.chain_mismatches.fetch_add(1, Ordering::Relaxed);
    }

    pub fn chain_mismatches(&self) -> u64 {
        self.chain_mismatches.load(Ordering::Relaxed)
    }

    pub fn is_ejected(&self) -> bool {
        self.ejected.load(Ordering::Relaxed)
    }

    /// A call on the request path: counted in the load estimate and in the
    /// failure count that ejects a backend. Returns true in the second field
    /// when this failure just ejected the backend. With a bound on requests
    /// in flight, it waits for a free slot, and a read may go in a batch
    /// with others waiting (see [`gate`]).
    pub async fn call(
        &self,
        method: &str,
        params: Option<&str>,
        timeout: Duration,
    ) -> (Result<Reply, UpstreamError>, bool) {
        match &self.gate {
            // Boxed: a bound on requests in flight is the rare case, and
            // its future holds the plain call's besides its own.
            Some(gate) => Box::pin(self.gated(gate, method, params, timeout)).await,
            None => self.call_alone(method, params, timeout).await,
        }
    }

    /// [`Backend::call`] once it may send: alone, at once.
    async fn call_alone(
        &self,
        method: &str,
        params: Option<&str>,
        timeout: Duration,
    ) -> (Result<Reply, UpstreamError>, bool) {
        let _in_flight = self.load.start();
        let started = Instant::now();
        let mut res = self.exchange(method, params, timeout).await;
        if let Err(UpstreamError::Timeout(limit)) = res {
            if timeout > self.request_timeout || CALLER_TIMED.contains(&method) {
                res = Err(UpstreamError::CallTimeout(limit));
            }
        }
        let rtt = started.elapsed();
        self.series.duration.observe(rtt.as_secs_f64());
        match &res {
            Ok(reply) if reply.is_error() => self.series.rpc_error.inc(),
            Ok(_) => self.series.ok.inc(),
            Err(e) => self.series.failed(e.outcome()),
        }
        match &res {
            Ok(_) => {
                self.load.observe(rtt);
                self.consecutive_failures.store(0, Ordering::Relaxed);
                (res, false)
            }
            // The gateway's memory was full, or the request was at fault:
            // the backend did nothing wrong.
            Err(e) if e.client_caused() || matches!(e, UpstreamError::MemoryBudget) => (res, false),
            Err(_) => {
                // A failure counts as slow, so the backend is avoided at once.
                self.load.observe(rtt.max(timeout));
                let n = self.consecutive_failures.fetch_add(1, Ordering::Relaxed) + 1;
                let ejected_now =
                    n >= self.eject_after && !self.ejected.swap(true, Ordering::Relaxed);
                (res, ejected_now)
            }
        }
    }

    /// Re-admits an ejected backend after a successful probe that took
    /// `probe_rtt`. Returns whether it was ejected. A backend that comes
    /// back (re-admitted, or reachable again after probes failed) starts
    /// its latency estimate again from the probe's round trip: the failure
    /// penalty it carries would keep it from the traffic that could lower it.
    pub fn readmit(&self, probe_rtt: Duration, was_unreachable: bool) -> bool {
        self.consecutive_failures.store(0, Ordering::Relaxed);
        let was = self.ejected.swap(false, Ordering::Relaxed);
        if was || was_unreachable {
            self.load.reset(probe_rtt);
        }
        was
    }

    /// One JSON-RPC call, with no bookkeeping (used by probes).
    pub async fn exchange(
        &self,
        method: &str,
        params: Option<&str>,
        timeout: Duration,
    ) -> Result<Reply, UpstreamError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let body = request_body(id, method, params);
        if body.len() > self.max_request_bytes {
            return Err(UpstreamError::RequestTooLarge {
                len: body.len(),
                max: self.max_request_bytes,
            });
        }
        let exchange = async {
            let (status, body, held) = self.post(body).await?;
            match Reply::from_body(body) {
                Some(r) => Ok(r.holding(held)),
                // A non-JSON-RPC body with an error status is reported as
                // the status: a 4xx refused the request as such.
                None if status.is_client_error() => Err(UpstreamError::Refused(status.as_u16())),
                None if !status.is_success() => Err(UpstreamError::Status(status.as_u16())),
                None => Err(UpstreamError::BadReply),
            }
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .unwrap_or(Err(UpstreamError::Timeout(timeout)))
    }
}

impl Backend {
    /// Opens a WebSocket to `url` (its `ws`, `ws://` or `wss://`) with its
    /// headers, over TLS when the URL says so. Callers bound the time.
    pub async fn connect_ws(
        &self,
        url: &http::Uri,
    ) -> Result<tokio_tungstenite::WebSocketStream<UpstreamStream>, String> {
        let request = ws_request(url, &self.headers)?;
        let stream = tls::connect(url, self.tls.as_ref())
            .await
            .map_err(|e| e.to_string())?;
        let (ws, _) = tokio_tungstenite::client_async(request, stream)
            .await
            .map_err(|e| e.to_string())?;
        Ok(ws)
    }
}

/// The WebSocket handshake request for `url` with the upstream's `headers`.
pub fn ws_request(url: &http::Uri, headers: &http::HeaderMap) -> Result<http::Request<()>, String> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut request = url
        .to_string()
        .into_client_request()
        .map_err(|e| e.to_string())?;
    for (name, value) in headers {
        request.headers_mut().insert(name, value.clone());
    }
    Ok(request)
}

fn request_body(id: u64, method: &str, params: Option<&str>) -> Bytes {
    let mut out = Vec::with_capacity(64 + method.len() + params.map_or(0, str::len));
    out.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"id\":");
    out.extend_from_slice(super::lean::decimal(id, &mut [0u8; 20]));
    out.extend_from_slice(b",\"method\":");
    serde_json::to_writer(&mut out, method).expect("string serialization is infallible");
    if let Some(p) = params {
        out.extend_from_slice(b",\"params\":");
        out.extend_from_slice(p.as_bytes());
    }
    out.push(b'}');
    out.into()
}

#[cfg(test)]
mod tests;
