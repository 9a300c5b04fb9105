//! Hex quantities as JSON-RPC writes them: `0x` and at most 16 hex digits,
//! no leading zeros required or refused (nodes send `0x0` and `0x1b4`).
//!
//! Everything that reads a block number off the wire (head tracking, the
//! cache's reorg follower, subscriptions, block arguments) parses it here, so
//! a number means the same thing on every path.

/// Parses a quantity that fits in a `u64`: `0x` followed by 1 to 16 hex digits.
/// (Digits only: `from_str_radix` alone would also take a sign, `0x+1`.)
pub fn parse_quantity(text: &str) -> Option<u64> {
    let digits = text.strip_prefix("0x")?;
    if digits.is_empty() || digits.len() > 16 || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(digits, 16).ok()
}

/// Parses a quantity a client sent as a block number, only when every node
/// reads it as this same number: `0x`, then hex digits with no leading zero
/// (`0x0` itself is zero), at most 63 bits. Nodes part ways on the rest:
/// Geth takes `0X` and refuses `0x00` (`hexutil`), serde-based nodes take
/// leading zeros and refuse `0X`, and Geth refuses numbers above
/// `i64::MAX`; a spelling read two ways cannot be judged, so it is refused.
pub fn parse_exact_quantity(text: &str) -> Option<u64> {
    let digits = text.strip_prefix("0x")?;
    if digits.len() > 1 && digits.starts_with('0') {
        return None;
    }
    parse_quantity(text).filter(|n| i64::try_from(*n).is_ok())
}

/// A quantity as a JSON string, quotes included: `"0x1b4"`.
/// Written digit by digit: `format!` cost a forwarded call more than its
/// pinning did otherwise.
pub fn quoted_quantity(n: u64) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut digits = [0u8; 16];
    let mut at = digits.len();
    let mut rest = n;
    loop {
        at -= 1;
        digits[at] = DIGITS[(rest & 0xf) as usize];
        rest >>= 4;
        if rest == 0 {
            break;
        }
    }
    let mut out = String::with_capacity(21);
    out.push_str("\"0x");
    out.push_str(std::str::from_utf8(&digits[at..]).unwrap_or("0"));
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities() {
        assert_eq!(parse_quantity("0x0"), Some(0));
        assert_eq!(parse_quantity("0x1b4"), Some(436));
        assert_eq!(parse_quantity("0x"), None);
        assert_eq!(parse_quantity("12"), None);
        assert_eq!(parse_quantity("0x10000000000000000"), None);
        assert_eq!(parse_quantity("0x+1"), None);
        assert_eq!(parse_quantity("0x00"), Some(0));
        assert_eq!(parse_exact_quantity("0x0"), Some(0));
        assert_eq!(parse_exact_quantity("0x1B4"), Some(436));
        for odd in [
            "0X0",
            "0x00",
            "0x01",
            "0x+1",
            "0x",
            "0x8000000000000000",
            " 0x1",
            "1",
        ] {
            assert_eq!(parse_exact_quantity(odd), None, "{odd}");
        }
        assert_eq!(quoted_quantity(436), "\"0x1b4\"");
        for n in [0, 1, 15, 16, 0x8000, u64::MAX, 0x1234_5678_9abc_def0] {
            assert_eq!(quoted_quantity(n), format!("\"0x{n:x}\""));
        }
    }
}
