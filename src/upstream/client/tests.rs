//! The upstream client's own tests: ejection, headers, the request's faults,
//! learned state windows.

use super::*;

#[tokio::test]
async fn repeated_failures_eject_and_readmit_clears() {
    // Port 9 (discard) is closed on loopback: every call is refused.
    let cfg = UpstreamConfig {
        name: "gone".into(),
        http: "http://127.0.0.1:9".parse().unwrap(),
        ws: None,
        headers: Default::default(),
        tier: Default::default(),
        state_history: None,
        tls: None,
    };
    let b = Backend::new("test", &cfg, http_client(), 1 << 20, 3, &Metrics::new());
    let timeout = Duration::from_secs(1);
    let (r, ejected) = b.call("eth_chainId", None, timeout).await;
    assert!(matches!(r, Err(UpstreamError::Connect(_))));
    assert!(!ejected && !b.is_ejected());
    assert!(!b.call("eth_chainId", None, timeout).await.1);
    assert!(
        b.call("eth_chainId", None, timeout).await.1,
        "the third failure ejects"
    );
    assert!(b.is_ejected());
    assert!(
        !b.call("eth_chainId", None, timeout).await.1,
        "ejected once, not again"
    );
    assert!(
        b.load.estimate() > timeout * 9 / 10,
        "failures count as slow"
    );
    assert!(b.readmit(Duration::from_millis(2), false));
    assert!(!b.is_ejected());
    let neutral = b.load.estimate();
    assert!(
        neutral <= Duration::from_millis(2) && neutral > Duration::from_micros(1900),
        "a neutral estimate: {neutral:?}"
    );
    assert!(!b.readmit(Duration::from_millis(2), false));
}

#[tokio::test]
async fn the_upstream_headers_go_with_every_call() {
    use http_body_util::Full;
    use hyper_util::rt::TokioIo;
    // A real server on port 0 that answers with the header it got.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let service = hyper::service::service_fn(|req: http::Request<_>| async move {
            let key = req.headers().get("x-api-key").cloned();
            let key = key.map_or("none".to_string(), |v| v.to_str().unwrap().to_string());
            let body = format!(r#"{{"jsonrpc":"2.0","id":1,"result":"{key}"}}"#);
            Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(Bytes::from(body))))
        });
        let _ = hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(stream), service)
            .await;
    });
    let mut headers = http::HeaderMap::new();
    let mut value = http::HeaderValue::from_static("s3cret");
    value.set_sensitive(true);
    headers.insert("x-api-key", value);
    let cfg = UpstreamConfig {
        name: "keyed".into(),
        http: url.parse().unwrap(),
        ws: None,
        headers,
        tier: Default::default(),
        state_history: None,
        tls: None,
    };
    assert!(!format!("{cfg:?}").contains("s3cret"), "{cfg:?}");
    let b = Backend::new("test", &cfg, http_client(), 1 << 20, 3, &Metrics::new());
    let reply = b
        .exchange("eth_chainId", None, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(reply.raw(), br#""s3cret""#);
}

#[test]
fn a_learned_window_holds_for_a_while_then_is_learned_anew() {
    let cfg = UpstreamConfig {
        name: "pruned".into(),
        http: "http://127.0.0.1:9".parse().unwrap(),
        ws: None,
        headers: Default::default(),
        tier: Default::default(),
        state_history: None,
        tls: None,
    };
    let b = Backend::new("test", &cfg, http_client(), 1 << 20, 3, &Metrics::new());
    assert!(b.lacks_state(3, 10));
    assert_eq!(b.state_history(), Some(3));
    // A lesson deeper than the window teaches nothing new while it holds.
    assert!(!b.lacks_state(1, 10));
    assert_eq!(b.state_history(), Some(3));
    // Once it expires, the window is unknown again, and the next
    // lesson may be wider than the old one (F7: it widens again).
    b.learned_until.store(0, Ordering::Relaxed);
    assert_eq!(b.state_history(), None);
    assert!(b.lacks_state(1, 10));
    assert_eq!(b.state_history(), Some(4));
}

#[tokio::test]
async fn a_body_over_the_backends_limit_is_not_sent() {
    // Port 9 refuses: were the body sent, the error would be Connect.
    let cfg = UpstreamConfig {
        name: "limited".into(),
        http: "http://127.0.0.1:9".parse().unwrap(),
        ws: None,
        headers: Default::default(),
        tier: Default::default(),
        state_history: None,
        tls: None,
    };
    let limits = CallLimits {
        max_reply_bytes: 1 << 20,
        max_request_bytes: 100,
        eject_after: 1,
        request_timeout: Duration::from_secs(1),
        max_in_flight: 0,
        saturated_batch_max: 0,
        saturated_batch_max_bytes: 0,
    };
    let b = Backend::with_limits("test", &cfg, http_client(), limits, &Metrics::new());
    let params = format!("[\"0x{}\"]", "00".repeat(60));
    let (r, ejected) = b
        .call("eth_call", Some(&params), Duration::from_secs(1))
        .await;
    assert!(
        matches!(r, Err(UpstreamError::RequestTooLarge { max: 100, .. })),
        "{r:?}"
    );
    assert!(
        !ejected && !b.is_ejected(),
        "the request's fault ejects nothing"
    );
    // A small one is sent (and refused by the closed port: the backend's fault).
    let (r, ejected) = b.call("eth_chainId", None, Duration::from_secs(1)).await;
    assert!(matches!(r, Err(UpstreamError::Connect(_))), "{r:?}");
    assert!(ejected);
}

#[test]
fn request_bodies_are_json() {
    let b = request_body(7, "eth_call", Some(r#"[{"to":"0x1"},"0x5"]"#));
    let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
    assert_eq!(v["id"], 7);
    assert_eq!(v["params"][1], "0x5");
    let b = request_body(8, "eth_chainId", None);
    let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
    assert!(v.get("params").is_none());
}
