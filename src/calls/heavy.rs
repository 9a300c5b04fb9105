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
    /// `eth_getFilterLogs` while the gateway does not own filters: the node
    /// would run the filter's whole range, which the gateway cannot see
    /// (the range was given to `eth_newFilter`, maybe through another
    /// gateway), so no bound could hold.
    #[error("eth_getFilterLogs is not served while filters.enabled is false")]
    NodeFilterLogs,
}

/// Refuses `eth_getFilterLogs` when it would reach a node's own filter
/// (`owned`: the gateway answers filter methods itself).
pub(crate) fn check_node_filter_logs(method: &str, owned: bool) -> Result<(), HeavyCallRefusal> {
    if !owned && method == "eth_getFilterLogs" {
        return Err(HeavyCallRefusal::NodeFilterLogs);
    }
    Ok(())
}

/// Refuses a log filter spanning more than `limit` blocks.
pub(crate) fn check_logs(pinned: &Pinned<'_>, limit: u64) -> Result<(), HeavyCallRefusal> {
    match pinned.log_blocks {
        Some(blocks) if blocks > limit => Err(HeavyCallRefusal::LogRange { blocks, limit }),
        _ => Ok(()),
    }
}
