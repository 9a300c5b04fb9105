//! Read-your-writes across gateway replicas: the record of a send (which
//! backend accepted the transaction, which client sent it) kept in Redis, so
//! that a wallet whose reads reach another replica behind the same Service is
//! steered the same way (`super::ryw` keeps the process's own record and
//! asks here only when it has none).
//!
//! Two keys per send, written in one round trip before the send's answer
//! goes back (a wallet reads its nonce right after, maybe through another
//! replica): `tx:<hash>` holding the backend and the served head the send
//! was seen at, and `c:<client>` holding the same with the hash and the
//! wall-clock time of the client's latest send (a replica compares it with
//! its own record and follows the later send), both expiring after the
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
    /// `<prefix>:ryw:v2:{<network>@<chain id>}:`
    prefix: String,
}

/// A send as the shared record holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedSend {
    pub backend: Arc<str>,
    pub hash: Hash,
    /// The served head when the send was answered.
    pub seen_at: u64,
    /// When it was answered (milliseconds since the Unix epoch).
    pub at_ms: u64,
}

impl SharedSends {
    /// The shared record of the network whose keys are under `space`.
    pub fn new(link: Arc<RedisLink>, space: &str) -> SharedSends {
        SharedSends {
            prefix: link.key(&format!("ryw:v2:{{{space}}}:")),
            link,
        }
    }

    /// Records `send` (its backend accepted it) from `client`, for `ttl`.
    pub async fn record(&self, send: &SharedSend, client: &str, ttl: Duration) {
        let hex = hex_hash(&send.hash);
        let ttl_ms = ttl.as_millis().clamp(1, u128::from(u64::MAX)) as u64;
        let backend = &send.backend;
        let mut pipe = redis::pipe();
        pipe.cmd("SET")
            .arg(format!("{}tx:{hex}", self.prefix))
            .arg(format!("{backend} {}", send.seen_at))
            .arg("PX")
            .arg(ttl_ms)
            .ignore()
            .cmd("SET")
            .arg(format!("{}c:{client}", self.prefix))
            .arg(format!("{backend} {hex} {} {}", send.seen_at, send.at_ms))
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

    /// The send of `hash`, by any replica's record (`at_ms` is not kept
    /// for it: 0).
    pub async fn send_of(&self, hash: &Hash) -> Option<SharedSend> {
        let value = self
            .get(format!("{}tx:{}", self.prefix, hex_hash(hash)))
            .await?;
        let send = parse_tx(&value, hash);
        if send.is_none() {
            self.link.invalid(ValueKind::Send);
        }
        send
    }

    /// `client`'s latest send, by any replica's record.
    pub async fn latest_of(&self, client: &str) -> Option<SharedSend> {
        let value = self.get(format!("{}c:{client}", self.prefix)).await?;
        let latest = parse_latest(&value);
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

/// `<backend> <seen at>`, the record of a send by its hash.
fn parse_tx(value: &str, hash: &Hash) -> Option<SharedSend> {
    let mut parts = value.split(' ');
    let send = SharedSend {
        backend: checked_backend(parts.next()?)?,
        hash: *hash,
        seen_at: parts.next()?.parse().ok()?,
        at_ms: 0,
    };
    parts.next().is_none().then_some(send)
}

/// `<backend> <hash> <seen at> <at ms>`, a client's latest send.
fn parse_latest(value: &str) -> Option<SharedSend> {
    let mut parts = value.split(' ');
    let send = SharedSend {
        backend: checked_backend(parts.next()?)?,
        hash: parse_hash(parts.next()?)?,
        seen_at: parts.next()?.parse().ok()?,
        at_ms: parts.next()?.parse().ok()?,
    };
    parts.next().is_none().then_some(send)
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

    #[test]
    fn records_read_back_as_written_and_nothing_else() {
        let hash = [0xcd; 32];
        let hex = hex_hash(&hash);
        let latest = parse_latest(&format!("r1 {hex} 17 1700000000000")).unwrap();
        assert_eq!(&*latest.backend, "r1");
        assert_eq!(
            (latest.hash, latest.seen_at, latest.at_ms),
            (hash, 17, 1_700_000_000_000)
        );
        assert!(parse_latest(&format!("r1 {hex}")).is_none(), "the old form");
        assert!(parse_latest(&format!("r1 {hex} 17 1 x")).is_none());
        assert!(parse_latest(&format!("r1 {hex} -1 1")).is_none());
        let tx = parse_tx("r2 9", &hash).unwrap();
        assert_eq!((&*tx.backend, tx.seen_at), ("r2", 9));
        assert!(parse_tx("r2", &hash).is_none());
        assert!(parse_tx("r 2 9", &hash).is_none());
    }
}
