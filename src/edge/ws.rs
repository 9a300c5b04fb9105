//! The WebSocket listener: JSON-RPC over a client's WebSocket, and the
//! socket side of `eth_subscribe`.
//!
//! A GET with `Upgrade: websocket` on any network path (`/`, `/<network>`,
//! `/<network>/<key>`) is identified by the client policy exactly like an
//! HTTP request (an unknown key is a 401, before upgrading), then upgraded.
//! Each text (or binary) message is one JSON-RPC payload, answered by
//! [`crate::calls`] just as an HTTP body is: admitted call by call, routed
//! with pinning, cache and retries, the caller's id echoed byte for byte.
//! The routes and the caller's tier are looked up again for every message,
//! so a reload applies to open connections too.
//!
//! Bounds, so one client cannot hold more than its share:
//! - messages are at most `max_body_bytes` (larger: close 1009), frames at
//!   most `server.ws_max_frame_bytes` (a larger message comes in fragments);
//!   a text message that is not UTF-8 closes with 1007, a broken frame with
//!   1002;
//! - a frame must be complete within `server.ws_frame_timeout` of its first
//!   byte (else 1008), and what frames and messages being read hold is
//!   charged to the request budget ([`super::ws_meter`]); messages being
//!   answered hold their bytes of it until answered;
//! - at most [`MAX_IN_FLIGHT`] messages are answered at once; the socket is
//!   not read while that many are in flight;
//! - answers and notifications wait in a queue bounded in bytes
//!   (`server.ws_max_queued_bytes`, and never more than a
//!   1/[`memory::CONNECTION_SHARE`] share of the answer budget, see
//!   [`crate::subscriptions::outbox`]); a client that lets it fill is closed
//!   (1008), never buffered for without limit, and one answer larger than
//!   the share is answered -32005 instead;
//! - a client whose socket has taken nothing of a write for
//!   `server.write_timeout` is disconnected and its queue freed, whether or
//!   not it pings (no Close frame: its socket would not take one);
//! - a client that sends nothing, not even a pong to our pings, for
//!   [`IDLE_TIMEOUT`] is closed (1001).
//!
//! Memory: an idle subscribed connection is what 10,000 of them multiply.
//! tungstenite's defaults read into a 128 KiB buffer that it zero-fills (so
//! every page of it is resident) for each connection; [`socket_config`]
//! starts it at [`READ_BUFFER`] instead, and the codec grows it to the
//! length a frame header announces, up to `server.ws_max_frame_bytes`. (It
//! keeps what it grew to: a client that sent one large frame holds up to
//! `ws_max_frame_bytes` of read buffer.) The
//! upgrade request's headers are copied out of hyper's read buffer
//! ([`owned_headers`]) so that buffer is freed. Writes are not gathered (`write_buffer_size`
//! 0): every message is flushed on its own anyway, and the byte bound on the
//! queue in front of the socket is ours.
//!
//! Shutdown: every connection holds a receiver of the gateway's `closing`
//! signal; when it turns, the connection sends Close 1001 and ends, and the
//! listener's drain waits for all of them.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use http::{header, HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use prometheus::IntGauge;
use tokio::sync::{oneshot, watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message, Utf8Bytes};
use tokio_tungstenite::WebSocketStream;

use super::http::Body;
use super::ws_meter::{self, Metered, ReadMeter};
use super::ConnHold;
use crate::calls;
use crate::calls::request_id::RequestId;
use crate::calls::rescue::HttpRefusal;
use crate::control::{Gateway, NetworkTable};
use crate::memory;
use crate::metrics::WsLimit;
use crate::network::Network;
use crate::policy::Refusal;
use crate::subscriptions::{Outbox, Outgoing, Session, SessionLimits, PER_MESSAGE};

/// Messages of one connection answered at once.
pub(super) const MAX_IN_FLIGHT: usize = 16;
/// The read buffer a connection starts with: a subscription request and
/// the pongs fit; a larger frame grows it (see the module doc).
pub(super) const READ_BUFFER: usize = 1024;
/// A connection with no frame from the client for this long is closed.
pub(super) const IDLE_TIMEOUT: Duration = Duration::from_secs(120);
/// Pings keep a quiet but live client (its pongs) from the idle timeout.
const PING_INTERVAL: Duration = Duration::from_secs(30);
/// Time to write a Close frame and hear the client's, before the socket is dropped.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

type Socket = WebSocketStream<Metered<TokioIo<Upgraded>>>;

/// A GET asking to become a WebSocket.
pub(super) fn is_upgrade(req: &Request<Incoming>) -> bool {
    req.method() == Method::GET && has_token(req.headers(), header::UPGRADE, "websocket")
}

fn has_token(headers: &HeaderMap, name: HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// Checks the handshake and the caller, answers 101 and starts the
/// connection's task once hyper hands the socket over.
///
/// An upgrade costs the caller a request of its budget, like a refused call
/// (`policy::REFUSED_COST`), so opening sockets in a loop runs into the rate
/// limit; and one that came through a trusted proxy takes a slot of the
/// per-IP connection cap for the forwarded client address, held as long as
/// the socket (a direct client's slot was taken at accept).
pub(super) async fn upgrade(
    gateway: &Arc<Gateway>,
    routes: &NetworkTable,
    network: &Arc<Network>,
    path_key: Option<&str>,
    peer: SocketAddr,
    mut req: Request<Incoming>,
    hold: Arc<ConnHold>,
) -> Result<Response<Body>, HttpRefusal> {
    if !has_token(req.headers(), header::CONNECTION, "upgrade") {
        return Err(HttpRefusal::BadUpgrade("Connection: Upgrade is missing"));
    }
    if req.headers().get(header::SEC_WEBSOCKET_VERSION) != Some(&HeaderValue::from_static("13")) {
        return Err(HttpRefusal::BadUpgrade("Sec-WebSocket-Version must be 13"));
    }
    let key = req
        .headers()
        .get(header::SEC_WEBSOCKET_KEY)
        .ok_or(HttpRefusal::BadUpgrade("Sec-WebSocket-Key is missing"))?;
    let accept = derive_accept_key(key.as_bytes());
    let caller = routes
        .policy
        .identify(peer.ip(), req.headers(), path_key)
        .map_err(HttpRefusal::Unauthorized)?;
    if !super::cors::client_allowed(caller.allowed_origins(), req.headers()) {
        return Err(HttpRefusal::ForbiddenOrigin);
    }
    routes
        .policy
        .charge_refused(&caller)
        .await
        .map_err(HttpRefusal::Limited)?;
    let forwarded = match hold.counted() {
        true => None,
        false => Some(
            routes
                .policy
                .connections()
                .try_open(caller.ip())
                .ok_or(HttpRefusal::Limited(Refusal::TooManyConnections))?,
        ),
    };

    let server = &routes.server;
    let limit = server.max_body_bytes;
    // Debug builds: the bounds off, for their tests to be seen failing.
    let off = crate::subscriptions::switched_off;
    let frame_limit = if off("frame") {
        limit
    } else {
        server.ws_max_frame_bytes
    };
    let never = Duration::from_secs(365 * 24 * 3600);
    let name = network.config.name.clone();
    let metrics = gateway.metrics();
    // One connection's share of the answer budget (see the module doc).
    let share = server.max_inflight_answer_bytes / memory::CONNECTION_SHARE;
    let (outbox, queue) = Outbox::new(
        server.ws_max_queued_bytes.min(share),
        Some(metrics.ws.limit_hit(&name, WsLimit::QueuedBytes)),
    );
    let deadlines = Deadlines {
        frame: if off("frame") {
            never
        } else {
            server.ws_frame_timeout
        },
        write: if off("write") {
            never
        } else {
            hold.write_timeout
        },
        frame_hits: metrics.ws.limit_hit(&name, WsLimit::FrameTimeout),
        write_hits: metrics.ws.limit_hit(&name, WsLimit::WriteTimeout),
    };
    let open = metrics.ws.connections.with_label_values(&[&name]);
    let hub = gateway.subscriptions().hub(&name);
    let session = Session::new(
        hub,
        caller.bucket(),
        outbox.clone(),
        SessionLimits {
            subscriptions: routes.server.max_subscriptions_per_connection,
            topics: routes.server.max_topics_per_connection,
            feeds: routes.server.max_upstream_subscriptions,
            feeds_per_client: crate::subscriptions::client_share(
                routes.server.max_upstream_subscriptions,
            ),
        },
    );
    let (asked, asked_rx) = watch::channel(None);
    let conn = Arc::new(Conn {
        gateway: gateway.clone(),
        path: req.uri().path().to_string(),
        headers: owned_headers(req.headers()),
        peer: peer.ip(),
        session,
        outbox,
        asked,
    });
    let closing = gateway.closing.subscribe();
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let upgraded = match on_upgrade.await {
            Ok(u) => u,
            Err(e) => {
                tracing::debug!(%peer, error = %e, "WebSocket upgrade failed");
                return;
            }
        };
        let meter = ReadMeter::new();
        let metered = Metered::new(TokioIo::new(upgraded), meter.clone(), frame_limit);
        let socket = WebSocketStream::from_raw_socket(
            metered,
            Role::Server,
            Some(socket_config(limit, frame_limit)),
        )
        .await;
        let gauge = OpenGauge::new(open);
        let watch = Watch {
            meter,
            lifetime: hold.lifetime.clone(),
            deadlines,
        };
        serve(conn, socket, queue, closing, asked_rx, watch).await;
        drop((gauge, hold, forwarded));
    });

    let mut response = Response::new(Body::default());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    headers.insert(
        header::SEC_WEBSOCKET_ACCEPT,
        HeaderValue::from_str(&accept).expect("base64 is a valid header value"),
    );
    Ok(response)
}

/// The upgrade request's headers in allocations of their own. hyper's
/// header values are slices of the connection's 8 KiB read buffer: a plain
/// clone would keep that whole buffer alive for as long as the WebSocket
/// lives, for a few hundred bytes of headers.
fn owned_headers(headers: &HeaderMap) -> HeaderMap {
    let mut owned = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        if let Ok(mut copy) = HeaderValue::from_bytes(value.as_bytes()) {
            copy.set_sensitive(value.is_sensitive());
            owned.append(name.clone(), copy);
        }
    }
    owned
}

/// One open connection, shared by the tasks answering its messages.
struct Conn {
    gateway: Arc<Gateway>,
    /// The request path: the network (and key) is resolved again per message.
    path: String,
    /// The upgrade request's headers, for the caller's identity per message.
    headers: HeaderMap,
    peer: IpAddr,
    session: Session,
    outbox: Outbox,
    /// A close asked for by a message's task (the key or network went away).
    asked: watch::Sender<Option<CloseFrame>>,
}

impl Conn {
    fn ask_close(&self, code: CloseCode, reason: &'static str) {
        self.asked.send_if_modified(|asked| {
            let first = asked.is_none();
            if first {
                *asked = Some(frame(code, reason));
            }
            first
        });
    }
}

fn frame(code: CloseCode, reason: &'static str) -> CloseFrame {
    CloseFrame {
        code,
        reason: Utf8Bytes::from_static(reason),
    }
}

/// The connections gauge, down again however the task ends.
struct OpenGauge(IntGauge);

impl OpenGauge {
    fn new(gauge: IntGauge) -> OpenGauge {
        gauge.inc();
        OpenGauge(gauge)
    }
}

impl Drop for OpenGauge {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// The deadlines a connection is held to besides idleness.
struct Deadlines {
    /// `server.ws_frame_timeout`: from a frame's first byte to its last.
    frame: Duration,
    /// `server.write_timeout`: a write the client takes nothing of.
    write: Duration,
    frame_hits: prometheus::IntCounter,
    write_hits: prometheus::IntCounter,
}

/// What the connection watches: its frames as they arrive, its writes.
struct Watch {
    meter: Arc<ReadMeter>,
    lifetime: Arc<super::lifetimes::Lifetime>,
    deadlines: Deadlines,
}

/// Reads messages and answers them until the client leaves or a close is due.
async fn serve(
    conn: Arc<Conn>,
    socket: Socket,
    queue: Outgoing,
    mut closing: watch::Receiver<bool>,
    mut asked: watch::Receiver<Option<CloseFrame>>,
    watch: Watch,
) {
    let Watch {
        meter,
        lifetime,
        deadlines,
    } = watch;
    let (sink, mut stream) = socket.split();
    let (bye, bye_rx) = oneshot::channel();
    let mut writer = tokio::spawn(write(sink, queue, bye_rx));
    let slots = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let mut calls = JoinSet::new();
    let mut idle = Instant::now() + IDLE_TIMEOUT;
    let mut stalled = false;
    let goodbye = loop {
        while calls.try_join_next().is_some() {}
        tokio::select! {
            _ = closing.wait_for(|c| *c) => break Some(frame(CloseCode::Away, "server shutting down")),
            _ = conn.outbox.overflowed() => {
                break Some(frame(CloseCode::Policy, "client does not read its messages"))
            }
            _ = asked.changed() => break asked.borrow().clone(),
            _ = tokio::time::sleep_until(idle) => break Some(frame(CloseCode::Away, "idle timeout")),
            _ = meter.unfinished(deadlines.frame) => {
                deadlines.frame_hits.inc();
                break Some(frame(CloseCode::Policy, "a frame was not finished in time"))
            }
            // A client that takes none of its answers, pings or not: its
            // queue is dropped with the writer below.
            _ = lifetime.write_stalled(deadlines.write) => {
                deadlines.write_hits.inc();
                stalled = true;
                break None
            }
            (permit, message) = async {
                let permit = slots.clone().acquire_owned().await;
                (permit, stream.next().await)
            } => {
                let Ok(permit) = permit else { break None };
                let message = match message {
                    None => break None,
                    Some(Err(e)) => {
                        tracing::debug!(peer = %conn.peer, error = %e, "WebSocket read failed");
                        break read_failure_close(&e);
                    }
                    Some(Ok(m)) => m,
                };
                idle = Instant::now() + IDLE_TIMEOUT;
                let body = match inbound(message) {
                    Inbound::Payload(body) => body,
                    Inbound::Close => break None,
                    Inbound::Control => continue,
                };
                // Held in the request budget until answered.
                let held = memory::requests().carry(body.len());
                let body = memory::hold(body, held);
                calls.spawn(on_message(conn.clone(), body, permit));
            }
        }
    };
    // A closing connection's calls are not answered.
    calls.abort_all();
    if stalled {
        // Its socket takes nothing, not even a Close frame: the writer (stuck
        // in a send) and the queue go now, and the socket with them.
        writer.abort();
        return;
    }
    match goodbye {
        Some(frame) => {
            let _ = bye.send(frame);
        }
        None => drop(bye),
    }
    if tokio::time::timeout(CLOSE_TIMEOUT, &mut writer)
        .await
        .is_err()
    {
        // The client does not read: it cannot hear the Close frame either.
        writer.abort();
        return;
    }
    // Hear the client's Close before dropping the socket, so our Close frame
    // is not lost to a reset.
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, async {
        while let Some(Ok(_)) = stream.next().await {}
    })
    .await;
}

/// How client sockets are read: messages at most `limit` bytes, frames at
/// most `frame_limit`, into a buffer that starts small and grows for a
/// large frame.
pub(crate) fn socket_config(limit: usize, frame_limit: usize) -> WebSocketConfig {
    // The test of large messages, seen failing: nothing larger than the first buffer.
    let limit = if crate::subscriptions::switched_off("grow") {
        READ_BUFFER
    } else {
        limit
    };
    WebSocketConfig::default()
        .max_message_size(Some(limit))
        .max_frame_size(Some(frame_limit.min(limit)))
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(0)
}

/// What one message from the client is to the listener.
pub(crate) enum Inbound {
    /// A JSON-RPC payload to answer.
    Payload(Bytes),
    /// The client's Close (tungstenite has queued the reply).
    Close,
    /// Ping and pong (answered by tungstenite), raw frames.
    Control,
}

pub(crate) fn inbound(message: Message) -> Inbound {
    match message {
        Message::Text(text) => Inbound::Payload(text.into()),
        // JSON in a binary frame is answered like text; anything else gets
        // -32700 from the parser.
        Message::Binary(bytes) => Inbound::Payload(bytes),
        Message::Close(_) => Inbound::Close,
        Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => Inbound::Control,
    }
}

/// The Close a failed read ends the connection with (RFC 6455, 7.4.1): a
/// message over the limit is 1009, a text message that is not UTF-8 is 1007,
/// a broken frame 1002. A socket that failed (reset, EOF) gets none.
pub(crate) fn read_failure_close(e: &WsError) -> Option<CloseFrame> {
    match e {
        WsError::Capacity(_) => Some(frame(CloseCode::Size, "message too big")),
        WsError::Utf8 => Some(frame(
            CloseCode::Invalid,
            "a text message must be valid UTF-8",
        )),
        WsError::Protocol(_) => Some(frame(CloseCode::Protocol, "WebSocket protocol violation")),
        WsError::Io(e) if ws_meter::over_budget(e) => Some(frame(
            CloseCode::Again,
            "server busy: memory budget (requests) exhausted",
        )),
        _ => None,
    }
}

/// Writes queued messages and pings; on `bye`, a Close frame (or, when the
/// client closed, the reply to its Close) and the end.
async fn write(
    mut sink: SplitSink<Socket, Message>,
    mut queue: Outgoing,
    mut bye: oneshot::Receiver<CloseFrame>,
) {
    let mut ping = tokio::time::interval_at(Instant::now() + PING_INTERVAL, PING_INTERVAL);
    loop {
        tokio::select! {
            biased;
            frame = &mut bye => {
                if let Ok(frame) = frame {
                    let _ = sink.send(Message::Close(Some(frame))).await;
                }
                let _ = sink.close().await;
                return;
            }
            next = queue.recv() => {
                let Some(text) = next else { return };
                let len = text.len();
                // Answers are built from JSON text: always UTF-8.
                let Ok(text) = Utf8Bytes::try_from(text) else {
                    queue.written(len);
                    continue;
                };
                if sink.send(Message::Text(text)).await.is_err() {
                    return;
                }
                queue.written(len);
            }
            _ = ping.tick() => {
                if sink.send(Message::Ping(Bytes::new())).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Answers one message on the current routes.
async fn on_message(conn: Arc<Conn>, body: Bytes, _permit: OwnedSemaphorePermit) {
    let routes = conn.gateway.table();
    let Some((network, key)) = routes.resolve(&conn.path) else {
        conn.ask_close(CloseCode::Away, "this network is no longer served");
        return;
    };
    let Ok(caller) = routes.policy.identify(conn.peer, &conn.headers, key) else {
        conn.ask_close(CloseCode::Policy, "the API key is no longer accepted");
        return;
    };
    let answered = calls::answer_message(
        &routes,
        network,
        &caller,
        &body,
        Some(&conn.session),
        Some(conn.outbox.max_bytes() - PER_MESSAGE),
        &RequestId::random(),
    )
    .await;
    if let Some(answer) = answered.body {
        conn.outbox.push(answer);
    }
    conn.session.activate(&answered.subscribed);
}
