//! The backend of the forwarding profile (`loadtests/profile`): a minimal
//! hyper server that passes for a node at one fixed block, so that rpcgate
//! admits it, and answers every other call with one fixed body. What the
//! gateway costs per forwarded call is then measured against the least a
//! backend can do. `fixed_node ADDR [FILE]` (FILE: the answer to other calls;
//! default `{"jsonrpc":"2.0","id":1,"result":"0x0"}`).
//!
//! The gateway's head tracker and reorg follower ask `eth_chainId` (1),
//! `eth_getBlockByNumber` and `eth_syncing` (false); the method is found by
//! its name's bytes, no JSON parse, so the backend's cost stays that of
//! `fixed_body`. The head stays at block 0x10 and `finalized` (and `safe`)
//! is block 0x8, as on a live chain where finality trails the head: a read
//! at `latest` is then a read above finality, which the cache keeps only
//! while that head is served (were the head final, every such read would be
//! stored for good, which no real chain does). Block n has a hash made from
//! n, and block n-1's as its parent, so the reorg follower reads a chain.

// Bench and example code: no API, and a failed unwrap stops the run
// (the product's lints in Cargo.toml are for src/).
#![allow(unreachable_pub, clippy::unwrap_used)]

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::{header, HeaderValue, Response};
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

/// The gateway's allocator, as in `fixed_body`.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The head's number, and the final block's.
const HEAD: u64 = 0x10;
const FINALIZED: u64 = 0x8;

/// Block `n`'s answer, or `null` above the head.
fn block(n: u64) -> Bytes {
    if n > HEAD {
        return Bytes::from_static(br#"{"jsonrpc":"2.0","id":1,"result":null}"#);
    }
    let hash = |n: u64| format!("0x{:064x}", 0x1111_0000 + n);
    Bytes::from(format!(
        r#"{{"jsonrpc":"2.0","id":1,"result":{{"number":"{n:#x}","hash":"{}","parentHash":"{}","transactions":[]}}}}"#,
        hash(n),
        hash(n.saturating_sub(1))
    ))
}

/// The block a `eth_getBlockByNumber` body asks for: a tag, or the first
/// `"0x…"` of its params.
fn block_asked(body: &[u8]) -> u64 {
    let has = |tag: &[u8]| body.windows(tag.len()).any(|w| w == tag);
    if has(b"\"finalized\"") || has(b"\"safe\"") {
        return FINALIZED;
    }
    let Some(at) = body.windows(3).position(|w| w == b"\"0x") else {
        return HEAD;
    };
    let digits = &body[at + 3..];
    let end = digits
        .iter()
        .position(|b| !b.is_ascii_hexdigit())
        .unwrap_or(digits.len());
    std::str::from_utf8(&digits[..end])
        .ok()
        .and_then(|d| u64::from_str_radix(d, 16).ok())
        .unwrap_or(HEAD)
}

struct Answers {
    other: Bytes,
    chain_id: Bytes,
    syncing: Bytes,
}

impl Answers {
    fn of(&self, body: &[u8]) -> Bytes {
        const METHOD: &[u8] = br#""method":""#;
        let name = body
            .windows(METHOD.len())
            .position(|w| w == METHOD)
            .map(|at| &body[at + METHOD.len()..])
            .and_then(|rest| Some(&rest[..rest.iter().position(|b| *b == b'"')?]));
        match name {
            Some(b"eth_chainId") => self.chain_id.clone(),
            Some(b"eth_getBlockByNumber") => block(block_asked(body)),
            Some(b"eth_getBlockByHash") => block(HEAD),
            Some(b"eth_syncing") => self.syncing.clone(),
            _ => self.other.clone(),
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let Some(addr) = args.next() else {
        eprintln!("usage: fixed_node ADDR [FILE]");
        std::process::exit(2);
    };
    let other = match args.next() {
        Some(file) => Bytes::from(std::fs::read(file)?),
        None => Bytes::from_static(br#"{"jsonrpc":"2.0","id":1,"result":"0x0"}"#),
    };
    let answers = Arc::new(Answers {
        other,
        chain_id: Bytes::from_static(br#"{"jsonrpc":"2.0","id":1,"result":"0x1"}"#),
        syncing: Bytes::from_static(br#"{"jsonrpc":"2.0","id":1,"result":false}"#),
    });
    let listener = TcpListener::bind(&addr).await?;
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let answers = answers.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                let answers = answers.clone();
                async move {
                    let body = req.into_body().collect().await.map(|b| b.to_bytes());
                    let answer = answers.of(&body.unwrap_or_default());
                    let mut r = Response::new(Full::new(answer));
                    r.headers_mut().insert(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("application/json"),
                    );
                    Ok::<_, Infallible>(r)
                }
            });
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
