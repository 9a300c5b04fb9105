//! The id a failed request is logged and answered with: the caller's own
//! `X-Request-Id` when it is short and plain (so that a client's trace
//! finds our log line), else a random one. It is only formatted when
//! something fails; over HTTP it then goes back in the response's
//! `X-Request-Id`.

use std::sync::atomic::{AtomicBool, Ordering};

use http::{HeaderMap, HeaderValue};

/// The header a request id comes and goes in.
pub(crate) const X_REQUEST_ID: http::HeaderName = http::HeaderName::from_static("x-request-id");

/// The id of one request (an HTTP request, or a WebSocket message).
pub(crate) struct RequestId {
    /// The caller's own id, when it is short and made of plain characters.
    given: Option<HeaderValue>,
    random: u64,
    failed: AtomicBool,
}

impl RequestId {
    /// The caller's `X-Request-Id` when it is plain, else a random one.
    pub(crate) fn of(headers: &HeaderMap) -> RequestId {
        let plain = |v: &&HeaderValue| {
            let b = v.as_bytes();
            !b.is_empty()
                && b.len() <= 64
                && b.iter()
                    .all(|c| c.is_ascii_alphanumeric() || b"-_.:".contains(c))
        };
        RequestId {
            given: headers.get(&X_REQUEST_ID).filter(plain).cloned(),
            ..RequestId::random()
        }
    }

    /// A random id (a WebSocket message).
    pub(crate) fn random() -> RequestId {
        RequestId {
            given: None,
            random: fastrand::u64(..),
            failed: AtomicBool::new(false),
        }
    }

    /// Whether a call of the request failed or was refused.
    pub(crate) fn has_failed(&self) -> bool {
        self.failed.load(Ordering::Relaxed)
    }

    pub(crate) fn mark_failed(&self) {
        self.failed.store(true, Ordering::Relaxed);
    }
}

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.given.as_ref().and_then(|v| v.to_str().ok()) {
            Some(given) => f.write_str(given),
            None => write!(f, "{:016x}", self.random),
        }
    }
}
