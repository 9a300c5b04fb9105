//! Cache keys: the full normalized request, compared whole.
//!
//! Two calls share an answer only when their keys are equal as text: the key
//! holds the method and the params (after `latest` was pinned), never just a
//! hash of them, so a hash collision can never serve another request's answer
//! (the map hashes keys to find them, then compares them in full).
//!
//! Normalizing makes spellings of the same request meet: whitespace outside
//! strings is dropped, and hex strings (`"0xAbC"`) are lowercased, since
//! Ethereum JSON-RPC reads hex data and checksummed addresses without regard
//! to case. Member names are kept as written, even when they look like hex
//! (`{"0X": 1}` and `{"0x": 1}` are different objects). Anything else is kept
//! byte for byte.

use std::borrow::Borrow;
use std::sync::Arc;

use crate::jsonrpc::json_text;

/// `<method length>:<method><normalized params>`; the length prefix keeps
/// method and params from running into each other.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Key(Arc<str>);

impl Key {
    pub fn new(method: &str, params: Option<&str>) -> Key {
        Key::from_text(text(method, params))
    }

    /// A key from [`text`], for when a lookup by text missed.
    pub fn from_text(text: String) -> Key {
        Key(text.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Lookups go by the key's text, so a hit never builds the shared key.
impl Borrow<str> for Key {
    fn borrow(&self) -> &str {
        &self.0
    }
}

/// The text of the key of `method` with `params`.
pub(super) fn text(method: &str, params: Option<&str>) -> String {
    let params = params.unwrap_or("");
    let mut out = String::with_capacity(method.len() + params.len() + 8);
    // Written in place: a hit builds no other string than this one.
    push_decimal(&mut out, method.len());
    out.push(':');
    out.push_str(method);
    normalize_into(&mut out, params);
    out
}

fn push_decimal(out: &mut String, n: usize) {
    if n >= 10 {
        push_decimal(out, n / 10);
    }
    out.push(char::from(b'0' + (n % 10) as u8));
}

/// Appends `json` without insignificant whitespace and with hex strings
/// lowercased, in one pass: a hex string is found, checked and its case
/// noted by one scan, and only one with upper-case digits is copied on its
/// own; every other byte is copied in runs between whitespace.
fn normalize_into(out: &mut String, json: &str) {
    let bytes = json.as_bytes();
    let mut i = 0;
    let mut run = 0; // start of the pending run of kept bytes
    while i < bytes.len() {
        match bytes[i] {
            b'"' => match hex_string_end(bytes, i) {
                Some((end, upper)) => {
                    if upper && !is_member_name(bytes, end) {
                        out.push_str(&json[run..i]);
                        let at = out.len();
                        out.push_str(&json[i..end]);
                        // In place, a word at a time: not char by char.
                        out[at..].make_ascii_lowercase();
                        run = end;
                    }
                    i = end;
                }
                None => i = string_end(bytes, i),
            },
            b' ' | b'\t' | b'\n' | b'\r' => {
                out.push_str(&json[run..i]);
                i += 1;
                run = i;
            }
            _ => i += 1,
        }
    }
    out.push_str(&json[run..]);
}

/// For a hex string whose opening quote is at `at` (`"0x`, hex digits, the
/// closing quote; no escapes, since a backslash is no digit): the index just
/// past its closing quote, and whether it has an upper-case letter (the `X`
/// included). `None` for any other string.
fn hex_string_end(b: &[u8], at: usize) -> Option<(usize, bool)> {
    let mut upper = match b.get(at + 1..at + 3)? {
        [b'0', b'x'] => false,
        [b'0', b'X'] => true,
        _ => return None,
    };
    let mut j = at + 3;
    while let Some(&c) = b.get(j) {
        match c {
            b'0'..=b'9' | b'a'..=b'f' => {}
            b'A'..=b'F' => upper = true,
            b'"' => return Some((j + 1, upper)),
            _ => return None,
        }
        j += 1;
    }
    None
}

/// Whether the string that ends just before `end` names an object member
/// (`"0X": ...`): names are compared as written by every JSON reader, so a
/// name is never lowercased, whatever it looks like.
fn is_member_name(bytes: &[u8], end: usize) -> bool {
    bytes[end..]
        .iter()
        .find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
        .is_some_and(|&b| b == b':')
}

/// The index just past the string that opens at `start` (or the end of input).
fn string_end(bytes: &[u8], start: usize) -> usize {
    json_text::string_end(bytes, start).unwrap_or(bytes.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The normalization as it was before it was made one pass: the
    /// reference the one-pass scan must agree with.
    fn reference(json: &str) -> String {
        fn is_hex_string(s: &str) -> bool {
            let Some(inner) = s.strip_prefix('"').and_then(|s| s.strip_suffix('"')) else {
                return false;
            };
            let Some(digits) = inner
                .strip_prefix("0x")
                .or_else(|| inner.strip_prefix("0X"))
            else {
                return false;
            };
            digits.bytes().all(|b| b.is_ascii_hexdigit())
        }
        let mut out = String::new();
        let bytes = json.as_bytes();
        let mut i = 0;
        let mut run = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'"' => {
                    out.push_str(&json[run..i]);
                    let end = string_end(bytes, i);
                    let s = &json[i..end];
                    let at = out.len();
                    out.push_str(s);
                    if is_hex_string(s) && !is_member_name(bytes, end) {
                        out[at..].make_ascii_lowercase();
                    }
                    i = end;
                    run = end;
                }
                b' ' | b'\t' | b'\n' | b'\r' => {
                    out.push_str(&json[run..i]);
                    i += 1;
                    run = i;
                }
                _ => i += 1,
            }
        }
        out.push_str(&json[run..]);
        out
    }

    #[test]
    fn the_one_pass_scan_agrees_with_the_reference() {
        let atoms = [
            "\"0xAbC\"",
            "\"0x\"",
            "\"0X\"",
            "\"0Xab\"",
            "\"0xG1\"",
            "\"0x1\\\"\"",
            "\"0x",
            "\"",
            "\"a b\"",
            "{",
            "}",
            "[",
            "]",
            ",",
            ":",
            " ",
            "\t",
            "\n",
            "1",
            "\"0XFF\" :",
            "\"0xff\":",
            "\"é\"",
            "\\",
            "null",
        ];
        let mut rng = fastrand::Rng::with_seed(25);
        for _ in 0..50_000 {
            let n = rng.usize(..8);
            let text: String = (0..n).map(|_| atoms[rng.usize(..atoms.len())]).collect();
            let mut out = String::new();
            normalize_into(&mut out, &text);
            assert_eq!(out, reference(&text), "{text:?}");
        }
    }

    #[test]
    fn spellings_of_one_request_meet() {
        let a = Key::new("eth_getBalance", Some(r#"["0xAbCd", "0x1F"]"#));
        let b = Key::new("eth_getBalance", Some(r#"[ "0xabcd","0x1f" ]"#));
        assert_eq!(a, b);
        assert_eq!(a.as_str(), r#"14:eth_getBalance["0xabcd","0x1f"]"#);
    }

    #[test]
    fn member_names_are_not_lowercased() {
        // Found by the cache_key fuzz target: `{"0X": ...}` keyed as `{"0x": ...}`.
        let upper = Key::new("eth_call", Some(r#"[{"0X" : "0xDEAD"}, "latest"]"#));
        let lower = Key::new("eth_call", Some(r#"[{"0x":"0xdead"},"latest"]"#));
        assert_ne!(upper, lower);
        assert_eq!(upper.as_str(), r#"8:eth_call[{"0X":"0xdead"},"latest"]"#);
    }

    #[test]
    fn different_requests_stay_apart() {
        let k = |m: &str, p: Option<&str>| Key::new(m, p);
        assert_ne!(
            k("eth_getCode", Some("[1]")),
            k("eth_getBalance", Some("[1]"))
        );
        assert_ne!(k("a", Some("[]")), k("a", None));
        // Method and params cannot run into each other.
        assert_ne!(k("ab", Some("[]")), k("a", Some("b[]")));
        // Strings keep their case and their spaces unless they are hex.
        assert_ne!(k("m", Some(r#"["Latest"]"#)), k("m", Some(r#"["latest"]"#)));
        assert_ne!(k("m", Some(r#"["a b"]"#)), k("m", Some(r#"["ab"]"#)));
        assert_ne!(k("m", Some(r#"["0xg1"]"#)), k("m", Some(r#"["0xG1"]"#)));
    }

    #[test]
    fn escapes_and_broken_text_never_panic() {
        for p in [
            r#"["a\"b "]"#,
            r#"["\\", 1]"#,
            "[\"é \"]",
            "\"unterminated",
            "\"\\",
            "é",
        ] {
            let _ = Key::new("m", Some(p));
        }
        assert_eq!(
            Key::new("m", Some(r#"["a\" b", 1]"#)).as_str(),
            r#"1:m["a\" b",1]"#
        );
    }
}
