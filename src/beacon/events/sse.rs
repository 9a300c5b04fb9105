//! The event stream of one node: connecting to `/eth/v1/events` and
//! reading its server-sent events, and writing events for clients.
//!
//! The parser keeps at most `max_event_bytes` of an unfinished event: a
//! node that sends an endless line ends its stream (and the stream moves)
//! instead of growing the gateway's memory. Comments (`:` lines, a node's
//! own keep-alives) and `id:`/`retry:` fields are not passed on: the
//! gateway writes its own stream.

use bytes::{Bytes, BytesMut};
use http::{header, HeaderValue, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use std::time::Duration;

pub(super) type SseClient = Client<HttpConnector, Empty<Bytes>>;

/// One event as a node sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RawEvent {
    pub topic: String,
    pub data: Bytes,
}

impl RawEvent {
    /// The event as a client's stream carries it.
    pub(crate) fn frame(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(self.topic.len() + self.data.len() + 16);
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(self.topic.as_bytes());
        out.extend_from_slice(b"\n");
        for line in self.data.split(|b| *b == b'\n') {
            out.extend_from_slice(b"data: ");
            out.extend_from_slice(line);
            out.extend_from_slice(b"\n");
        }
        out.extend_from_slice(b"\n");
        out.freeze()
    }
}

/// Server-sent events from bytes as they arrive.
pub(crate) struct Parser {
    pending: BytesMut,
    max_event_bytes: usize,
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) struct TooLarge;

impl Parser {
    pub(crate) fn new(max_event_bytes: usize) -> Parser {
        Parser {
            pending: BytesMut::new(),
            max_event_bytes,
        }
    }

    /// The events completed by `bytes`.
    pub(crate) fn push(&mut self, bytes: &[u8]) -> Result<Vec<RawEvent>, TooLarge> {
        self.pending.extend_from_slice(bytes);
        let mut events = Vec::new();
        while let Some(end) = block_end(&self.pending) {
            let block = self.pending.split_to(end.0);
            let _ = self.pending.split_to(end.1);
            if let Some(e) = event_of(&block) {
                events.push(e);
            }
        }
        if self.pending.len() > self.max_event_bytes {
            return Err(TooLarge);
        }
        Ok(events)
    }
}

/// Where the first event block ends: (its length, the separator's length).
fn block_end(buf: &[u8]) -> Option<(usize, usize)> {
    let mut i = 0;
    while i + 1 < buf.len() {
        if buf[i] == b'\n' && buf[i + 1] == b'\n' {
            return Some((i, 2));
        }
        if buf[i..].starts_with(b"\r\n\r\n") {
            return Some((i, 4));
        }
        i += 1;
    }
    None
}

fn event_of(block: &[u8]) -> Option<RawEvent> {
    let mut topic = "message".to_string();
    let mut data: Vec<u8> = Vec::new();
    let mut has_data = false;
    for line in block.split(|b| *b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() || line[0] == b':' {
            continue;
        }
        let (field, value) = match line.iter().position(|b| *b == b':') {
            Some(p) => (&line[..p], &line[p + 1..]),
            None => (line, &b""[..]),
        };
        let value = value.strip_prefix(b" ").unwrap_or(value);
        match field {
            b"event" => topic = String::from_utf8_lossy(value).into_owned(),
            b"data" => {
                if has_data {
                    data.push(b'\n');
                }
                data.extend_from_slice(value);
                has_data = true;
            }
            _ => {}
        }
    }
    has_data.then(|| RawEvent {
        topic,
        data: Bytes::from(data),
    })
}

/// A node's open event stream.
pub(super) struct Upstream {
    body: Incoming,
    parser: Parser,
}

/// How connecting to a node's stream went.
pub(super) enum Connected {
    Open(Upstream),
    /// The node refused the request itself (4xx): its words.
    Refused(String),
    Failed(String),
}

pub(super) async fn connect(
    client: &SseClient,
    base: &Uri,
    query: &str,
    within: Duration,
    max_event_bytes: usize,
) -> Connected {
    let url = format!(
        "{}/eth/v1/events?{query}",
        base.to_string().trim_end_matches('/')
    );
    let Ok(req) = Request::get(url)
        .header(
            header::ACCEPT,
            HeaderValue::from_static("text/event-stream"),
        )
        .body(Empty::new())
    else {
        return Connected::Failed("not a valid URL".into());
    };
    let answer = match tokio::time::timeout(within, client.request(req)).await {
        Err(_) => return Connected::Failed(format!("no answer within {within:?}")),
        Ok(Err(e)) => return Connected::Failed(e.to_string()),
        Ok(Ok(a)) => a,
    };
    let status = answer.status();
    if status == StatusCode::OK {
        return Connected::Open(Upstream {
            body: answer.into_body(),
            parser: Parser::new(max_event_bytes),
        });
    }
    if status.is_client_error() {
        let body = tokio::time::timeout(
            within,
            http_body_util::Limited::new(answer.into_body(), 64 * 1024).collect(),
        )
        .await;
        let text = match body {
            Ok(Ok(b)) => String::from_utf8_lossy(&b.to_bytes()).into_owned(),
            _ => String::new(),
        };
        return Connected::Refused(format!(
            "the node refused the topics (HTTP {status}): {text}"
        ));
    }
    Connected::Failed(format!("HTTP {status}"))
}

impl Upstream {
    /// The events of the next bytes; `Err` when the stream ended or broke.
    pub(super) async fn next(&mut self) -> Result<Vec<RawEvent>, String> {
        loop {
            match self.body.frame().await {
                None => return Err("the node ended the stream".into()),
                Some(Err(e)) => return Err(e.to_string()),
                Some(Ok(frame)) => {
                    let Ok(data) = frame.into_data() else {
                        continue;
                    };
                    return self
                        .parser
                        .push(&data)
                        .map_err(|_| "an event larger than the bound".to_string());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_read_across_chunks() {
        let mut p = Parser::new(1024);
        assert!(p.push(b": hello\n\nevent: head\nda").unwrap().is_empty());
        let got = p
            .push(b"ta: {\"slot\":\"1\"}\n\nevent: block\r\ndata: a\r\ndata: b\r\n\r\n")
            .unwrap();
        assert_eq!(
            got,
            vec![
                RawEvent {
                    topic: "head".into(),
                    data: Bytes::from_static(b"{\"slot\":\"1\"}"),
                },
                RawEvent {
                    topic: "block".into(),
                    data: Bytes::from_static(b"a\nb"),
                },
            ]
        );
        assert_eq!(&got[1].frame()[..], b"event: block\ndata: a\ndata: b\n\n");
    }

    #[test]
    fn an_endless_event_is_refused() {
        let mut p = Parser::new(16);
        assert_eq!(p.push(&[b'x'; 17]), Err(TooLarge));
    }
}
