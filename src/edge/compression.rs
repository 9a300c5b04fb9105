//! HTTP content codings: compressed answers, and request bodies that come
//! compressed.
//!
//! **Answers.** A JSON-RPC answer of at least `server.compression.min_bytes`
//! (1 KiB by default) goes compressed when the request's `Accept-Encoding`
//! takes one of `server.compression.algorithms`. The choice follows RFC 9110
//! section 12.5.3: the highest q-value wins, `*` stands for any coding not
//! named, `q=0` refuses one; among equal q-values the configured order
//! decides (zstd, br, gzip by default). Every answer of the JSON-RPC
//! listener then carries `Vary: Accept-Encoding` (merged into one header
//! with CORS's `Vary: Origin`), because whether it was compressed depends on
//! that header.
//!
//! The levels are fixed and chosen for speed, since the gateway compresses
//! every answer anew: zstd level 1, brotli quality 4, gzip level 5 (zlib-rs).
//! On a real 100 KiB block answer with 128 transactions
//! (`benches/compression.rs`) they keep 21 %, 22 % and 24 % of the bytes;
//! zstd 1 is both smaller and four to seven times cheaper than the other two
//! (it beat its own default, level 3, on both counts), which is why it comes
//! first in the default order. Higher levels (gzip 6 to 9, brotli 5 to 6)
//! bought nothing on that JSON for up to twice the CPU; brotli 11 saves 2 %
//! more for many times the cost. Compression works on the
//! whole answer, which the gateway holds anyway (answers are built from raw
//! parts with the caller's id), so there is no streaming encoder; answers
//! above [`INLINE_MAX_BYTES`] are compressed on the blocking pool, so a
//! large batch or log answer does not stall a runtime worker.
//!
//! Cache hits keep the uncompressed result and are compressed per answer:
//! the cached bytes are the result alone, and the caller's id is spliced in
//! around them, so a compressed copy could not be reused without
//! compressing the id-bearing envelope again. The bench puts the per-answer
//! cost beside the copy a cache hit already makes.
//!
//! WebSocket messages are not compressed: permessage-deflate (RFC 7692) is
//! not negotiated, so frames go as they are.
//!
//! **Request bodies.** A body with `Content-Encoding` gzip, deflate (zlib),
//! br or zstd (any of `server.compression.request_encodings`) is decoded as
//! it arrives ([`super::inflate`]), step by step into a buffer that refuses
//! to grow past `server.max_body_bytes`: the cap is on the *decoded* size,
//! and decoding stops (413) at the first byte past it. Each step's bytes,
//! and the decoder's window as it fills, are charged to the request budget
//! before the step. The compressed bytes count against the same cap as they
//! arrive. A body that does not decode gets 400, a coding we do not take
//! (or a list of several) gets 415.

use std::io::{self, Write};

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue};

pub use super::inflate::{InflateError, Inflater, Progress};
use crate::config::{CompressionConfig, ContentCoding};
use crate::metrics::{CompressionMetrics, DecodeOutcome};

/// Brotli quality (0 to 11): 4 is the first level with brotli's context
/// modelling, about gzip's ratio-plus at a fraction of quality 11's cost.
pub const BROTLI_QUALITY: u32 = 4;
/// Brotli window, log2 bytes: 4 MiB, the encoder's default (a hint of the
/// input's size lets it use less for small answers).
pub const BROTLI_WINDOW_LOG: u32 = 22;
/// gzip level (0 to 9): 5 is within a percent of 6's ratio and faster.
pub const GZIP_LEVEL: u32 = 5;
/// zstd level (1 to 19): 1, smaller and faster than the default 3 on block
/// JSON (its random-looking hex gains nothing from deeper searches).
pub const ZSTD_LEVEL: i32 = 1;
/// Answers up to this size are compressed on the runtime worker (well under
/// a millisecond in any coding); larger ones on the blocking pool, whose
/// hand-off (tens of microseconds) is small beside their compression.
pub const INLINE_MAX_BYTES: usize = 16 * 1024;

/// Compresses `body` with `coding` (gzip, br or zstd; deflate is decoded
/// only, and is sent as zlib here should anyone ask).
pub fn compress(coding: ContentCoding, body: &[u8]) -> io::Result<Vec<u8>> {
    let out = Vec::with_capacity(body.len() / 4 + 64);
    match coding {
        ContentCoding::Gzip => {
            let mut e = flate2::write::GzEncoder::new(out, flate2::Compression::new(GZIP_LEVEL));
            e.write_all(body)?;
            e.finish()
        }
        ContentCoding::Deflate => {
            let mut e = flate2::write::ZlibEncoder::new(out, flate2::Compression::new(GZIP_LEVEL));
            e.write_all(body)?;
            e.finish()
        }
        ContentCoding::Br => {
            let params = brotli::enc::BrotliEncoderParams {
                quality: BROTLI_QUALITY as i32,
                lgwin: BROTLI_WINDOW_LOG as i32,
                size_hint: body.len(),
                ..Default::default()
            };
            let mut out = out;
            brotli::BrotliCompress(&mut &body[..], &mut out, &params)?;
            Ok(out)
        }
        ContentCoding::Zstd => zstd::bulk::compress(body, ZSTD_LEVEL),
    }
}

/// The coding to answer with, from the request's `Accept-Encoding` (every
/// instance of the header), or `None` to answer as is.
pub(super) fn negotiate(config: &CompressionConfig, headers: &HeaderMap) -> Option<ContentCoding> {
    // One lookup when the client asks for no coding (scripts, load tools),
    // rather than one per configured coding.
    if !config.enabled || !headers.contains_key(header::ACCEPT_ENCODING) {
        return None;
    }
    let mut best: Option<(ContentCoding, u16)> = None;
    for coding in &config.algorithms {
        let q = weight(headers, *coding);
        // Strictly greater: on a tie the configured order stands.
        if q > 0 && best.is_none_or(|(_, b)| q > b) {
            best = Some((*coding, q));
        }
    }
    best.map(|(c, _)| c)
}

/// `coding`'s q-value in thousandths: its own entry, else `*`'s, else 0.
fn weight(headers: &HeaderMap, coding: ContentCoding) -> u16 {
    let mut star = None;
    for value in headers.get_all(header::ACCEPT_ENCODING) {
        let Ok(text) = value.to_str() else { continue };
        for item in text.split(',') {
            let mut parts = item.split(';');
            let token = parts.next().unwrap_or_default().trim();
            if token.is_empty() {
                continue;
            }
            let mut q = Some(1000);
            for param in parts {
                if let Some((name, v)) = param.split_once('=') {
                    if name.trim().eq_ignore_ascii_case("q") {
                        q = qvalue(v.trim());
                    }
                }
            }
            // An entry whose q-value does not parse is ignored.
            let Some(q) = q else { continue };
            if token == "*" {
                star = Some(q);
            } else if ContentCoding::from_token(token) == Some(coding) {
                return q;
            }
        }
    }
    star.unwrap_or(0)
}

/// RFC 9110's `qvalue`: `0`, `0.xyz`, `1`, `1.000`; in thousandths.
fn qvalue(text: &str) -> Option<u16> {
    let (int, frac) = text.split_once('.').unwrap_or((text, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let frac_value = frac
        .bytes()
        .chain(std::iter::repeat(b'0'))
        .take(3)
        .fold(0u16, |n, b| n * 10 + u16::from(b - b'0'));
    match int {
        "0" => Some(frac_value),
        "1" if frac_value == 0 => Some(1000),
        _ => None,
    }
}

/// `body` compressed with `coding` when it is at least `min_bytes` long
/// and compressing makes it smaller; else `body` as it is. The coding used
/// comes back with the bytes.
pub(super) async fn encode_answer(
    config: &CompressionConfig,
    coding: Option<ContentCoding>,
    body: Bytes,
    metrics: &CompressionMetrics,
) -> (Bytes, Option<ContentCoding>) {
    let Some(coding) = coding else {
        return (body, None);
    };
    if body.len() < config.min_bytes {
        return (body, None);
    }
    let compressed = if body.len() <= INLINE_MAX_BYTES {
        compress(coding, &body).ok()
    } else {
        let whole = body.clone();
        tokio::task::spawn_blocking(move || compress(coding, &whole).ok())
            .await
            .ok()
            .flatten()
    };
    match compressed {
        Some(c) if c.len() < body.len() => {
            let m = metrics;
            m.responses.with_label_values(&[coding.token()]).inc();
            m.saved_bytes
                .with_label_values(&[coding.token()])
                .inc_by((body.len() - c.len()) as u64);
            (Bytes::from(c), Some(coding))
        }
        _ => (body, None),
    }
}

/// Marks `headers` as varying with `Accept-Encoding`, merging every `Vary`
/// already there (CORS's `origin`) into one header.
pub(super) fn vary(headers: &mut HeaderMap) {
    // Most answers have no Vary yet (no CORS origin): one static value, no list built.
    if !headers.contains_key(header::VARY) {
        headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
        return;
    }
    let mut tokens: Vec<String> = headers
        .get_all(header::VARY)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty())
        .collect();
    if !tokens.iter().any(|t| t == "accept-encoding" || t == "*") {
        tokens.push("accept-encoding".into());
    }
    tokens.dedup();
    if let Ok(value) = HeaderValue::from_str(&tokens.join(", ")) {
        headers.insert(header::VARY, value);
    }
}

/// Why a request's `Content-Encoding` was refused (415).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct UnsupportedEncoding(pub String);

/// The request body's coding: `None` for none (or `identity`), a coding of
/// `accepted`, or a refusal for anything else, including a list of several.
pub(super) fn request_coding(
    accepted: &[ContentCoding],
    headers: &HeaderMap,
    metrics: &CompressionMetrics,
) -> Result<Option<ContentCoding>, UnsupportedEncoding> {
    let mut values = headers.get_all(header::CONTENT_ENCODING).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    let refuse = |what: &str| {
        metrics.decoded("other", DecodeOutcome::Unsupported);
        UnsupportedEncoding(what.chars().take(64).collect())
    };
    let text = value.to_str().map_err(|_| refuse("(not text)"))?;
    if values.next().is_some() || text.contains(',') {
        return Err(refuse("several codings"));
    }
    let token = text.trim();
    if token.is_empty() || token.eq_ignore_ascii_case("identity") {
        return Ok(None);
    }
    ContentCoding::from_token(token)
        .filter(|c| accepted.contains(c))
        .map(Some)
        .ok_or_else(|| refuse(token))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accepting(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(header::ACCEPT_ENCODING, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn chosen(values: &[&str]) -> Option<&'static str> {
        negotiate(&CompressionConfig::default(), &accepting(values)).map(ContentCoding::token)
    }

    #[test]
    fn accept_encoding_with_q_values() {
        assert_eq!(chosen(&[]), None);
        assert_eq!(chosen(&["identity"]), None);
        assert_eq!(chosen(&["gzip"]), Some("gzip"));
        assert_eq!(chosen(&["x-gzip"]), Some("gzip"));
        assert_eq!(chosen(&["GZIP, Br"]), Some("br"));
        // A browser's list: the configured order decides among equals.
        assert_eq!(chosen(&["gzip, deflate, br, zstd"]), Some("zstd"));
        assert_eq!(chosen(&["gzip;q=1.0, br;q=0.5"]), Some("gzip"));
        assert_eq!(chosen(&["br;q=0.999", "gzip;q=1"]), Some("gzip"));
        assert_eq!(chosen(&["*"]), Some("zstd"));
        assert_eq!(chosen(&["*;q=0.5, zstd;q=0"]), Some("br"));
        assert_eq!(chosen(&["gzip;q=0"]), None);
        assert_eq!(chosen(&["*;q=0, gzip;q=0.1"]), Some("gzip"));
        assert_eq!(chosen(&["deflate"]), None);
        // A q-value that does not parse drops its entry.
        assert_eq!(chosen(&["br;q=2, gzip;q=0.5"]), Some("gzip"));
        assert_eq!(chosen(&["br;q=0.5000"]), None);
        let off = CompressionConfig {
            enabled: false,
            ..CompressionConfig::default()
        };
        assert_eq!(negotiate(&off, &accepting(&["gzip"])), None);
    }

    #[test]
    fn q_values() {
        assert_eq!(qvalue("0"), Some(0));
        assert_eq!(qvalue("0.5"), Some(500));
        assert_eq!(qvalue("0.05"), Some(50));
        assert_eq!(qvalue("1"), Some(1000));
        assert_eq!(qvalue("1.000"), Some(1000));
        assert_eq!(qvalue("1.5"), None);
        assert_eq!(qvalue("0.x"), None);
        assert_eq!(qvalue(""), None);
    }

    #[test]
    fn vary_is_one_merged_header() {
        let mut h = HeaderMap::new();
        vary(&mut h);
        assert_eq!(h[header::VARY], "accept-encoding");
        let mut h = HeaderMap::new();
        h.append(header::VARY, HeaderValue::from_static("origin"));
        vary(&mut h);
        vary(&mut h);
        assert_eq!(h.get_all(header::VARY).iter().count(), 1);
        assert_eq!(h[header::VARY], "origin, accept-encoding");
    }

    #[test]
    fn request_codings() {
        let accepted = CompressionConfig::default().request_encodings;
        let metrics = crate::metrics::Metrics::new();
        let m = &metrics.compression;
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::CONTENT_ENCODING, HeaderValue::from_str(v).unwrap());
            request_coding(&accepted, &h, m)
        };
        assert_eq!(request_coding(&accepted, &HeaderMap::new(), m), Ok(None));
        assert_eq!(with("identity"), Ok(None));
        assert_eq!(with("gzip"), Ok(Some(ContentCoding::Gzip)));
        assert_eq!(with("X-Gzip"), Ok(Some(ContentCoding::Gzip)));
        assert_eq!(with("deflate"), Ok(Some(ContentCoding::Deflate)));
        assert_eq!(with("br"), Ok(Some(ContentCoding::Br)));
        assert_eq!(with("zstd"), Ok(Some(ContentCoding::Zstd)));
        assert!(with("compress").is_err());
        assert!(with("gzip, br").is_err());
        let only_gzip = [ContentCoding::Gzip];
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("br"));
        assert!(request_coding(&only_gzip, &h, m).is_err());
    }
}
