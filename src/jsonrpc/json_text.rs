//! Reading JSON text without parsing it into values.
//!
//! The params a client sends are kept as raw text all the way to the
//! backend. What the gateway must know of them (the block argument, where a
//! string ends) is found by scanning that text, and what it must change (the
//! block, pinned) is spliced into it: parsing the list into values and
//! writing it again cost more than the rest of block pinning. The text comes
//! from a request already parsed as JSON; text that is not JSON gives `None`
//! or some slice, never a panic.

/// The length of the JSON array `list` and its element at `i` (its text, a
/// slice of `list`), found in one scan that follows strings and nesting but
/// builds no value: serde's visitor, which had done this, cost three times as
/// much, and every forwarded read of a block runs it twice (here, and when
/// the cache pins the block to its hash). `None` when `list` is not an
/// array. The params come from a request already parsed as JSON; text that
/// is not JSON gives `None` or some slice, never a panic.
pub fn nth(list: &str, i: usize) -> Option<(usize, Option<&str>)> {
    let b = list.as_bytes();
    let mut at = skip_space(b, 0);
    if b.get(at) != Some(&b'[') {
        return None;
    }
    at = skip_space(b, at + 1);
    let (mut len, mut found) = (0, None);
    if b.get(at) != Some(&b']') {
        loop {
            let end = value_end(b, at)?;
            if len == i {
                found = Some(list.get(at..end)?);
            }
            len += 1;
            at = skip_space(b, end);
            match b.get(at)? {
                b',' => at = skip_space(b, at + 1),
                b']' => break,
                _ => return None,
            }
        }
    }
    (skip_space(b, at + 1) == b.len()).then_some((len, found))
}

fn skip_space(b: &[u8], mut at: usize) -> usize {
    while matches!(b.get(at), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        at += 1;
    }
    at
}

/// Where the JSON value that starts at `at` ends.
fn value_end(b: &[u8], at: usize) -> Option<usize> {
    match *b.get(at)? {
        b'"' => string_end(b, at),
        b'[' | b'{' => {
            let mut depth = 0usize;
            let mut j = at;
            while j < b.len() {
                match b[j] {
                    b'"' => {
                        j = string_end(b, j)?;
                        continue;
                    }
                    b'[' | b'{' => depth += 1,
                    b']' | b'}' => {
                        depth = depth.checked_sub(1)?;
                        if depth == 0 {
                            return Some(j + 1);
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
            None
        }
        _ => {
            let mut j = at;
            while j < b.len() && !matches!(b[j], b',' | b']' | b'}' | b' ' | b'\t' | b'\n' | b'\r')
            {
                j += 1;
            }
            (j > at).then_some(j)
        }
    }
}

/// Where the JSON string whose opening quote is at `at` ends (the index
/// just past its closing quote); `None` when it does not end.
pub fn string_end(b: &[u8], at: usize) -> Option<usize> {
    let mut j = at + 1;
    loop {
        // Straight to the next quote or backslash: most strings (hex) have none inside.
        j += b.get(j..)?.iter().position(|&c| c == b'"' || c == b'\\')?;
        if b[j] == b'"' {
            return Some(j + 1);
        }
        j += 2;
    }
}

/// The JSON array `list` (of `len` elements) with its element `at`
/// (borrowed from `list`, as [`nth`] returns it) replaced by `with`, or with
/// `with` appended when `at` is `None`. The rest of the text is kept as the
/// caller wrote it: the params are not parsed into a list and written again
/// (which was most of what pinning cost a forwarded call), and cache keys
/// normalize whitespace on their own.
pub fn splice(list: &str, at: Option<&str>, len: usize, with: &str) -> Option<String> {
    let mut out = String::with_capacity(list.len() + with.len() + 1);
    match at {
        Some(item) => {
            let start = (item.as_ptr() as usize).checked_sub(list.as_ptr() as usize)?;
            let end = start + item.len();
            // Only a slice of `list` itself can be spliced.
            if list.get(start..end)?.as_ptr() != item.as_ptr() {
                return None;
            }
            out.push_str(&list[..start]);
            out.push_str(with);
            out.push_str(&list[end..]);
        }
        None => {
            let close = list.rfind(']')?;
            out.push_str(&list[..close]);
            if len > 0 {
                out.push(',');
            }
            out.push_str(with);
            out.push_str(&list[close..]);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::value::RawValue;

    /// The scan agrees with serde on every list of the seeded random params
    /// (whitespace, nesting, escapes and brackets inside strings included).
    #[test]
    fn the_scan_finds_what_serde_finds() {
        let atoms = [
            "\"latest\"",
            "\"a]b,c\"",
            "\"\\\"]\"",
            "{\"blockNumber\":\"0x1\",\"x\":[1,{\"y\":\"}\"}]}",
            "[[],[[]]]",
            " null ",
            "-1.5e3",
            "true",
            "\"\\u005d\"",
            "{}",
        ];
        let mut rng = fastrand::Rng::with_seed(7);
        for _ in 0..20_000 {
            let n = rng.usize(..5);
            let items: Vec<&str> = (0..n).map(|_| atoms[rng.usize(..atoms.len())]).collect();
            let list = format!("[{}]\n", items.join(if rng.bool() { "," } else { " ,\t" }));
            let serde: Vec<&RawValue> = serde_json::from_str(&list).unwrap();
            for i in 0..=n {
                let (len, at) = nth(&list, i).unwrap();
                assert_eq!(len, n, "{list}");
                assert_eq!(at, serde.get(i).map(|r| r.get()), "{list} at {i}");
            }
        }
        for bad in ["", "{}", "[1,", "[1 2]", "[\"open]", "[1]]", "[{]", "[}]"] {
            assert!(nth(bad, 0).is_none(), "{bad}");
        }
    }

    #[test]
    fn one_element_is_read_without_collecting_the_list() {
        let raw = RawValue::from_string(r#"["a", 1, {"x":[1,"]"]}]"#.to_string()).unwrap();
        let at = |i| nth(raw.get(), i);
        assert_eq!(at(0), Some((3, Some(r#""a""#))));
        assert_eq!(at(2), Some((3, Some(r#"{"x":[1,"]"]}"#))));
        assert_eq!(at(3), Some((3, None)));
        let object = RawValue::from_string(r#"{"a":1}"#.to_string()).unwrap();
        assert!(nth(object.get(), 0).is_none());
    }

    #[test]
    fn a_splice_keeps_the_rest_of_the_text_as_written() {
        let splice_at = |list: &str, i: usize, with: &str| {
            let (len, at) = nth(list, i)?;
            splice(list, at, len, with)
        };
        assert_eq!(
            splice_at(r#"[ "0xab" , "latest" ]"#, 1, "\"0x5\"").unwrap(),
            r#"[ "0xab" , "0x5" ]"#
        );
        assert_eq!(
            splice_at(r#"[{"to":"0x1","data":"]"}]"#, 1, "\"0x5\"").unwrap(),
            r#"[{"to":"0x1","data":"]"},"0x5"]"#
        );
        assert_eq!(splice_at("[]", 0, "\"0x5\"").unwrap(), r#"["0x5"]"#);
        assert_eq!(
            splice_at(r#"["a",{"blockNumber":"latest"},"c"]"#, 1, "7").unwrap(),
            r#"["a",7,"c"]"#
        );
        // An element that is not a slice of the list is refused.
        let other = String::from("1");
        assert!(splice("[1]", Some(&other), 1, "2").is_none());
    }
}
