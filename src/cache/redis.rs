//! The Redis store: forever-cacheable answers in Redis, so that a fresh
//! gateway replica starts warm.
//!
//! Only chain constants and lookups by block hash go here: they are the same
//! for every replica, for good (entries bound to a recent block carry their
//! binding, and the reader checks it against its own view of the chain).
//! The Redis key is the full cache key under a versioned prefix with the
//! network's name; the value is a small binary header (the binding) followed
//! by the result text.
//!
//! A key longer than `cache.max_shared_key_bytes` (the prefix included) is
//! neither written nor looked up: the key is the whole call, and a client
//! sending calls with megabytes of params must not fill Redis (or make every
//! lookup ship megabytes to it). Such calls are counted
//! (`shared_key_too_long`) and served from memory alone.
//!
//! Redis must never slow down or break serving: a lookup waits at most
//! [`LOOKUP_TIMEOUT`], writes go through a bounded queue to one writer task
//! (dropped when it is full), and while the shared link's breaker is open
//! every lookup is an immediate miss and nothing is queued. The connection
//! is the gateway's one [`RedisLink`] (TLS, ACL user, key prefix).
//!
//! A value read back is checked before it is served: its header must decode
//! and its result must be one JSON value. Whoever can write to Redis could
//! otherwise answer every client; what fails is a miss, counted
//! (`rpcgate_redis_invalid_values_total{kind="cache"}`).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use redis::AsyncCommands;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::key::Key;
use super::store::{Bind, Stored};
use super::Stats;
use crate::eth::Hash;
use crate::redis_link::{RedisLink, ValueKind};

/// The longest a request waits for Redis before going upstream instead.
pub(super) const LOOKUP_TIMEOUT: Duration = Duration::from_millis(100);
/// Writes waiting for the writer task; more are dropped.
const WRITE_QUEUE: usize = 1024;

pub(super) struct RedisStore {
    link: Arc<RedisLink>,
    prefix: String,
    writes: mpsc::Sender<(String, Vec<u8>)>,
    max_key_bytes: usize,
    stats: Arc<Stats>,
}

impl RedisStore {
    /// Starts the writer task for the network whose keys are under `space`;
    /// returns the tasks to abort when the network goes.
    pub(super) fn start(
        link: Arc<RedisLink>,
        space: &str,
        ttl: Duration,
        max_key_bytes: usize,
        stats: Arc<Stats>,
    ) -> (RedisStore, Vec<JoinHandle<()>>) {
        let (writes, queue) = mpsc::channel(WRITE_QUEUE);
        let writer = tokio::spawn(write_loop(queue, link.clone(), ttl, stats.clone()));
        (
            RedisStore {
                prefix: link.key(&format!("cache:v1:{space}:")),
                link,
                writes,
                max_key_bytes,
                stats,
            },
            vec![writer],
        )
    }

    /// The Redis key of `key`; `None` (counted) when it is over the cap.
    fn redis_key(&self, key: &Key) -> Option<String> {
        if self.prefix.len() + key.len() > self.max_key_bytes {
            self.stats
                .shared_key_too_long
                .fetch_add(1, Ordering::Relaxed);
            return None;
        }
        let mut k = String::with_capacity(self.prefix.len() + key.len());
        k.push_str(&self.prefix);
        k.push_str(key.as_str());
        Some(k)
    }

    /// The entry under `key`, if Redis has it, answers in time, and it
    /// passes its check.
    pub(super) async fn get(&self, key: &Key) -> Option<Stored> {
        let redis_key = self.redis_key(key)?;
        let mut conn = self.link.conn();
        let read = conn.get::<_, Option<Vec<u8>>>(redis_key);
        let value = match self.link.call(LOOKUP_TIMEOUT, read).await {
            Ok(value) => value?,
            Err(e) => {
                tracing::debug!(error = %e, "cache: redis store read failed");
                return None;
            }
        };
        let entry = decode(&value).filter(|e| is_json(&e.result));
        if entry.is_none() {
            self.link.invalid(ValueKind::Cache);
        }
        entry
    }

    /// Queues `entry` for Redis; dropped when the queue is full or Redis is
    /// being skipped.
    pub(super) fn put(&self, key: &Key, entry: &Stored) {
        if self.link.is_open() {
            return;
        }
        let Some(redis_key) = self.redis_key(key) else {
            return;
        };
        let _ = self.writes.try_send((redis_key, encode(entry)));
    }
}

/// Whether `text` is exactly one JSON value.
fn is_json(text: &[u8]) -> bool {
    serde_json::from_slice::<serde::de::IgnoredAny>(text).is_ok()
}

async fn write_loop(
    mut queue: mpsc::Receiver<(String, Vec<u8>)>,
    link: Arc<RedisLink>,
    ttl: Duration,
    stats: Arc<Stats>,
) {
    let ttl = ttl.as_secs().max(1);
    while let Some((key, value)) = queue.recv().await {
        let mut conn = link.conn();
        let write = conn.set_ex::<_, _, ()>(key, value, ttl);
        match link.call(Duration::from_secs(1), write).await {
            Ok(()) => {
                stats.shared_writes.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => tracing::debug!(error = %e, "cache: redis store write failed"),
        }
    }
}

/// `F` + result, `B` + from (8 bytes) + count (2 bytes) + hashes + result,
/// or `H` + number (8 bytes) + hash + result.
fn encode(entry: &Stored) -> Vec<u8> {
    let mut out = Vec::with_capacity(entry.result.len() + 64);
    match &entry.bind {
        Bind::Final => out.push(b'F'),
        Bind::Blocks { from, hashes } => {
            out.push(b'B');
            out.extend_from_slice(&from.to_be_bytes());
            out.extend_from_slice(&(hashes.len() as u16).to_be_bytes());
            for h in hashes.iter() {
                out.extend_from_slice(h);
            }
        }
        Bind::Hash { number, hash } => {
            out.push(b'H');
            out.extend_from_slice(&number.to_be_bytes());
            out.extend_from_slice(hash);
        }
    }
    out.extend_from_slice(&entry.result);
    out
}

/// Reads what [`encode`] wrote; anything else (another version, a truncated
/// value) is a miss, never a panic.
fn decode(value: &[u8]) -> Option<Stored> {
    let (&tag, rest) = value.split_first()?;
    let (bind, result) = match tag {
        b'F' => (Bind::Final, rest),
        b'B' => {
            let from = u64::from_be_bytes(rest.get(..8)?.try_into().ok()?);
            let count = u16::from_be_bytes(rest.get(8..10)?.try_into().ok()?) as usize;
            let end = 10 + 32 * count;
            let hashes: Vec<Hash> = rest
                .get(10..end)?
                .chunks_exact(32)
                .map(|c| c.try_into().expect("chunks of 32"))
                .collect();
            if hashes.is_empty() {
                return None;
            }
            (
                Bind::Blocks {
                    from,
                    hashes: hashes.into(),
                },
                &rest[end..],
            )
        }
        b'H' => {
            let number = u64::from_be_bytes(rest.get(..8)?.try_into().ok()?);
            let hash: Hash = rest.get(8..40)?.try_into().ok()?;
            (Bind::Hash { number, hash }, &rest[40..])
        }
        _ => return None,
    };
    if result.is_empty() {
        return None;
    }
    Some(Stored {
        result: Bytes::copy_from_slice(result),
        bind,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_and_garbage_is_a_miss() {
        for bind in [
            Bind::Final,
            Bind::block(9, [7; 32]),
            Bind::Hash {
                number: 9,
                hash: [7; 32],
            },
        ] {
            let e = Stored {
                result: Bytes::from_static(b"{\"a\":1}"),
                bind,
            };
            let back = decode(&encode(&e)).unwrap();
            assert_eq!(back.result, e.result);
            assert_eq!(back.bind, e.bind);
        }
        let good = encode(&Stored {
            result: Bytes::from_static(b"\"0x1\""),
            bind: Bind::block(1, [1; 32]),
        });
        // Every cut that loses the result (or part of the header) is a miss.
        for cut in 0..good.len() - 5 {
            assert!(decode(&good[..cut]).is_none(), "cut at {cut}");
        }
        assert!(decode(b"X123").is_none());
        assert!(decode(b"").is_none());
        assert!(decode(b"F").is_none());
    }

    #[test]
    fn results_must_be_one_json_value() {
        assert!(is_json(b"{\"a\":[1,\"x\"]}"));
        assert!(is_json(b"\"0x1\""));
        assert!(!is_json(b"{\"a\":1}, \"extra\""));
        assert!(!is_json(b"<html>"));
        assert!(!is_json(b"\"0x1"));
    }
}
