//! Reading one HTTP/1.1 answer from a backend connection: the head through
//! `httparse`, then the body by its length, by chunks, or (when the backend
//! gives neither) to the connection's end.
//!
//! Everything read goes into the connection's buffer first; a body that
//! arrived with its head (the usual JSON-RPC answer, a few hundred bytes)
//! is copied out of it once, and the rest of a longer one is read straight
//! into the body. The answer budget is charged before the bytes are held:
//! by the declared length at once, else chunk by chunk.

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::memory::{self, Permit};
use crate::upstream::client::UpstreamError;

/// Headers an answer may carry at most.
pub(super) const MAX_HEADERS: usize = 64;

/// An answer's head (status line and headers) may be at most this long.
pub(super) const MAX_HEAD_BYTES: usize = 16 * 1024;

/// A chunk-size line, or the trailers after the last chunk, at most.
const MAX_LINE_BYTES: usize = 4096;

/// An answer read whole.
pub(in crate::upstream) struct Answer {
    pub status: http::StatusCode,
    pub body: Bytes,
    pub held: Permit,
}

/// How the body of an answer ends.
enum Framing {
    Length(usize),
    Chunked,
    /// Neither: the body runs to the connection's end.
    Close,
}

/// What the head said.
struct Head {
    status: http::StatusCode,
    /// Bytes of `buf` the head took.
    len: usize,
    framing: Framing,
    /// Whether the connection may carry another request after this answer.
    keep_alive: bool,
}

fn transport(what: impl std::fmt::Display) -> UpstreamError {
    UpstreamError::Transport(what.to_string())
}

/// Reads one answer on `tcp` into `buf` (empty on entry). Returns it and
/// whether the connection may carry another request.
pub(super) async fn read(
    tcp: &mut TcpStream,
    buf: &mut Vec<u8>,
    max: usize,
) -> Result<(Answer, bool), UpstreamError> {
    let head = loop {
        let head = read_head(tcp, buf).await?;
        if head.status.is_informational() {
            // `100 Continue` and the like: the answer follows.
            buf.drain(..head.len);
            continue;
        }
        break head;
    };
    let status = head.status;
    if status.is_server_error() || status == http::StatusCode::TOO_MANY_REQUESTS {
        return Err(UpstreamError::Status(status.as_u16()));
    }
    let mut held = memory::answers().empty();
    let no_body =
        status == http::StatusCode::NO_CONTENT || status == http::StatusCode::NOT_MODIFIED;
    let (body, clean_end) = match head.framing {
        _ if no_body => (Bytes::new(), buf.len() == head.len),
        Framing::Length(n) => read_length(tcp, buf, head.len, n, max, &mut held).await?,
        Framing::Chunked => read_chunked(tcp, buf, head.len, max, &mut held).await?,
        Framing::Close => {
            let body = read_to_end(tcp, buf, head.len, max, &mut held).await?;
            (body, false)
        }
    };
    let answer = Answer { status, body, held };
    Ok((answer, head.keep_alive && clean_end))
}

/// Reads until `buf` holds a whole head, and parses it.
async fn read_head(tcp: &mut TcpStream, buf: &mut Vec<u8>) -> Result<Head, UpstreamError> {
    loop {
        if !buf.is_empty() {
            if let Some(head) = parse_head(buf)? {
                return Ok(head);
            }
            if buf.len() >= MAX_HEAD_BYTES {
                return Err(transport(format!(
                    "answer head over {MAX_HEAD_BYTES} bytes"
                )));
            }
        }
        if buf.len() == buf.capacity() {
            buf.reserve(buf.len().clamp(1024, MAX_HEAD_BYTES));
        }
        let n = tcp
            .read_buf(buf)
            .await
            .map_err(|e| transport(format!("reading the answer: {e}")))?;
        if n == 0 {
            return Err(transport("connection closed before the answer"));
        }
    }
}

/// The head at the start of `buf`, or `None` when it is not all there.
fn parse_head(buf: &[u8]) -> Result<Option<Head>, UpstreamError> {
    // Left uninitialized: httparse writes the ones it finds, and a head
    // has a few, not the 64 an initialized array would write every call.
    let mut headers =
        [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut []);
    let parsed = httparse::ParserConfig::default().parse_response_with_uninit_headers(
        &mut response,
        buf,
        &mut headers,
    );
    let len = match parsed {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(transport(format!("malformed answer head: {e}"))),
    };
    let code = response.code.unwrap_or(0);
    let status =
        http::StatusCode::from_u16(code).map_err(|_| transport(format!("answer status {code}")))?;
    if status == http::StatusCode::SWITCHING_PROTOCOLS {
        return Err(transport("the backend switched protocols"));
    }
    let http11 = response.version == Some(1);
    let mut keep_alive = http11;
    let mut length: Option<usize> = None;
    let mut chunked = false;
    for h in response.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            let n = parse_length(h.value).ok_or_else(|| transport("malformed Content-Length"))?;
            if length.is_some_and(|before| before != n) {
                return Err(transport("conflicting Content-Length headers"));
            }
            length = Some(n);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            // Only `chunked` is spoken; it must be the last coding.
            let last = h.value.rsplit(|b| *b == b',').next().unwrap_or_default();
            if !last.trim_ascii().eq_ignore_ascii_case(b"chunked") {
                return Err(transport("unsupported Transfer-Encoding"));
            }
            chunked = true;
        } else if h.name.eq_ignore_ascii_case("connection") {
            for token in h.value.split(|b| *b == b',') {
                let token = token.trim_ascii();
                if token.eq_ignore_ascii_case(b"close") {
                    keep_alive = false;
                } else if token.eq_ignore_ascii_case(b"keep-alive") && !http11 {
                    keep_alive = true;
                }
            }
        }
    }
    let framing = match (chunked, length) {
        // Both: chunked wins, and the connection is not trusted after it.
        (true, Some(_)) => {
            keep_alive = false;
            Framing::Chunked
        }
        (true, None) => Framing::Chunked,
        (false, Some(n)) => Framing::Length(n),
        (false, None) => Framing::Close,
    };
    if matches!(framing, Framing::Close) {
        keep_alive = false;
    }
    Ok(Some(Head {
        status,
        len,
        framing,
        keep_alive,
    }))
}

/// A `Content-Length` value: ASCII digits only.
fn parse_length(value: &[u8]) -> Option<usize> {
    let value = value.trim_ascii();
    if value.is_empty() || value.len() > 19 {
        return None;
    }
    value.iter().try_fold(0usize, |n, b| {
        b.is_ascii_digit().then(|| n * 10 + usize::from(b - b'0'))
    })
}

/// A body of `n` bytes starting at `buf[start..]`; and whether nothing
/// followed it.
async fn read_length(
    tcp: &mut TcpStream,
    buf: &[u8],
    start: usize,
    n: usize,
    max: usize,
    held: &mut Permit,
) -> Result<(Bytes, bool), UpstreamError> {
    if n > max {
        return Err(UpstreamError::TooLarge(max));
    }
    held.grow(n)
        .await
        .map_err(|_| UpstreamError::MemoryBudget)?;
    let have = &buf[start..];
    if have.len() >= n {
        return Ok((Bytes::copy_from_slice(&have[..n]), have.len() == n));
    }
    let mut body = vec![0u8; n];
    body[..have.len()].copy_from_slice(have);
    tcp.read_exact(&mut body[have.len()..])
        .await
        .map_err(|e| transport(format!("reading the answer body: {e}")))?;
    Ok((Bytes::from(body), true))
}

/// Reads more into `buf`, after dropping its first `*pos` bytes (used).
async fn more(
    tcp: &mut TcpStream,
    buf: &mut Vec<u8>,
    pos: &mut usize,
) -> Result<(), UpstreamError> {
    if *pos > 0 {
        buf.drain(..*pos);
        *pos = 0;
    }
    if buf.len() == buf.capacity() {
        buf.reserve(1024);
    }
    match tcp.read_buf(buf).await {
        Ok(0) => Err(transport("connection closed within the answer body")),
        Ok(_) => Ok(()),
        Err(e) => Err(transport(format!("reading the answer body: {e}"))),
    }
}

/// A chunked body starting at `buf[start..]`; and whether nothing followed it.
async fn read_chunked(
    tcp: &mut TcpStream,
    buf: &mut Vec<u8>,
    start: usize,
    max: usize,
    held: &mut Permit,
) -> Result<(Bytes, bool), UpstreamError> {
    let mut pos = start;
    let mut body: Vec<u8> = Vec::new();
    loop {
        let (line, size) = loop {
            match httparse::parse_chunk_size(&buf[pos..]) {
                Ok(httparse::Status::Complete(found)) => break found,
                Ok(httparse::Status::Partial) if buf.len() - pos < MAX_LINE_BYTES => {
                    more(tcp, buf, &mut pos).await?;
                }
                _ => return Err(transport("malformed chunk size")),
            }
        };
        pos += line;
        if size == 0 {
            break;
        }
        let size = usize::try_from(size)
            .ok()
            .filter(|s| body.len().saturating_add(*s) <= max)
            .ok_or(UpstreamError::TooLarge(max))?;
        held.grow(size)
            .await
            .map_err(|_| UpstreamError::MemoryBudget)?;
        let have = (buf.len() - pos).min(size);
        body.extend_from_slice(&buf[pos..pos + have]);
        pos += have;
        if have < size {
            let from = body.len();
            body.resize(from + size - have, 0);
            tcp.read_exact(&mut body[from..])
                .await
                .map_err(|e| transport(format!("reading the answer body: {e}")))?;
        }
        while buf.len() - pos < 2 {
            more(tcp, buf, &mut pos).await?;
        }
        if &buf[pos..pos + 2] != b"\r\n" {
            return Err(transport("malformed chunk end"));
        }
        pos += 2;
    }
    // Trailers, if any, then the empty line.
    let mut trailers = 0usize;
    loop {
        match buf[pos..].windows(2).position(|w| w == b"\r\n") {
            Some(0) => {
                pos += 2;
                break;
            }
            Some(end) if trailers + end < MAX_LINE_BYTES => {
                trailers += end;
                pos += end + 2;
            }
            None if trailers + buf.len() - pos < MAX_LINE_BYTES => {
                more(tcp, buf, &mut pos).await?;
            }
            _ => return Err(transport("answer trailers too long")),
        }
    }
    Ok((Bytes::from(body), pos == buf.len()))
}

/// A body that runs to the connection's end, starting at `buf[start..]`.
async fn read_to_end(
    tcp: &mut TcpStream,
    buf: &[u8],
    start: usize,
    max: usize,
    held: &mut Permit,
) -> Result<Bytes, UpstreamError> {
    let mut body = buf[start..].to_vec();
    if body.len() > max {
        return Err(UpstreamError::TooLarge(max));
    }
    held.grow(body.len())
        .await
        .map_err(|_| UpstreamError::MemoryBudget)?;
    loop {
        // Read into the body itself: a buffer on the stack would be held
        // across the await, and every move of the call's future copies it.
        let before = body.len();
        body.reserve(8192);
        let n = tcp
            .read_buf(&mut body)
            .await
            .map_err(|e| transport(format!("reading the answer body: {e}")))?;
        if n == 0 {
            break;
        }
        if body.len() > max {
            return Err(UpstreamError::TooLarge(max));
        }
        held.grow(body.len() - before)
            .await
            .map_err(|_| UpstreamError::MemoryBudget)?;
    }
    // Our half is done too; the connection is not reused.
    let _ = tcp.shutdown().await;
    Ok(Bytes::from(body))
}
