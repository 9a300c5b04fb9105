//! Every way one call of the per-call tier can fail, as one enum: the
//! errors of the layers below (envelope, policy, router, filters,
//! subscriptions) and the tier's own (budgets, panics, params a node would
//! read otherwise). [`super::rescue`] turns each into what the client sees,
//! and `calls` fails a call with it in one place.

use crate::eth::Pinned;
use crate::filters::FilterError;
use crate::jsonrpc::PayloadError;
use crate::policy::Refusal;
use crate::router::RouteError;
use crate::subscriptions::SubscriptionError;

use super::heavy::HeavyCallRefusal;

/// Why a call got no reply.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CallError {
    /// A body that could not be read as calls at all.
    #[error(transparent)]
    Payload(#[from] PayloadError),
    /// One entry that is not a valid request.
    #[error("invalid request: {0}")]
    Invalid(&'static str),
    /// Refused by the client policy.
    #[error(transparent)]
    Refused(#[from] Refusal),
    #[error(transparent)]
    Params(#[from] ParamsError),
    #[error(transparent)]
    Heavy(#[from] HeavyCallRefusal),
    #[error(transparent)]
    Subscription(#[from] SubscriptionError),
    /// No backend answered (upstream failures included).
    #[error(transparent)]
    Route(#[from] RouteError),
    #[error(transparent)]
    Filter(#[from] FilterError),
    /// A batch entry whose answer would take the batch's answers past
    /// `limit` bytes. `ran`: the call ran, and was counted by how it ended.
    #[error("batch response is over the limit of {limit} bytes")]
    BatchOverBudget { limit: usize, ran: bool },
    /// An answer larger than the connection may queue (a WebSocket's share
    /// of the answer budget, see `subscriptions::outbox`).
    #[error("the answer is over this connection's limit of {limit} bytes")]
    AnswerOverShare { limit: usize },
    /// The answer budget stayed full for `server.memory_wait`.
    #[error("the answer budget stayed full")]
    MemoryBusy,
    /// A panic caught while answering (see `panics`).
    #[error("panic: {0}")]
    Panicked(String),
}

/// Params that a node would read otherwise than the gateway did.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ParamsError {
    /// A log filter key that a node reads as one of its fields but that is
    /// spelled otherwise (`FROMBLOCK`: Geth matches keys ignoring case): the
    /// range the gateway judged would not be the one the node serves.
    #[error("eth_getLogs filter key {0:?} is not spelled as the field it names")]
    OddFilterKey(String),
    /// A block argument nodes do not all read as one block (`0X0`, `0x00`):
    /// its JSON text. The gateway cannot judge what it asks.
    #[error("block argument {0} is not read the same way by every node")]
    UnreadableBlock(String),
}

impl ParamsError {
    /// Refuses the params block pinning found to be read otherwise by a node.
    pub(crate) fn check(pinned: &Pinned<'_>) -> Result<(), ParamsError> {
        if let Some(key) = &pinned.odd_filter_key {
            return Err(ParamsError::OddFilterKey(key.clone()));
        }
        match &pinned.unreadable {
            Some(text) => Err(ParamsError::UnreadableBlock(text.clone())),
            None => Ok(()),
        }
    }
}
