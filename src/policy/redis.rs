//! Rate limits shared by gateway replicas, in Redis.
//!
//! The same GCRA as the local limiter, kept in Redis: one key per budget
//! holding its theoretical arrival time in microseconds. Each check is one
//! Lua script, which Redis runs atomically, so N replicas charging the same
//! client see one budget and never interleave a read and a write. The script
//! reads Redis's own clock (`TIME`), so replicas need no clock agreement
//! (this needs Redis 5 or later, which replicates script effects). Both
//! budgets (requests, compute units) are tested first and charged only if
//! both admit. Keys expire when their bucket has refilled, so idle clients
//! and IPs leave nothing behind.
//!
//! The connection is a redis `ConnectionManager`, created lazily (the
//! gateway starts even while Redis is down) and reconnecting on its own
//! after errors. Every check has a deadline (`policy.redis_timeout`); a check
//! that fails or misses it is the caller's to decide (see `RedisFallback`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::Script;

use super::local::Verdict;
use crate::config::{LimitsConfig, Rate};

const GCRA: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local function probe(key, interval, burst, n)
  if interval <= 0 or n <= 0 then return nil, 0 end
  if n > burst then return nil, -1 end
  local tat = tonumber(redis.call('GET', key) or '0') or 0
  if tat < now then tat = now end
  local new_tat = tat + interval * n
  local over = new_tat - now - interval * burst
  if over > 0 then return nil, over end
  return new_tat, 0
end
local cost = tonumber(ARGV[5])
local rtat, rwait = probe(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), 1)
local ctat, cwait = probe(KEYS[2], tonumber(ARGV[3]), tonumber(ARGV[4]), cost)
if rwait < 0 or cwait < 0 then return {2, 0} end
if rwait > 0 or cwait > 0 then return {1, math.max(rwait, cwait)} end
if rtat then
  redis.call('SET', KEYS[1], string.format('%.0f', rtat), 'PX', math.ceil((rtat - now) / 1000) + 1)
end
if ctat then
  redis.call('SET', KEYS[2], string.format('%.0f', ctat), 'PX', math.ceil((ctat - now) / 1000) + 1)
end
return {0, 0}
"#;

/// Why Redis gave no verdict.
#[derive(Debug, thiserror::Error)]
pub enum SharedError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("redis did not answer within {0:?}")]
    Timeout(Duration),
    #[error("redis answered the rate-limit script with {0:?}")]
    Unexpected(Vec<i64>),
}

pub struct RedisLimits {
    conn: ConnectionManager,
    script: Script,
    timeout: Duration,
    /// Whether the last check failed (for logging transitions only).
    down: AtomicBool,
}

impl RedisLimits {
    /// Does not connect yet: the first check does, and later ones reconnect.
    pub fn new(url: &str, timeout: Duration) -> Result<RedisLimits, redis::RedisError> {
        let client = redis::Client::open(url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_secs(1));
        Ok(RedisLimits {
            conn: ConnectionManager::new_lazy_with_config(client, config)?,
            script: Script::new(GCRA),
            timeout,
            down: AtomicBool::new(false),
        })
    }

    /// Notes a failed check; true when Redis was up until now.
    pub fn mark_down(&self) -> bool {
        !self.down.swap(true, Ordering::Relaxed)
    }

    /// Notes an answered check; true when Redis was down until now.
    pub fn mark_up(&self) -> bool {
        self.down.load(Ordering::Relaxed) && self.down.swap(false, Ordering::Relaxed)
    }

    /// Charges one request of `cost` units to `bucket` (a client's name, or
    /// `ip:<addr>` for the anonymous tier).
    pub async fn check(
        &self,
        bucket: &str,
        limits: &LimitsConfig,
        cost: u32,
    ) -> Result<Verdict, SharedError> {
        let (ri, rb) = params(limits.requests.as_ref());
        let (ci, cb) = params(limits.compute_units.as_ref());
        // One hash tag: both keys live on the same Redis Cluster slot.
        let mut invocation = self.script.prepare_invoke();
        invocation
            .key(format!("rpcgate:rl:{{{bucket}}}:req"))
            .key(format!("rpcgate:rl:{{{bucket}}}:cu"))
            .arg(ri)
            .arg(rb)
            .arg(ci)
            .arg(cb)
            .arg(cost);
        let mut conn = self.conn.clone();
        let reply: Vec<i64> =
            tokio::time::timeout(self.timeout, invocation.invoke_async(&mut conn))
                .await
                .map_err(|_| SharedError::Timeout(self.timeout))??;
        match reply.as_slice() {
            [0, _] => Ok(Verdict::Admit),
            [1, wait_us] => Ok(Verdict::Wait(Duration::from_micros(
                (*wait_us).max(0) as u64
            ))),
            [2, _] => Ok(Verdict::Never),
            _ => Err(SharedError::Unexpected(reply)),
        }
    }
}

/// Emission interval in microseconds (0: unlimited) and burst.
fn params(rate: Option<&Rate>) -> (u64, u32) {
    match rate {
        Some(r) => ((r.interval().as_micros() as u64).max(1), r.burst),
        None => (0, 0),
    }
}
