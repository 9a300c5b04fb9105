//! The nonce of a signed transaction, read from the raw bytes a client
//! sends (`eth_sendRawTransaction`): read-your-writes knows from it which
//! pending count must include the send, without recovering the sender.
//!
//! Only the start is read: a legacy transaction is an RLP list whose first
//! item is the nonce; a typed one (EIP-2718: access list, dynamic fee, blob,
//! set-code) is a type byte and a list whose second item is the nonce, after
//! the chain id. Anything else (another type, bytes that are not RLP) has no
//! nonce here, and read-your-writes goes without it. The node judges the
//! transaction; this never refuses one.

/// Bytes of the transaction looked at: type, list head, chain id and nonce
/// fit in 28.
const PREFIX_BYTES: usize = 32;

/// The nonce of the transaction in `raw` (`0x`-prefixed hex), if it reads
/// as one of the known kinds.
pub fn nonce_of(raw: &str) -> Option<u64> {
    let hex = raw.strip_prefix("0x").unwrap_or(raw).as_bytes();
    let mut bytes = [0u8; PREFIX_BYTES];
    let n = (hex.len() / 2).min(PREFIX_BYTES);
    for (i, out) in bytes[..n].iter_mut().enumerate() {
        *out = (nibble(hex[2 * i])? << 4) | nibble(hex[2 * i + 1])?;
    }
    nonce_in(&bytes[..n])
}

fn nonce_in(tx: &[u8]) -> Option<u64> {
    let (&first, rest) = tx.split_first()?;
    match first {
        // A legacy transaction: the list itself.
        0xc0.. => {
            let list = list_payload(tx)?;
            integer(item(list)?.0)
        }
        // Typed: access list, dynamic fee, blob, set-code.
        1..=4 => {
            let list = list_payload(rest)?;
            let (_chain_id, after) = item(list)?;
            integer(item(after)?.0)
        }
        _ => None,
    }
}

/// The payload of the RLP list at the start of `bytes` (cut short when
/// `bytes` is: only its start is read).
fn list_payload(bytes: &[u8]) -> Option<&[u8]> {
    let (&b, rest) = bytes.split_first()?;
    match b {
        0xc0..=0xf7 => Some(rest),
        0xf8.. => rest.get(usize::from(b - 0xf7)..),
        _ => None,
    }
}

/// The first string item of `bytes` and what follows it.
fn item(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let (&b, rest) = bytes.split_first()?;
    match b {
        0..=0x7f => Some((&bytes[..1], rest)),
        0x80..=0xb7 => {
            let len = usize::from(b - 0x80);
            (rest.len() >= len).then(|| rest.split_at(len))
        }
        0xb8..=0xbf => {
            let len_of_len = usize::from(b - 0xb7);
            let len = rest.get(..len_of_len)?.iter().try_fold(0usize, |n, &d| {
                n.checked_mul(256)?.checked_add(usize::from(d))
            })?;
            let rest = &rest[len_of_len..];
            (rest.len() >= len).then(|| rest.split_at(len))
        }
        // A list where a number belongs.
        _ => None,
    }
}

/// A big-endian integer of at most 8 bytes.
fn integer(bytes: &[u8]) -> Option<u64> {
    if bytes.len() > 8 {
        return None;
    }
    Some(bytes.iter().fold(0u64, |n, &d| (n << 8) | u64::from(d)))
}

fn nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonces_of_signed_transactions_of_each_kind() {
        // Dynamic fee (type 2), signed by anvil: chain 31337, nonce 0.
        let eip1559 = "0x02f86d827a6980843b9aca008502540be4008252089470997970c51812dc3a010c7d01b54e5c0979720c0180c080a089cc735e5e21116bf07fb6f3fbd182f7a1b08a6b5c9027751230a822846900b1a07990";
        assert_eq!(nonce_of(eip1559), Some(0));
        // The same with nonce 0x385 (901): a two-byte string.
        let eip1559_901 = "0x02f86f827a69820385843b9aca008502540be40082520894";
        assert_eq!(nonce_of(eip1559_901), Some(901));
        // Legacy (EIP-155), nonce 9: the example of EIP-155.
        let legacy = "0xf86c098504a817c800825208943535353535353535353535353535353535353535880de0b6b3a76400008025a028ef61340bd939bc2195fe537567866003e1a15d3c71ff63e1590620aa636276a067cbe9d8997f761aecb703304b3800ccf555c9f3dc64214b297fb1966a3b6d83";
        assert_eq!(nonce_of(legacy), Some(9));
        // Access list (type 1), chain 1, nonce 0x0100.
        assert_eq!(nonce_of("0x01f8500182010080"), Some(256));
        // Nonce zero is the empty string.
        assert_eq!(nonce_of("0x02e5827a698080"), Some(0));
    }

    #[test]
    fn anything_else_has_no_nonce_and_nothing_panics() {
        for raw in [
            "",
            "0x",
            "0x02",
            "0x7e01",
            "0x05c0",
            "0xzz",
            "0x0",
            "0x02c0",
            "0x02c1c0",
            "0x02f8",
            "0x02c5b9ffffffff",
            "0x02c3018980",
            "0xc0",
            "0xf9ffff",
            "0x02cb01890102030405060708",
            "0x02cc018901020304050607080900",
        ] {
            assert_eq!(nonce_of(raw), None, "{raw}");
        }
    }
}
