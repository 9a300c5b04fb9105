//! The one place where errors of every layer become what a client sees: the
//! JSON-RPC error object, the HTTP status (when the call was alone in its
//! message, or for an HTTP refusal), the `outcome` it is counted and logged
//! as, and the response headers the refusal calls for. Nothing else decides
//! what a client sees on failure: [`rescue`] answers for every
//! [`CallError`], [`http()`] for every [`HttpRefusal`], each with one
//! [`Rescued`].
//!
//! JSON-RPC errors go with HTTP 200 where a node would answer so (a method
//! it does not have, bad params, a heavy call); the gateway's own
//! unavailability is a 503 and a rate limit a 429, so that HTTP clients and
//! proxies back off without reading the body.

use std::time::Duration;

use http::{header, HeaderMap, HeaderValue, StatusCode};

use super::call_error::{CallError, ParamsError};
use super::heavy::HeavyCallRefusal;
use crate::filters::{Cap, FilterError};
use crate::jsonrpc::{code, ErrorObject, PayloadError};
use crate::metrics::Outcome;
use crate::policy::Refusal;
use crate::router::RouteError;
use crate::subscriptions::SubscriptionError;
use crate::upstream::UpstreamError;

/// What a client sees of one failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rescued {
    /// The JSON-RPC error object, answered with the call's id.
    pub object: ErrorObject,
    /// The HTTP status when the call was the only one of its message (a
    /// batch is 200 unless every entry was rate limited), or of an HTTP
    /// refusal.
    pub status: StatusCode,
    /// How the call is counted in `rpcgate_requests_total` and logged.
    pub outcome: Outcome,
    /// The headers the response carries.
    pub headers: Headers,
    /// What our log says instead of the object's message, when that hides
    /// a detail from the client (which backend failed).
    pub detail: Option<String>,
}

/// The response headers a failure calls for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Headers {
    /// `Allow`: the methods the path does take.
    pub allow: Option<&'static str>,
    /// `Retry-After`, sent in whole seconds, rounded up.
    pub retry_after: Option<Duration>,
    /// `Connection: close`: the body was left unread (and is drained, see
    /// `linger`), so the connection is not reused.
    pub close: bool,
    /// `WWW-Authenticate`: the scheme a key is sent with.
    pub authenticate: Option<&'static str>,
}

impl Headers {
    /// Writes these headers into a response's.
    pub(crate) fn write(&self, map: &mut HeaderMap) {
        if let Some(allow) = self.allow {
            map.insert(header::ALLOW, HeaderValue::from_static(allow));
        }
        if let Some(wait) = self.retry_after {
            map.insert(header::RETRY_AFTER, retry_after_value(wait));
        }
        if self.close {
            map.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        if let Some(scheme) = self.authenticate {
            map.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(scheme));
        }
    }
}

/// Whole seconds, rounded up, at least 1.
fn retry_after_value(wait: Duration) -> HeaderValue {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    HeaderValue::from(secs.max(1))
}

impl Rescued {
    fn new(object: ErrorObject, status: StatusCode, outcome: Outcome) -> Rescued {
        Rescued {
            object,
            status,
            outcome,
            headers: Headers::default(),
            detail: None,
        }
    }

    /// A JSON-RPC error a node would answer the same way: HTTP 200.
    fn ok(
        code: i64,
        message: impl Into<std::borrow::Cow<'static, str>>,
        outcome: Outcome,
    ) -> Rescued {
        Rescued::new(ErrorObject::new(code, message), StatusCode::OK, outcome)
    }

    fn with_headers(mut self, headers: Headers) -> Rescued {
        self.headers = headers;
        self
    }
}

/// What the client sees of a call that failed.
pub(crate) fn rescue(e: &CallError) -> Rescued {
    match e {
        CallError::Payload(e) => payload(e),
        CallError::Invalid(reason) => Rescued::ok(
            code::INVALID_REQUEST,
            format!("invalid request: {reason}"),
            Outcome::Invalid,
        ),
        CallError::Refused(r) => policy(r),
        CallError::Params(ParamsError::UnreadableBlock(text)) => {
            let text: String = text.chars().take(64).collect();
            Rescued::ok(
                code::INVALID_PARAMS,
                format!("invalid params: block {text} must be a tag (latest, earliest, pending, safe, finalized) or 0x and hex digits without leading zeros"),
                Outcome::Invalid,
            )
        }
        CallError::Params(ParamsError::OddFilterKey(key)) => {
            let key: String = key.chars().take(64).collect();
            Rescued::ok(
                code::INVALID_PARAMS,
                format!("invalid params: filter key {key:?} must be spelled fromBlock, toBlock, blockHash, address or topics"),
                Outcome::Invalid,
            )
        }
        // Refused as hosted providers do, with -32005 and the limit in the message.
        CallError::Heavy(HeavyCallRefusal::LogRange { blocks, limit }) => {
            log_range(*blocks, *limit)
        }
        CallError::Heavy(HeavyCallRefusal::NodeFilterLogs) => Rescued::ok(
            code::LIMIT_EXCEEDED,
            "eth_getFilterLogs is not served while the gateway's filters are off \
             (filters.enabled: false): its range cannot be bounded; use eth_getLogs \
             with an explicit range"
                .to_string(),
            Outcome::Limited,
        ),
        CallError::Subscription(e) => subscription(e),
        CallError::Route(e) => route(e),
        CallError::Filter(e) => filter(e),
        CallError::BatchOverBudget { limit, .. } => Rescued::ok(
            code::LIMIT_EXCEEDED,
            format!("batch response is over the limit of {limit} bytes"),
            Outcome::Limited,
        ),
        CallError::AnswerOverShare { limit } => Rescued::ok(
            code::LIMIT_EXCEEDED,
            format!("the answer is over this connection's limit of {limit} bytes"),
            Outcome::Limited,
        ),
        CallError::MemoryBusy => Rescued::new(
            memory_busy(),
            StatusCode::SERVICE_UNAVAILABLE,
            Outcome::Limited,
        ),
        // The details stay in our logs. HTTP 500 when it was the only call.
        CallError::Panicked(why) => Rescued {
            detail: Some(format!("panic: {why}")),
            ..Rescued::new(
                ErrorObject::new(
                    code::INTERNAL_ERROR,
                    "internal error: the gateway failed while answering this call",
                ),
                StatusCode::INTERNAL_SERVER_ERROR,
                Outcome::Failed,
            )
        },
    }
}

/// A body that could not be read as calls.
fn payload(e: &PayloadError) -> Rescued {
    let message = match e {
        PayloadError::Parse(why) => {
            return Rescued::ok(
                code::PARSE_ERROR,
                format!("parse error: {why}"),
                Outcome::Invalid,
            )
        }
        PayloadError::NotRequest(_)
        | PayloadError::EmptyBatch
        | PayloadError::BatchTooLarge { .. } => e.to_string(),
    };
    Rescued::ok(code::INVALID_REQUEST, message, Outcome::Invalid)
}

/// A log filter over more blocks than allowed, whether an `eth_getLogs` or
/// a gateway filter's logs.
fn log_range(blocks: u64, limit: u64) -> Rescued {
    Rescued::ok(
        code::LIMIT_EXCEEDED,
        format!("limit exceeded: eth_getLogs is limited to a {limit} block range; this filter spans {blocks} blocks"),
        Outcome::Limited,
    )
}

/// The process's memory budget stayed full for `server.memory_wait` (see
/// `crate::memory`): try again shortly.
fn memory_busy() -> ErrorObject {
    ErrorObject::new(
        code::LIMIT_EXCEEDED,
        "server busy: memory budget exhausted, retry shortly",
    )
}

/// A failure the request caused (`UpstreamError::client_caused`): the
/// client's to fix, so an HTTP 200 with what to change, as a node would
/// answer a call it will not serve.
fn request_fault(error: &UpstreamError) -> Option<Rescued> {
    let rescued = match error {
        UpstreamError::RequestTooLarge { len, max } => Rescued::ok(
            code::INVALID_REQUEST,
            format!("request too large: {len} bytes as sent to the backends, whose limit is {max} bytes"),
            Outcome::Invalid,
        ),
        UpstreamError::Refused(413) => Rescued::ok(
            code::INVALID_REQUEST,
            "request too large: the backend refused its size (HTTP 413)",
            Outcome::Invalid,
        ),
        UpstreamError::Refused(status) => Rescued::ok(
            code::INVALID_REQUEST,
            format!("the backend refused the request (HTTP {status})"),
            Outcome::Invalid,
        ),
        UpstreamError::TooLarge(max) => Rescued::ok(
            code::LIMIT_EXCEEDED,
            format!("limit exceeded: the response is larger than {max} bytes; ask for less (a narrower range, fewer blocks)"),
            Outcome::Limited,
        ),
        UpstreamError::CallTimeout(limit) => Rescued::ok(
            code::LIMIT_EXCEEDED,
            format!("limit exceeded: the call did not finish within its {limit:?} limit"),
            Outcome::Limited,
        ),
        _ => return None,
    };
    Some(rescued)
}

/// A call no backend answered. The backend's name stays in our logs; the
/// client learns what happened.
fn route(e: &RouteError) -> Rescued {
    if let RouteError::Upstream { error, .. } = e {
        if let Some(rescued) = request_fault(error) {
            return Rescued {
                detail: Some(e.to_string()),
                ..rescued
            };
        }
    }
    let object = match e {
        RouteError::NoBackend => ErrorObject::new(
            code::UNAVAILABLE,
            "no backend is available to serve this request",
        ),
        RouteError::BlockUnavailable(n) => ErrorObject::new(
            code::UNAVAILABLE,
            format!("no available backend has block {n} yet"),
        ),
        RouteError::StaleBlock(n) => ErrorObject::new(
            code::UNAVAILABLE,
            format!("no available backend has block {n} any more (the chain moved); retry"),
        ),
        RouteError::Upstream {
            error: UpstreamError::MemoryBudget,
            ..
        } => memory_busy(),
        RouteError::Upstream { error, .. } => ErrorObject::new(
            code::UNAVAILABLE,
            format!("upstream request failed: {error}"),
        ),
    };
    Rescued {
        detail: Some(e.to_string()),
        ..Rescued::new(object, StatusCode::SERVICE_UNAVAILABLE, Outcome::Failed)
    }
}

/// A filter call that could not be answered. Shaped as Geth answers
/// (-32000 "filter not found"), so clients that re-create lost filters do.
fn filter(e: &FilterError) -> Rescued {
    let rescued = match e {
        FilterError::NotFound => {
            Rescued::ok(code::UNAVAILABLE, "filter not found", Outcome::RpcError)
        }
        FilterError::InvalidParams(why) => Rescued::ok(
            code::INVALID_PARAMS,
            format!("invalid params: {why}"),
            Outcome::Invalid,
        ),
        FilterError::TooMany(cap) => {
            let message = match cap {
                Cap::Client(n) => format!("limit exceeded: this client already holds {n} filters (filters.max_per_client)"),
                Cap::Total(n) => format!("limit exceeded: the gateway already holds {n} filters (filters.max_total)"),
                Cap::Bytes(n) => format!("limit exceeded: the gateway's filters already hold {n} bytes (filters.max_state_bytes)"),
            };
            Rescued::ok(code::LIMIT_EXCEEDED, message, Outcome::Limited)
        }
        FilterError::LogRange { blocks, limit } => log_range(*blocks, *limit),
        FilterError::UnreadableLogs | FilterError::Unavailable(_) => Rescued::new(
            ErrorObject::new(code::UNAVAILABLE, e.to_string()),
            StatusCode::SERVICE_UNAVAILABLE,
            Outcome::Failed,
        ),
        FilterError::Route(e) => return route(e),
    };
    Rescued {
        detail: Some(e.to_string()),
        ..rescued
    }
}

/// How long a refused caller is told to wait (`Retry-After`), when the
/// policy knows.
pub(crate) fn retry_after(r: &Refusal) -> Option<Duration> {
    r.retry_after()
}

/// A call the client policy refused.
fn policy(r: &Refusal) -> Rescued {
    let limited = |object, status| {
        Rescued::new(object, status, Outcome::Limited).with_headers(Headers {
            retry_after: retry_after(r),
            ..Headers::default()
        })
    };
    match r {
        // As a node answers a method it does not have: HTTP 200.
        Refusal::MethodBlocked(method) => Rescued::ok(
            code::METHOD_NOT_FOUND,
            format!("method {method} is not allowed for this client"),
            Outcome::Blocked,
        ),
        Refusal::Limited { .. } => limited(
            ErrorObject::new(code::LIMIT_EXCEEDED, "limit exceeded: rate limit"),
            StatusCode::TOO_MANY_REQUESTS,
        ),
        Refusal::TooCostly { cost } => limited(
            ErrorObject::new(
                code::LIMIT_EXCEEDED,
                format!("limit exceeded: the call costs {cost} compute units, more than this client's burst"),
            ),
            StatusCode::TOO_MANY_REQUESTS,
        ),
        Refusal::TooManyConnections => limited(
            ErrorObject::new(
                code::LIMIT_EXCEEDED,
                "limit exceeded: too many open connections from this address",
            ),
            StatusCode::TOO_MANY_REQUESTS,
        ),
        Refusal::LimiterUnavailable => limited(
            ErrorObject::new(
                code::LIMIT_EXCEEDED,
                "limit exceeded: rate limits cannot be checked now",
            ),
            StatusCode::SERVICE_UNAVAILABLE,
        ),
        Refusal::UnknownKey | Refusal::KeyRequired => Rescued::new(
            ErrorObject::new(code::INVALID_REQUEST, r.to_string()),
            StatusCode::UNAUTHORIZED,
            Outcome::Blocked,
        )
        .with_headers(Headers {
            authenticate: Some("Bearer"),
            ..Headers::default()
        }),
    }
}

/// A subscription call that could not be served.
fn subscription(e: &SubscriptionError) -> Rescued {
    let (code, outcome) = match e {
        SubscriptionError::NeedsWebSocket => (code::UNAVAILABLE, Outcome::Invalid),
        SubscriptionError::InvalidParams(_) => (code::INVALID_PARAMS, Outcome::Invalid),
        SubscriptionError::TooMany(_)
        | SubscriptionError::TooManyTopics(_)
        | SubscriptionError::TooManyFeeds(_)
        | SubscriptionError::TooManyClientFeeds(_) => (code::LIMIT_EXCEEDED, Outcome::Limited),
    };
    Rescued::ok(code, e.to_string(), outcome)
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
    /// The client policy's budgets or connection cap refused a WebSocket upgrade.
    Limited(Refusal),
}

/// What the client sees of an HTTP refusal. Its outcome is how the log
/// line names it; HTTP refusals are counted by status, not as calls.
pub(crate) fn http(r: &HttpRefusal) -> Rescued {
    let refused = |code, message: &'static str, status| {
        Rescued::new(ErrorObject::new(code, message), status, Outcome::Invalid)
    };
    // The body was left unread (and is drained, see `linger`).
    let unread = Headers {
        close: true,
        ..Headers::default()
    };
    match r {
        HttpRefusal::UnknownNetwork => refused(
            code::METHOD_NOT_FOUND,
            "no network is served at this path",
            StatusCode::NOT_FOUND,
        ),
        HttpRefusal::MethodNotAllowed => refused(
            code::INVALID_REQUEST,
            "JSON-RPC requests are sent with POST",
            StatusCode::METHOD_NOT_ALLOWED,
        )
        .with_headers(Headers {
            allow: Some("POST"),
            ..Headers::default()
        }),
        HttpRefusal::UnsupportedMediaType => refused(
            code::INVALID_REQUEST,
            "content type must be application/json",
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        HttpRefusal::UnsupportedEncoding(what) => Rescued::new(
            ErrorObject::new(
                code::INVALID_REQUEST,
                format!("content encoding {what:?} is not supported here (see server.compression.request_encodings)"),
            ),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Outcome::Invalid,
        ),
        HttpRefusal::BodyNotDecoded(coding) => Rescued::new(
            ErrorObject::new(
                code::PARSE_ERROR,
                format!("the request body is not valid {coding} data"),
            ),
            StatusCode::BAD_REQUEST,
            Outcome::Invalid,
        ),
        HttpRefusal::TooLarge { limit } => Rescued::new(
            ErrorObject::new(
                code::INVALID_REQUEST,
                format!("request body is larger than {limit} bytes (decoded, if it came compressed)"),
            ),
            StatusCode::PAYLOAD_TOO_LARGE,
            Outcome::Limited,
        )
        .with_headers(unread),
        HttpRefusal::BodyTimeout => refused(
            code::INVALID_REQUEST,
            "the request body was not received in time",
            StatusCode::REQUEST_TIMEOUT,
        )
        .with_headers(unread),
        HttpRefusal::Unauthorized(refusal) => Rescued {
            status: StatusCode::UNAUTHORIZED,
            headers: Headers {
                authenticate: Some("Bearer"),
                ..Headers::default()
            },
            ..policy(refusal)
        },
        HttpRefusal::BadUpgrade(why) => Rescued::new(
            ErrorObject::new(
                code::INVALID_REQUEST,
                format!("bad WebSocket upgrade: {why}"),
            ),
            StatusCode::BAD_REQUEST,
            Outcome::Invalid,
        ),
        HttpRefusal::ForbiddenOrigin => Rescued::new(
            ErrorObject::new(
                code::INVALID_REQUEST,
                "requests from this browser origin are not allowed here (allowed_origins)",
            ),
            StatusCode::FORBIDDEN,
            Outcome::Blocked,
        ),
        HttpRefusal::MemoryBusy => Rescued::new(memory_busy(), StatusCode::SERVICE_UNAVAILABLE, Outcome::Limited)
            .with_headers(Headers {
                retry_after: Some(Duration::from_secs(1)),
                ..unread
            }),
        HttpRefusal::Limited(refusal) => policy(refusal),
        HttpRefusal::BodyRead => refused(
            code::PARSE_ERROR,
            "the request body could not be read",
            StatusCode::BAD_REQUEST,
        ),
    }
}

#[cfg(test)]
#[path = "rescue_tests.rs"]
mod tests;
