//! Answering the calls of one message, for both listeners: an HTTP body and
//! a WebSocket text message are the same JSON-RPC payload, judged and
//! answered the same way.
//!
//! Each entry is admitted by the client policy (a batch in order, before any
//! is routed, so it costs the sum of its entries, see [`batch`]); an invalid
//! entry and a body that does not parse are charged too (`charge_refused`),
//! and answered as limited once the caller's budget is spent; then
//! answered through the [`pipeline`] (pinning, cache, router), and the
//! answers are assembled from raw parts with the caller's id byte for byte.
//! `eth_subscribe` and `eth_unsubscribe` are answered by the connection's
//! subscription [`Session`] when there is one (WebSocket), and refused with
//! a clear error when there is none (HTTP).
//!
//! Each call is counted in `rpcgate_requests_total` by how it ended. A call
//! that fails or is refused does so in one place, [`Ctx::fail`]: what the
//! client sees comes from [`rescue`], it is counted by the rescued outcome,
//! and it gets one log line carrying the [`RequestId`] of its message.
//!
//! Each routed answer takes its bytes from the process's answer budget
//! ([`memory::answers`]) before it is returned, and holds them inside its
//! `Bytes` until the listener has written it; when the budget stays full
//! for `server.memory_wait` the call gets -32005 with its id instead.
//!
//! A panic is contained here (see [`panics`]): a call's pipeline that panics
//! is answered with -32603 and the call's id, the rest of its batch as
//! usual; a panic anywhere else in the message gets one -32603 (HTTP 500).

mod batch;
pub(crate) mod call_error;
pub(crate) mod heavy;
mod local;
pub mod panics;
pub(crate) mod pipeline;
pub(crate) mod request_id;
pub(crate) mod rescue;
pub(crate) mod served;

use parking_lot::Mutex;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::StatusCode;

use crate::cache::CacheUse;
use crate::control::NetworkTable;
use crate::eth::methods::{Method, Resolved};
use crate::jsonrpc::{self, error_response, Call, Entry, Id, Payload, Reply, ReplyKind};
use crate::memory;
use crate::metrics::Outcome;
use crate::network::Network;
use crate::policy::{Caller, ClientPolicy, Refusal};
use crate::router::batch::Batcher;
use crate::subscriptions::{is_subscription_method, Session, SubscriptionError};
use crate::upstream::NetworkView;
use call_error::CallError;
use panics::{Panicked, Stage};
use request_id::RequestId;
use rescue::{Headers, Rescued};

/// What a message is answered with.
pub(super) struct Answered {
    /// The HTTP status when the message came over HTTP.
    pub status: StatusCode,
    /// `None` when every call was a notification.
    pub body: Option<Bytes>,
    /// Headers the HTTP response carries (`Retry-After` when every call
    /// was refused by a rate limit).
    pub headers: Headers,
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
    routes: &NetworkTable,
    network: &Network,
    caller: &Caller<'_>,
    body: &[u8],
    session: Option<&Session>,
    max_answer: Option<usize>,
    request_id: &RequestId,
) -> Answered {
    let view = network.view();
    let subscribed = Mutex::new(Vec::new());
    let ctx = Ctx {
        routes,
        network,
        view: &view,
        session,
        subscribed: &subscribed,
        client: caller.name(),
        caller,
        max_logs_blocks: caller.max_logs_block_range(),
        max_answer: max_answer.unwrap_or(usize::MAX),
        request_id,
    };
    // Boxed here, and each call's pipeline below: a future held inline is
    // copied whole whenever its parent moves (hyper moves the request's
    // future into place), and these are the large ones.
    let answered = panics::guarded(
        Stage::Message,
        &network.metrics,
        Box::pin(ctx.answer_calls(body)),
    )
    .await;
    match answered {
        Ok(answered) => Answered {
            subscribed: subscribed.into_inner(),
            ..answered
        },
        Err(Panicked(why)) => {
            request_id.mark_failed();
            tracing::error!(request_id = %request_id, network = %network.config.name, client = caller.name(), panic = %why, "a panic was caught while answering a message; answered -32603");
            let rescued = rescue::rescue(&CallError::Panicked(why));
            Answered {
                status: rescued.status,
                body: Some(memory::charged_answer(error_response(
                    Id::NULL,
                    &rescued.object,
                ))),
                headers: rescued.headers,
                subscribed: Vec::new(),
                served: Vec::new(),
            }
        }
    }
}

/// The policy's verdict on one entry, and the entry's method as the method
/// table knows it (looked up once, here, for every step after).
struct Admitted {
    known: Option<(usize, &'static Method)>,
    verdict: Result<(), Refusal>,
}

/// Judges one entry; an invalid one is charged as a refusal (and answered
/// as invalid while the caller's budget lasts).
async fn admit(policy: &ClientPolicy, caller: &Caller<'_>, entry: &Entry<'_>) -> Admitted {
    match entry {
        Ok(call) => {
            panics::injected(Stage::Message, &call.method);
            let method = Resolved::of(&call.method);
            Admitted {
                known: method.known,
                verdict: policy.admit_call(caller, method, call.params).await,
            }
        }
        Err(_) => Admitted {
            known: None,
            verdict: policy.charge_refused(caller).await,
        },
    }
}

/// Judges the entries of a batch in order, together: shared budgets are
/// charged for all of them in one Redis round trip (invalid entries cost as
/// refusals, and are answered as invalid while the budget lasts).
async fn admit_batch(
    policy: &ClientPolicy,
    caller: &Caller<'_>,
    entries: &[Entry<'_>],
) -> Vec<Admitted> {
    let calls: Vec<Option<(Resolved<'_>, _)>> = entries
        .iter()
        .map(|entry| {
            entry.as_ref().ok().map(|call| {
                panics::injected(Stage::Message, &call.method);
                (Resolved::of(&call.method), call.params)
            })
        })
        .collect();
    let verdicts = policy.admit_all(caller, &calls).await;
    calls
        .iter()
        .zip(verdicts)
        .map(|(call, verdict)| Admitted {
            known: call.as_ref().and_then(|(m, _)| m.known),
            verdict,
        })
        .collect()
}

/// What every call of one message shares, built once per message.
struct Ctx<'a> {
    routes: &'a NetworkTable,
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
    /// The largest answer the message's connection may take (a WebSocket's
    /// queue share); a batch's answers together, too.
    max_answer: usize,
    request_id: &'a RequestId,
}

/// One call's answer.
struct Answer {
    /// The HTTP status when the call was alone in its message.
    status: StatusCode,
    /// `None` for a notification.
    body: Option<Bytes>,
    headers: Headers,
    by: ServedBy,
}

/// The call a failure is for.
struct Failing<'c> {
    method: Resolved<'c>,
    /// The id to answer with; `None` for a notification, which gets no answer.
    id: Option<Id<'c>>,
    /// How long the call ran, when it reached the pipeline.
    elapsed: Option<Duration>,
}

impl<'c> Failing<'c> {
    fn call(call: &'c Call<'_>, method: Resolved<'c>, elapsed: Option<Duration>) -> Self {
        Failing {
            method,
            id: call.id,
            elapsed,
        }
    }
}

impl Ctx<'_> {
    async fn answer_calls(&self, body: &[u8]) -> Answered {
        let limits = &self.routes.server;
        let parsed = jsonrpc::parse(
            body,
            limits.max_batch_len,
            limits.max_method_len,
            limits.max_params_depth,
        );
        let (status, body, headers, served) = match parsed {
            Err(e) => {
                let message = Failing {
                    method: Resolved::of(""),
                    id: Some(Id::NULL),
                    elapsed: None,
                };
                // Garbage costs budget too: past it, the caller is told to wait.
                match self.routes.policy.charge_refused(self.caller).await {
                    Ok(()) => {
                        let failed = self.fail(message, &CallError::Payload(e));
                        (StatusCode::OK, failed.body, failed.headers, Vec::new())
                    }
                    Err(refusal) => {
                        let failed = self.fail(message, &refusal.into());
                        (failed.status, failed.body, failed.headers, Vec::new())
                    }
                }
            }
            Ok(Payload::Single(entry)) => {
                let admitted = admit(&self.routes.policy, self.caller, &entry).await;
                let answer = self.answer(entry, admitted, None).await;
                let served = if limits.expose_upstream_headers {
                    vec![answer.by]
                } else {
                    Vec::new()
                };
                (answer.status, answer.body, answer.headers, served)
            }
            Ok(Payload::Batch(entries)) => self.answer_batch(entries).await,
        };
        Answered {
            status,
            body,
            headers,
            subscribed: Vec::new(),
            served,
        }
    }

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

    /// Fails one call: what the client sees comes from [`rescue`]; the call
    /// is counted by the rescued outcome and gets one log line.
    fn fail(&self, call: Failing<'_>, error: &CallError) -> Answer {
        let rescued = rescue::rescue(error);
        // Refused before it was routed: not timed.
        let elapsed = match error {
            CallError::Heavy(_) | CallError::Params(_) => None,
            _ => call.elapsed,
        };
        // An entry dropped for the batch's budget after it ran was counted
        // by how the call itself ended.
        if !matches!(error, CallError::BatchOverBudget { ran: true, .. }) {
            self.count(call.method, rescued.outcome, elapsed);
        }
        self.log_failure(call.method.name, error, &rescued);
        Answer {
            status: rescued.status,
            body: call
                .id
                .map(|id| memory::charged_answer(error_response(id, &rescued.object))),
            headers: rescued.headers,
            by: ServedBy::default(),
        }
    }

    /// One log line for a call that failed (warn; error for a panic) or was
    /// refused (info, at most `log.refusals_per_second`; see `crate::logs`).
    fn log_failure(&self, method: &str, error: &CallError, rescued: &Rescued) {
        self.request_id.mark_failed();
        let method = bounded(method);
        let network = &self.network.config.name;
        let (request_id, client, code) = (self.request_id, self.client, rescued.object.code);
        let label = rescued.outcome.label();
        let message = rescued.detail.as_deref().unwrap_or(&rescued.object.message);
        if let CallError::Panicked(why) = error {
            tracing::error!(request_id = %request_id, network = %network, client, method, panic = %why, "a panic was caught while answering a call; answered -32603");
        } else if rescued.outcome == Outcome::Failed {
            tracing::warn!(request_id = %request_id, network = %network, client, method, outcome = label, code, error = %message, "request failed");
        } else if crate::logs::refusal_line() {
            // Refused (blocked, limited, invalid): the caller's doing, at a bounded rate.
            tracing::info!(request_id = %request_id, network = %network, client, method, outcome = label, code, error = %message, "request failed");
        }
    }

    /// One entry: no body for a notification; `batch` collects the first
    /// attempts of a client batch's entries (`router::batch`).
    async fn answer(
        &self,
        entry: Entry<'_>,
        admitted: Admitted,
        batch: Option<&Batcher>,
    ) -> Answer {
        let call = match entry {
            Ok(call) => call,
            Err(invalid) => {
                let entry = Failing {
                    method: Resolved::of(""),
                    id: Some(invalid.id),
                    elapsed: None,
                };
                return match admitted.verdict {
                    Ok(()) => self.fail(entry, &CallError::Invalid(invalid.reason)),
                    Err(refusal) => self.fail(entry, &refusal.into()),
                };
            }
        };
        let method = Resolved {
            name: &call.method,
            known: admitted.known,
        };
        if let Err(refusal) = admitted.verdict {
            return self.fail(Failing::call(&call, method, None), &refusal.into());
        }
        if is_subscription_method(&call.method) {
            return self.subscription(&call, method);
        }
        let started = Instant::now();
        let routed = panics::guarded(
            Stage::Call,
            &self.network.metrics,
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
            Ok(Ok(routed)) => routed,
            Ok(Err(e)) => return self.fail(Failing::call(&call, method, elapsed), &e),
            Err(Panicked(why)) => {
                let failing = Failing::call(&call, method, elapsed);
                return self.fail(failing, &CallError::Panicked(why));
            }
        };
        let pipeline::Routed { mut reply, cache } = routed;
        let outcome = match reply.kind {
            ReplyKind::Result => Outcome::Ok,
            ReplyKind::Error => Outcome::RpcError,
        };
        if !call.is_notification() && answer_len(&call, &reply) > self.max_answer {
            let limit = self.max_answer;
            let failing = Failing::call(&call, method, elapsed);
            return self.fail(failing, &CallError::AnswerOverShare { limit });
        }
        // The answer's bytes are reserved before they are built: a call
        // waiting for budget holds only the reply.
        let Ok(permit) = self.answer_permit(&call, &reply).await else {
            return self.fail(
                Failing::call(&call, method, elapsed),
                &CallError::MemoryBusy,
            );
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
        let mut by = ServedBy::default();
        if let Some(origin) = origin {
            by.upstream = Some(origin.backend);
            if cache != CacheUse::Coalesced {
                by.attempts = origin.attempts;
            }
        }
        by.cache = Some(cache);
        Answer {
            status: StatusCode::OK,
            body: (!call.is_notification()).then_some(body),
            headers: Headers::default(),
            by,
        }
    }

    /// The answer budget's bytes for the answer to `call` built from
    /// `reply` (at least its length), waiting for them at most
    /// `server.memory_wait`; a notification's answer is never sent and
    /// takes none.
    async fn answer_permit(
        &self,
        call: &Call<'_>,
        reply: &Reply,
    ) -> Result<Option<memory::Permit>, ()> {
        if call.is_notification() {
            return Ok(None);
        }
        match memory::answers().reserve(answer_len(call, reply)).await {
            Ok(permit) => Ok(Some(permit)),
            Err(_) => Err(()),
        }
    }

    /// `eth_subscribe` / `eth_unsubscribe`: a subscription the client cannot
    /// learn the id of (a notification) is not created.
    fn subscription(&self, call: &Call<'_>, method: Resolved<'_>) -> Answer {
        let mut answer = Answer {
            status: StatusCode::OK,
            body: None,
            headers: Headers::default(),
            by: ServedBy::default(),
        };
        if call.is_notification() {
            return answer;
        }
        let outcome = match self.session {
            None => Err(SubscriptionError::NeedsWebSocket),
            Some(session) => session.call(&call.method, call.params),
        };
        match outcome {
            Ok(created) => {
                self.count(method, Outcome::Ok, None);
                if let Some(id) = created.created {
                    self.subscribed.lock().push(id);
                }
                let body = jsonrpc::result_response(call.reply_id(), &created.result);
                answer.body = Some(memory::charged_answer(body));
                answer
            }
            Err(e) => self.fail(Failing::call(call, method, None), &e.into()),
        }
    }
}

/// What an answer adds around the id and the reply's member (at most):
/// `{"jsonrpc":"2.0","id":,"result":}`.
const ANSWER_FRAME: usize = 40;

/// The size of the answer to `call` built from `reply`, at most.
fn answer_len(call: &Call<'_>, reply: &Reply) -> usize {
    ANSWER_FRAME + call.reply_id().raw().len() + reply.raw().len()
}

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
