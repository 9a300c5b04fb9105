//! Routing one call: answer it locally, or choose a backend and retry.
//!
//! The router reads one [`NetworkView`] snapshot per request and never
//! blocks on the control loops. Reads are retried on another backend after a
//! connection error, a timeout, an HTTP 5xx or 429, up to `max_attempts`.
//! `eth_sendRawTransaction` is sent again only when the backend surely did
//! not receive it (the connection was refused, or it answered 429), and an
//! "already known" answer is a success: the transaction is in a pool.
//!
//! Failures the request caused (`UpstreamError::client_caused`: a body or
//! reply too large, another 4xx, a call past its own long time limit) are
//! not retried anywhere, fallbacks included: every backend would fail it the
//! same way, and the client learns why at once.
//!
//! Upstreams of `tier: fallback` get a call only when every primary
//! attempt failed or none could be made (see `select`); a read of old state
//! goes only to backends that still hold it, and a node's "missing trie
//! node" answer to a read that cannot carry the caller's words teaches the
//! router that the node keeps less (`attempt`).
//!
//! A backend that answers "not found" (`-32001`, "header not found", a null
//! block) for a block at or below the head it claimed has a stale head: its
//! head tracker is told to probe again (it serves no reads of the present
//! until then), and the call goes at once to another candidate, neither a
//! failure nor an attempt. When every candidate says so, the block is gone
//! (a reorg to a shorter branch): [`RouteError::StaleBlock`] asks the
//! pipeline to pin again on a fresh view; the client never sees the node's
//! "not found" for a block the gateway chose.
//!
//! A read of a block at or below the served head that no eligible backend
//! has right now (every node mid-reorg at the fork point, or restarted
//! behind) waits, at most `head.catch_up_wait`, for a published view in
//! which one has it (`Upstreams::reaching`), and goes there. When instead
//! the view builder decides the chain got shorter (the served head derived
//! again below the block), [`RouteError::StaleBlock`] has the pipeline pin
//! again: `latest` moves to the new head, and a block named by number that
//! no backend has is answered as a node would (null).
//!
//! A method with a route (`routes:`) goes to the route's upstreams only,
//! and to the ordinary path above only as its `fallback` allows (`routes`).
//!
//! Reads of a transaction just sent through the gateway go first to the
//! backend that accepted it (`ryw`, read-your-writes), when the pipeline
//! asks for it with [`ryw::forward_preferring`]; a nonce only to one that
//! shows the send (`ryw_read`).
//!
//! A read of a method listed under `hedge:` that has not answered within
//! its delay is also sent to a second backend, and the first good answer
//! wins (`hedge`); sends are never hedged.
//!
//! The router knows nothing of the cache or the client policy: the pipeline
//! (`calls::pipeline`) pins `latest` first, asks the cache, and hands the
//! router only the calls that need a backend, with the params to send and
//! the lowest head that can serve them.

pub mod batch;
pub mod hedge;
mod routes;
pub mod ryw;
mod ryw_read;
mod ryw_shared;
pub mod select;
mod transactions;

use std::sync::Arc;

use fastrand::Rng;
use futures_util::stream::FuturesUnordered;

use self::batch::Batcher;
use crate::config::NetworkConfig;
use crate::jsonrpc::{Origin, Reply};
use crate::metrics::RouteSeries;
use crate::upstream::{BackendView, NetworkView, UpstreamError, Upstreams};
use hedge::{Hedging, Leg, Next};

/// Why a call got no answer from any backend.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RouteError {
    #[error("no backend can serve this network now")]
    NoBackend,
    #[error("no backend has block {0} yet")]
    BlockUnavailable(u64),
    /// Every backend asked claimed block `0` and answered that it is not
    /// there: their heads (or the served head) were stale.
    #[error("no backend has block {0} any more")]
    StaleBlock(u64),
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
    /// Its hedging rules (built from `config.hedge`).
    pub hedging: &'a Hedging,
    /// The counters of its method routes, by position in `config.routes`.
    pub routed: &'a RouteSeries,
}

/// One call for a backend: its method, the params to send (`latest`
/// already pinned) and the lowest head that can serve it.
pub struct Forward<'a> {
    pub method: &'a str,
    pub params: Option<&'a str>,
    pub min_head: u64,
    /// For a read of state (`Method::reads_state`) at a known block: that
    /// block, which only backends that still hold its state can serve.
    pub state_at: Option<u64>,
    /// The block the call names by number (`latest` pinned to the served
    /// head included): a backend whose head is at or above it and that
    /// answers "not found" for it has a stale head. `None`: the call names
    /// no block by number (a hash, a tag, none), and a "not found" is an
    /// answer.
    pub block: Option<u64>,
}

/// Chooses backends that have block `call.min_head` and calls them.
pub async fn forward(
    target: Target<'_>,
    view: &NetworkView,
    call: Forward<'_>,
) -> Result<Reply, RouteError> {
    forward_with(target, view, call, &mut Rng::new()).await
}

/// [`forward`] for an entry of a client batch: its first attempt goes
/// through `batch` (see [`batch`]), when there is one.
pub async fn forward_batched(
    target: Target<'_>,
    view: &NetworkView,
    call: Forward<'_>,
    batch: Option<&Batcher>,
) -> Result<Reply, RouteError> {
    forward_in(target, view, call, &mut Rng::new(), batch).await
}

/// [`forward`] with a given random source (seeded in tests).
pub async fn forward_with(
    target: Target<'_>,
    view: &NetworkView,
    call: Forward<'_>,
    rng: &mut Rng,
) -> Result<Reply, RouteError> {
    forward_in(target, view, call, rng, None).await
}

/// A method with a route goes through it (`routes`); any other the
/// ordinary way.
async fn forward_in(
    target: Target<'_>,
    view: &NetworkView,
    call: Forward<'_>,
    rng: &mut Rng,
    batch: Option<&Batcher>,
) -> Result<Reply, RouteError> {
    if let Some(route) = target.config.route_for(call.method) {
        // Boxed: a method route is the rarer way, and its future, held
        // inline, would make every call's future larger.
        return Box::pin(routes::forward(target, view, route, call, rng)).await;
    }
    ordinary(target, view, call, rng, batch).await
}

/// The primaries, then the fallback tier.
async fn ordinary(
    target: Target<'_>,
    view: &NetworkView,
    call: Forward<'_>,
    rng: &mut Rng,
    batch: Option<&Batcher>,
) -> Result<Reply, RouteError> {
    let waited: Arc<NetworkView>;
    let mut view = view;
    let mut candidates = select::candidates(view, call.min_head);
    if candidates.is_empty() && view.worth_waiting_for(call.min_head) {
        // A block the gateway served that nobody has right now: the nodes
        // are mid-reorg or came back behind. Wait for one to reach it.
        waited = target.upstreams.reaching(call.min_head).await;
        view = &waited;
        if call.block.is_some() && view.served_head.is_some_and(|s| s < call.min_head) {
            // The chain got shorter: pinned again by the pipeline.
            return Err(RouteError::StaleBlock(call.min_head));
        }
        candidates = select::candidates(view, call.min_head);
    }
    let served = view.served_head.ok_or(RouteError::NoBackend)?;
    let mut none = RouteError::NoBackend;
    if candidates.is_empty() {
        if view.best_head.is_some_and(|best| call.min_head <= best) {
            none = RouteError::BlockUnavailable(call.min_head);
        } else {
            // A block no backend has yet: any backend at the served head
            // answers as a node would (null, or "header not found").
            candidates = select::candidates(view, served);
        }
    }
    let primaries = if candidates.is_empty() {
        Err(Unanswered::nothing(none))
    } else {
        try_group(target, candidates, &call, rng, batch).await
    };
    let first = match primaries {
        Ok(reply) => return Ok(reply),
        Err(u) if !u.go_on => return u.into_result(),
        Err(u) => u,
    };
    // Every primary attempt failed (or none could be made): the fallbacks.
    let fallbacks = select::idle_fallbacks(view);
    if fallbacks.is_empty() {
        return first.into_result();
    }
    tracing::debug!(network = %target.config.name, method = call.method, "primaries failed this call; trying the fallbacks");
    // Retries go alone: only a call's first attempt is batched.
    match Box::pin(try_group(target, fallbacks, &call, rng, None)).await {
        Ok(reply) => Ok(reply),
        Err(mut u) => {
            u.missing = u.missing.or(first.missing);
            u.stale = u.stale.or(first.stale);
            u.into_result()
        }
    }
}

/// How the attempts at one tier ended without an answer.
struct Unanswered {
    /// The last failure (`NoBackend` when none happened).
    error: RouteError,
    /// Whether another tier may be tried: no failure said to stop.
    go_on: bool,
    /// A node's own "missing state" answer: what the client gets when every
    /// backend asked answered so and none failed.
    missing: Option<Reply>,
    /// The block a backend claimed and said it did not have (see
    /// [`RouteError::StaleBlock`]).
    stale: Option<u64>,
}

impl Unanswered {
    fn nothing(error: RouteError) -> Unanswered {
        Unanswered {
            error,
            go_on: true,
            missing: None,
            stale: None,
        }
    }

    fn into_result(self) -> Result<Reply, RouteError> {
        match (self.error, self.missing, self.stale) {
            (RouteError::NoBackend, _, Some(block)) => Err(RouteError::StaleBlock(block)),
            (RouteError::NoBackend, Some(reply), None) => Ok(reply),
            (error, _, _) => Err(error),
        }
    }
}

/// One group of candidates (the primaries, the fallbacks, a route's
/// backends): the state filter, then a transaction submitted or a read tried.
async fn try_group(
    target: Target<'_>,
    candidates: Vec<&BackendView>,
    call: &Forward<'_>,
    rng: &mut Rng,
    batch: Option<&Batcher>,
) -> Result<Reply, Unanswered> {
    let (candidates, in_order) = match call.state_at {
        Some(block) => select::holding_state(candidates, block),
        None => (candidates, false),
    };
    let mut order = Order {
        in_order,
        rng,
        batch: None,
    };
    if call.method == "eth_sendRawTransaction" {
        // Boxed: a rare branch need not make every read's future larger.
        return Box::pin(transactions::submit(target, candidates, call.params, order)).await;
    }
    order.batch = batch;
    let again = UpstreamError::worth_retrying;
    attempt(target, candidates, call, again, order).await
}

/// How [`attempt`] picks: P2C, or the candidates' own order.
struct Order<'r> {
    in_order: bool,
    rng: &'r mut Rng,
    /// The client batch's batcher, for the first attempt only.
    batch: Option<&'r Batcher>,
}

impl Order<'_> {
    /// The next candidate to ask, taken out of `candidates`.
    fn take<'v>(&mut self, candidates: &mut Vec<&'v BackendView>) -> Option<&'v BackendView> {
        let choice = if self.in_order {
            candidates.first().copied()
        } else {
            select::pick(candidates, self.rng)
        }?;
        candidates.retain(|c| !std::ptr::eq(*c, choice));
        Some(choice)
    }
}

/// Calls one candidate after another (P2C among those not tried yet, or in
/// order), at most `max_attempts` failures, while `again` says a failure may
/// be retried elsewhere. A node's "missing state" answer to an old state
/// read is retried elsewhere at once and is no failure (it does not eject),
/// but it uses an attempt: a read every node answers so costs `max_attempts`
/// calls, not one per backend. A backend's "not found" for a block it
/// claimed (a stale head) is retried elsewhere and uses nothing. A hedged read
/// (`hedge`) may have two sends in flight: the first good answer wins, a
/// failure of one waits for the other.
async fn attempt(
    target: Target<'_>,
    mut candidates: Vec<&BackendView>,
    call: &Forward<'_>,
    again: fn(&UpstreamError) -> bool,
    mut order: Order<'_>,
) -> Result<Reply, Unanswered> {
    let mut last = Unanswered::nothing(RouteError::NoBackend);
    let mut failures = 0;
    let mut tries: u32 = 0;
    let timeout = target.config.timeout_for(call.method);
    let mut race = target.hedging.race(call.method);
    let learn = race.is_some();
    // Sends in flight. Only a hedged call can have two at once, so only a
    // hedged call has the set; any other awaits its one send in place,
    // without the set's allocations and the move of each send into a task
    // of its own. The send is awaited where it is made: held in a local
    // first, it took a slot of its own in this future besides the one it
    // is awaited in, and was copied between them on every call.
    let mut legs = race.is_some().then(FuturesUnordered::new);
    loop {
        let leg = match legs.as_mut() {
            None => {
                if failures >= target.config.max_attempts {
                    break;
                }
                let Some(choice) = order.take(&mut candidates) else {
                    break;
                };
                tries = tries.saturating_add(1);
                // Only a call's first attempt may ride in a client batch.
                hedge::leg(
                    choice,
                    call.method,
                    call.params,
                    timeout,
                    false,
                    learn,
                    order.batch.take(),
                )
                .await
            }
            Some(legs) => {
                if legs.is_empty() {
                    if failures >= target.config.max_attempts {
                        break;
                    }
                    let Some(choice) = order.take(&mut candidates) else {
                        break;
                    };
                    tries = tries.saturating_add(1);
                    if let Some(race) = race.as_mut() {
                        race.started(&choice.backend, timeout);
                    }
                    legs.push(hedge::leg(
                        choice,
                        call.method,
                        call.params,
                        timeout,
                        false,
                        learn,
                        order.batch.take(),
                    ));
                }
                let hedge_at = race.as_ref().and_then(|r| r.hedge_at());
                match hedge::next(legs, hedge_at).await {
                    Some(Next::Done(leg)) => leg,
                    Some(Next::HedgeDue) => {
                        if let Some(race) = race.as_mut() {
                            match order.take(&mut candidates) {
                                Some(choice) => {
                                    tries = tries.saturating_add(1);
                                    race.hedged(&choice.backend, timeout);
                                    legs.push(hedge::leg(
                                        choice,
                                        call.method,
                                        call.params,
                                        timeout,
                                        true,
                                        learn,
                                        None,
                                    ));
                                }
                                None => race.no_other_backend(),
                            }
                        }
                        continue;
                    }
                    None => break,
                }
            }
        };
        let Leg {
            choice,
            res,
            ejected_now,
            hedge,
        } = leg;
        let error = match res {
            Ok(reply) if stale_head(target, choice, call, &reply) => {
                last.stale = call.block;
                continue;
            }
            Ok(reply) if lacks_state(target, choice, call, &reply) => {
                last.missing = Some(reply);
                failures += 1;
                continue;
            }
            Ok(mut reply) => {
                reply.origin = Some(Origin {
                    backend: Arc::from(choice.backend.name.as_str()),
                    attempts: tries,
                });
                if let (Some(block), false) = (call.state_at, reply.is_error()) {
                    choice.backend.held_state(block, choice.head);
                }
                if let Some(race) = &race {
                    race.answered(hedge, legs.as_ref().map_or(0, FuturesUnordered::len));
                }
                // Dropping `legs` cancels the sends still in flight.
                return Ok(reply);
            }
            Err(error) => error,
        };
        failures += 1;
        note_failure(target, choice, &error, ejected_now);
        last.go_on = again(&error);
        last.error = RouteError::Upstream {
            backend: choice.backend.name.clone(),
            error,
        };
        if !last.go_on {
            break;
        }
    }
    Err(last)
}

/// Methods whose `null` result for a block named by number means the node
/// does not have that block.
const NULL_IF_NO_BLOCK: [&str; 4] = [
    "eth_getBlockByNumber",
    "eth_getHeaderByNumber",
    "eth_getBlockReceipts",
    "eth_getBlockTransactionCountByNumber",
];

/// Methods from whose "missing state" answers a window is learned: their
/// params are an address, a slot, a block, so the node's error text cannot
/// be the caller's (an `eth_call` can revert with any reason it likes).
const TEACHES_STATE: [&str; 5] = [
    "eth_getBalance",
    "eth_getCode",
    "eth_getStorageAt",
    "eth_getTransactionCount",
    "eth_getProof",
];

/// Whether `reply` says `choice` does not have the block the call names,
/// though its head is at or above it: its head is stale, and its tracker is
/// told to probe again (the view keeps it out of reads of the present until
/// then).
fn stale_head(target: Target<'_>, choice: &BackendView, call: &Forward<'_>, reply: &Reply) -> bool {
    let Some(block) = call.block else {
        return false;
    };
    // A block above its head: "not found" is the node's honest answer.
    if block > choice.head {
        return false;
    }
    let null_block =
        !reply.is_error() && reply.raw() == b"null" && NULL_IF_NO_BLOCK.contains(&call.method);
    if !null_block && !reply.is_block_not_found() {
        return false;
    }
    tracing::info!(
        network = %target.config.name, backend = %choice.backend.name, block, head = choice.head,
        "backend does not have a block below the head it claimed: its head is probed again"
    );
    choice.backend.head_doubt.raise();
    target.upstreams.refresh();
    true
}

/// Whether `reply` says `choice` lacks the state of an old block the call
/// reads (then it is asked elsewhere); if so and the method cannot carry a
/// caller's words, what that teaches is noted (and the view rebuilt with it).
fn lacks_state(
    target: Target<'_>,
    choice: &BackendView,
    call: &Forward<'_>,
    reply: &Reply,
) -> bool {
    let Some(block) = call.state_at else {
        return false;
    };
    // At its head a node has the state: such an answer is about something else.
    if block >= choice.head || !reply.is_missing_state() {
        return false;
    }
    if TEACHES_STATE.contains(&call.method) && choice.backend.lacks_state(block, choice.head) {
        tracing::info!(
            network = %target.config.name, backend = %choice.backend.name, block, head = choice.head,
            kept = ?choice.backend.state_history(),
            "backend lacks old state: its state reads below the learned window go elsewhere"
        );
        target.upstreams.refresh();
    }
    true
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
