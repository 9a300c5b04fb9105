//! The HTTP stage: path to network, method, content type, the caller's
//! identity (before the body is read) and body limits, then the calls of the
//! body, answered by [`crate::calls`]. A GET asking for a WebSocket upgrade
//! on a network's path is handed to [`super::ws`].
//!
//! A request that fails gets one log line with its [`RequestId`] (a refusal:
//! at most `log.refusals_per_second`, see `crate::logs`), and that id in the
//! response's `X-Request-Id`; every response is counted by status in
//! `rpcgate_http_responses_total`. With `server.expose_upstream_headers`,
//! answers also say where each call was served from ([`served`]).
//!
//! A body is read against the request budget ([`memory::requests`]): the
//! bytes of every body being read or decoded count until its calls are
//! answered, and a body the budget cannot take within `server.memory_wait`
//! gets 503 with -32005. The answer's bytes hold their permit of the answer
//! budget (taken per call in [`crate::calls`]) until hyper has written them;
//! a compressed answer carries it over to the compressed bytes.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures_util::FutureExt;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;

use super::compression::{self, Inflater};
use super::cors;
use super::linger::{self, Linger};
use super::{ws, ConnHold, Front};
use crate::beacon::{self, BeaconNetwork};
use crate::calls::request_id::{RequestId, X_REQUEST_ID};
use crate::calls::rescue::{self, HttpRefusal};
use crate::calls::{self, served};
use crate::config::ContentCoding;
use crate::control::{Gateway, NetworkTable};
use crate::jsonrpc::{error_response, Id};
use crate::memory;
use crate::metrics::CompressionMetrics;

/// Whole answers, or a beacon network's event stream.
pub(super) type Body = crate::beacon::AnswerBody;

pub(super) async fn handle(
    gateway: Arc<Gateway>,
    peer: SocketAddr,
    req: Request<Incoming>,
    hold: Arc<ConnHold>,
    front: Front,
) -> Result<Response<Body>, Infallible> {
    let request_id = RequestId::of(req.headers());
    // One snapshot for the whole request (each load is an Arc count taken and given back).
    let routes = gateway.table();
    let cors = &routes.server.cors;
    if cors::is_preflight(req.method(), req.headers()) {
        let response: Response<Body> = cors::preflight(cors, req.headers());
        gateway.metrics().listener.http_response(response.status());
        return Ok(response);
    }
    let origin = cors::allowed_origin(cors, req.headers());
    let compressing = routes.server.compression.enabled;
    let served = match beacon_request(&gateway, &front, req) {
        Ok((net, api, req)) => {
            let limits = beacon::BodyLimits {
                max_bytes: routes.server.max_body_bytes,
                read_timeout: routes.server.body_read_timeout,
            };
            Ok(beacon::serve(&net, &routes.policy, peer, req, &api, limits).await)
        }
        Err(req) => serve(&gateway, &routes, peer, req, hold, &request_id).await,
    };
    let mut response = match served {
        Ok(response) => response,
        Err(refusal) => {
            let rescued = rescue::http(&refusal);
            let (status, outcome) = (rescued.status, rescued.outcome.label());
            // The client's doing (a scan, a flood): counted by status, logged at a bounded rate.
            if crate::logs::refusal_line() {
                tracing::info!(request_id = %request_id, %peer, status = status.as_u16(), outcome, error = %rescued.object.message, "request refused");
            }
            request_id.mark_failed();
            let body = memory::charged_answer(error_response(Id::NULL, &rescued.object));
            let mut response = json(status, body);
            rescued.headers.write(response.headers_mut());
            response
        }
    };
    if request_id.has_failed() {
        if let Ok(value) = HeaderValue::from_str(&request_id.to_string()) {
            response.headers_mut().insert(X_REQUEST_ID, value);
        }
    }
    if let Some(origin) = origin {
        cors::decorate(response.headers_mut(), origin);
    }
    if compressing {
        compression::vary(response.headers_mut());
    }
    gateway.metrics().listener.http_response(response.status());
    Ok(response)
}

/// An event stream keeps its request in flight while it is open (the
/// connection is not idle; the write deadline still applies); any other
/// answer ends it now.
pub(super) fn hold_while_streaming(
    mut answer: Result<Response<Body>, Infallible>,
    in_flight: super::lifetimes::InFlight,
) -> Result<Response<Body>, Infallible> {
    if let Ok(response) = &mut answer {
        if let Body::Events(events) = response.body_mut() {
            events.hold(Box::new(in_flight));
        }
    }
    answer
}

/// The beacon network a request is for, and its `/eth/...` path: every
/// request of a beacon listener, and `/<network>/eth/...` on the main one.
/// Anything else comes back for the JSON-RPC stage.
#[allow(clippy::result_large_err)]
fn beacon_request(
    gateway: &Gateway,
    front: &Front,
    req: Request<Incoming>,
) -> Result<(Arc<BeaconNetwork>, String, Request<Incoming>), Request<Incoming>> {
    let path = req.uri().path();
    let found = match front {
        Front::Beacon(net) => Some((net.clone(), path.to_string())),
        // Network names are unique across both kinds: no JSON-RPC path is shadowed.
        Front::Main => gateway
            .beacon()
            .resolve(path)
            .map(|(net, api)| (net.clone(), api.to_string())),
    };
    match found {
        Some((net, api)) => Ok((net, api, req)),
        None => Err(req),
    }
}

/// A connection over the per-IP cap: one 429 written without waiting (it
/// fits any socket buffer), then closed. No task, so a flood of them holds
/// nothing.
pub(super) fn refuse_connection(stream: tokio::net::TcpStream) {
    const TOO_MANY: &[u8] = b"HTTP/1.1 429 Too Many Requests\r\nretry-after: 1\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";
    let _ = stream.try_write(TOO_MANY);
}

async fn serve(
    gateway: &Arc<Gateway>,
    routes: &NetworkTable,
    peer: SocketAddr,
    req: Request<Incoming>,
    hold: Arc<ConnHold>,
    request_id: &RequestId,
) -> Result<Response<Body>, HttpRefusal> {
    let (network, path_key) = routes
        .resolve(req.uri().path())
        .ok_or(HttpRefusal::UnknownNetwork)?;
    if ws::is_upgrade(&req) {
        if !cors::upgrade_allowed(&routes.server.cors, req.headers()) {
            return Err(HttpRefusal::ForbiddenOrigin);
        }
        let key = path_key.map(str::to_string);
        return ws::upgrade(gateway, routes, network, key.as_deref(), peer, req, hold).await;
    }
    if req.method() != Method::POST {
        return Err(HttpRefusal::MethodNotAllowed);
    }
    if !json_content_type(req.headers().get(header::CONTENT_TYPE)) {
        return Err(HttpRefusal::UnsupportedMediaType);
    }
    let compression = &routes.server.compression;
    let counted = &gateway.metrics().compression;
    let coding =
        compression::request_coding(&compression.request_encodings, req.headers(), counted)
            .map_err(|e| HttpRefusal::UnsupportedEncoding(e.0))?;
    let answer_coding = compression::negotiate(compression, req.headers());
    let policy = &routes.policy;
    let caller = policy
        .identify(peer.ip(), req.headers(), path_key)
        .map_err(HttpRefusal::Unauthorized)?;
    if !cors::client_allowed(caller.allowed_origins(), req.headers()) {
        return Err(HttpRefusal::ForbiddenOrigin);
    }
    let limit = routes.server.max_body_bytes;
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let lingering = Linger {
        within: routes.server.lingering_close_timeout,
        max_bytes: routes.server.lingering_close_bytes,
    };
    let mut incoming = req.into_body();
    if declared.is_some_and(|len| len > limit as u64) {
        linger::drain(incoming, lingering);
        return Err(HttpRefusal::TooLarge { limit });
    }
    let read = {
        // A small body usually came with the headers: taken at once, without
        // arming the read timer.
        let mut read = std::pin::pin!(read_body(&mut incoming, limit, coding, counted));
        match read.as_mut().now_or_never() {
            Some(done) => done,
            None => tokio::time::timeout(routes.server.body_read_timeout, read)
                .await
                .unwrap_or(Err(HttpRefusal::BodyTimeout)),
        }
    };
    let body = match read {
        Ok(body) => body,
        Err(
            refusal @ (HttpRefusal::TooLarge { .. }
            | HttpRefusal::BodyTimeout
            | HttpRefusal::MemoryBusy),
        ) => {
            linger::drain(incoming, lingering);
            return Err(refusal);
        }
        Err(refusal) => return Err(refusal),
    };
    let answered =
        calls::answer_message(routes, network, &caller, &body, None, None, request_id).await;
    let (status, answer) = (answered.status, answered.body);
    let mut response = match answer {
        Some(body) => {
            // The compressed copy takes over the answer's permit (it is
            // smaller); taken before the answer's own is freed.
            let carried = memory::answers().carry(body.len());
            let (body, used) =
                compression::encode_answer(compression, answer_coding, body, counted).await;
            let body = match used {
                Some(_) => {
                    let len = body.len();
                    memory::hold(body, carried.shrunk_to(len))
                }
                None => body,
            };
            let mut response = json(status, body);
            if let Some(used) = used {
                response.headers_mut().insert(
                    header::CONTENT_ENCODING,
                    HeaderValue::from_static(used.token()),
                );
            }
            response
        }
        None => empty(status),
    };
    served::decorate(response.headers_mut(), &answered.served);
    answered.headers.write(response.headers_mut());
    Ok(response)
}

/// The whole body, at most `limit` bytes, decoded when it came with a
/// `coding` (then at most `limit` bytes on the wire and `limit` decoded). A
/// body that arrives in one frame (a small call, sent with its headers) is
/// kept as it came, without a copy. Every byte is charged to the request
/// budget before it is held: frames as they arrive, decoded bytes before
/// each step that writes them ([`Inflater::held_after_step`]).
async fn read_body(
    body: &mut Incoming,
    limit: usize,
    coding: Option<ContentCoding>,
    counted: &CompressionMetrics,
) -> Result<Bytes, HttpRefusal> {
    let mut whole = Bytes::new();
    let mut joined: Option<BytesMut> = None;
    // The decoder is made once its state is charged (with the first frame,
    // or at the end of a body that had none), so a body still waiting for
    // budget holds no decoder either.
    let mut inflating: Option<Inflater> = None;
    let mut wire = 0usize;
    let mut held = memory::requests().empty();
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame.map_err(|_| HttpRefusal::BodyRead)?.into_data() else {
            continue; // trailers
        };
        if let Some(coding) = coding {
            wire += data.len();
            if wire > limit {
                return Err(HttpRefusal::TooLarge { limit });
            }
            // The frame is held until decoded; its bytes are freed with
            // the decoder, charged until then.
            held.grow(data.len())
                .await
                .map_err(|_| HttpRefusal::MemoryBusy)?;
            let inflater = match &mut inflating {
                Some(inflater) => inflater,
                None => inflating.insert(start_inflater(coding, limit, counted, &mut held).await?),
            };
            inflater.push(data);
            decode(inflater, coding, limit, &mut held, wire).await?;
            continue;
        }
        held.grow(data.len())
            .await
            .map_err(|_| HttpRefusal::MemoryBusy)?;
        let len = joined.as_ref().map_or(whole.len(), BytesMut::len) + data.len();
        if len > limit {
            return Err(HttpRefusal::TooLarge { limit });
        }
        match &mut joined {
            Some(buf) => buf.extend_from_slice(&data),
            None if whole.is_empty() => whole = data,
            None => {
                let mut buf = BytesMut::with_capacity(len);
                buf.extend_from_slice(&whole);
                buf.extend_from_slice(&data);
                joined = Some(buf);
            }
        }
    }
    if let Some(coding) = coding {
        let mut inflater = match inflating {
            Some(inflater) => inflater,
            None => start_inflater(coding, limit, counted, &mut held).await?,
        };
        inflater.end();
        decode(&mut inflater, coding, limit, &mut held, wire).await?;
        let kept = inflater.decoded_capacity();
        let decoded = inflater
            .finish()
            .map_err(|e| inflate_refusal(e, coding, limit))?;
        return Ok(memory::hold(decoded, held.shrunk_to(kept)));
    }
    Ok(memory::hold(joined.map_or(whole, BytesMut::freeze), held))
}

/// A decoder for `coding`, made once `held` has grown by what its state
/// takes ([`Inflater::state_bytes`]).
async fn start_inflater(
    coding: ContentCoding,
    limit: usize,
    counted: &CompressionMetrics,
    held: &mut memory::Permit,
) -> Result<Inflater, HttpRefusal> {
    held.grow(Inflater::state_bytes(coding))
        .await
        .map_err(|_| HttpRefusal::MemoryBusy)?;
    let inflater = Inflater::new(coding, limit).map_err(|e| inflate_refusal(e, coding, limit))?;
    Ok(inflater.counting(counted))
}

/// Decodes what has arrived, step by step, growing `held` (which also
/// holds the `wire` bytes) to what the inflater may hold before each step.
async fn decode(
    inflater: &mut Inflater,
    coding: ContentCoding,
    limit: usize,
    held: &mut memory::Permit,
    wire: usize,
) -> Result<(), HttpRefusal> {
    loop {
        let need = wire + inflater.held_after_step();
        if need > held.bytes() {
            held.grow(need - held.bytes())
                .await
                .map_err(|_| HttpRefusal::MemoryBusy)?;
        }
        match inflater.step() {
            Ok(compression::Progress::Wrote(_)) => continue,
            Ok(_) => return Ok(()),
            Err(e) => return Err(inflate_refusal(e, coding, limit)),
        }
    }
}

fn inflate_refusal(
    e: compression::InflateError,
    coding: ContentCoding,
    limit: usize,
) -> HttpRefusal {
    match e {
        compression::InflateError::TooLarge => HttpRefusal::TooLarge { limit },
        compression::InflateError::Corrupt => HttpRefusal::BodyNotDecoded(coding.token()),
    }
}

/// application/json (and the two JSON-RPC variants Geth also accepts), or no content type.
fn json_content_type(value: Option<&HeaderValue>) -> bool {
    let Some(value) = value else { return true };
    let Ok(value) = value.to_str() else {
        return false;
    };
    // Visible ASCII only (`to_str`), so bytes and ASCII trimming are exact.
    let essence = value.as_bytes().split(|b| *b == b';').next();
    let essence = essence.unwrap_or_default().trim_ascii();
    [
        &b"application/json"[..],
        b"application/json-rpc",
        b"application/jsonrequest",
    ]
    .iter()
    .any(|t| essence.eq_ignore_ascii_case(t))
}

pub(super) fn json(status: StatusCode, body: Bytes) -> Response<Body> {
    let mut response = Response::new(Body::from(Full::new(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn empty(status: StatusCode) -> Response<Body> {
    let mut response = Response::new(Body::default());
    *response.status_mut() = status;
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types() {
        let ok = |v: &str| json_content_type(Some(&HeaderValue::from_str(v).unwrap()));
        assert!(json_content_type(None));
        assert!(ok("application/json"));
        assert!(ok("Application/JSON; charset=utf-8"));
        assert!(ok("application/json-rpc"));
        assert!(!ok("text/plain"));
        assert!(!ok("application/x-www-form-urlencoded"));
    }
}
