//! Submitting a transaction (`eth_sendRawTransaction`): at most once per
//! backend that may have it.

use bytes::Bytes;
use sha3::{Digest, Keccak256};

use super::{attempt, Forward, Order, Target, Unanswered};
use crate::eth::hash::{decode_hex, to_hex};
use crate::jsonrpc::Reply;
use crate::upstream::{BackendView, UpstreamError};

/// Messages with which nodes say a transaction is already in their pool.
const ALREADY_KNOWN: [&str; 3] = ["already known", "already imported", "known transaction"];

pub(super) async fn submit(
    target: Target<'_>,
    candidates: Vec<&BackendView>,
    params: Option<&str>,
    order: Order<'_>,
) -> Result<Reply, Unanswered> {
    let call = Forward {
        method: "eth_sendRawTransaction",
        params,
        min_head: 0,
        state_at: None,
        block: None,
    };
    let again = UpstreamError::surely_not_received;
    let reply = attempt(target, candidates, &call, again, order).await?;
    let known = reply.error_message().is_some_and(|m| {
        let m = m.to_ascii_lowercase();
        ALREADY_KNOWN.iter().any(|k| m.contains(k))
    });
    match params.and_then(tx_hash) {
        Some(hash) if known => {
            let mut hash = Reply::result_from(Bytes::from(format!("\"{hash}\"")));
            hash.origin = reply.origin;
            Ok(hash)
        }
        _ => Ok(reply),
    }
}

/// The hash of the raw transaction in `params` (`["0x..."]`): keccak256 of its bytes.
fn tx_hash(params: &str) -> Option<String> {
    let [raw]: [String; 1] = serde_json::from_str(params).ok()?;
    let bytes = decode_hex(raw.strip_prefix("0x")?)?;
    Some(to_hex(&Keccak256::digest(&bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_of_a_raw_transaction() {
        // keccak256 of the empty string and of 0x01.
        assert_eq!(
            tx_hash(r#"["0x"]"#).unwrap(),
            "0xc5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
        );
        assert_eq!(
            tx_hash(r#"["0x01"]"#).unwrap(),
            "0x5fe7f977e71dba2ea1a68e21057beebb9be2ac30c6410aa38d4f3fbe41dcffd2"
        );
        assert!(tx_hash(r#"["0x0"]"#).is_none());
        assert!(tx_hash(r#"["zz"]"#).is_none());
    }
}
