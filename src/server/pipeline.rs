//! The pipeline of one admitted call, in the order the crate docs give:
//! local answers, block pinning (and the refusal of heavy calls it reveals),
//! the cache, the router, the cache's store.
//!
//! Each step is a module that knows nothing of the others; this function is
//! the only place that knows their order. The client policy has admitted the
//! call before it gets here (`calls`, which admits a batch in order before
//! any entry runs), and `calls` turns what comes back into the answer with
//! the caller's id and counts it.

use super::heavy::{self, Heavy};
use crate::cache::Lookup;
use crate::eth::methods::Resolved;
use crate::eth::{self, BlockArg};
use crate::jsonrpc::Call;
use crate::network::Network;
use crate::router::{self, Forward, RouteError};
use crate::upstream::{NetworkView, Reply};

/// Why a call got no reply.
#[derive(Debug, thiserror::Error)]
pub(super) enum CallError {
    #[error(transparent)]
    Route(#[from] RouteError),
    #[error(transparent)]
    Heavy(#[from] Heavy),
}

/// Answers one call on `network` against the snapshot `view`; `method` is
/// the call's method with its table entry, resolved once per call;
/// `max_logs_blocks` is the caller's own log range bound, when its tier has one.
pub(super) async fn run(
    network: &Network,
    view: &NetworkView,
    call: &Call<'_>,
    method: Resolved<'_>,
    max_logs_blocks: Option<u64>,
) -> Result<Reply, CallError> {
    super::panics::injected(super::panics::Stage::Call, &call.method);
    let served = view.served_head.ok_or(RouteError::NoBackend)?;
    if let Some(reply) = router::local(&network.config, served, &call.method) {
        return Ok(reply);
    }
    let spec = method.spec();
    let pinned = eth::pin(
        spec.map_or(BlockArg::None, |m| m.block),
        call.params,
        served,
    );
    let logs_limit = max_logs_blocks.unwrap_or(network.config.max_logs_block_range);
    heavy::check_logs(&pinned, logs_limit)?;
    let forward = |params| Forward {
        method: &call.method,
        params,
        min_head: pinned.min_head,
    };
    let target = network.target();
    let Some(cache) = network.cache.as_deref() else {
        return Ok(router::forward(target, view, forward(pinned.params.as_deref())).await?);
    };
    let outcome = match cache.lookup(view, &call.method, spec, &pinned).await {
        Lookup::Answered(outcome) => outcome,
        Lookup::Pass => router::forward(target, view, forward(pinned.params.as_deref())).await,
        Lookup::Fetch(ticket) => {
            let sent = ticket.params(pinned.params.as_deref());
            let outcome = router::forward(target, view, forward(sent)).await;
            ticket.complete(view, outcome).await
        }
    };
    Ok(outcome?)
}
