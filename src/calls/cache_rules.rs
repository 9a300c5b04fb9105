//! The cache's rules as the pipeline hands a call over: block pinning
//! (`super::pinning`) first, then [`crate::cache::rule::decide`] on what it
//! found. They are tested together here, in the stage that runs them in that
//! order, because the rule of a call depends on what pinning made of its
//! params (`latest` pinned to the served head is a read of that block).

use serde_json::value::RawValue;

use crate::cache::rule::{decide, CacheRule};
use crate::calls::pinning::pin;
use crate::eth::methods::lookup;
use crate::eth::{parse_hash, BlockArg, Hash};

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
        CacheRule::Share
    );
    assert_eq!(
        p("eth_getLogs", r#"[{"fromBlock":"0x1","toBlock":"latest"}]"#),
        CacheRule::Share
    );
    assert_eq!(
        p("eth_getBalance", r#"["0xab","pending"]"#),
        CacheRule::Never
    );
    assert_eq!(p("eth_getBalance", r#"["0xab","safe"]"#), CacheRule::Share);
    assert_eq!(
        p("eth_getBlockByNumber", r#"["finalized",false]"#),
        CacheRule::Share
    );
    assert_eq!(
        p("eth_getLogs", r#"[{"fromBlock":"0x1"}]"#),
        CacheRule::Share
    );
    assert_eq!(
        p("eth_getLogs", r#"[{"fromBlock":"0x5","toBlock":"0x1"}]"#),
        CacheRule::Share
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
    assert_eq!(no_params("eth_estimateGas"), CacheRule::Share);
    assert_eq!(p("eth_getBalance", r#"{"a":1}"#), CacheRule::Never);
    assert_eq!(p("eth_getBalance", r#"["0xab","0xzz"]"#), CacheRule::Never);
}
