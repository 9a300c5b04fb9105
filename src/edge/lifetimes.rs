//! Connection lifetimes: every client connection has a deadline at each
//! stage, so a socket that says nothing, stops halfway, or stops reading
//! gives back its connection permit and per-IP slot instead of holding them
//! forever.
//!
//! hyper's header timer starts only once a request begins, and the protocol
//! sniffing of the auto builder (HTTP/1 or an HTTP/2 preface) has none, so
//! the deadlines are kept here, around the connection, from three facts the
//! socket wrapper [`Watched`] and the service record in a shared
//! [`Lifetime`]: when the last request ended, whether a write is waiting on
//! the client, and how many requests are in flight. Idleness is counted from
//! the last answer, not from the last byte: HTTP/2 PINGs and a trickled
//! second request head move bytes without asking for anything. A watchdog future races the
//! connection and, when a deadline passes, ends it; dropping the connection
//! closes the socket and frees whatever answer it was writing.
//!
//! - `first_request_timeout`: from accept to the first complete request head
//!   (the service is called), whatever the protocol;
//! - `idle_timeout`: no request in flight since the last one ended;
//! - `write_timeout`: a write the client has not taken for that long.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use prometheus::IntCounterVec;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::config::ListenerConfig;

/// The deadlines of one connection.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Deadlines {
    pub first_request: Duration,
    pub idle: Duration,
    pub write: Duration,
}

impl Deadlines {
    pub(crate) fn of(listener: &ListenerConfig) -> Deadlines {
        Deadlines {
            first_request: listener.first_request_timeout,
            idle: listener.idle_timeout,
            write: listener.write_timeout,
        }
    }
}

/// What the socket and the service tell the watchdog about one connection.
pub(crate) struct Lifetime {
    accepted: Instant,
    started: AtomicBool,
    in_flight: AtomicUsize,
    /// Milliseconds since accept when the last request ended (0: none yet).
    last_activity: AtomicU64,
    /// Milliseconds since accept (plus one) when a write started waiting on
    /// the client; 0 while no write waits.
    write_blocked: AtomicU64,
}

/// Why the watchdog ended a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Expired {
    FirstRequest,
    Idle,
    Write,
}

impl Expired {
    fn label(self) -> &'static str {
        match self {
            Expired::FirstRequest => "first_request",
            Expired::Idle => "idle",
            Expired::Write => "write",
        }
    }
}

impl Lifetime {
    pub(crate) fn new() -> Arc<Lifetime> {
        Arc::new(Lifetime {
            accepted: Instant::now(),
            started: AtomicBool::new(false),
            in_flight: AtomicUsize::new(0),
            last_activity: AtomicU64::new(0),
            write_blocked: AtomicU64::new(0),
        })
    }

    fn now_ms(&self) -> u64 {
        self.accepted.elapsed().as_millis() as u64
    }

    fn ended(&self) {
        self.last_activity.store(self.now_ms(), Ordering::Relaxed);
    }

    /// A request head is complete: held until the request is answered.
    pub(crate) fn request(self: &Arc<Self>) -> InFlight {
        self.started.store(true, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(self.clone())
    }

    /// Resolves when a deadline of `deadlines` has passed, counting it in
    /// `closed` (`rpcgate_connections_closed_total`).
    pub(crate) async fn expired(&self, deadlines: Deadlines, closed: &IntCounterVec) -> Expired {
        let ms = |d: Duration| d.as_millis() as u64;
        loop {
            let now = self.now_ms();
            let (why, at) = self.next_deadline(deadlines, now);
            if at <= now {
                closed.with_label_values(&[why.label()]).inc();
                return why;
            }
            // Re-checked at the deadline (facts may have changed meanwhile),
            // and at least every write deadline while requests are in flight.
            let wait = (at - now).min(ms(deadlines.write)).max(10);
            tokio::time::sleep(Duration::from_millis(wait)).await;
        }
    }

    /// Resolves once a write has waited on the client for `within` with
    /// nothing taken (a WebSocket's writes, after the upgrade). While no
    /// write waits it looks again every quarter of `within`, so a stalled
    /// client is found at most a quarter late.
    pub(crate) async fn write_stalled(&self, within: Duration) {
        let ms = within.as_millis() as u64;
        loop {
            let now = self.now_ms();
            let wait = match self.write_blocked.load(Ordering::Relaxed) {
                0 => (ms / 4).max(10),
                since if since - 1 + ms <= now => return,
                since => since - 1 + ms - now,
            };
            tokio::time::sleep(Duration::from_millis(wait)).await;
        }
    }

    /// The earliest deadline that applies now, in ms since accept.
    fn next_deadline(&self, d: Deadlines, now: u64) -> (Expired, u64) {
        let ms = |d: Duration| d.as_millis() as u64;
        let mut next = (Expired::Idle, u64::MAX);
        let mut consider = |why, at: u64| {
            if at < next.1 {
                next = (why, at);
            }
        };
        if !self.started.load(Ordering::Relaxed) {
            consider(Expired::FirstRequest, ms(d.first_request));
        }
        let blocked = self.write_blocked.load(Ordering::Relaxed);
        if blocked != 0 {
            consider(Expired::Write, blocked - 1 + ms(d.write));
        }
        if self.in_flight.load(Ordering::Relaxed) == 0 && blocked == 0 {
            let last = self.last_activity.load(Ordering::Relaxed);
            consider(Expired::Idle, last + ms(d.idle));
        }
        if next.1 == u64::MAX {
            // Requests in flight and nothing waiting: look again later.
            next = (Expired::Idle, now + ms(d.write));
        }
        next
    }
}

/// One request in flight on a connection.
pub(crate) struct InFlight(Arc<Lifetime>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.ended();
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A client socket that reports progress to its [`Lifetime`].
pub(crate) struct Watched<S> {
    inner: S,
    lifetime: Arc<Lifetime>,
}

impl<S> Watched<S> {
    pub(crate) fn new(inner: S, lifetime: Arc<Lifetime>) -> Watched<S> {
        Watched { inner, lifetime }
    }

    fn wrote<T>(&self, poll: &Poll<io::Result<T>>) {
        match poll {
            Poll::Pending => {
                let since = self.lifetime.now_ms() + 1;
                let _ = self.lifetime.write_blocked.compare_exchange(
                    0,
                    since,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                );
            }
            Poll::Ready(_) => self.lifetime.write_blocked.store(0, Ordering::Relaxed),
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.wrote(&poll);
        poll
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.wrote(&poll);
        poll
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.inner).poll_flush(cx);
        self.wrote(&poll);
        poll
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// TCP keepalive on a client socket: a peer that vanished without a FIN is
/// found by the kernel after `after` of silence plus a few probes.
pub(crate) fn keepalive(stream: &tokio::net::TcpStream, after: Duration) {
    let keepalive = socket2::TcpKeepalive::new().with_time(after);
    let _ = socket2::SockRef::from(stream).set_tcp_keepalive(&keepalive);
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: Deadlines = Deadlines {
        first_request: Duration::from_millis(100),
        idle: Duration::from_millis(300),
        write: Duration::from_millis(200),
    };

    #[test]
    fn the_deadline_that_applies_follows_the_connection() {
        let life = Lifetime::new();
        assert_eq!(life.next_deadline(D, 0), (Expired::FirstRequest, 100));
        let request = life.request();
        // In flight, nothing waiting: no deadline yet, a look later.
        assert_eq!(life.next_deadline(D, 50).1, 250);
        life.write_blocked.store(61, Ordering::Relaxed);
        assert_eq!(life.next_deadline(D, 70), (Expired::Write, 260));
        life.write_blocked.store(0, Ordering::Relaxed);
        life.last_activity.store(400, Ordering::Relaxed);
        drop(request);
        let (why, at) = life.next_deadline(D, 400);
        assert_eq!(why, Expired::Idle);
        assert!(at >= 300, "{at}");
    }
}
