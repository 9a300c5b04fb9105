//! The pipeline of one admitted call, in the order the crate docs give:
//! local answers, the gateway's own filters, block pinning (and the refusal
//! of heavy calls it reveals), read-your-writes (sends remembered, reads of
//! them steered past the cache), the cache, the router, the cache's store.
//!
//! Each step is a module that knows nothing of the others; this function is
//! the only place that knows their order.
//!
//! A block the gateway pinned that every backend asked then denied, or that
//! no backend reached before the served head was derived again below it
//! ([`RouteError::StaleBlock`]: their heads, or the served head, were stale)
//! is pinned once more, on a view in which every doubted head was probed
//! again (`Upstreams::view_without_doubts`) and, when the heads probed are
//! all below the block, in which a backend reached it or the view builder
//! found the chain shorter (`Upstreams::reaching`): the served head is
//! re-derived from what the backends answer now, so the client gets an answer rather
//! than a node's "not found" for a block the gateway chose. The client policy has admitted the
//! call before it gets here (`calls`, which admits a batch in order before
//! any entry runs), and `calls` turns what comes back into the answer with
//! the caller's id and counts it.

use super::call_error::{CallError, ParamsError};
use super::heavy;
use crate::cache::{CacheUse, Lookup};
use crate::eth::methods::Resolved;
use crate::eth::{self, BlockArg, BlockRef};
use crate::filters::FilterMethod;
use crate::jsonrpc::Call;
use crate::jsonrpc::Reply;
use crate::network::Network;
use crate::router::batch::Batcher;
use crate::router::{self, ryw, Forward, RouteError};
use crate::upstream::NetworkView;

/// A call's reply, and how the cache took part.
pub(super) struct Routed {
    pub reply: Reply,
    pub cache: CacheUse,
}

/// Answers one call on `network` against the snapshot `view`; `method` is
/// the call's method with its table entry, resolved once per call;
/// `max_logs_blocks` is the caller's own log range bound, when its tier has
/// one; `bucket` says who the caller's filters count against
/// (`Caller::bucket`), asked only by a filter call; `batch` collects the
/// first attempts of a client batch's entries that go to a backend
/// (`router::batch`), `None` for a single call.
pub(super) async fn run(
    network: &Network,
    view: &NetworkView,
    call: &Call<'_>,
    method: Resolved<'_>,
    max_logs_blocks: Option<u64>,
    bucket: &(dyn Fn() -> String + Sync),
    batch: Option<&Batcher>,
) -> Result<Routed, CallError> {
    super::panics::injected(super::panics::Stage::Call, &call.method);
    let served = view.served_head.ok_or(RouteError::NoBackend)?;
    if let Some(reply) = super::local::local(&network.config, served, &call.method) {
        return Ok(Routed {
            reply,
            cache: CacheUse::Local,
        });
    }
    let logs_limit = max_logs_blocks.unwrap_or(network.config.max_logs_block_range);
    if let (Some(filters), Some(m)) = (&network.filters, FilterMethod::of(&call.method)) {
        let params = call.params.map(|p| p.get());
        let target = network.target();
        // Boxed, as every rare branch with a large future here: a future
        // held inline makes every call's future larger, and it is copied
        // whole each time it moves.
        let reply =
            Box::pin(filters.answer(target, view, m, params, &bucket(), logs_limit)).await?;
        return Ok(Routed {
            reply,
            cache: CacheUse::Local,
        });
    }
    heavy::check_node_filter_logs(&call.method, network.filters.is_some())?;
    match pinned_call(network, view, call, method, logs_limit, bucket, batch).await {
        Err(CallError::Route(RouteError::StaleBlock(block))) => {
            tracing::info!(network = %network.config.name, method = %call.method, block, "the pinned block is gone (every backend asked denied it, or the chain got shorter): pinned again once their heads are probed");
            let wait = network.config.head.probe_timeout;
            let probed = network.upstreams.view_without_doubts(wait).await;
            // Heads probed lower may be nodes mid-reorg: they get their time
            // to reach the block before the chain is taken to be shorter.
            let fresh = if probed.worth_waiting_for(block) {
                network.upstreams.reaching(block).await
            } else {
                probed
            };
            Box::pin(pinned_call(
                network, &fresh, call, method, logs_limit, bucket, None,
            ))
            .await
        }
        routed => routed,
    }
}

/// The steps from block pinning on, against `view`.
async fn pinned_call(
    network: &Network,
    view: &NetworkView,
    call: &Call<'_>,
    method: Resolved<'_>,
    logs_limit: u64,
    bucket: &(dyn Fn() -> String + Sync),
    batch: Option<&Batcher>,
) -> Result<Routed, CallError> {
    let served = view.served_head.ok_or(RouteError::NoBackend)?;
    let spec = method.spec();
    let heads = eth::pinning::Heads {
        served,
        safe: view.safe,
        finalized: view.finalized,
    };
    let pinned = eth::pinning::pin_at(spec.map_or(BlockArg::None, |m| m.block), call.params, heads);
    ParamsError::check(&pinned)?;
    heavy::check_logs(&pinned, logs_limit)?;
    let state_at = spec
        .filter(|m| m.reads_state)
        .and_then(|_| pinned.state_block(served));
    // The block the call names by number, `latest` pinned included (not a
    // log filter's range: its blocks are many).
    let block = match pinned.block {
        Some(BlockRef::Number(n)) => Some(n),
        _ if pinned.pinned_latest && pinned.log_blocks.is_none() => Some(pinned.min_head),
        _ => None,
    };
    let forward = |params| Forward {
        method: &call.method,
        params,
        min_head: pinned.min_head,
        state_at,
        block,
    };
    let target = network.target();
    // Read-your-writes: a send is remembered, and reads of it go where it
    // was sent, past the cache (see `router::ryw`).
    if let Some(recent) = network.recent_sends.as_deref() {
        let params = pinned.params.as_deref();
        if call.method == "eth_sendRawTransaction" {
            let reply = Box::pin(router::forward(target, view, forward(params))).await?;
            recent.sent(&reply, &bucket(), served);
            Box::pin(recent.share(&reply, &bucket(), served)).await;
            return Ok(Routed {
                reply,
                cache: CacheUse::Pass,
            });
        }
        // This process's record, or the one replicas share (another replica
        // may have taken the send: see `router::ryw_shared`).
        let steer = Box::pin(recent.steer_read(&call.method, params, bucket)).await;
        if let Some(steer) = steer {
            let reply = Box::pin(ryw::forward_preferring(
                target,
                view,
                forward(params),
                &steer,
                recent,
            ))
            .await?;
            recent.answered(&steer, &reply, served);
            return Ok(Routed {
                reply,
                cache: CacheUse::Pass,
            });
        }
    }
    let Some(cache) = network.cache.as_deref() else {
        let reply = Box::pin(router::forward_batched(
            target,
            view,
            forward(pinned.params.as_deref()),
            batch,
        ))
        .await?;
        return Ok(Routed {
            reply,
            cache: CacheUse::Pass,
        });
    };
    let (outcome, used) = match cache.lookup(view, &call.method, spec, &pinned).await {
        Lookup::Answered(outcome, used) => (outcome, used),
        Lookup::Pass => (
            Box::pin(router::forward_batched(
                target,
                view,
                forward(pinned.params.as_deref()),
                batch,
            ))
            .await,
            CacheUse::Pass,
        ),
        Lookup::Fetch(ticket) => {
            let sent = ticket.params(pinned.params.as_deref());
            // The router's future is boxed: held inline it would be copied
            // with every call's future, hits included. Completing is small
            // (it boxes moka's insert itself).
            let outcome =
                Box::pin(router::forward_batched(target, view, forward(sent), batch)).await;
            (ticket.complete(view, outcome).await, CacheUse::Miss)
        }
    };
    Ok(Routed {
        reply: outcome?,
        cache: used,
    })
}
