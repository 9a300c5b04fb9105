//! `server.cors`: which browser origins may call the gateway. A public
//! JSON-RPC endpoint uses no cookies (keys travel in headers or the path),
//! so any origin is allowed by default.

use std::time::Duration;

use serde::Deserialize;

use crate::config::error::Checks;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(in crate::config) struct RawCors {
    pub allowed_origins: Option<Vec<String>>,
    pub max_age: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CorsConfig {
    /// `*`, exact origins (`https://app.example.com`), or globs with one
    /// leading `*.` in the host (`https://*.example.com`). Validated.
    pub allowed_origins: Vec<String>,
    /// How long a browser may keep a preflight's answer.
    pub max_age: Duration,
}

impl Default for CorsConfig {
    fn default() -> Self {
        CorsConfig {
            allowed_origins: vec!["*".into()],
            max_age: Duration::from_secs(600),
        }
    }
}

/// Each origin is `*`, or `scheme://host[:port]` whose host may start with
/// one `*.` (any subdomain, not the bare domain).
pub(super) fn validate(c: &mut Checks, raw: RawCors) -> CorsConfig {
    let default = CorsConfig::default();
    let allowed_origins = raw.allowed_origins.unwrap_or(default.allowed_origins);
    for (i, origin) in allowed_origins.iter().enumerate() {
        if origin != "*" && !origin_pattern_ok(origin) {
            c.fail(
                format!("server.cors.allowed_origins[{i}]"),
                format!("{origin:?} is not \"*\" or an origin like https://app.example.com or https://*.example.com (no path, no trailing slash)"),
            );
        }
    }
    let max_age = c.duration(
        "server.cors.max_age",
        raw.max_age.as_deref(),
        default.max_age,
    );
    if max_age > Duration::from_secs(24 * 3600) {
        c.fail(
            "server.cors.max_age",
            "at most 24h (browsers cap it lower anyway)",
        );
    }
    CorsConfig {
        allowed_origins,
        max_age,
    }
}

/// `scheme://host[:port]`, the host optionally starting with `*.`.
pub(in crate::config) fn origin_pattern_ok(origin: &str) -> bool {
    let Some((scheme, rest)) = origin.split_once("://") else {
        return false;
    };
    let host_ok = |h: &str| {
        !h.is_empty()
            && h.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'[' | b']' | b':'))
    };
    let host = rest.strip_prefix("*.").unwrap_or(rest);
    !scheme.is_empty()
        && scheme.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'+' || b == b'-' || b == b'.'
        })
        && host_ok(host)
        && !host.contains('*')
}
