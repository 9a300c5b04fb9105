//! Lingering close: after an early refusal (413 for a body over the cap,
//! 408 for one too slow), the rest of the request body is read and thrown
//! away for a short, bounded time before the connection closes.
//!
//! Closing a socket with unread bytes in its receive buffer makes the
//! kernel send a reset, and a reset can destroy the answer before the
//! client reads it: a client that writes its whole body before reading
//! (Python's urllib, for one) then sees a broken pipe instead of the 413.
//! So the body is handed to a small task that drains it, while hyper
//! writes the answer (marked `connection: close`); the connection closes
//! once the client has sent everything, or when the bound (time or bytes)
//! is reached, whichever comes first.

use std::time::Duration;

use http_body_util::BodyExt;
use hyper::body::Incoming;

/// How long, and how many bytes, a refused body is drained for.
#[derive(Clone, Copy, Debug)]
pub(super) struct Linger {
    pub within: Duration,
    pub max_bytes: usize,
}

/// Drains `body` in the background, within the bounds of `linger`.
pub(super) fn drain(mut body: Incoming, linger: Linger) {
    tokio::spawn(async move {
        let discard = async {
            let mut seen = 0usize;
            while let Some(Ok(frame)) = body.frame().await {
                if let Ok(data) = frame.into_data() {
                    seen += data.len();
                    if seen > linger.max_bytes {
                        break;
                    }
                }
            }
        };
        let _ = tokio::time::timeout(linger.within, discard).await;
    });
}
