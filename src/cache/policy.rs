//! What may be cached, decided per request from the method and its params
//! alone (the view and the answer decide the rest, see [`super::Cache`]).
//! The block argument is read once per call, by the router
//! ([`crate::router::blocks::BlockRef`]), and decided on here.
//!
//! The policy is a type rather than a set of flags so that every method has
//! one explicit reason to be cached, shared or passed through:
//! - chain constants are kept for good;
//! - reads keyed by a block hash are kept unless that block is replaced;
//! - reads of an explicit block number are kept once that block is final, or
//!   deep enough when `confirmations` is configured, bound to its hash;
//! - transaction lookups are kept once their block is final (a transaction
//!   can move to another block in a reorg);
//! - reads of the present (`latest` pinned by the router, `safe`, `finalized`)
//!   are never kept, but identical ones in flight share one upstream call;
//! - everything else (writes, filters, subscriptions, `pending`, methods we
//!   do not know) passes through untouched.

use serde_json::value::RawValue;

use super::canon::{parse_hash, Hash};
use crate::router::blocks::{BlockRef, Need};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Policy {
    /// Straight upstream: not cached, not shared.
    Never,
    /// Not cacheable, but identical calls in flight share one upstream call.
    Share,
    /// A chain constant (`net_version`).
    Constant,
    /// Keyed by a block hash: kept unless that block is replaced.
    ByHash(Hash),
    /// A read of block `number`. `pin_at`: the params index of the block
    /// argument, which may be rewritten to `{"blockHash": ...}` so that the
    /// node answers for exactly the block the entry is bound to.
    AtBlock { number: u64, pin_at: Option<usize> },
    /// `eth_getLogs` over a closed range of explicit block numbers.
    LogRange { from: u64, to: u64 },
    /// `eth_getTransactionByHash` / `eth_getTransactionReceipt`.
    Transaction,
}

impl Policy {
    /// Whether an answer may be stored at all (before the view and the answer say more).
    pub fn may_store(&self) -> bool {
        !matches!(self, Policy::Never | Policy::Share)
    }

    /// Whether an answer is forever-cacheable, and so goes to the shared tier.
    pub fn is_forever(&self) -> bool {
        matches!(self, Policy::Constant | Policy::ByHash(_))
    }
}

/// Decides the policy of one call from what the router read of it: `need`
/// holds the params sent upstream (`latest` already pinned), whether the
/// caller asked for `latest`, and the block argument as the caller wrote it.
pub fn decide(method: &str, need: &Need<'_>) -> Policy {
    let params = need.params.as_deref();
    let list = || -> Option<Vec<&RawValue>> { serde_json::from_str(params?).ok() };
    // The router's block table puts the block argument of each of these
    // methods where they take it; the cache only decides what it means.
    let at = |pin: Option<usize>| -> Policy {
        if need.pinned_latest {
            return Policy::Share;
        }
        match need.block {
            Some(BlockRef::Number(number)) => Policy::AtBlock {
                number,
                pin_at: pin,
            },
            Some(BlockRef::Earliest) => Policy::AtBlock {
                number: 0,
                pin_at: pin,
            },
            Some(BlockRef::Hash(h)) => Policy::ByHash(h),
            Some(BlockRef::Latest | BlockRef::Tag) => Policy::Share,
            Some(BlockRef::Pending | BlockRef::Unknown) | None => Policy::Never,
        }
    };
    let by_hash = || -> Policy {
        let hash = list()
            .and_then(|l| l.first().copied())
            .and_then(|raw| serde_json::from_str::<&str>(raw.get()).ok())
            .and_then(parse_hash);
        hash.map_or(Policy::Never, Policy::ByHash)
    };
    match method {
        "net_version" | "eth_chainId" => Policy::Constant,
        "eth_getBlockByHash"
        | "eth_getBlockTransactionCountByHash"
        | "eth_getTransactionByBlockHashAndIndex" => by_hash(),
        "eth_getBlockByNumber" | "eth_getBlockReceipts" => at(None),
        "eth_getBalance" | "eth_getCode" | "eth_getTransactionCount" | "eth_call" => at(Some(1)),
        "eth_getStorageAt" => at(Some(2)),
        "eth_getLogs" => logs(list().as_deref(), need.pinned_latest),
        "eth_getTransactionByHash" | "eth_getTransactionReceipt" => Policy::Transaction,
        // Reads of the present with no block argument: shared while in flight.
        "eth_gasPrice"
        | "eth_maxPriorityFeePerGas"
        | "eth_blobBaseFee"
        | "eth_feeHistory"
        | "eth_estimateGas" => Policy::Share,
        _ => Policy::Never,
    }
}

fn logs(list: Option<&[&RawValue]>, pinned_latest: bool) -> Policy {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Filter<'a> {
        #[serde(borrow)]
        from_block: Option<&'a RawValue>,
        #[serde(borrow)]
        to_block: Option<&'a RawValue>,
        block_hash: Option<&'a str>,
    }
    if pinned_latest {
        return Policy::Share;
    }
    let Some(filter) = list
        .and_then(|l| l.first())
        .and_then(|raw| serde_json::from_str::<Filter>(raw.get()).ok())
    else {
        return Policy::Never;
    };
    if let Some(h) = filter.block_hash {
        return parse_hash(h).map_or(Policy::Never, Policy::ByHash);
    }
    let number = |raw: Option<&RawValue>| match raw.map(BlockRef::parse) {
        Some(BlockRef::Number(n)) => Some(n),
        Some(BlockRef::Earliest) => Some(0),
        _ => None,
    };
    match (number(filter.from_block), number(filter.to_block)) {
        (Some(from), Some(to)) if from <= to => Policy::LogRange { from, to },
        _ => Policy::Share,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::router::blocks::analyze;

    const H: &str = "0x88e96d4537bea4d9c05d12549907b32561d3bf31f45aae734cdc119f13406cb6";

    fn hash() -> Hash {
        parse_hash(H).unwrap()
    }

    /// The policy of a call as the router hands it over (`latest` pinned
    /// to a served head of 0x20).
    fn p(method: &str, params: &str) -> Policy {
        let raw = RawValue::from_string(params.to_string()).unwrap();
        decide(method, &analyze(method, Some(&raw), 0x20))
    }

    fn no_params(method: &str) -> Policy {
        decide(method, &analyze(method, None, 0x20))
    }

    #[test]
    fn forever() {
        assert_eq!(no_params("net_version"), Policy::Constant);
        assert_eq!(
            p("eth_getBlockByHash", &format!(r#"["{H}",false]"#)),
            Policy::ByHash(hash())
        );
        assert_eq!(
            p(
                "eth_getTransactionByBlockHashAndIndex",
                &format!(r#"["{H}","0x0"]"#)
            ),
            Policy::ByHash(hash())
        );
        assert_eq!(
            p(
                "eth_call",
                &format!(r#"[{{"to":"0x1"}},{{"blockHash":"{H}"}}]"#)
            ),
            Policy::ByHash(hash())
        );
        assert_eq!(
            p("eth_getLogs", &format!(r#"[{{"blockHash":"{H}"}}]"#)),
            Policy::ByHash(hash())
        );
        assert_eq!(
            p("eth_getBlockReceipts", &format!(r#"["{H}"]"#)),
            Policy::ByHash(hash())
        );
        assert_eq!(p("eth_getBlockByHash", r#"["0x12",false]"#), Policy::Never);
    }

    #[test]
    fn explicit_blocks() {
        assert_eq!(
            p("eth_getBlockByNumber", r#"["0x10",true]"#),
            Policy::AtBlock {
                number: 16,
                pin_at: None
            }
        );
        assert_eq!(
            p("eth_getBalance", r#"["0xab","0x7"]"#),
            Policy::AtBlock {
                number: 7,
                pin_at: Some(1)
            }
        );
        assert_eq!(
            p(
                "eth_getStorageAt",
                r#"["0xab","0x0",{"blockNumber":"0x9"}]"#
            ),
            Policy::AtBlock {
                number: 9,
                pin_at: Some(2)
            }
        );
        assert_eq!(
            p("eth_getCode", r#"["0xab","earliest"]"#),
            Policy::AtBlock {
                number: 0,
                pin_at: Some(1)
            }
        );
        assert_eq!(
            p("eth_getLogs", r#"[{"fromBlock":"0x1","toBlock":"0x5"}]"#),
            Policy::LogRange { from: 1, to: 5 }
        );
        assert_eq!(
            p("eth_getTransactionReceipt", &format!(r#"["{H}"]"#)),
            Policy::Transaction
        );
    }

    #[test]
    fn the_present_is_never_kept() {
        // `latest` arrives pinned to a number, with the flag set.
        assert_eq!(p("eth_getBalance", r#"["0xab","latest"]"#), Policy::Share);
        assert_eq!(p("eth_call", r#"[{"to":"0x1"}]"#), Policy::Share);
        assert_eq!(
            p("eth_getCode", r#"["0xab",{"blockNumber":"latest"}]"#),
            Policy::Share
        );
        assert_eq!(p("eth_getLogs", r#"[{"fromBlock":"0x1"}]"#), Policy::Share);
        assert_eq!(
            p("eth_getLogs", r#"[{"fromBlock":"0x1","toBlock":"latest"}]"#),
            Policy::Share
        );
        assert_eq!(p("eth_getBalance", r#"["0xab","pending"]"#), Policy::Never);
        assert_eq!(p("eth_getBalance", r#"["0xab","safe"]"#), Policy::Share);
        assert_eq!(
            p("eth_getBlockByNumber", r#"["finalized",false]"#),
            Policy::Share
        );
        assert_eq!(p("eth_getLogs", r#"[{"fromBlock":"0x1"}]"#), Policy::Share);
        assert_eq!(
            p("eth_getLogs", r#"[{"fromBlock":"0x5","toBlock":"0x1"}]"#),
            Policy::Share
        );
        for m in [
            "eth_sendRawTransaction",
            "eth_newFilter",
            "eth_getFilterChanges",
            "eth_subscribe",
            "eth_accounts",
        ] {
            assert_eq!(p(m, "[]"), Policy::Never, "{m}");
        }
        assert_eq!(no_params("eth_gasPrice"), Policy::Share);
        assert_eq!(p("eth_getBalance", r#"{"a":1}"#), Policy::Never);
        assert_eq!(p("eth_getBalance", r#"["0xab","0xzz"]"#), Policy::Never);
    }
}
