//! Answering the calls of one message, for both listeners: an HTTP body and
//! a WebSocket text message are the same JSON-RPC payload, judged and
//! answered the same way.
//!
//! Each entry is admitted by the client policy (a batch in order, before any
//! is routed, so it costs the sum of its entries), then answered through the
//! router, and the answers are assembled from raw parts with the caller's id
//! byte for byte. `eth_subscribe` and `eth_unsubscribe` are answered by the
//! connection's subscription [`Session`] when there is one (WebSocket), and
//! refused with a clear error when there is none (HTTP).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::join_all;
use http::StatusCode;
use tokio::sync::Semaphore;

use super::rescue;
use super::Routes;
use crate::jsonrpc::{self, error_response, join_batch, Call, Entry, Id, Payload};
use crate::policy::{Caller, Policy, Refusal};
use crate::router;
use crate::subscriptions::{is_subscription_method, Session, SubscriptionError};
use crate::upstream::{Network, NetworkView, Reply, ReplyKind};

/// What a message is answered with.
pub struct Answered {
    /// The HTTP status when the message came over HTTP.
    pub status: StatusCode,
    /// `None` when every call was a notification.
    pub body: Option<Bytes>,
    /// Set when every call was refused by a rate limit.
    pub retry_after: Option<Duration>,
    /// Subscriptions this message created, to be activated once the answer
    /// naming them is on its way.
    pub subscribed: Vec<String>,
}

/// Parses `body` and answers every call in it on `network`.
pub async fn answer_message(
    routes: &Routes,
    network: &Network,
    caller: &Caller<'_>,
    body: &[u8],
    session: Option<&Session>,
) -> Answered {
    let policy = &routes.policy;
    let view = network.view();
    let subscribed = Mutex::new(Vec::new());
    let ctx = Ctx {
        network,
        view: &view,
        session,
        subscribed: &subscribed,
    };
    let mut retry_after = None;
    let (status, body) = match jsonrpc::parse(
        body,
        routes.limits.max_batch_len,
        routes.limits.max_method_len,
    ) {
        Err(e) => (
            StatusCode::OK,
            Some(error_response(Id::NULL, &rescue::payload(&e))),
        ),
        Ok(Payload::Single(entry)) => {
            let admitted = admit(policy, caller, &entry).await;
            if let Err(refusal) = &admitted {
                retry_after = refusal.retry_after();
            }
            ctx.answer(entry, admitted).await
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
                .filter_map(|v| v.as_ref().err()?.retry_after());
            let all_limited = verdicts
                .iter()
                .all(|v| v.as_ref().err().and_then(Refusal::retry_after).is_some());
            if all_limited {
                retry_after = limited.max();
            }
            // Bounded concurrency and a size budget: a batch of heavy calls cannot
            // hold more than a few large replies at once.
            let used = AtomicUsize::new(0);
            let budget = routes.limits.max_batch_response_bytes;
            let slots = Semaphore::new(routes.limits.batch_concurrency);
            let answers = join_all(entries.into_iter().zip(verdicts).map(
                |(entry, admitted)| async {
                    let _slot = slots
                        .acquire()
                        .await
                        .expect("the semaphore is never closed");
                    ctx.batch_entry(entry, admitted, &used, budget).await
                },
            ))
            .await;
            let parts: Vec<Bytes> = answers.into_iter().flatten().collect();
            // A batch of notifications only gets no answer at all; a batch
            // refused whole by rate limits is a 429.
            let status = if all_limited {
                StatusCode::TOO_MANY_REQUESTS
            } else {
                StatusCode::OK
            };
            (status, (!parts.is_empty()).then(|| join_batch(&parts)))
        }
    };
    Answered {
        status,
        body,
        retry_after,
        subscribed: subscribed.into_inner().unwrap_or_else(|e| e.into_inner()),
    }
}

/// The policy's verdict on one entry (invalid entries are answered as such).
async fn admit(policy: &Policy, caller: &Caller<'_>, entry: &Entry<'_>) -> Result<(), Refusal> {
    match entry {
        Ok(call) => policy.admit(caller, &call.method).await,
        Err(_) => Ok(()),
    }
}

/// What every call of one message shares.
struct Ctx<'a> {
    network: &'a Network,
    view: &'a NetworkView,
    session: Option<&'a Session>,
    subscribed: &'a Mutex<Vec<String>>,
}

impl Ctx<'_> {
    /// One batch entry, refused once the batch's answers are over `budget` bytes.
    async fn batch_entry(
        &self,
        entry: Entry<'_>,
        admitted: Result<(), Refusal>,
        used: &AtomicUsize,
        budget: usize,
    ) -> Option<Bytes> {
        if used.load(Ordering::Relaxed) > budget {
            let id = match &entry {
                Ok(call) if call.is_notification() => return None,
                Ok(call) => call.reply_id(),
                Err(invalid) => invalid.id,
            };
            return Some(error_response(id, &rescue::batch_over_budget(budget)));
        }
        let (_, answer) = self.answer(entry, admitted).await;
        if let Some(a) = &answer {
            used.fetch_add(a.len(), Ordering::Relaxed);
        }
        answer
    }

    /// One entry: `None` for a notification.
    async fn answer(
        &self,
        entry: Entry<'_>,
        admitted: Result<(), Refusal>,
    ) -> (StatusCode, Option<Bytes>) {
        let call = match entry {
            Ok(call) => call,
            Err(invalid) => {
                return (
                    StatusCode::OK,
                    Some(error_response(invalid.id, &rescue::invalid(&invalid))),
                )
            }
        };
        if let Err(refusal) = admitted {
            let (object, status) = rescue::policy(&refusal);
            return (
                status,
                (!call.is_notification()).then(|| error_response(call.reply_id(), &object)),
            );
        }
        if is_subscription_method(&call.method) {
            return (StatusCode::OK, self.subscription(&call));
        }
        let (status, body) = match router::route(self.network, self.view, &call).await {
            Ok(reply) => (StatusCode::OK, reply_body(&call, &reply)),
            Err(e) => {
                tracing::warn!(network = %self.network.config.name, method = %method_for_log(&call), error = %e, "request failed");
                let (object, status) = rescue::route(&e);
                (status, error_response(call.reply_id(), &object))
            }
        };
        (status, (!call.is_notification()).then_some(body))
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
                if let Some(id) = answer.created {
                    self.subscribed
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(id);
                }
                jsonrpc::result_response(call.reply_id(), &answer.result)
            }
            Err(e) => error_response(call.reply_id(), &rescue::subscription(&e)),
        })
    }
}

fn reply_body(call: &Call<'_>, reply: &Reply) -> Bytes {
    let member: &[u8] = match reply.kind {
        ReplyKind::Result => b"result",
        ReplyKind::Error => b"error",
    };
    jsonrpc::raw_member(call.reply_id(), member, reply.raw())
}

/// Method names come from clients: log a bounded, printable form.
fn method_for_log<'a>(call: &'a Call<'_>) -> &'a str {
    let m = call.method.as_ref();
    let end = m.char_indices().nth(64).map_or(m.len(), |(i, _)| i);
    &m[..end]
}
