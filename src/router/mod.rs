//! Routing one call: answer it locally, or choose a backend and retry.
//!
//! The router reads one [`NetworkView`] snapshot per request and never
//! blocks on the control loops. Reads are retried on another backend after a
//! connection error, a timeout, an HTTP 5xx or 429, up to `max_attempts`.
//! `eth_sendRawTransaction` is sent again only when the backend surely did
//! not receive it (the connection was refused, or it answered 429), and an
//! "already known" answer is a success: the transaction is in a pool.
//!
//! The router knows nothing of the cache or the client policy: the pipeline
//! (`server::pipeline`) pins `latest` first, asks the cache, and hands the
//! router only the calls that need a backend, with the params to send and
//! the lowest head that can serve them.

pub mod select;
mod sendtx;

use std::sync::Arc;

use bytes::Bytes;
use fastrand::Rng;

use crate::config::NetworkConfig;
use crate::eth::quantity::quoted_quantity;
use crate::upstream::{BackendView, NetworkView, Origin, Reply, UpstreamError, Upstreams};

/// Why a call got no answer from any backend.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RouteError {
    #[error("no backend can serve this network now")]
    NoBackend,
    #[error("no backend has block {0} yet")]
    BlockUnavailable(u64),
    #[error("backend {backend} failed: {error}")]
    Upstream {
        backend: String,
        error: UpstreamError,
    },
}

/// What the router needs of a network: its settings and its backends.
#[derive(Clone, Copy)]
pub struct Target<'a> {
    pub config: &'a NetworkConfig,
    pub upstreams: &'a Upstreams,
}

/// The answer to a call the gateway knows without asking a backend:
/// `eth_blockNumber` from the served head (so it never goes backwards) and
/// `eth_chainId` from the config.
pub fn local(config: &NetworkConfig, served: u64, method: &str) -> Option<Reply> {
    let n = match method {
        "eth_blockNumber" => served,
        "eth_chainId" => config.chain_id,
        _ => return None,
    };
    Some(Reply::result_from(Bytes::from(quoted_quantity(n))))
}

/// One call for a backend: its method, the params to send (`latest`
/// already pinned) and the lowest head that can serve it.
pub struct Forward<'a> {
    pub method: &'a str,
    pub params: Option<&'a str>,
    pub min_head: u64,
}

/// Chooses backends that have block `call.min_head` and calls them.
pub async fn forward(
    target: Target<'_>,
    view: &NetworkView,
    call: Forward<'_>,
) -> Result<Reply, RouteError> {
    forward_with(target, view, call, &mut Rng::new()).await
}

/// [`forward`] with a given random source (seeded in tests).
pub async fn forward_with(
    target: Target<'_>,
    view: &NetworkView,
    call: Forward<'_>,
    rng: &mut Rng,
) -> Result<Reply, RouteError> {
    let served = view.served_head.ok_or(RouteError::NoBackend)?;
    let mut candidates = select::candidates(view, call.min_head);
    if candidates.is_empty() {
        if view.best_head.is_some_and(|best| call.min_head <= best) {
            return Err(RouteError::BlockUnavailable(call.min_head));
        }
        // A block no backend has yet: any backend at the served head answers
        // as a node would (null, or "header not found").
        candidates = select::candidates(view, served);
    }
    if call.method == "eth_sendRawTransaction" {
        return sendtx::send(target, candidates, call.params, rng).await;
    }
    attempt(
        target,
        candidates,
        call.method,
        call.params,
        UpstreamError::worth_retrying,
        rng,
    )
    .await
}

/// Calls one candidate after another (P2C among those not tried yet), at most
/// `max_attempts` times, while `again` says a failure may be retried elsewhere.
async fn attempt(
    target: Target<'_>,
    mut candidates: Vec<&BackendView>,
    method: &str,
    params: Option<&str>,
    again: fn(&UpstreamError) -> bool,
    rng: &mut Rng,
) -> Result<Reply, RouteError> {
    let mut last = RouteError::NoBackend;
    for attempts in 1..=target.config.max_attempts {
        let Some(choice) = select::pick(&candidates, rng) else {
            break;
        };
        let (res, ejected_now) = choice
            .backend
            .call(method, params, target.config.timeout_for(method))
            .await;
        let error = match res {
            Ok(mut reply) => {
                reply.origin = Some(Origin {
                    backend: Arc::from(choice.backend.name.as_str()),
                    attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
                });
                return Ok(reply);
            }
            Err(error) => error,
        };
        note_failure(target, choice, &error, ejected_now);
        let retry = again(&error);
        last = RouteError::Upstream {
            backend: choice.backend.name.clone(),
            error,
        };
        if !retry {
            break;
        }
        candidates.retain(|c| !std::ptr::eq(*c, choice));
    }
    Err(last)
}

fn note_failure(
    target: Target<'_>,
    choice: &BackendView,
    error: &UpstreamError,
    ejected_now: bool,
) {
    tracing::debug!(backend = %choice.backend.name, %error, "backend call failed");
    if ejected_now {
        tracing::warn!(
            network = %target.config.name, backend = %choice.backend.name, %error,
            "backend ejected after repeated failures; a successful probe re-admits it"
        );
        target.upstreams.refresh();
    }
}

#[cfg(test)]
mod tests;
