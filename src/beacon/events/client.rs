//! One client's event stream: a task that takes its shared stream's
//! events and hands them to the response body, with keep-alive comments
//! between them.
//!
//! The shared stream is a broadcast ring of `client_queue` events: a
//! client that falls that far behind has lost events, and is cut (its
//! stream ends; it reconnects) rather than buffered without limit. Between
//! the task and the body sits a short queue; a client that stops reading
//! altogether leaves the task waiting on it until the edge's write
//! deadline closes the connection, which ends the task too.

use std::any::Any;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::{Body, Frame, SizeHint};
use tokio::sync::{broadcast, mpsc, watch};

use super::Counts;

/// Frames between a client's task and its body.
const HANDOFF: usize = 8;

const KEEPALIVE: &[u8] = b": keep-alive\n\n";

/// A client's event stream as a response body.
pub struct EventBody {
    rx: mpsc::Receiver<Bytes>,
    /// What the connection holds while the stream is open (the edge's
    /// in-flight mark, so the connection is not idle).
    held: Option<Box<dyn Any + Send + Sync>>,
}

impl EventBody {
    pub fn hold(&mut self, guard: Box<dyn Any + Send + Sync>) {
        self.held = Some(guard);
    }
}

impl Body for EventBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.get_mut()
            .rx
            .poll_recv(cx)
            .map(|f| f.map(|b| Ok(Frame::data(b))))
    }
}

/// The edge's response body: a whole answer, or an event stream.
pub enum AnswerBody {
    Whole(Full<Bytes>),
    Events(EventBody),
}

impl Default for AnswerBody {
    fn default() -> Self {
        AnswerBody::Whole(Full::default())
    }
}

impl From<Full<Bytes>> for AnswerBody {
    fn from(f: Full<Bytes>) -> Self {
        AnswerBody::Whole(f)
    }
}

impl Body for AnswerBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            AnswerBody::Whole(f) => Pin::new(f).poll_frame(cx),
            AnswerBody::Events(e) => Pin::new(e).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            AnswerBody::Whole(f) => f.is_end_stream(),
            AnswerBody::Events(_) => false,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            AnswerBody::Whole(f) => f.size_hint(),
            AnswerBody::Events(_) => SizeHint::default(),
        }
    }
}

/// Gives back the client's place under `max_streams` when its task ends.
pub(super) struct Slot(pub(super) Arc<Counts>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.clients.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Starts a client's task; its body.
pub(super) fn start(
    events: broadcast::Receiver<Bytes>,
    keepalive: Duration,
    closing: watch::Receiver<bool>,
    slot: Slot,
) -> EventBody {
    let (tx, rx) = mpsc::channel(HANDOFF);
    tokio::spawn(forward(events, tx, keepalive, closing, slot));
    EventBody { rx, held: None }
}

async fn forward(
    mut events: broadcast::Receiver<Bytes>,
    tx: mpsc::Sender<Bytes>,
    keepalive: Duration,
    mut closing: watch::Receiver<bool>,
    slot: Slot,
) {
    let counts = slot.0.clone();
    // Headers alone do not reach some proxies' clients: a first comment does.
    if tx.send(Bytes::from_static(KEEPALIVE)).await.is_err() {
        return;
    }
    loop {
        let next = tokio::select! {
            next = tokio::time::timeout(keepalive, events.recv()) => next,
            _ = closing.wait_for(|c| *c) => return,
        };
        let frame = match next {
            Err(_) => Bytes::from_static(KEEPALIVE),
            Ok(Ok(frame)) => {
                counts.delivered.fetch_add(1, Ordering::Relaxed);
                frame
            }
            Ok(Err(broadcast::error::RecvError::Lagged(lost))) => {
                counts.dropped.fetch_add(lost, Ordering::Relaxed);
                counts.cut.fetch_add(1, Ordering::Relaxed);
                return;
            }
            Ok(Err(broadcast::error::RecvError::Closed)) => return,
        };
        if tx.send(frame).await.is_err() {
            return;
        }
    }
}
