//! Block pinning: which block a call needs, and `latest` pinned to the
//! served head.
//!
//! A client must never see the chain go backwards, so `latest` is rewritten to
//! the served head's number before the call leaves (every entry of a batch
//! gets the same number), and the call goes only to backends whose head is at
//! least the block it needs. Everything that reads "the present" (no block
//! parameter, `pending`, `safe`, `finalized`, a block hash) needs a backend at
//! the served head; an explicit block N needs a head of at least N, which
//! older but eligible backends can serve.
//!
//! Pinning is a pure function of the method's [`BlockArg`], the params and
//! the served head; the pipeline runs it before the cache and the router,
//! which both read its [`Pinned`] result, so the params are read once.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde_json::value::RawValue;

use super::block_ref::BlockRef;
use super::methods::BlockArg;
use crate::jsonrpc::json_text::{nth, splice};

/// What one call needs, with `latest` pinned.
#[derive(Debug, PartialEq, Eq)]
pub struct Pinned<'a> {
    /// The lowest backend head that can serve the call.
    pub min_head: u64,
    /// The params to send: the caller's text, or a rewrite with `latest` pinned.
    pub params: Option<Cow<'a, str>>,
    /// Whether `latest` was pinned: the call reads the present, which the
    /// cache never keeps.
    pub pinned_latest: bool,
    /// The block argument as the caller wrote it, for a method that takes
    /// one at a fixed position (not `eth_getLogs`); `None` when it is absent
    /// or the params are not a list.
    pub block: Option<BlockRef>,
    /// For a log filter: how many blocks it spans (`fromBlock` to `toBlock`
    /// with `latest` read as the served head; a `blockHash` filter is one
    /// block), so that a heavy range is refused without parsing it again.
    pub log_blocks: Option<u64>,
    /// For a log filter: a key that a node would take for one of the
    /// filter's fields but is not spelled as that field (`FROMBLOCK`,
    /// `ToBlock`), see [`odd_filter_key`]. Such a filter is refused: its
    /// range as the node reads it is not the range judged here.
    pub odd_filter_key: Option<String>,
    /// A block argument (or a log filter's `fromBlock`/`toBlock`) that nodes
    /// do not all read as one block (`0X0`, `0x00`, an escape): its JSON
    /// text. Such a call is refused, never guessed at.
    pub unreadable: Option<String>,
}

/// The chain positions a call's tags are read as: the served head, and the
/// view's `safe` and `finalized` numbers when it knows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Heads {
    pub served: u64,
    pub safe: Option<u64>,
    pub finalized: Option<u64>,
}

impl Heads {
    /// Only the served head known.
    pub fn served(served: u64) -> Heads {
        Heads {
            served,
            safe: None,
            finalized: None,
        }
    }

    /// The number of `safe` or `finalized`, never above the served head.
    fn tag(&self, name: &str) -> Option<u64> {
        let n = match name {
            "safe" => self.safe,
            _ => self.finalized,
        };
        n.map(|n| n.min(self.served))
    }
}

impl Pinned<'_> {
    /// The block whose state a state read needs (`Method::reads_state`),
    /// when its number is known: a number, `earliest`, or `latest` and
    /// `pending` (the served head). A hash, `safe` or `finalized` is not
    /// placed here, and such a read goes to any backend at the served head.
    pub fn state_block(&self, served: u64) -> Option<u64> {
        match self.block {
            Some(BlockRef::Number(n)) => Some(n),
            Some(BlockRef::Earliest) => Some(0),
            Some(BlockRef::Pending) => Some(served),
            _ if self.pinned_latest => Some(self.min_head),
            _ => None,
        }
    }
}

/// Pins a call's params against the served head `served` alone (tests,
/// and callers that know no `safe`/`finalized`): see [`pin_at`].
pub fn pin<'a>(arg: BlockArg, params: Option<&'a RawValue>, served: u64) -> Pinned<'a> {
    pin_at(arg, params, Heads::served(served))
}

/// Pins a call's params against `heads`; `arg` is where the method takes
/// its block (from the method table). In a log filter, `latest`, `pending`,
/// an absent or null bound, and `safe`/`finalized` (when the view knows
/// them) are rewritten to numbers, so the range judged is the range the
/// node reads; a `safe`/`finalized` the view does not know is judged at
/// its widest (block 0 as `fromBlock`, the served head as `toBlock`).
pub fn pin_at<'a>(arg: BlockArg, params: Option<&'a RawValue>, heads: Heads) -> Pinned<'a> {
    let served = heads.served;
    let original = || params.map(|p| Cow::Borrowed(p.get()));
    let keep = |min_head: u64, block: Option<BlockRef>| Pinned {
        min_head,
        params: original(),
        pinned_latest: false,
        block,
        log_blocks: None,
        odd_filter_key: None,
        unreadable: None,
    };
    if arg == BlockArg::None {
        return keep(served, None);
    }
    let Some(params) = params.filter(|p| p.get().starts_with('[')) else {
        return keep(served, None);
    };
    let list = || serde_json::from_str::<Vec<&RawValue>>(params.get()).ok();
    match arg {
        BlockArg::None => keep(served, None),
        // Named by hash: the present is needed to know that block at all.
        BlockArg::HashAt(i) => {
            let block = nth(params.get(), i)
                .and_then(|(_, at)| at)
                .map(BlockRef::parse_text);
            keep(served, block)
        }
        BlockArg::At(i) | BlockArg::AtOrLatest(i) => {
            // Only the block argument is read, and `latest` is spliced into
            // the text in its place: the list is never collected.
            let Some((len, at)) = nth(params.get(), i) else {
                return keep(served, None);
            };
            let block = at.map(BlockRef::parse_text);
            match block {
                Some(BlockRef::Latest) => {}
                None if matches!(arg, BlockArg::AtOrLatest(_)) && len == i => {}
                Some(BlockRef::Number(n)) => return keep(n, block),
                Some(BlockRef::Earliest) => return keep(0, block),
                Some(BlockRef::Unreadable) => {
                    return Pinned {
                        unreadable: at.map(str::to_string),
                        ..keep(served, block)
                    }
                }
                _ => return keep(served, block),
            }
            let pin = super::quantity::quoted_quantity(served);
            let Some(params) = splice(params.get(), at, len, &pin) else {
                return keep(served, None);
            };
            Pinned {
                min_head: served,
                params: Some(Cow::Owned(params)),
                pinned_latest: true,
                block,
                log_blocks: None,
                odd_filter_key: None,
                unreadable: None,
            }
        }
        BlockArg::LogFilter => {
            let Some(mut list) = list() else {
                return keep(served, None);
            };
            let Some(filter) = list.first().copied() else {
                return keep(served, None);
            };
            let Ok(mut filter) = serde_json::from_str::<BTreeMap<String, &RawValue>>(filter.get())
            else {
                return keep(served, None);
            };
            if let Some(key) = filter.keys().find(|k| odd_filter_key(k)) {
                return Pinned {
                    odd_filter_key: Some(key.clone()),
                    ..keep(served, None)
                };
            }
            // `"blockHash": null` is no hash: nodes read the range then
            // (found by the block_args fuzz target: the range went unbounded).
            if filter.get("blockHash").is_some_and(|h| h.get() != "null") {
                return Pinned {
                    log_blocks: Some(1),
                    ..keep(served, None)
                };
            }
            let mut rewrote = false;
            let mut min_head = 0;
            let mut ends = [0; 2];
            let mut pins = Vec::new();
            for (i, key) in ["fromBlock", "toBlock"].into_iter().enumerate() {
                let raw = filter.get(key).copied().filter(|r| r.get() != "null");
                let read = raw.map(|r| {
                    let block = if r.get().starts_with('"') {
                        BlockRef::parse(r)
                    } else {
                        BlockRef::Unreadable
                    };
                    (r, block)
                });
                let (at, pin) = match read {
                    None | Some((_, BlockRef::Latest | BlockRef::Pending)) => {
                        (served, Some(served))
                    }
                    Some((_, BlockRef::Number(n))) => (n, None),
                    Some((_, BlockRef::Earliest)) => (0, None),
                    Some((r, BlockRef::Tag)) => {
                        let known = BlockRef::tag_name(r.get()).and_then(|t| heads.tag(t));
                        match known {
                            Some(n) => (n, Some(n)),
                            // Unknown here: judged at its widest, sent as given.
                            None if i == 0 => (0, None),
                            None => (served, None),
                        }
                    }
                    // Anything else is no block number a node reads as one
                    // (Geth refuses JSON numbers, hashes and objects here;
                    // other nodes may not): refused, not guessed.
                    Some((r, _)) => {
                        return Pinned {
                            unreadable: Some(r.get().to_string()),
                            ..keep(served, None)
                        };
                    }
                };
                if let Some(n) = pin {
                    pins.push((key, pinned_number(n)));
                    rewrote = true;
                }
                ends[i] = at;
                min_head = min_head.max(at);
            }
            for (key, pin) in &pins {
                filter.insert((*key).to_string(), pin);
            }
            // An empty range (from above to) spans no block; the node says so.
            let log_blocks = Some(
                (ends[1].saturating_sub(ends[0])).saturating_add(u64::from(ends[0] <= ends[1])),
            );
            if !rewrote {
                return Pinned {
                    log_blocks,
                    ..keep(min_head, None)
                };
            }
            let filter = to_json(&filter);
            let Ok(filter) = RawValue::from_string(filter) else {
                return keep(served, None);
            };
            list[0] = &filter;
            Pinned {
                min_head,
                params: Some(Cow::Owned(to_json(&list))),
                pinned_latest: true,
                block: None,
                log_blocks,
                odd_filter_key: None,
                unreadable: None,
            }
        }
    }
}

/// The fields of a log filter, as nodes name them.
const FILTER_FIELDS: [&str; 5] = ["fromBlock", "toBlock", "blockHash", "address", "topics"];

/// Whether `key` names a filter field for a node without being spelled as
/// it. Geth decodes the filter with Go's `encoding/json`, which matches
/// object keys to fields ignoring case, with Unicode simple case folding:
/// `FROMBLOCK`, `ToBlock`, even `fromBloc\u{212a}` (the Kelvin sign folds to
/// `k`, the long s `\u{17f}` to `s`) set `fromBlock`, and a later key wins
/// over an earlier one. Read case-sensitively here, such a key would let a
/// client hide the range the node will serve.
pub fn odd_filter_key(key: &str) -> bool {
    let folded: Option<String> = key
        .chars()
        .map(|c| match c {
            '\u{212a}' => Some('k'),
            '\u{17f}' => Some('s'),
            c if c.is_ascii() => Some(c.to_ascii_lowercase()),
            _ => None,
        })
        .collect();
    let Some(folded) = folded else {
        return false;
    };
    FILTER_FIELDS
        .iter()
        .any(|f| f.eq_ignore_ascii_case(&folded) && *f != key)
}

/// `"0x…"` of a block number: always valid JSON.
fn pinned_number(n: u64) -> Box<RawValue> {
    RawValue::from_string(super::quantity::quoted_quantity(n)).unwrap_or_default()
}

/// Raw values and string maps serialize verbatim.
fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eth::methods::lookup;

    fn run(method: &str, params: &str) -> (u64, Option<String>) {
        let raw = RawValue::from_string(params.to_string()).unwrap();
        let arg = lookup(method).map_or(BlockArg::None, |(_, m)| m.block);
        let pinned = pin(arg, Some(&raw), 0x20);
        // `pinned_latest` says exactly whether the params were rewritten.
        assert_eq!(
            pinned.pinned_latest,
            matches!(pinned.params, Some(Cow::Owned(_))),
            "{method} {params}"
        );
        (pinned.min_head, pinned.params.map(|p| p.into_owned()))
    }

    #[test]
    fn the_state_block_of_a_read() {
        let at = |method: &str, params: &str| {
            let raw = RawValue::from_string(params.to_string()).unwrap();
            let arg = lookup(method).unwrap().1.block;
            pin(arg, Some(&raw), 0x20).state_block(0x20)
        };
        assert_eq!(at("eth_getBalance", r#"["0xab","0x5"]"#), Some(5));
        assert_eq!(at("eth_getBalance", r#"["0xab","latest"]"#), Some(0x20));
        assert_eq!(at("eth_getBalance", r#"["0xab","earliest"]"#), Some(0));
        assert_eq!(at("eth_getBalance", r#"["0xab","pending"]"#), Some(0x20));
        assert_eq!(at("eth_call", r#"[{"to":"0xab"}]"#), Some(0x20));
        assert_eq!(
            at(
                "eth_getStorageAt",
                r#"["0xab","0x0",{"blockNumber":"0x7"}]"#
            ),
            Some(7)
        );
        assert_eq!(at("eth_getBalance", r#"["0xab","finalized"]"#), None);
        let hash = format!(r#"["0xab",{{"blockHash":"0x{}"}}]"#, "11".repeat(32));
        assert_eq!(at("eth_getBalance", &hash), None);
    }

    #[test]
    fn latest_is_pinned_to_the_served_head() {
        assert_eq!(
            run("eth_getBalance", r#"["0xab","latest"]"#),
            (0x20, Some(r#"["0xab","0x20"]"#.into()))
        );
        assert_eq!(
            run("eth_getBlockByNumber", r#"["latest", true]"#),
            (0x20, Some(r#"["0x20", true]"#.into()))
        );
        assert_eq!(
            run(
                "eth_getStorageAt",
                r#"["0xab","0x0",{"blockNumber":"latest"}]"#
            )
            .1
            .unwrap(),
            r#"["0xab","0x0","0x20"]"#
        );
        // eth_call without a block means latest.
        assert_eq!(
            run("eth_call", r#"[{"to":"0x1"}]"#),
            (0x20, Some(r#"[{"to":"0x1"},"0x20"]"#.into()))
        );
    }

    #[test]
    fn explicit_blocks_are_kept_and_need_that_head() {
        assert_eq!(
            run("eth_getBalance", r#"["0xab","0x7"]"#),
            (7, Some(r#"["0xab","0x7"]"#.into()))
        );
        assert_eq!(run("eth_getBlockByNumber", r#"["0x30",false]"#).0, 0x30);
        assert_eq!(run("eth_getCode", r#"["0xab",{"blockNumber":"0x9"}]"#).0, 9);
        assert_eq!(run("eth_getBalance", r#"["0xab","earliest"]"#).0, 0);
        // The present: pending, safe, a hash, or no block parameter at all.
        assert_eq!(
            run("eth_getBalance", r#"["0xab","pending"]"#),
            (0x20, Some(r#"["0xab","pending"]"#.into()))
        );
        assert_eq!(
            run("eth_getCode", r#"["0xab",{"blockHash":"0xff"}]"#).0,
            0x20
        );
        assert_eq!(run("eth_getTransactionReceipt", r#"["0xff"]"#).0, 0x20);
        assert_eq!(run("eth_getBlockByHash", r#"["0xff",false]"#).0, 0x20);
    }

    #[test]
    fn log_ranges_are_pinned_and_need_their_top() {
        let (min, params) = run("eth_getLogs", r#"[{"fromBlock":"0x1","address":"0xab"}]"#);
        assert_eq!(min, 0x20);
        let v: serde_json::Value = serde_json::from_str(&params.unwrap()).unwrap();
        assert_eq!(v[0]["toBlock"], "0x20");
        assert_eq!(v[0]["fromBlock"], "0x1");
        assert_eq!(v[0]["address"], "0xab");
        assert_eq!(
            run("eth_getLogs", r#"[{"fromBlock":"0x1","toBlock":"0x5"}]"#),
            (5, Some(r#"[{"fromBlock":"0x1","toBlock":"0x5"}]"#.into()))
        );
        assert_eq!(run("eth_getLogs", r#"[{"blockHash":"0xaa"}]"#).0, 0x20);
    }

    #[test]
    fn log_filters_say_how_many_blocks_they_span() {
        let blocks = |params: &str| {
            let raw = RawValue::from_string(params.to_string()).unwrap();
            pin(BlockArg::LogFilter, Some(&raw), 0x20).log_blocks
        };
        assert_eq!(blocks(r#"[{"fromBlock":"0x1","toBlock":"0x5"}]"#), Some(5));
        assert_eq!(blocks(r#"[{"fromBlock":"0x5","toBlock":"0x5"}]"#), Some(1));
        assert_eq!(blocks(r#"[{"fromBlock":"0x6","toBlock":"0x5"}]"#), Some(0));
        // `latest`, or no bound, is the served head; `earliest` is block 0.
        assert_eq!(blocks(r#"[{"fromBlock":"0x11"}]"#), Some(0x10));
        assert_eq!(blocks(r#"[{}]"#), Some(1));
        assert_eq!(blocks(r#"[{"fromBlock":"earliest"}]"#), Some(0x21));
        assert_eq!(
            blocks(r#"[{"fromBlock":"0x0","toBlock":"0x7fffffffffffffff"}]"#),
            Some(1 << 63)
        );
        assert_eq!(
            blocks(r#"[{"blockHash":"0xaa","fromBlock":"0x0"}]"#),
            Some(1)
        );
        assert_eq!(blocks(r#"[7]"#), None);
        // A null hash is no hash: the range counts.
        assert_eq!(
            blocks(r#"[{"blockHash":null,"fromBlock":"0x0","toBlock":"0x2faf080"}]"#),
            Some(50_000_001)
        );
    }

    /// Seeded random params for every block method: pinning never panics, and
    /// a rewrite is valid JSON.
    #[test]
    fn random_params_never_panic() {
        let methods = [
            "eth_getBalance",
            "eth_call",
            "eth_getLogs",
            "eth_getStorageAt",
            "eth_getBlockByNumber",
            "eth_getBlockByHash",
        ];
        let atoms = [
            "\"latest\"",
            "\"earliest\"",
            "\"pending\"",
            "\"0x\"",
            "\"0x1f\"",
            "\"0xffffffffffffffffff\"",
            "{\"blockNumber\":\"latest\"}",
            "{\"blockHash\":\"0x1\"}",
            "{\"fromBlock\":\"latest\"}",
            "{\"toBlock\":7}",
            "null",
            "1",
            "[]",
            "{}",
            "\"\\u0030x1\"",
            "{\"fromBlock\":\"0x\\u0031\"}",
        ];
        let mut rng = fastrand::Rng::with_seed(11);
        for _ in 0..20_000 {
            let n = rng.usize(..5);
            let items: Vec<&str> = (0..n).map(|_| atoms[rng.usize(..atoms.len())]).collect();
            let params = format!("[{}]", items.join(","));
            let raw = RawValue::from_string(params).unwrap();
            let method = methods[rng.usize(..methods.len())];
            let arg = lookup(method).unwrap().1.block;
            let pinned = pin(arg, Some(&raw), rng.u64(..1 << 40));
            if let Some(p) = pinned.params {
                serde_json::from_str::<serde_json::Value>(&p).expect("params stay JSON");
            }
        }
    }

    #[test]
    fn filter_keys_a_node_reads_in_other_case_are_flagged() {
        let odd = |params: &str| {
            let raw = RawValue::from_string(params.to_string()).unwrap();
            pin(BlockArg::LogFilter, Some(&raw), 0x20).odd_filter_key
        };
        assert_eq!(
            odd(r#"[{"FROMBLOCK":"0x0","ToBlock":"latest"}]"#).as_deref(),
            Some("FROMBLOCK")
        );
        assert_eq!(
            odd(r#"[{"fromBlock":"0x0","toBlock":"0x0","TOBLOCK":"0xffffff"}]"#).as_deref(),
            Some("TOBLOCK")
        );
        let kelvin = "[{\"fromBloc\u{212a}\":\"0x0\"}]";
        assert_eq!(odd(kelvin).as_deref(), Some("fromBloc\u{212a}"));
        assert_eq!(odd(r#"[{"Topics":[]}]"#).as_deref(), Some("Topics"));
        assert_eq!(
            odd(r#"[{"fromBlock":"0x0","toBlock":"0x5","address":"0x1"}]"#),
            None
        );
        assert_eq!(odd(r#"[{"fromBlock":"0x0","extra":1,"Extra":2}]"#), None);
        assert!(!odd_filter_key("fromBlock"));
        assert!(odd_filter_key("blockhash"));
        assert!(!odd_filter_key("fromBlöck"));
    }

    /// Each spelling of a bound is judged as the node reads it, or refused.
    #[test]
    fn log_bounds_are_judged_as_nodes_read_them_or_refused() {
        let heads = Heads {
            served: 0x100,
            safe: Some(0xe0),
            finalized: Some(0xc0),
        };
        let judge = |params: &str| {
            let raw = RawValue::from_string(params.to_string()).unwrap();
            let p = pin_at(BlockArg::LogFilter, Some(&raw), heads);
            (p.log_blocks, p.unreadable, p.params.map(|p| p.into_owned()))
        };
        for odd in [
            r#"[{"fromBlock":"0X0"}]"#,
            r#"[{"fromBlock":"0x00","toBlock":"0x5"}]"#,
            r#"[{"fromBlock":"0x1","toBlock":"0X0"}]"#,
            r#"[{"fromBlock":"\u0030x0"}]"#,
            r#"[{"fromBlock":0}]"#,
            r#"[{"fromBlock":{"blockNumber":"0x0"}}]"#,
            r#"[{"toBlock":"0x8000000000000000"}]"#,
        ] {
            let (_, unreadable, _) = judge(odd);
            assert!(unreadable.is_some(), "{odd} must be refused");
        }
        let (blocks, _, sent) = judge(r#"[{"fromBlock":"finalized","toBlock":"safe"}]"#);
        assert_eq!(blocks, Some(0xe0 - 0xc0 + 1));
        let sent: serde_json::Value = serde_json::from_str(&sent.unwrap()).unwrap();
        assert_eq!(
            sent[0]["fromBlock"], "0xc0",
            "the node reads the number judged"
        );
        assert_eq!(sent[0]["toBlock"], "0xe0");
        let (blocks, _, sent) = judge(r#"[{"fromBlock":"safe","toBlock":"pending"}]"#);
        assert_eq!(blocks, Some(0x100 - 0xe0 + 1));
        assert!(sent.unwrap().contains(r#""toBlock":"0x100""#));
        let (blocks, _, _) = judge(r#"[{"fromBlock":"0x0","toBlock":null}]"#);
        assert_eq!(blocks, Some(0x101));
        // Tags the view does not know: judged at their widest, sent as given.
        let raw = RawValue::from_string(r#"[{"fromBlock":"safe"}]"#.into()).unwrap();
        let p = pin_at(BlockArg::LogFilter, Some(&raw), Heads::served(0x100));
        assert_eq!(p.log_blocks, Some(0x101));
        assert!(p.params.unwrap().contains(r#""fromBlock":"safe""#));
        // A block argument of any method: refused alike.
        let raw = RawValue::from_string(r#"["0xab","0X10"]"#.into()).unwrap();
        let arg = lookup("eth_getBalance").unwrap().1.block;
        assert_eq!(
            pin(arg, Some(&raw), 0x20).unreadable.as_deref(),
            Some("\"0X10\"")
        );
    }

    #[test]
    fn odd_params_are_left_alone() {
        assert_eq!(run("eth_getBalance", r#"{"a":1}"#).1.unwrap(), r#"{"a":1}"#);
        assert_eq!(
            run("eth_getBalance", r#"["0xab"]"#).1.unwrap(),
            r#"["0xab"]"#
        );
        assert_eq!(run("eth_getBalance", r#"["0xab",7]"#).0, 0x20);
    }
}
