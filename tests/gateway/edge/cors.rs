//! CORS as a browser sees it: preflights, the headers of cross-origin
//! answers, an origin outside a configured list, WebSocket upgrades.

use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::support::*;

const CALL: &str = r#"{"jsonrpc":"2.0","id":7,"method":"eth_chainId"}"#;

async fn gateway(cors: &str) -> (rpcgate_fleet::Fleet, Gw) {
    let fleet = fleet(1).await;
    let config = format!("{cors}{}", yaml(fleet.chain_id(), &fleet_ups(&fleet), ""));
    let gw = start_gateway(&config).await;
    wait_synced(&gw, 1, 0).await;
    (fleet, gw)
}

async fn preflight(gw: &Gw, origin: &str) -> http::Response<hyper::body::Incoming> {
    let request = http::Request::builder()
        .method("OPTIONS")
        .uri(&gw.url)
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization, content-type",
        )
        .body(Default::default())
        .unwrap();
    client().request(request).await.unwrap()
}

fn header<'a>(headers: &'a http::HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).map(|v| v.to_str().unwrap())
}

#[tokio::test]
async fn any_origin_by_default() {
    let (_fleet, gw) = gateway("").await;
    let origin = "http://127.0.0.1:5173";
    let response = preflight(&gw, origin).await;
    assert_eq!(response.status(), 204);
    let h = response.headers();
    assert_eq!(header(h, "access-control-allow-origin"), Some(origin));
    assert_eq!(
        header(h, "access-control-allow-methods"),
        Some("POST, GET, OPTIONS")
    );
    let allowed = header(h, "access-control-allow-headers").unwrap();
    for name in ["content-type", "authorization", "x-api-key", "x-request-id"] {
        assert!(allowed.contains(name), "{allowed}");
    }
    assert_eq!(header(h, "access-control-max-age"), Some("600"));

    let reply = post_with_headers(&gw.url, &[("origin", origin)], CALL).await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        header(&reply.headers, "access-control-allow-origin"),
        Some(origin)
    );
    // One Vary header: CORS's origin, and compression's accept-encoding.
    assert_eq!(
        header(&reply.headers, "vary"),
        Some("origin, accept-encoding")
    );
    let exposed = header(&reply.headers, "access-control-expose-headers").unwrap();
    assert!(
        exposed.contains("x-request-id") && exposed.contains("retry-after"),
        "{exposed}"
    );
    // Refusals carry them too, or the page could not read why.
    let reply = post_with_headers(&gw.url, &[("origin", origin)], "{not json").await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        header(&reply.headers, "access-control-allow-origin"),
        Some(origin)
    );
    let (status, _) = post_with(&gw.url, CALL, Some("text/plain")).await;
    assert_eq!(status, 415);

    // Without an Origin (not a browser) an answer carries no CORS headers,
    // and a plain OPTIONS is still no JSON-RPC method.
    let reply = post_with_headers(&gw.url, &[], CALL).await;
    assert!(!reply.headers.contains_key("access-control-allow-origin"));
    let request = http::Request::builder()
        .method("OPTIONS")
        .uri(&gw.url)
        .body(Default::default())
        .unwrap();
    assert_eq!(client().request(request).await.unwrap().status(), 405);
}

#[tokio::test]
async fn an_origin_outside_the_list_gets_no_grant() {
    let cors = "server:\n  cors:\n    allowed_origins: [\"http://good.test:3000\", \"https://*.example.com\"]\n    max_age: 60s\n";
    let (_fleet, gw) = gateway(cors).await;
    for origin in ["http://good.test:3000", "https://app.example.com"] {
        let response = preflight(&gw, origin).await;
        assert_eq!(response.status(), 204);
        assert_eq!(
            header(response.headers(), "access-control-allow-origin"),
            Some(origin)
        );
        assert_eq!(
            header(response.headers(), "access-control-max-age"),
            Some("60")
        );
        let reply = post_with_headers(&gw.url, &[("origin", origin)], CALL).await;
        assert_eq!(
            header(&reply.headers, "access-control-allow-origin"),
            Some(origin)
        );
    }
    for origin in [
        "http://evil.test",
        "https://example.com",
        "http://good.test:3001",
    ] {
        let response = preflight(&gw, origin).await;
        assert_eq!(response.status(), 204);
        assert!(
            !response
                .headers()
                .keys()
                .any(|k| k.as_str().starts_with("access-control-")),
            "{origin}: {:?}",
            response.headers()
        );
        let reply = post_with_headers(&gw.url, &[("origin", origin)], CALL).await;
        assert!(!reply.headers.contains_key("access-control-allow-origin"));
    }

    // WebSocket upgrades: no preflight, so the gateway itself refuses.
    let ws_url = gw.url.replace("http://", "ws://");
    let upgrade = |origin: Option<&'static str>| {
        let mut request = ws_url.as_str().into_client_request().unwrap();
        if let Some(origin) = origin {
            request
                .headers_mut()
                .insert("origin", http::HeaderValue::from_static(origin));
        }
        tokio_tungstenite::connect_async(request)
    };
    match upgrade(Some("http://evil.test")).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 403)
        }
        other => panic!("expected 403, got {:?}", other.map(|(_, r)| r.status())),
    }
    for origin in [Some("https://app.example.com"), None] {
        let (_ws, response) = upgrade(origin).await.expect("an allowed upgrade");
        assert_eq!(response.status(), 101);
    }
}

#[tokio::test]
async fn a_client_with_its_own_origins_is_refused_from_any_other() {
    let policy = format!(
        "policy:\n  clients:\n    dapp:\n      key_sha256: [{}]\n      allowed_origins: [\"https://*.dapp.test\"]\n",
        sha256_hex(KEY)
    );
    let (_fleet, gw) = gateway(&policy).await;
    let bearer = format!("Bearer {KEY}");
    let mine = "https://app.dapp.test";
    let reply = post_with_headers(
        &gw.url,
        &[("origin", mine), ("authorization", &bearer)],
        CALL,
    )
    .await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        header(&reply.headers, "access-control-allow-origin"),
        Some(mine)
    );
    // The key lifted into another site's page: refused, though server.cors
    // (any origin) answers that site's preflight and anonymous calls.
    let other = "https://copycat.test";
    let reply = post_with_headers(
        &gw.url,
        &[("origin", other), ("authorization", &bearer)],
        CALL,
    )
    .await;
    assert_eq!(reply.status, 403);
    let reply = post_with_headers(&gw.url, &[("origin", other)], CALL).await;
    assert_eq!(reply.status, 200);
    // Outside a browser (no Origin) the key works as before.
    let reply = post_with_headers(&gw.url, &[("authorization", &bearer)], CALL).await;
    assert_eq!(reply.status, 200);

    // Over WebSocket too: a browser sends no preflight before an upgrade,
    // so the gateway itself refuses the key from another site's page.
    let ws_url = gw.url.replace("http://", "ws://");
    let upgrade = |origin: &str| {
        let mut request = ws_url.as_str().into_client_request().unwrap();
        let headers = request.headers_mut();
        headers.insert("origin", origin.parse().unwrap());
        headers.insert("authorization", bearer.parse().unwrap());
        tokio_tungstenite::connect_async(request)
    };
    match upgrade(other).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 403)
        }
        other => panic!("expected 403, got {:?}", other.map(|(_, r)| r.status())),
    }
    let (_ws, response) = upgrade(mine)
        .await
        .expect("an upgrade from the client's origin");
    assert_eq!(response.status(), 101);
}
