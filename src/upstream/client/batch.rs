//! Several calls to one backend in one HTTP request: a JSON-RPC batch.
//!
//! The router groups the entries of one client batch that chose the same
//! backend (`router::batch`); this module sends such a group as one JSON
//! array and hands back one outcome per call, in the group's order. The
//! calls carry the gateway's own ids, their positions `0..n`, so the answers
//! map back whatever order the node writes them in; an answer the node left
//! out is that call's failure (a bad reply), not the batch's.
//!
//! Each answer is kept as a slice of the batch's body (no copy), and parsed
//! as a single call's reply is, so the result or error member is copied out
//! verbatim. The body is read against the answer budget as a single reply
//! is (`Backend::post`), and each answer takes its share of that permit along,
//! so a batch's answers are budgeted for as long as they wait to be written.
//!
//! A request that fails as a whole (connection, timeout, HTTP 5xx or 429,
//! too large) fails every call in it and counts once towards ejection, as
//! one request does. A backend that answers with anything but an array (an
//! error object for the whole batch, 413, a node without batch support) has
//! refused the batch, not the calls: the caller sends them one by one.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::{Backend, UpstreamError};
use crate::jsonrpc::Reply;
use crate::memory::Permit;

/// One call of a batch, written once as the part of its request object that
/// follows the id (`,"method":...,"params":...}`).
#[derive(Debug)]
pub struct BatchCall {
    tail: Vec<u8>,
}

impl BatchCall {
    pub fn new(method: &str, params: Option<&str>) -> BatchCall {
        let mut tail = Vec::with_capacity(32 + method.len() + params.map_or(0, str::len));
        tail.extend_from_slice(b",\"method\":");
        serde_json::to_writer(&mut tail, method).expect("string serialization is infallible");
        if let Some(p) = params {
            tail.extend_from_slice(b",\"params\":");
            tail.extend_from_slice(p.as_bytes());
        }
        tail.push(b'}');
        BatchCall { tail }
    }

    /// What it adds to a batch's body (its id and separator included, at most).
    pub(super) fn len(&self) -> usize {
        self.tail.len() + 32
    }
}

/// Why a batch got no answer per call.
#[derive(Debug)]
pub enum BatchFailure {
    /// The request failed as a whole: each of its calls failed so. The flag
    /// says whether this failure just ejected the backend.
    Failed(UpstreamError, bool),
    /// The backend answered with something other than an array of answers:
    /// it takes these calls one at a time, if at all.
    Refused,
}

/// One outcome per call of a batch, in the batch's order.
pub type BatchReplies = Vec<Result<Reply, UpstreamError>>;

impl Backend {
    /// Sends `calls` as one batch within `timeout`, with the bookkeeping of
    /// [`Backend::call`]: one request in flight for the load estimate, one
    /// round trip, and at most one failure towards ejection.
    /// With a bound on requests in flight, it first waits for a free slot
    /// (within `timeout`).
    pub async fn call_batch(
        &self,
        calls: &[BatchCall],
        timeout: Duration,
    ) -> Result<BatchReplies, BatchFailure> {
        let Some(gate) = &self.gate else {
            return self.call_batch_now(calls, timeout).await;
        };
        let started = Instant::now();
        let Some(_slot) = gate.slot(timeout).await else {
            return Err(BatchFailure::Failed(UpstreamError::Timeout(timeout), false));
        };
        let left = timeout.saturating_sub(started.elapsed());
        self.call_batch_now(calls, left).await
    }

    /// [`Backend::call_batch`] once it may send.
    pub(super) async fn call_batch_now(
        &self,
        calls: &[BatchCall],
        timeout: Duration,
    ) -> Result<BatchReplies, BatchFailure> {
        let _in_flight = self.load.start();
        let started = Instant::now();
        let res = self.send_batch(calls, timeout).await;
        let rtt = started.elapsed();
        self.series.duration.observe(rtt.as_secs_f64());
        self.series.batch_calls.observe(calls.len() as f64);
        match res {
            // Not the backend's doing: the gateway's memory, or the request.
            Err(Some(error))
                if error.client_caused() || matches!(error, UpstreamError::MemoryBudget) =>
            {
                self.series.failed(error.outcome());
                Err(BatchFailure::Failed(error, false))
            }
            Err(Some(error)) => {
                self.series.failed(error.outcome());
                self.load.observe(rtt.max(timeout));
                let n = self.consecutive_failures.fetch_add(1, Ordering::Relaxed) + 1;
                let ejected_now =
                    n >= self.eject_after && !self.ejected.swap(true, Ordering::Relaxed);
                Err(BatchFailure::Failed(error, ejected_now))
            }
            other => {
                // The node answered: it is alive, whatever it thought of the batch.
                self.load.observe(rtt);
                self.consecutive_failures.store(0, Ordering::Relaxed);
                let Ok(replies) = other else {
                    self.series.batch_refused.inc();
                    return Err(BatchFailure::Refused);
                };
                for reply in &replies {
                    match reply {
                        Ok(r) if r.is_error() => self.series.rpc_error.inc(),
                        Ok(_) => self.series.ok.inc(),
                        Err(e) => self.series.failed(e.outcome()),
                    }
                }
                Ok(replies)
            }
        }
    }

    /// The exchange: `Err(None)` when the backend refused the batch as such.
    async fn send_batch(
        &self,
        calls: &[BatchCall],
        timeout: Duration,
    ) -> Result<BatchReplies, Option<UpstreamError>> {
        let body = batch_body(calls);
        if body.len() > self.max_request_bytes {
            // Too large for the node as one request: the calls go alone.
            return Err(None);
        }
        let exchange = async {
            let (status, body, mut held) = self.post(body).await.map_err(Some)?;
            if !status.is_success() {
                // 413, 400, 405: the batch as such, not its calls.
                return Err(None);
            }
            split_answers(&body, calls.len(), &mut held).ok_or(None)
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .unwrap_or(Err(Some(UpstreamError::Timeout(timeout))))
    }
}

/// JSON-RPC error codes with which nodes and providers say, inside a batch,
/// that they failed a call rather than answered it: -32005 and 429 (a rate
/// or capacity limit), -32002 (geth: request timed out). A single call would
/// have got an HTTP 429 or a timeout, which the router retries elsewhere;
/// within a batch it is the call's own answer, so it is turned back into
/// that failure here. Any other error (a revert, a bad param) is an answer.
const FAILED_CALL_CODES: [i64; 3] = [-32005, 429, -32002];

/// `reply`, or the failure it stands for (see [`FAILED_CALL_CODES`]).
pub fn entry_failure(reply: Reply, timeout: Duration) -> Result<Reply, UpstreamError> {
    #[derive(Deserialize)]
    struct Code {
        code: Option<i64>,
    }
    if !reply.is_error() {
        return Ok(reply);
    }
    match serde_json::from_slice::<Code>(reply.raw()) {
        Ok(Code { code: Some(-32002) }) => Err(UpstreamError::Timeout(timeout)),
        Ok(Code { code: Some(code) }) if FAILED_CALL_CODES.contains(&code) => {
            Err(UpstreamError::Status(429))
        }
        _ => Ok(reply),
    }
}

/// `[{"jsonrpc":"2.0","id":0,...},{"jsonrpc":"2.0","id":1,...}]`.
fn batch_body(calls: &[BatchCall]) -> Bytes {
    let len: usize = calls.iter().map(|c| c.tail.len() + 32).sum();
    let mut out = Vec::with_capacity(len + 2);
    out.push(b'[');
    for (i, call) in calls.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"id\":");
        out.extend_from_slice(crate::upstream::lean::decimal(i as u64, &mut [0u8; 20]));
        out.extend_from_slice(&call.tail);
    }
    out.push(b']');
    out.into()
}

/// The answers of a batch of `n` calls, each as a reply sliced out of
/// `body`, by id, each holding its length's share of `held` (the budget
/// `body` was read against); `None` when `body` is not an array.
fn split_answers(body: &Bytes, n: usize, held: &mut Permit) -> Option<BatchReplies> {
    #[derive(Deserialize)]
    struct WireId {
        id: Option<u64>,
    }
    let answers: Vec<&RawValue> = serde_json::from_slice(body).ok()?;
    let mut replies: BatchReplies = (0..n).map(|_| Err(UpstreamError::BadReply)).collect();
    let mut seen = vec![false; n];
    for answer in answers {
        let text = answer.get();
        let Ok(WireId { id: Some(id) }) = serde_json::from_str::<WireId>(text) else {
            continue;
        };
        let Some(i) = usize::try_from(id).ok().filter(|&i| i < n && !seen[i]) else {
            continue;
        };
        seen[i] = true;
        let start = text.as_ptr() as usize - body.as_ptr() as usize;
        replies[i] = Reply::from_body(body.slice(start..start + text.len()))
            .map(|r| r.holding(held.split_off(text.len())))
            .ok_or(UpstreamError::BadReply);
    }
    Some(replies)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_body_is_an_array_with_our_ids() {
        let calls = [
            BatchCall::new("eth_getBalance", Some(r#"["0xab","0x5"]"#)),
            BatchCall::new("eth_chainId", None),
        ];
        let v: serde_json::Value = serde_json::from_slice(&batch_body(&calls)).unwrap();
        assert_eq!(v[0]["id"], 0);
        assert_eq!(v[0]["method"], "eth_getBalance");
        assert_eq!(v[0]["params"][1], "0x5");
        assert_eq!(v[1]["id"], 1);
        assert!(v[1].get("params").is_none());
    }

    #[test]
    fn answers_map_back_by_id_whatever_their_order() {
        let body = Bytes::from_static(
            br#"[{"jsonrpc":"2.0","id":2,"result":"0x2"},{"id":0,"error":{"code":-32000,"message":"no"}},{"id":9,"result":1},{"id":0,"result":"dup"}]"#,
        );
        let mut held = crate::memory::answers().carry(body.len());
        let replies = split_answers(&body, 3, &mut held).unwrap();
        // Each answer kept took its own length of the body's permit along.
        let kept = r#"{"jsonrpc":"2.0","id":2,"result":"0x2"}"#.len()
            + r#"{"id":0,"error":{"code":-32000,"message":"no"}}"#.len();
        assert_eq!(held.bytes(), body.len() - kept);
        let first = replies[0].as_ref().unwrap();
        assert!(first.is_error());
        assert_eq!(first.error_message().as_deref(), Some("no"));
        assert!(matches!(replies[1], Err(UpstreamError::BadReply)));
        assert_eq!(replies[2].as_ref().unwrap().raw(), br#""0x2""#);
        // An error object for the whole batch, or no JSON: not an array.
        let whole = Bytes::from_static(br#"{"id":null,"error":{"code":-32600,"message":"batch"}}"#);
        assert!(split_answers(&whole, 3, &mut held).is_none());
        assert!(split_answers(&Bytes::from_static(b"<html>"), 3, &mut held).is_none());
    }

    #[test]
    fn failed_calls_inside_a_batch_are_told_from_answers() {
        let reply = |raw: &'static str| {
            let body = format!(r#"{{"jsonrpc":"2.0","id":0,"error":{raw}}}"#);
            Reply::from_body(bytes::Bytes::from(body)).expect("a JSON-RPC reply")
        };
        let t = Duration::from_secs(2);
        assert!(matches!(
            entry_failure(reply(r#"{"code":-32005,"message":"limit"}"#), t),
            Err(UpstreamError::Status(429))
        ));
        assert!(matches!(
            entry_failure(reply(r#"{"code":-32002,"message":"request timed out"}"#), t),
            Err(UpstreamError::Timeout(_))
        ));
        let revert = entry_failure(reply(r#"{"code":3,"message":"execution reverted"}"#), t);
        assert!(revert.unwrap().is_error());
        let ok = Reply::result_from(bytes::Bytes::from_static(b"\"0x1\""));
        assert!(entry_failure(ok, t).is_ok());
    }
}
