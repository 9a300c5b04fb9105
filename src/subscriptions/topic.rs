//! What a client subscribes to, normalized so that equal requests share one
//! upstream subscription: `["newHeads"]`, `["logs", {address, topics}]`,
//! `["newPendingTransactions"(, true)]`.
//!
//! A filter is rewritten into one canonical text (members sorted, hex in
//! lower case, a one-element address list as a plain address): two clients
//! asking for the same logs in different spellings get one upstream
//! subscription, and what is sent upstream is that canonical text, never the
//! client's bytes.

use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::SubscriptionError;
use crate::metrics::Label;

/// The three kinds a client may subscribe to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    NewHeads,
    Logs,
    NewPendingTransactions,
}

/// The `kind` label of `rpcgate_ws_subscriptions`.
impl Label for Kind {
    const ALL: &'static [Kind] = &[Kind::NewHeads, Kind::Logs, Kind::NewPendingTransactions];

    fn label(self) -> &'static str {
        match self {
            Kind::NewHeads => "newHeads",
            Kind::Logs => "logs",
            Kind::NewPendingTransactions => "newPendingTransactions",
        }
    }
}

/// One normalized subscription request: the unit of multiplexing.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Topic {
    pub kind: Kind,
    /// The canonical `eth_subscribe` params sent upstream (a JSON array).
    pub params: String,
    /// For logs: the canonical filter (address and topics only), used for
    /// `eth_getLogs` when a gap is filled.
    pub filter: Option<Map<String, Value>>,
}

/// Bounded as log filters are (`crate::filters::MAX_ALTERNATIVES`): a
/// subscription's filter is kept, compared and sent upstream for its life.
const MAX_ALTERNATIVES: usize = crate::filters::MAX_ALTERNATIVES;
const _: () = assert!(MAX_ALTERNATIVES == 1000, "the messages say 1000");

fn invalid(why: &'static str) -> SubscriptionError {
    SubscriptionError::InvalidParams(why)
}

/// Reads `eth_subscribe` params.
pub fn parse(params: Option<&RawValue>) -> Result<Topic, SubscriptionError> {
    let params = params.ok_or(invalid("expected [kind, ...]"))?;
    let list: Vec<Value> =
        serde_json::from_str(params.get()).map_err(|_| invalid("expected [kind, ...]"))?;
    let kind = list.first().and_then(Value::as_str).unwrap_or_default();
    match (kind, list.len()) {
        ("newHeads", 1) => Ok(Topic {
            kind: Kind::NewHeads,
            params: r#"["newHeads"]"#.into(),
            filter: None,
        }),
        ("logs", 1 | 2) => {
            let filter = match list.get(1) {
                None | Some(Value::Null) => Map::new(),
                Some(Value::Object(f)) => canonical_filter(f)?,
                Some(_) => return Err(invalid("a logs filter is an object")),
            };
            let params = Value::Array(vec!["logs".into(), Value::Object(filter.clone())]);
            Ok(Topic {
                kind: Kind::Logs,
                params: params.to_string(),
                filter: Some(filter),
            })
        }
        ("newPendingTransactions", 1 | 2) => {
            let full = match list.get(1) {
                None | Some(Value::Bool(false)) => false,
                Some(Value::Bool(true)) => true,
                Some(_) => return Err(invalid("newPendingTransactions takes one boolean")),
            };
            Ok(Topic {
                kind: Kind::NewPendingTransactions,
                params: if full {
                    r#"["newPendingTransactions",true]"#.into()
                } else {
                    r#"["newPendingTransactions"]"#.into()
                },
                filter: None,
            })
        }
        ("newHeads" | "logs" | "newPendingTransactions", _) => {
            Err(invalid("too many params for this subscription"))
        }
        _ => Err(invalid(
            "the subscription kind must be newHeads, logs or newPendingTransactions",
        )),
    }
}

/// `{address?, topics?}` with hex in lower case; any other member is refused
/// (a subscription follows the chain from now on: no block range).
fn canonical_filter(f: &Map<String, Value>) -> Result<Map<String, Value>, SubscriptionError> {
    let mut out = Map::new();
    for (key, value) in f {
        match key.as_str() {
            "address" => {
                let address = match value {
                    Value::Null => continue,
                    Value::String(a) => Value::String(hex_word(a, 20)?),
                    Value::Array(list) => {
                        let mut all = list
                            .iter()
                            .map(|a| match a {
                                Value::String(a) => hex_word(a, 20),
                                _ => Err(invalid("an address is a hex string")),
                            })
                            .collect::<Result<Vec<_>, _>>()?;
                        all.sort();
                        all.dedup();
                        if all.len() > MAX_ALTERNATIVES {
                            return Err(invalid("at most 1000 distinct addresses"));
                        }
                        match all.len() {
                            0 => continue,
                            1 => Value::String(all.remove(0)),
                            _ => Value::Array(all.into_iter().map(Value::String).collect()),
                        }
                    }
                    _ => return Err(invalid("address is a hex string or a list of them")),
                };
                out.insert("address".into(), address);
            }
            "topics" => {
                let Value::Array(positions) = value else {
                    if value.is_null() {
                        continue;
                    }
                    return Err(invalid("topics is a list"));
                };
                if positions.len() > 4 {
                    return Err(invalid("at most 4 topic positions"));
                }
                let mut topics = positions
                    .iter()
                    .map(|p| match p {
                        Value::Null => Ok(Value::Null),
                        Value::String(t) => Ok(Value::String(hex_word(t, 32)?)),
                        Value::Array(alts) => {
                            let mut alts = alts
                                .iter()
                                .map(|t| match t {
                                    Value::String(t) => hex_word(t, 32),
                                    _ => Err(invalid("a topic is a hex string")),
                                })
                                .collect::<Result<Vec<_>, _>>()?;
                            alts.sort();
                            alts.dedup();
                            if alts.len() > MAX_ALTERNATIVES {
                                return Err(invalid(
                                    "at most 1000 distinct topics in one position",
                                ));
                            }
                            Ok(match alts.len() {
                                0 => Value::Null,
                                1 => Value::String(alts.remove(0)),
                                _ => Value::Array(alts.into_iter().map(Value::String).collect()),
                            })
                        }
                        _ => Err(invalid("a topic is a hex string, a list of them, or null")),
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                // Trailing wildcards match anything: drop them.
                while topics.last().is_some_and(Value::is_null) {
                    topics.pop();
                }
                if !topics.is_empty() {
                    out.insert("topics".into(), Value::Array(topics));
                }
            }
            _ => {
                return Err(invalid(
                    "a logs subscription filter takes only address and topics",
                ))
            }
        }
    }
    Ok(out)
}

/// `0x` and `bytes` bytes of hex, in lower case.
fn hex_word(s: &str, bytes: usize) -> Result<String, SubscriptionError> {
    let digits = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .ok_or(invalid("hex values start with 0x"))?;
    if digits.len() != bytes * 2 || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(invalid("an address has 20 bytes of hex, a topic 32"));
    }
    Ok(format!("0x{}", digits.to_ascii_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hub gauges are indexed by `kind as usize`.
    #[test]
    fn kinds_are_listed_in_declaration_order() {
        for (i, k) in Kind::ALL.iter().enumerate() {
            assert_eq!(*k as usize, i, "{k:?}");
        }
    }

    fn topic(params: &str) -> Result<Topic, SubscriptionError> {
        let raw = RawValue::from_string(params.to_string()).unwrap();
        parse(Some(&raw))
    }

    #[test]
    fn kinds() {
        assert_eq!(topic(r#"["newHeads"]"#).unwrap().kind, Kind::NewHeads);
        assert_eq!(
            topic(r#"["newPendingTransactions"]"#).unwrap(),
            topic(r#"["newPendingTransactions", false]"#).unwrap()
        );
        assert_ne!(
            topic(r#"["newPendingTransactions"]"#).unwrap(),
            topic(r#"["newPendingTransactions", true]"#).unwrap()
        );
        assert!(topic(r#"["syncing"]"#).is_err());
        assert!(topic(r#"["newHeads", {}]"#).is_err());
        assert!(topic(r#"{}"#).is_err());
        assert!(topic(r#"[]"#).is_err());
        assert!(parse(None).is_err());
    }

    #[test]
    fn equal_filters_in_other_spellings_share_one_topic() {
        let a = topic(
            r#"["logs", {"topics": ["0x000000000000000000000000000000000000000000000000000000000000002A", null], "address": ["0xAB00000000000000000000000000000000000001"]}]"#,
        )
        .unwrap();
        let b = topic(
            r#"["logs", {"address": "0xab00000000000000000000000000000000000001", "topics": [["0x000000000000000000000000000000000000000000000000000000000000002a"]]}]"#,
        )
        .unwrap();
        assert_eq!(a, b);
        assert_eq!(
            a.params,
            r#"["logs",{"address":"0xab00000000000000000000000000000000000001","topics":["0x000000000000000000000000000000000000000000000000000000000000002a"]}]"#
        );
        assert_eq!(
            topic(r#"["logs"]"#).unwrap(),
            topic(r#"["logs", {}]"#).unwrap()
        );
    }

    #[test]
    fn bad_filters_are_refused() {
        for bad in [
            r#"["logs", {"fromBlock": "0x1"}]"#,
            r#"["logs", {"address": "0x12"}]"#,
            r#"["logs", {"address": 5}]"#,
            r#"["logs", {"topics": "0x00"}]"#,
            r#"["logs", {"topics": [1]}]"#,
            r#"["logs", {"topics": [null, null, null, null, null]}]"#,
            r#"["logs", 7]"#,
        ] {
            assert!(topic(bad).is_err(), "{bad}");
        }
    }
}
