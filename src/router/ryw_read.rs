//! Where a read of a remembered send goes (`ryw` decides which reads those
//! are): to a backend where the send's effect is visible, never merely to
//! the one that accepted it.
//!
//! The accepting backend can lose the send without the gateway knowing yet:
//! a node killed and restarted from an older disk replays its history, and
//! for a moment it answers from block 17 while its head tracker still says
//! 137; its pool is gone too. So:
//! - a backend whose head is unknown (doubted after a reconnect) or below
//!   the served head the send was seen at is no target (`Steer::seen_at`);
//! - a `pending` nonce is taken only from backends that show the send
//!   (`eth_getTransactionByHash` of it is not `null`: in its pool or in a
//!   block it has), asked just before the count. A node that shows the
//!   transaction counts it in its sender's pending nonce, whoever that
//!   sender is, so no signature needs recovering. Every such backend is
//!   asked, and the highest count wins: the send this gateway knows of may
//!   not be the wallet's last (one made through another replica whose
//!   record did not reach Redis), and a node only ever counts too few;
//! - a count of the send's own sender at or below the send's nonce (both as
//!   the backend shows the send) is no answer yet: the node is caught
//!   between two states (its pool reset for a new block, say), and all are
//!   asked again in a moment. A count of another address (one client may
//!   send for many) is taken as it is;
//! - when no backend shows it (the node that took it went away before
//!   passing it on), the read waits for it to show, in a block most likely,
//!   asking again every [`RETRY`], for `read_your_writes.wait_for_send` at
//!   most; then it is routed as usual: the send may truly be lost, and the
//!   nodes' count is then the truth.
//!
//! Receipts and transactions by hash go to the accepting backend when it is
//! a target; a `null` there is the node's answer, as before.

use std::time::Duration;

use fastrand::Rng;
use futures_util::future::join_all;
use tokio::time::Instant;

use super::ryw::{Read, RecentSends, Steer};
use super::{attempt, forward, select, Forward, Order, RouteError, Target};
use crate::jsonrpc::Reply;
use crate::metrics::RywRead;
use crate::upstream::{BackendView, NetworkView, UpstreamError};

/// How often a nonce read that found the send nowhere looks again.
const RETRY: Duration = Duration::from_millis(250);

/// Routes `call`, a read of the send `steer` names, as the module docs say.
pub async fn forward_preferring(
    target: Target<'_>,
    view: &NetworkView,
    call: Forward<'_>,
    steer: &Steer,
    recent: &RecentSends,
) -> Result<Reply, RouteError> {
    let answer = match steer.read {
        Read::Transaction => at_accepting(target, view, &call, steer).await,
        Read::Nonce => where_it_shows(target, view, &call, steer, recent.wait_for_send).await,
    };
    if let Some((reply, outcome)) = answer {
        recent.series.read(outcome).inc();
        return Ok(reply);
    }
    tracing::debug!(network = %target.config.name, backend = %steer.backend, method = call.method, "no backend shows the send; routed as usual");
    recent.series.read(RywRead::Fallback).inc();
    forward(target, view, call).await
}

/// The backends a steered read may go to: candidates with a known head at
/// or above the one the send was seen at, the accepting backend first.
fn targets<'v>(view: &'v NetworkView, call: &Forward<'_>, steer: &Steer) -> Vec<&'v BackendView> {
    let mut targets = select::candidates(view, call.min_head.max(steer.seen_at).max(1));
    fastrand::shuffle(&mut targets);
    if let Some(i) = targets
        .iter()
        .position(|b| *b.backend.name == *steer.backend)
    {
        targets.swap(0, i);
    }
    targets
}

async fn at_accepting(
    target: Target<'_>,
    view: &NetworkView,
    call: &Forward<'_>,
    steer: &Steer,
) -> Option<(Reply, RywRead)> {
    let first = targets(view, call, steer)
        .into_iter()
        .next()
        .filter(|b| *b.backend.name == *steer.backend)?;
    let reply = ask(target, first, call).await?;
    Some((reply, RywRead::Steered))
}

async fn where_it_shows(
    target: Target<'_>,
    view: &NetworkView,
    call: &Forward<'_>,
    steer: &Steer,
    wait: Duration,
) -> Option<(Reply, RywRead)> {
    let until = Instant::now() + wait;
    let params = format!("[\"{}\"]", crate::eth::hash::to_hex(&steer.hash));
    // The address whose count is read: `[address, "pending"]`.
    let reader = call
        .params
        .and_then(|p| serde_json::from_str::<(&str, serde::de::IgnoredAny)>(p).ok())
        .map(|(address, _)| address);
    let mut fresh = None;
    loop {
        let view = fresh.as_deref().unwrap_or(view);
        let asks = targets(view, call, steer).into_iter().map(|b| {
            let params = &params;
            async move {
                let Some(sent) = shows(target, b, params).await else {
                    tracing::debug!(backend = %b.backend.name, "the send does not show here");
                    return None;
                };
                let reply = ask(target, b, call).await?;
                tracing::debug!(backend = %b.backend.name, count = ?reply.parse_result::<&str>(), "the send shows here");
                let short = sent.counts_short(reader, count(&reply));
                Some((b, reply, short))
            }
        });
        let answers: Vec<_> = join_all(asks).await.into_iter().flatten().collect();
        let now = Instant::now();
        // A backend that shows the send but counts its sender short of it
        // is a node caught mid-update: asked again.
        let settled = answers.iter().any(|(_, _, short)| !short);
        let shown = !answers.is_empty();
        if settled || now >= until {
            let answers = answers.into_iter().map(|(b, reply, _)| (b, reply));
            if let Some((b, reply)) = highest(answers) {
                let outcome = if *b.backend.name == *steer.backend {
                    RywRead::Steered
                } else {
                    RywRead::Elsewhere
                };
                return Some((reply, outcome));
            }
        }
        if now >= until {
            return None;
        }
        if shown {
            tracing::debug!("the send shows, but counted short of it; asking again");
        }
        tokio::time::sleep(RETRY.min(until - now)).await;
        fresh = Some(target.upstreams.view());
    }
}

/// The answer with the highest count (answers that are not a count come
/// last, in order).
fn highest<'v>(
    answers: impl Iterator<Item = (&'v BackendView, Reply)>,
) -> Option<(&'v BackendView, Reply)> {
    let mut best: Option<(&BackendView, Reply, Option<u64>)> = None;
    for (b, reply) in answers {
        let n = count(&reply);
        if best.as_ref().is_none_or(|(_, _, top)| n > *top) {
            best = Some((b, reply, n));
        }
    }
    best.map(|(b, reply, _)| (b, reply))
}

/// The count a nonce read answered, if it is one.
fn count(r: &Reply) -> Option<u64> {
    r.parse_result::<&str>()
        .and_then(crate::eth::parse_quantity)
}

/// A send as a backend shows it: its sender and nonce, when given.
struct Shown {
    from: Option<String>,
    nonce: Option<u64>,
}

impl Shown {
    /// Whether `count`, read for `reader`, leaves this send out: the
    /// sender's count at or below the send's nonce.
    fn counts_short(&self, reader: Option<&str>, count: Option<u64>) -> bool {
        let (Some(from), Some(reader), Some(nonce), Some(count)) =
            (&self.from, reader, self.nonce, count)
        else {
            return false;
        };
        from.eq_ignore_ascii_case(reader) && count <= nonce
    }
}

/// What backend `b` shows of the transaction (`params`: its hash), if it
/// knows it: pending in its pool, or in a block it has.
async fn shows(target: Target<'_>, b: &BackendView, params: &str) -> Option<Shown> {
    #[derive(serde::Deserialize)]
    struct Tx<'a> {
        from: Option<&'a str>,
        nonce: Option<&'a str>,
    }
    let method = "eth_getTransactionByHash";
    let (reply, _) = b
        .backend
        .call(method, Some(params), target.config.timeout_for(method))
        .await;
    let reply = reply.ok().filter(|r| !r.is_error() && r.raw() != b"null")?;
    let tx = reply.parse_result::<Tx>();
    Some(Shown {
        from: tx.as_ref().and_then(|t| t.from).map(str::to_owned),
        nonce: tx
            .as_ref()
            .and_then(|t| t.nonce)
            .and_then(crate::eth::parse_quantity),
    })
}

/// `call` on backend `b` alone (its own retries on that backend aside).
async fn ask(target: Target<'_>, b: &BackendView, call: &Forward<'_>) -> Option<Reply> {
    let order = Order {
        in_order: true,
        rng: &mut Rng::new(),
        batch: None,
    };
    attempt(target, vec![b], call, UpstreamError::worth_retrying, order)
        .await
        .ok()
}
