//! The cache's decisions as a table: for a call over a hand-made view and
//! chain, whether it is looked up, whether its answer is stored and bound to
//! what, and whether that entry is still served after a reorg replaced the
//! top of the chain. No backend and no store: only [`rule::decide`],
//! [`plan`] and [`Planned::entry_for`], the code a miss goes through.

use bytes::Bytes;
use futures_util::FutureExt;
use serde_json::value::RawValue;

use super::rule::{self, CacheRule};
use super::store::Bind;
use super::ticket::{plan, Plan, Planned};
use crate::config::CacheConfig;
use crate::eth::hash::to_hex;
use crate::eth::methods::{lookup, BlockArg};
use crate::eth::{pin, Hash};
use crate::jsonrpc::Reply;
use crate::upstream::chain::{rebuild, stamp_of, Canon, Header};
use crate::upstream::NetworkView;

const SERVED: u64 = 256;
const FINALIZED: u64 = 240;
/// The lowest block the hand-made chain knows.
const LOWER: u64 = 200;
/// The reorg in [`reorged`] replaces this block and every one above it.
const FORK_AT: u64 = 250;

/// The hash of block `n` on `fork` (0: the chain the cache follows).
fn h(fork: u8, n: u64) -> Hash {
    let mut out = [fork; 32];
    out[24..].copy_from_slice(&n.to_be_bytes());
    out
}

fn hex(fork: u8, n: u64) -> String {
    to_hex(&h(fork, n))
}

fn view() -> NetworkView {
    NetworkView {
        served_head: Some(SERVED),
        finalized: Some(FINALIZED),
        ..NetworkView::default()
    }
}

/// The chain `LOWER..=SERVED` as the reorg loop would read it; blocks from
/// `fork_at` up are on `fork`.
fn chain(old: &Canon, fork: u8, fork_at: u64) -> Canon {
    let on = move |n: u64| if n >= fork_at { fork } else { 0 };
    let fetch = move |n: u64| async move {
        Ok(Header {
            number: n,
            hash: h(on(n), n),
            parent: h(on(n.saturating_sub(1)), n.saturating_sub(1)),
        })
    };
    let (mut canon, _) = rebuild(old, SERVED, LOWER, fetch)
        .now_or_never()
        .expect("a ready fetch")
        .expect("a consistent chain");
    canon.stamp = stamp_of(&view());
    canon
}

fn canon() -> Canon {
    chain(&Canon::default(), 0, u64::MAX)
}

/// `canon()` after a reorg replaced `FORK_AT..=SERVED`.
fn reorged() -> Canon {
    chain(&canon(), 1, FORK_AT)
}

/// How the lookup treats a call.
#[derive(Debug, PartialEq, Eq)]
enum Asked {
    /// Straight to the router.
    Pass,
    /// Only coalesced with identical calls in flight.
    Coalesced,
    /// Looked up, and a miss planned.
    Looked,
}

/// What an answer is stored as (`Block(n)`: bound to `h(0, n)`).
#[derive(Debug, PartialEq, Eq)]
enum Kept {
    No,
    Final,
    Block(u64),
    Hash(u64),
}

const ERROR: &str = "error";

fn reply(result: &str) -> Reply {
    let body = if result == ERROR {
        r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32000,"message":"header not found"}}"#
            .to_string()
    } else {
        format!(r#"{{"jsonrpc":"2.0","id":1,"result":{result}}}"#)
    };
    Reply::from_body(Bytes::from(body)).expect("a JSON-RPC reply")
}

fn block(fork: u8, n: u64) -> String {
    format!(
        r#"{{"number":"{n:#x}","hash":"{}","transactions":[]}}"#,
        hex(fork, n)
    )
}

fn receipt(n: u64) -> String {
    format!(
        r#"{{"blockNumber":"{n:#x}","blockHash":"{}","status":"0x1"}}"#,
        hex(0, n)
    )
}

/// What the cache decides for `method(params)` answered with `result`,
/// under `config`, the view and `canon`; the pinned params sent, if any.
fn decide(
    config: &CacheConfig,
    canon: &Canon,
    method: &str,
    params: &str,
    result: &str,
) -> (Asked, Option<String>, Option<Bind>) {
    let spec = lookup(method).map(|(_, m)| m);
    let raw: Box<RawValue> = serde_json::from_str(params).expect("params are JSON");
    let pinned = pin(spec.map_or(BlockArg::None, |m| m.block), Some(&raw), SERVED);
    let rule = rule::decide(spec, &pinned);
    let looked = match rule {
        CacheRule::Never => Asked::Pass,
        CacheRule::Coalesce => Asked::Coalesced,
        _ => Asked::Looked,
    };
    let planned = plan(config, rule, pinned.params.as_deref(), &view(), canon);
    let entry = planned.entry_for(config, canon, &view(), &reply(result));
    (looked, planned.pinned, entry.map(|e| e.bind))
}

fn kept(bind: Option<&Bind>) -> Kept {
    match bind {
        None => Kept::No,
        Some(Bind::Final) => Kept::Final,
        Some(Bind::Blocks { from, hashes }) => {
            assert_eq!(hashes[..], [h(0, *from)], "bound to the chain's hash");
            Kept::Block(*from)
        }
        Some(Bind::Hash { number, .. }) => Kept::Hash(*number),
    }
}

#[test]
fn what_is_looked_up_stored_and_bound_to_what() {
    use Asked::*;
    use Kept::*;
    let config = CacheConfig::default();
    let (canon, after) = (canon(), reorged());
    let addr = r#""0x00000000000000000000000000000000000000ab""#;
    let hash_of = |fork: u8, n: u64| format!(r#"["{}",false]"#, hex(fork, n));
    let tx = format!(r#"["{}"]"#, to_hex(&[7; 32]));
    // (method, params, result, looked up, pinned by hash, kept as, still served after the reorg)
    #[rustfmt::skip]
    let table: Vec<(&str, String, String, Asked, bool, Kept, bool)> = vec![
        // A chain constant: kept for good.
        ("net_version", "[]".into(), r#""1""#.into(), Looked, false, Final, true),
        // A final block by number: kept for good, sent as asked.
        ("eth_getBlockByNumber", r#"["0xe0",false]"#.into(), block(0, 0xe0), Looked, false, Final, true),
        // Above finality: bound to its hash, once the answer shows that block.
        ("eth_getBlockByNumber", r#"["0xfa",false]"#.into(), block(0, 0xfa), Looked, false, Block(0xfa), false),
        ("eth_getBlockByNumber", r#"["0xf5",false]"#.into(), block(0, 0xf5), Looked, false, Block(0xf5), true),
        // A node on the other side of a reorg answered: not kept.
        ("eth_getBlockByNumber", r#"["0xfa",false]"#.into(), block(1, 0xfa), Looked, false, No, true),
        // Errors and null are never kept.
        ("eth_getBlockByNumber", r#"["0xe0",false]"#.into(), ERROR.into(), Looked, false, No, true),
        ("eth_getBlockByNumber", r#"["0xe0",false]"#.into(), "null".into(), Looked, false, No, true),
        // A state read above finality is sent pinned to the bound hash.
        ("eth_getBalance", format!(r#"[{addr},"0xfa"]"#), r#""0x1""#.into(), Looked, true, Block(0xfa), false),
        ("eth_getBalance", format!(r#"[{addr},"latest"]"#), r#""0x1""#.into(), Looked, true, Block(SERVED), false),
        ("eth_getBalance", format!(r#"[{addr},"0x80"]"#), r#""0x1""#.into(), Looked, false, Final, true),
        // safe has no block to bind to; pending is never the cache's.
        ("eth_getBalance", format!(r#"[{addr},"safe"]"#), r#""0x1""#.into(), Coalesced, false, No, true),
        ("eth_getBalance", format!(r#"[{addr},"pending"]"#), r#""0x1""#.into(), Pass, false, No, true),
        ("eth_estimateGas", format!(r#"[{{"to":{addr}}}]"#), r#""0x5208""#.into(), Coalesced, false, No, true),
        // A fee read: kept for the served head.
        ("eth_gasPrice", "[]".into(), r#""0x3b9aca00""#.into(), Looked, false, Block(SERVED), false),
        // By hash: bound to the block while the chain has it there ...
        ("eth_getBlockByHash", hash_of(0, 0xfa), block(0, 0xfa), Looked, false, Block(0xfa), false),
        // ... never kept when the chain has another block at that height ...
        ("eth_getBlockByHash", hash_of(1, 0xfa), block(1, 0xfa), Looked, false, No, true),
        // ... and kept under its hash when the chain does not know it yet.
        ("eth_getBlockByHash", hash_of(2, 1000), block(2, 1000), Looked, false, Hash(1000), true),
        ("eth_getBlockByHash", hash_of(2, 0x10), block(2, 0x10), Looked, false, Final, true),
        // A transaction: bound to the block that holds it, final once that is.
        ("eth_getTransactionReceipt", tx.clone(), receipt(0xf5), Looked, false, Block(0xf5), true),
        ("eth_getTransactionReceipt", tx.clone(), receipt(0xfa), Looked, false, Block(0xfa), false),
        ("eth_getTransactionReceipt", tx.clone(), receipt(0xe0), Looked, false, Final, true),
        // Logs: one block above finality, pinned by hash; a final range; a
        // range above finality is looked up (stored once it was final) but not kept.
        ("eth_getLogs", r#"[{"fromBlock":"0xfa","toBlock":"0xfa"}]"#.into(), "[]".into(), Looked, true, Block(0xfa), false),
        ("eth_getLogs", r#"[{"fromBlock":"0x10","toBlock":"0x20"}]"#.into(), "[]".into(), Looked, false, Final, true),
        ("eth_getLogs", r#"[{"fromBlock":"0xf0","toBlock":"0xfa"}]"#.into(), "[]".into(), Looked, false, No, true),
        // Writes pass.
        ("eth_sendRawTransaction", r#"["0x02"]"#.into(), tx.clone(), Pass, false, No, true),
    ];
    for (method, params, result, looked, pinned, want, survives) in table {
        let row = format!("{method} {params} -> {result}");
        let (got_looked, got_pinned, bind) = decide(&config, &canon, method, &params, &result);
        assert_eq!(got_looked, looked, "{row}: looked up");
        assert_eq!(
            got_pinned.is_some(),
            pinned,
            "{row}: pinned by hash ({got_pinned:?})"
        );
        if let Some(p) = &got_pinned {
            assert!(
                p.contains(&hex(0, kept_block(&want))),
                "{row}: pinned to the bound hash: {p}"
            );
        }
        assert_eq!(kept(bind.as_ref()), want, "{row}: kept as");
        if let Some(bind) = &bind {
            let served = bind.holds(&after, after.is_current(&view()), view().finalized);
            assert_eq!(
                served, survives,
                "{row}: still served after the reorg at {FORK_AT}"
            );
            assert!(
                bind.holds(&canon, true, view().finalized),
                "{row}: served before it"
            );
        }
    }
}

fn kept_block(k: &Kept) -> u64 {
    match k {
        Kept::Block(n) | Kept::Hash(n) => *n,
        _ => 0,
    }
}

#[test]
fn a_chain_not_read_for_the_view_binds_nothing_recent() {
    let config = CacheConfig::default();
    let mut stale = canon();
    stale.stamp = Some((SERVED - 1, 0));
    let params = r#"["0xfa",false]"#;
    let (looked, _, bind) = decide(
        &config,
        &stale,
        "eth_getBlockByNumber",
        params,
        &block(0, 0xfa),
    );
    assert_eq!(looked, Asked::Looked);
    assert_eq!(bind, None, "a stale chain binds nothing above finality");
    let (_, _, bind) = decide(
        &config,
        &stale,
        "eth_getBlockByNumber",
        r#"["0xe0",false]"#,
        &block(0, 0xe0),
    );
    assert_eq!(bind, Some(Bind::Final), "finality needs no chain");
}

#[test]
fn a_reorg_during_the_call_binds_nothing_to_the_old_chain() {
    let config = CacheConfig::default();
    let before = canon();
    let spec = lookup("eth_getBlockByNumber").map(|(_, m)| m);
    let raw: Box<RawValue> = serde_json::from_str(r#"["0xf5",false]"#).expect("JSON");
    let pinned = pin(spec.map_or(BlockArg::None, |m| m.block), Some(&raw), SERVED);
    let planned: Planned = plan(&config, rule::decide(spec, &pinned), None, &view(), &before);
    assert_eq!(planned.plan, Plan::Store(Bind::block(0xf5, h(0, 0xf5))));
    let answer = reply(&block(0, 0xf5));
    assert!(planned
        .entry_for(&config, &before, &view(), &answer)
        .is_some());
    // Block 0xf5 itself stands, but the chain's generation moved on.
    let after = reorged();
    assert!(planned
        .entry_for(&config, &after, &view(), &answer)
        .is_none());
}

#[test]
fn without_block_scoped_only_deep_or_final_blocks_are_kept() {
    let config = CacheConfig {
        block_scoped: false,
        confirmations: Some(10),
        ..CacheConfig::default()
    };
    let canon = canon();
    let get = |n: u64| {
        let params = format!(r#"["{n:#x}",false]"#);
        kept(
            decide(
                &config,
                &canon,
                "eth_getBlockByNumber",
                &params,
                &block(0, n),
            )
            .2
            .as_ref(),
        )
    };
    assert_eq!(get(SERVED - 10), Kept::Block(SERVED - 10), "deep enough");
    assert_eq!(get(SERVED - 9), Kept::No, "not deep enough");
    assert_eq!(get(FINALIZED), Kept::Final);
    let (_, _, fee) = decide(&config, &canon, "eth_gasPrice", "[]", r#""0x1""#);
    assert_eq!(
        fee, None,
        "fee reads are kept per head only when block_scoped"
    );
}
