//! Routing one call: answer it locally, or choose a backend and retry.
//!
//! The router reads one [`NetworkView`] snapshot per HTTP request and never
//! blocks on the control loops. Reads are retried on another backend after a
//! connection error, a timeout, an HTTP 5xx or 429, up to `max_attempts`.
//! `eth_sendRawTransaction` is sent again only when the backend surely did
//! not receive it (the connection was refused, or it answered 429), and an
//! "already known" answer is a success: the transaction is in a pool.
//!
//! The cache sits between block pinning and backend choice: it sees the
//! params with `latest` already pinned (so its keys do too), answers hits and
//! identical calls in flight, and stores what the backends answer.

pub mod blocks;
mod select;
mod sendtx;

use bytes::Bytes;

use crate::cache::Lookup;
use crate::jsonrpc::Call;
use crate::upstream::{BackendView, Network, NetworkView, Reply, UpstreamError};

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

/// Routes one call against the snapshot `view`.
pub async fn route(
    net: &Network,
    view: &NetworkView,
    call: &Call<'_>,
) -> Result<Reply, RouteError> {
    let served = view.served_head.ok_or(RouteError::NoBackend)?;
    match call.method.as_ref() {
        // Answered from the served head, so it never goes backwards.
        "eth_blockNumber" => {
            return Ok(Reply::result_from(Bytes::from(format!("\"0x{served:x}\""))))
        }
        "eth_chainId" => {
            return Ok(Reply::result_from(Bytes::from(format!(
                "\"0x{:x}\"",
                net.config.chain_id
            ))))
        }
        _ => {}
    }
    let need = blocks::analyze(&call.method, call.params, served);
    let params = need.params.as_deref();
    let Some(cache) = net.cache.as_deref() else {
        return forward(net, view, served, need.min_head, &call.method, params).await;
    };
    match cache.lookup(view, &call.method, &need).await {
        Lookup::Answered(outcome) => outcome,
        Lookup::Pass => forward(net, view, served, need.min_head, &call.method, params).await,
        Lookup::Fetch(ticket) => {
            let sent = ticket.params(params);
            let outcome = forward(net, view, served, need.min_head, &call.method, sent).await;
            ticket.complete(view, outcome).await
        }
    }
}

/// Chooses backends that have block `min_head` and calls them.
async fn forward(
    net: &Network,
    view: &NetworkView,
    served: u64,
    min_head: u64,
    method: &str,
    params: Option<&str>,
) -> Result<Reply, RouteError> {
    let mut candidates = candidates(view, min_head);
    if candidates.is_empty() {
        if view.best_head.is_some_and(|best| min_head <= best) {
            return Err(RouteError::BlockUnavailable(min_head));
        }
        // A block no backend has yet: any backend at the served head answers
        // as a node would (null, or "header not found").
        candidates = self::candidates(view, served);
    }
    if method == "eth_sendRawTransaction" {
        return sendtx::send(net, candidates, params).await;
    }
    attempt(
        net,
        candidates,
        method,
        params,
        UpstreamError::worth_retrying,
    )
    .await
}

/// Calls one candidate after another (P2C among those not tried yet), at most
/// `max_attempts` times, while `again` says a failure may be retried elsewhere.
async fn attempt(
    net: &Network,
    mut candidates: Vec<&BackendView>,
    method: &str,
    params: Option<&str>,
    again: fn(&UpstreamError) -> bool,
) -> Result<Reply, RouteError> {
    let mut last = RouteError::NoBackend;
    for _ in 0..net.config.max_attempts {
        let Some(choice) = select::pick(&candidates) else {
            break;
        };
        let (res, ejected_now) = choice
            .backend
            .call(method, params, net.config.request_timeout)
            .await;
        let error = match res {
            Ok(reply) => return Ok(reply),
            Err(error) => error,
        };
        note_failure(net, choice, &error, ejected_now);
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

/// Eligible, not ejected since the snapshot, and with a head of at least `min_head`.
fn candidates(view: &NetworkView, min_head: u64) -> Vec<&BackendView> {
    view.eligible()
        .filter(|b| b.head >= min_head && !b.backend.is_ejected())
        .collect()
}

fn note_failure(net: &Network, choice: &BackendView, error: &UpstreamError, ejected_now: bool) {
    tracing::debug!(backend = %choice.backend.name, %error, "backend call failed");
    if ejected_now {
        tracing::warn!(
            network = %net.config.name, backend = %choice.backend.name, %error,
            "backend ejected after repeated failures; a successful probe re-admits it"
        );
        net.refresh();
    }
}
