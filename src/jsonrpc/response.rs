//! Answers assembled from raw parts: the caller's id text and a backend's
//! `result` or `error` text are copied, never parsed and printed again.

use bytes::Bytes;

use super::{ErrorObject, Id};

/// `{"jsonrpc":"2.0","id":<id>,"result":<raw>}`
pub fn result_response(id: Id<'_>, result_raw: &[u8]) -> Bytes {
    raw_member(id, b"result", result_raw)
}

/// `{"jsonrpc":"2.0","id":<id>,"error":<raw>}` from a backend's error text,
/// or from an [`ErrorObject`] of our own.
pub fn error_response(id: Id<'_>, error: &ErrorObject) -> Bytes {
    let mut out = Vec::with_capacity(64 + error.message.len());
    out.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"id\":");
    out.extend_from_slice(id.raw().as_bytes());
    out.extend_from_slice(b",\"error\":");
    error.write_json(&mut out);
    out.push(b'}');
    out.into()
}

pub fn raw_member(id: Id<'_>, member: &[u8], raw: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(32 + id.raw().len() + member.len() + raw.len());
    out.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"id\":");
    out.extend_from_slice(id.raw().as_bytes());
    out.extend_from_slice(b",\"");
    out.extend_from_slice(member);
    out.extend_from_slice(b"\":");
    out.extend_from_slice(raw);
    out.push(b'}');
    out.into()
}

/// `[a,b,c]` from answered entries (notifications contribute nothing).
pub fn join_batch(parts: &[Bytes]) -> Bytes {
    let len = parts.iter().map(Bytes::len).sum::<usize>() + parts.len() + 2;
    let mut out = Vec::with_capacity(len);
    out.push(b'[');
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(p);
    }
    out.push(b']');
    out.into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jsonrpc::code;

    #[test]
    fn answers_are_valid_json_with_the_id_verbatim() {
        let body = br#"{"jsonrpc":"2.0","id":1.50,"method":"m"}"#;
        let crate::jsonrpc::Payload::Single(Ok(call)) =
            crate::jsonrpc::parse(body, 10, 64, 64).unwrap()
        else {
            panic!()
        };
        let r = result_response(call.reply_id(), b"\"0x1\"");
        assert_eq!(&r[..], br#"{"jsonrpc":"2.0","id":1.50,"result":"0x1"}"#);
        let e = error_response(
            call.reply_id(),
            &ErrorObject::new(code::METHOD_NOT_FOUND, "no \"such\" method"),
        );
        let v: serde_json::Value = serde_json::from_slice(&e).unwrap();
        assert_eq!(v["error"]["code"], -32601);
        assert_eq!(v["error"]["message"], "no \"such\" method");
        assert_eq!(&join_batch(&[r.clone(), r])[..1], b"[");
    }
}
