//! Answering the calls of one message, for both listeners: an HTTP body and
//! a WebSocket text message are the same JSON-RPC payload, judged and
//! answered the same way.
//!
//! Each entry is admitted by the client policy (a batch in order, before any
//! is routed, so it costs the sum of its entries), then answered through the
//! [`pipeline`] (pinning, cache, router), and the answers are assembled from
//! raw parts with the caller's id byte for byte. The entries of a batch
//! that go to a backend are sent to it together, one request per backend
//! chosen (`router::batch`; `upstream_batch_max` a request at most). `eth_subscribe` and `eth_unsubscribe` are answered by the
//! connection's subscription [`Session`] when there is one (WebSocket), and
//! refused with a clear error when there is none (HTTP).
//!
//! Each call is counted in `rpcgate_requests_total` by how it ended. A call
//! that fails or is refused gets one log line carrying the [`RequestId`] of
//! its message (the caller's `X-Request-Id` when it is short and plain, else
//! a random one); over HTTP the id also goes back in the response's
//! `X-Request-Id`. The id is only formatted when something fails.
//!
//! Each routed answer takes its bytes from the process's answer budget
//! ([`memory::answers`]) before it is returned, and holds them inside its
//! `Bytes` until the listener has written it; when the budget stays full
//! for `server.memory_wait` the call gets -32005 with its id instead. A
//! batch's answers are claimed against `server.max_batch_response_bytes`
//! one by one, atomically, as each entry finishes: an answer that would take
//! the sum past it is dropped and its entry gets -32005 with its id, so
//! however many entries run at once the sum never passes the bound.
//!
//! A panic is contained here (see [`panics`]): a call's pipeline that panics
//! is answered with -32603 and the call's id, the rest of its batch as
//! usual; a panic anywhere else in the message gets one -32603 (HTTP 500).

use parking_lot::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::future::join_all;
use http::{HeaderMap, HeaderValue, StatusCode};
use tokio::sync::Semaphore;

use super::heavy::Heavy;
use super::panics::{self, Panicked, Stage};
use super::pipeline::{self, CacheUse};
use super::rescue;
use super::Routes;
use crate::eth::methods::{Method, Resolved};
use crate::jsonrpc::{self, error_response, join_batch, Call, Entry, ErrorObject, Id, Payload};
use crate::memory;
use crate::metrics::Outcome;
use crate::network::Network;
use crate::policy::{Caller, ClientPolicy, Refusal};
use crate::router::batch::Batcher;
use crate::subscriptions::{is_subscription_method, Session, SubscriptionError};
use crate::upstream::{NetworkView, Reply, ReplyKind};

/// What a message is answered with.
pub(super) struct Answered {
    /// The HTTP status when the message came over HTTP.
    pub status: StatusCode,
    /// `None` when every call was a notification.
    pub body: Option<Bytes>,
    /// Set when every call was refused by a rate limit.
    pub retry_after: Option<Duration>,
    /// Subscriptions this message created, to be activated once the answer
    /// naming them is on its way.
    pub subscribed: Vec<String>,
    /// Where each call's answer came from, in the message's order; only
    /// collected when `server.expose_upstream_headers` is on.
    pub served: Vec<ServedBy>,
}

/// Where one call's answer came from (see `super::served`).
#[derive(Debug, Clone, Default)]
pub(super) struct ServedBy {
    /// The backend whose reply it is (an identical call's, when coalesced).
    pub upstream: Option<Arc<str>>,
    /// `None` when the call was not routed (refused, invalid, a subscription).
    pub cache: Option<CacheUse>,
    /// Backend calls this request made for it (0 for a hit or a coalesced call).
    pub attempts: u32,
}

/// Parses `body` and answers every call in it on `network`. A panic is
/// answered too (see [`panics`]): per call inside, as a whole here.
pub(super) async fn answer_message(
    routes: &Routes,
    network: &Network,
    caller: &Caller<'_>,
    body: &[u8],
    session: Option<&Session>,
    request_id: &RequestId,
) -> Answered {
    let answered = panics::guarded(
        Stage::Message,
        // Boxed here, and each call's pipeline below: a future held inline
        // is copied whole whenever its parent moves (hyper moves the
        // request's future into place), and these are the large ones.
        Box::pin(answer_calls(
            routes, network, caller, body, session, request_id,
        )),
    )
    .await;
    answered.unwrap_or_else(|Panicked(why)| {
        request_id.mark_failed();
        tracing::error!(request_id = %request_id, network = %network.config.name, client = caller.name(), panic = %why, "a panic was caught while answering a message; answered -32603");
        let (object, status) = rescue::panicked();
        Answered {
            status,
            body: Some(error_response(Id::NULL, &object)),
            retry_after: None,
            subscribed: Vec::new(),
            served: Vec::new(),
        }
    })
}

async fn answer_calls(
    routes: &Routes,
    network: &Network,
    caller: &Caller<'_>,
    body: &[u8],
    session: Option<&Session>,
    request_id: &RequestId,
) -> Answered {
    let policy = &routes.policy;
    let view = network.view();
    let subscribed = Mutex::new(Vec::new());
    let ctx = Ctx {
        network,
        view: &view,
        session,
        subscribed: &subscribed,
        client: caller.name(),
        caller,
        max_logs_blocks: caller.max_logs_block_range(),
        request_id,
    };
    let mut retry_after = None;
    let expose = routes.server.expose_upstream_headers;
    let mut served = Vec::new();
    let (status, body) = match jsonrpc::parse(
        body,
        routes.server.max_batch_len,
        routes.server.max_method_len,
        routes.server.max_params_depth,
    ) {
        Err(e) => {
            let object = rescue::payload(&e);
            ctx.count("", Outcome::Invalid, None);
            ctx.log_failure("", Outcome::Invalid, &object);
            (StatusCode::OK, Some(error_response(Id::NULL, &object)))
        }
        Ok(Payload::Single(entry)) => {
            let admitted = admit(policy, caller, &entry).await;
            if let Err(refusal) = &admitted.verdict {
                retry_after = refusal.retry_after();
            }
            let (status, body, by) = ctx.answer(entry, admitted, None).await;
            if expose {
                served.push(by);
            }
            (status, body)
        }
        Ok(Payload::Batch(entries)) => {
            // Admitted in order before any is routed: a batch costs the sum of
            // its entries, and which entries pass does not depend on timing.
            let mut verdicts = Vec::with_capacity(entries.len());
            for entry in &entries {
                verdicts.push(admit(policy, caller, entry).await);
            }
            let limited = verdicts
                .iter()
                .filter_map(|v| v.verdict.as_ref().err()?.retry_after());
            let all_limited = verdicts.iter().all(|v| {
                v.verdict
                    .as_ref()
                    .err()
                    .and_then(Refusal::retry_after)
                    .is_some()
            });
            if all_limited {
                retry_after = limited.max();
            }
            // Bounded concurrency and a size budget: a batch of heavy calls cannot
            // hold more than a few large replies at once. Entries sent upstream
            // together (`router::batch`) come back in one reply bounded by
            // `max_response_bytes`, so a full upstream batch may be in flight.
            let used = AtomicUsize::new(0);
            let budget = routes.server.max_batch_response_bytes;
            let batcher = Batcher::for_batch(network.config.upstream_batch_max, entries.len());
            let concurrency = match &batcher {
                Some(_) => routes
                    .server
                    .batch_concurrency
                    .max(network.config.upstream_batch_max),
                None => routes.server.batch_concurrency,
            };
            let slots = Semaphore::new(concurrency);
            let batch = batcher.as_ref();
            let entries = join_all(entries.into_iter().zip(verdicts).map(
                |(entry, admitted)| async {
                    let _slot = slots
                        .acquire()
                        .await
                        .expect("the semaphore is never closed");
                    ctx.batch_entry(entry, admitted, &used, budget, batch).await
                },
            ));
            let answers = match batch {
                Some(batcher) => batcher.drive(entries).await,
                None => entries.await,
            };
            let mut parts = Vec::with_capacity(answers.len());
            for (answer, by) in answers {
                parts.extend(answer);
                if expose {
                    served.push(by);
                }
            }
            // A batch of notifications only gets no answer at all; a batch
            // refused whole by rate limits is a 429.
            let status = if all_limited {
                StatusCode::TOO_MANY_REQUESTS
            } else {
                StatusCode::OK
            };
            let body = (!parts.is_empty()).then(|| {
                let joined = join_batch(&parts);
                // Taken before the parts' permits are freed.
                let carried = memory::answers().carry(joined.len());
                drop(parts);
                memory::hold(joined, carried)
            });
            (status, body)
        }
    };
    Answered {
        status,
        body,
        retry_after,
        subscribed: subscribed.into_inner(),
        served,
    }
}

/// The policy's verdict on one entry, and the entry's method as the method
/// table knows it (looked up once, here, for every step after).
struct Admitted {
    known: Option<(usize, &'static Method)>,
    verdict: Result<(), Refusal>,
}

/// Judges one entry (invalid entries are answered as such).
async fn admit(policy: &ClientPolicy, caller: &Caller<'_>, entry: &Entry<'_>) -> Admitted {
    match entry {
        Ok(call) => {
            panics::injected(Stage::Message, &call.method);
            let method = Resolved::of(&call.method);
            Admitted {
                known: method.known,
                verdict: policy.admit(caller, method).await,
            }
        }
        Err(_) => Admitted {
            known: None,
            verdict: Ok(()),
        },
    }
}

/// The header a request id comes and goes in.
pub(super) const X_REQUEST_ID: http::HeaderName = http::HeaderName::from_static("x-request-id");

/// The id a failed request is logged and answered with.
pub(super) struct RequestId {
    /// The caller's own id, when it is short and made of plain characters.
    given: Option<HeaderValue>,
    random: u64,
    failed: AtomicBool,
}

impl RequestId {
    /// The caller's `X-Request-Id` when it is plain, else a random one.
    pub(super) fn of(headers: &HeaderMap) -> RequestId {
        let plain = |v: &&HeaderValue| {
            let b = v.as_bytes();
            !b.is_empty()
                && b.len() <= 64
                && b.iter()
                    .all(|c| c.is_ascii_alphanumeric() || b"-_.:".contains(c))
        };
        RequestId {
            given: headers.get(&X_REQUEST_ID).filter(plain).cloned(),
            ..RequestId::random()
        }
    }

    /// A random id (a WebSocket message).
    pub(super) fn random() -> RequestId {
        RequestId {
            given: None,
            random: fastrand::u64(..),
            failed: AtomicBool::new(false),
        }
    }

    /// Whether a call of the request failed or was refused.
    pub(super) fn has_failed(&self) -> bool {
        self.failed.load(Ordering::Relaxed)
    }

    pub(super) fn mark_failed(&self) {
        self.failed.store(true, Ordering::Relaxed);
    }
}

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.given.as_ref().and_then(|v| v.to_str().ok()) {
            Some(given) => f.write_str(given),
            None => write!(f, "{:016x}", self.random),
        }
    }
}

/// What every call of one message shares.
struct Ctx<'a> {
    network: &'a Network,
    view: &'a NetworkView,
    session: Option<&'a Session>,
    subscribed: &'a Mutex<Vec<String>>,
    /// The configured client name, or `anonymous`.
    client: &'a str,
    /// The caller; its bucket (`Caller::bucket`, who its filters count
    /// against) is a formatted string, made only for the calls that ask.
    caller: &'a Caller<'a>,
    /// The caller's own `eth_getLogs` range bound, when its tier has one.
    max_logs_blocks: Option<u64>,
    request_id: &'a RequestId,
}

impl Ctx<'_> {
    fn count<'m>(
        &self,
        method: impl Into<Resolved<'m>>,
        outcome: Outcome,
        elapsed: Option<Duration>,
    ) {
        self.network
            .series
            .call(method, self.client, outcome, elapsed);
    }

    /// One log line for a call that failed (warn) or was refused (info, at
    /// most `log.refusals_per_second`; see `crate::logs`).
    fn log_failure(&self, method: &str, outcome: Outcome, error: &ErrorObject) {
        self.request_id.mark_failed();
        let method = bounded(method);
        let network = &self.network.config.name;
        let (request_id, client, code) = (self.request_id, self.client, error.code);
        let label = outcome.label();
        if outcome == Outcome::Failed {
            tracing::warn!(request_id = %request_id, network = %network, client, method, outcome = label, code, error = %error.message, "request failed");
        } else if crate::logs::refusal_line() {
            // Refused (blocked, limited, invalid): the caller's doing, at a bounded rate.
            tracing::info!(request_id = %request_id, network = %network, client, method, outcome = label, code, error = %error.message, "request failed");
        }
    }

    /// One batch entry. Its answer is claimed against the batch's `budget`
    /// bytes (`used` so far) atomically once it is known: an answer that
    /// does not fit is dropped and the entry gets -32005 instead (it was
    /// counted by how the call itself ended). Once the budget is spent, the
    /// entries not yet started are refused without running.
    async fn batch_entry(
        &self,
        entry: Entry<'_>,
        admitted: Admitted,
        used: &AtomicUsize,
        budget: usize,
        batch: Option<&Batcher>,
    ) -> (Option<Bytes>, ServedBy) {
        let (method, id) = match &entry {
            Ok(call) => (call.method.clone(), call.id.map(|_| call.reply_id())),
            Err(invalid) => (Default::default(), Some(invalid.id)),
        };
        let object = || rescue::batch_over_budget(budget);
        if used.load(Ordering::Acquire) >= budget {
            let object = object();
            self.count(method.as_ref(), Outcome::Limited, None);
            self.log_failure(&method, Outcome::Limited, &object);
            let answer = id.map(|id| error_response(id, &object));
            return (answer, ServedBy::default());
        }
        let (_, answer, by) = self.answer(entry, admitted, batch).await;
        let Some(answer) = answer else {
            return (None, by);
        };
        let claimed = used.fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
            u.checked_add(answer.len()).filter(|&sum| sum <= budget)
        });
        if claimed.is_ok() {
            return (Some(answer), by);
        }
        drop(answer);
        let object = object();
        self.log_failure(&method, Outcome::Limited, &object);
        let answer = id.map(|id| error_response(id, &object));
        (answer, ServedBy::default())
    }

    /// One entry: `None` for a notification; `batch` collects the first
    /// attempts of a client batch's entries (`router::batch`).
    async fn answer(
        &self,
        entry: Entry<'_>,
        admitted: Admitted,
        batch: Option<&Batcher>,
    ) -> (StatusCode, Option<Bytes>, ServedBy) {
        let call = match entry {
            Ok(call) => call,
            Err(invalid) => {
                let object = rescue::invalid(&invalid);
                self.count("", Outcome::Invalid, None);
                self.log_failure("", Outcome::Invalid, &object);
                return (
                    StatusCode::OK,
                    Some(error_response(invalid.id, &object)),
                    ServedBy::default(),
                );
            }
        };
        let method = Resolved {
            name: &call.method,
            known: admitted.known,
        };
        if let Err(refusal) = admitted.verdict {
            let (object, status) = rescue::policy(&refusal);
            let outcome = match refusal {
                Refusal::MethodBlocked(_) => Outcome::Blocked,
                _ => Outcome::Limited,
            };
            self.count(method, outcome, None);
            self.log_failure(&call.method, outcome, &object);
            return (
                status,
                (!call.is_notification()).then(|| error_response(call.reply_id(), &object)),
                ServedBy::default(),
            );
        }
        if is_subscription_method(&call.method) {
            return (
                StatusCode::OK,
                self.subscription(&call),
                ServedBy::default(),
            );
        }
        let started = Instant::now();
        let routed = panics::guarded(
            Stage::Call,
            Box::pin(pipeline::run(
                self.network,
                self.view,
                &call,
                method,
                self.max_logs_blocks,
                &|| self.caller.bucket(),
                batch,
            )),
        )
        .await;
        let elapsed = Some(started.elapsed());
        let routed = match routed {
            Ok(routed) => routed,
            Err(Panicked(why)) => {
                let (object, status) = rescue::panicked();
                self.count(method, Outcome::Failed, elapsed);
                self.request_id.mark_failed();
                let method = bounded(&call.method);
                tracing::error!(request_id = %self.request_id, network = %self.network.config.name, client = self.client, method, panic = %why, "a panic was caught while answering a call; answered -32603");
                let body = error_response(call.reply_id(), &object);
                return (
                    status,
                    (!call.is_notification()).then_some(body),
                    ServedBy::default(),
                );
            }
        };
        let mut by = ServedBy::default();
        let (status, body) = match routed {
            Ok(pipeline::Routed { mut reply, cache }) => {
                let outcome = match reply.kind {
                    ReplyKind::Result => Outcome::Ok,
                    ReplyKind::Error => Outcome::RpcError,
                };
                // The answer's bytes are reserved before they are built: a
                // call waiting for budget holds only the reply.
                let permit = match self.answer_permit(&call, &reply).await {
                    Ok(permit) => permit,
                    Err(busy) => {
                        self.count(method, Outcome::Limited, elapsed);
                        self.log_failure(&call.method, Outcome::Limited, &busy);
                        let body = error_response(call.reply_id(), &busy);
                        let body = (!call.is_notification()).then_some(body);
                        return (StatusCode::SERVICE_UNAVAILABLE, body, by);
                    }
                };
                let body = reply_body(&call, &reply);
                let origin = reply.origin.take();
                drop(reply);
                let body = match permit {
                    Some(permit) => {
                        let permit = permit.shrunk_to(body.len());
                        memory::hold(body, permit)
                    }
                    None => body,
                };
                self.count(method, outcome, elapsed);
                if let Some(origin) = origin {
                    by.upstream = Some(origin.backend);
                    if cache != CacheUse::Coalesced {
                        by.attempts = origin.attempts;
                    }
                }
                by.cache = Some(cache);
                (StatusCode::OK, body)
            }
            Err(pipeline::CallError::Route(e)) => {
                let (object, status) = rescue::route(&e);
                self.count(method, Outcome::Failed, elapsed);
                let detailed = ErrorObject::new(object.code, e.to_string());
                self.log_failure(&call.method, Outcome::Failed, &detailed);
                (status, error_response(call.reply_id(), &object))
            }
            Err(pipeline::CallError::Filter(e)) => {
                let (object, status, outcome) = rescue::filter(&e);
                self.count(method, outcome, elapsed);
                let detailed = ErrorObject::new(object.code, e.to_string());
                self.log_failure(&call.method, outcome, &detailed);
                (status, error_response(call.reply_id(), &object))
            }
            Err(pipeline::CallError::Heavy(e)) => {
                let object = rescue::heavy(&e);
                let outcome = match e {
                    Heavy::OddFilterKey(_) => Outcome::Invalid,
                    Heavy::LogRange { .. } => Outcome::Limited,
                };
                self.count(method, outcome, None);
                self.log_failure(&call.method, outcome, &object);
                (StatusCode::OK, error_response(call.reply_id(), &object))
            }
        };
        (status, (!call.is_notification()).then_some(body), by)
    }

    /// The answer budget's bytes for the answer to `call` built from
    /// `reply` (at least its length), waiting for them at most
    /// `server.memory_wait`; a notification's answer is never sent and
    /// takes none.
    async fn answer_permit(
        &self,
        call: &Call<'_>,
        reply: &Reply,
    ) -> Result<Option<memory::Permit>, ErrorObject> {
        if call.is_notification() {
            return Ok(None);
        }
        let len = ANSWER_FRAME + call.reply_id().raw().len() + reply.raw().len();
        match memory::answers().reserve(len).await {
            Ok(permit) => Ok(Some(permit)),
            Err(_) => Err(rescue::memory_busy()),
        }
    }

    /// `eth_subscribe` / `eth_unsubscribe`: a subscription the client cannot
    /// learn the id of (a notification) is not created.
    fn subscription(&self, call: &Call<'_>) -> Option<Bytes> {
        if call.is_notification() {
            return None;
        }
        let outcome = match self.session {
            None => Err(SubscriptionError::NeedsWebSocket),
            Some(session) => session.call(&call.method, call.params),
        };
        Some(match outcome {
            Ok(answer) => {
                self.count(call.method.as_ref(), Outcome::Ok, None);
                if let Some(id) = answer.created {
                    self.subscribed.lock().push(id);
                }
                jsonrpc::result_response(call.reply_id(), &answer.result)
            }
            Err(e) => {
                let object = rescue::subscription(&e);
                let outcome = if e.is_limit() {
                    Outcome::Limited
                } else {
                    Outcome::Invalid
                };
                self.count(call.method.as_ref(), outcome, None);
                self.log_failure(&call.method, outcome, &object);
                error_response(call.reply_id(), &object)
            }
        })
    }
}

/// What an answer adds around the id and the reply's member (at most):
/// `{"jsonrpc":"2.0","id":,"result":}`.
const ANSWER_FRAME: usize = 40;

fn reply_body(call: &Call<'_>, reply: &Reply) -> Bytes {
    let member: &[u8] = match reply.kind {
        ReplyKind::Result => b"result",
        ReplyKind::Error => b"error",
    };
    jsonrpc::raw_member(call.reply_id(), member, reply.raw())
}

/// Method names come from clients: log a bounded form.
fn bounded(method: &str) -> &str {
    let end = method
        .char_indices()
        .nth(64)
        .map_or(method.len(), |(i, _)| i);
    &method[..end]
}
