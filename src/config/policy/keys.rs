//! API keys of `policy.clients.<name>`: from `key_sha256`, an environment
//! variable (`keys_env`) or a file (`keys_file`), each turned into its
//! SHA-256 digest here, so keys never live in the validated config in clear.
//! [`KeyDigest`]'s `Debug` prints nothing of it, so a config dumped into a
//! log leaks no key and no hash; error messages name the source, never its text.

use sha2::{Digest, Sha256};

use super::clients::RawClient;
use crate::config::error::{Checks, Problem};

/// Shorter keys are guessable by brute force through the gateway itself.
const MIN_KEY_LEN: usize = 16;

/// The SHA-256 of one API key.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyDigest(pub [u8; 32]);

impl KeyDigest {
    pub fn of(key: &str) -> KeyDigest {
        KeyDigest(Sha256::digest(key.as_bytes()).into())
    }
}

impl std::fmt::Debug for KeyDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyDigest(..)")
    }
}

/// Every key of one client (at `at`), from all its sources.
pub(super) fn keys(c: &mut Checks, at: &str, raw: &RawClient) -> Vec<KeyDigest> {
    let mut keys = Vec::new();
    let mut sources = 0;
    for (i, hex) in raw.key_sha256.iter().flatten().enumerate() {
        sources += 1;
        match digest_hex(hex) {
            Some(k) => keys.push(k),
            None => c.fail(
                format!("{at}.key_sha256[{i}]"),
                "is not a SHA-256 digest (64 hex digits)",
            ),
        }
    }
    if let Some(var) = &raw.keys_env {
        sources += 1;
        let path = format!("{at}.keys_env");
        match std::env::var(var) {
            Err(_) => c.fail(&path, format!("environment variable {var} is not set")),
            Ok(text) => keys.extend(c.ok(clear_keys(&path, &text)).unwrap_or_default()),
        }
    }
    if let Some(file) = &raw.keys_file {
        sources += 1;
        let path = format!("{at}.keys_file");
        match std::fs::read_to_string(file) {
            Err(e) => c.fail(&path, format!("cannot read {file}: {e}")),
            Ok(text) => keys.extend(c.ok(clear_keys(&path, &text)).unwrap_or_default()),
        }
    }
    if sources == 0 {
        c.fail(
            at,
            "needs at least one key (key_sha256, keys_env or keys_file)",
        );
    }
    keys
}

/// Keys separated by commas, spaces or newlines; `#` starts a comment line.
fn clear_keys(at: &str, text: &str) -> Result<Vec<KeyDigest>, Problem> {
    let mut keys = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with('#') {
            continue;
        }
        for key in line.split([',', ' ', '\t']).filter(|k| !k.is_empty()) {
            if key.len() < MIN_KEY_LEN || !key.bytes().all(|b| b.is_ascii_graphic() && b != b'/') {
                // Which key is wrong stays unsaid: the message may reach a log.
                return Err(Problem::new(
                    at,
                    format!(
                        "keys must be at least {MIN_KEY_LEN} printable characters, without '/'"
                    ),
                ));
            }
            keys.push(KeyDigest::of(key));
        }
    }
    if keys.is_empty() {
        return Err(Problem::new(at, "holds no key"));
    }
    Ok(keys)
}

fn digest_hex(text: &str) -> Option<KeyDigest> {
    let text = text.trim();
    if text.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(KeyDigest(out))
}
