//! TLS on both sides, with certificates made by the test (rcgen) and real
//! clients: the listener (`server.tls`: HTTP/1.1 and h2 by ALPN, wss, a
//! certificate rotated on disk while clients keep connecting), and
//! upstreams (`https://`, `wss://`) behind a TLS terminator in front of an
//! anvil node, trusted through `tls.ca_file`.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use parking_lot::Mutex;
use rpcgate::metrics::TlsReload;
use rpcgate::upstream::Ineligible;
use rpcgate_fleet::tls::{connect as tls_connect, Seen};
use rpcgate_fleet::{TestCa, TlsTerminator};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use crate::support::*;

const CHAIN_ID_CALL: &str = r#"{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":[]}"#;

fn addr_of(gw: &Gw) -> SocketAddr {
    gw.url.trim_start_matches("http://").parse().unwrap()
}

/// One request on a fresh TLS connection that trusts `ca` and offers
/// `alpn`: the certificate the gateway presented, the protocol chosen, and
/// the answer to eth_chainId.
async fn tls_call(
    addr: SocketAddr,
    ca: &TestCa,
    alpn: &[&[u8]],
) -> Result<(Vec<u8>, Option<Vec<u8>>, Value), String> {
    let seen = tls_connect(addr, "localhost", ca.client_config(alpn))
        .await
        .map_err(|e| e.to_string())?;
    let (certificate, protocol) = (seen.certificate.clone(), seen.alpn.clone());
    let answer = if protocol.as_deref() == Some(b"h2") {
        h2_call(seen, addr).await?
    } else {
        let mut sender = h1(seen).await?;
        h1_call(&mut sender, addr).await?
    };
    Ok((certificate, protocol, answer))
}

type H1 = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

async fn h1(seen: Seen) -> Result<H1, String> {
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(seen.stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    Ok(sender)
}

fn request(uri: String, addr: SocketAddr) -> http::Request<Full<Bytes>> {
    http::Request::post(uri)
        .header("host", format!("localhost:{}", addr.port()))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(CHAIN_ID_CALL.as_bytes())))
        .unwrap()
}

async fn h1_call(sender: &mut H1, addr: SocketAddr) -> Result<Value, String> {
    sender.ready().await.map_err(|e| e.to_string())?;
    let response = sender
        .send_request(request("/".into(), addr))
        .await
        .map_err(|e| e.to_string())?;
    answer_of(response).await
}

async fn h2_call(seen: Seen, addr: SocketAddr) -> Result<Value, String> {
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(seen.stream))
            .await
            .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let uri = format!("https://localhost:{}/", addr.port());
    let response = sender
        .send_request(request(uri, addr))
        .await
        .map_err(|e| e.to_string())?;
    if response.version() != http::Version::HTTP_2 {
        return Err(format!("answered over {:?}", response.version()));
    }
    answer_of(response).await
}

async fn answer_of(response: http::Response<hyper::body::Incoming>) -> Result<Value, String> {
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    if status != 200 {
        return Err(format!("HTTP {status}"));
    }
    serde_json::from_slice(&body).map_err(|e| e.to_string())
}

fn tls_config(cert: &Path, key: &Path) -> String {
    format!(
        "server:\n  tls:\n    cert_file: {}\n    key_file: {}\n    reload_interval: 100ms\n",
        cert.display(),
        key.display()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_tls_listener_speaks_h2_and_http1_and_wss_and_follows_a_rotated_certificate() {
    let fleet = fleet(1).await;
    fleet.mine().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    let ca = TestCa::new("rpcgate test CA").unwrap();
    let first = ca.issue(1001).unwrap();
    first.write(&cert, &key).unwrap();
    let config = format!(
        "{}{}",
        tls_config(&cert, &key),
        yaml(fleet.chain_id(), &fleet_ups(&fleet), "")
    );
    let gw = start_gateway(&config).await;
    wait_synced(&gw, 1, 1).await;
    let addr = addr_of(&gw);
    let chain_id = json!(hex(fleet.chain_id()));

    // h2 when the client offers it, HTTP/1.1 when it offers only that or nothing.
    for (alpn, expect) in [
        (&[&b"h2"[..], b"http/1.1"][..], Some(&b"h2"[..])),
        (&[&b"http/1.1"[..]][..], Some(&b"http/1.1"[..])),
        (&[][..], None),
    ] {
        let (seen, protocol, answer) = tls_call(addr, &ca, alpn).await.unwrap();
        assert_eq!(protocol.as_deref(), expect, "ALPN offered {alpn:?}");
        assert_eq!(seen, first.der, "the first certificate");
        assert_eq!(answer["result"], chain_id, "{answer}");
    }

    // wss on the same port: calls and a newHeads subscription.
    let stream = tls_connect(addr, "localhost", ca.client_config(&[b"http/1.1"]))
        .await
        .unwrap()
        .stream;
    let url = format!("wss://localhost:{}/", addr.port());
    let (mut ws, _) = tokio_tungstenite::client_async(url, stream).await.unwrap();
    ws.send(Message::text(CHAIN_ID_CALL)).await.unwrap();
    let answer = next_json(&mut ws).await;
    assert_eq!(answer["result"], chain_id, "{answer}");
    ws.send(Message::text(
        r#"{"jsonrpc":"2.0","id":2,"method":"eth_subscribe","params":["newHeads"]}"#,
    ))
    .await
    .unwrap();
    let subscribed = next_json(&mut ws).await;
    assert!(subscribed["result"].is_string(), "{subscribed}");
    let height = fleet.mine().await.unwrap();
    let head = loop {
        let v = next_json(&mut ws).await;
        if v["method"] == "eth_subscription" {
            break v["params"]["result"].clone();
        }
    };
    assert_eq!(head["number"], json!(hex(height)), "{head}");

    // A client that does not trust the CA is refused, and counted.
    let listener = &gw.gateway.metrics().listener;
    let failures = listener.tls_handshake_failures.get();
    let stranger = TestCa::new("another CA").unwrap();
    assert!(tls_call(addr, &stranger, &[b"http/1.1"]).await.is_err());
    wait_for("the refused handshake counted", || async {
        listener.tls_handshake_failures.get() > failures
    })
    .await;

    // Open before the rotation, used after it.
    let mut kept = h1(
        tls_connect(addr, "localhost", ca.client_config(&[b"http/1.1"]))
            .await
            .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(h1_call(&mut kept, addr).await.unwrap()["result"], chain_id);

    // Clients connecting without a pause (a new connection per request)
    // while the files are replaced.
    let stop = Arc::new(AtomicBool::new(false));
    let failed = Arc::new(Mutex::new(Vec::<String>::new()));
    let (old_seen, new_seen) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let second = ca.issue(2002).unwrap();
    let ca = Arc::new(ca);
    let mut clients = Vec::new();
    for _ in 0..4 {
        let (stop, failed, ca) = (stop.clone(), failed.clone(), ca.clone());
        let (old_seen, new_seen) = (old_seen.clone(), new_seen.clone());
        let (first, second, chain_id) = (first.der.clone(), second.der.clone(), chain_id.clone());
        clients.push(tokio::spawn(async move {
            let mut round = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let alpn: &[&[u8]] = if round.is_multiple_of(2) {
                    &[b"h2", b"http/1.1"]
                } else {
                    &[b"http/1.1"]
                };
                round += 1;
                match tls_call(addr, &ca, alpn).await {
                    Ok((seen, _, answer)) if answer["result"] == chain_id => {
                        if seen == first {
                            old_seen.fetch_add(1, Ordering::Relaxed);
                        } else if seen == second {
                            new_seen.fetch_add(1, Ordering::Relaxed);
                        } else {
                            failed.lock().push("an unknown certificate".into());
                        }
                    }
                    Ok((_, _, answer)) => failed.lock().push(format!("answer {answer}")),
                    Err(e) => failed.lock().push(e),
                }
            }
        }));
    }
    wait_for("clients served on the first certificate", || async {
        old_seen.load(Ordering::Relaxed) >= 20
    })
    .await;
    let applied = listener.tls_reloads(TlsReload::Applied).get();
    second.write(&cert, &key).unwrap();
    wait_for("clients served on the rotated certificate", || async {
        new_seen.load(Ordering::Relaxed) >= 20
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.unwrap();
    }
    let failed = failed.lock().clone();
    eprintln!(
        "rotation: {} connections on the first certificate, {} on the second, {} failed",
        old_seen.load(Ordering::Relaxed),
        new_seen.load(Ordering::Relaxed),
        failed.len()
    );
    assert!(
        failed.is_empty(),
        "{} of {} connections failed during the rotation: {:?}",
        failed.len(),
        old_seen.load(Ordering::Relaxed) + new_seen.load(Ordering::Relaxed),
        &failed[..failed.len().min(5)]
    );
    assert!(listener.tls_reloads(TlsReload::Applied).get() > applied);
    // Every new connection now gets the new certificate; the old
    // connection still works.
    for alpn in [&[&b"h2"[..]][..], &[&b"http/1.1"[..]][..]] {
        let (seen, _, _) = tls_call(addr, &ca, alpn).await.unwrap();
        assert_eq!(seen, second.der, "a connection after the rotation");
    }
    assert_eq!(h1_call(&mut kept, addr).await.unwrap()["result"], chain_id);

    // A broken key file is refused and counted; the current pair keeps serving.
    let refused = listener.tls_reloads(TlsReload::Refused).get();
    std::fs::write(&key, "-----BEGIN PRIVATE KEY-----\nnot a key\n").unwrap();
    wait_for("the broken pair refused", || async {
        listener.tls_reloads(TlsReload::Refused).get() > refused
    })
    .await;
    let (seen, _, answer) = tls_call(addr, &ca, &[b"h2"]).await.unwrap();
    assert_eq!(seen, second.der);
    assert_eq!(answer["result"], chain_id);
}

async fn next_json<S>(ws: &mut tokio_tungstenite::WebSocketStream<S>) -> Value
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    loop {
        let message = tokio::time::timeout(Duration::from_secs(20), ws.next())
            .await
            .expect("a message in time")
            .expect("the socket is open")
            .expect("a valid frame");
        if let Message::Text(t) = message {
            return serde_json::from_str(t.as_str()).unwrap();
        }
    }
}

/// A fleet of one, its node behind a TLS terminator whose CA is in
/// `ca.pem`, and the `tls` and `headers` lines of an upstream using it.
struct Fronted {
    fleet: rpcgate_fleet::Fleet,
    terminator: TlsTerminator,
    _dir: tempfile::TempDir,
    ca_file: std::path::PathBuf,
}

async fn fronted() -> Fronted {
    let fleet = fleet(1).await;
    fleet.mine().await.unwrap();
    let ca = TestCa::new("provider CA").unwrap();
    let terminator = TlsTerminator::start(&fleet.http_url(0), &ca.issue(7).unwrap())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    ca.write(&ca_file).unwrap();
    Fronted {
        fleet,
        terminator,
        _dir: dir,
        ca_file,
    }
}

/// A config whose only upstreams are `lines` (YAML list items, indented).
fn config_with(chain_id: u64, lines: &str) -> String {
    format!("{}{lines}", yaml(chain_id, &[], ""))
}

#[tokio::test]
async fn an_https_upstream_with_a_ca_file_gets_its_header_from_the_environment() {
    let f = fronted().await;
    let secret = "tls-upstream-s3cret-91f2";
    std::env::set_var("RPCGATE_TEST_TLS_UPSTREAM_KEY", secret);
    let lines = format!(
        "      - name: provider\n        http: {}\n        headers: {{ X-Api-Key: \"${{RPCGATE_TEST_TLS_UPSTREAM_KEY}}\" }}\n        tls: {{ ca_file: {} }}\n",
        f.terminator.https_url(),
        f.ca_file.display()
    );
    let gw = start_gateway(&config_with(f.fleet.chain_id(), &lines)).await;
    wait_synced(&gw, 1, 1).await;
    let balance = result(&gw.url, "eth_getBalance", json!([DEV, "latest"])).await;
    let direct = rpcgate_fleet::client::result(
        &f.fleet.http_url(0),
        "eth_getBalance",
        json!([DEV, "latest"]),
    )
    .await;
    assert_eq!(balance, direct);
    assert!(f.terminator.handshakes() >= 1);
    let got = f.terminator.header_values("x-api-key");
    assert!(!got.is_empty(), "no x-api-key reached the node");
    assert!(got.iter().all(|v| v == secret), "{got:?}");
    assert!(
        f.terminator
            .request_lines()
            .iter()
            .any(|l| l.starts_with("POST ")),
        "{:?}",
        f.terminator.request_lines()
    );

    // The secret is nowhere an operator looks.
    for path in ["/status", "/metrics"] {
        let page = get(&format!("{}{path}", gw.admin)).await;
        assert!(!page.is_empty(), "{path} answered");
        assert!(!page.contains(secret), "{path} shows the secret");
    }
}

#[tokio::test]
async fn an_https_upstream_not_signed_by_a_trusted_ca_is_refused() {
    let f = fronted().await;
    // No tls.ca_file: the system's roots, which do not hold the test CA.
    let lines = format!(
        "      - name: provider\n        http: {}\n      - name: plain\n        http: {}\n",
        f.terminator.https_url(),
        f.fleet.http_url(0)
    );
    let gw = start_gateway(&config_with(f.fleet.chain_id(), &lines)).await;
    wait_view(&gw, "the plain backend eligible", |v| {
        v.eligible().any(|b| b.backend.name == "plain")
    })
    .await;
    // Its probes reach the terminator and stop at the handshake: the
    // gateway refused the certificate, says why, and sent no request.
    wait_view(&gw, "the untrusted backend judged unreachable", |v| {
        v.backends.iter().any(|b| {
            b.backend.name == "provider"
                && b.ineligible == Some(Ineligible::Unreachable)
                && b.state
                    .last_error
                    .as_deref()
                    .is_some_and(|e| e.contains("certificate"))
        })
    })
    .await;
    assert!(f.terminator.accepted() >= 1);
    for _ in 0..5 {
        let height = result(&gw.url, "eth_blockNumber", json!([])).await;
        assert_eq!(height, json!("0x1"));
    }
    assert_eq!(f.terminator.handshakes(), 0, "a handshake completed");
    assert!(
        f.terminator.request_lines().is_empty(),
        "a request went to an untrusted server: {:?}",
        f.terminator.request_lines()
    );
    let status = get(&format!("{}/status", gw.admin)).await;
    assert!(status.contains("certificate"), "{status}");
}

#[tokio::test]
async fn a_wss_upstream_carries_new_heads_to_a_subscribed_client() {
    let f = fronted().await;
    let secret = "wss-upstream-s3cret-4c1d";
    std::env::set_var("RPCGATE_TEST_WSS_UPSTREAM_KEY", secret);
    let lines = format!(
        "      - name: provider\n        http: {}\n        ws: {}\n        headers: {{ X-Api-Key: \"${{RPCGATE_TEST_WSS_UPSTREAM_KEY}}\" }}\n        tls: {{ ca_file: {} }}\n",
        f.terminator.https_url(),
        f.terminator.wss_url(),
        f.ca_file.display()
    );
    let gw = start_gateway(&config_with(f.fleet.chain_id(), &lines)).await;
    wait_synced(&gw, 1, 1).await;
    let url = gw.url.replace("http://", "ws://");
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("{url}/"))
        .await
        .unwrap();
    ws.send(Message::text(
        r#"{"jsonrpc":"2.0","id":1,"method":"eth_subscribe","params":["newHeads"]}"#,
    ))
    .await
    .unwrap();
    let subscribed = next_json(&mut ws).await;
    assert!(subscribed["result"].is_string(), "{subscribed}");
    for _ in 0..2 {
        let height = f.fleet.mine().await.unwrap();
        let head = loop {
            let v = next_json(&mut ws).await;
            if v["method"] == "eth_subscription" {
                break v["params"]["result"].clone();
            }
        };
        assert_eq!(head["number"], json!(hex(height)), "{head}");
        let hash = f.fleet.block_hash(0, height).await.unwrap().unwrap();
        assert_eq!(head["hash"], json!(hash));
    }
    // The feeds came over wss: WebSocket handshakes through the
    // terminator, each with the upstream's header.
    let upgrades: Vec<_> = f
        .terminator
        .heads()
        .into_iter()
        .filter(|h| h.line.starts_with("GET ") && h.header("upgrade") == Some("websocket"))
        .collect();
    assert!(!upgrades.is_empty(), "{:?}", f.terminator.request_lines());
    for head in &upgrades {
        assert_eq!(head.header("x-api-key"), Some(secret), "{head:?}");
    }
}

async fn get(url: &str) -> String {
    let response = client()
        .request(
            http::Request::get(url)
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await
        .unwrap();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8_lossy(&body).into_owned()
}
