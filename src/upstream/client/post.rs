//! How a backend's HTTP calls travel: the lean client (`upstream::lean`)
//! for `http` URLs, hyper's connections (`upstream::pool`) for `https`.
//!
//! Both give the same thing to the two kinds of call above them (one call,
//! one batch): a body posted, and the answer's status and whole body read
//! against the answer budget, or why there is none. A 5xx or 429 is
//! [`UpstreamError::Status`] without its body being read.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::BodyExt;

use super::{with_sources, Backend, UpstreamError};
use crate::memory::{self, Permit};
use crate::upstream::lean::LeanPool;
use crate::upstream::pool::{Pool, SendError};
use crate::upstream::tls::{self, Connector};

/// A backend's connections, by the kind of its URL.
pub(super) enum Transport {
    Lean(LeanPool),
    Hyper(Arc<Pool>),
}

impl Transport {
    pub(super) fn new(connector: Connector, url: &http::Uri, headers: &http::HeaderMap) -> Self {
        if tls::is_tls(url) {
            Transport::Hyper(Pool::new(connector, url))
        } else {
            Transport::Lean(LeanPool::new(connector, url, headers))
        }
    }
}

impl Backend {
    /// POSTs `body` to the backend: the answer's status, its body and the
    /// budget it holds.
    pub(super) async fn post(
        &self,
        body: Bytes,
    ) -> Result<(http::StatusCode, Bytes, Permit), UpstreamError> {
        let pool = match &self.transport {
            Transport::Lean(lean) => {
                let answer = lean.post(&body, self.max_reply_bytes).await?;
                return Ok((answer.status, answer.body, answer.held));
            }
            Transport::Hyper(pool) => pool,
        };
        let request = pool.request(body, &self.headers);
        let (response, lease) = pool.send(request).await.map_err(|e| match e {
            SendError::Connect(text) => UpstreamError::Connect(text),
            SendError::Transport(text) => UpstreamError::Transport(text),
        })?;
        let status = response.status();
        if status.is_server_error() || status == http::StatusCode::TOO_MANY_REQUESTS {
            return Err(UpstreamError::Status(status.as_u16()));
        }
        let (body, held) = read_reply(response.into_body(), self.max_reply_bytes).await?;
        lease.done();
        Ok((status, body, held))
    }
}

/// A reply's whole body, at most `max` bytes, and the permit for them.
async fn read_reply(
    mut body: hyper::body::Incoming,
    max: usize,
) -> Result<(Bytes, Permit), UpstreamError> {
    use hyper::body::Body as _;
    let mut held = memory::answers().empty();
    let declared = body
        .size_hint()
        .exact()
        .and_then(|n| usize::try_from(n).ok());
    if declared.is_some_and(|n| n > max) {
        return Err(UpstreamError::TooLarge(max));
    }
    let mut first: Option<Bytes> = None;
    let mut joined: Option<Vec<u8>> = None;
    let mut len = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| UpstreamError::Transport(with_sources(&e)))?;
        let Ok(data) = frame.into_data() else {
            continue; // trailers
        };
        len += data.len();
        if len > max {
            return Err(UpstreamError::TooLarge(max));
        }
        held.grow(data.len())
            .await
            .map_err(|_| UpstreamError::MemoryBudget)?;
        match (&mut joined, first.take()) {
            (Some(buf), _) => buf.extend_from_slice(&data),
            (None, None) => first = Some(data),
            (None, Some(before)) => {
                let mut buf = Vec::with_capacity(declared.unwrap_or(0).max(len));
                buf.extend_from_slice(&before);
                buf.extend_from_slice(&data);
                joined = Some(buf);
            }
        }
    }
    let body = match joined {
        Some(buf) => Bytes::from(buf),
        None => first.unwrap_or_default(),
    };
    Ok((body, held))
}
