//! The rescue mapping as a table: for every error a call or an HTTP request
//! can fail with, the JSON-RPC code, the message's shape, the HTTP status,
//! the outcome it is counted as and the headers it sends. A change to what
//! clients see on failure shows up here as a changed row.

use std::time::Duration;

use http::{header, HeaderMap, StatusCode};

use super::*;
use crate::filters::Cap;

/// What a row expects of the headers: `(name, value)` pairs, all others absent.
type Expect = &'static [(header::HeaderName, &'static str)];

const NONE: Expect = &[];
const RETRY_1: Expect = &[(header::RETRY_AFTER, "1")];

fn upstream(error: UpstreamError) -> RouteError {
    RouteError::Upstream {
        backend: "anvil-0".into(),
        error,
    }
}

/// Checks one row; `message` is a part the client's message must hold.
fn check(
    row: &str,
    got: &Rescued,
    code: i64,
    message: &str,
    status: StatusCode,
    outcome: Outcome,
    headers: Expect,
) {
    assert_eq!(got.object.code, code, "{row}: code");
    assert!(
        got.object.message.contains(message),
        "{row}: message {:?} lacks {message:?}",
        got.object.message
    );
    assert_eq!(got.status, status, "{row}: status");
    assert_eq!(got.outcome, outcome, "{row}: outcome");
    let mut written = HeaderMap::new();
    got.headers.write(&mut written);
    assert_eq!(written.len(), headers.len(), "{row}: headers {written:?}");
    for (name, value) in headers {
        assert_eq!(
            written.get(name).and_then(|v| v.to_str().ok()),
            Some(*value),
            "{row}: {name}"
        );
    }
}

#[test]
fn every_call_error_is_rescued_once() {
    use crate::jsonrpc::code::*;
    use Outcome::*;
    let ok = StatusCode::OK;
    let unavailable = StatusCode::SERVICE_UNAVAILABLE;
    let limited = StatusCode::TOO_MANY_REQUESTS;
    #[rustfmt::skip]
    let table: Vec<(CallError, i64, &str, StatusCode, Outcome, Expect)> = vec![
        (PayloadError::Parse("EOF").into(), PARSE_ERROR, "parse error: EOF", ok, Invalid, NONE),
        (PayloadError::NotRequest("not an object").into(), INVALID_REQUEST, "not an object", ok, Invalid, NONE),
        (PayloadError::EmptyBatch.into(), INVALID_REQUEST, "empty batch", ok, Invalid, NONE),
        (PayloadError::BatchTooLarge { len: 9, max: 8 }.into(), INVALID_REQUEST, "over the limit of 8", ok, Invalid, NONE),
        (CallError::Invalid("jsonrpc must be \"2.0\""), INVALID_REQUEST, "invalid request: jsonrpc", ok, Invalid, NONE),
        (Refusal::MethodBlocked("debug_traceCall".into()).into(), METHOD_NOT_FOUND, "debug_traceCall is not allowed", ok, Blocked, NONE),
        (Refusal::Limited { retry_after: Duration::from_millis(1500), } .into(), LIMIT_EXCEEDED, "rate limit", limited, Limited, &[(header::RETRY_AFTER, "2")]),
        (Refusal::TooCostly { cost: 500 }.into(), LIMIT_EXCEEDED, "costs 500 compute units", limited, Limited, NONE),
        (Refusal::LimiterUnavailable.into(), LIMIT_EXCEEDED, "cannot be checked now", unavailable, Limited, RETRY_1),
        (Refusal::UnknownKey.into(), INVALID_REQUEST, "unknown API key", StatusCode::UNAUTHORIZED, Blocked, &[(header::WWW_AUTHENTICATE, "Bearer")]),
        (ParamsError::OddFilterKey("FROMBLOCK".into()).into(), INVALID_PARAMS, "filter key \"FROMBLOCK\" must be spelled", ok, Invalid, NONE),
        (HeavyCallRefusal::LogRange { blocks: 10_001, limit: 10_000, } .into(), LIMIT_EXCEEDED, "limited to a 10000 block range; this filter spans 10001 blocks", ok, Limited, NONE),
        (SubscriptionError::NeedsWebSocket.into(), UNAVAILABLE, "WebSocket", ok, Invalid, NONE),
        (SubscriptionError::InvalidParams("unknown topic").into(), INVALID_PARAMS, "unknown topic", ok, Invalid, NONE),
        (SubscriptionError::TooMany(3).into(), LIMIT_EXCEEDED, "at most 3 subscriptions", ok, Limited, NONE),
        (SubscriptionError::TooManyTopics(2).into(), LIMIT_EXCEEDED, "at most 2 distinct", ok, Limited, NONE),
        (SubscriptionError::TooManyFeeds(4).into(), LIMIT_EXCEEDED, "maximum of 4", ok, Limited, NONE),
        (RouteError::NoBackend.into(), UNAVAILABLE, "no backend is available", unavailable, Failed, NONE),
        (RouteError::BlockUnavailable(77).into(), UNAVAILABLE, "has block 77 yet", unavailable, Failed, NONE),
        (upstream(UpstreamError::Timeout(Duration::from_secs(2))).into(), UNAVAILABLE, "upstream request failed: timed out", unavailable, Failed, NONE),
        (upstream(UpstreamError::MemoryBudget).into(), LIMIT_EXCEEDED, "memory budget exhausted", unavailable, Failed, NONE),
        (FilterError::NotFound.into(), UNAVAILABLE, "filter not found", ok, RpcError, NONE),
        (FilterError::InvalidParams("bad topics".into()).into(), INVALID_PARAMS, "invalid params: bad topics", ok, Invalid, NONE),
        (FilterError::TooMany(Cap::Client(5)).into(), LIMIT_EXCEEDED, "already holds 5 filters (filters.max_per_client)", ok, Limited, NONE),
        (FilterError::TooMany(Cap::Total(6)).into(), LIMIT_EXCEEDED, "already holds 6 filters (filters.max_total)", ok, Limited, NONE),
        (FilterError::LogRange { blocks: 10_001, limit: 10_000, } .into(), LIMIT_EXCEEDED, "limited to a 10000 block range; this filter spans 10001 blocks", ok, Limited, NONE),
        (FilterError::UnreadableLogs.into(), UNAVAILABLE, "not a list of logs", unavailable, Failed, NONE),
        (FilterError::Unavailable("redis down".into()).into(), UNAVAILABLE, "redis down", unavailable, Failed, NONE),
        (FilterError::Route(RouteError::NoBackend).into(), UNAVAILABLE, "no backend is available", unavailable, Failed, NONE),
        (CallError::BatchOverBudget { limit: 1024, ran: true, }, LIMIT_EXCEEDED, "over the limit of 1024 bytes", ok, Limited, NONE),
        (CallError::AnswerOverShare { limit: 4096 }, LIMIT_EXCEEDED, "this connection's limit of 4096 bytes", ok, Limited, NONE),
        (CallError::MemoryBusy, LIMIT_EXCEEDED, "retry shortly", unavailable, Limited, NONE),
        (CallError::Panicked("index out of bounds".into()), INTERNAL_ERROR, "the gateway failed", StatusCode::INTERNAL_SERVER_ERROR, Failed, NONE),
    ];
    for (error, code, message, status, outcome, headers) in &table {
        let row = format!("{error:?}");
        check(
            &row,
            &rescue(error),
            *code,
            message,
            *status,
            *outcome,
            headers,
        );
    }
}

#[test]
fn what_our_log_says_beyond_the_client() {
    let route = rescue(&upstream(UpstreamError::Status(502)).into());
    assert_eq!(
        route.detail.as_deref(),
        Some("backend anvil-0 failed: HTTP status 502")
    );
    assert!(
        !route.object.message.contains("anvil-0"),
        "the backend's name stays in our logs"
    );
    let panicked = rescue(&CallError::Panicked("boom".into()));
    assert!(!panicked.object.message.contains("boom"));
    assert_eq!(rescue(&CallError::MemoryBusy).detail, None);
}

#[test]
fn every_http_refusal_is_rescued_once() {
    use crate::jsonrpc::code::*;
    use Outcome::*;
    let close: Expect = &[(header::CONNECTION, "close")];
    #[rustfmt::skip]
    let table: Vec<(HttpRefusal, i64, &str, StatusCode, Outcome, Expect)> = vec![
        (HttpRefusal::UnknownNetwork, METHOD_NOT_FOUND, "no network", StatusCode::NOT_FOUND, Invalid, NONE),
        (HttpRefusal::Unauthorized(Refusal::KeyRequired), INVALID_REQUEST, "API key is required", StatusCode::UNAUTHORIZED, Blocked, &[(header::WWW_AUTHENTICATE, "Bearer")]),
        (HttpRefusal::Unauthorized(Refusal::UnknownKey), INVALID_REQUEST, "unknown API key", StatusCode::UNAUTHORIZED, Blocked, &[(header::WWW_AUTHENTICATE, "Bearer")]),
        (HttpRefusal::MethodNotAllowed, INVALID_REQUEST, "sent with POST", StatusCode::METHOD_NOT_ALLOWED, Invalid, &[(header::ALLOW, "POST")]),
        (HttpRefusal::UnsupportedMediaType, INVALID_REQUEST, "application/json", StatusCode::UNSUPPORTED_MEDIA_TYPE, Invalid, NONE),
        (HttpRefusal::UnsupportedEncoding("br".into()), INVALID_REQUEST, "\"br\" is not supported", StatusCode::UNSUPPORTED_MEDIA_TYPE, Invalid, NONE),
        (HttpRefusal::BodyNotDecoded("gzip"), PARSE_ERROR, "not valid gzip data", StatusCode::BAD_REQUEST, Invalid, NONE),
        (HttpRefusal::TooLarge { limit: 4096 }, INVALID_REQUEST, "larger than 4096 bytes", StatusCode::PAYLOAD_TOO_LARGE, Limited, close),
        (HttpRefusal::BodyRead, PARSE_ERROR, "could not be read", StatusCode::BAD_REQUEST, Invalid, NONE),
        (HttpRefusal::BodyTimeout, INVALID_REQUEST, "not received in time", StatusCode::REQUEST_TIMEOUT, Invalid, close),
        (HttpRefusal::BadUpgrade("Sec-WebSocket-Key is missing"), INVALID_REQUEST, "bad WebSocket upgrade: Sec-WebSocket-Key", StatusCode::BAD_REQUEST, Invalid, NONE),
        (HttpRefusal::ForbiddenOrigin, INVALID_REQUEST, "browser origin", StatusCode::FORBIDDEN, Blocked, NONE),
        (HttpRefusal::MemoryBusy, LIMIT_EXCEEDED, "memory budget exhausted", StatusCode::SERVICE_UNAVAILABLE, Limited, &[(header::RETRY_AFTER, "1"), (header::CONNECTION, "close")]),
    ];
    for (refusal, code, message, status, outcome, headers) in &table {
        let row = format!("{refusal:?}");
        check(
            &row,
            &http(refusal),
            *code,
            message,
            *status,
            *outcome,
            headers,
        );
    }
}

#[test]
fn retry_after_is_whole_seconds_rounded_up() {
    assert_eq!(retry_after_value(Duration::from_millis(1)), "1");
    assert_eq!(retry_after_value(Duration::ZERO), "1");
    assert_eq!(retry_after_value(Duration::from_secs(3)), "3");
    assert_eq!(retry_after_value(Duration::from_millis(3001)), "4");
}
