//! The bytes a client WebSocket makes the gateway hold while it reads, and
//! how long a frame may take to arrive.
//!
//! tungstenite sizes its read buffer to the length a frame header
//! announces, and zero-fills it, before the payload arrives; a message of
//! several frames is joined in memory of its own until its last frame. So
//! a 14-byte header, or the first fragments of a message, hold memory that
//! the client has not sent. [`Metered`] wraps the socket under tungstenite
//! and follows the frames as their bytes pass (headers parsed here too, a
//! few lines of RFC 6455 section 5.2), so that:
//! - a data frame's announced length (at most `server.ws_max_frame_bytes`,
//!   which tungstenite enforces) and the fragments of the message it
//!   belongs to are charged to the request budget from its header until
//!   the message is complete; a charge the budget cannot take closes the
//!   connection (1013, try again later) rather than wait inside a read;
//! - the time the frame now arriving began is kept in a [`ReadMeter`],
//!   which the connection watches: a frame not complete within
//!   `server.ws_frame_timeout` closes the connection (1008), however
//!   often the client pings between frames.
//!
//! Control frames (at most 125 bytes) are not charged, but have the deadline.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::memory::{self, OverBudget, Permit};

/// When the frame now arriving began, shared with the connection's task.
pub(super) struct ReadMeter {
    origin: Instant,
    /// Milliseconds since `origin`, plus one, when the first byte of the
    /// frame now arriving came; 0 between frames.
    frame_started: AtomicU64,
}

impl ReadMeter {
    pub(super) fn new() -> Arc<ReadMeter> {
        Arc::new(ReadMeter {
            origin: Instant::now(),
            frame_started: AtomicU64::new(0),
        })
    }

    fn now_ms(&self) -> u64 {
        self.origin.elapsed().as_millis() as u64
    }

    /// Resolves once a frame has been arriving for `within` without being
    /// complete. Between frames it looks again every quarter of `within`,
    /// so a frame is cut at most a quarter late.
    pub(super) async fn unfinished(&self, within: Duration) {
        let ms = within.as_millis() as u64;
        loop {
            let now = self.now_ms();
            let started = self.frame_started.load(Ordering::Relaxed);
            let wait = match started {
                0 => (ms / 4).max(10),
                s if s - 1 + ms <= now => return,
                s => s - 1 + ms - now,
            };
            tokio::time::sleep(Duration::from_millis(wait)).await;
        }
    }
}

/// Where the reader is in the frame stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cursor {
    /// Reading a frame header: its bytes so far.
    Header { bytes: [u8; 14], have: usize },
    /// Inside a frame's payload: bytes still to come, and whether it is the
    /// last frame of a data message.
    Payload { left: u64, data: bool, fin: bool },
}

const START: Cursor = Cursor::Header {
    bytes: [0; 14],
    have: 0,
};

/// The header's length once its first two bytes are known.
fn header_len(first: [u8; 2]) -> usize {
    let extended = match first[1] & 0x7f {
        126 => 2,
        127 => 8,
        _ => 0,
    };
    let mask = if first[1] & 0x80 != 0 { 4 } else { 0 };
    2 + extended + mask
}

/// A whole header: (payload length, data frame, final frame).
fn header(bytes: &[u8]) -> (u64, bool, bool) {
    let fin = bytes[0] & 0x80 != 0;
    let opcode = bytes[0] & 0x0f;
    let len = match bytes[1] & 0x7f {
        126 => u64::from(u16::from_be_bytes([bytes[2], bytes[3]])),
        127 => {
            let mut n = [0u8; 8];
            n.copy_from_slice(&bytes[2..10]);
            u64::from_be_bytes(n)
        }
        n => u64::from(n),
    };
    // Continuation, text and binary frames carry data; 0x8 and up are control.
    (len, opcode < 8, fin)
}

/// A client socket whose reads are followed frame by frame (see the module doc).
pub(super) struct Metered<S> {
    inner: S,
    cursor: Cursor,
    meter: Arc<ReadMeter>,
    /// The most a frame's announced length is charged (tungstenite refuses more).
    frame_cap: u64,
    /// Data bytes of the message being read, in its completed frames.
    message: usize,
    /// The announced length of the data frame being read (capped).
    frame: usize,
    held: Permit,
}

impl<S> Metered<S> {
    pub(super) fn new(inner: S, meter: Arc<ReadMeter>, frame_cap: usize) -> Metered<S> {
        Metered {
            inner,
            cursor: START,
            meter,
            frame_cap: frame_cap as u64,
            message: 0,
            frame: 0,
            held: memory::requests().empty(),
        }
    }

    /// Follows `bytes` read from the socket; refused when the budget cannot
    /// take what a header announces.
    fn passed(&mut self, mut bytes: &[u8]) -> Result<(), OverBudget> {
        while !bytes.is_empty() {
            match &mut self.cursor {
                Cursor::Header { bytes: h, have } => {
                    if *have == 0 {
                        let now = self.meter.now_ms() + 1;
                        self.meter.frame_started.store(now, Ordering::Relaxed);
                    }
                    h[*have] = bytes[0];
                    *have += 1;
                    bytes = &bytes[1..];
                    if *have < 2 || *have < header_len([h[0], h[1]]) {
                        continue;
                    }
                    let (len, data, fin) = header(&h[..*have]);
                    self.cursor = Cursor::Payload {
                        left: len,
                        data,
                        fin,
                    };
                    if data {
                        self.frame = len.min(self.frame_cap) as usize;
                        self.charge()?;
                    }
                }
                Cursor::Payload { left, .. } => {
                    let take = (*left).min(bytes.len() as u64);
                    *left -= take;
                    bytes = &bytes[take as usize..];
                }
            }
            if let Cursor::Payload { left: 0, data, fin } = self.cursor {
                self.frame_done(data, fin);
            }
        }
        Ok(())
    }

    /// The frame is complete: its bytes join the message's, and a complete
    /// message is tungstenite's to hand over (and the connection's to charge).
    fn frame_done(&mut self, data: bool, fin: bool) {
        self.cursor = START;
        self.meter.frame_started.store(0, Ordering::Relaxed);
        if data {
            self.message += std::mem::take(&mut self.frame);
            if fin {
                self.message = 0;
            }
            self.held.shrink_to(self.message);
        }
    }

    fn charge(&mut self) -> Result<(), OverBudget> {
        let need = self.message + self.frame;
        if need > self.held.bytes() {
            self.held.try_grow(need - self.held.bytes())?;
        }
        Ok(())
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Metered<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = poll {
            if let Err(over) = self.passed(&buf.filled()[before..]) {
                return Poll::Ready(Err(io::Error::other(over)));
            }
        }
        poll
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Metered<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Whether a read failed for the request budget (then the Close is 1013).
pub(super) fn over_budget(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<OverBudget>())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A masked client frame header announcing `len` bytes.
    fn head(opcode: u8, fin: bool, len: u64) -> Vec<u8> {
        let mut h = vec![opcode | if fin { 0x80 } else { 0 }];
        match len {
            0..=125 => h.push(0x80 | len as u8),
            126..=65535 => {
                h.push(0x80 | 126);
                h.extend_from_slice(&(len as u16).to_be_bytes());
            }
            _ => {
                h.push(0x80 | 127);
                h.extend_from_slice(&len.to_be_bytes());
            }
        }
        h.extend_from_slice(&[1, 2, 3, 4]);
        h
    }

    fn metered() -> Metered<tokio::io::Empty> {
        Metered::new(tokio::io::empty(), ReadMeter::new(), 64 * 1024)
    }

    #[test]
    fn frames_are_followed_byte_by_byte() {
        let mut m = metered();
        // A fragmented message: 100 bytes, then a ping between its
        // fragments, then its last 50, fed one byte at a time.
        let mut stream = head(0x1, false, 100);
        stream.extend(vec![0u8; 100]);
        stream.extend(head(0x9, true, 3));
        stream.extend([7, 7, 7]);
        stream.extend(head(0x0, true, 50));
        let (header, tail) = (stream.len(), 50);
        stream.extend(vec![0u8; tail]);
        for (i, b) in stream.iter().enumerate() {
            m.passed(&[*b]).unwrap();
            if i + 1 == header {
                // The message's first fragment and the announced last one.
                assert_eq!(m.held.bytes(), 150);
                assert_ne!(m.meter.frame_started.load(Ordering::Relaxed), 0);
            }
        }
        assert_eq!(m.cursor, START);
        assert_eq!(
            m.held.bytes(),
            0,
            "a complete message is no longer held here"
        );
        assert_eq!(m.meter.frame_started.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn an_announced_frame_is_charged_up_to_the_cap() {
        let mut m = metered();
        m.passed(&head(0x2, true, 5 << 20)).unwrap();
        assert_eq!(m.held.bytes(), 64 * 1024);
        assert_ne!(m.meter.frame_started.load(Ordering::Relaxed), 0);
        drop(m);
        assert_eq!(header_len([0x81, 0xff]), 14);
        assert_eq!(header_len([0x81, 0x7e]), 4);
        assert_eq!(header(&head(0x1, true, 70_000)), (70_000, true, true));
        assert_eq!(header(&head(0x8, true, 2)), (2, false, true));
    }
}
