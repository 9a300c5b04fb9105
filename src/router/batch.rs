//! Upstream batches: the entries of one client batch that go to the same
//! backend travel as one request.
//!
//! Each entry of a client batch runs its own pipeline (policy, pinning,
//! cache, in-flight sharing) and picks its backend as a single call does;
//! only its first attempt is handed to the [`Batcher`] of its client batch
//! instead of being sent at once. The batcher runs beside the entries, in
//! the same task ([`Batcher::drive`]): each time the entries have run as far
//! as they can, it takes what they queued, groups it by backend (at most
//! `upstream_batch_max` a request) and sends each group as one JSON array
//! (`upstream::BatchCall`). The window is therefore one pass over the
//! batch's own entries: no timer, no waiting for other requests, and an
//! entry still waiting on something else (a shared cache tier, an identical
//! call in flight) simply goes in a later group.
//!
//! A group of one is sent as a single call. A batch the backend refuses as
//! such (a non-array answer) sends its calls one by one to the same
//! backend. An answer that says the backend failed that call rather than
//! answered it (a rate limit, a timeout: `upstream::entry_failure`) becomes that
//! failure, so the router's retry loop sends that call again, alone, to
//! another backend; the others are not sent again. Sends are never batched
//! (the router passes no batcher for them).
//!
//! A single call never meets a batcher: the pipeline passes `None`, and the
//! router's attempt loop sends as before.

use std::future::{poll_fn, Future};
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use futures_util::stream::{FuturesUnordered, StreamExt};
use parking_lot::Mutex;
use tokio::sync::oneshot;

use crate::jsonrpc::Reply;
use crate::upstream::{entry_failure, Backend, BatchCall, BatchFailure, UpstreamError};

/// The first attempts of one client batch's entries, collected and sent in
/// groups by backend.
pub struct Batcher {
    max: usize,
    queued: Mutex<Vec<Queued>>,
}

/// An entry's first attempt, waiting for its group to be sent.
struct Queued {
    backend: Arc<Backend>,
    call: BatchCall,
    timeout: Duration,
    answer: oneshot::Sender<Sent>,
}

/// What became of a queued attempt.
enum Sent {
    /// Its answer (or failure) from the batch, and whether a failure of the
    /// whole batch just ejected the backend (told to one entry only).
    Answered(Result<Reply, UpstreamError>, bool),
    /// Not batched after all (alone in its group, or the batch was refused):
    /// the entry sends it itself.
    Alone,
}

type Sending = Pin<Box<dyn Future<Output = ()> + Send>>;

impl Batcher {
    /// A batcher for a client batch of `entries` entries, when batching is on
    /// (`max` > 1) and there is something to group.
    pub fn for_batch(max: usize, entries: usize) -> Option<Batcher> {
        (max > 1 && entries > 1).then(|| Batcher {
            max,
            queued: Mutex::new(Vec::new()),
        })
    }

    /// Calls `backend` as [`Backend::call`] does, in a group with the other
    /// entries that chose it in the same pass.
    pub(super) async fn call(
        &self,
        backend: &Arc<Backend>,
        method: &str,
        params: Option<&str>,
        timeout: Duration,
    ) -> (Result<Reply, UpstreamError>, bool) {
        let (answer, sent) = oneshot::channel();
        self.queued.lock().push(Queued {
            backend: Arc::clone(backend),
            call: BatchCall::new(method, params),
            timeout,
            answer,
        });
        match sent.await {
            Ok(Sent::Answered(res, ejected_now)) => (res, ejected_now),
            // Alone, or the batcher is gone (the message is being dropped).
            Ok(Sent::Alone) | Err(_) => backend.call(method, params, timeout).await,
        }
    }

    /// Runs `work` (the entries of the client batch) and, after each pass in
    /// which it could go no further, sends what it queued.
    pub async fn drive<F: Future>(&self, work: F) -> F::Output {
        let mut work = pin!(work);
        let mut sending: FuturesUnordered<Sending> = FuturesUnordered::new();
        poll_fn(|cx| {
            if let Poll::Ready(out) = work.as_mut().poll(cx) {
                return Poll::Ready(out);
            }
            for group in self.groups() {
                sending.push(Box::pin(send(group)));
            }
            while let Poll::Ready(Some(())) = sending.poll_next_unpin(cx) {}
            Poll::Pending
        })
        .await
    }

    /// What was queued, by backend (in the order the entries chose), in
    /// groups of at most `max`; a group of one is told to go alone at once.
    fn groups(&self) -> Vec<Vec<Queued>> {
        let queued = std::mem::take(&mut *self.queued.lock());
        let mut groups: Vec<Vec<Queued>> = Vec::new();
        for q in queued {
            let open = groups
                .iter_mut()
                .find(|g| Arc::ptr_eq(&g[0].backend, &q.backend) && g.len() < self.max);
            match open {
                Some(group) => group.push(q),
                None => groups.push(vec![q]),
            }
        }
        groups.retain_mut(|group| {
            if group.len() > 1 {
                return true;
            }
            if let Some(q) = group.pop() {
                let _ = q.answer.send(Sent::Alone);
            }
            false
        });
        groups
    }
}

/// Sends one group to its backend and tells each entry what became of it.
async fn send(group: Vec<Queued>) {
    let backend = Arc::clone(&group[0].backend);
    let timeout = group.iter().map(|q| q.timeout).max().unwrap_or_default();
    let (calls, answers): (Vec<BatchCall>, Vec<_>) =
        group.into_iter().map(|q| (q.call, q.answer)).unzip();
    match backend.call_batch(&calls, timeout).await {
        Ok(replies) => {
            for (reply, answer) in replies.into_iter().zip(answers) {
                let res = reply.and_then(|r| entry_failure(r, timeout));
                let _ = answer.send(Sent::Answered(res, false));
            }
        }
        Err(BatchFailure::Failed(error, ejected_now)) => {
            for (i, answer) in answers.into_iter().enumerate() {
                let sent = Sent::Answered(Err(error.clone()), ejected_now && i == 0);
                let _ = answer.send(sent);
            }
        }
        Err(BatchFailure::Refused) => {
            tracing::debug!(backend = %backend.name, calls = calls.len(), "backend refused a batch; its calls go one by one");
            for answer in answers {
                let _ = answer.send(Sent::Alone);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::UpstreamConfig;

    fn backend(name: &str) -> Arc<Backend> {
        let cfg = UpstreamConfig {
            name: name.into(),
            http: "http://127.0.0.1:9".parse().unwrap(),
            ws: None,
            headers: Default::default(),
            tier: Default::default(),
            state_history: None,
            tls: None,
        };
        Backend::new(
            "batch-test",
            &cfg,
            crate::upstream::http_client(),
            1 << 20,
            3,
            &crate::metrics::Metrics::new(),
        )
    }

    fn queue(b: &Batcher, backend: &Arc<Backend>) -> oneshot::Receiver<Sent> {
        let (answer, sent) = oneshot::channel();
        b.queued.lock().push(Queued {
            backend: Arc::clone(backend),
            call: BatchCall::new("eth_chainId", None),
            timeout: Duration::from_secs(1),
            answer,
        });
        sent
    }

    #[test]
    fn groups_by_backend_capped_and_a_lone_call_goes_alone() {
        assert!(Batcher::for_batch(1, 10).is_none());
        assert!(Batcher::for_batch(0, 10).is_none());
        assert!(Batcher::for_batch(10, 1).is_none());
        let b = Batcher::for_batch(3, 10).unwrap();
        let (x, y, z) = (backend("x"), backend("y"), backend("z"));
        let _held: Vec<_> = [&x, &y, &x, &x, &x, &y]
            .into_iter()
            .map(|backend| queue(&b, backend))
            .collect();
        let mut lone = queue(&b, &z);
        let groups = b.groups();
        let sizes: Vec<(String, usize)> = groups
            .iter()
            .map(|g| (g[0].backend.name.clone(), g.len()))
            .collect();
        // x: 3 (the cap), y: 2, and x's fourth alone: told to go alone, as z.
        assert_eq!(sizes, [("x".to_string(), 3), ("y".to_string(), 2)]);
        assert!(matches!(lone.try_recv(), Ok(Sent::Alone)));
        assert!(b.queued.lock().is_empty());
    }
}
