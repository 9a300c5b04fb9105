//! What an upstream reply says about the blocks it came from.
//!
//! Block objects carry `number` and `hash`; transactions, receipts and logs
//! carry `blockNumber` and `blockHash`. Reading them lets the cache check that
//! an answer belongs to the block it will be bound to (a node still on the
//! old side of a reorg answers with the old block), and learn the block of a
//! transaction or of a lookup by hash. Only these top-level members are read;
//! the rest is skipped without being copied.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::eth::{parse_hash, parse_quantity, Hash};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Named<'a> {
    #[serde(borrow)]
    number: Option<Cow<'a, str>>,
    #[serde(borrow)]
    hash: Option<Cow<'a, str>>,
    #[serde(borrow)]
    block_number: Option<Cow<'a, str>>,
    #[serde(borrow)]
    block_hash: Option<Cow<'a, str>>,
}

impl Named<'_> {
    /// `None` for an object that names no block (a pending transaction).
    fn block(&self) -> Result<Option<(u64, Hash)>, ()> {
        let (n, h) = match (
            &self.block_number,
            &self.block_hash,
            &self.number,
            &self.hash,
        ) {
            (Some(n), Some(h), _, _) => (n, h),
            (None, None, Some(n), Some(h)) => (n, h),
            _ => return Ok(None),
        };
        match (parse_quantity(n), parse_hash(h)) {
            (Some(n), Some(h)) => Ok(Some((n, h))),
            _ => Err(()),
        }
    }
}

/// The blocks an answer names, in order, with repeats removed: none for a
/// scalar, one for an object, one per element for an array. `Err` when an
/// object or array cannot be read, or names a block in a shape we do not know.
pub(super) fn blocks_named(result: &[u8]) -> Result<Vec<(u64, Hash)>, ()> {
    match result.first() {
        Some(b'{') => {
            let named: Named = serde_json::from_slice(result).map_err(|_| ())?;
            Ok(named.block()?.into_iter().collect())
        }
        Some(b'[') => {
            let items: Vec<&RawValue> = serde_json::from_slice(result).map_err(|_| ())?;
            let mut out: Vec<(u64, Hash)> = Vec::new();
            for item in items {
                if !item.get().starts_with('{') {
                    continue;
                }
                let named: Named = serde_json::from_str(item.get()).map_err(|_| ())?;
                match named.block()? {
                    Some(b) if !out.contains(&b) => out.push(b),
                    Some(_) => {}
                    None => return Err(()),
                }
            }
            Ok(out)
        }
        _ => Ok(Vec::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: &str = "0x88e96d4537bea4d9c05d12549907b32561d3bf31f45aae734cdc119f13406cb6";
    const G: &str = "0x1111111111111111111111111111111111111111111111111111111111111111";

    #[test]
    fn blocks_transactions_receipts_and_logs() {
        let h = parse_hash(H).unwrap();
        let block = format!(
            r#"{{"number":"0x5","hash":"{H}","transactions":[{{"blockHash":"{G}","blockNumber":"0x9"}}]}}"#
        );
        assert_eq!(blocks_named(block.as_bytes()), Ok(vec![(5, h)]));
        let tx = format!(r#"{{"hash":"{G}","blockHash":"{H}","blockNumber":"0x5","nonce":"0x0"}}"#);
        assert_eq!(blocks_named(tx.as_bytes()), Ok(vec![(5, h)]));
        let pending = format!(r#"{{"hash":"{G}","blockHash":null,"blockNumber":null}}"#);
        assert_eq!(blocks_named(pending.as_bytes()), Ok(vec![]));
        let logs = format!(
            r#"[{{"blockHash":"{H}","blockNumber":"0x5"}},{{"blockHash":"{H}","blockNumber":"0x5"}},{{"blockHash":"{G}","blockNumber":"0x6"}}]"#
        );
        assert_eq!(
            blocks_named(logs.as_bytes()),
            Ok(vec![(5, h), (6, parse_hash(G).unwrap())])
        );
        assert_eq!(blocks_named(b"[]"), Ok(vec![]));
        assert_eq!(blocks_named(b"\"0x5\""), Ok(vec![]));
        assert!(blocks_named(b"[{\"x\":1}]").is_err());
        assert!(blocks_named(b"{\"number\":\"0x5\",\"hash\":\"0xzz\"}").is_err());
        assert!(blocks_named(b"{broken").is_err());
    }
}
