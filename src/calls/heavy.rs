//! Calls too heavy to send to a node, refused before any backend is asked.
//!
//! An `eth_getLogs` over millions of blocks costs a node minutes and
//! gigabytes whatever rate limit let it through, so the number of blocks a
//! log filter spans is bounded: per network (`max_logs_block_range`), or by
//! the caller's own tier when it sets one (a paying client may get more).
//! The span comes from block pinning ([`crate::eth::Pinned::log_blocks`]),
//! which has already read the filter's range, with `latest` as the served
//! head and a `blockHash` filter as one block; nothing is parsed again here.

use crate::eth::Pinned;

/// Why a call was refused as too heavy for a node.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum HeavyCallRefusal {
    #[error("eth_getLogs over {blocks} blocks is over the limit of {limit}")]
    LogRange { blocks: u64, limit: u64 },
}

/// Refuses a log filter spanning more than `limit` blocks.
pub(crate) fn check_logs(pinned: &Pinned<'_>, limit: u64) -> Result<(), HeavyCallRefusal> {
    match pinned.log_blocks {
        Some(blocks) if blocks > limit => Err(HeavyCallRefusal::LogRange { blocks, limit }),
        _ => Ok(()),
    }
}
