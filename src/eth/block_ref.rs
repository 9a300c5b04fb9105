//! A block reference as a client writes it: a tag, a number or a hash, bare
//! or as an EIP-1898 object (`{"blockNumber": ...}` or `{"blockHash": ...}`).
//!
//! This is the one parser of block arguments: block pinning, backend choice
//! and the cache all decide by the value it returns, so they can never
//! disagree about what a call asks for.

use serde_json::value::RawValue;

use super::hash::{parse_hash, Hash};
use super::quantity::parse_exact_quantity;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockRef {
    Latest,
    Earliest,
    Number(u64),
    Hash(Hash),
    /// `pending`: changes with every transaction.
    Pending,
    /// `safe` or `finalized`: the present, as the node sees it.
    Tag,
    /// Missing pieces, both a number and a hash, or not a block reference
    /// at all: the node judges it.
    Unknown,
    /// A string in a block's place that nodes do not all read as the same
    /// block (`0X1`, `0x01`, an escape, a sign, a number past `i64::MAX`):
    /// the gateway cannot judge what it asks, so it is refused, never
    /// guessed (see `parse_exact_quantity`).
    Unreadable,
}

impl BlockRef {
    pub fn parse(raw: &RawValue) -> BlockRef {
        BlockRef::parse_text(raw.get())
    }

    /// [`BlockRef::parse`] of a value's JSON text.
    pub fn parse_text(text: &str) -> BlockRef {
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Eip1898<'a> {
            block_number: Option<&'a str>,
            block_hash: Option<&'a str>,
        }
        if let Some(s) = text.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
            return BlockRef::from_text(s);
        }
        if !text.starts_with('{') {
            return BlockRef::Unknown;
        }
        match serde_json::from_str::<Eip1898>(text) {
            Ok(Eip1898 {
                block_hash: Some(h),
                block_number: None,
            }) => parse_hash(h).map_or(BlockRef::Unknown, BlockRef::Hash),
            Ok(Eip1898 {
                block_number: Some(n),
                block_hash: None,
            }) => BlockRef::from_text(n),
            _ => BlockRef::Unknown,
        }
    }

    /// The text of a JSON string (escapes are not read: they make it
    /// `Unreadable`, as Geth reads the bytes between the quotes unescaped).
    fn from_text(s: &str) -> BlockRef {
        match s {
            "latest" => BlockRef::Latest,
            "earliest" => BlockRef::Earliest,
            "pending" => BlockRef::Pending,
            "safe" | "finalized" => BlockRef::Tag,
            _ if s.len() == 66 => parse_hash(s).map_or(BlockRef::Unreadable, BlockRef::Hash),
            _ => parse_exact_quantity(s).map_or(BlockRef::Unreadable, BlockRef::Number),
        }
    }

    /// `safe` or `finalized`, which a log filter resolves to the view's numbers.
    pub fn tag_name(text: &str) -> Option<&'static str> {
        match text {
            "\"safe\"" => Some("safe"),
            "\"finalized\"" => Some("finalized"),
            _ => None,
        }
    }

    /// The block number named, `earliest` being 0.
    pub fn number(self) -> Option<u64> {
        match self {
            BlockRef::Number(n) => Some(n),
            BlockRef::Earliest => Some(0),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> BlockRef {
        BlockRef::parse(&RawValue::from_string(text.to_string()).unwrap())
    }

    #[test]
    fn every_spelling() {
        let h = "0x88e96d4537bea4d9c05d12549907b32561d3bf31f45aae734cdc119f13406cb6";
        assert_eq!(parse("\"latest\""), BlockRef::Latest);
        assert_eq!(parse("\"earliest\""), BlockRef::Earliest);
        assert_eq!(parse("\"pending\""), BlockRef::Pending);
        assert_eq!(parse("\"safe\""), BlockRef::Tag);
        assert_eq!(parse("\"finalized\""), BlockRef::Tag);
        assert_eq!(parse("\"0x1f\""), BlockRef::Number(31));
        assert_eq!(
            parse(&format!("\"{h}\"")),
            BlockRef::Hash(parse_hash(h).unwrap())
        );
        assert_eq!(parse(r#"{"blockNumber":"0x9"}"#), BlockRef::Number(9));
        assert_eq!(
            parse(&format!(r#"{{"blockHash":"{h}"}}"#)),
            BlockRef::Hash(parse_hash(h).unwrap())
        );
        assert_eq!(
            parse(&format!(r#"{{"blockHash":"{h}","blockNumber":"0x1"}}"#)),
            BlockRef::Unknown
        );
        assert_eq!(parse("\"\\u0030x1\""), BlockRef::Unreadable);
        for odd in [
            "0X0",
            "0x00",
            "0x01",
            "0x+1",
            "0x",
            "soon",
            "0x8000000000000000",
        ] {
            assert_eq!(parse(&format!("\"{odd}\"")), BlockRef::Unreadable, "{odd}");
            assert_eq!(
                parse(&format!(r#"{{"blockNumber":"{odd}"}}"#)),
                BlockRef::Unreadable,
                "{odd}"
            );
        }
        assert_eq!(parse("\"0x0\""), BlockRef::Number(0));
        assert_eq!(parse("7"), BlockRef::Unknown);
        assert_eq!(parse("null"), BlockRef::Unknown);
    }
}
