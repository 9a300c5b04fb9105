//! The HTTP tier: path to network, method, content type and body limits,
//! then the calls of the body, answered in order.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures_util::future::join_all;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use tokio::sync::Semaphore;

use super::rescue::{self, HttpRefusal};
use super::Gateway;
use crate::jsonrpc::{self, error_response, join_batch, Call, Entry, Id, Payload};
use crate::router;
use crate::upstream::{Network, NetworkView, Reply, ReplyKind};

type Body = Full<Bytes>;

pub async fn handle(
    gateway: Arc<Gateway>,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    Ok(match serve(&gateway, req).await {
        Ok(response) => response,
        Err(refusal) => {
            let (object, status) = rescue::http(&refusal);
            let mut response = json(status, error_response(Id::NULL, &object));
            if matches!(refusal, HttpRefusal::MethodNotAllowed) {
                response
                    .headers_mut()
                    .insert(header::ALLOW, HeaderValue::from_static("POST"));
            }
            response
        }
    })
}

async fn serve(gateway: &Gateway, req: Request<Incoming>) -> Result<Response<Body>, HttpRefusal> {
    let routes = gateway.routes();
    let network = routes
        .network_for_path(req.uri().path())
        .ok_or(HttpRefusal::UnknownNetwork)?
        .clone();
    if req.method() != Method::POST {
        return Err(HttpRefusal::MethodNotAllowed);
    }
    if !json_content_type(req.headers().get(header::CONTENT_TYPE)) {
        return Err(HttpRefusal::UnsupportedMediaType);
    }
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
    let (status, answer) = match jsonrpc::parse(
        &body,
        routes.limits.max_batch_len,
        routes.limits.max_method_len,
    ) {
        Err(e) => (
            StatusCode::OK,
            Some(error_response(Id::NULL, &rescue::payload(&e))),
        ),
        Ok(Payload::Single(entry)) => answer(&network, &view, entry).await,
        Ok(Payload::Batch(entries)) => {
            // Bounded concurrency and a size budget: a batch of heavy calls cannot
            // hold more than a few large replies at once.
            let used = AtomicUsize::new(0);
            let budget = routes.limits.max_batch_response_bytes;
            let slots = Semaphore::new(routes.limits.batch_concurrency);
            let answers = join_all(entries.into_iter().map(|entry| async {
                let _slot = slots
                    .acquire()
                    .await
                    .expect("the semaphore is never closed");
                batch_entry(&network, &view, entry, &used, budget).await
            }))
            .await;
            let parts: Vec<Bytes> = answers.into_iter().flatten().collect();
            // A batch of notifications only gets no answer at all.
            (
                StatusCode::OK,
                (!parts.is_empty()).then(|| join_batch(&parts)),
            )
        }
    };
    Ok(match answer {
        Some(body) => json(status, body),
        None => empty(status),
    })
}

/// One batch entry, refused once the batch's answers are over `budget` bytes.
async fn batch_entry(
    network: &Network,
    view: &NetworkView,
    entry: Entry<'_>,
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
    let (_, answer) = answer(network, view, entry).await;
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
