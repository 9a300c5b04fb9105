//! The HTTP tier: path to network, method, content type, the caller's
//! identity (before the body is read) and body limits, then the calls of the
//! body, each admitted by the client policy and answered in order.
//!
//! Each call is counted in `rpcgate_requests_total` by how it ended. A
//! request that fails gets one log line carrying a request id (the caller's
//! `X-Request-Id` when it is short and plain, else a random one), and the id
//! goes back in the response's `X-Request-Id`, so a user's report can be
//! matched with the log. The id is only formatted when something fails.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use futures_util::future::join_all;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use tokio::sync::Semaphore;

use super::rescue::{self, HttpRefusal};
use super::Gateway;
use crate::jsonrpc::{self, error_response, join_batch, Call, Entry, ErrorObject, Id, Payload};
use crate::metrics::{metrics, Outcome};
use crate::policy::{Caller, Refusal};
use crate::router;
use crate::upstream::{Network, NetworkView, Reply, ReplyKind};

type Body = Full<Bytes>;

pub async fn handle(
    gateway: Arc<Gateway>,
    peer: SocketAddr,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let request_id = RequestId::of(&req);
    let mut response = match serve(&gateway, peer, req, &request_id).await {
        Ok(response) => response,
        Err(refusal) => {
            let (object, status) = rescue::http(&refusal);
            tracing::info!(request_id = %request_id, %peer, status = status.as_u16(), error = %object.message, "request refused");
            request_id.failed();
            let mut response = json(status, error_response(Id::NULL, &object));
            if matches!(refusal, HttpRefusal::MethodNotAllowed) {
                response
                    .headers_mut()
                    .insert(header::ALLOW, HeaderValue::from_static("POST"));
            }
            if matches!(refusal, HttpRefusal::Unauthorized(_)) {
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            response
        }
    };
    if request_id.has_failed() {
        if let Ok(value) = HeaderValue::from_str(&request_id.to_string()) {
            response.headers_mut().insert(X_REQUEST_ID, value);
        }
    }
    metrics().http_response(response.status());
    Ok(response)
}

const X_REQUEST_ID: header::HeaderName = header::HeaderName::from_static("x-request-id");

/// The id a failed request is logged and answered with.
pub struct RequestId {
    /// The caller's own id, when it is short and made of plain characters.
    given: Option<HeaderValue>,
    random: u64,
    failed: AtomicBool,
}

impl RequestId {
    fn of<B>(req: &Request<B>) -> RequestId {
        let plain = |v: &&HeaderValue| {
            let b = v.as_bytes();
            !b.is_empty()
                && b.len() <= 64
                && b.iter()
                    .all(|c| c.is_ascii_alphanumeric() || b"-_.:".contains(c))
        };
        RequestId {
            given: req.headers().get(&X_REQUEST_ID).filter(plain).cloned(),
            random: fastrand::u64(..),
            failed: AtomicBool::new(false),
        }
    }

    /// Marks the request as failed: its answer will carry the id.
    fn failed(&self) {
        self.failed.store(true, Ordering::Relaxed);
    }

    fn has_failed(&self) -> bool {
        self.failed.load(Ordering::Relaxed)
    }
}

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.given.as_ref().and_then(|v| v.to_str().ok()) {
            Some(given) => f.write_str(given),
            None => write!(f, "{:016x}", self.random),
        }
    }
}

/// What each call of a request is counted and logged with.
struct Ctx<'a> {
    network: &'a Network,
    view: &'a NetworkView,
    client: &'a str,
    request_id: &'a RequestId,
}

impl Ctx<'_> {
    fn count(&self, method: &str, outcome: Outcome, elapsed: Option<Duration>) {
        metrics().call(
            &self.network.config.name,
            method,
            self.client,
            outcome,
            elapsed,
        );
    }

    /// One log line for a call that failed or was refused.
    fn log_failure(&self, method: &str, outcome: Outcome, error: &ErrorObject) {
        self.request_id.failed();
        let method = bounded(method);
        let network = &self.network.config.name;
        let outcome = outcome.label();
        let (request_id, client, code) = (self.request_id, self.client, error.code);
        if outcome == Outcome::Failed.label() {
            tracing::warn!(request_id = %request_id, network = %network, client, method, outcome, code, error = %error.message, "request failed");
        } else {
            tracing::info!(request_id = %request_id, network = %network, client, method, outcome, code, error = %error.message, "request failed");
        }
    }
}

/// A connection over the per-IP cap: one 429 written without waiting (it
/// fits any socket buffer), then closed. No task, so a flood of them holds
/// nothing.
pub fn refuse_connection(stream: tokio::net::TcpStream) {
    const TOO_MANY: &[u8] = b"HTTP/1.1 429 Too Many Requests\r\nretry-after: 1\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";
    let _ = stream.try_write(TOO_MANY);
}

async fn serve(
    gateway: &Gateway,
    peer: SocketAddr,
    req: Request<Incoming>,
    request_id: &RequestId,
) -> Result<Response<Body>, HttpRefusal> {
    let routes = gateway.routes();
    let (network, path_key) = routes
        .resolve(req.uri().path())
        .ok_or(HttpRefusal::UnknownNetwork)?;
    let network = network.clone();
    if req.method() != Method::POST {
        return Err(HttpRefusal::MethodNotAllowed);
    }
    if !json_content_type(req.headers().get(header::CONTENT_TYPE)) {
        return Err(HttpRefusal::UnsupportedMediaType);
    }
    let policy = &routes.policy;
    let caller = policy
        .identify(peer.ip(), req.headers(), path_key)
        .map_err(HttpRefusal::Unauthorized)?;
    let limit = routes.limits.max_body_bytes;
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(HttpRefusal::TooLarge { limit });
    }
    let read = Limited::new(req.into_body(), limit).collect();
    let body = tokio::time::timeout(routes.limits.body_read_timeout, read)
        .await
        .map_err(|_| HttpRefusal::BodyTimeout)?
        .map_err(|e| {
            if e.is::<http_body_util::LengthLimitError>() {
                HttpRefusal::TooLarge { limit }
            } else {
                HttpRefusal::BodyRead
            }
        })?;
    let body = body.to_bytes();
    let view = network.view();
    let ctx = Ctx {
        network: &network,
        view: &view,
        client: caller.name(),
        request_id,
    };
    let mut retry_after = None;
    let (status, answer) = match jsonrpc::parse(
        &body,
        routes.limits.max_batch_len,
        routes.limits.max_method_len,
    ) {
        Err(e) => {
            let object = rescue::payload(&e);
            ctx.count("", Outcome::Invalid, None);
            ctx.log_failure("", Outcome::Invalid, &object);
            (StatusCode::OK, Some(error_response(Id::NULL, &object)))
        }
        Ok(Payload::Single(entry)) => {
            let admitted = admit(policy, &caller, &entry).await;
            if let Err(refusal) = &admitted {
                retry_after = refusal.retry_after();
            }
            answer(&ctx, entry, admitted).await
        }
        Ok(Payload::Batch(entries)) => {
            // Admitted in order before any is routed: a batch costs the sum of
            // its entries, and which entries pass does not depend on timing.
            let mut verdicts = Vec::with_capacity(entries.len());
            for entry in &entries {
                verdicts.push(admit(policy, &caller, entry).await);
            }
            let limited = verdicts
                .iter()
                .filter_map(|v| v.as_ref().err()?.retry_after());
            let all_limited = verdicts
                .iter()
                .all(|v| v.as_ref().err().and_then(Refusal::retry_after).is_some());
            if all_limited {
                retry_after = limited.max();
            }
            // Bounded concurrency and a size budget: a batch of heavy calls cannot
            // hold more than a few large replies at once.
            let used = AtomicUsize::new(0);
            let budget = routes.limits.max_batch_response_bytes;
            let slots = Semaphore::new(routes.limits.batch_concurrency);
            let answers = join_all(entries.into_iter().zip(verdicts).map(
                |(entry, admitted)| async {
                    let _slot = slots
                        .acquire()
                        .await
                        .expect("the semaphore is never closed");
                    batch_entry(&ctx, entry, admitted, &used, budget).await
                },
            ))
            .await;
            let parts: Vec<Bytes> = answers.into_iter().flatten().collect();
            // A batch of notifications only gets no answer at all; a batch
            // refused whole by rate limits is a 429.
            let status = if all_limited {
                StatusCode::TOO_MANY_REQUESTS
            } else {
                StatusCode::OK
            };
            (status, (!parts.is_empty()).then(|| join_batch(&parts)))
        }
    };
    let mut response = match answer {
        Some(body) => json(status, body),
        None => empty(status),
    };
    if let Some(wait) = retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, retry_after_value(wait));
    }
    Ok(response)
}

/// The policy's verdict on one entry (invalid entries are answered as such).
async fn admit(
    policy: &crate::policy::Policy,
    caller: &Caller<'_>,
    entry: &Entry<'_>,
) -> Result<(), Refusal> {
    match entry {
        Ok(call) => policy.admit(caller, &call.method).await,
        Err(_) => Ok(()),
    }
}

/// Whole seconds, rounded up, at least 1.
fn retry_after_value(wait: Duration) -> HeaderValue {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    HeaderValue::from(secs.max(1))
}

/// One batch entry, refused once the batch's answers are over `budget` bytes.
async fn batch_entry(
    ctx: &Ctx<'_>,
    entry: Entry<'_>,
    admitted: Result<(), Refusal>,
    used: &AtomicUsize,
    budget: usize,
) -> Option<Bytes> {
    if used.load(Ordering::Relaxed) > budget {
        let object = rescue::batch_over_budget(budget);
        let (method, id) = match &entry {
            Ok(call) => (call.method.as_ref(), call.id.map(|_| call.reply_id())),
            Err(invalid) => ("", Some(invalid.id)),
        };
        ctx.count(method, Outcome::Limited, None);
        ctx.log_failure(method, Outcome::Limited, &object);
        return Some(error_response(id?, &object));
    }
    let (_, answer) = answer(ctx, entry, admitted).await;
    if let Some(a) = &answer {
        used.fetch_add(a.len(), Ordering::Relaxed);
    }
    answer
}

/// One entry: `None` for a notification.
async fn answer(
    ctx: &Ctx<'_>,
    entry: Entry<'_>,
    admitted: Result<(), Refusal>,
) -> (StatusCode, Option<Bytes>) {
    let call = match entry {
        Ok(call) => call,
        Err(invalid) => {
            let object = rescue::invalid(&invalid);
            ctx.count("", Outcome::Invalid, None);
            ctx.log_failure("", Outcome::Invalid, &object);
            return (StatusCode::OK, Some(error_response(invalid.id, &object)));
        }
    };
    if let Err(refusal) = admitted {
        let (object, status) = rescue::policy(&refusal);
        let outcome = match refusal {
            Refusal::MethodBlocked(_) => Outcome::Blocked,
            _ => Outcome::Limited,
        };
        ctx.count(&call.method, outcome, None);
        ctx.log_failure(&call.method, outcome, &object);
        return (
            status,
            (!call.is_notification()).then(|| error_response(call.reply_id(), &object)),
        );
    }
    let started = Instant::now();
    let routed = router::route(ctx.network, ctx.view, &call).await;
    let elapsed = Some(started.elapsed());
    let (status, body) = match routed {
        Ok(reply) => {
            let outcome = match reply.kind {
                ReplyKind::Result => Outcome::Ok,
                ReplyKind::Error => Outcome::RpcError,
            };
            ctx.count(&call.method, outcome, elapsed);
            (StatusCode::OK, reply_body(&call, &reply))
        }
        Err(e) => {
            let (object, status) = rescue::route(&e);
            ctx.count(&call.method, Outcome::Failed, elapsed);
            let detailed = ErrorObject::new(object.code, e.to_string());
            ctx.log_failure(&call.method, Outcome::Failed, &detailed);
            (status, error_response(call.reply_id(), &object))
        }
    };
    (status, (!call.is_notification()).then_some(body))
}

fn reply_body(call: &Call<'_>, reply: &Reply) -> Bytes {
    let member: &[u8] = match reply.kind {
        ReplyKind::Result => b"result",
        ReplyKind::Error => b"error",
    };
    jsonrpc::raw_member(call.reply_id(), member, reply.raw())
}

/// Method names come from clients: log a bounded form.
fn bounded(method: &str) -> &str {
    let end = method
        .char_indices()
        .nth(64)
        .map_or(method.len(), |(i, _)| i);
    &method[..end]
}

/// application/json (and the two JSON-RPC variants Geth also accepts), or no content type.
fn json_content_type(value: Option<&HeaderValue>) -> bool {
    let Some(value) = value else { return true };
    let Ok(value) = value.to_str() else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    matches!(
        essence.as_str(),
        "application/json" | "application/json-rpc" | "application/jsonrequest"
    )
}

fn json(status: StatusCode, body: Bytes) -> Response<Body> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn empty(status: StatusCode) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = status;
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types() {
        let ok = |v: &str| json_content_type(Some(&HeaderValue::from_str(v).unwrap()));
        assert!(json_content_type(None));
        assert!(ok("application/json"));
        assert!(ok("Application/JSON; charset=utf-8"));
        assert!(ok("application/json-rpc"));
        assert!(!ok("text/plain"));
        assert!(!ok("application/x-www-form-urlencoded"));
    }
}
