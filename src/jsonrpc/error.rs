//! JSON-RPC error objects and the codes rpcgate answers with.

use std::borrow::Cow;

/// The codes this gateway produces itself. Errors from a backend are passed
/// through untouched.
pub mod code {
    pub const PARSE_ERROR: i64 = -32700;
    pub const INVALID_REQUEST: i64 = -32600;
    pub const METHOD_NOT_FOUND: i64 = -32601;
    pub const INVALID_PARAMS: i64 = -32602;
    pub const INTERNAL_ERROR: i64 = -32603;
    /// Server error range: no backend could serve the call.
    pub const UNAVAILABLE: i64 = -32000;
    /// Limit exceeded (EIP-1474).
    pub const LIMIT_EXCEEDED: i64 = -32005;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorObject {
    pub code: i64,
    pub message: Cow<'static, str>,
}

impl ErrorObject {
    pub fn new(code: i64, message: impl Into<Cow<'static, str>>) -> Self {
        ErrorObject {
            code,
            message: message.into(),
        }
    }

    /// Appends `{"code":..,"message":..}` to `out`.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"code\":");
        out.extend_from_slice(self.code.to_string().as_bytes());
        out.extend_from_slice(b",\"message\":");
        // Serializing a &str into a Vec cannot fail.
        serde_json::to_writer(&mut *out, self.message.as_ref())
            .expect("string serialization is infallible");
        out.push(b'}');
    }
}
