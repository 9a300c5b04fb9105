//! The timer hyper uses for the header read timeout, with tokio's timers
//! reused from one request to the next.
//!
//! hyper arms a fresh timer each time it starts reading a request head and
//! drops it once the head is in: on a keep-alive connection that is one timer
//! allocated, registered in tokio's timer wheel (a lock) and removed again (a
//! lock) per request, about a tenth of the user-space work of a cache hit.
//! Here a dropped timer goes to a small per-thread spare list instead, and
//! the next request resets it: moving a registered timer to a later deadline
//! is one compare-and-swap in tokio, no lock and no allocation.
//!
//! A spare timer keeps its registration and the waker of its last owner, so
//! it may wake that task once, spuriously, when its old deadline passes; a
//! woken connection only polls its socket again. The timeout itself is
//! unchanged: each request head still gets `header_read_timeout` from the
//! moment hyper starts waiting for it.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// Spare timers kept per worker thread: enough for the connections one
/// worker serves at once; more are dropped as usual. Each spare may hold
/// the waker (so the allocation) of a finished connection task until it is
/// reused, which bounds what the list can keep alive.
const MAX_SPARE: usize = 256;

thread_local! {
    static SPARE: RefCell<Vec<Pin<Box<tokio::time::Sleep>>>> = const { RefCell::new(Vec::new()) };
}

/// A `hyper::rt::Timer` on tokio's timers, reusing them.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct ReusingTimer;

impl hyper::rt::Timer for ReusingTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        self.sleep_until(Instant::now() + duration)
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        let deadline = tokio::time::Instant::from_std(deadline);
        let spare = SPARE.try_with(|s| s.borrow_mut().pop()).ok().flatten();
        let sleep = match spare {
            Some(mut sleep) => {
                sleep.as_mut().reset(deadline);
                sleep
            }
            None => Box::pin(tokio::time::sleep_until(deadline)),
        };
        Box::pin(Reused(Some(sleep)))
    }
}

/// A timer that goes back to the spare list when hyper drops it.
struct Reused(Option<Pin<Box<tokio::time::Sleep>>>);

impl Future for Reused {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        match self.0.as_mut() {
            Some(sleep) => sleep.as_mut().poll(cx),
            None => Poll::Ready(()),
        }
    }
}

impl hyper::rt::Sleep for Reused {}

impl Drop for Reused {
    fn drop(&mut self) {
        let Some(sleep) = self.0.take() else { return };
        // During thread teardown the list is gone: the timer is just dropped.
        let _ = SPARE.try_with(|s| {
            let mut spare = s.borrow_mut();
            if spare.len() < MAX_SPARE {
                spare.push(sleep);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::rt::Timer;

    #[tokio::test]
    async fn a_reused_timer_fires_at_its_new_deadline() {
        let timer = ReusingTimer;
        let after = |ms| Instant::now() + Duration::from_millis(ms);
        let waited = |start: Instant, ms| {
            let e = start.elapsed();
            e >= Duration::from_millis(ms) && e < Duration::from_millis(ms + 2000)
        };
        drop(timer.sleep_until(after(50)));
        // The spare one is taken again, with a later deadline...
        let start = Instant::now();
        timer.sleep_until(after(150)).await;
        assert!(waited(start, 150));
        // ...and again with an earlier one than it last had.
        drop(timer.sleep_until(after(60_000)));
        let start = Instant::now();
        timer.sleep_until(after(100)).await;
        assert!(waited(start, 100));
        assert_eq!(SPARE.with(|s| s.borrow().len()), 1, "one timer, reused");
    }
}
