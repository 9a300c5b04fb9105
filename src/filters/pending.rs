//! The pending-transaction hashes that `eth_newPendingTransactionFilter`
//! filters are answered from.
//!
//! A node answers such a filter from its own pool; the gateway has no pool,
//! so it keeps a log of the hashes announced by one `newPendingTransactions`
//! subscription (the server runs it while a pending filter is in use, see
//! `control::pending_feed`). Each hash gets a position; a filter remembers the
//! last position it delivered (its cursor) and a poll returns what came
//! after it. Best effort, as on a node: what was announced while no feed
//! ran, or what fell out of the log (`filters.max_pending_hashes`, the
//! newest kept), is not delivered.
//!
//! - **In memory**: a ring of the newest hashes; positions are a counter.
//! - **In Redis**: a stream per network, trimmed to about the same length,
//!   whose entry ids are the positions, so a filter created on one replica is
//!   polled on any other. Every replica with pending filters in use runs a
//!   feed; a hash is appended once (a short-lived marker per hash decides
//!   which replica's append counts), so two feeds do not deliver it twice.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use redis::Script;

use super::store::StoreError;
use crate::redis_link::{RedisLink, ValueKind};

/// How long a hash's "already appended" marker lives in Redis: longer than
/// two feeds can disagree about when they saw it.
const SEEN_TTL_SECS: u64 = 120;

const APPEND: &str = r#"
local kept = tonumber(ARGV[1])
local ttl = tonumber(ARGV[2])
local n = 0
for i = 4, #ARGV do
  if redis.call('SET', KEYS[2] .. ARGV[i], '1', 'NX', 'EX', tonumber(ARGV[3])) then
    redis.call('XADD', KEYS[1], 'MAXLEN', '~', kept, '*', 'h', ARGV[i])
    n = n + 1
  end
end
if n > 0 then redis.call('PEXPIRE', KEYS[1], ttl) end
return n
"#;

/// The pending hashes of one network.
pub(super) enum PendingLog {
    Local(Mutex<Ring>),
    Redis(SharedLog),
}

impl PendingLog {
    pub(super) fn local(kept: usize) -> PendingLog {
        PendingLog::Local(Mutex::new(Ring::new(kept)))
    }

    /// The cursor of a filter created now: it gets what comes after.
    pub(super) async fn cursor_now(&self) -> Result<String, StoreError> {
        match self {
            PendingLog::Local(ring) => Ok(ring.lock().last().to_string()),
            PendingLog::Redis(log) => log.last().await,
        }
    }

    /// What came after `cursor`, at most `max`, and the cursor after them.
    pub(super) async fn since(
        &self,
        cursor: &str,
        max: usize,
    ) -> Result<(Vec<String>, String), StoreError> {
        match self {
            PendingLog::Local(ring) => {
                let ring = ring.lock();
                // A cursor that is not ours (another store's, after a
                // reload) starts from now.
                let after = cursor.parse().unwrap_or(ring.last());
                let (hashes, last) = ring.since(after, max);
                Ok((hashes, last.to_string()))
            }
            PendingLog::Redis(log) => log.since(cursor, max).await,
        }
    }

    /// Appends hashes the feed announced; returns how many were new here.
    pub(super) async fn append(
        &self,
        hashes: &[String],
        expiry: Duration,
    ) -> Result<usize, StoreError> {
        match self {
            PendingLog::Local(ring) => {
                let mut ring = ring.lock();
                for h in hashes {
                    ring.push(h);
                }
                Ok(hashes.len())
            }
            PendingLog::Redis(log) => log.append(hashes, expiry).await,
        }
    }
}

/// The newest hashes, each with its position (1, 2, ...).
pub(super) struct Ring {
    kept: usize,
    /// Position of the last hash pushed (0: none yet).
    last: u64,
    hashes: VecDeque<Box<str>>,
}

impl Ring {
    fn new(kept: usize) -> Ring {
        Ring {
            kept: kept.max(1),
            last: 0,
            hashes: VecDeque::new(),
        }
    }

    fn last(&self) -> u64 {
        self.last
    }

    fn push(&mut self, hash: &str) {
        if self.hashes.len() == self.kept {
            self.hashes.pop_front();
        }
        self.hashes.push_back(hash.into());
        self.last += 1;
    }

    /// The hashes after position `after` (those still kept), at most `max`
    /// of the oldest of them, and the position of the last one returned.
    fn since(&self, after: u64, max: usize) -> (Vec<String>, u64) {
        let first = self.last + 1 - self.hashes.len() as u64;
        let from = after.saturating_add(1).max(first);
        if from > self.last {
            return (Vec::new(), after.min(self.last));
        }
        let skip = (from - first) as usize;
        let out: Vec<String> = self
            .hashes
            .iter()
            .skip(skip)
            .take(max)
            .map(|h| h.to_string())
            .collect();
        let last = from + out.len() as u64 - 1;
        (out, last)
    }
}

/// The stream of one network in Redis.
pub(super) struct SharedLog {
    link: Arc<RedisLink>,
    /// `<prefix>pending` (the stream) and `<prefix>pending:seen:` (markers).
    stream: String,
    seen: String,
    kept: usize,
    timeout: Duration,
    append: Script,
}

impl SharedLog {
    /// `prefix` is the filter store's key prefix (one Cluster slot).
    pub(super) fn new(
        link: Arc<RedisLink>,
        prefix: &str,
        kept: usize,
        timeout: Duration,
    ) -> SharedLog {
        SharedLog {
            link,
            stream: format!("{prefix}pending"),
            seen: format!("{prefix}pending:seen:"),
            kept,
            timeout,
            append: Script::new(APPEND),
        }
    }

    async fn within<T>(
        &self,
        f: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, StoreError> {
        super::store::within(&self.link, self.timeout, f).await
    }

    async fn last(&self) -> Result<String, StoreError> {
        let mut conn = self.link.conn();
        let mut cmd = redis::cmd("XREVRANGE");
        cmd.arg(&self.stream).arg("+").arg("-").arg("COUNT").arg(1);
        let entries: Vec<Entry> = self.within(cmd.query_async(&mut conn)).await?;
        Ok(entries
            .into_iter()
            .next()
            .map_or_else(|| "0-0".to_string(), |(id, _)| id))
    }

    async fn since(&self, cursor: &str, max: usize) -> Result<(Vec<String>, String), StoreError> {
        if !is_stream_id(cursor) {
            return Ok((Vec::new(), self.last().await?));
        }
        let mut conn = self.link.conn();
        let mut cmd = redis::cmd("XRANGE");
        cmd.arg(&self.stream)
            .arg(format!("({cursor}"))
            .arg("+")
            .arg("COUNT")
            .arg(max);
        let entries: Vec<Entry> = self.within(cmd.query_async(&mut conn)).await?;
        let last = entries
            .last()
            .map_or_else(|| cursor.to_string(), |(id, _)| id.clone());
        let hashes = entries
            .into_iter()
            .filter_map(|(_, fields)| match <[String; 2]>::try_from(fields) {
                // Only a transaction hash is served; anything else was not
                // written by a gateway.
                Ok([_, hash]) if crate::eth::parse_hash(&hash).is_some() => Some(hash),
                _ => {
                    self.link.invalid(ValueKind::Pending);
                    None
                }
            })
            .collect();
        Ok((hashes, last))
    }

    async fn append(&self, hashes: &[String], expiry: Duration) -> Result<usize, StoreError> {
        if hashes.is_empty() {
            return Ok(0);
        }
        let mut call = self.append.prepare_invoke();
        call.key(&self.stream)
            .key(&self.seen)
            .arg(self.kept)
            .arg(expiry.as_millis().max(1) as u64)
            .arg(SEEN_TTL_SECS);
        for h in hashes {
            call.arg(h);
        }
        let mut conn = self.link.conn();
        let added: i64 = self.within(call.invoke_async(&mut conn)).await?;
        Ok(added.max(0) as usize)
    }
}

/// A stream entry: its id and its field list (`["h", <hash>]`).
type Entry = (String, Vec<String>);

/// `<ms>-<seq>`, as Redis makes stream ids.
fn is_stream_id(text: &str) -> bool {
    text.split_once('-').is_some_and(|(ms, seq)| {
        !ms.is_empty()
            && !seq.is_empty()
            && ms.bytes().all(|b| b.is_ascii_digit())
            && seq.bytes().all(|b| b.is_ascii_digit())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(kept: usize, n: usize) -> Ring {
        let mut r = Ring::new(kept);
        for i in 1..=n {
            r.push(&format!("0x{i:x}"));
        }
        r
    }

    #[test]
    fn a_cursor_gets_what_came_after_it_once() {
        let mut r = ring(10, 3);
        assert_eq!(
            r.since(0, 100),
            (vec!["0x1".into(), "0x2".into(), "0x3".into()], 3)
        );
        assert_eq!(r.since(3, 100), (vec![], 3));
        r.push("0x4");
        assert_eq!(r.since(3, 100), (vec!["0x4".into()], 4));
        assert_eq!(r.since(1, 2), (vec!["0x2".into(), "0x3".into()], 3));
    }

    #[test]
    fn what_fell_out_of_the_ring_is_skipped() {
        let r = ring(3, 10);
        assert_eq!(r.last(), 10);
        assert_eq!(
            r.since(2, 100),
            (vec!["0x8".into(), "0x9".into(), "0xa".into()], 10)
        );
        // A cursor from the future (another store's) gets nothing and is
        // brought back to this ring's last position.
        assert_eq!(r.since(50, 100), (vec![], 10));
    }

    #[test]
    fn stream_ids_are_recognized() {
        assert!(is_stream_id("1700000000000-0"));
        assert!(is_stream_id("0-0"));
        assert!(!is_stream_id("17"));
        assert!(!is_stream_id("-0"));
        assert!(!is_stream_id("1-x"));
    }
}
