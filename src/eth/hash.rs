//! 32-byte hashes (blocks, transactions) and hex bytes.
//!
//! A hash is kept as its bytes, not its text, so that two spellings of one
//! hash (upper and lower case hex) compare equal and a map of hashes is cheap.

/// A block or transaction hash.
pub type Hash = [u8; 32];

/// Parses `0x` and 64 hex digits.
pub fn parse_hash(s: &str) -> Option<Hash> {
    let digits = s.strip_prefix("0x")?.as_bytes();
    if digits.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in digits.chunks_exact(2).enumerate() {
        let hi = (pair[0] as char).to_digit(16)?;
        let lo = (pair[1] as char).to_digit(16)?;
        out[i] = (hi * 16 + lo) as u8;
    }
    Some(out)
}

/// `0x` and the lower-case hex of `bytes`.
pub fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    // Bytes, not chars: pushing a char to a String encodes it as UTF-8 and
    // checks the capacity each time, for every hash a pinned call sends.
    let mut out = vec![0u8; 2 + bytes.len() * 2];
    out[..2].copy_from_slice(b"0x");
    for (pair, b) in out[2..].chunks_exact_mut(2).zip(bytes) {
        pair[0] = DIGITS[usize::from(b >> 4)];
        pair[1] = DIGITS[usize::from(b & 0xf)];
    }
    String::from_utf8(out).unwrap_or_default()
}

/// The bytes of hex digits without a prefix (`None` for an odd length or a
/// character that is not a hex digit).
pub fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_round_trip() {
        let text = "0x88e96d4537bea4d9c05d12549907b32561d3bf31f45aae734cdc119f13406cb6";
        assert_eq!(to_hex(&parse_hash(text).unwrap()), text);
        assert!(parse_hash(&text[..65]).is_none());
        assert!(parse_hash(&text.replace('8', "g")).is_none());
        assert!(
            parse_hash("88e96d4537bea4d9c05d12549907b32561d3bf31f45aae734cdc119f13406cb6aa")
                .is_none()
        );
        assert_eq!(
            parse_hash(&text.to_ascii_uppercase().replace("0X", "0x")),
            parse_hash(text)
        );
    }

    #[test]
    fn hex_bytes() {
        assert_eq!(decode_hex("00ff10"), Some(vec![0, 255, 16]));
        assert_eq!(decode_hex(""), Some(vec![]));
        assert!(decode_hex("0").is_none());
        assert!(decode_hex("zz").is_none());
        assert_eq!(to_hex(&[0, 255, 16]), "0x00ff10");
    }
}
