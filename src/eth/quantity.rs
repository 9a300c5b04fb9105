//! Hex quantities as JSON-RPC writes them: `0x` and at most 16 hex digits,
//! no leading zeros required or refused (nodes send `0x0` and `0x1b4`).
//!
//! Everything that reads a block number off the wire (head tracking, the
//! cache's reorg follower, subscriptions, block arguments) parses it here, so
//! a number means the same thing on every path.

/// Parses a quantity that fits in a `u64`: `0x` followed by 1 to 16 hex digits.
pub fn parse_quantity(text: &str) -> Option<u64> {
    let digits = text.strip_prefix("0x")?;
    if digits.is_empty() || digits.len() > 16 {
        return None;
    }
    u64::from_str_radix(digits, 16).ok()
}

/// A quantity as a JSON string, quotes included: `"0x1b4"`.
pub fn quoted_quantity(n: u64) -> String {
    format!("\"0x{n:x}\"")
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
        assert_eq!(quoted_quantity(436), "\"0x1b4\"");
    }
}
