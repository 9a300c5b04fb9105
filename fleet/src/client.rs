//! The plain HTTP client that tests use to talk to a gateway (or straight to a node).
//!
//! Tests assert on what came back over the wire: the status, the headers and the bytes
//! of the body, so nothing here interprets an answer beyond parsing JSON when asked.
//! Every helper panics when the exchange itself fails: that is a broken test setup, not
//! an answer to assert on. [`crate::rpc`] is the other client of this crate: it is the
//! harness's own, typed and with timeouts, for talking to its nodes.

use bytes::Bytes;
use http::HeaderMap;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};

const JSON: &str = "application/json";

/// One HTTP answer as it came.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// A client for requests the helpers below do not cover (GETs, odd headers).
pub fn http_client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build(HttpConnector::new())
}

/// POSTs `body` with the given content type (None: no header) and extra headers.
async fn exchange(
    url: &str,
    content_type: Option<&str>,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Reply {
    let mut request = http::Request::post(url);
    if let Some(content_type) = content_type {
        request = request.header(http::header::CONTENT_TYPE, content_type);
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request
        .body(Full::new(body.into()))
        .unwrap_or_else(|e| panic!("a POST to {url}: {e}"));
    let response = http_client().request(request).await.expect("HTTP exchange");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    Reply {
        status,
        headers,
        body,
    }
}

/// POSTs `body` as JSON with extra headers.
pub async fn post_with_headers(
    url: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Reply {
    exchange(url, Some(JSON), headers, body).await
}

/// POSTs `body` with the given content type (None: no header); returns status and body.
pub async fn post_with(
    url: &str,
    body: impl Into<Bytes>,
    content_type: Option<&str>,
) -> (u16, Bytes) {
    let reply = exchange(url, content_type, &[], body).await;
    (reply.status, reply.body)
}

/// POSTs `body` as JSON; returns status and body.
pub async fn post(url: &str, body: impl Into<Bytes>) -> (u16, Bytes) {
    post_with(url, body, Some(JSON)).await
}

/// POSTs JSON and parses the JSON answer (panics, with the status and body, if it is not).
pub async fn post_json(url: &str, body: &Value) -> Value {
    let (status, bytes) = post(url, body.to_string()).await;
    serde_json::from_slice(&bytes).unwrap_or_else(|_| {
        panic!(
            "HTTP {status}: not JSON: {}",
            String::from_utf8_lossy(&bytes)
        )
    })
}

/// A single call (id 1); returns the whole response object.
pub async fn call(url: &str, method: &str, params: Value) -> Value {
    post_json(
        url,
        &json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}),
    )
    .await
}

/// A single call that must succeed; returns its result.
pub async fn result(url: &str, method: &str, params: Value) -> Value {
    let r = call(url, method, params).await;
    assert!(r.get("error").is_none(), "{method} failed: {r}");
    r["result"].clone()
}

/// The body as JSON, or `null` when it is not JSON (empty, plain text).
pub fn json_or_null(body: &[u8]) -> Value {
    serde_json::from_slice(body).unwrap_or(Value::Null)
}
