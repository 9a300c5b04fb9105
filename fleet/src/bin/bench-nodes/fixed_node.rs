//! The fixed-answer backend of the load tests: a node that costs almost nothing.
//!
//! The "distinct requests" scenario measures what forwarding costs, so the
//! backend behind the proxies must be as cheap as possible; yet rpcgate only
//! routes to a backend whose chain id matches and whose head it can follow.
//! This server answers the head tracker's calls (`eth_chainId`,
//! `eth_blockNumber`, `eth_getBlockByNumber`, `eth_syncing`, `net_version`)
//! with plausible values, a head that advances one block per `block_time`,
//! and every other call with one fixed result. It looks at a request only
//! far enough to find the method and the id (byte searches, no JSON parse),
//! and answers HTTP/1.1 with keep-alive, like `examples/fixed_body.rs`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// The answer to every call that is not about the chain's head: one ether.
const FIXED_RESULT: &str = "\"0xde0b6b3a7640000\"";
/// Larger request bodies get HTTP 413.
const MAX_BODY_BYTES: usize = 1 << 20;
/// The head's height when the server starts.
const FIRST_BLOCK: u64 = 1_000;

/// The chain every fixed node of one process serves.
pub struct Chain {
    pub chain_id: u64,
    pub block_time: Duration,
    started: Instant,
}

impl Chain {
    pub fn new(chain_id: u64, block_time: Duration) -> Self {
        Chain {
            chain_id,
            block_time,
            started: Instant::now(),
        }
    }

    fn head(&self) -> u64 {
        let step = self.block_time.as_millis().max(1);
        FIRST_BLOCK + (self.started.elapsed().as_millis() / step) as u64
    }
}

/// Binds `127.0.0.1:0` and serves until the process ends; returns the address.
pub async fn spawn(chain: Arc<Chain>) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            let chain = chain.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req| answer(chain.clone(), req));
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(addr)
}

async fn answer(
    chain: Arc<Chain>,
    req: http::Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let body = match Limited::new(req.into_body(), MAX_BODY_BYTES)
        .collect()
        .await
    {
        Ok(b) => b.to_bytes(),
        Err(_) => return Ok(status(StatusCode::PAYLOAD_TOO_LARGE)),
    };
    let text = String::from_utf8_lossy(&body);
    let text = text.trim_start();
    let reply = if text.starts_with('[') {
        // The scenarios send batches only through the anvil fleet.
        r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"the fixed node answers no batches"}}"#
            .to_string()
    } else {
        let id = id_of(text).unwrap_or("null");
        let result = result_for(&chain, text);
        format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{result}}}"#)
    };
    let mut r = Response::new(Full::new(Bytes::from(reply)));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(r)
}

fn status(code: StatusCode) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = code;
    r
}

/// The result for the call in `text`: the head tracker's calls answered
/// properly, everything else with [`FIXED_RESULT`].
fn result_for(chain: &Chain, text: &str) -> String {
    let head = chain.head();
    match method_of(text) {
        Some("eth_chainId") => format!("\"{:#x}\"", chain.chain_id),
        Some("net_version") => format!("\"{}\"", chain.chain_id),
        Some("eth_blockNumber") => format!("\"{head:#x}\""),
        Some("eth_syncing") => "false".into(),
        Some("eth_getBlockByNumber") => {
            let number = if text.contains("\"finalized\"") || text.contains("\"safe\"") {
                Some(head.saturating_sub(2))
            } else if let Some(n) = first_hex_param(text) {
                (n <= head).then_some(n)
            } else {
                Some(head)
            };
            number.map_or_else(|| "null".into(), block)
        }
        _ => FIXED_RESULT.into(),
    }
}

/// A block header with the fields a client of `eth_getBlockByNumber` reads
/// first; hashes are derived from the number, so they agree across nodes.
fn block(n: u64) -> String {
    format!(
        r#"{{"number":"{n:#x}","hash":"{}","parentHash":"{}","timestamp":"{:#x}","gasLimit":"0x1c9c380","gasUsed":"0x0","baseFeePerGas":"0x3b9aca00","miner":"0x0000000000000000000000000000000000000000","transactions":[],"uncles":[]}}"#,
        hash_of(n),
        hash_of(n.saturating_sub(1)),
        1_700_000_000 + 2 * n
    )
}

fn hash_of(n: u64) -> String {
    let mixed = n.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x5bd1_e995;
    format!("0x{mixed:016x}{n:048x}")
}

/// The string after `"method":`, without its quotes.
fn method_of(text: &str) -> Option<&str> {
    let rest = after_key(text, "\"method\"")?;
    let rest = rest.strip_prefix('"')?;
    rest.split('"').next()
}

/// The raw value after `"id":`, up to the next `,` or `}`.
fn id_of(text: &str) -> Option<&str> {
    let rest = after_key(text, "\"id\"")?;
    let end = rest.find([',', '}'])?;
    let id = rest[..end].trim();
    (!id.is_empty()).then_some(id)
}

/// The text after `key` and its colon, spaces skipped.
fn after_key<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    let at = text.find(key)? + key.len();
    let rest = text[at..].trim_start().strip_prefix(':')?;
    Some(rest.trim_start())
}

/// The first `"0x..."` string of the params, as a number.
fn first_hex_param(text: &str) -> Option<u64> {
    let params = after_key(text, "\"params\"")?;
    let at = params.find("\"0x")? + 3;
    let digits: String = params[at..]
        .chars()
        .take_while(char::is_ascii_hexdigit)
        .collect();
    u64::from_str_radix(&digits, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_method_id_and_block_argument() {
        let t = r#"{"jsonrpc":"2.0","id": "a1" ,"method":"eth_getBlockByNumber","params":["0x3e8",false]}"#;
        assert_eq!(method_of(t), Some("eth_getBlockByNumber"));
        assert_eq!(id_of(t), Some("\"a1\""));
        assert_eq!(first_hex_param(t), Some(1000));
        let chain = Chain::new(31337, Duration::from_secs(3600));
        assert!(result_for(&chain, t).starts_with(r#"{"number":"0x3e8""#));
        let future = r#"{"id":2,"method":"eth_getBlockByNumber","params":["0xffff",false]}"#;
        assert_eq!(result_for(&chain, future), "null");
        let other = r#"{"id":3,"method":"eth_getBalance","params":["0xab","latest"]}"#;
        assert_eq!(result_for(&chain, other), FIXED_RESULT);
        assert_eq!(id_of(r#"{"method":"x","id":7}"#), Some("7"));
    }
}
