//! The one place where errors of every layer become JSON-RPC error objects
//! and HTTP statuses. Nothing else decides what a client sees on failure.

use http::StatusCode;

use super::heavy::Heavy;
use crate::filters::{Cap, FilterError};
use crate::jsonrpc::{code, ErrorObject, Invalid, PayloadError};
use crate::metrics::Outcome;
use crate::policy::Refusal;
use crate::router::RouteError;
use crate::subscriptions::SubscriptionError;
use crate::upstream::UpstreamError;

/// A body that could not be read as calls.
pub(crate) fn payload(e: &PayloadError) -> ErrorObject {
    match e {
        PayloadError::Parse(why) => {
            ErrorObject::new(code::PARSE_ERROR, format!("parse error: {why}"))
        }
        PayloadError::NotRequest(_)
        | PayloadError::EmptyBatch
        | PayloadError::BatchTooLarge { .. } => {
            ErrorObject::new(code::INVALID_REQUEST, e.to_string())
        }
    }
}

/// One entry that is not a valid request.
pub(crate) fn invalid(e: &Invalid<'_>) -> ErrorObject {
    ErrorObject::new(
        code::INVALID_REQUEST,
        format!("invalid request: {}", e.reason),
    )
}

/// A batch entry refused because the batch's answers are already too large.
pub(crate) fn batch_over_budget(limit: usize) -> ErrorObject {
    ErrorObject::new(
        code::LIMIT_EXCEEDED,
        format!("batch response is over the limit of {limit} bytes"),
    )
}

/// A call refused because the process's memory budget stayed full for
/// `server.memory_wait` (see `crate::memory`): try again shortly.
pub(crate) fn memory_busy() -> ErrorObject {
    ErrorObject::new(
        code::LIMIT_EXCEEDED,
        "server busy: memory budget exhausted, retry shortly",
    )
}

/// A call too heavy to send to a node: refused as hosted providers do, with
/// -32005 and the limit in the message (HTTP 200, as for any JSON-RPC error).
pub(crate) fn heavy(e: &Heavy) -> ErrorObject {
    match e {
        Heavy::LogRange { blocks, limit } => ErrorObject::new(
            code::LIMIT_EXCEEDED,
            format!(
                "limit exceeded: eth_getLogs is limited to a {limit} block range; this filter spans {blocks} blocks"
            ),
        ),
        Heavy::OddFilterKey(key) => {
            let key: String = key.chars().take(64).collect();
            ErrorObject::new(
                code::INVALID_PARAMS,
                format!("invalid params: filter key {key:?} must be spelled fromBlock, toBlock, blockHash, address or topics"),
            )
        }
    }
}

/// A panic caught while answering (see `panics`): the details stay in our
/// logs. HTTP 500 when it was the only call, or the message as a whole.
pub(crate) fn panicked() -> (ErrorObject, StatusCode) {
    (
        ErrorObject::new(
            code::INTERNAL_ERROR,
            "internal error: the gateway failed while answering this call",
        ),
        StatusCode::INTERNAL_SERVER_ERROR,
    )
}

/// A call no backend answered, and the HTTP status when it was the only call.
pub(crate) fn route(e: &RouteError) -> (ErrorObject, StatusCode) {
    let object = match e {
        RouteError::NoBackend => ErrorObject::new(
            code::UNAVAILABLE,
            "no backend is available to serve this request",
        ),
        RouteError::BlockUnavailable(n) => ErrorObject::new(
            code::UNAVAILABLE,
            format!("no available backend has block {n} yet"),
        ),
        RouteError::Upstream {
            error: UpstreamError::MemoryBudget,
            ..
        } => return (memory_busy(), StatusCode::SERVICE_UNAVAILABLE),
        // The backend's name stays in our logs; the client learns what happened.
        RouteError::Upstream { error, .. } => ErrorObject::new(
            code::UNAVAILABLE,
            format!("upstream request failed: {error}"),
        ),
    };
    (object, StatusCode::SERVICE_UNAVAILABLE)
}

/// A filter call that could not be answered: the object, the HTTP status
/// when it was the only call, and how it is counted. Shaped as Geth answers
/// (-32000 "filter not found"), so clients that re-create lost filters do.
pub(crate) fn filter(e: &FilterError) -> (ErrorObject, StatusCode, Outcome) {
    match e {
        FilterError::NotFound => (
            ErrorObject::new(code::UNAVAILABLE, "filter not found"),
            StatusCode::OK,
            Outcome::RpcError,
        ),
        FilterError::InvalidParams(why) => (
            ErrorObject::new(code::INVALID_PARAMS, format!("invalid params: {why}")),
            StatusCode::OK,
            Outcome::Invalid,
        ),
        FilterError::TooMany(cap) => {
            let message = match cap {
                Cap::Client(n) => format!("limit exceeded: this client already holds {n} filters (filters.max_per_client)"),
                Cap::Total(n) => format!("limit exceeded: the gateway already holds {n} filters (filters.max_total)"),
            };
            (
                ErrorObject::new(code::LIMIT_EXCEEDED, message),
                StatusCode::OK,
                Outcome::Limited,
            )
        }
        FilterError::LogRange { blocks, limit } => (
            ErrorObject::new(
                code::LIMIT_EXCEEDED,
                format!("limit exceeded: eth_getLogs is limited to a {limit} block range; this filter spans {blocks} blocks"),
            ),
            StatusCode::OK,
            Outcome::Limited,
        ),
        FilterError::UnreadableLogs | FilterError::Unavailable(_) => (
            ErrorObject::new(code::UNAVAILABLE, e.to_string()),
            StatusCode::SERVICE_UNAVAILABLE,
            Outcome::Failed,
        ),
        FilterError::Route(route_error) => {
            let (object, status) = route(route_error);
            (object, status, Outcome::Failed)
        }
    }
}

/// A call the client policy refused, and the HTTP status when it was the only call.
pub(crate) fn policy(r: &Refusal) -> (ErrorObject, StatusCode) {
    match r {
        // As a node answers a method it does not have: HTTP 200.
        Refusal::MethodBlocked(method) => (
            ErrorObject::new(
                code::METHOD_NOT_FOUND,
                format!("method {method} is not allowed for this client"),
            ),
            StatusCode::OK,
        ),
        Refusal::Limited { .. } => (
            ErrorObject::new(code::LIMIT_EXCEEDED, "limit exceeded: rate limit"),
            StatusCode::TOO_MANY_REQUESTS,
        ),
        Refusal::TooCostly { cost } => (
            ErrorObject::new(
                code::LIMIT_EXCEEDED,
                format!("limit exceeded: the call costs {cost} compute units, more than this client's burst"),
            ),
            StatusCode::TOO_MANY_REQUESTS,
        ),
        Refusal::LimiterUnavailable => (
            ErrorObject::new(
                code::LIMIT_EXCEEDED,
                "limit exceeded: rate limits cannot be checked now",
            ),
            StatusCode::SERVICE_UNAVAILABLE,
        ),
        Refusal::UnknownKey | Refusal::KeyRequired => (
            ErrorObject::new(code::INVALID_REQUEST, r.to_string()),
            StatusCode::UNAUTHORIZED,
        ),
    }
}

/// A subscription call that could not be served.
pub(crate) fn subscription(e: &SubscriptionError) -> ErrorObject {
    let code = match e {
        SubscriptionError::NeedsWebSocket => code::UNAVAILABLE,
        SubscriptionError::InvalidParams(_) => code::INVALID_PARAMS,
        SubscriptionError::TooMany(_)
        | SubscriptionError::TooManyTopics(_)
        | SubscriptionError::TooManyFeeds(_) => code::LIMIT_EXCEEDED,
    };
    ErrorObject::new(code, e.to_string())
}

/// HTTP-tier refusals, before any call is read.
#[derive(Debug)]
pub(crate) enum HttpRefusal {
    UnknownNetwork,
    /// An unknown key, or none where one is required.
    Unauthorized(Refusal),
    MethodNotAllowed,
    UnsupportedMediaType,
    /// A `Content-Encoding` the gateway does not decode (or several).
    UnsupportedEncoding(String),
    /// A body that is not a valid stream of its `Content-Encoding`.
    BodyNotDecoded(&'static str),
    TooLarge {
        limit: usize,
    },
    BodyRead,
    BodyTimeout,
    /// A WebSocket upgrade request without the headers RFC 6455 requires.
    BadUpgrade(&'static str),
    /// A browser origin outside `server.cors.allowed_origins` (WebSocket
    /// upgrades), or outside the calling client's own `allowed_origins`.
    ForbiddenOrigin,
    /// The request-body budget stayed full for `server.memory_wait`.
    MemoryBusy,
}

pub(crate) fn http(r: &HttpRefusal) -> (ErrorObject, StatusCode) {
    match r {
        HttpRefusal::UnknownNetwork => (
            ErrorObject::new(code::METHOD_NOT_FOUND, "no network is served at this path"),
            StatusCode::NOT_FOUND,
        ),
        HttpRefusal::MethodNotAllowed => (
            ErrorObject::new(
                code::INVALID_REQUEST,
                "JSON-RPC requests are sent with POST",
            ),
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        HttpRefusal::UnsupportedMediaType => (
            ErrorObject::new(
                code::INVALID_REQUEST,
                "content type must be application/json",
            ),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        HttpRefusal::UnsupportedEncoding(what) => (
            ErrorObject::new(
                code::INVALID_REQUEST,
                format!("content encoding {what:?} is not supported here (see server.compression.request_encodings)"),
            ),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        HttpRefusal::BodyNotDecoded(coding) => (
            ErrorObject::new(
                code::PARSE_ERROR,
                format!("the request body is not valid {coding} data"),
            ),
            StatusCode::BAD_REQUEST,
        ),
        HttpRefusal::TooLarge { limit } => (
            ErrorObject::new(
                code::INVALID_REQUEST,
                format!("request body is larger than {limit} bytes (decoded, if it came compressed)"),
            ),
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
        HttpRefusal::BodyTimeout => (
            ErrorObject::new(
                code::INVALID_REQUEST,
                "the request body was not received in time",
            ),
            StatusCode::REQUEST_TIMEOUT,
        ),
        HttpRefusal::Unauthorized(refusal) => {
            let (object, _) = policy(refusal);
            (object, StatusCode::UNAUTHORIZED)
        }
        HttpRefusal::BadUpgrade(why) => (
            ErrorObject::new(
                code::INVALID_REQUEST,
                format!("bad WebSocket upgrade: {why}"),
            ),
            StatusCode::BAD_REQUEST,
        ),
        HttpRefusal::ForbiddenOrigin => (
            ErrorObject::new(
                code::INVALID_REQUEST,
                "requests from this browser origin are not allowed here (allowed_origins)",
            ),
            StatusCode::FORBIDDEN,
        ),
        HttpRefusal::MemoryBusy => (memory_busy(), StatusCode::SERVICE_UNAVAILABLE),
        HttpRefusal::BodyRead => (
            ErrorObject::new(code::PARSE_ERROR, "the request body could not be read"),
            StatusCode::BAD_REQUEST,
        ),
    }
}
