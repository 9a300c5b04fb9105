//! Pinning a call to the block hash its cache entry will be bound to.
//!
//! A read of block N above finality may reach a node that is still on the
//! other side of a reorg, and nothing in an `eth_getBalance` answer tells.
//! Sending the block as `{"blockHash": ...}` (EIP-1898; for logs, the
//! `blockHash` filter of EIP-234) makes the node answer for exactly the block
//! the entry is bound to, or fail, so a stored answer always matches its
//! binding. Only misses that will be stored are rewritten.

use std::collections::BTreeMap;

use serde_json::value::RawValue;

use crate::eth::hash::{to_hex, Hash};
use crate::jsonrpc::json_text;

fn block_hash_object(h: &Hash) -> String {
    let mut out = String::with_capacity(82);
    out.push_str("{\"blockHash\":\"");
    out.push_str(&to_hex(h));
    out.push_str("\"}");
    out
}

/// `params` with the block argument at `index` replaced by `{"blockHash": h}`.
/// The rest of the params is kept as written (see [`json_text::splice`]).
pub(super) fn block_param(params: &str, index: usize, h: &Hash) -> Option<String> {
    let (len, at) = json_text::nth(params, index)?;
    json_text::splice(params, Some(at?), len, &block_hash_object(h))
}

/// An `eth_getLogs` filter over one block, as a `blockHash` filter.
pub(super) fn log_filter(params: &str, h: &Hash) -> Option<String> {
    let list: Vec<&RawValue> = serde_json::from_str(params).ok()?;
    let [filter] = list.as_slice() else {
        return None;
    };
    let mut filter: BTreeMap<&str, &RawValue> = serde_json::from_str(filter.get()).ok()?;
    filter.remove("fromBlock");
    filter.remove("toBlock");
    let hash = RawValue::from_string(format!("\"{}\"", to_hex(h))).ok()?;
    filter.insert("blockHash", &hash);
    let filter = RawValue::from_string(serde_json::to_string(&filter).ok()?).ok()?;
    serde_json::to_string(&[&filter]).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites() {
        let h = [0xab; 32];
        let hx = to_hex(&h);
        assert_eq!(
            block_param(r#"["0x1", "0x5"]"#, 1, &h).unwrap(),
            format!(r#"["0x1", {{"blockHash":"{hx}"}}]"#)
        );
        assert!(block_param(r#"["0x1"]"#, 1, &h).is_none());
        assert!(block_param(r#"{"a":1}"#, 0, &h).is_none());
        let f = log_filter(
            r#"[{"fromBlock":"0x5","toBlock":"0x5","address":"0xa"}]"#,
            &h,
        )
        .unwrap();
        assert_eq!(f, format!(r#"[{{"address":"0xa","blockHash":"{hx}"}}]"#));
    }
}
