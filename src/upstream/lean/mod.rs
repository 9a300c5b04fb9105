//! The lean HTTP/1.1 client of plain-HTTP backends: a stack of idle TCP
//! connections per backend, each call run on the caller's own task.
//!
//! Backends speak one dialect: keep-alive POSTs of JSON with a
//! `Content-Length`, answered with a length or chunked. A general client
//! (hyper's connection, a task per connection, a channel between it and the
//! caller) pays for what that dialect never uses: every call crosses two
//! tasks and is encoded through a generic header map. Here a call takes an
//! idle connection (or opens one), writes the request head encoded once per
//! backend plus the body's length in one vectored write, reads the answer
//! into the connection's own buffer and parses it with `httparse`
//! (`reply`), and puts the connection back. Beyond the reply's body,
//! nothing is allocated per call.
//!
//! Limits are strict, since a backend's answer is input: at most
//! [`reply::MAX_HEADERS`] headers and [`reply::MAX_HEAD_BYTES`] of head, a
//! body of at most the network's `max_response_bytes` (refused by its
//! declared length before it is read, else as it grows), read against the
//! answer budget. The caller's deadline covers the whole exchange: a call
//! that times out drops its connection, which closes it (a half-read
//! HTTP/1.1 connection cannot carry another request).
//!
//! A connection goes back to the stack only after an answer framed by a
//! length or by chunks was read to its end, with nothing after it, and the
//! backend did not say `Connection: close`. An idle connection the backend
//! closed (or one with bytes nobody asked for) is noticed when it is taken,
//! by a non-blocking read, and dropped; one whose socket refuses the
//! request's first byte had closed too, and the request goes on another.
//! Once any byte of it is written, a close is a transport failure, not
//! retried here: the backend may have acted on it. Connections idle longer than [`IDLE_TIMEOUT`] are dropped
//! when next looked at.
//!
//! TLS backends keep hyper's connections (`pool`): rustls's stream wants its
//! own reads and close handling, and providers behind TLS may answer in
//! ways this dialect does not cover.

mod reply;

use std::io::IoSlice;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tower_service::Service;

use super::client::{with_sources, UpstreamError};
use super::tls::{Connector, UpstreamStream};

pub(super) use reply::Answer;

/// An idle connection older than this is closed instead of reused.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Idle connections kept per backend at most.
const MAX_IDLE: usize = 1024;

/// A connection's read buffer when it is opened; a buffer grown past
/// [`KEEP_BUFFER`] by a large answer is given back when the connection goes
/// idle, so idle connections hold little.
const FIRST_BUFFER: usize = 4096;
const KEEP_BUFFER: usize = 64 * 1024;

/// One open connection and its read buffer.
struct Conn {
    tcp: TcpStream,
    buf: Vec<u8>,
    idle_since: Instant,
}

/// The connections of one plain-HTTP backend.
pub(super) struct LeanPool {
    connector: Connector,
    /// The backend's URL (for connecting).
    url: http::Uri,
    /// The request head up to the body's length:
    /// `POST /path HTTP/1.1\r\nHost: ..\r\n...Content-Length: `.
    head: Box<[u8]>,
    idle: Mutex<Vec<Conn>>,
}

impl LeanPool {
    /// The pool of the backend at `url` (an `http` URL), whose requests
    /// carry `headers` (its configured ones) besides `Host` and
    /// `Content-Type` (which `headers` may replace).
    pub(super) fn new(connector: Connector, url: &http::Uri, headers: &http::HeaderMap) -> Self {
        LeanPool {
            connector,
            url: url.clone(),
            head: encode_head(url, headers),
            idle: Mutex::new(Vec::new()),
        }
    }

    /// POSTs `body` and reads the answer whole, at most `max_reply` bytes
    /// of body against the answer budget; a 5xx or 429 is
    /// [`UpstreamError::Status`] without reading its body.
    pub(super) async fn post(
        &self,
        body: &[u8],
        max_reply: usize,
    ) -> Result<Answer, UpstreamError> {
        let mut digits = [0u8; 20];
        let len = decimal(body.len() as u64, &mut digits);
        let parts = [&self.head[..], len, b"\r\n\r\n", body];
        let mut conn = loop {
            let (mut conn, reused) = match self.take_idle() {
                Some(conn) => (conn, true),
                None => (self.connect().await?, false),
            };
            match write_all(&mut conn.tcp, &parts).await {
                Ok(()) => break conn,
                // Not a byte taken: an idle connection that had just
                // closed, and the request surely not received. Another one.
                Err((0, _)) if reused => continue,
                Err((_, e)) => {
                    return Err(UpstreamError::Transport(format!(
                        "writing the request: {e}"
                    )))
                }
            }
        };
        let (answer, reusable) = reply::read(&mut conn.tcp, &mut conn.buf, max_reply).await?;
        if reusable {
            self.give_back(conn);
        }
        Ok(answer)
    }

    /// The most recently used idle connection still open, if any.
    fn take_idle(&self) -> Option<Conn> {
        loop {
            let conn = self.idle.lock().pop()?;
            if conn.idle_since.elapsed() > IDLE_TIMEOUT {
                continue;
            }
            // Nothing may be readable on an idle connection: end of stream
            // is the backend's close, bytes are an answer nobody asked for.
            match conn.tcp.try_read(&mut [0u8; 1]) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Some(conn),
                _ => continue,
            }
        }
    }

    fn give_back(&self, mut conn: Conn) {
        conn.buf.clear();
        if conn.buf.capacity() > KEEP_BUFFER {
            conn.buf = Vec::with_capacity(FIRST_BUFFER);
        }
        conn.idle_since = Instant::now();
        let mut idle = self.idle.lock();
        if idle.len() < MAX_IDLE {
            idle.push(conn);
        }
    }

    async fn connect(&self) -> Result<Conn, UpstreamError> {
        let mut connector = self.connector.clone();
        let io = connector
            .call(self.url.clone())
            .await
            .map_err(|e| UpstreamError::Connect(with_sources(&*e)))?;
        match io.into_inner() {
            UpstreamStream::Plain(tcp) => Ok(Conn {
                tcp,
                buf: Vec::with_capacity(FIRST_BUFFER),
                idle_since: Instant::now(),
            }),
            // Only `http` URLs get this pool.
            UpstreamStream::Tls(_) => Err(UpstreamError::Connect(
                "a TLS connection for the plain-HTTP client".into(),
            )),
        }
    }

    /// Idle connections now (for tests).
    #[cfg(test)]
    pub(super) fn idle_count(&self) -> usize {
        self.idle.lock().len()
    }
}

/// The head of every request to `url`, up to the value of its
/// `Content-Length`. The configured headers come after ours and replace
/// them; framing headers among them are left out (the body's length is
/// ours to say).
fn encode_head(url: &http::Uri, headers: &http::HeaderMap) -> Box<[u8]> {
    let path = url.path_and_query().map_or("/", |p| p.as_str());
    let path = if path.is_empty() { "/" } else { path };
    // The authority without user info, as a client puts it in `Host`.
    let authority = url.authority().map_or("", |a| a.as_str());
    let authority = authority.rsplit('@').next().unwrap_or(authority);
    let mut head = Vec::with_capacity(128);
    head.extend_from_slice(b"POST ");
    head.extend_from_slice(path.as_bytes());
    head.extend_from_slice(b" HTTP/1.1\r\n");
    let mut line = |name: &[u8], value: &[u8]| {
        head.extend_from_slice(name);
        head.extend_from_slice(b": ");
        head.extend_from_slice(value);
        head.extend_from_slice(b"\r\n");
    };
    if !headers.contains_key(http::header::HOST) {
        line(b"host", authority.as_bytes());
    }
    if !headers.contains_key(http::header::CONTENT_TYPE) {
        line(b"content-type", b"application/json");
    }
    for (name, value) in headers {
        if matches!(
            *name,
            http::header::CONTENT_LENGTH
                | http::header::TRANSFER_ENCODING
                | http::header::CONNECTION
        ) {
            continue;
        }
        line(name.as_str().as_bytes(), value.as_bytes());
    }
    head.extend_from_slice(b"content-length: ");
    head.into_boxed_slice()
}

/// `n` in decimal, written at the end of `out`.
pub(super) fn decimal(mut n: u64, out: &mut [u8; 20]) -> &[u8] {
    let mut at = out.len();
    loop {
        at -= 1;
        out[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &out[at..];
        }
    }
}

/// Writes `parts` one after the other, in as few writes as the socket
/// takes; on failure, with how many bytes were written before it.
async fn write_all(tcp: &mut TcpStream, parts: &[&[u8]; 4]) -> Result<(), (usize, std::io::Error)> {
    let total: usize = parts.iter().map(|p| p.len()).sum();
    let mut written = 0;
    while written < total {
        // The parts from `written` on.
        let mut skip = written;
        let mut slices = [IoSlice::new(&[]); 4];
        let mut n = 0;
        for part in parts {
            if skip >= part.len() {
                skip -= part.len();
                continue;
            }
            slices[n] = IoSlice::new(&part[skip..]);
            skip = 0;
            n += 1;
        }
        match tcp.write_vectored(&slices[..n]).await {
            Ok(0) => return Err((written, std::io::ErrorKind::WriteZero.into())),
            Ok(w) => written += w,
            Err(e) => return Err((written, e)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
