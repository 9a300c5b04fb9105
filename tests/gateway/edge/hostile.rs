//! A hostile corpus, sent as an attacker would: over raw TCP (so that the
//! HTTP framing itself can be broken: Content-Length with Transfer-Encoding,
//! two Content-Lengths) and as WebSocket frames (invalid UTF-8 text, binary).
//! Each input gets its own answer, asserted by JSON-RPC code and HTTP status
//! (or WebSocket close code), and a normal request right after it succeeds:
//! on the same connection when the answer kept it open, and on a new one.
//! The fuzz targets (fuzz/, tests/fuzz_corpus.rs) take small editions of the
//! same inputs; here they are full size, against a live gateway.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::Message;

use crate::support::*;

const CHAIN_ID: &str = r#"{"jsonrpc":"2.0","id":"next","method":"eth_chainId","params":[]}"#;

/// One HTTP response read off a raw socket.
#[derive(Debug)]
pub struct Raw {
    pub status: u16,
    /// Header lines, names lowercased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Raw {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|_| {
            panic!(
                "not JSON ({} bytes): {}",
                self.body.len(),
                String::from_utf8_lossy(&self.body[..self.body.len().min(300)])
            )
        })
    }

    pub fn closes(&self) -> bool {
        self.headers
            .iter()
            .any(|(n, v)| n == "connection" && v.eq_ignore_ascii_case("close"))
    }

    /// `(code, id)` of a single error object.
    pub fn error(&self) -> (i64, Value) {
        let v = self.json();
        let code = v["error"]["code"]
            .as_i64()
            .unwrap_or_else(|| panic!("not an error: {v}"));
        (code, v["id"].clone())
    }
}

/// A keep-alive connection to the gateway, spoken to in raw bytes.
pub struct RawConn(BufReader<TcpStream>);

impl RawConn {
    pub fn open(gw: &Gw) -> RawConn {
        let s = TcpStream::connect(gw.url.trim_start_matches("http://")).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        RawConn(BufReader::new(s))
    }

    /// Writes `request` as it is and reads one response (Content-Length framed).
    pub fn send(&mut self, request: &[u8]) -> Raw {
        self.0.get_mut().write_all(request).unwrap();
        self.read()
    }

    /// A POST of `body` with the usual headers.
    pub fn post(&mut self, body: &[u8]) -> Raw {
        let mut req = format!(
            "POST / HTTP/1.1\r\nhost: gw\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        req.extend_from_slice(body);
        self.send(&req)
    }

    fn read(&mut self) -> Raw {
        let mut line = String::new();
        self.0.read_line(&mut line).unwrap();
        let status: u16 = line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("not a status line: {line:?}"));
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            self.0.read_line(&mut h).unwrap();
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            let (n, v) = h.split_once(':').unwrap();
            headers.push((n.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
        let len: usize = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .map_or(0, |(_, v)| v.parse().unwrap());
        let mut body = vec![0; len];
        self.0.read_exact(&mut body).unwrap();
        Raw {
            status,
            headers,
            body,
        }
    }

    /// Whether the gateway has closed this connection (EOF or reset).
    pub fn is_closed(&mut self) -> bool {
        let mut byte = [0u8; 1];
        matches!(self.0.read(&mut byte), Ok(0) | Err(_))
    }
}

/// A normal call on `conn` succeeds.
pub fn normal_call_works(conn: &mut RawConn) {
    let r = conn.post(CHAIN_ID.as_bytes());
    assert_eq!(r.status, 200, "{r:?}");
    let v = r.json();
    assert_eq!(
        (v["id"].as_str(), v["result"].as_str()),
        (Some("next"), Some("0x7a69"))
    );
}

fn call(id: &str, method: &str, params: &str) -> String {
    format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"{method}","params":{params}}}"#)
}

/// The bodies of the corpus (JSON-RPC level), with the answer each must get:
/// `(name, body, HTTP status, code, id, words of the message)`; the words
/// tell the gateway's own refusal from a node's answer with the same code.
/// The same bodies go over WebSocket.
type Case = (&'static str, Vec<u8>, u16, i64, Value, &'static str);

fn bodies() -> Vec<Case> {
    let nested = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
    let entry = r#"{"jsonrpc":"2.0","id":1,"method":"eth_chainId"}"#;
    let batch = format!("[{}]", vec![entry; 100_000].join(","));
    assert!(batch.len() < 5 * 1024 * 1024, "under the body limit");
    vec![
        (
            "truncated JSON",
            call("1", "eth_getBalance", &format!(r#"["{DEV}","lat"#)).into_bytes(),
            200,
            -32700,
            Value::Null,
            "body is not valid JSON",
        ),
        (
            "a 100,000-entry batch",
            batch.into_bytes(),
            200,
            -32600,
            Value::Null,
            "batch of 100000 entries is over the limit of 100",
        ),
        (
            "params nested 100,000 deep",
            call("5", "eth_call", &nested(100_000)).into_bytes(),
            200,
            -32600,
            5.into(),
            "nested deeper than the limit",
        ),
        (
            "invalid UTF-8",
            b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"eth_\xff\xfe\"}".to_vec(),
            200,
            -32700,
            Value::Null,
            "body is not valid UTF-8",
        ),
        (
            // JSON allows no raw control character in a string.
            "a raw NUL in a string",
            b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"eth_chainId\x00\"}".to_vec(),
            200,
            -32700,
            Value::Null,
            "body is not valid JSON",
        ),
        (
            "a NUL between members",
            b"{\"jsonrpc\":\"2.0\",\x00\"id\":1,\"method\":\"eth_chainId\"}".to_vec(),
            200,
            -32700,
            Value::Null,
            "body is not valid JSON",
        ),
        (
            // Escaped, the NUL is a character of an unknown method name.
            "an escaped NUL in the method",
            call("6", r"eth_chainId\u0000", "[]").into_bytes(),
            200,
            -32601,
            6.into(),
            "is not allowed for this client",
        ),
        (
            "a 1 MB method name",
            call("7", &"m".repeat(1 << 20), "[]").into_bytes(),
            200,
            -32600,
            7.into(),
            "method name is too long",
        ),
        (
            "a 10,000-digit number as a block",
            call(
                "8",
                "eth_getBalance",
                &format!(r#"["{DEV}",{}]"#, "1".repeat(10_000)),
            )
            .into_bytes(),
            200,
            -32602,
            8.into(),
            "blockNumber", // the node's own answer: the gateway forwards what it cannot read
        ),
        (
            "a repeated id",
            br#"{"jsonrpc":"2.0","id":1,"id":2,"method":"eth_chainId"}"#.to_vec(),
            200,
            -32600,
            Value::Null,
            "must not repeat a member",
        ),
    ]
}

fn nested_body() -> Vec<u8> {
    format!("{}{}", "[".repeat(100_000), "]".repeat(100_000)).into_bytes()
}

fn nested_body_answer() -> Value {
    serde_json::json!([{"jsonrpc":"2.0","id":null,"error":{"code":-32600,
        "message":"invalid request: a request must be a JSON object"}}])
}

async fn gateway() -> (rpcgate_fleet::Fleet, Gw) {
    let fleet = fleet(1).await;
    fleet.mine_blocks(2).await.unwrap();
    let gw = gateway_over(&fleet, "", 2).await;
    (fleet, gw)
}

#[tokio::test]
async fn a_hostile_corpus_over_raw_tcp() {
    let (_fleet, gw) = gateway().await;
    tokio::task::spawn_blocking(move || {
        for (name, body, status, code, id, says) in bodies() {
            let mut conn = RawConn::open(&gw);
            let r = conn.post(&body);
            assert_eq!((r.status, r.error()), (status, (code, id)), "{name}");
            let message = r.json()["error"]["message"].as_str().unwrap().to_string();
            assert!(message.contains(says), "{name}: {message}");
            assert!(!r.closes(), "{name}: the connection stays open");
            normal_call_works(&mut conn);
            normal_call_works(&mut RawConn::open(&gw));
        }

        // A body nested 100,000 deep is a batch of one entry that is not a
        // request: that entry gets -32600, read without recursing into it.
        let mut conn = RawConn::open(&gw);
        let r = conn.post(&nested_body());
        assert_eq!(r.status, 200);
        assert_eq!(r.json(), nested_body_answer());
        normal_call_works(&mut conn);

        // A 10,000-digit id is over the id cap (1 KiB): -32600, not echoed.
        let id = "9".repeat(10_000);
        let mut conn = RawConn::open(&gw);
        let r = conn.post(call(&id, "eth_chainId", "[]").as_bytes());
        assert_eq!(r.status, 200);
        let v = r.json();
        assert_eq!((v["error"]["code"].as_i64(), &v["id"]), (Some(-32600), &Value::Null));
        normal_call_works(&mut conn);

        // A repeated member inside a batch: that entry alone is refused.
        let r = conn.post(
            format!(
                r#"[{{"jsonrpc":"2.0","id":1,"method":"eth_chainId","method":"x"}},{}]"#,
                CHAIN_ID
            )
            .as_bytes(),
        );
        let v = r.json();
        assert_eq!(v[0]["error"]["code"], -32600);
        assert_eq!(v[1]["result"], "0x7a69");
        normal_call_works(&mut conn);

        // A 10 MB method name is over the 5 MiB body limit: 413, read in full
        // by the client (lingering close), then the connection is closed.
        // The body is written from another thread: the gateway answers from
        // the declared length and may stop reading before the end.
        let mut conn = RawConn::open(&gw);
        let huge = call("9", &"m".repeat(10 << 20), "[]");
        let mut writer = conn.0.get_ref().try_clone().unwrap();
        writer.set_write_timeout(Some(Duration::from_secs(30))).unwrap();
        let sending = std::thread::spawn(move || {
            let head = format!(
                "POST / HTTP/1.1\r\nhost: gw\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                huge.len()
            );
            let _ = writer.write_all(head.as_bytes());
            let _ = writer.write_all(huge.as_bytes());
        });
        let r = conn.read();
        drop(conn);
        sending.join().unwrap();
        assert_eq!(r.status, 413);
        assert_eq!(r.error().0, -32600);
        assert!(r.closes());
        normal_call_works(&mut RawConn::open(&gw));

        // Content-Length with Transfer-Encoding, in either order: a smuggling
        // attempt. Read by Transfer-Encoding alone (RFC 9112 6.3: the chunked
        // call is answered) and the connection closed after the answer, so the
        // request hidden behind the body for a proxy that believed the
        // Content-Length is never read as a request of its own.
        for (first, second) in [
            ("content-length: 4", "transfer-encoding: chunked"),
            ("transfer-encoding: chunked", "content-length: 4"),
        ] {
            let mut conn = RawConn::open(&gw);
            let mut req = format!(
                "POST / HTTP/1.1\r\nhost: gw\r\ncontent-type: application/json\r\n{first}\r\n{second}\r\n\r\n"
            )
            .into_bytes();
            req.extend_from_slice(
                format!("{:x}\r\n{CHAIN_ID}\r\n0\r\n\r\n", CHAIN_ID.len()).as_bytes(),
            );
            let smuggled = call("\"smuggled\"", "eth_chainId", "[]");
            req.extend_from_slice(
                format!(
                    "POST / HTTP/1.1\r\nhost: gw\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{smuggled}",
                    smuggled.len()
                )
                .as_bytes(),
            );
            let r = conn.send(&req);
            assert_eq!(r.status, 200, "{first} + {second}: {r:?}");
            assert_eq!(r.json()["id"], "next", "{first} + {second}");
            assert!(r.closes(), "{first} + {second}: Connection: close");
            assert!(conn.is_closed(), "{first} + {second}: nothing more is answered");
            normal_call_works(&mut RawConn::open(&gw));
        }

        // Two equal Content-Lengths are one (RFC 9112 6.3): answered, kept open.
        let mut conn = RawConn::open(&gw);
        let mut req = format!(
            "POST / HTTP/1.1\r\nhost: gw\r\ncontent-type: application/json\r\ncontent-length: {0}\r\ncontent-length: {0}\r\n\r\n",
            CHAIN_ID.len()
        )
        .into_bytes();
        req.extend_from_slice(CHAIN_ID.as_bytes());
        let r = conn.send(&req);
        assert_eq!((r.status, r.json()["result"].clone()), (200, "0x7a69".into()));
        normal_call_works(&mut conn);

        // Two Content-Lengths that disagree: 400 from the HTTP parser, closed.
        let mut conn = RawConn::open(&gw);
        let mut req = format!(
            "POST / HTTP/1.1\r\nhost: gw\r\ncontent-type: application/json\r\ncontent-length: {}\r\ncontent-length: 5\r\n\r\n",
            CHAIN_ID.len()
        )
        .into_bytes();
        req.extend_from_slice(CHAIN_ID.as_bytes());
        let r = conn.send(&req);
        assert_eq!(r.status, 400, "{r:?}");
        assert!(conn.is_closed(), "duplicate Content-Length: the connection is closed");
        normal_call_works(&mut RawConn::open(&gw));
    })
    .await
    .unwrap();
}

pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn ws_connect(gw: &Gw) -> Ws {
    let (ws, _) = tokio_tungstenite::connect_async(gw.url.replace("http://", "ws://"))
        .await
        .unwrap();
    ws
}

/// The next data message, or the close frame's code.
pub async fn ws_next(ws: &mut Ws) -> Result<Value, Option<CloseCode>> {
    loop {
        let m = tokio::time::timeout(Duration::from_secs(30), ws.next())
            .await
            .expect("an answer or a close in time");
        match m {
            Some(Ok(Message::Text(t))) => return Ok(serde_json::from_str(&t).unwrap()),
            Some(Ok(Message::Close(frame))) => return Err(frame.map(|f| f.code)),
            Some(Ok(_)) => continue,
            Some(Err(_)) | None => return Err(None),
        }
    }
}

async fn ws_normal_call_works(ws: &mut Ws) {
    ws.send(Message::text(CHAIN_ID)).await.unwrap();
    let v = ws_next(ws).await.expect("an answer");
    assert_eq!(
        (v["id"].as_str(), v["result"].as_str()),
        (Some("next"), Some("0x7a69"))
    );
}

/// One message in fragments of at most 64 KiB, within the largest frame
/// the gateway takes by default (`server.ws_max_frame_bytes`).
async fn send_in_frames(ws: &mut Ws, body: Vec<u8>, text: bool) {
    let pieces: Vec<&[u8]> = body.chunks(64 * 1024).collect();
    for (i, piece) in pieces.iter().enumerate() {
        let opcode = match (i, text) {
            (0, true) => OpCode::Data(Data::Text),
            (0, false) => OpCode::Data(Data::Binary),
            _ => OpCode::Data(Data::Continue),
        };
        let frame = Frame::message(piece.to_vec(), opcode, i + 1 == pieces.len());
        ws.send(Message::Frame(frame)).await.unwrap();
    }
}

#[tokio::test]
async fn a_hostile_corpus_over_websocket() {
    let (_fleet, gw) = gateway().await;
    let mut ws = ws_connect(&gw).await;
    for (name, body, _, code, id, says) in bodies() {
        // Invalid UTF-8 is not text: it is sent as a binary frame here (as a
        // text frame below), and answered like any body that is not JSON.
        let text = std::str::from_utf8(&body).is_ok();
        send_in_frames(&mut ws, body, text).await;
        let v = ws_next(&mut ws)
            .await
            .unwrap_or_else(|c| panic!("{name}: closed {c:?}"));
        assert_eq!(
            (v["error"]["code"].as_i64(), v["id"].clone()),
            (Some(code), id),
            "{name}: {v}"
        );
        let message = v["error"]["message"].as_str().unwrap();
        assert!(message.contains(says), "{name}: {message}");
        ws_normal_call_works(&mut ws).await;
    }

    send_in_frames(&mut ws, nested_body(), false).await;
    assert_eq!(ws_next(&mut ws).await.unwrap(), nested_body_answer());
    ws_normal_call_works(&mut ws).await;

    // JSON in a binary frame is answered like text.
    ws.send(Message::binary(CHAIN_ID.as_bytes().to_vec()))
        .await
        .unwrap();
    assert_eq!(ws_next(&mut ws).await.unwrap()["result"], "0x7a69");

    // A 10,000-digit id is over the id cap (1 KiB): -32600, not echoed.
    let id = "9".repeat(10_000);
    ws.send(Message::text(call(&id, "eth_chainId", "[]")))
        .await
        .unwrap();
    let v = ws_next(&mut ws).await.unwrap();
    assert_eq!(
        (v["error"]["code"].as_i64(), &v["id"]),
        (Some(-32600), &Value::Null)
    );
    ws_normal_call_works(&mut ws).await;

    // A text frame that is not UTF-8: closed with 1007 (RFC 6455 8.1).
    let frame = Frame::message(
        b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"eth_\xff\"}".to_vec(),
        OpCode::Data(Data::Text),
        true,
    );
    ws.send(Message::Frame(frame)).await.unwrap();
    assert_eq!(ws_next(&mut ws).await, Err(Some(CloseCode::Invalid)));
    let mut ws = ws_connect(&gw).await;
    ws_normal_call_works(&mut ws).await;

    // A 10 MB method name is over the 5 MiB message limit: closed with 1009.
    // (The send may fail: the gateway closes before the end of it.)
    let _ = ws
        .send(Message::text(call("9", &"m".repeat(10 << 20), "[]")))
        .await;
    assert_eq!(ws_next(&mut ws).await, Err(Some(CloseCode::Size)));
    let mut ws = ws_connect(&gw).await;
    ws_normal_call_works(&mut ws).await;
}
