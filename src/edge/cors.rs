//! CORS for browser DApps: which origins may call the gateway, the answer to
//! a preflight `OPTIONS`, and the headers every answer to a cross-origin
//! request carries.
//!
//! A public JSON-RPC endpoint uses no cookies (keys travel in headers or the
//! path), so the default list is `*`. The origin is echoed rather than `*`
//! so that one rule serves both a `*` list and a named one, and `Vary:
//! Origin` keeps shared HTTP caches from mixing answers. An origin outside
//! the list gets no CORS headers at all: the browser then blocks the page,
//! which is the whole of the enforcement for plain HTTP. WebSocket upgrades
//! carry no preflight, so [`super::http`] refuses them here with 403.

use http::{header, HeaderMap, HeaderValue, Method, Response, StatusCode};

use crate::config::CorsConfig;

const ALLOW_METHODS: &str = "POST, GET, OPTIONS";
const ALLOW_HEADERS: &str = "content-type, authorization, x-api-key, x-request-id";
const EXPOSE_HEADERS: &str = "x-request-id, retry-after";

/// Whether `origin` (the header's text) matches one of `patterns`: `*`, an
/// exact origin, or `scheme://*.domain[:port]` for any subdomain of `domain`.
pub(super) fn allowed(patterns: &[String], origin: &str) -> bool {
    patterns.iter().any(|p| matches(p, origin))
}

fn matches(pattern: &str, origin: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    let Some((scheme, host)) = pattern.split_once("://*.") else {
        return pattern.eq_ignore_ascii_case(origin);
    };
    // `https://*.example.com` takes `https://a.example.com` and
    // `https://a.b.example.com`, never `https://example.com` nor
    // `https://evilexample.com`.
    let Some(rest) = strip_prefix_ignore_case(origin, scheme).and_then(|r| r.strip_prefix("://"))
    else {
        return false;
    };
    let Some(sub) = rest.len().checked_sub(host.len() + 1) else {
        return false;
    };
    sub > 0
        && rest.is_char_boundary(sub)
        && rest[sub..].starts_with('.')
        && rest[sub + 1..].eq_ignore_ascii_case(host)
        && !rest[..sub].contains(['/', ':', '@'])
}

fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &text[prefix.len()..])
}

/// The request's `Origin` when the list allows it; `None` without one, or
/// for an origin outside the list.
pub(super) fn allowed_origin(config: &CorsConfig, headers: &HeaderMap) -> Option<HeaderValue> {
    let origin = headers.get(header::ORIGIN)?;
    let text = origin.to_str().ok()?;
    allowed(&config.allowed_origins, text).then(|| origin.clone())
}

/// Whether a WebSocket upgrade may proceed: no `Origin` (not a browser), or
/// one the list allows.
pub(super) fn upgrade_allowed(config: &CorsConfig, headers: &HeaderMap) -> bool {
    headers.get(header::ORIGIN).is_none() || allowed_origin(config, headers).is_some()
}

/// Whether a caller whose client has its own `allowed_origins` (`list`)
/// may be served for this request: always without a list or without an
/// `Origin` (not a browser); else only from an origin on the list. Checked
/// for calls and for WebSocket upgrades alike: a browser sends no preflight
/// before an upgrade, so a key lifted into another site's page would
/// otherwise work over WebSocket.
pub(super) fn client_allowed(list: Option<&[String]>, headers: &HeaderMap) -> bool {
    match (list, headers.get(header::ORIGIN)) {
        (Some(list), Some(origin)) => origin.to_str().is_ok_and(|o| allowed(list, o)),
        _ => true,
    }
}

/// A preflight: `OPTIONS` with `Origin` and `Access-Control-Request-Method`.
pub(super) fn is_preflight(method: &Method, headers: &HeaderMap) -> bool {
    method == Method::OPTIONS
        && headers.contains_key(header::ORIGIN)
        && headers.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
}

/// 204, with the CORS grant when the origin is allowed and none otherwise.
pub(super) fn preflight<B: Default>(config: &CorsConfig, headers: &HeaderMap) -> Response<B> {
    let mut response = Response::new(B::default());
    *response.status_mut() = StatusCode::NO_CONTENT;
    let out = response.headers_mut();
    out.insert(header::VARY, HeaderValue::from_static("origin"));
    if let Some(origin) = allowed_origin(config, headers) {
        out.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        out.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static(ALLOW_METHODS),
        );
        out.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static(ALLOW_HEADERS),
        );
        out.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from(config.max_age.as_secs()),
        );
    }
    response
}

/// The headers of an answer to a request that came with `origin` (already
/// checked by [`allowed_origin`]).
pub(super) fn decorate(out: &mut HeaderMap, origin: HeaderValue) {
    out.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    out.append(header::VARY, HeaderValue::from_static("origin"));
    out.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static(EXPOSE_HEADERS),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(pattern: &str, origin: &str) -> bool {
        allowed(&[pattern.to_string()], origin)
    }

    #[test]
    fn origin_patterns() {
        assert!(ok("*", "https://anything.test"));
        assert!(ok("http://127.0.0.1:3000", "http://127.0.0.1:3000"));
        assert!(!ok("http://127.0.0.1:3000", "http://127.0.0.1:3001"));
        assert!(!ok("http://127.0.0.1:3000", "https://127.0.0.1:3000"));
        assert!(ok("https://*.example.com", "https://app.example.com"));
        assert!(ok("https://*.example.com", "https://a.b.Example.com"));
        assert!(!ok("https://*.example.com", "https://example.com"));
        assert!(!ok("https://*.example.com", "https://evilexample.com"));
        assert!(!ok("https://*.example.com", "http://app.example.com"));
        assert!(!ok(
            "https://*.example.com",
            "https://app.example.com.evil.test"
        ));
        assert!(!ok("https://*.example.com", "https://app.example.com:8443"));
        assert!(ok(
            "https://*.example.com:8443",
            "https://app.example.com:8443"
        ));
        assert!(!ok("https://*.example.com", "https://x:y@app.example.com"));
        assert!(!ok("https://*.example.com", "null"));
    }

    #[test]
    fn a_preflight_for_an_origin_outside_the_list_gets_no_grant() {
        let config = CorsConfig {
            allowed_origins: vec!["http://good.test".into()],
            ..CorsConfig::default()
        };
        let mut headers = HeaderMap::new();
        headers.insert(header::ORIGIN, HeaderValue::from_static("http://evil.test"));
        let r: Response<String> = preflight(&config, &headers);
        assert_eq!(r.status(), StatusCode::NO_CONTENT);
        assert!(!r
            .headers()
            .contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN));
        headers.insert(header::ORIGIN, HeaderValue::from_static("http://good.test"));
        let r: Response<String> = preflight(&config, &headers);
        assert_eq!(
            r.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN],
            "http://good.test"
        );
        assert_eq!(r.headers()[header::ACCESS_CONTROL_MAX_AGE], "600");
    }
}
