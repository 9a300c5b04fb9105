//! The JSON-RPC 2.0 envelope: what a caller sent, and the bytes we answer.
//!
//! Only `jsonrpc`, `method`, `id` and `params` are looked at; `params` stays a
//! borrowed [`serde_json::value::RawValue`] so nothing is re-serialized unless
//! the router must change it. The caller's `id` is kept as its raw JSON text and
//! written back byte for byte (string, number or null), whatever a backend
//! would have done with it.

mod envelope;
mod error;
pub mod json_text;
mod reply;
mod response;

pub(crate) use envelope::present;
pub use envelope::{parse, Call, Entry, Id, Invalid, Payload, PayloadError, MAX_ID_BYTES};
pub use error::{code, ErrorObject};
pub use reply::{Origin, Reply, ReplyKind};
pub use response::{error_response, join_batch, raw_member, result_response};
