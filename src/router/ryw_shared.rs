//! Read-your-writes across gateway replicas: the record of a send (which
//! backend accepted the transaction, which client sent it) kept in Redis, so
//! that a wallet whose reads reach another replica behind the same Service is
//! steered the same way (`super::ryw` keeps the process's own record and
//! asks here only when it has none).
//!
//! Two keys per send, written in one round trip before the send's answer
//! goes back (a wallet reads its nonce right after, maybe through another
//! replica): `tx:<hash>` holding the backend, and `c:<client>` holding the
//! backend and hash of the client's latest send, both expiring after the
//! `read_your_writes.ttl`. All keys of a network share one hash tag.
//!
//! Redis is never in the way: each call has a short deadline and goes
//! through the shared link's breaker; a record that cannot be written or read
//! leaves the process's own record, and the read is routed as usual. A value
//! read back is checked (a backend name of plain characters, a 32-byte hash)
//! and counted when it fails (`rpcgate_redis_invalid_values_total{kind="send"}`);
//! a backend name this replica does not have simply does not steer.

use std::sync::Arc;
use std::time::Duration;

use redis::AsyncCommands;

use crate::eth::{parse_hash, Hash};
use crate::redis_link::{RedisLink, ValueKind};

/// The longest a send or a read waits for Redis.
const TIMEOUT: Duration = Duration::from_millis(100);
/// Backend names are config names; anything longer was not written by us.
const MAX_BACKEND_BYTES: usize = 256;

pub struct SharedSends {
    link: Arc<RedisLink>,
    /// `<prefix>:ryw:v1:{<network>@<chain id>}:`
    prefix: String,
}

impl SharedSends {
    /// The shared record of the network whose keys are under `space`.
    pub fn new(link: Arc<RedisLink>, space: &str) -> SharedSends {
        SharedSends {
            prefix: link.key(&format!("ryw:v1:{{{space}}}:")),
            link,
        }
    }

    /// Records that `backend` accepted `hash` from `client`, for `ttl`.
    pub async fn record(&self, hash: &Hash, backend: &str, client: &str, ttl: Duration) {
        let hex = hex_hash(hash);
        let ttl_ms = ttl.as_millis().clamp(1, u128::from(u64::MAX)) as u64;
        let mut pipe = redis::pipe();
        pipe.cmd("SET")
            .arg(format!("{}tx:{hex}", self.prefix))
            .arg(backend)
            .arg("PX")
            .arg(ttl_ms)
            .ignore()
            .cmd("SET")
            .arg(format!("{}c:{client}", self.prefix))
            .arg(format!("{backend} {hex}"))
            .arg("PX")
            .arg(ttl_ms)
            .ignore();
        let mut conn = self.link.conn();
        if let Err(e) = self
            .link
            .call(TIMEOUT, pipe.query_async::<()>(&mut conn))
            .await
        {
            tracing::debug!(error = %e, "read-your-writes: cannot share a send through redis");
        }
    }

    /// The backend that accepted `hash`, by any replica's record.
    pub async fn backend_of(&self, hash: &Hash) -> Option<Arc<str>> {
        let value = self
            .get(format!("{}tx:{}", self.prefix, hex_hash(hash)))
            .await?;
        let backend = checked_backend(&value);
        if backend.is_none() {
            self.link.invalid(ValueKind::Send);
        }
        backend
    }

    /// The backend and hash of `client`'s latest send, by any replica's record.
    pub async fn latest_of(&self, client: &str) -> Option<(Arc<str>, Hash)> {
        let value = self.get(format!("{}c:{client}", self.prefix)).await?;
        let latest = value
            .split_once(' ')
            .and_then(|(backend, hash)| Some((checked_backend(backend)?, parse_hash(hash)?)));
        if latest.is_none() {
            self.link.invalid(ValueKind::Send);
        }
        latest
    }

    async fn get(&self, key: String) -> Option<String> {
        let mut conn = self.link.conn();
        match self
            .link
            .call(TIMEOUT, conn.get::<_, Option<String>>(key))
            .await
        {
            Ok(value) => value,
            Err(e) => {
                tracing::debug!(error = %e, "read-your-writes: cannot read a send from redis");
                None
            }
        }
    }
}

fn hex_hash(hash: &Hash) -> String {
    let mut out = String::with_capacity(66);
    out.push_str("0x");
    for b in hash {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// A backend name as the config allows it: short, no spaces or controls.
fn checked_backend(text: &str) -> Option<Arc<str>> {
    let ok = !text.is_empty()
        && text.len() <= MAX_BACKEND_BYTES
        && text.bytes().all(|b| b.is_ascii_graphic());
    ok.then(|| text.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_print_as_they_parse_and_names_are_checked() {
        let hash = [0xab; 32];
        assert_eq!(parse_hash(&hex_hash(&hash)), Some(hash));
        assert_eq!(checked_backend("r0").as_deref(), Some("r0"));
        assert!(checked_backend("").is_none());
        assert!(checked_backend("r 0").is_none());
        assert!(checked_backend(&"x".repeat(300)).is_none());
    }
}
