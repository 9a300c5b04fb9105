//! Where filters live between polls: in this process, or in Redis so that
//! any gateway replica answers any poll.
//!
//! Both stores offer the same four operations. A poll loads a copy of the
//! filter with its version, works on it without holding anything (it may
//! wait for `eth_getLogs`), and saves it only if the version is unchanged:
//! two polls of one filter at once never deliver the same block twice (the
//! later one answers `[]`). Locks are held only inside one map operation.
//!
//! Caps and expiry: in memory, counters per client and in all, and a sweeper
//! that drops filters past their deadline. In Redis, each filter is one key
//! (`<version> <json>`) whose TTL is the expiry, refreshed by each poll, and
//! two sorted sets (all, per client) scored by deadline count the live ones;
//! creation is one Lua script that drops the expired members, checks both
//! caps and writes, so replicas share one count. Every Redis call has a
//! deadline and goes through the gateway's one [`RedisLink`] (its breaker
//! skips Redis while it fails); a filter call that misses it fails with
//! -32000, it never hangs. A stored filter that does not decode is treated as
//! absent and counted (`rpcgate_redis_invalid_values_total{kind="filter"}`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use dashmap::mapref::entry::Entry;
use dashmap::DashMap;
use std::sync::Arc;

use redis::{AsyncCommands, Script};

use super::state::State;
use crate::redis_link::{RedisLink, ValueKind};

/// Which cap refused a new filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cap {
    Client(usize),
    Total(usize),
    /// `filters.max_state_bytes` (filters in this process).
    Bytes(usize),
}

/// Why the store could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub(super) enum StoreError {
    #[error("over a cap")]
    Refused(Cap),
    #[error("{0}")]
    Unavailable(String),
    /// A write went out and no answer came in time: Redis most likely
    /// applied it ([`crate::redis_link::LinkError::may_have_applied`]).
    #[error("{0}")]
    Unknown(String),
}

/// The bounds a store enforces.
#[derive(Debug, Clone, Copy)]
pub(super) struct Bounds {
    pub expiry: Duration,
    pub max_per_client: usize,
    pub max_total: usize,
    /// Bytes all filters in this process may hold (`filters.max_state_bytes`).
    pub max_bytes: usize,
}

pub(super) enum Store {
    Local(Local),
    Redis(RedisFilters),
}

impl Store {
    /// Stores a new filter under `id`, within the caps; returns the live
    /// filters counted and those found expired on the way (Redis only).
    pub(super) async fn create(
        &self,
        id: &str,
        state: &State,
        bounds: Bounds,
    ) -> Result<(usize, u64), StoreError> {
        match self {
            Store::Local(l) => l.create(id, state, bounds).map(|n| (n, 0)),
            Store::Redis(r) => r.create(id, state, bounds).await,
        }
    }

    /// A copy of the filter and its version.
    pub(super) async fn load(&self, id: &str) -> Result<Option<(u64, State)>, StoreError> {
        match self {
            Store::Local(l) => Ok(l.load(id)),
            Store::Redis(r) => r.load(id).await,
        }
    }

    /// Saves a polled filter (and pushes its deadline back) unless it changed
    /// since `version` was loaded; false when it did, or is gone.
    pub(super) async fn save(
        &self,
        id: &str,
        version: u64,
        state: &State,
        bounds: Bounds,
    ) -> Result<bool, StoreError> {
        match self {
            Store::Local(l) => Ok(l.save(id, version, state, bounds)),
            Store::Redis(r) => r.save(id, version, state, bounds.expiry).await,
        }
    }

    /// Drops a filter `client` made; false when there was none (or it is
    /// another client's).
    pub(super) async fn remove(&self, id: &str, client: &str) -> Result<bool, StoreError> {
        match self {
            Store::Local(l) => Ok(l.remove(id, client)),
            Store::Redis(r) => r.remove(id, client).await,
        }
    }
}

// ---------------------------------------------------------------- in memory

struct Slot {
    version: u64,
    state: State,
    deadline: Instant,
    /// What `state` weighs (`weight`), counted in `Local::bytes`.
    bytes: usize,
}

/// Filters in this process: a sharded map, each operation one shard lock.
#[derive(Default)]
pub(super) struct Local {
    filters: DashMap<String, Slot>,
    per_client: DashMap<String, usize>,
    total: AtomicUsize,
    /// The sum of the slots' `bytes`: the budget `max_bytes` bounds.
    bytes: AtomicUsize,
}

/// The bytes a filter holds, as its JSON: criteria, remembered blocks and
/// replay logs (what would be written to Redis; in memory the parsed form
/// is of the same order).
pub(super) fn weight(state: &State) -> usize {
    serde_json::to_vec(state).map_or(usize::MAX, |v| v.len())
}

impl Local {
    fn create(&self, id: &str, state: &State, bounds: Bounds) -> Result<usize, StoreError> {
        self.sweep(Instant::now());
        let bytes = weight(state);
        if self.bytes.load(Ordering::Acquire).saturating_add(bytes) > bounds.max_bytes {
            return Err(StoreError::Refused(Cap::Bytes(bounds.max_bytes)));
        }
        // The client's own cap first: it names the narrower cause.
        let total = {
            let mut held = self.per_client.entry(state.client.clone()).or_insert(0);
            if *held >= bounds.max_per_client {
                return Err(StoreError::Refused(Cap::Client(bounds.max_per_client)));
            }
            let total = self.total.fetch_add(1, Ordering::AcqRel) + 1;
            if total > bounds.max_total {
                self.total.fetch_sub(1, Ordering::AcqRel);
                let unused = *held == 0;
                drop(held);
                if unused {
                    self.per_client.remove_if(&state.client, |_, n| *n == 0);
                }
                return Err(StoreError::Refused(Cap::Total(bounds.max_total)));
            }
            *held += 1;
            total
        };
        self.bytes.fetch_add(bytes, Ordering::AcqRel);
        self.filters.insert(
            id.to_string(),
            Slot {
                version: 0,
                state: state.clone(),
                deadline: Instant::now() + bounds.expiry,
                bytes,
            },
        );
        Ok(total)
    }

    fn load(&self, id: &str) -> Option<(u64, State)> {
        let slot = self.filters.get(id)?;
        (slot.deadline > Instant::now()).then(|| (slot.version, slot.state.clone()))
    }

    /// Saves a polled filter; one that would take the budget past
    /// `max_bytes` is saved without its replay logs (its remembered blocks
    /// are then taken as final), never refused: its delivery stands.
    fn save(&self, id: &str, version: u64, state: &State, bounds: Bounds) -> bool {
        let Some(mut slot) = self.filters.get_mut(id) else {
            return false;
        };
        if slot.version != version || slot.deadline <= Instant::now() {
            return false;
        }
        let mut kept = state.clone();
        let mut bytes = weight(&kept);
        let others = self
            .bytes
            .load(Ordering::Acquire)
            .saturating_sub(slot.bytes);
        if others.saturating_add(bytes) > bounds.max_bytes && !kept.logs.is_empty() {
            kept.logs = Vec::new();
            kept.recent.clear();
            bytes = weight(&kept);
        }
        self.bytes.fetch_add(bytes, Ordering::AcqRel);
        self.bytes.fetch_sub(slot.bytes, Ordering::AcqRel);
        slot.version += 1;
        slot.state = kept;
        slot.bytes = bytes;
        slot.deadline = Instant::now() + bounds.expiry;
        true
    }

    fn remove(&self, id: &str, client: &str) -> bool {
        let Some((_, slot)) = self
            .filters
            .remove_if(id, |_, slot| slot.state.client == client)
        else {
            return false;
        };
        self.release(&slot.state.client);
        self.bytes.fetch_sub(slot.bytes, Ordering::AcqRel);
        slot.deadline > Instant::now()
    }

    fn release(&self, client: &str) {
        self.total.fetch_sub(1, Ordering::AcqRel);
        if let Entry::Occupied(mut held) = self.per_client.entry(client.to_string()) {
            *held.get_mut() -= 1;
            if *held.get() == 0 {
                held.remove();
            }
        }
    }

    /// Drops the filters past their deadline; returns how many.
    pub(super) fn sweep(&self, now: Instant) -> u64 {
        let mut expired = Vec::new();
        let mut freed = 0;
        self.filters.retain(|_, slot| {
            let live = slot.deadline > now;
            if !live {
                expired.push(slot.state.client.clone());
                freed += slot.bytes;
            }
            live
        });
        self.bytes.fetch_sub(freed, Ordering::AcqRel);
        for client in &expired {
            self.release(client);
        }
        expired.len() as u64
    }

    pub(super) fn live(&self) -> usize {
        self.total.load(Ordering::Acquire)
    }

    /// Bytes the live filters hold.
    pub(super) fn bytes(&self) -> usize {
        self.bytes.load(Ordering::Acquire)
    }
}

// ---------------------------------------------------------------- in Redis

const CREATE: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[3])
local expired = redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
local total = redis.call('ZCARD', KEYS[2])
if redis.call('ZCARD', KEYS[3]) >= tonumber(ARGV[5]) then return {2, total, expired} end
if total >= tonumber(ARGV[4]) then return {1, total, expired} end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ttl)
redis.call('ZADD', KEYS[2], now + ttl, ARGV[1])
redis.call('ZADD', KEYS[3], now + ttl, ARGV[1])
redis.call('PEXPIRE', KEYS[2], ttl)
redis.call('PEXPIRE', KEYS[3], ttl)
return {0, total + 1, expired}
"#;

const SAVE: &str = r#"
local cur = redis.call('GET', KEYS[1])
if not cur then return 0 end
if string.match(cur, '^(%d+) ') ~= ARGV[2] then return 1 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[4])
redis.call('SET', KEYS[1], ARGV[3], 'PX', ttl)
redis.call('ZADD', KEYS[2], now + ttl, ARGV[1])
redis.call('ZADD', KEYS[3], now + ttl, ARGV[1])
redis.call('PEXPIRE', KEYS[2], ttl)
redis.call('PEXPIRE', KEYS[3], ttl)
return 2
"#;

const REMOVE: &str = r#"
local n = redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
return n
"#;

/// Filters in Redis, shared by every replica that names the same network.
pub(super) struct RedisFilters {
    link: Arc<RedisLink>,
    /// `<prefix>:filters:v1:{<network>@<chain id>}:` (one hash tag: one Cluster slot).
    prefix: String,
    timeout: Duration,
    create: Script,
    save: Script,
    remove: Script,
}

impl RedisFilters {
    /// The filters of the network whose keys are under `space`.
    pub(super) fn new(link: Arc<RedisLink>, space: &str, timeout: Duration) -> RedisFilters {
        RedisFilters {
            prefix: link.key(&format!("filters:v1:{{{space}}}:")),
            link,
            timeout,
            create: Script::new(CREATE),
            save: Script::new(SAVE),
            remove: Script::new(REMOVE),
        }
    }

    /// The pending-hash stream beside these filters, on the same connection.
    pub(super) fn pending_log(&self, kept: usize) -> super::pending::SharedLog {
        super::pending::SharedLog::new(self.link.clone(), &self.prefix, kept, self.timeout)
    }

    fn keys(&self, id: &str, client: &str) -> [String; 3] {
        [
            format!("{}f:{id}", self.prefix),
            format!("{}all", self.prefix),
            format!("{}c:{client}", self.prefix),
        ]
    }

    async fn within<T>(
        &self,
        f: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, StoreError> {
        within(&self.link, self.timeout, f).await
    }

    async fn create(
        &self,
        id: &str,
        state: &State,
        bounds: Bounds,
    ) -> Result<(usize, u64), StoreError> {
        let [key, all, mine] = self.keys(id, &state.client);
        let mut call = self.create.prepare_invoke();
        call.key(key)
            .key(all)
            .key(mine)
            .arg(id)
            .arg(encode(0, state)?)
            .arg(millis(bounds.expiry))
            .arg(bounds.max_total)
            .arg(bounds.max_per_client);
        let mut conn = self.link.conn();
        let reply: Vec<i64> = self.within(call.invoke_async(&mut conn)).await?;
        match reply.as_slice() {
            [0, live, expired] => Ok((*live as usize, *expired as u64)),
            [1, ..] => Err(StoreError::Refused(Cap::Total(bounds.max_total))),
            [2, ..] => Err(StoreError::Refused(Cap::Client(bounds.max_per_client))),
            _ => Err(StoreError::Unavailable(format!(
                "redis answered the filter script with {reply:?}"
            ))),
        }
    }

    async fn load(&self, id: &str) -> Result<Option<(u64, State)>, StoreError> {
        let key = format!("{}f:{id}", self.prefix);
        let mut conn = self.link.conn();
        let value: Option<String> = self.within(conn.get(key)).await?;
        let Some(value) = value else {
            return Ok(None);
        };
        let filter = decode(&value);
        if filter.is_none() {
            self.link.invalid(ValueKind::Filter);
        }
        Ok(filter)
    }

    async fn save(
        &self,
        id: &str,
        version: u64,
        state: &State,
        expiry: Duration,
    ) -> Result<bool, StoreError> {
        let [key, all, mine] = self.keys(id, &state.client);
        let mut call = self.save.prepare_invoke();
        call.key(key)
            .key(all)
            .key(mine)
            .arg(id)
            .arg(version.to_string())
            .arg(encode(version + 1, state)?)
            .arg(millis(expiry));
        let mut conn = self.link.conn();
        let saved: i64 = self.within(call.invoke_async(&mut conn)).await?;
        Ok(saved == 2)
    }

    async fn remove(&self, id: &str, client: &str) -> Result<bool, StoreError> {
        let Some((_, state)) = self.load(id).await?.filter(|(_, s)| s.client == client) else {
            return Ok(false);
        };
        let [key, all, mine] = self.keys(id, &state.client);
        let mut call = self.remove.prepare_invoke();
        call.key(key).key(all).key(mine).arg(id);
        let mut conn = self.link.conn();
        let removed: i64 = self.within(call.invoke_async(&mut conn)).await?;
        Ok(removed > 0)
    }
}

/// `f`'s answer, or `Unavailable` when Redis fails, misses `timeout`, or is
/// skipped by the link's breaker.
pub(super) async fn within<T>(
    link: &RedisLink,
    timeout: Duration,
    f: impl std::future::Future<Output = redis::RedisResult<T>>,
) -> Result<T, StoreError> {
    link.call(timeout, f)
        .await
        .map_err(|e| match e.may_have_applied() {
            true => StoreError::Unknown(e.to_string()),
            false => StoreError::Unavailable(e.to_string()),
        })
}

fn millis(d: Duration) -> u64 {
    d.as_millis().clamp(1, u128::from(u64::MAX)) as u64
}

fn encode(version: u64, state: &State) -> Result<String, StoreError> {
    let json = serde_json::to_string(state)
        .map_err(|e| StoreError::Unavailable(format!("cannot encode a filter: {e}")))?;
    Ok(format!("{version} {json}"))
}

fn decode(value: &str) -> Option<(u64, State)> {
    let (version, json) = value.split_once(' ')?;
    Some((version.parse().ok()?, serde_json::from_str(json).ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filters::state::KindName;

    fn bounds(expiry: Duration) -> Bounds {
        Bounds {
            expiry,
            max_per_client: 2,
            max_total: 3,
            max_bytes: 1 << 20,
        }
    }

    fn filter(client: &str) -> State {
        State::new(client.into(), KindName::Block, None, 1)
    }

    #[test]
    fn caps_count_per_client_and_in_all_and_free_on_remove() {
        let l = Local::default();
        let b = bounds(Duration::from_secs(60));
        l.create("0x1", &filter("a"), b).unwrap();
        l.create("0x2", &filter("a"), b).unwrap();
        assert!(matches!(
            l.create("0x3", &filter("a"), b),
            Err(StoreError::Refused(Cap::Client(2)))
        ));
        l.create("0x3", &filter("b"), b).unwrap();
        assert!(matches!(
            l.create("0x4", &filter("c"), b),
            Err(StoreError::Refused(Cap::Total(3)))
        ));
        assert_eq!(l.live(), 3);
        assert!(
            l.per_client.get("c").is_none(),
            "a refused client leaves nothing behind"
        );
        assert!(!l.remove("0x1", "b"), "only its owner removes a filter");
        assert!(l.remove("0x1", "a"));
        assert!(!l.remove("0x1", "a"));
        l.create("0x5", &filter("a"), b).unwrap();
        assert_eq!(l.live(), 3);
    }

    #[test]
    fn a_save_after_another_poll_is_refused() {
        let l = Local::default();
        let b = bounds(Duration::from_secs(60));
        l.create("0x1", &filter("a"), b).unwrap();
        let (v, mut s) = l.load("0x1").unwrap();
        s.next = 9;
        assert!(l.save("0x1", v, &s, b));
        assert!(!l.save("0x1", v, &s, b), "the version moved on");
        assert_eq!(l.load("0x1").unwrap().1.next, 9);
    }

    #[test]
    fn bytes_are_counted_and_bounded() {
        let l = Local::default();
        let mut b = bounds(Duration::from_secs(60));
        l.create("0x1", &filter("a"), b).unwrap();
        let one = l.bytes();
        assert_eq!(one, weight(&filter("a")));
        b.max_bytes = one * 2 - 1;
        assert!(matches!(
            l.create("0x2", &filter("b"), b),
            Err(StoreError::Refused(Cap::Bytes(_)))
        ));
        let (v, mut s) = l.load("0x1").unwrap();
        s.logs = vec![serde_json::json!({"data": "0x".to_string() + &"ab".repeat(4096)})];
        s.recent.push_back((1, 1));
        assert!(l.save("0x1", v, &s, b));
        let (_, kept) = l.load("0x1").unwrap();
        assert!(
            kept.logs.is_empty() && kept.recent.is_empty(),
            "over the budget: no replay kept"
        );
        assert_eq!(l.bytes(), weight(&kept));
        assert!(l.remove("0x1", "a"));
        assert_eq!(l.bytes(), 0);
    }

    #[test]
    fn expired_filters_are_gone_and_swept() {
        let l = Local::default();
        let b = bounds(Duration::from_millis(1));
        l.create("0x1", &filter("a"), b).unwrap();
        let later = Instant::now() + Duration::from_millis(5);
        assert_eq!(l.sweep(later), 1);
        assert!(l.load("0x1").is_none());
        assert_eq!(l.live(), 0);
        assert!(l.per_client.is_empty());
    }

    #[test]
    fn encoding_round_trips() {
        let s = filter("ip:10.0.0.1");
        assert_eq!(decode(&encode(7, &s).unwrap()), Some((7, s)));
        assert_eq!(decode("x {}"), None);
    }
}
