//! What may be cached, decided per call from the method and its pinned
//! params alone (the view and the answer decide the rest, see
//! [`super::Cache`]). The method table ([`crate::eth::methods`]) says how
//! each method may be cached and where its block argument is; block pinning
//! ([`crate::eth::pinning`]) has already parsed that argument once.
//!
//! The rule is a type rather than a set of flags so that every call has
//! one explicit reason to be cached, coalesced or passed through:
//! - chain constants are kept for good;
//! - reads keyed by a block hash are kept unless that block is replaced;
//! - reads of an explicit block number are kept once that block is final, or
//!   deep enough when `confirmations` is configured, bound to its hash;
//! - transaction lookups are kept once their block is final (a transaction
//!   can move to another block in a reorg);
//! - reads of the present with `latest` pinned to the served head N are
//!   reads of block N, the same question for everyone while N is the head:
//!   kept bound to N's hash (when the network's `block_scoped` is on), and
//!   so are fee reads (`eth_gasPrice` and the like), per served head;
//! - other reads of the present (`safe`, `finalized`, estimates) are never
//!   kept, but identical ones in flight are coalesced into one upstream call;
//! - everything else (writes, filters, subscriptions, `pending`, methods we
//!   do not know) passes through untouched.

use serde_json::value::RawValue;

use crate::eth::methods::{BlockArg, Caching};
use crate::eth::{BlockRef, Hash, Method, Pinned};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheRule {
    /// Straight upstream: not cached, not coalesced.
    Never,
    /// Not cacheable, but identical calls in flight are coalesced into one
    /// upstream call.
    Coalesce,
    /// A chain constant (`net_version`).
    Constant,
    /// Keyed by a block hash: kept unless that block is replaced.
    ByHash(Hash),
    /// A read of block `number`. `pin_at`: the params index of the block
    /// argument, which may be rewritten to `{"blockHash": ...}` so that the
    /// node answers for exactly the block the entry is bound to.
    AtBlock { number: u64, pin_at: Option<usize> },
    /// A read of the present that is the same for everyone while block
    /// `number` is the served head (fees).
    PerHead { number: u64 },
    /// `eth_getLogs` over a closed range of explicit block numbers.
    LogRange { from: u64, to: u64 },
    /// `eth_getTransactionByHash` / `eth_getTransactionReceipt`.
    Transaction,
}

impl CacheRule {
    /// Whether an answer may be stored at all (before the view and the answer say more).
    pub fn may_store(&self) -> bool {
        !matches!(self, CacheRule::Never | CacheRule::Coalesce)
    }

    /// Whether an answer is forever-cacheable, and so goes to the Redis store.
    pub fn is_forever(&self) -> bool {
        matches!(self, CacheRule::Constant | CacheRule::ByHash(_))
    }
}

/// Decides the rule of one call of `method` (`None`: a method the table
/// does not know) from its pinned params.
pub fn decide(method: Option<&Method>, pinned: &Pinned<'_>) -> CacheRule {
    let Some(method) = method else {
        return CacheRule::Never;
    };
    let at = |pin_at: Option<usize>| -> CacheRule {
        if pinned.pinned_latest {
            // Pinned to the served head: a read of that block.
            return CacheRule::AtBlock {
                number: pinned.min_head,
                pin_at,
            };
        }
        match pinned.block {
            Some(BlockRef::Number(number)) => CacheRule::AtBlock { number, pin_at },
            Some(BlockRef::Earliest) => CacheRule::AtBlock { number: 0, pin_at },
            Some(BlockRef::Hash(h)) => CacheRule::ByHash(h),
            Some(BlockRef::Latest | BlockRef::Tag) => CacheRule::Coalesce,
            Some(BlockRef::Pending | BlockRef::Unknown | BlockRef::Unreadable) | None => {
                CacheRule::Never
            }
        }
    };
    match method.caching {
        Caching::Never => CacheRule::Never,
        Caching::Coalesce => CacheRule::Coalesce,
        Caching::PerHead => match pinned.block {
            Some(BlockRef::Pending | BlockRef::Unknown | BlockRef::Unreadable) => CacheRule::Never,
            _ => CacheRule::PerHead {
                number: pinned.min_head,
            },
        },
        Caching::Constant => CacheRule::Constant,
        Caching::ByHash => match pinned.block {
            Some(BlockRef::Hash(h)) => CacheRule::ByHash(h),
            _ => CacheRule::Never,
        },
        Caching::AtBlock => at(None),
        Caching::StateAtBlock => match method.block {
            BlockArg::At(i) | BlockArg::AtOrLatest(i) => at(Some(i)),
            _ => CacheRule::Never,
        },
        Caching::LogRange => logs(pinned),
        Caching::Transaction => CacheRule::Transaction,
    }
}

fn logs(pinned: &Pinned<'_>) -> CacheRule {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Filter<'a> {
        #[serde(borrow)]
        from_block: Option<&'a RawValue>,
        #[serde(borrow)]
        to_block: Option<&'a RawValue>,
        block_hash: Option<&'a str>,
    }
    if pinned.pinned_latest {
        return CacheRule::Coalesce;
    }
    // A key a node reads as a range field but that is not spelled as one
    // (`fRomBlock`): the range read here is not the node's, so nothing is
    // keyed by it (the pipeline refuses such a filter anyway).
    if pinned.odd_filter_key.is_some() || pinned.unreadable.is_some() {
        return CacheRule::Never;
    }
    let list = pinned
        .params
        .as_deref()
        .and_then(|p| serde_json::from_str::<Vec<&RawValue>>(p).ok());
    let Some(filter) = list
        .as_deref()
        .and_then(|l| l.first())
        .and_then(|raw| serde_json::from_str::<Filter>(raw.get()).ok())
    else {
        return CacheRule::Never;
    };
    if let Some(h) = filter.block_hash {
        return crate::eth::parse_hash(h).map_or(CacheRule::Never, CacheRule::ByHash);
    }
    let number = |raw: Option<&RawValue>| raw.map(BlockRef::parse).and_then(BlockRef::number);
    match (number(filter.from_block), number(filter.to_block)) {
        (Some(from), Some(to)) if from <= to => CacheRule::LogRange { from, to },
        _ => CacheRule::Coalesce,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eth::methods::lookup;
    use crate::eth::{parse_hash, pin};

    const H: &str = "0x88e96d4537bea4d9c05d12549907b32561d3bf31f45aae734cdc119f13406cb6";

    fn hash() -> Hash {
        parse_hash(H).unwrap()
    }

    /// The rule of a call as the pipeline hands it over (`latest` pinned
    /// to a served head of 0x20).
    fn p(method: &str, params: &str) -> CacheRule {
        let raw = RawValue::from_string(params.to_string()).unwrap();
        decide_pinned(method, Some(&raw))
    }

    fn no_params(method: &str) -> CacheRule {
        decide_pinned(method, None)
    }

    fn decide_pinned(method: &str, params: Option<&RawValue>) -> CacheRule {
        let spec = lookup(method).map(|(_, m)| m);
        let arg = spec.map_or(BlockArg::None, |m| m.block);
        decide(spec, &pin(arg, params, 0x20))
    }

    #[test]
    fn forever() {
        assert_eq!(no_params("net_version"), CacheRule::Constant);
        assert_eq!(
            p("eth_getBlockByHash", &format!(r#"["{H}",false]"#)),
            CacheRule::ByHash(hash())
        );
        assert_eq!(
            p(
                "eth_getTransactionByBlockHashAndIndex",
                &format!(r#"["{H}","0x0"]"#)
            ),
            CacheRule::ByHash(hash())
        );
        assert_eq!(
            p(
                "eth_call",
                &format!(r#"[{{"to":"0x1"}},{{"blockHash":"{H}"}}]"#)
            ),
            CacheRule::ByHash(hash())
        );
        assert_eq!(
            p("eth_getLogs", &format!(r#"[{{"blockHash":"{H}"}}]"#)),
            CacheRule::ByHash(hash())
        );
        assert_eq!(
            p("eth_getBlockReceipts", &format!(r#"["{H}"]"#)),
            CacheRule::ByHash(hash())
        );
        assert_eq!(
            p("eth_getBlockByHash", r#"["0x12",false]"#),
            CacheRule::Never
        );
    }

    #[test]
    fn explicit_blocks() {
        assert_eq!(
            p("eth_getBlockByNumber", r#"["0x10",true]"#),
            CacheRule::AtBlock {
                number: 16,
                pin_at: None
            }
        );
        assert_eq!(
            p("eth_getBalance", r#"["0xab","0x7"]"#),
            CacheRule::AtBlock {
                number: 7,
                pin_at: Some(1)
            }
        );
        assert_eq!(
            p(
                "eth_getStorageAt",
                r#"["0xab","0x0",{"blockNumber":"0x9"}]"#
            ),
            CacheRule::AtBlock {
                number: 9,
                pin_at: Some(2)
            }
        );
        assert_eq!(
            p("eth_getCode", r#"["0xab","earliest"]"#),
            CacheRule::AtBlock {
                number: 0,
                pin_at: Some(1)
            }
        );
        assert_eq!(
            p("eth_getLogs", r#"[{"fromBlock":"0x1","toBlock":"0x5"}]"#),
            CacheRule::LogRange { from: 1, to: 5 }
        );
        assert_eq!(
            p("eth_getTransactionReceipt", &format!(r#"["{H}"]"#)),
            CacheRule::Transaction
        );
    }

    #[test]
    fn the_present_pinned_is_a_read_of_the_served_head() {
        // `latest` arrives pinned to the served head (0x20), with the flag set.
        let head = |pin_at| CacheRule::AtBlock {
            number: 0x20,
            pin_at,
        };
        assert_eq!(p("eth_getBalance", r#"["0xab","latest"]"#), head(Some(1)));
        assert_eq!(p("eth_call", r#"[{"to":"0x1"}]"#), head(Some(1)));
        assert_eq!(
            p("eth_getCode", r#"["0xab",{"blockNumber":"latest"}]"#),
            head(Some(1))
        );
        assert_eq!(p("eth_getBlockByNumber", r#"["latest",false]"#), head(None));
        assert_eq!(
            no_params("eth_gasPrice"),
            CacheRule::PerHead { number: 0x20 }
        );
        assert_eq!(
            p("eth_feeHistory", r#"["0x4","latest",[]]"#),
            CacheRule::PerHead { number: 0x20 }
        );
        assert_eq!(
            p("eth_feeHistory", r#"["0x4","pending",[]]"#),
            CacheRule::Never
        );
    }

    #[test]
    fn other_reads_of_the_present_are_never_kept() {
        assert_eq!(
            p("eth_getLogs", r#"[{"fromBlock":"0x1"}]"#),
            CacheRule::Coalesce
        );
        assert_eq!(
            p("eth_getLogs", r#"[{"fromBlock":"0x1","toBlock":"latest"}]"#),
            CacheRule::Coalesce
        );
        assert_eq!(
            p("eth_getBalance", r#"["0xab","pending"]"#),
            CacheRule::Never
        );
        assert_eq!(
            p("eth_getBalance", r#"["0xab","safe"]"#),
            CacheRule::Coalesce
        );
        assert_eq!(
            p("eth_getBlockByNumber", r#"["finalized",false]"#),
            CacheRule::Coalesce
        );
        assert_eq!(
            p("eth_getLogs", r#"[{"fromBlock":"0x1"}]"#),
            CacheRule::Coalesce
        );
        assert_eq!(
            p("eth_getLogs", r#"[{"fromBlock":"0x5","toBlock":"0x1"}]"#),
            CacheRule::Coalesce
        );
        for m in [
            "eth_sendRawTransaction",
            "eth_newFilter",
            "eth_getFilterChanges",
            "eth_subscribe",
            "eth_accounts",
        ] {
            assert_eq!(p(m, "[]"), CacheRule::Never, "{m}");
        }
        assert_eq!(no_params("eth_estimateGas"), CacheRule::Coalesce);
        assert_eq!(p("eth_getBalance", r#"{"a":1}"#), CacheRule::Never);
        assert_eq!(p("eth_getBalance", r#"["0xab","0xzz"]"#), CacheRule::Never);
    }
}
