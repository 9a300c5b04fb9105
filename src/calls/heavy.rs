//! Heavy calls refused before any backend is asked.
//!
//! An `eth_getLogs` over millions of blocks costs a node minutes and
//! gigabytes whatever rate limit let it through, so the number of blocks a
//! log filter spans is bounded: per network (`max_logs_block_range`), or by
//! the caller's own tier when it sets one (a paying client may get more).
//! The span comes from block pinning ([`crate::eth::Pinned::log_blocks`]),
//! which has already read the filter's range, with `latest` as the served
//! head and a `blockHash` filter as one block; nothing is parsed again here.
//!
//! A filter with a key that a node reads as one of its fields but that is
//! spelled otherwise (`FROMBLOCK`: Geth matches keys ignoring case) is
//! refused with -32602: the range judged here would not be the one the node
//! serves.

use crate::eth::Pinned;

/// A call too heavy to send to a node.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Heavy {
    #[error("eth_getLogs over {blocks} blocks is over the limit of {limit}")]
    LogRange { blocks: u64, limit: u64 },
    #[error("eth_getLogs filter key {0:?} is not spelled as the field it names")]
    OddFilterKey(String),
}

/// Refuses a log filter spanning more than `limit` blocks.
pub(crate) fn check_logs(pinned: &Pinned<'_>, limit: u64) -> Result<(), Heavy> {
    if let Some(key) = &pinned.odd_filter_key {
        return Err(Heavy::OddFilterKey(key.clone()));
    }
    match pinned.log_blocks {
        Some(blocks) if blocks > limit => Err(Heavy::LogRange { blocks, limit }),
        _ => Ok(()),
    }
}
