//! The process's memory budgets: bytes of answers in flight and bytes of
//! request bodies being read, each bounded as a whole.
//!
//! Every per-call bound (`max_response_bytes`, `max_batch_response_bytes`,
//! `max_body_bytes`) multiplies by the calls in flight: thousands of
//! connections, up to `http2_max_concurrent_streams` streams each, and a
//! client that stops reading keeps its whole answer in memory until the
//! write deadline. A [`Budget`] bounds the sum. Whoever holds bytes holds a
//! [`Permit`] for them, released when the permit is dropped: an upstream
//! reply grows its permit chunk by chunk as its body is read and frees it
//! when the reply is dropped; an answer's permit rides inside its `Bytes`
//! ([`hold`]), so it is freed only when hyper has written (or dropped) the
//! last of it, and a client that does not read holds budget until the
//! write deadline closes its connection.
//!
//! A reservation that does not fit waits (at most `server.memory_wait`) for
//! budget to be freed, then fails: the caller answers -32005. Large
//! reservations ([`HEAVY_BYTES`] and up, counting what the permit already
//! holds) may only fill the budget up to [`HEADROOM`] short of its limit, so
//! that while heavy answers fill it, small calls (a balance, a block
//! number) are still served.
//!
//! The counters are plain atomics; a waiter is woken through a `Notify`
//! only when someone waits, so the hot path takes no lock. Used and refused
//! bytes are read at scrape time (`control::admin`).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::Notify;

/// A reservation this large (with what its permit holds) is heavy.
pub const HEAVY_BYTES: usize = 64 * 1024;
/// The share of a budget (1/8) that only light reservations may use.
pub const HEADROOM: usize = 8;
/// One connection may queue at most 1/16 of the answer budget (a
/// WebSocket's outbox): a dozen clients that stop reading cannot take the
/// budget that heavy answers may use.
pub const CONNECTION_SHARE: usize = 16;

/// One bounded amount of memory.
pub struct Budget {
    kind: &'static str,
    limit: AtomicUsize,
    used: AtomicUsize,
    wait_ms: AtomicU64,
    refusals: AtomicU64,
    waiting: AtomicUsize,
    freed: Notify,
}

/// Upstream replies being read plus answers being written.
static ANSWERS: Budget = Budget::new("answers");
/// Request bodies being read and decoded.
static REQUESTS: Budget = Budget::new("requests");

/// `server.max_inflight_answer_bytes`.
pub fn answers() -> &'static Budget {
    &ANSWERS
}

/// `server.max_inflight_request_bytes`.
pub fn requests() -> &'static Budget {
    &REQUESTS
}

/// Applies the config's bounds (at start and on every reload). In debug
/// builds, `RPCGATE_MEMORY_BOUND_OFF=1` lifts both bounds: the tests that
/// show the budget works run once with it to see memory grow.
pub fn configure(answer_bytes: usize, request_bytes: usize, wait: Duration) {
    let off = cfg!(debug_assertions)
        && std::env::var_os("RPCGATE_MEMORY_BOUND_OFF").is_some_and(|v| v == "1");
    let bound = |n: usize| if off { usize::MAX / 2 } else { n };
    ANSWERS.set(bound(answer_bytes), wait);
    REQUESTS.set(bound(request_bytes), wait);
}

/// A reservation that did not fit within the wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("server busy: memory budget ({kind}) exhausted")]
pub struct OverBudget {
    pub kind: &'static str,
}

impl Budget {
    const fn new(kind: &'static str) -> Budget {
        Budget {
            kind,
            limit: AtomicUsize::new(256 * 1024 * 1024),
            used: AtomicUsize::new(0),
            wait_ms: AtomicU64::new(2000),
            refusals: AtomicU64::new(0),
            waiting: AtomicUsize::new(0),
            freed: Notify::const_new(),
        }
    }

    fn set(&self, limit: usize, wait: Duration) {
        self.limit.store(limit, Ordering::Relaxed);
        let ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX);
        self.wait_ms.store(ms, Ordering::Relaxed);
        self.wake();
    }

    /// `answers` or `requests`: the `kind` label of its metrics.
    pub fn kind(&self) -> &'static str {
        self.kind
    }

    pub fn limit(&self) -> usize {
        self.limit.load(Ordering::Relaxed)
    }

    /// Bytes held by permits now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// Reservations refused since start.
    pub fn refusals(&self) -> u64 {
        self.refusals.load(Ordering::Relaxed)
    }

    /// A permit for no bytes yet, to [`Permit::grow`].
    pub fn empty(&'static self) -> Permit {
        Permit {
            budget: self,
            bytes: 0,
        }
    }

    /// A permit for `bytes`, waiting for budget at most `server.memory_wait`.
    pub async fn reserve(&'static self, bytes: usize) -> Result<Permit, OverBudget> {
        let mut permit = self.empty();
        permit.grow(bytes).await?;
        Ok(permit)
    }

    /// A permit for `bytes` that is never refused: for memory that replaces
    /// memory already accounted (an answer joined from parts that held
    /// permits, a compressed copy), taken before the old permits are freed.
    pub fn carry(&'static self, bytes: usize) -> Permit {
        self.used.fetch_add(bytes, Ordering::Relaxed);
        Permit {
            budget: self,
            bytes,
        }
    }

    /// Adds `more` to `held` bytes if the sum fits the ceiling for its size.
    fn try_add(&self, held: usize, more: usize) -> bool {
        let limit = self.limit();
        let ceiling = if held + more >= HEAVY_BYTES {
            limit - limit / HEADROOM
        } else {
            limit
        };
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |used| {
                used.checked_add(more).filter(|&n| n <= ceiling)
            })
            .is_ok()
    }

    fn release(&self, bytes: usize) {
        if bytes == 0 {
            return;
        }
        self.used.fetch_sub(bytes, Ordering::AcqRel);
        if self.waiting.load(Ordering::Acquire) > 0 {
            self.wake();
        }
    }

    fn wake(&self) {
        self.freed.notify_waiters();
    }
}

/// Bytes reserved from a [`Budget`]; freed when dropped.
pub struct Permit {
    budget: &'static Budget,
    bytes: usize,
}

impl std::fmt::Debug for Permit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Permit({} {} bytes)", self.budget.kind, self.bytes)
    }
}

impl Permit {
    /// Bytes it holds.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The same permit holding at most `bytes` (the rest is freed).
    pub fn shrunk_to(mut self, bytes: usize) -> Permit {
        self.shrink_to(bytes);
        self
    }

    /// Frees all but `bytes` of what it holds.
    pub fn shrink_to(&mut self, bytes: usize) {
        if bytes < self.bytes {
            self.budget.release(self.bytes - bytes);
            self.bytes = bytes;
        }
    }

    /// Holds `more` bytes as well if the budget has them now, without
    /// waiting: for code that cannot wait (a socket being polled).
    pub fn try_grow(&mut self, more: usize) -> Result<(), OverBudget> {
        if self.budget.try_add(self.bytes, more) {
            self.bytes += more;
            return Ok(());
        }
        self.budget.refusals.fetch_add(1, Ordering::Relaxed);
        Err(OverBudget {
            kind: self.budget.kind,
        })
    }

    /// A permit for `bytes` of what this one holds (all it holds, if
    /// less), moved out of it: the share of one part of a body read as a
    /// whole (an answer of an upstream batch).
    pub fn split_off(&mut self, bytes: usize) -> Permit {
        let moved = bytes.min(self.bytes);
        self.bytes -= moved;
        Permit {
            budget: self.budget,
            bytes: moved,
        }
    }

    /// Holds `more` bytes as well, waiting for budget at most
    /// `server.memory_wait`; on failure it still holds what it held.
    pub async fn grow(&mut self, more: usize) -> Result<(), OverBudget> {
        let budget = self.budget;
        if budget.try_add(self.bytes, more) {
            self.bytes += more;
            return Ok(());
        }
        let wait = Duration::from_millis(budget.wait_ms.load(Ordering::Relaxed));
        let deadline = tokio::time::Instant::now() + wait;
        budget.waiting.fetch_add(1, Ordering::AcqRel);
        let fitted = loop {
            let freed = budget.freed.notified();
            let mut freed = std::pin::pin!(freed);
            freed.as_mut().enable();
            if budget.try_add(self.bytes, more) {
                break true;
            }
            if tokio::time::timeout_at(deadline, freed).await.is_err() {
                break budget.try_add(self.bytes, more);
            }
        };
        budget.waiting.fetch_sub(1, Ordering::AcqRel);
        if fitted {
            self.bytes += more;
            Ok(())
        } else {
            budget.refusals.fetch_add(1, Ordering::Relaxed);
            Err(OverBudget { kind: budget.kind })
        }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.budget.release(self.bytes);
    }
}

/// `bytes` with `permit` inside: the permit is freed when the last clone
/// of the returned `Bytes` is dropped (hyper has written it all, or the
/// connection was closed).
pub fn hold(bytes: Bytes, permit: Permit) -> Bytes {
    struct Held(Bytes, #[allow(dead_code)] Permit);
    impl AsRef<[u8]> for Held {
        fn as_ref(&self) -> &[u8] {
            &self.0
        }
    }
    if permit.bytes == 0 {
        return bytes;
    }
    Bytes::from_owner(Held(bytes, permit))
}

/// `bytes` of an answer built without a reservation (an error, a
/// subscription's id: small, bounded by the id cap), charged to the answer
/// budget until written all the same, so that unread answers of every kind
/// show in the budget and hold back heavy reservations.
pub fn charged_answer(bytes: Bytes) -> Bytes {
    let permit = ANSWERS.carry(bytes.len());
    hold(bytes, permit)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(limit: usize) -> &'static Budget {
        let b: &'static Budget = Box::leak(Box::new(Budget::new("test")));
        b.set(limit, Duration::from_millis(50));
        b
    }

    #[tokio::test]
    async fn permits_free_their_bytes_and_heavy_ones_leave_headroom() {
        let b = budget(1 << 20);
        let heavy = b.reserve(800 * 1024).await.unwrap();
        assert_eq!(b.used(), 800 * 1024);
        // Heavy reservations stop 1/8 short of the limit; light ones pass.
        assert!(b.reserve(128 * 1024).await.is_err());
        assert_eq!(b.refusals(), 1);
        let light = b.reserve(4096).await.unwrap();
        drop(heavy);
        assert_eq!(b.used(), 4096);
        let again = b.reserve(800 * 1024).await.unwrap();
        drop((light, again));
        assert_eq!(b.used(), 0);
    }

    #[tokio::test]
    async fn a_waiter_gets_bytes_freed_within_the_wait() {
        let b = budget(1 << 20);
        b.set(1 << 20, Duration::from_secs(5));
        let first = b.reserve(800 * 1024).await.unwrap();
        let waiter = tokio::spawn(async move { b.reserve(500 * 1024).await.map(|p| p.bytes()) });
        tokio::task::yield_now().await;
        drop(first);
        assert_eq!(waiter.await.unwrap(), Ok(500 * 1024));
        assert_eq!(b.used(), 0);
    }

    #[tokio::test]
    async fn held_bytes_free_the_permit_with_the_last_clone() {
        let b = budget(1 << 20);
        let permit = b.reserve(10).await.unwrap();
        let bytes = hold(Bytes::from_static(b"0123456789"), permit);
        let clone = bytes.slice(2..4);
        drop(bytes);
        assert_eq!(b.used(), 10);
        assert_eq!(&clone[..], b"23");
        drop(clone);
        assert_eq!(b.used(), 0);
    }
}
