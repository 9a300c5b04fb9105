//! Panic safety: a panic while one request is answered costs that request
//! only.
//!
//! Client input must never panic the gateway (the fuzz targets in `fuzz/`
//! hunt for that), but a bug elsewhere still could. Tokio would contain it
//! to the task, which is worse than it sounds: the HTTP connection task
//! dies with the request unanswered, and a WebSocket message just gets no
//! answer. So the two boundaries that know whom to answer catch it:
//! - each call's pipeline ([`Stage::Call`]): the call is answered with
//!   -32603 and its own id, the other entries of its batch as usual;
//! - each message (`calls::answer_message`, [`Stage::Message`]): anything
//!   else (admission, the batch's assembly) is answered with one -32603
//!   error with a `null` id, HTTP 500.
//!
//! Every caught panic is counted in `rpcgate_panics_total{stage}` and
//! logged at error. Unwinding is safe here: the state a call can touch is
//! built for cancellation at any await (a dropped cache flight lets its
//! followers go upstream themselves) and parking_lot locks do not poison.
//! This needs `panic = "unwind"`, the default, which Cargo.toml's profiles
//! keep.
//!
//! Tests inject a panic with [`inject_panic`], which exists only in builds
//! with debug assertions (never in a release build) and is reachable only
//! from Rust: no config key, environment variable or request turns it on.

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;

use futures_util::FutureExt;

use crate::metrics::Metrics;

/// Where a panic was caught (also its metric label).
pub use crate::metrics::PanicStage as Stage;

/// A panic that was caught, with its message when it had one.
#[derive(Debug)]
pub(super) struct Panicked(pub String);

/// Runs `work`; a panic in it is counted in `metrics` and returned as [`Panicked`].
pub(super) async fn guarded<F: Future>(
    stage: Stage,
    metrics: &Metrics,
    work: F,
) -> Result<F::Output, Panicked> {
    match AssertUnwindSafe(work).catch_unwind().await {
        Ok(output) => Ok(output),
        Err(payload) => {
            metrics.listener.panics(stage).inc();
            Err(Panicked(message_of(payload.as_ref())))
        }
    }
}

fn message_of(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".to_string()
    }
}

/// Panics when a test asked for a panic on `method` at `stage`; in a
/// release build this is nothing at all.
#[inline]
pub(super) fn injected(stage: Stage, method: &str) {
    #[cfg(debug_assertions)]
    hook::check(stage, method);
    #[cfg(not(debug_assertions))]
    let _ = (stage, method);
}

#[cfg(debug_assertions)]
pub use hook::inject_panic;

#[cfg(debug_assertions)]
mod hook {
    use std::sync::atomic::{AtomicBool, Ordering};

    use parking_lot::Mutex;

    use super::Stage;

    /// Whether any test asked for a panic: the request path pays one load.
    static ARMED: AtomicBool = AtomicBool::new(false);
    static PANICS: Mutex<Vec<(String, Stage)>> = Mutex::new(Vec::new());

    /// Test only (builds with debug assertions): every later call of
    /// `method`, in this process, panics at `stage`. Pick a method name no
    /// other test calls.
    #[doc(hidden)]
    pub fn inject_panic(method: &str, stage: Stage) {
        PANICS.lock().push((method.to_string(), stage));
        ARMED.store(true, Ordering::Release);
    }

    pub(super) fn check(stage: Stage, method: &str) {
        if !ARMED.load(Ordering::Acquire) {
            return;
        }
        let hit = PANICS
            .lock()
            .iter()
            .any(|(m, s)| *s == stage && m == method);
        if hit {
            panic!("panic injected by a test: {method} at {stage:?}");
        }
    }
}
