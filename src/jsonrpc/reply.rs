//! What a backend answered: a JSON-RPC reply kept as its bytes, with the span
//! of its `result` or `error` member, so the answer to the client is built
//! from raw parts and nothing is re-serialized.
//!
//! Every layer that handles an answer (router, cache, filters, the per-call
//! tier) passes this type around, which is why it lives in the wire leaf and
//! not with the upstream client that reads it. A reply read from a backend
//! holds its share of the process's answer budget ([`crate::memory`]) until it
//! is dropped; [`Reply::detached`] makes the copies that do not.

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::memory::Permit;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyKind {
    Result,
    Error,
}

/// A backend's JSON-RPC answer, kept as bytes.
#[derive(Debug)]
pub struct Reply {
    body: Bytes,
    span: Range<usize>,
    pub kind: ReplyKind,
    /// The backend that answered, set by the router; `None` for answers the
    /// gateway made itself or served from the cache.
    pub origin: Option<Origin>,
    /// The answer budget its body was read against: only held, for its
    /// drop (see [`Reply::detached`]).
    _held: Option<Permit>,
}

/// Which backend answered a call, and after how many calls of the router's
/// (1 without a retry): what the served-by headers report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub backend: Arc<str>,
    pub attempts: u32,
}

/// A clone is [`Reply::detached`]: the followers of a coalesced call
/// (`cache::coalesce`, generic over `Clone`) each get one, and none of them
/// is a second claim on the answer budget.
impl Clone for Reply {
    fn clone(&self) -> Reply {
        self.detached()
    }
}

impl Reply {
    /// A copy that shares the bytes but not the budget permit: what the
    /// cache keeps and what the followers of a coalesced call receive. The
    /// permit stays with the original, which is released when the answer it
    /// belongs to is written; a copy is not a second claim on the budget.
    pub fn detached(&self) -> Reply {
        Reply {
            body: self.body.clone(),
            span: self.span.clone(),
            kind: self.kind,
            origin: self.origin.clone(),
            _held: None,
        }
    }

    /// The same reply, holding `permit` (the answer budget its body was
    /// read against) until it is dropped.
    pub fn holding(self, permit: Permit) -> Reply {
        Reply {
            _held: Some(permit),
            ..self
        }
    }

    /// The raw `result` value or `error` object.
    pub fn raw(&self) -> &[u8] {
        &self.body[self.span.clone()]
    }

    pub fn is_error(&self) -> bool {
        self.kind == ReplyKind::Error
    }

    /// The `message` of an error reply.
    pub fn error_message(&self) -> Option<String> {
        self.error_object().map(|(_, message)| message)
    }

    /// The `code` and `message` of an error reply.
    fn error_object(&self) -> Option<(Option<i64>, String)> {
        #[derive(Deserialize)]
        struct E {
            code: Option<i64>,
            message: Option<String>,
        }
        if !self.is_error() {
            return None;
        }
        let e = serde_json::from_slice::<E>(self.raw()).ok()?;
        Some((e.code, e.message?))
    }

    /// Whether this is a node saying it lacks the state the call asked for
    /// (Geth, Erigon, Nethermind and Besu word it differently; a pruned
    /// node answers this for blocks below its window). Only the node's own
    /// words count: the message must *start* with a known phrase, and a
    /// revert (code 3, `execution reverted: <reason>`) never does, whatever
    /// reason the caller's contract gave.
    pub fn is_missing_state(&self) -> bool {
        let Some((code, message)) = self.error_object() else {
            return false;
        };
        let m = message.trim_start().to_ascii_lowercase();
        code != Some(REVERTED)
            && !m.starts_with("execution reverted")
            && MISSING_STATE.iter().any(|p| m.starts_with(p))
    }

    /// Whether this is a node saying the block the call named is not there
    /// (`-32001 resource not found`, Geth's `header not found`, `unknown
    /// block`).
    pub fn is_block_not_found(&self) -> bool {
        let Some((code, message)) = self.error_object() else {
            return false;
        };
        let m = message.trim_start().to_ascii_lowercase();
        code != Some(REVERTED)
            && (code == Some(RESOURCE_NOT_FOUND)
                || BLOCK_NOT_FOUND.iter().any(|p| m.starts_with(p)))
    }

    /// Parses a result as `T` (for the control loops).
    pub fn parse_result<'a, T: Deserialize<'a>>(&'a self) -> Option<T> {
        if self.is_error() {
            return None;
        }
        serde_json::from_slice(self.raw()).ok()
    }

    /// A backend's JSON-RPC answer read from `body`; `None` when it is not
    /// one (no `result`, no `error`, not JSON).
    pub fn from_body(body: Bytes) -> Option<Reply> {
        if let Some(span) = plain_result(&body) {
            return Some(Reply {
                body,
                span,
                kind: ReplyKind::Result,
                origin: None,
                _held: None,
            });
        }
        #[derive(Deserialize)]
        struct Wire<'a> {
            #[serde(default, borrow, deserialize_with = "super::present")]
            result: Option<&'a RawValue>,
            #[serde(default, borrow, deserialize_with = "super::present")]
            error: Option<&'a RawValue>,
        }
        let wire: Wire = serde_json::from_slice(&body).ok()?;
        let (raw, kind) = match (wire.error, wire.result) {
            (Some(e), _) if e.get() != "null" => (e, ReplyKind::Error),
            (_, Some(r)) => (r, ReplyKind::Result),
            _ => return None,
        };
        let start = raw.get().as_ptr() as usize - body.as_ptr() as usize;
        let span = start..start + raw.get().len();
        Some(Reply {
            body,
            span,
            kind,
            origin: None,
            _held: None,
        })
    }

    /// A reply built by the gateway itself (e.g. a computed transaction hash).
    pub fn result_from(raw: Bytes) -> Reply {
        let span = 0..raw.len();
        Reply {
            body: raw,
            span,
            kind: ReplyKind::Result,
            origin: None,
            _held: None,
        }
    }
}

/// The span of the result in a body of the one shape nodes answer a call
/// with: `{"jsonrpc":"2.0","id":<digits>,"result":<value>}`, byte for byte
/// up to the value, then nothing but whitespace after the closing brace.
/// Only the value is parsed (to check that it is one JSON value, as the
/// general path's parse of the whole body would): the envelope around it
/// is known by its bytes, so a reply of that shape costs no deserializer's
/// field matching. Any other shape (another order, spaces, an error, a
/// string id) gets `None` and goes through the general path.
fn plain_result(body: &[u8]) -> Option<std::ops::Range<usize>> {
    const HEAD: &[u8] = br#"{"jsonrpc":"2.0","id":"#;
    const RESULT: &[u8] = br#","result":"#;
    let rest = body.strip_prefix(HEAD)?;
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 {
        return None;
    }
    let start = HEAD.len() + digits + RESULT.len();
    if !rest[digits..].starts_with(RESULT) {
        return None;
    }
    let close = body.iter().rposition(|b| !json_space(*b))?;
    if body[close] != b'}' || close < start {
        return None;
    }
    let value = std::str::from_utf8(&body[start..close]).ok()?;
    // One whole JSON value, with nothing but whitespace around it (which
    // the span leaves out, as serde's raw value does).
    let trimmed = value.trim_matches(|c: char| c.is_ascii() && json_space(c as u8));
    if trimmed.is_empty() || serde_json::from_str::<serde::de::IgnoredAny>(trimmed).is_err() {
        return None;
    }
    let lead = value.len()
        - value
            .trim_start_matches(|c: char| c.is_ascii() && json_space(c as u8))
            .len();
    Some(start + lead..start + lead + trimmed.len())
}

/// JSON's whitespace (not the form feed `is_ascii_whitespace` also takes).
fn json_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

/// How error messages of nodes that lack a block's state begin. ("header
/// not found" is not one: it says the block is not there, see
/// [`Reply::is_block_not_found`].)
const MISSING_STATE: [&str; 7] = [
    "missing trie node",
    "historical state",
    "required historical state",
    "state not available",
    "state is not available",
    "world state unavailable",
    "pruned",
];

/// How error messages of nodes that do not have a block begin.
const BLOCK_NOT_FOUND: [&str; 5] = [
    "header not found",
    "unknown block",
    "block not found",
    "resource not found",
    // anvil, for a block above its head: "BlockOutOfRangeError: block
    // height is 4 but requested was 7".
    "blockoutofrangeerror",
];

/// The error code of a revert (`execution reverted: <reason>`).
const REVERTED: i64 = 3;

/// The error code of EIP-1474's "resource not found".
const RESOURCE_NOT_FOUND: i64 = -32001;

#[cfg(test)]
mod tests {
    use super::*;

    /// The general path alone: serde's parse of the whole body.
    fn general(body: &[u8]) -> Option<(std::ops::Range<usize>, ReplyKind)> {
        #[derive(Deserialize)]
        struct Wire<'a> {
            #[serde(default, borrow, deserialize_with = "crate::jsonrpc::present")]
            result: Option<&'a RawValue>,
            #[serde(default, borrow, deserialize_with = "crate::jsonrpc::present")]
            error: Option<&'a RawValue>,
        }
        let wire: Wire = serde_json::from_slice(body).ok()?;
        let (raw, kind) = match (wire.error, wire.result) {
            (Some(e), _) if e.get() != "null" => (e, ReplyKind::Error),
            (_, Some(r)) => (r, ReplyKind::Result),
            _ => return None,
        };
        let start = raw.get().as_ptr() as usize - body.as_ptr() as usize;
        Some((start..start + raw.get().len(), kind))
    }

    /// Wherever the one-shape path answers, it answers as the general path
    /// does (and it answers for the nodes' usual shape).
    #[test]
    fn the_plain_shape_reads_as_the_general_parse_does() {
        let heads = [
            r#"{"jsonrpc":"2.0","id":"#,
            r#"{"jsonrpc":"2.0","id": "#,
            r#"{"jsonrpc":"2.0","#,
        ];
        let ids = ["7", "123", "", "x", "-1", "1.5"];
        let middles = [r#","result":"#, r#","result" :"#, r#","error":"#, ","];
        let values = [
            r#""0xde0b6b3a7640000""#,
            " 1 ",
            "null",
            r#"{"a":[1,2]}"#,
            "[",
            r#""open"#,
            r#"1,"result":2"#,
            r#"1,"error":{"code":1}"#,
            "\u{c}1",
            "",
            r#""\u00e9""#,
            "1 2",
        ];
        let tails = ["}", "}\n", " }", "", "}}", "}\u{c}", "}x"];
        let mut plain = 0;
        for h in heads {
            for i in ids {
                for m in middles {
                    for v in values {
                        for t in tails {
                            let body = format!("{h}{i}{m}{v}{t}");
                            let b = body.as_bytes();
                            if let Some(span) = plain_result(b) {
                                plain += 1;
                                assert_eq!(Some((span, ReplyKind::Result)), general(b), "{body}");
                            }
                        }
                    }
                }
            }
        }
        assert!(plain >= 10, "{plain} bodies took the plain path");
        assert!(plain_result(br#"{"jsonrpc":"2.0","id":5,"result":"0x1"}"#).is_some());
    }

    #[test]
    fn replies_keep_the_member_verbatim() {
        let r = Reply::from_body(Bytes::from_static(
            br#"{"jsonrpc":"2.0","id":1,"result":{"a" : [1, 2]}}"#,
        ))
        .unwrap();
        assert_eq!(r.raw(), br#"{"a" : [1, 2]}"#);
        assert!(!r.is_error());
        let r = Reply::from_body(Bytes::from_static(
            br#"{"jsonrpc":"2.0","id":1,"result":null}"#,
        ))
        .unwrap();
        assert_eq!(r.raw(), b"null");
        let r = Reply::from_body(Bytes::from_static(
            br#"{"id":1,"error":{"code":-32003,"message":"already known"}}"#,
        ))
        .unwrap();
        assert!(r.is_error());
        assert_eq!(r.error_message().as_deref(), Some("already known"));
        assert!(Reply::from_body(Bytes::from_static(br#"{"id":1}"#)).is_none());
        assert!(Reply::from_body(Bytes::from_static(b"<html>")).is_none());
    }

    fn error(code: i64, message: &str) -> Reply {
        let body = serde_json::json!({"id": 1, "error": {"code": code, "message": message}});
        Reply::from_body(Bytes::from(body.to_string())).unwrap()
    }

    #[test]
    fn missing_state_is_the_node_s_words_never_a_revert_reason() {
        assert!(error(-32000, "missing trie node 5b2e8c (path ) <nil>").is_missing_state());
        assert!(error(-32000, "historical state 0xab is not available").is_missing_state());
        assert!(!error(3, "execution reverted: missing trie node").is_missing_state());
        assert!(
            !error(3, "missing trie node").is_missing_state(),
            "code 3 is a revert"
        );
        assert!(!error(-32000, "execution reverted: missing trie node").is_missing_state());
        assert!(
            !error(-32000, "out of gas: historical state").is_missing_state(),
            "only a message that starts with the phrase"
        );
        assert!(!error(-32000, "header not found").is_missing_state());
    }

    #[test]
    fn block_not_found_by_code_or_words() {
        assert!(error(-32001, "Resource not found").is_block_not_found());
        assert!(error(-32000, "header not found").is_block_not_found());
        assert!(error(-32000, "unknown block").is_block_not_found());
        assert!(error(
            -32602,
            "BlockOutOfRangeError: block height is 4 but requested was 7"
        )
        .is_block_not_found());
        assert!(!error(3, "execution reverted: header not found").is_block_not_found());
        assert!(
            !error(3, "header not found").is_block_not_found(),
            "code 3 is a revert"
        );
        assert!(!error(-32000, "nonce too low").is_block_not_found());
    }
}
