//! Read-your-writes: after `eth_sendRawTransaction` succeeds on a backend,
//! reads of that transaction go to that backend first, so that a wallet never
//! gets `null` for a transaction it has just sent.
//!
//! Nodes share a new transaction with their peers only as fast as gossip goes
//! (and some, like the test fleet's replicas, not at all), so for a while
//! only the backend that accepted it knows it. [`RecentSends`] remembers,
//! per network, which backend accepted each transaction and which client
//! sent it; the pipeline asks it before the cache ([`RecentSends::steer`])
//! and sends a steered read to that backend first ([`forward_preferring`]):
//! - `eth_getTransactionReceipt` and `eth_getTransactionByHash` of a
//!   remembered hash, by anyone: a hash is learnt from its sender, and
//!   whoever holds it would be misled by the same `null`;
//! - `eth_getTransactionCount(address, "pending")` of the client (its key's
//!   client, or its IP when anonymous) whose latest send is remembered: the
//!   nonce to sign the next transaction with counts the one just sent. The
//!   sender's address would need the signature recovered; the client is
//!   what the gateway already knows.
//!
//! A steered read bypasses the cache: its in-flight sharing could hand the
//! sender another backend's `null`, and an answer of the accepting backend
//! about a block above the served head is no answer to share. Where it goes
//! is `ryw_read`'s business: never to a backend whose head is unknown or
//! below the served head the send was seen at, and a nonce only from a
//! backend that shows the send.
//!
//! A send is forgotten when a steered receipt or transaction shows it in a
//! block the served head includes (every candidate has that block then),
//! after `ttl`, or, past `max_entries`, oldest first. Reads touch only the
//! concurrent maps (no lock that a send holds for longer than one insert)
//! and skip all of it, with one atomic load, while nothing is remembered.
//!
//! With `redis:` set, each send is also recorded in Redis ([`SharedSends`],
//! `ryw_shared`), and a read this process has no record for asks there
//! ([`RecentSends::steer_shared`]): behind a Service with several gateway
//! replicas, the wallet's nonce read is steered to the backend that accepted
//! its send whichever replica it reaches. A nonce read asks there even when
//! this process remembers a send of the client: the client's later send may
//! have gone through another replica, and the later of the two records is
//! the one to follow.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dashmap::DashMap;
use parking_lot::Mutex;
use tokio::time::Instant;

pub use super::ryw_read::forward_preferring;
use super::ryw_shared::SharedSend;
pub use super::ryw_shared::SharedSends;
use crate::config::ReadYourWritesConfig;
use crate::eth::{parse_hash, Hash};
use crate::jsonrpc::Reply;
use crate::metrics::{EvictionReason, RywSeries};

/// One remembered send.
struct Sent {
    backend: Arc<str>,
    client: Box<str>,
    at: Instant,
    /// The served head when the send was answered.
    seen_at: u64,
}

/// A client's latest send: where its `pending` nonce reads go.
struct Latest {
    backend: Arc<str>,
    hash: Hash,
    at: Instant,
    seen_at: u64,
    /// Wall-clock milliseconds, to compare with the shared record.
    at_ms: u64,
}

/// What a steered read is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Read {
    /// A receipt or a transaction by hash: its block tells whether the
    /// served head includes it.
    Transaction,
    /// A `pending` nonce.
    Nonce,
}

/// A read to send to `backend` first.
#[derive(Debug, Clone)]
pub struct Steer {
    pub backend: Arc<str>,
    pub(super) hash: Hash,
    pub(super) read: Read,
    /// The served head when the send was answered: a backend below it (or
    /// whose head is unknown) may have lost the send, and is not asked.
    pub(super) seen_at: u64,
    /// When (wall clock, ms; 0: not known), to pick the later of two records.
    at_ms: u64,
}

impl Steer {
    fn of(send: SharedSend, read: Read) -> Steer {
        Steer {
            backend: send.backend,
            hash: send.hash,
            read,
            seen_at: send.seen_at,
            at_ms: send.at_ms,
        }
    }
}

/// The sends of one network that reads should follow (see the module docs).
pub struct RecentSends {
    ttl: Duration,
    max_entries: usize,
    by_hash: DashMap<Hash, Sent>,
    by_client: DashMap<Box<str>, Latest>,
    /// Sends in the order they were remembered (the ttl is the same for all,
    /// so the front expires first); written by sends only. Holds hashes
    /// already forgotten too, at most `max_entries` in all.
    order: Mutex<VecDeque<(Instant, Hash)>>,
    /// Entries of `by_hash`: the reads' one check while it is 0.
    live: AtomicUsize,
    pub(super) series: RywSeries,
    /// The record every replica shares, with `redis:` set.
    shared: Option<SharedSends>,
    /// How long a nonce read waits for the send to show on some backend.
    pub(super) wait_for_send: Duration,
}

impl RecentSends {
    /// Remembers sends as `config` says, counting in `series` (the network's).
    pub fn new(
        series: RywSeries,
        config: &ReadYourWritesConfig,
        shared: Option<SharedSends>,
    ) -> RecentSends {
        series.entries.set(0);
        RecentSends {
            ttl: config.ttl,
            max_entries: config.max_entries,
            by_hash: DashMap::new(),
            by_client: DashMap::new(),
            order: Mutex::new(VecDeque::new()),
            live: AtomicUsize::new(0),
            series,
            shared,
            wait_for_send: config.wait_for_send,
        }
    }

    /// Sends remembered now.
    pub fn len(&self) -> usize {
        self.live.load(Ordering::Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Remembers a send of `client` that `reply` answered at served head
    /// `seen_at`: a transaction hash from a backend (an error, or an answer
    /// not from a backend, teaches nothing).
    pub fn sent(&self, reply: &Reply, client: &str, seen_at: u64) {
        let (Some(origin), false) = (&reply.origin, reply.is_error()) else {
            return;
        };
        let Some(hash) = result_hash(reply.raw()) else {
            return;
        };
        let now = Instant::now();
        let previous = self.by_hash.insert(
            hash,
            Sent {
                backend: origin.backend.clone(),
                client: client.into(),
                at: now,
                seen_at,
            },
        );
        if previous.is_none() {
            self.live.fetch_add(1, Ordering::Relaxed);
        }
        self.by_client.insert(
            client.into(),
            Latest {
                backend: origin.backend.clone(),
                hash,
                at: now,
                seen_at,
                at_ms: wall_ms(),
            },
        );
        let mut order = self.order.lock();
        order.push_back((now, hash));
        while let Some(&(at, oldest)) = order.front() {
            let reason = if order.len() > self.max_entries {
                EvictionReason::Full
            } else if now.duration_since(at) >= self.ttl {
                EvictionReason::Expired
            } else {
                break;
            };
            order.pop_front();
            // Only the entry this item remembered: the same hash sent again
            // later has a later item of its own.
            self.forget(&oldest, Some(at), reason);
        }
        drop(order);
        self.series.entries.set(self.len() as i64);
    }

    /// Records the send `reply` answered in the shared record too (with
    /// `redis:` set; else nothing), before its answer goes back.
    pub async fn share(&self, reply: &Reply, client: &str, seen_at: u64) {
        let (Some(shared), Some(origin), false) = (&self.shared, &reply.origin, reply.is_error())
        else {
            return;
        };
        let Some(hash) = result_hash(reply.raw()) else {
            return;
        };
        let send = SharedSend {
            backend: origin.backend.clone(),
            hash,
            seen_at,
            at_ms: wall_ms(),
        };
        shared.record(&send, client, self.ttl).await;
    }

    /// Where a read should go first, by this process's record and the
    /// shared one (`client` is made only for the reads that steer): a
    /// transaction by whichever record knows it, a nonce by the client's
    /// later send of the two.
    pub async fn steer_read(
        &self,
        method: &str,
        params: Option<&str>,
        client: impl FnOnce() -> String,
    ) -> Option<Steer> {
        if self.shared.is_none() && self.is_empty() {
            return None;
        }
        let read = match method {
            "eth_getTransactionReceipt" | "eth_getTransactionByHash" => Read::Transaction,
            "eth_getTransactionCount" if params.is_some_and(is_pending_count) => Read::Nonce,
            _ => return None,
        };
        let client = client();
        let local = self.steer(method, params, &client);
        if read == Read::Transaction && local.is_some() {
            return local;
        }
        let shared = Box::pin(self.steer_shared(method, params, || client)).await;
        match (local, shared) {
            (Some(local), Some(shared)) if shared.at_ms > local.at_ms => Some(shared),
            (Some(local), _) => Some(local),
            (None, shared) => shared,
        }
    }

    /// Where a call should go first by the shared record, when this process
    /// remembers nothing for it (`client` is made only for a nonce read).
    pub async fn steer_shared(
        &self,
        method: &str,
        params: Option<&str>,
        client: impl FnOnce() -> String,
    ) -> Option<Steer> {
        let shared = self.shared.as_ref()?;
        match method {
            "eth_getTransactionReceipt" | "eth_getTransactionByHash" => {
                let hash = hash_param(params?)?;
                let send = shared.send_of(&hash).await?;
                Some(Steer::of(send, Read::Transaction))
            }
            "eth_getTransactionCount" if is_pending_count(params?) => {
                let send = shared.latest_of(&client()).await?;
                Some(Steer::of(send, Read::Nonce))
            }
            _ => None,
        }
    }

    /// Where a call should go first, when it reads a remembered send.
    pub fn steer(&self, method: &str, params: Option<&str>, client: &str) -> Option<Steer> {
        if self.is_empty() {
            return None;
        }
        match method {
            "eth_getTransactionReceipt" | "eth_getTransactionByHash" => {
                let hash = hash_param(params?)?;
                let (backend, seen_at) = self.fresh(&hash)?;
                Some(Steer {
                    backend,
                    hash,
                    read: Read::Transaction,
                    seen_at,
                    at_ms: 0,
                })
            }
            "eth_getTransactionCount" if is_pending_count(params?) => {
                let (backend, hash, at, seen_at, at_ms) = {
                    let latest = self.by_client.get(client)?;
                    (
                        latest.backend.clone(),
                        latest.hash,
                        latest.at,
                        latest.seen_at,
                        latest.at_ms,
                    )
                };
                if Instant::now().duration_since(at) >= self.ttl {
                    self.forget(&hash, None, EvictionReason::Expired);
                    return None;
                }
                Some(Steer {
                    backend,
                    hash,
                    read: Read::Nonce,
                    seen_at,
                    at_ms,
                })
            }
            _ => None,
        }
    }

    /// What the answer to a steered read teaches: a transaction in a block
    /// that the served head includes is on every candidate now.
    pub fn answered(&self, steer: &Steer, reply: &Reply, served: u64) {
        if steer.read != Read::Transaction || reply.is_error() {
            return;
        }
        if included_at(reply.raw()).is_some_and(|block| block <= served) {
            self.forget(&steer.hash, None, EvictionReason::Included);
            self.series.entries.set(self.len() as i64);
        }
    }

    /// The backend that accepted `hash` and the served head then, unless
    /// that was `ttl` ago.
    fn fresh(&self, hash: &Hash) -> Option<(Arc<str>, u64)> {
        let (backend, at, seen_at) = {
            let sent = self.by_hash.get(hash)?;
            (sent.backend.clone(), sent.at, sent.seen_at)
        };
        if Instant::now().duration_since(at) < self.ttl {
            return Some((backend, seen_at));
        }
        self.forget(hash, Some(at), EvictionReason::Expired);
        self.series.entries.set(self.len() as i64);
        None
    }

    /// Forgets the send of `hash` (only if remembered at `at`, when given),
    /// and its client's latest send if it is this one.
    fn forget(&self, hash: &Hash, at: Option<Instant>, reason: EvictionReason) {
        let removed = self
            .by_hash
            .remove_if(hash, |_, sent| at.is_none_or(|at| sent.at == at));
        let Some((_, sent)) = removed else {
            return;
        };
        self.live.fetch_sub(1, Ordering::Relaxed);
        self.by_client
            .remove_if(&sent.client, |_, latest| latest.hash == *hash);
        self.series.eviction(reason).inc();
    }
}

/// Now, in milliseconds since the Unix epoch (0 if the clock is before it).
fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The hash a node answered a send with (`"0x…"`).
fn result_hash(raw: &[u8]) -> Option<Hash> {
    let text: &str = serde_json::from_slice(raw).ok()?;
    parse_hash(text)
}

/// The hash in `["0x…"]`.
fn hash_param(params: &str) -> Option<Hash> {
    let (text,): (&str,) = serde_json::from_str(params).ok()?;
    parse_hash(text)
}

/// Whether params are `[address, "pending"]`.
pub(super) fn is_pending_count(params: &str) -> bool {
    serde_json::from_str::<(serde::de::IgnoredAny, &str)>(params)
        .is_ok_and(|(_, block)| block == "pending")
}

/// The block a receipt or a transaction is in (`None`: `null`, or pending).
fn included_at(raw: &[u8]) -> Option<u64> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct InBlock<'a> {
        #[serde(borrow)]
        block_number: Option<&'a str>,
    }
    let found: Option<InBlock<'_>> = serde_json::from_slice(raw).ok()?;
    crate::eth::parse_quantity(found?.block_number?)
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::jsonrpc::Origin;

    const H1: &str = "0x1111111111111111111111111111111111111111111111111111111111111111";
    const H2: &str = "0x2222222222222222222222222222222222222222222222222222222222222222";
    const H3: &str = "0x3333333333333333333333333333333333333333333333333333333333333333";

    fn config(max_entries: usize) -> ReadYourWritesConfig {
        ReadYourWritesConfig {
            enabled: true,
            ttl: Duration::from_secs(60),
            max_entries,
            wait_for_send: Duration::from_secs(2),
        }
    }

    fn unit_series(network: &str) -> RywSeries {
        crate::metrics::Metrics::new()
            .read_your_writes
            .series(network)
    }

    fn accepted(hash: &str, backend: &str) -> Reply {
        let mut reply = Reply::result_from(Bytes::from(format!("\"{hash}\"")));
        reply.origin = Some(Origin {
            backend: Arc::from(backend),
            attempts: 1,
        });
        reply
    }

    fn receipt(recent: &RecentSends, hash: &str, client: &str) -> Option<Steer> {
        recent.steer(
            "eth_getTransactionReceipt",
            Some(&format!(r#"["{hash}"]"#)),
            client,
        )
    }

    fn nonce(recent: &RecentSends, client: &str) -> Option<Steer> {
        recent.steer(
            "eth_getTransactionCount",
            Some(r#"["0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266","pending"]"#),
            client,
        )
    }

    #[tokio::test(start_paused = true)]
    async fn reads_of_a_send_go_to_the_backend_that_accepted_it() {
        let recent = RecentSends::new(unit_series("ryw-unit-steer"), &config(10), None);
        assert!(receipt(&recent, H1, "c:a").is_none());
        recent.sent(&accepted(H1, "r1"), "c:a", 0);
        // The hash, by anyone, in either spelling; the nonce for its sender only.
        assert_eq!(&*receipt(&recent, H1, "c:b").unwrap().backend, "r1");
        let upper = format!("0x{}", H1[2..].to_ascii_uppercase());
        let by_hash = recent.steer(
            "eth_getTransactionByHash",
            Some(&format!(r#"["{upper}"]"#)),
            "c:b",
        );
        assert_eq!(&*by_hash.unwrap().backend, "r1");
        assert_eq!(&*nonce(&recent, "c:a").unwrap().backend, "r1");
        assert!(nonce(&recent, "c:b").is_none());
        let latest = r#"["0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266","latest"]"#;
        assert!(recent
            .steer("eth_getTransactionCount", Some(latest), "c:a")
            .is_none());
        assert!(receipt(&recent, H2, "c:a").is_none());
        assert!(recent.steer("eth_getBalance", Some("[]"), "c:a").is_none());
        // The latest send moves the sender's nonce reads.
        recent.sent(&accepted(H2, "r2"), "c:a", 0);
        assert_eq!(&*nonce(&recent, "c:a").unwrap().backend, "r2");
        assert_eq!(&*receipt(&recent, H1, "c:a").unwrap().backend, "r1");
        // Errors and answers not from a backend are no sends.
        let mut refused = Reply::result_from(Bytes::from_static(b"\"x\""));
        refused.origin = None;
        recent.sent(&refused, "c:z", 0);
        assert_eq!(recent.len(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn sends_are_forgotten_when_included_after_the_ttl_or_when_full() {
        let recent = RecentSends::new(unit_series("ryw-unit-forget"), &config(2), None);
        recent.sent(&accepted(H1, "r1"), "c:a", 0);
        let steer = receipt(&recent, H1, "c:a").unwrap();
        // Pending (no block), or in a block above the served head: kept.
        let pending = Reply::result_from(Bytes::from_static(b"{\"blockNumber\":null}"));
        recent.answered(&steer, &pending, 5);
        recent.answered(&steer, &Reply::result_from(Bytes::from_static(b"null")), 5);
        let mined = Reply::result_from(Bytes::from_static(b"{\"blockNumber\":\"0x6\"}"));
        recent.answered(&steer, &mined, 5);
        assert!(receipt(&recent, H1, "c:a").is_some());
        // The served head includes it: forgotten, the sender's nonce too.
        recent.answered(&steer, &mined, 6);
        assert!(receipt(&recent, H1, "c:a").is_none());
        assert!(nonce(&recent, "c:a").is_none());
        assert!(recent.is_empty());

        recent.sent(&accepted(H1, "r1"), "c:a", 0);
        tokio::time::advance(Duration::from_secs(30)).await;
        recent.sent(&accepted(H2, "r1"), "c:b", 0);
        tokio::time::advance(Duration::from_secs(31)).await;
        assert!(receipt(&recent, H1, "c:a").is_none(), "past the ttl");
        assert!(nonce(&recent, "c:a").is_none());
        assert!(receipt(&recent, H2, "c:b").is_some());
        // Past max_entries, the oldest goes.
        recent.sent(&accepted(H1, "r1"), "c:a", 0);
        recent.sent(&accepted(H3, "r1"), "c:c", 0);
        assert_eq!(recent.len(), 2);
        assert!(receipt(&recent, H2, "c:b").is_none());
        assert!(nonce(&recent, "c:b").is_none());
        assert!(receipt(&recent, H1, "c:a").is_some());
        assert!(receipt(&recent, H3, "c:c").is_some());
    }

    #[test]
    fn params_and_answers_are_read_strictly() {
        assert!(hash_param(r#"["0x12"]"#).is_none());
        assert!(hash_param(r#"[1]"#).is_none());
        assert!(hash_param(&format!(r#"["{H1}"]"#)).is_some());
        assert!(is_pending_count(r#"["0xab","pending"]"#));
        assert!(!is_pending_count(r#"["0xab"]"#));
        assert!(!is_pending_count(r#"["0xab",{"blockHash":"0x1"}]"#));
        assert_eq!(
            included_at(b"{\"blockNumber\":\"0x10\",\"x\":[1]}"),
            Some(16)
        );
        assert_eq!(included_at(b"null"), None);
        assert_eq!(included_at(b"{\"blockNumber\":null}"), None);
        assert_eq!(included_at(b"[]"), None);
    }
}
