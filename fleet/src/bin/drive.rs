//! A fixed number of JSON-RPC requests for the profile (`loadtests/profile`):
//! callgrind counts instructions, so the server under it must get an exact
//! number of requests, and every answer must be checked (a run that
//! answered errors measures the wrong path).
//!
//! `drive URL REQUESTS CONNECTIONS MODE`; MODE is `distinct` (eth_getBalance
//! at latest, a new address each request: forwarded), `same`
//! (eth_getBalance of one address at block 1, a final block: a cache hit
//! after the first, from the byte-bounded store) or `head` (eth_getBalance
//! of one address at `latest`, pinned to a head that does not move: a hit
//! in the head store after the first). Prints the
//! count of answers that carried a `result`; exits 1 if any did not.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

fn body(mode: &str, n: u64) -> Bytes {
    match mode {
        "distinct" => Bytes::from(format!(
            r#"{{"jsonrpc":"2.0","id":{n},"method":"eth_getBalance","params":["0x{n:040x}","latest"]}}"#
        )),
        "head" => Bytes::from_static(
            br#"{"jsonrpc":"2.0","id":1,"method":"eth_getBalance","params":["0x00000000000000000000000000000000000000aa","latest"]}"#,
        ),
        _ => Bytes::from_static(
            br#"{"jsonrpc":"2.0","id":1,"method":"eth_getBalance","params":["0x00000000000000000000000000000000000000aa","0x1"]}"#,
        ),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, requests, connections, mode] = &args[..] else {
        eprintln!("usage: drive URL REQUESTS CONNECTIONS distinct|same|head");
        std::process::exit(2);
    };
    let uri: http::Uri = url.parse().unwrap();
    let requests: u64 = requests.parse().unwrap();
    let connections: u64 = connections.parse().unwrap();
    let authority = uri.authority().unwrap().to_string();
    let next = Arc::new(AtomicU64::new(0));
    let good = Arc::new(AtomicU64::new(0));
    // A random start, so that two runs against one gateway send new addresses.
    let base = u64::from(fastrand::u32(..)) << 24;
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let (uri, authority, mode) = (uri.clone(), authority.clone(), mode.clone());
        let (next, good) = (next.clone(), good.clone());
        tasks.push(tokio::spawn(async move {
            let stream = TcpStream::connect(&authority).await.unwrap();
            stream.set_nodelay(true).unwrap();
            let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .unwrap();
            tokio::spawn(conn);
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= requests {
                    break;
                }
                let request = http::Request::post(uri.clone())
                    .header(http::header::HOST, &authority)
                    .header(http::header::CONTENT_TYPE, "application/json")
                    .body(Full::new(body(&mode, base + n)))
                    .unwrap();
                let response = sender.send_request(request).await.unwrap();
                let ok = response.status() == http::StatusCode::OK;
                let answer = response.into_body().collect().await.unwrap().to_bytes();
                if ok && answer.windows(9).any(|w| w == br#""result":"#) {
                    good.fetch_add(1, Ordering::Relaxed);
                } else if good.load(Ordering::Relaxed) < 3 {
                    eprintln!("bad answer: {}", String::from_utf8_lossy(&answer));
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let good = good.load(Ordering::Relaxed);
    println!("{good}");
    if good != requests {
        eprintln!("{} of {requests} answers had no result", requests - good);
        std::process::exit(1);
    }
}
