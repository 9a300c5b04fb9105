//! A batch's entries: admitted in order before any is routed (a batch costs
//! the sum of its entries, and which entries pass does not depend on
//! timing), then answered with bounded concurrency, the entries that go to
//! a backend sent to it together, one request per backend chosen
//! (`router::batch`; `upstream_batch_max` a request at most).
//!
//! A batch's answers are claimed against `server.max_batch_response_bytes`
//! one by one, atomically, as each entry finishes: an answer that would take
//! the sum past it is dropped and its entry gets -32005 with its id, so
//! however many entries run at once the sum never passes the bound. A batch
//! refused whole by rate limits is a 429 with `Retry-After`.

use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use futures_util::future::join_all;
use http::StatusCode;
use tokio::sync::Semaphore;

use super::call_error::CallError;
use super::rescue::{self, Headers};
use super::{admit_batch, Admitted, Ctx, Failing, ServedBy};
use crate::eth::methods::Resolved;
use crate::jsonrpc::{join_batch, Entry};
use crate::memory;
use crate::router::batch::Batcher;

impl Ctx<'_> {
    /// The answer to a batch: its status, body (`None` when every entry was
    /// a notification), headers, and where each entry was served from.
    pub(super) async fn answer_batch(
        &self,
        entries: Vec<Entry<'_>>,
    ) -> (StatusCode, Option<Bytes>, Headers, Vec<ServedBy>) {
        let limits = &self.routes.server;
        let verdicts = admit_batch(&self.routes.policy, self.caller, &entries).await;
        let waits = || {
            verdicts
                .iter()
                .map(|v| v.verdict.as_ref().err().and_then(rescue::retry_after))
        };
        let all_limited = waits().all(|wait| wait.is_some());
        let headers = Headers {
            retry_after: all_limited.then(|| waits().flatten().max()).flatten(),
            ..Headers::default()
        };
        // Bounded concurrency and a size budget: a batch of heavy calls cannot
        // hold more than a few large replies at once. Entries sent upstream
        // together (`router::batch`) come back in one reply bounded by
        // `max_response_bytes`, so a full upstream batch may be in flight.
        let used = AtomicUsize::new(0);
        let budget = limits.max_batch_response_bytes.min(self.max_answer);
        let upstream_batch_max = self.network.config.upstream_batch_max;
        let batcher = Batcher::for_batch(upstream_batch_max, entries.len());
        let concurrency = match &batcher {
            Some(_) => limits.batch_concurrency.max(upstream_batch_max),
            None => limits.batch_concurrency,
        };
        let slots = Semaphore::new(concurrency);
        let batch = batcher.as_ref();
        let entries = join_all(
            entries
                .into_iter()
                .zip(verdicts)
                .map(|(entry, admitted)| async {
                    let _slot = slots
                        .acquire()
                        .await
                        .expect("the semaphore is never closed");
                    self.batch_entry(entry, admitted, &used, budget, batch)
                        .await
                }),
        );
        let answers = match batch {
            Some(batcher) => batcher.drive(entries).await,
            None => entries.await,
        };
        let mut parts = Vec::with_capacity(answers.len());
        let mut served = Vec::new();
        for (answer, by) in answers {
            parts.extend(answer);
            if limits.expose_upstream_headers {
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
        (status, body, headers, served)
    }

    /// One batch entry. Its answer is claimed against the batch's `budget`
    /// bytes (`used` so far) atomically once it is known: an answer that
    /// does not fit is dropped and the entry gets -32005 instead. Once the
    /// budget is spent, the entries not yet started are refused without
    /// running.
    async fn batch_entry(
        &self,
        entry: Entry<'_>,
        admitted: Admitted,
        used: &AtomicUsize,
        budget: usize,
        batch: Option<&Batcher>,
    ) -> (Option<Bytes>, ServedBy) {
        let (method, id) = match &entry {
            Ok(call) => (call.method.clone(), call.id),
            Err(invalid) => (Default::default(), Some(invalid.id)),
        };
        let over = |ran| {
            let failing = Failing {
                method: Resolved::of(&method),
                id,
                elapsed: None,
            };
            let limit = budget;
            (
                self.fail(failing, &CallError::BatchOverBudget { limit, ran })
                    .body,
                ServedBy::default(),
            )
        };
        if used.load(Ordering::Acquire) >= budget {
            return over(false);
        }
        let answer = self.answer(entry, admitted, batch).await;
        let Some(body) = answer.body else {
            return (None, answer.by);
        };
        let claimed = used.fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
            u.checked_add(body.len()).filter(|&sum| sum <= budget)
        });
        if claimed.is_ok() {
            return (Some(body), answer.by);
        }
        drop(body);
        over(true)
    }
}
