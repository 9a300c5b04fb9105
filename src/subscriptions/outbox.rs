//! A client connection's queue of outgoing messages, bounded in bytes.
//!
//! Answers and notifications are queued by whoever produced them (a call's
//! task, a feed fanning a header out) and written by the connection's
//! writer. A push never waits: a client that does not read must not slow the
//! feed that serves thousands of others. Instead the queue counts the bytes
//! that are queued but not yet written, and once they would pass
//! `server.ws_max_queued_bytes` the push is refused and the connection is
//! told to close (counted once in `rpcgate_ws_limit_hits_total{limit="queued_bytes"}`).
//!
//! The bound is in bytes, not messages: a client that asked for one 10 MiB
//! answer and a client following a thousand small heads hold comparable
//! memory only when bytes are counted. The bound holds for the first
//! message too: answers larger than it are refused (-32005) before they
//! are queued (the listener tells `calls` the bound), so what trips it is a
//! client that does not read what it was sent.
//! Every message also counts a fixed [`PER_MESSAGE`] for its bookkeeping, so
//! a flood of tiny messages is bounded too.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use prometheus::IntCounter;
use tokio::sync::{mpsc, Notify};

/// What one queued message costs beyond its bytes (the queue slot, the
/// `Bytes` handle, its allocation's header): a rough, fixed figure.
pub const PER_MESSAGE: usize = 64;

struct Shared {
    /// Bytes pushed and not yet written (each message plus [`PER_MESSAGE`]).
    queued: AtomicUsize,
    max: usize,
    overflowed: Notify,
    /// Set by the first refusal: the connection closes, counted once.
    tripped: AtomicBool,
    hits: Option<IntCounter>,
}

/// The producing side, cloned into every subscription of the connection.
#[derive(Clone)]
pub struct Outbox {
    queue: mpsc::UnboundedSender<Bytes>,
    shared: Arc<Shared>,
}

/// The writer's side: messages in the order they were pushed.
pub struct Outgoing {
    queue: mpsc::UnboundedReceiver<Bytes>,
    shared: Arc<Shared>,
}

impl Outbox {
    /// A queue that holds at most `max_bytes` unwritten bytes; `hits`, when
    /// given, counts the connections it closed (a client's; the gateway's
    /// own feeds count nothing).
    pub fn new(max_bytes: usize, hits: Option<IntCounter>) -> (Outbox, Outgoing) {
        let (queue, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            queued: AtomicUsize::new(0),
            max: max_bytes,
            overflowed: Notify::new(),
            tripped: AtomicBool::new(false),
            hits,
        });
        (
            Outbox {
                queue,
                shared: shared.clone(),
            },
            Outgoing { queue: rx, shared },
        )
    }

    /// Queues a message; false when it would pass the byte bound (the
    /// connection is then told to close) or the connection is gone.
    pub fn push(&self, message: Bytes) -> bool {
        let shared = &self.shared;
        if shared.tripped.load(Ordering::Relaxed) {
            return false;
        }
        let cost = message.len() + PER_MESSAGE;
        let before = shared.queued.fetch_add(cost, Ordering::AcqRel);
        if before + cost > shared.max && !super::switched_off("queue") {
            shared.queued.fetch_sub(cost, Ordering::AcqRel);
            self.overflow();
            return false;
        }
        if self.queue.send(message).is_err() {
            shared.queued.fetch_sub(cost, Ordering::AcqRel);
            return false;
        }
        true
    }

    /// Tells the connection to close: its client cannot keep up.
    pub fn overflow(&self) {
        let shared = &self.shared;
        if !shared.tripped.swap(true, Ordering::AcqRel) {
            if let Some(hits) = &shared.hits {
                hits.inc();
            }
        }
        shared.overflowed.notify_one();
    }

    /// Completes once a push was refused.
    pub async fn overflowed(&self) {
        self.shared.overflowed.notified().await
    }

    /// The most bytes it holds unwritten.
    pub fn max_bytes(&self) -> usize {
        self.shared.max
    }

    /// Bytes queued and not yet written now.
    pub fn queued_bytes(&self) -> usize {
        self.shared.queued.load(Ordering::Acquire)
    }
}

impl Outgoing {
    /// The next message to write; `None` once every [`Outbox`] is gone.
    /// Its bytes stay counted until [`Outgoing::written`].
    pub async fn recv(&mut self) -> Option<Bytes> {
        self.queue.recv().await
    }

    /// A message of `len` bytes has left for the socket.
    pub fn written(&self, len: usize) {
        self.shared
            .queued
            .fetch_sub(len + PER_MESSAGE, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counter() -> IntCounter {
        let metrics = crate::metrics::Metrics::new();
        metrics
            .ws
            .limit_hit("outbox-test", crate::metrics::WsLimit::QueuedBytes)
    }

    #[test]
    fn the_bound_is_in_bytes_and_trips_once() {
        let hits = counter();
        let (outbox, mut outgoing) = Outbox::new(1000, Some(hits.clone()));
        // Even into an empty queue, no message passes the bound.
        assert!(outbox.push(Bytes::from(vec![b'x'; 500])));
        assert!(!outbox.push(Bytes::from(vec![b'x'; 500])));
        assert_eq!(hits.get(), 1);
        // Once tripped, nothing more is queued and the hit is not counted again.
        assert!(!outbox.push(Bytes::from_static(b"2")));
        assert_eq!(hits.get(), 1);
        let first = outgoing.queue.try_recv().unwrap();
        outgoing.written(first.len());
        assert_eq!(outbox.queued_bytes(), 0);
    }

    #[test]
    fn written_bytes_make_room() {
        let (outbox, mut outgoing) = Outbox::new(1000, Some(counter()));
        for _ in 0..3 {
            assert!(outbox.push(Bytes::from(vec![b'x'; 200])));
        }
        assert_eq!(outbox.queued_bytes(), 3 * (200 + PER_MESSAGE));
        // 792 + 264 would pass 1000.
        assert!(!outbox.shared.tripped.load(Ordering::Relaxed));
        let m = outgoing.queue.try_recv().unwrap();
        outgoing.written(m.len());
        assert!(outbox.push(Bytes::from(vec![b'x'; 200])));
        assert!(!outbox.push(Bytes::from(vec![b'x'; 200])));
    }
}
