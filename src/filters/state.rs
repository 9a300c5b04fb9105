//! What one filter is and what it remembers between polls, in a form that
//! serializes (the Redis store keeps it as JSON), and the parsing of the
//! `eth_newFilter` criteria.
//!
//! A filter remembers the next block it has not looked at, and the blocks it
//! has looked at that a reorg may still replace: their heights and the first
//! 8 bytes of their hashes (enough to tell a replaced block from the same
//! one; 16 bytes a block instead of 66 of hex), with the logs it delivered
//! from them. Blocks below the canonical window (final, or too deep for the
//! gateway to follow) are forgotten.

use crate::metrics::Label;
use std::collections::VecDeque;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::eth::quantity::parse_exact_quantity;
use crate::eth::{parse_hash, Hash};

/// A filter's id as clients see it: 128 random bits as a hex quantity, as
/// Geth makes them (leading zeros dropped). The id is all that stands
/// between a filter and another client's poll (beside the owner check), so
/// the bits come from the OS generator, not from a fast one whose state a
/// few outputs may reveal; `None` when the OS has none to give.
pub(super) fn new_id() -> Option<String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).ok()?;
    let n = u128::from_be_bytes(bytes).max(1);
    Some(format!("0x{n:x}"))
}

/// An id as a client sent it, normalized; `None` if it cannot be one of ours.
pub(super) fn parse_id(text: &str) -> Option<String> {
    let hex = text
        .strip_prefix("0x")
        .or_else(|| text.strip_prefix("0X"))?;
    let hex = hex.trim_start_matches('0');
    (!hex.is_empty() && hex.len() <= 32 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| format!("0x{}", hex.to_ascii_lowercase()))
}

/// The part of a block hash a filter keeps to recognize the block again.
pub(super) fn hash_tag(hash: &Hash) -> u64 {
    let mut first = [0u8; 8];
    first.copy_from_slice(&hash[..8]);
    u64::from_be_bytes(first)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum KindName {
    Block,
    Log,
    Pending,
}

/// The `kind` label of `rpcgate_filters_created_total`.
impl Label for KindName {
    const ALL: &'static [KindName] = &[KindName::Block, KindName::Log, KindName::Pending];

    fn label(self) -> &'static str {
        match self {
            KindName::Block => "block",
            KindName::Log => "log",
            KindName::Pending => "pending",
        }
    }
}

/// One filter between polls.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct State {
    /// Whose cap it counts against (`Caller::bucket`).
    pub client: String,
    pub kind: KindName,
    /// `eth_newFilter` criteria (log filters only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub criteria: Option<Criteria>,
    /// The lowest block not looked at yet.
    pub next: u64,
    /// Blocks looked at that a reorg may still replace: (height, hash tag),
    /// in ascending height.
    #[serde(default)]
    pub recent: VecDeque<(u64, u64)>,
    /// The logs delivered from `recent` blocks, in order (log filters).
    #[serde(default)]
    pub logs: Vec<Value>,
    /// The position of the last pending hash delivered (pending filters; see
    /// `pending`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

impl State {
    pub(super) fn new(
        client: String,
        kind: KindName,
        criteria: Option<Criteria>,
        next: u64,
    ) -> State {
        State {
            client,
            kind,
            criteria,
            next,
            recent: VecDeque::new(),
            logs: Vec::new(),
            cursor: None,
        }
    }
}

/// A block bound of a filter as the client gave it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum Bound {
    Number(u64),
    Earliest,
    /// `latest`, `pending`, `safe`, `finalized` or absent: moves with the chain.
    Moving,
}

/// `eth_newFilter`'s object: block range, addresses, topics (kept as given,
/// after a check of their shape, and sent to `eth_getLogs` as they are).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct Criteria {
    pub from: Bound,
    pub to: Bound,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topics: Option<Value>,
    /// A filter of one block by hash (`blockHash`): it has no changes to
    /// poll, only `eth_getFilterLogs`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block_hash: Option<String>,
}

/// Most topic positions a log has.
const MAX_TOPICS: usize = 4;

/// Most addresses, and most alternatives of one topic position, a filter
/// may name (after duplicates are folded): Geth's own limit
/// (`--rpc.logquerylimit`). A filter's criteria are kept and sent with
/// every poll; without a cap one `eth_newFilter` of a few KiB of gzip
/// holds megabytes.
pub const MAX_ALTERNATIVES: usize = 1000;

/// `list` with duplicates folded (hex compared without case), in first-seen
/// order; an error when more than [`MAX_ALTERNATIVES`] remain.
pub(super) fn fold_alternatives(list: &[Value], what: &str) -> Result<Vec<Value>, String> {
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for v in list {
        let key = v.as_str().map(str::to_ascii_lowercase);
        if seen.insert(key) {
            if out.len() == MAX_ALTERNATIVES {
                return Err(format!(
                    "{what} lists more than {MAX_ALTERNATIVES} distinct entries"
                ));
            }
            out.push(v.clone());
        }
    }
    Ok(out)
}

impl Criteria {
    /// Reads `eth_newFilter`'s params: `[{fromBlock, toBlock, address, topics, blockHash}]`.
    pub(super) fn parse(params: Option<&str>) -> Result<Criteria, String> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Wire {
            from_block: Option<String>,
            to_block: Option<String>,
            address: Option<Value>,
            topics: Option<Value>,
            block_hash: Option<String>,
        }
        let params = params.unwrap_or("[]");
        let [wire]: [Wire; 1] =
            serde_json::from_str(params).map_err(|e| format!("expected one filter object: {e}"))?;
        let from = bound("fromBlock", wire.from_block.as_deref())?;
        let to = bound("toBlock", wire.to_block.as_deref())?;
        if let (Bound::Number(f), Bound::Number(t)) = (from, to) {
            if f > t {
                return Err("invalid block range: fromBlock is above toBlock".into());
            }
        }
        if let Some(h) = &wire.block_hash {
            if parse_hash(h).is_none() {
                return Err(format!("blockHash {h:?} is not a 32-byte hash"));
            }
            if wire.from_block.is_some() || wire.to_block.is_some() {
                return Err("blockHash cannot be combined with fromBlock or toBlock".into());
            }
        }
        let mut address = wire.address.filter(|a| !a.is_null());
        if let Some(Value::Array(list)) = &mut address {
            *list = fold_alternatives(list, "address")?;
        }
        if let Some(a) = &address {
            let ok = match a {
                Value::String(s) => is_address(s),
                Value::Array(list) => list.iter().all(|x| x.as_str().is_some_and(is_address)),
                _ => false,
            };
            if !ok {
                return Err("address must be an address or a list of addresses".into());
            }
        }
        let mut topics = wire.topics.filter(|t| !t.is_null());
        if let Some(Value::Array(positions)) = &mut topics {
            for p in positions.iter_mut() {
                if let Value::Array(any) = p {
                    *any = fold_alternatives(any, "a topic position")?;
                }
            }
        }
        if let Some(t) = &topics {
            let ok = match t {
                Value::Array(positions) => {
                    positions.len() <= MAX_TOPICS
                        && positions.iter().all(|p| match p {
                            Value::Null => true,
                            Value::String(s) => parse_hash(s).is_some(),
                            Value::Array(any) => any
                                .iter()
                                .all(|x| x.is_null() || x.as_str().and_then(parse_hash).is_some()),
                            _ => false,
                        })
                }
                _ => false,
            };
            if !ok {
                return Err(format!(
                    "topics must be a list of at most {MAX_TOPICS} entries, each null, a hash or a list of hashes"
                ));
            }
        }
        Ok(Criteria {
            from,
            to,
            address,
            topics,
            block_hash: wire.block_hash,
        })
    }

    /// `eth_getLogs` params for blocks `from..=to`.
    pub(super) fn logs_params(&self, from: u64, to: u64) -> String {
        let mut object = serde_json::Map::new();
        object.insert("fromBlock".into(), Value::String(format!("0x{from:x}")));
        object.insert("toBlock".into(), Value::String(format!("0x{to:x}")));
        self.add_match(&mut object);
        Value::Array(vec![Value::Object(object)]).to_string()
    }

    /// `eth_getLogs` params for the one block of a `blockHash` filter.
    pub(super) fn block_hash_params(&self, hash: &str) -> String {
        let mut object = serde_json::Map::new();
        object.insert("blockHash".into(), Value::String(hash.to_string()));
        self.add_match(&mut object);
        Value::Array(vec![Value::Object(object)]).to_string()
    }

    fn add_match(&self, object: &mut serde_json::Map<String, Value>) {
        if let Some(a) = &self.address {
            object.insert("address".into(), a.clone());
        }
        if let Some(t) = &self.topics {
            object.insert("topics".into(), t.clone());
        }
    }
}

fn bound(key: &str, tag: Option<&str>) -> Result<Bound, String> {
    match tag {
        None | Some("latest" | "pending" | "safe" | "finalized") => Ok(Bound::Moving),
        Some("earliest") => Ok(Bound::Earliest),
        // Sent to nodes as numbers, but refused as `eth_getLogs` refuses a
        // spelling nodes read two ways (`0X1`, `0x01`), so both agree.
        Some(text) => parse_exact_quantity(text)
            .map(Bound::Number)
            .ok_or_else(|| format!("{key} {text:?} is not a block number or tag")),
    }
}

fn is_address(s: &str) -> bool {
    s.len() == 42
        && (s.starts_with("0x") || s.starts_with("0X"))
        && s[2..].bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `rpcgate_filters_created_total` series are indexed by `kind as usize`.
    #[test]
    fn kinds_are_listed_in_declaration_order() {
        for (i, k) in KindName::ALL.iter().enumerate() {
            assert_eq!(*k as usize, i, "{k:?}");
        }
    }

    #[test]
    fn ids_are_hex_quantities_and_parse_back() {
        let id = new_id().unwrap();
        assert_ne!(new_id(), Some(id.clone()));
        assert!(id.starts_with("0x") && id.len() <= 34 && !id[2..].starts_with('0'));
        assert_eq!(parse_id(&id).as_deref(), Some(id.as_str()));
        assert_eq!(parse_id("0x00AbC").as_deref(), Some("0xabc"));
        assert_eq!(parse_id("0x"), None);
        assert_eq!(parse_id("abc"), None);
        assert_eq!(parse_id(&format!("0x{}", "f".repeat(33))), None);
    }

    #[test]
    fn criteria_are_checked_and_sent_as_given() {
        let a = "0x00000000000000000000000000000000000000aa";
        let t = format!("0x{}", "11".repeat(32));
        let c = Criteria::parse(Some(&format!(
            r#"[{{"fromBlock":"0x5","address":"{a}","topics":["{t}",null,["{t}"]]}}]"#
        )))
        .unwrap();
        assert_eq!(c.from, Bound::Number(5));
        assert_eq!(c.to, Bound::Moving);
        let sent: Value = serde_json::from_str(&c.logs_params(6, 9)).unwrap();
        assert_eq!(sent[0]["fromBlock"], "0x6");
        assert_eq!(sent[0]["toBlock"], "0x9");
        assert_eq!(sent[0]["address"], a);
        assert_eq!(sent[0]["topics"][2][0], t.as_str());
        for bad in [
            r#"[{"fromBlock":"soon"}]"#,
            r#"[{"fromBlock":"0X1"}]"#,
            r#"[{"toBlock":"0x01"}]"#,
            r#"[{"fromBlock":"0x9","toBlock":"0x2"}]"#,
            r#"[{"address":"0x12"}]"#,
            r#"[{"topics":"0x12"}]"#,
            r#"[{"topics":[null,null,null,null,null]}]"#,
            r#"[{"blockHash":"0x12"}]"#,
            r#"[]"#,
            r#"{}"#,
        ] {
            assert!(Criteria::parse(Some(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn addresses_and_topics_are_folded_and_capped() {
        let a = |i: usize| format!("\"0x{i:040x}\"");
        let same: Vec<String> = (0..5000).map(|_| a(7)).collect();
        let c = Criteria::parse(Some(&format!(r#"[{{"address":[{}]}}]"#, same.join(",")))).unwrap();
        assert_eq!(c.address.unwrap().as_array().unwrap().len(), 1);
        let many: Vec<String> = (0..=MAX_ALTERNATIVES).map(a).collect();
        assert!(
            Criteria::parse(Some(&format!(r#"[{{"address":[{}]}}]"#, many.join(",")))).is_err()
        );
        let fits = &many[..MAX_ALTERNATIVES];
        assert!(Criteria::parse(Some(&format!(r#"[{{"address":[{}]}}]"#, fits.join(",")))).is_ok());
        let t = |i: usize| format!("\"0x{i:064x}\"");
        let topics: Vec<String> = (0..=MAX_ALTERNATIVES).map(t).collect();
        assert!(Criteria::parse(Some(&format!(
            r#"[{{"topics":[null,[{}]]}}]"#,
            topics.join(",")
        )))
        .is_err());
    }

    #[test]
    fn state_round_trips_through_json() {
        let mut s = State::new(
            "c:a".into(),
            KindName::Log,
            Criteria::parse(Some("[{}]")).ok(),
            7,
        );
        s.recent.push_back((7, u64::MAX));
        s.logs.push(serde_json::json!({"blockNumber": "0x7"}));
        let text = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<State>(&text).unwrap(), s);
    }
}
