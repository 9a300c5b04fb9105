//! The lean client against real servers on loopback: hyper's (what backends
//! run) and a raw socket that writes answers byte for byte as given, for
//! the framings and faults a well-behaved server does not produce.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::reply::{MAX_HEADERS, MAX_HEAD_BYTES};
use super::*;

fn lean(url: &str, headers: &http::HeaderMap) -> LeanPool {
    let tcp = HttpConnector::new();
    LeanPool::new(Connector::new(tcp, None), &url.parse().unwrap(), headers)
}

/// A hyper server on port 0 answering each POST with what it saw: method,
/// path, host, content type, `x-api-key`, and the body. Counts connections.
async fn echo() -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/rpc?k=1", listener.local_addr().unwrap());
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            count.fetch_add(1, Ordering::Relaxed);
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(|req: http::Request<Incoming>| async move {
                        let h = |n: &str| {
                            req.headers()
                                .get(n)
                                .map_or("-".to_string(), |v| v.to_str().unwrap().to_string())
                        };
                        let seen = format!(
                            "{} {} {} {} {} ",
                            req.method(),
                            req.uri(),
                            h("host"),
                            h("content-type"),
                            h("x-api-key")
                        );
                        let body = req.into_body().collect().await.unwrap().to_bytes();
                        let text = format!("{seen}{}", String::from_utf8_lossy(&body));
                        Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(
                            Bytes::from(text),
                        )))
                    });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (url, accepted)
}

/// A raw server on port 0: for each request on a connection (read up to
/// its body's end), it writes `answers[i]` for the i-th request it has seen
/// in all (the last one again past the end), one byte per write when
/// `trickle`, and closes the connection after an answer when `close_after`.
async fn raw(
    answers: Vec<&'static [u8]>,
    trickle: bool,
    close_after: bool,
) -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    let served = Arc::new(AtomicUsize::new(0));
    let answers = Arc::new(answers);
    tokio::spawn(async move {
        loop {
            let (mut stream, _) = listener.accept().await.unwrap();
            count.fetch_add(1, Ordering::Relaxed);
            let (served, answers) = (served.clone(), answers.clone());
            tokio::spawn(async move {
                let mut buf = Vec::new();
                loop {
                    // One request: its head, then Content-Length bytes.
                    let need = loop {
                        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
                            let len: usize = head
                                .lines()
                                .find_map(|l| l.strip_prefix("content-length: "))
                                .unwrap()
                                .parse()
                                .unwrap();
                            break end + 4 + len;
                        }
                        let mut chunk = [0u8; 4096];
                        match stream.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    };
                    while buf.len() < need {
                        let mut chunk = [0u8; 4096];
                        match stream.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    buf.drain(..need);
                    let i = served.fetch_add(1, Ordering::Relaxed);
                    let answer = answers[i.min(answers.len() - 1)];
                    if trickle {
                        for b in answer {
                            stream.write_all(&[*b]).await.unwrap();
                            stream.flush().await.unwrap();
                        }
                    } else {
                        stream.write_all(answer).await.unwrap();
                    }
                    if close_after {
                        return;
                    }
                }
            });
        }
    });
    (url, accepted)
}

async fn body_of(pool: &LeanPool, body: &str) -> String {
    let answer = pool.post(body.as_bytes(), 1 << 20).await.unwrap();
    assert_eq!(answer.held.bytes(), answer.body.len());
    String::from_utf8(answer.body.to_vec()).unwrap()
}

#[tokio::test]
async fn calls_share_one_connection_with_the_head_encoded_once() {
    let (url, accepted) = echo().await;
    let mut headers = http::HeaderMap::new();
    headers.insert("x-api-key", "s3cret".parse().unwrap());
    // Framing headers among the configured ones are ours to say.
    headers.insert("content-length", "1".parse().unwrap());
    let pool = lean(&url, &headers);
    let authority = url
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap()
        .to_string();
    for i in 0..20 {
        let body = format!("{{\"n\":{}}}", "7".repeat(i * 100));
        assert_eq!(
            body_of(&pool, &body).await,
            format!("POST /rpc?k=1 {authority} application/json s3cret {body}")
        );
    }
    assert_eq!(
        accepted.load(Ordering::Relaxed),
        1,
        "one connection, reused"
    );
    assert_eq!(pool.idle_count(), 1);
}

#[tokio::test]
async fn chunked_answers_with_extensions_and_trailers_and_trickled_bytes() {
    let chunked: &[u8] =
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\n";
    let length: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nabc";
    for trickle in [false, true] {
        let (url, accepted) = raw(vec![chunked, length, chunked], trickle, false).await;
        let pool = lean(&url, &http::HeaderMap::new());
        assert_eq!(body_of(&pool, "{}").await, "hello world");
        assert_eq!(body_of(&pool, "{}").await, "abc");
        assert_eq!(body_of(&pool, "{}").await, "hello world");
        assert_eq!(accepted.load(Ordering::Relaxed), 1, "trickle {trickle}");
    }
}

#[tokio::test]
async fn an_answer_without_length_runs_to_the_end_and_is_not_reused() {
    let (url, accepted) = raw(vec![b"HTTP/1.0 200 OK\r\n\r\nuntil closed"], false, true).await;
    let pool = lean(&url, &http::HeaderMap::new());
    assert_eq!(body_of(&pool, "{}").await, "until closed");
    assert_eq!(body_of(&pool, "{}").await, "until closed");
    assert_eq!(accepted.load(Ordering::Relaxed), 2);
    assert_eq!(pool.idle_count(), 0);
}

#[tokio::test]
async fn connection_close_and_a_backend_closing_idle_connections_cost_only_a_new_connection() {
    // Says close: not kept.
    let said: &[u8] = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok";
    let (url, accepted) = raw(vec![said], false, true).await;
    let pool = lean(&url, &http::HeaderMap::new());
    for _ in 0..5 {
        assert_eq!(body_of(&pool, "{}").await, "ok");
    }
    assert_eq!(accepted.load(Ordering::Relaxed), 5);
    // Says nothing, closes anyway once idle: noticed when taken.
    let silent: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    let (url, accepted) = raw(vec![silent], false, true).await;
    let pool = lean(&url, &http::HeaderMap::new());
    for n in 1..=5 {
        assert_eq!(body_of(&pool, "{}").await, "ok");
        assert_eq!(pool.idle_count(), 1);
        // Until the close has reached our side.
        for _ in 0..200 {
            tokio::time::sleep(Duration::from_millis(5)).await;
            if pool.idle.lock()[0].tcp.try_read(&mut [0u8; 1]).is_ok() {
                break;
            }
        }
        assert_eq!(accepted.load(Ordering::Relaxed), n);
    }
}

#[tokio::test]
async fn limits_and_faults_are_errors_of_their_kind() {
    let cases: Vec<(&'static [u8], &str)> = vec![
        (
            b"HTTP/1.1 503 Busy\r\nContent-Length: 0\r\n\r\n",
            "Status(503)",
        ),
        (
            b"HTTP/1.1 429 Slow\r\nContent-Length: 0\r\n\r\n",
            "Status(429)",
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 2000000\r\n\r\n",
            "TooLarge(1000)",
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3e9\r\n",
            "TooLarge(1000)",
        ),
        // No length: the body runs to the end (here, empty).
        (b"HTTP/1.1 200 OK\r\n\r\n", "Ok(b\"\")"),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok",
            "conflicting",
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: -2\r\n\r\nok",
            "malformed Content-Length",
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nok",
            "unsupported Transfer-Encoding",
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            "malformed chunk size",
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nok",
            "reading the answer body",
        ),
        (b"NOT HTTP\r\n\r\n", "malformed answer head"),
    ];
    for (answer, expected) in cases {
        let (url, _) = raw(vec![answer], false, true).await;
        let pool = lean(&url, &http::HeaderMap::new());
        let got = format!("{:?}", pool.post(b"{}", 1000).await.map(|a| a.body));
        assert!(got.contains(expected), "{answer:?}: {got}");
    }
    // Too many headers, and a head too long.
    let many: String = (0..MAX_HEADERS + 1)
        .map(|i| format!("x-h{i}: 1\r\n"))
        .collect();
    let many = format!("HTTP/1.1 200 OK\r\n{many}Content-Length: 0\r\n\r\n");
    let long = format!(
        "HTTP/1.1 200 OK\r\nx-long: {}\r\n\r\n",
        "a".repeat(MAX_HEAD_BYTES)
    );
    for answer in [many, long] {
        let answer: &'static [u8] = Box::leak(answer.into_bytes().into_boxed_slice());
        let (url, _) = raw(vec![answer], false, true).await;
        let pool = lean(&url, &http::HeaderMap::new());
        let got = format!("{:?}", pool.post(b"{}", 1000).await.map(|a| a.body));
        assert!(got.contains("answer head"), "{got}");
    }
}

#[tokio::test]
async fn a_refused_connection_is_a_connect_error() {
    // Port 9 (discard) is closed on loopback.
    let pool = lean("http://127.0.0.1:9", &http::HeaderMap::new());
    assert!(matches!(
        pool.post(b"{}", 1000).await,
        Err(UpstreamError::Connect(_))
    ));
}

#[test]
fn decimals() {
    for n in [0, 7, 10, 99, 12345, u64::MAX] {
        assert_eq!(decimal(n, &mut [0u8; 20]), n.to_string().as_bytes());
    }
}
