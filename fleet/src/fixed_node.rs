//! The fixed-answer backend of the load tests and the profile: a node that
//! costs almost nothing.
//!
//! Forwarding is measured against the backend behind it (`loadtests/run`'s
//! "distinct requests", `loadtests/profile`), so that backend must be as
//! cheap as possible; yet rpcgate only routes to a backend whose chain id
//! matches and whose head it can follow. This server answers the head
//! tracker's and the reorg follower's calls (`eth_chainId`, `net_version`,
//! `eth_blockNumber`, `eth_getBlockByNumber`, `eth_getBlockByHash`,
//! `eth_syncing`) with plausible values, and every other call with one fixed
//! result. It looks at a request only far enough to find the method, the id
//! and a block argument (string searches, no JSON parse), and answers
//! HTTP/1.1 with keep-alive.
//!
//! The head either advances one block per `block_time` (the load tests: a
//! live chain) or stays put (the profile: instruction counts that do not
//! depend on when a head arrives). Either way the final block trails the
//! head by two, so a read at `latest` is a read above finality, which the
//! cache keeps only while that head is served, as on a real chain. Block
//! hashes are made from the number, so they agree across nodes and each
//! block's parent is the block below.
//!
//! A batch (a JSON array) is answered entry by entry, one after the other,
//! as Geth does. [`FixedChain::with_slow_logs`] makes `eth_getLogs` take a
//! while (a sleep, not work): the heavy call that cheap ones queue behind in
//! `loadtests/saturated-batch`.

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
/// How far the final (and safe) block trails the head.
const FINALITY_LAG: u64 = 2;

/// The chain every fixed node of one process serves.
pub struct FixedChain {
    chain_id: u64,
    /// `None`: the head stays at its first block.
    block_time: Option<Duration>,
    started: Instant,
    /// How long an `eth_getLogs` takes to answer.
    slow_logs: Duration,
}

impl FixedChain {
    /// A chain whose head advances one block per `block_time`, or never
    /// when it is `None`.
    pub fn new(chain_id: u64, block_time: Option<Duration>) -> Self {
        FixedChain {
            chain_id,
            block_time,
            started: Instant::now(),
            slow_logs: Duration::ZERO,
        }
    }

    /// The same chain, its `eth_getLogs` answered after `slow`.
    pub fn with_slow_logs(mut self, slow: Duration) -> Self {
        self.slow_logs = slow;
        self
    }

    fn head(&self) -> u64 {
        let Some(block_time) = self.block_time else {
            return FIRST_BLOCK;
        };
        let step = block_time.as_millis().max(1);
        FIRST_BLOCK + (self.started.elapsed().as_millis() / step) as u64
    }
}

/// Binds `127.0.0.1:0` and serves in a task of its own until the process
/// ends; returns the address.
pub async fn spawn(chain: Arc<FixedChain>) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(serve(listener, chain));
    Ok(addr)
}

/// Serves the connections of `listener` until accepting fails.
pub async fn serve(listener: TcpListener, chain: Arc<FixedChain>) -> std::io::Result<()> {
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let chain = chain.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| answer(chain.clone(), req));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn answer(
    chain: Arc<FixedChain>,
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
        match serde_json::from_str::<Vec<&serde_json::value::RawValue>>(text) {
            Ok(calls) => {
                let mut out = String::from("[");
                for (i, call) in calls.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&single(&chain, call.get()).await);
                }
                out.push(']');
                out
            }
            Err(_) => {
                r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"parse error"}}"#
                    .to_string()
            }
        }
    } else {
        single(&chain, text).await
    };
    let mut r = Response::new(Full::new(Bytes::from(reply)));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(r)
}

/// The answer to one call.
async fn single(chain: &FixedChain, text: &str) -> String {
    if !chain.slow_logs.is_zero() && method_of(text) == Some("eth_getLogs") {
        tokio::time::sleep(chain.slow_logs).await;
    }
    let id = id_of(text).unwrap_or("null");
    let result = result_for(chain, text);
    format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{result}}}"#)
}

fn status(code: StatusCode) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = code;
    r
}

/// The result for the call in `text`: the head tracker's calls answered
/// properly, everything else with [`FIXED_RESULT`].
fn result_for(chain: &FixedChain, text: &str) -> String {
    let head = chain.head();
    match method_of(text) {
        Some("eth_chainId") => format!("\"{:#x}\"", chain.chain_id),
        Some("net_version") => format!("\"{}\"", chain.chain_id),
        Some("eth_blockNumber") => format!("\"{head:#x}\""),
        Some("eth_syncing") => "false".into(),
        Some("eth_getBlockByNumber") => {
            let number = if text.contains("\"finalized\"") || text.contains("\"safe\"") {
                Some(head.saturating_sub(FINALITY_LAG))
            } else if let Some(n) = first_hex_param(text) {
                (n <= head).then_some(n)
            } else {
                Some(head)
            };
            number.map_or_else(|| "null".into(), block)
        }
        Some("eth_getBlockByHash") => number_of_hash(text)
            .filter(|n| *n <= head)
            .map_or_else(|| "null".into(), block),
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

/// The number of the block whose hash is the first `"0x…"` of the params,
/// when it is a hash [`hash_of`] makes.
fn number_of_hash(text: &str) -> Option<u64> {
    let params = after_key(text, "\"params\"")?;
    let at = params.find("\"0x")? + 3;
    let hash = params.get(at..at + 64)?;
    let n = u64::from_str_radix(&hash[16..], 16).ok()?;
    (hash_of(n)[2..] == *hash).then_some(n)
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
        let chain = FixedChain::new(31337, Some(Duration::from_secs(3600)));
        assert!(result_for(&chain, t).starts_with(r#"{"number":"0x3e8""#));
        let future = r#"{"id":2,"method":"eth_getBlockByNumber","params":["0xffff",false]}"#;
        assert_eq!(result_for(&chain, future), "null");
        let other = r#"{"id":3,"method":"eth_getBalance","params":["0xab","latest"]}"#;
        assert_eq!(result_for(&chain, other), FIXED_RESULT);
        assert_eq!(id_of(r#"{"method":"x","id":7}"#), Some("7"));
        let by_hash = format!(
            r#"{{"id":4,"method":"eth_getBlockByHash","params":["{}",false]}}"#,
            hash_of(1000)
        );
        assert!(result_for(&chain, &by_hash).starts_with(r#"{"number":"0x3e8""#));
        let unknown = r#"{"id":5,"method":"eth_getBlockByHash","params":["0x00000000000000000000000000000000000000000000000000000000000003e8",false]}"#;
        assert_eq!(result_for(&chain, unknown), "null");
        let fixed = FixedChain::new(1, None);
        assert_eq!(fixed.head(), FIRST_BLOCK);
    }
}
