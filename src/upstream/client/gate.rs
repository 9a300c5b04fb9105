//! A backend's bound on requests in flight (`upstream_max_in_flight`), and
//! batching across clients while it is reached (`saturated_batch_max`).
//!
//! Each request to the backend holds one of its slots while it is sent and
//! answered. A call that finds a free slot goes at once, alone: at low load
//! nothing waits for anything. A call that finds none waits its turn (in
//! order: tokio's semaphore hands a freed slot to the oldest waiter). A
//! read (`eth::Method::is_read`: asking it twice is harmless) waits in the
//! backend's queue instead, and whichever queued read gets the next slot
//! takes its own call and the oldest others queued, up to
//! `saturated_batch_max` entries and `saturated_batch_max_bytes` of body,
//! and sends them as one JSON-RPC array (`call_batch_now`: the gateway's own
//! ids `0..n`, each answer mapped back by id, and so to its own caller,
//! whose id the response stage puts back). The others learn their answer
//! from it; a queued read whose entry was taken does not send anything.
//!
//! Sends and everything that is not a read are never batched: they wait
//! for a slot and go alone. An entry the batch did not answer (left out, a
//! rate limit or timeout answered in its place: `entry_failure`), and every
//! entry of a batch the node refused as such, timed out or answered too
//! long, is sent again alone to the same backend: one heavy or failing call
//! does not fail the others. A batch that failed as a connection fails (a
//! refused connect, a 5xx) fails each entry so, and the router retries each
//! elsewhere, as it would a single call.
//!
//! A queued read counts in the backend's load (P2C sees the queue). Waiting
//! for a slot is bounded by the call's time limit (then it fails as a
//! timeout, and the router tries another backend); the send then has its
//! own full limit. If the read that leads a batch is cancelled (its client
//! left), the batch is dropped and each other entry sends itself alone.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::{oneshot, Semaphore, SemaphorePermit};

use super::batch::{entry_failure, BatchCall, BatchFailure};
use super::{Backend, CallLimits, UpstreamError, CALLER_TIMED};
use crate::eth::methods::lookup;
use crate::jsonrpc::Reply;

/// One backend's slots and its queue of reads waiting for one.
pub(crate) struct Gate {
    slots: Semaphore,
    queue: Mutex<Queue>,
    /// Entries of one batch at most (below 2: reads wait alone too).
    max_entries: usize,
    /// Request bytes of one batch at most.
    max_bytes: usize,
}

#[derive(Default)]
struct Queue {
    next: u64,
    waiting: VecDeque<Waiting>,
}

/// A read waiting for a slot.
struct Waiting {
    seq: u64,
    call: BatchCall,
    timeout: Duration,
    told: oneshot::Sender<Told>,
}

/// What a queued read learns from the batch that took it.
enum Told {
    /// Its answer or failure, and whether that failure just ejected the
    /// backend (told to one entry only).
    Answered(Result<Reply, UpstreamError>, bool),
    /// The batch did not answer it: it goes alone.
    Alone,
}

/// Takes a queued read out of the queue when its call ends, however.
struct Queued<'g> {
    gate: &'g Gate,
    seq: u64,
}

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        let mut queue = self.gate.queue.lock();
        if let Some(i) = queue.waiting.iter().position(|w| w.seq == self.seq) {
            queue.waiting.remove(i);
        }
    }
}

impl Gate {
    /// The gate of a backend with `limits`; `None` without a bound.
    pub(super) fn new(limits: &CallLimits) -> Option<Gate> {
        (limits.max_in_flight > 0).then(|| Gate {
            slots: Semaphore::new(limits.max_in_flight),
            queue: Mutex::new(Queue::default()),
            max_entries: limits.saturated_batch_max,
            max_bytes: limits
                .saturated_batch_max_bytes
                .min(limits.max_request_bytes),
        })
    }

    /// A slot, waiting at most `within` for one.
    pub(super) async fn slot(&self, within: Duration) -> Option<SemaphorePermit<'_>> {
        if let Ok(slot) = self.slots.try_acquire() {
            return Some(slot);
        }
        tokio::time::timeout(within, self.slots.acquire())
            .await
            .ok()?
            .ok()
    }

    /// Whether a call of `method` may wait in the queue, to go in a batch.
    fn batches(&self, method: &str) -> bool {
        self.max_entries > 1
            && !CALLER_TIMED.contains(&method)
            && lookup(method).is_some_and(|(_, m)| m.is_read())
    }

    fn enqueue(&self, call: BatchCall, timeout: Duration, told: oneshot::Sender<Told>) -> u64 {
        let mut queue = self.queue.lock();
        let seq = queue.next;
        queue.next = queue.next.wrapping_add(1);
        queue.waiting.push_back(Waiting {
            seq,
            call,
            timeout,
            told,
        });
        seq
    }

    /// The read `seq` and the oldest others queued, within the bounds;
    /// `None` when another batch took it already.
    fn take(&self, seq: u64) -> Option<Vec<Waiting>> {
        let mut queue = self.queue.lock();
        let i = queue.waiting.iter().position(|w| w.seq == seq)?;
        let own = queue.waiting.remove(i)?;
        let mut bytes = own.call.len() + 2;
        let mut group = vec![own];
        while group.len() < self.max_entries {
            let Some(next) = queue.waiting.pop_front() else {
                break;
            };
            // A caller that left has nothing to learn.
            if next.told.is_closed() {
                continue;
            }
            if bytes + next.call.len() > self.max_bytes {
                queue.waiting.push_front(next);
                break;
            }
            bytes += next.call.len();
            group.push(next);
        }
        Some(group)
    }
}

impl Backend {
    /// [`Backend::call`] through the backend's gate (see the module doc).
    pub(super) async fn gated(
        &self,
        gate: &Gate,
        method: &str,
        params: Option<&str>,
        timeout: Duration,
    ) -> (Result<Reply, UpstreamError>, bool) {
        if let Ok(_slot) = gate.slots.try_acquire() {
            return self.call_alone(method, params, timeout).await;
        }
        let started = Instant::now();
        if !gate.batches(method) {
            return self.in_turn(gate, method, params, timeout, started).await;
        }
        let (told, mut answer) = oneshot::channel();
        let seq = gate.enqueue(BatchCall::new(method, params), timeout, told);
        let queued = Queued { gate, seq };
        let waiting = self.load.start();
        let turn = async {
            tokio::select! {
                biased;
                told = &mut answer => Err(told),
                slot = gate.slots.acquire() => Ok(slot),
            }
        };
        let turn = tokio::time::timeout(timeout, turn).await;
        drop(waiting);
        let told = match turn {
            Err(_) | Ok(Ok(Err(_))) => return (Err(UpstreamError::Timeout(timeout)), false),
            Ok(Err(told)) => told,
            Ok(Ok(Ok(slot))) => match gate.take(seq) {
                Some(group) => match self.lead(group).await {
                    Told::Answered(res, ejected_now) => return (res, ejected_now),
                    // Its own slot carries it alone.
                    Told::Alone => return self.call_alone(method, params, timeout).await,
                },
                None => {
                    // Another read's batch took it: its answer is coming.
                    drop(slot);
                    answer.await
                }
            },
        };
        drop(queued);
        match told {
            Ok(Told::Answered(res, ejected_now)) => (res, ejected_now),
            Ok(Told::Alone) | Err(_) => self.in_turn(gate, method, params, timeout, started).await,
        }
    }

    /// Waits for a slot (within what is left of `timeout` since `started`),
    /// then sends the call alone.
    async fn in_turn(
        &self,
        gate: &Gate,
        method: &str,
        params: Option<&str>,
        timeout: Duration,
        started: Instant,
    ) -> (Result<Reply, UpstreamError>, bool) {
        let waiting = self.load.start();
        let slot = gate.slot(timeout.saturating_sub(started.elapsed())).await;
        drop(waiting);
        match slot {
            Some(_slot) => self.call_alone(method, params, timeout).await,
            None => (Err(UpstreamError::Timeout(timeout)), false),
        }
    }

    /// Sends `group` (its first entry the leader's own) and tells each
    /// other entry what became of it; returns what became of the first.
    async fn lead(&self, group: Vec<Waiting>) -> Told {
        if group.len() < 2 {
            return Told::Alone;
        }
        let timeout = group.iter().map(|w| w.timeout).max().unwrap_or_default();
        let (calls, tolds): (Vec<BatchCall>, Vec<oneshot::Sender<Told>>) =
            group.into_iter().map(|w| (w.call, w.told)).unzip();
        let outcomes: Vec<Told> = match self.call_batch_now(&calls, timeout).await {
            Ok(replies) => replies
                .into_iter()
                .map(
                    |reply| match reply.and_then(|r| entry_failure(r, timeout)) {
                        Ok(reply) => Told::Answered(Ok(reply), false),
                        Err(_) => Told::Alone,
                    },
                )
                .collect(),
            Err(BatchFailure::Refused) => calls.iter().map(|_| Told::Alone).collect(),
            // One heavy entry, or all of them together, too slow or too
            // long: each alone may do.
            Err(BatchFailure::Failed(e, _))
                if e.client_caused() || matches!(e, UpstreamError::Timeout(_)) =>
            {
                calls.iter().map(|_| Told::Alone).collect()
            }
            Err(BatchFailure::Failed(e, ejected_now)) => (0..calls.len())
                .map(|i| Told::Answered(Err(e.clone()), ejected_now && i == 0))
                .collect(),
        };
        let mut own = Told::Alone;
        for (i, (outcome, told)) in outcomes.into_iter().zip(tolds).enumerate() {
            if i == 0 {
                own = outcome;
            } else {
                let _ = told.send(outcome);
            }
        }
        own
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate(max_entries: usize, max_bytes: usize) -> Gate {
        Gate {
            slots: Semaphore::new(1),
            queue: Mutex::new(Queue::default()),
            max_entries,
            max_bytes,
        }
    }

    fn queue(g: &Gate, params: &str) -> (u64, oneshot::Receiver<Told>) {
        let (told, answer) = oneshot::channel();
        let call = BatchCall::new("eth_getBalance", Some(params));
        (g.enqueue(call, Duration::from_secs(1), told), answer)
    }

    #[test]
    fn only_reads_are_batched_and_only_when_on() {
        let g = gate(8, 1 << 20);
        assert!(g.batches("eth_getBalance"));
        assert!(g.batches("eth_getBlockByHash"));
        assert!(!g.batches("eth_sendRawTransaction"));
        assert!(!g.batches("eth_sendRawTransactionSync"));
        assert!(!g.batches("eth_newFilter"));
        assert!(!g.batches("no_suchMethod"));
        assert!(!gate(1, 1 << 20).batches("eth_getBalance"));
    }

    #[test]
    fn a_batch_takes_its_own_call_then_the_oldest_within_both_bounds() {
        let g = gate(3, 1 << 20);
        let held: Vec<_> = (0..5).map(|i| queue(&g, &format!("[{i}]"))).collect();
        let group = g.take(held[3].0).unwrap();
        let seqs: Vec<u64> = group.iter().map(|w| w.seq).collect();
        assert_eq!(seqs, [held[3].0, held[0].0, held[1].0]);
        // Taken already: its answer comes from that batch.
        assert!(g.take(held[0].0).is_none());
        // The bytes bound: room for the leader and one more only.
        let one = BatchCall::new("eth_getBalance", Some("[2]")).len();
        let g = gate(10, 2 * one + 2);
        let held: Vec<_> = (0..4).map(|i| queue(&g, &format!("[{i}]"))).collect();
        assert_eq!(g.take(held[0].0).unwrap().len(), 2);
        // A caller that left is not sent.
        let g = gate(10, 1 << 20);
        let (a, _keep) = queue(&g, "[0]");
        let (_, gone) = queue(&g, "[1]");
        drop(gone);
        assert_eq!(g.take(a).unwrap().len(), 1);
    }

    #[test]
    fn a_queued_call_that_ends_leaves_the_queue() {
        let g = gate(10, 1 << 20);
        let (a, _keep) = queue(&g, "[0]");
        drop(Queued { gate: &g, seq: a });
        assert!(g.queue.lock().waiting.is_empty());
    }
}
