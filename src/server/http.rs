//! The HTTP tier: path to network, method, content type, the caller's
//! identity (before the body is read) and body limits, then the calls of the
//! body, each admitted by the client policy and answered in order.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use std::sync::atomic::{AtomicUsize, Ordering};

use futures_util::future::join_all;
use futures_util::FutureExt;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use tokio::sync::Semaphore;

use super::rescue::{self, HttpRefusal};
use super::Gateway;
use crate::jsonrpc::{self, error_response, join_batch, Call, Entry, Id, Payload};
use crate::policy::{Caller, Refusal};
use crate::router;
use crate::upstream::{Network, NetworkView, Reply, ReplyKind};

type Body = Full<Bytes>;

pub async fn handle(
    gateway: Arc<Gateway>,
    peer: SocketAddr,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    Ok(match serve(&gateway, peer, req).await {
        Ok(response) => response,
        Err(refusal) => {
            let (object, status) = rescue::http(&refusal);
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
    })
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
) -> Result<Response<Body>, HttpRefusal> {
    let routes = gateway.routes();
    let (network, path_key) = routes
        .resolve(req.uri().path())
        .ok_or(HttpRefusal::UnknownNetwork)?;
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
    // A small body usually came with the headers: taken at once, without
    // arming the read timer.
    let mut read = std::pin::pin!(read_body(req.into_body(), limit));
    let body = match read.as_mut().now_or_never() {
        Some(done) => done?,
        None => tokio::time::timeout(routes.limits.body_read_timeout, read)
            .await
            .map_err(|_| HttpRefusal::BodyTimeout)??,
    };
    let view = network.view();
    let mut retry_after = None;
    let (status, answer) = match jsonrpc::parse(
        &body,
        routes.limits.max_batch_len,
        routes.limits.max_method_len,
    ) {
        Err(e) => (
            StatusCode::OK,
            Some(error_response(Id::NULL, &rescue::payload(&e))),
        ),
        Ok(Payload::Single(entry)) => {
            let admitted = admit(policy, &caller, &entry).await;
            if let Err(refusal) = &admitted {
                retry_after = refusal.retry_after();
            }
            answer(network, &view, entry, admitted).await
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
                    batch_entry(network, &view, entry, admitted, &used, budget).await
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

/// The whole body, at most `limit` bytes. A body that arrives in one frame
/// (a small call, sent with its headers) is kept as it came, without a copy.
async fn read_body(mut body: Incoming, limit: usize) -> Result<Bytes, HttpRefusal> {
    let mut whole = Bytes::new();
    let mut joined: Option<BytesMut> = None;
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame.map_err(|_| HttpRefusal::BodyRead)?.into_data() else {
            continue; // trailers
        };
        let len = joined.as_ref().map_or(whole.len(), BytesMut::len) + data.len();
        if len > limit {
            return Err(HttpRefusal::TooLarge { limit });
        }
        match &mut joined {
            Some(buf) => buf.extend_from_slice(&data),
            None if whole.is_empty() => whole = data,
            None => {
                let mut buf = BytesMut::with_capacity(len);
                buf.extend_from_slice(&whole);
                buf.extend_from_slice(&data);
                joined = Some(buf);
            }
        }
    }
    Ok(joined.map_or(whole, BytesMut::freeze))
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
    network: &Network,
    view: &NetworkView,
    entry: Entry<'_>,
    admitted: Result<(), Refusal>,
    used: &AtomicUsize,
    budget: usize,
) -> Option<Bytes> {
    if used.load(Ordering::Relaxed) > budget {
        let id = match &entry {
            Ok(call) if call.is_notification() => return None,
            Ok(call) => call.reply_id(),
            Err(invalid) => invalid.id,
        };
        return Some(error_response(id, &rescue::batch_over_budget(budget)));
    }
    let (_, answer) = answer(network, view, entry, admitted).await;
    if let Some(a) = &answer {
        used.fetch_add(a.len(), Ordering::Relaxed);
    }
    answer
}

/// One entry: `None` for a notification.
async fn answer(
    network: &Network,
    view: &NetworkView,
    entry: Entry<'_>,
    admitted: Result<(), Refusal>,
) -> (StatusCode, Option<Bytes>) {
    let call = match entry {
        Ok(call) => call,
        Err(invalid) => {
            return (
                StatusCode::OK,
                Some(error_response(invalid.id, &rescue::invalid(&invalid))),
            )
        }
    };
    if let Err(refusal) = admitted {
        let (object, status) = rescue::policy(&refusal);
        return (
            status,
            (!call.is_notification()).then(|| error_response(call.reply_id(), &object)),
        );
    }
    let (status, body) = match router::route(network, view, &call).await {
        Ok(reply) => (StatusCode::OK, reply_body(&call, &reply)),
        Err(e) => {
            tracing::warn!(network = %network.config.name, method = %method_for_log(&call), error = %e, "request failed");
            let (object, status) = rescue::route(&e);
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

/// Method names come from clients: log a bounded, printable form.
fn method_for_log<'a>(call: &'a Call<'_>) -> &'a str {
    let m = call.method.as_ref();
    let end = m.char_indices().nth(64).map_or(m.len(), |(i, _)| i);
    &m[..end]
}

/// application/json (and the two JSON-RPC variants Geth also accepts), or no content type.
fn json_content_type(value: Option<&HeaderValue>) -> bool {
    let Some(value) = value else { return true };
    let Ok(value) = value.to_str() else {
        return false;
    };
    // Visible ASCII only (`to_str`), so bytes and ASCII trimming are exact.
    let essence = value.as_bytes().split(|b| *b == b';').next();
    let essence = essence.unwrap_or_default().trim_ascii();
    [
        &b"application/json"[..],
        b"application/json-rpc",
        b"application/jsonrequest",
    ]
    .iter()
    .any(|t| essence.eq_ignore_ascii_case(t))
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
