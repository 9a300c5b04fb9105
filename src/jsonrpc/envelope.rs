//! Parsing a request body into calls, without copying params.

use std::borrow::Cow;

use serde::de::{DeserializeSeed, IgnoredAny, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

/// The longest id (its JSON text) a call may carry; Geth sets no bound,
/// but no client needs more, and every answer repeats it.
pub const MAX_ID_BYTES: usize = 1024;

/// The caller's id, kept as raw JSON text: a string, a number or `null`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Id<'a>(&'a str);

impl<'a> Id<'a> {
    pub const NULL: Id<'static> = Id("null");
    pub fn raw(&self) -> &'a str {
        self.0
    }
}

/// One valid call.
#[derive(Debug, Clone)]
pub struct Call<'a> {
    pub method: Cow<'a, str>,
    /// `None` for a notification (no `id` member), which gets no answer.
    pub id: Option<Id<'a>>,
    pub params: Option<&'a RawValue>,
}

impl<'a> Call<'a> {
    pub fn is_notification(&self) -> bool {
        self.id.is_none()
    }
    /// The id to answer with (a notification never is answered, but errors
    /// about it still need one).
    pub fn reply_id(&self) -> Id<'a> {
        self.id.unwrap_or(Id::NULL)
    }
}

/// An entry that is not a valid request: answered with -32600 and the id
/// when one could be read.
#[derive(Debug, Clone)]
pub struct Invalid<'a> {
    pub id: Id<'a>,
    pub reason: &'static str,
}

pub type Entry<'a> = Result<Call<'a>, Invalid<'a>>;

#[derive(Debug)]
pub enum Payload<'a> {
    Single(Entry<'a>),
    Batch(Vec<Entry<'a>>),
}

/// A body that cannot be read as calls at all: answered with one error object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    #[error("parse error: {0}")]
    Parse(&'static str),
    #[error("invalid request: {0}")]
    NotRequest(&'static str),
    #[error("invalid request: empty batch")]
    EmptyBatch,
    #[error("invalid request: batch of {len} entries is over the limit of {max}")]
    BatchTooLarge { len: usize, max: usize },
}

/// Fields kept raw so that a bad `method` does not lose the `id`.
#[derive(Deserialize)]
struct Wire<'a> {
    #[serde(default, borrow, deserialize_with = "present")]
    jsonrpc: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    method: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    id: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    params: Option<&'a RawValue>,
}

/// `Some` whenever the member is present, even when it is `null`: a missing
/// `id` (notification) and `"id": null` mean different things.
pub(crate) fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(d).map(Some)
}

/// Parses a body: a single call or a batch of at most `max_batch` entries.
/// An entry whose params nest arrays and objects deeper than `max_depth` is
/// invalid: no node needs that, and a parser that recurses must not see it.
pub fn parse(
    body: &[u8],
    max_batch: usize,
    max_method_len: usize,
    max_depth: usize,
) -> Result<Payload<'_>, PayloadError> {
    let bounds = Bounds {
        max_method_len,
        max_depth,
    };
    let text =
        std::str::from_utf8(body).map_err(|_| PayloadError::Parse("body is not valid UTF-8"))?;
    match text.trim_start().as_bytes().first() {
        Some(b'[') => {
            let mut de = serde_json::Deserializer::from_str(text);
            let parsed = AtMost(max_batch)
                .deserialize(&mut de)
                .and_then(|entries| de.end().map(|()| entries));
            let entries = match parsed {
                Ok(Ok(e)) => e,
                Ok(Err(len)) => {
                    return Err(PayloadError::BatchTooLarge {
                        len,
                        max: max_batch,
                    })
                }
                Err(_) => return Err(not_json_or_not_request(text)),
            };
            if entries.is_empty() {
                return Err(PayloadError::EmptyBatch);
            }
            Ok(Payload::Batch(
                entries.into_iter().map(|e| entry(e, bounds)).collect(),
            ))
        }
        // One pass over a single call: straight into the envelope.
        Some(b'{') => match serde_json::from_str::<Wire>(text) {
            Ok(wire) => Ok(Payload::Single(from_wire(wire, bounds))),
            Err(_) => match serde_json::from_str::<serde::de::IgnoredAny>(text) {
                Err(_) => Err(PayloadError::Parse("body is not valid JSON")),
                Ok(_) => Ok(Payload::Single(Err(REPEATED_MEMBER))),
            },
        },
        _ => Err(not_json_or_not_request(text)),
    }
}

/// A batch's entries when there are at most `.0` of them, else how many
/// there are: past the bound they are only counted, so a body of a
/// million tiny entries never becomes a list of a million.
struct AtMost(usize);

impl<'de> DeserializeSeed<'de> for AtMost {
    type Value = Result<Vec<&'de RawValue>, usize>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for AtMost {
    type Value = Result<Vec<&'de RawValue>, usize>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a batch of requests")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut entries = Vec::new();
        while let Some(entry) = seq.next_element::<&RawValue>()? {
            if entries.len() == self.0 {
                let mut len = entries.len() + 1;
                while seq.next_element::<IgnoredAny>()?.is_some() {
                    len += 1;
                }
                return Ok(Err(len));
            }
            entries.push(entry);
        }
        Ok(Ok(entries))
    }
}

/// Valid JSON of the wrong shape is an invalid request; anything else a parse error.
fn not_json_or_not_request(text: &str) -> PayloadError {
    match serde_json::from_str::<serde::de::IgnoredAny>(text) {
        Ok(_) => PayloadError::NotRequest("a request is a JSON object or an array of them"),
        Err(_) => PayloadError::Parse("body is not valid JSON"),
    }
}

/// What one entry is judged against.
#[derive(Clone, Copy)]
struct Bounds {
    max_method_len: usize,
    max_depth: usize,
}

fn entry(raw: &RawValue, bounds: Bounds) -> Entry<'_> {
    let not_object = Invalid {
        id: Id::NULL,
        reason: "a request must be a JSON object",
    };
    if !raw.get().starts_with('{') {
        return Err(not_object);
    }
    let wire: Wire = serde_json::from_str(raw.get()).map_err(|_| REPEATED_MEMBER)?;
    from_wire(wire, bounds)
}

/// Valid JSON that serde refuses as an envelope: a member given twice.
const REPEATED_MEMBER: Invalid<'static> = Invalid {
    id: Id::NULL,
    reason: "a request object must not repeat a member",
};

fn from_wire(wire: Wire<'_>, bounds: Bounds) -> Entry<'_> {
    let max_method_len = bounds.max_method_len;
    let id = match wire.id {
        None => None,
        // Echoed in every answer, errors included: a long one is refused
        // (and not echoed) rather than copied into each.
        Some(id) if id.get().len() > MAX_ID_BYTES => {
            return Err(Invalid {
                id: Id::NULL,
                reason: "id is longer than 1024 bytes",
            })
        }
        Some(id) => match id.get().as_bytes()[0] {
            b'"' | b'-' | b'0'..=b'9' | b'n' => Some(Id(id.get())),
            _ => {
                return Err(Invalid {
                    id: Id::NULL,
                    reason: "id must be a string, a number or null",
                })
            }
        },
    };
    let invalid = |reason| Invalid {
        id: id.unwrap_or(Id::NULL),
        reason,
    };
    if wire.jsonrpc.map(RawValue::get) != Some("\"2.0\"") {
        return Err(invalid("jsonrpc must be \"2.0\""));
    }
    let method = wire.method.ok_or_else(|| invalid("method is missing"))?;
    if !method.get().starts_with('"') {
        return Err(invalid("method must be a string"));
    }
    // Checked on the raw text first so that a huge name is never unescaped.
    if method.get().len() > max_method_len + 2 {
        return Err(invalid("method name is too long"));
    }
    // Borrowed unless the name has escapes (serde's `Cow<str>` always
    // allocates). Without a backslash the JSON string is its text between
    // the quotes (a RawValue is valid JSON), so it is not parsed again.
    let text = method.get();
    let method: Cow<str> = if !text.contains('\\') {
        Cow::Borrowed(&text[1..text.len() - 1])
    } else {
        Cow::Owned(
            serde_json::from_str::<String>(text).map_err(|_| invalid("method must be a string"))?,
        )
    };
    if method.is_empty() || method.len() > max_method_len {
        return Err(invalid("method name is empty or too long"));
    }
    if let Some(p) = wire.params {
        if !matches!(p.get().as_bytes()[0], b'[' | b'{') {
            return Err(invalid("params must be an array or an object"));
        }
        if deeper_than(p.get(), bounds.max_depth) {
            return Err(invalid("params are nested deeper than the limit"));
        }
    }
    Ok(Call {
        method,
        id,
        params: wire.params,
    })
}

/// Whether the JSON text `json` nests arrays and objects more than `max`
/// levels deep: one pass over the bytes, skipping strings, no recursion.
fn deeper_than(json: &str, max: usize) -> bool {
    // Valid JSON (a RawValue) opens and closes each level: nesting deeper
    // than `max` takes more than 2 * max bytes, so most params need no scan.
    if json.len() <= 2 * max {
        return false;
    }
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &b in json.as_bytes() {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn single(body: &str) -> Entry<'_> {
        match parse(body.as_bytes(), 100, 128, 64).unwrap() {
            Payload::Single(e) => e,
            Payload::Batch(_) => panic!("expected a single call"),
        }
    }

    #[test]
    fn params_nested_too_deep_are_invalid() {
        let call = |params: &str| {
            format!(r#"{{"jsonrpc":"2.0","id":3,"method":"eth_call","params":{params}}}"#)
        };
        let nested = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        assert!(single(&call(&nested(64))).is_ok());
        let body = call(&nested(65));
        let e = single(&body).unwrap_err();
        assert_eq!(e.id.raw(), "3");
        assert!(e.reason.contains("nested"), "{}", e.reason);
        // Brackets inside strings, escaped quotes included, are not nesting.
        let text = format!(r#"["\"{}"]"#, "[".repeat(100));
        assert!(single(&call(&text)).is_ok());
        // 100,000 levels: refused by the scan, never recursed into.
        let body = call(&nested(100_000));
        let e = single(&body).unwrap_err();
        assert_eq!(e.id.raw(), "3");
    }

    #[test]
    fn ids_are_kept_as_written() {
        for id in ["1", "\"abc\"", "null", "1.50", "1e400", "-7", "\"\\u0041\""] {
            let body = format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"eth_chainId"}}"#);
            let call = single(&body).unwrap();
            assert_eq!(call.id.unwrap().raw(), id);
        }
    }

    #[test]
    fn ids_longer_than_the_cap_are_invalid_and_not_echoed() {
        let at_cap = format!("\"{}\"", "a".repeat(MAX_ID_BYTES - 2));
        let over = format!("{}1", "9".repeat(MAX_ID_BYTES));
        let body = |id: &str| format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"eth_chainId"}}"#);
        assert_eq!(single(&body(&at_cap)).unwrap().id.unwrap().raw(), at_cap);
        let over = body(&over);
        let invalid = single(&over).unwrap_err();
        assert_eq!(invalid.id, Id::NULL);
        assert!(invalid.reason.contains("1024"), "{}", invalid.reason);
    }

    #[test]
    fn notification_has_no_id() {
        let call = single(r#"{"jsonrpc":"2.0","method":"eth_chainId","params":[]}"#).unwrap();
        assert!(call.is_notification());
        assert_eq!(call.params.unwrap().get(), "[]");
    }

    #[test]
    fn params_stay_raw_and_borrowed() {
        let body =
            r#"{"jsonrpc":"2.0","id":1,"method":"eth_getBalance","params":["0xab", "latest"]}"#;
        let call = single(body).unwrap();
        assert_eq!(call.params.unwrap().get(), r#"["0xab", "latest"]"#);
        assert!(matches!(call.method, Cow::Borrowed("eth_getBalance")));
    }

    #[test]
    fn invalid_requests_keep_the_id() {
        let e = single(r#"{"jsonrpc":"1.0","id":"k","method":"m"}"#).unwrap_err();
        assert_eq!(e.id.raw(), "\"k\"");
        let e = single(r#"{"jsonrpc":"2.0","id":9,"method":5}"#).unwrap_err();
        assert_eq!(e.id.raw(), "9");
        let e = single(r#"{"jsonrpc":"2.0","id":9,"method":"m","params":"x"}"#).unwrap_err();
        assert_eq!(e.id.raw(), "9");
        let e = single(r#"{"jsonrpc":"2.0","id":{"a":1},"method":"m"}"#).unwrap_err();
        assert_eq!(e.id, Id::NULL);
        let e = single(r#"{"jsonrpc":"2.0","id":1,"id":2,"method":"m"}"#).unwrap_err();
        assert_eq!(e.id, Id::NULL);
    }

    #[test]
    fn bodies_that_are_not_calls() {
        let p = |b: &[u8]| parse(b, 3, 128, 64).unwrap_err();
        assert!(matches!(p(b"{nope"), PayloadError::Parse(_)));
        assert!(matches!(p(b"\xff\xfe"), PayloadError::Parse(_)));
        assert!(matches!(p(b""), PayloadError::Parse(_)));
        assert!(matches!(p(b"42"), PayloadError::NotRequest(_)));
        assert!(matches!(p(b"\"x\""), PayloadError::NotRequest(_)));
        assert!(matches!(p(b"[1,"), PayloadError::Parse(_)));
        assert_eq!(p(b" [ ] "), PayloadError::EmptyBatch);
        assert_eq!(
            p(b"[1,2,3,4]"),
            PayloadError::BatchTooLarge { len: 4, max: 3 }
        );
        assert!(matches!(p(b"[1,2,3,4,"), PayloadError::Parse(_)));
        assert!(matches!(p(b"[1,2,3,4] x"), PayloadError::Parse(_)));
        // Counted past the bound, never collected.
        let many = format!("[{}{{}}]", "{},".repeat(999_999));
        assert_eq!(
            p(many.as_bytes()),
            PayloadError::BatchTooLarge {
                len: 1_000_000,
                max: 3
            }
        );
    }

    #[test]
    fn batch_entries_are_judged_one_by_one() {
        let body = br#"[{"jsonrpc":"2.0","id":1,"method":"a"}, 7, {"jsonrpc":"2.0","method":"b"}]"#;
        let Payload::Batch(entries) = parse(body, 100, 128, 64).unwrap() else {
            panic!()
        };
        assert_eq!(entries.len(), 3);
        assert_eq!(entries[0].as_ref().unwrap().method, "a");
        assert!(entries[1].is_err());
        assert!(entries[2].as_ref().unwrap().is_notification());
    }

    /// Seeded mutations of valid bodies (cargo-fuzz needs a nightly toolchain,
    /// which this project does not assume): parsing never panics, and every id
    /// it accepts is valid JSON of an allowed kind.
    #[test]
    fn mutated_bodies_never_panic() {
        let seeds: [&[u8]; 4] = [
            br#"{"jsonrpc":"2.0","id":1,"method":"eth_getBalance","params":["0xab","latest"]}"#,
            br#"[{"jsonrpc":"2.0","id":"a","method":"m"},{"jsonrpc":"2.0","method":"n","params":{}}]"#,
            br#"{"jsonrpc":"2.0","id":null,"method":"eth_A","params":[{"x":[1,2,{"y":null}]}]}"#,
            br#"[{"id":1e5,"jsonrpc":"2.0","method":"a"}]"#,
        ];
        let alphabet = b"{}[]\",:0123456789.eE-+ntrufalsejsonrpcidmethodparams\\u\xff\x00 ";
        let mut rng = fastrand::Rng::with_seed(7);
        for _ in 0..50_000 {
            let mut body = seeds[rng.usize(..seeds.len())].to_vec();
            for _ in 0..rng.usize(1..6) {
                let at = rng.usize(..=body.len());
                match rng.u8(..4) {
                    0 if at < body.len() => body[at] = alphabet[rng.usize(..alphabet.len())],
                    1 => body.insert(at, alphabet[rng.usize(..alphabet.len())]),
                    2 if at < body.len() => {
                        body.remove(at);
                    }
                    _ => body.truncate(at),
                }
            }
            let entries = match parse(&body, 10, 64, 64) {
                Ok(Payload::Single(e)) => vec![e],
                Ok(Payload::Batch(es)) => es,
                Err(_) => continue,
            };
            for e in entries {
                let id = match e {
                    Ok(call) => call.reply_id(),
                    Err(invalid) => invalid.id,
                };
                let v: serde_json::Value = serde_json::from_str(id.raw()).expect("ids are JSON");
                assert!(v.is_string() || v.is_number() || v.is_null());
            }
        }
    }

    #[test]
    fn a_huge_method_name_is_refused_before_unescaping() {
        let body = format!(
            r#"{{"jsonrpc":"2.0","id":3,"method":"{}"}}"#,
            "a".repeat(1 << 20)
        );
        let e = single(&body).unwrap_err();
        assert_eq!(e.id.raw(), "3");
    }
}
