//! A minimal JSON-RPC-over-HTTP client for the harness itself.
//!
//! The harness talks to its own nodes: it signs, submits and mines, and reads blocks
//! back for assertions. It does not need the gateway's envelope machinery, so this is a
//! plain `serde_json::Value` client on a keep-alive hyper connection pool.
//!
//! Ids are small integers because anvil rejects fractional or very large ids. Calls are
//! never retried: `evm_mine` is not idempotent, and a silent retry would mine twice.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};

use super::FleetError;

/// Largest answer the harness accepts (a block with full transactions fits easily).
const MAX_RESPONSE_BYTES: usize = 32 * 1024 * 1024;
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Ids wrap well below anything anvil could mistake for a huge number.
const ID_WRAP: u32 = 1_000_000;

/// A cheap-to-clone JSON-RPC client for one node URL.
#[derive(Clone, Debug)]
pub struct RpcClient {
    url: http::Uri,
    client: Client<HttpConnector, Full<Bytes>>,
    next_id: Arc<AtomicU32>,
}

impl RpcClient {
    pub fn new(url: &str) -> Result<Self, FleetError> {
        let url = url
            .parse::<http::Uri>()
            .map_err(|_| FleetError::BadUrl(url.to_owned()))?;
        let client = Client::builder(TokioExecutor::new()).build_http();
        Ok(Self {
            url,
            client,
            next_id: Arc::new(AtomicU32::new(1)),
        })
    }

    pub fn url(&self) -> &http::Uri {
        &self.url
    }

    /// Calls `method` and returns its `result` (which may be `null`), or the node's
    /// error object as [`FleetError::Rpc`].
    pub async fn call(&self, method: &str, params: Value) -> Result<Value, FleetError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) % ID_WRAP + 1;
        let body = json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params });
        let request = http::Request::post(self.url.clone())
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body.to_string())))
            .map_err(|e| FleetError::BadResponse {
                method: method.to_owned(),
                detail: format!("building request: {e}"),
            })?;

        let exchange = async {
            let response =
                self.client
                    .request(request)
                    .await
                    .map_err(|e| FleetError::Transport {
                        method: method.to_owned(),
                        detail: error_chain(&e),
                    })?;
            let status = response.status();
            let bytes = Limited::new(response.into_body(), MAX_RESPONSE_BYTES)
                .collect()
                .await
                .map_err(|e| FleetError::Transport {
                    method: method.to_owned(),
                    detail: format!("reading body: {e}"),
                })?
                .to_bytes();
            Ok::<_, FleetError>((status, bytes))
        };
        let (status, bytes) = tokio::time::timeout(CALL_TIMEOUT, exchange)
            .await
            .map_err(|_| FleetError::Timeout {
                method: method.to_owned(),
                after: CALL_TIMEOUT,
            })??;

        if !status.is_success() {
            return Err(FleetError::HttpStatus {
                method: method.to_owned(),
                status: status.as_u16(),
            });
        }
        parse_answer(method, &bytes)
    }
}

fn parse_answer(method: &str, bytes: &[u8]) -> Result<Value, FleetError> {
    let bad = |detail: String| FleetError::BadResponse {
        method: method.to_owned(),
        detail,
    };
    let mut answer: Value = serde_json::from_slice(bytes).map_err(|e| bad(e.to_string()))?;
    if let Some(error) = answer.get("error").filter(|e| !e.is_null()) {
        return Err(FleetError::Rpc {
            method: method.to_owned(),
            code: error.get("code").and_then(Value::as_i64).unwrap_or(0),
            message: error
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned(),
        });
    }
    match answer.get_mut("result") {
        Some(result) => Ok(result.take()),
        None => Err(bad("neither result nor error".to_owned())),
    }
}

/// hyper's errors say little at the top level ("client error (Connect)"); the cause is
/// in the source chain.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Parses a `0x`-prefixed hex quantity as JSON-RPC returns them.
pub fn parse_quantity(method: &str, value: &Value) -> Result<u64, FleetError> {
    value
        .as_str()
        .and_then(|s| s.strip_prefix("0x"))
        .and_then(|hex| u64::from_str_radix(hex, 16).ok())
        .ok_or_else(|| FleetError::BadResponse {
            method: method.to_owned(),
            detail: format!("expected a hex quantity, got {value}"),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answer_with_error_object_is_an_error() {
        let err = parse_answer(
            "eth_sendRawTransaction",
            br#"{"jsonrpc":"2.0","id":1,"error":{"code":-32003,"message":"transaction already imported"}}"#,
        )
        .unwrap_err();
        assert_eq!(err.rpc_code(), Some(-32003));
        assert!(err.to_string().contains("already imported"));
    }

    #[test]
    fn null_result_is_a_value() {
        let v = parse_answer("x", br#"{"jsonrpc":"2.0","id":1,"result":null}"#).unwrap();
        assert!(v.is_null());
        assert!(parse_answer("x", br#"{"jsonrpc":"2.0","id":1}"#).is_err());
    }

    #[test]
    fn quantities() {
        assert_eq!(parse_quantity("m", &json!("0x1f")).unwrap(), 31);
        assert!(parse_quantity("m", &json!("1f")).is_err());
        assert!(parse_quantity("m", &json!(31)).is_err());
    }
}
