//! `server.compression`: compressed answers and request bodies. On by
//! default: every browser and most HTTP clients send `Accept-Encoding`, and
//! block and log answers shrink four to five times.

use serde::Deserialize;

use crate::config::error::Checks;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(in crate::config) struct RawCompression {
    pub enabled: Option<bool>,
    pub min_bytes: Option<u64>,
    pub algorithms: Option<Vec<String>>,
    pub request_encodings: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CompressionConfig {
    /// Answers are compressed at all (request bodies are decoded either way).
    pub enabled: bool,
    /// Answers shorter than this go as they are: below about a kilobyte the
    /// saving is a few hundred bytes and the headers eat part of it.
    pub min_bytes: usize,
    /// The codings answers may use, the first preferred when the client
    /// weighs several equally. Not empty (`enabled: false` turns it off).
    pub algorithms: Vec<ContentCoding>,
    /// The `Content-Encoding`s a request body may carry; any other gets 415.
    /// The body cap applies to the decoded size.
    pub request_encodings: Vec<ContentCoding>,
}

impl Default for CompressionConfig {
    fn default() -> Self {
        CompressionConfig {
            enabled: true,
            min_bytes: 1024,
            algorithms: vec![ContentCoding::Zstd, ContentCoding::Br, ContentCoding::Gzip],
            request_encodings: vec![
                ContentCoding::Gzip,
                ContentCoding::Deflate,
                ContentCoding::Br,
                ContentCoding::Zstd,
            ],
        }
    }
}

/// An HTTP content coding (RFC 9110 section 8.4.1), by its registered token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ContentCoding {
    /// `gzip` (`x-gzip` is taken as the same).
    Gzip,
    /// `deflate`: the zlib format (RFC 1950), as HTTP defines it.
    Deflate,
    /// `br`: Brotli (RFC 7932).
    Br,
    /// `zstd`: Zstandard (RFC 8878), with a window of at most 8 MiB (RFC 9659).
    Zstd,
}

impl ContentCoding {
    pub const ALL: [ContentCoding; 4] = [
        ContentCoding::Gzip,
        ContentCoding::Deflate,
        ContentCoding::Br,
        ContentCoding::Zstd,
    ];

    /// The token in `Accept-Encoding` and `Content-Encoding`.
    pub fn token(self) -> &'static str {
        match self {
            ContentCoding::Gzip => "gzip",
            ContentCoding::Deflate => "deflate",
            ContentCoding::Br => "br",
            ContentCoding::Zstd => "zstd",
        }
    }

    /// The coding a header token names (ASCII case ignored), if any.
    pub fn from_token(token: &str) -> Option<ContentCoding> {
        if token.eq_ignore_ascii_case("x-gzip") {
            return Some(ContentCoding::Gzip);
        }
        Self::ALL
            .into_iter()
            .find(|c| token.eq_ignore_ascii_case(c.token()))
    }
}

/// Codings by their tokens, each named once; answers may use gzip, br and
/// zstd (deflate is taken in request bodies only: its two incompatible
/// readings in the wild make it a poor answer coding).
pub(super) fn validate(c: &mut Checks, raw: RawCompression) -> CompressionConfig {
    let default = CompressionConfig::default();
    let algorithms = codings(c, "algorithms", raw.algorithms, default.algorithms, true);
    if algorithms.is_empty() {
        c.fail(
            "server.compression.algorithms",
            "at least one coding (to send answers as they are, set enabled: false)",
        );
    }
    CompressionConfig {
        enabled: raw.enabled.unwrap_or(default.enabled),
        min_bytes: c.range(
            "server.compression.min_bytes",
            raw.min_bytes,
            default.min_bytes as u64,
            0,
            1 << 30,
        ) as usize,
        algorithms,
        request_encodings: codings(
            c,
            "request_encodings",
            raw.request_encodings,
            default.request_encodings,
            false,
        ),
    }
}

fn codings(
    c: &mut Checks,
    key: &str,
    names: Option<Vec<String>>,
    fallback: Vec<ContentCoding>,
    answer: bool,
) -> Vec<ContentCoding> {
    let Some(names) = names else {
        return fallback;
    };
    let offered: &[&str] = if answer {
        &["br", "gzip", "zstd"]
    } else {
        &["br", "deflate", "gzip", "zstd"]
    };
    let mut out = Vec::with_capacity(names.len());
    for (i, name) in names.iter().enumerate() {
        let at = format!("server.compression.{key}[{i}]");
        match ContentCoding::from_token(name).filter(|c| offered.contains(&c.token())) {
            None => c.fail(at, format!("{name:?} is not one of {}", offered.join(", "))),
            Some(coding) if out.contains(&coding) => {
                c.fail(at, format!("{name} is listed twice"));
            }
            Some(coding) => out.push(coding),
        }
    }
    out
}
