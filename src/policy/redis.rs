//! Rate limits shared by gateway replicas, in Redis.
//!
//! The same GCRA as the local limiter, kept in Redis: one key per budget
//! holding its theoretical arrival time in microseconds. A message is judged
//! by one Lua script call, however many calls it holds: the script takes the
//! cost of each call in order and judges each against the budgets as the
//! earlier ones left them, then writes both keys once. So a 100-entry batch
//! is one round trip, not 100, and Redis runs it atomically: N replicas
//! charging the same client see one budget and never interleave a read and a
//! write. The script reads Redis's own clock (`TIME`), so replicas need no
//! clock agreement (this needs Redis 5 or later, which replicates script
//! effects). Both budgets (requests, compute units) are tested first and
//! charged only if both admit. Keys expire when their bucket has refilled,
//! so idle clients and IPs leave nothing behind; both keys of a bucket share
//! one hash tag (`{bucket}`).
//!
//! The connection, its deadline handling and the circuit breaker are the
//! shared [`RedisLink`]'s; a check that fails, times out or is skipped by an
//! open breaker is the caller's to decide (see `RedisFallback`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use redis::Script;

use super::local::Verdict;
use crate::config::{LimitsConfig, Rate};
use crate::redis_link::{LinkError, RedisLink};

const GCRA: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local ri, rb = tonumber(ARGV[1]), tonumber(ARGV[2])
local ci, cb = tonumber(ARGV[3]), tonumber(ARGV[4])
local function load(key)
  local tat = tonumber(redis.call('GET', key) or '0') or 0
  if tat < now then tat = now end
  return tat
end
local function probe(tat, interval, burst, n)
  if interval <= 0 or n <= 0 then return tat, 0 end
  if n > burst then return tat, -1 end
  local new_tat = tat + interval * n
  local over = new_tat - now - interval * burst
  if over > 0 then return tat, over end
  return new_tat, 0
end
local rtat, ctat = load(KEYS[1]), load(KEYS[2])
local rset, cset = false, false
local out = {}
for i = 5, #ARGV do
  local cost = tonumber(ARGV[i])
  local nr, rwait = probe(rtat, ri, rb, 1)
  local nc, cwait = probe(ctat, ci, cb, cost)
  if rwait < 0 or cwait < 0 then
    out[#out + 1] = 2
    out[#out + 1] = 0
  elseif rwait > 0 or cwait > 0 then
    out[#out + 1] = 1
    out[#out + 1] = math.max(rwait, cwait)
  else
    if nr ~= rtat then rtat = nr; rset = true end
    if nc ~= ctat then ctat = nc; cset = true end
    out[#out + 1] = 0
    out[#out + 1] = 0
  end
end
if rset then
  redis.call('SET', KEYS[1], string.format('%.0f', rtat), 'PX', math.ceil((rtat - now) / 1000) + 1)
end
if cset then
  redis.call('SET', KEYS[2], string.format('%.0f', ctat), 'PX', math.ceil((ctat - now) / 1000) + 1)
end
return out
"#;

/// Why Redis gave no verdict.
#[derive(Debug, thiserror::Error)]
pub enum SharedError {
    #[error(transparent)]
    Link(#[from] LinkError),
    #[error("redis answered the rate-limit script with {0:?}")]
    Unexpected(Vec<i64>),
}

pub struct RedisLimits {
    link: Arc<RedisLink>,
    script: Script,
    timeout: Duration,
    /// Whether the last check failed (for logging transitions only).
    down: AtomicBool,
}

impl RedisLimits {
    pub fn new(link: Arc<RedisLink>, timeout: Duration) -> RedisLimits {
        RedisLimits {
            link,
            script: Script::new(GCRA),
            timeout,
            down: AtomicBool::new(false),
        }
    }

    /// Notes a failed check; true when Redis was up until now.
    pub fn mark_down(&self) -> bool {
        !self.down.swap(true, Ordering::Relaxed)
    }

    /// Notes an answered check; true when Redis was down until now.
    pub fn mark_up(&self) -> bool {
        self.down.load(Ordering::Relaxed) && self.down.swap(false, Ordering::Relaxed)
    }

    /// Charges calls of `costs` units, in order, to `bucket` (a client's
    /// name, or `ip:<addr>` for the anonymous tier): one verdict per cost,
    /// in one script call.
    pub async fn check_all(
        &self,
        bucket: &str,
        limits: &LimitsConfig,
        costs: &[u32],
    ) -> Result<Vec<Verdict>, SharedError> {
        let (ri, rb) = params(limits.requests.as_ref());
        let (ci, cb) = params(limits.compute_units.as_ref());
        let mut invocation = self.script.prepare_invoke();
        invocation
            .key(self.link.key(&format!("rl:{{{bucket}}}:req")))
            .key(self.link.key(&format!("rl:{{{bucket}}}:cu")))
            .arg(ri)
            .arg(rb)
            .arg(ci)
            .arg(cb);
        for cost in costs {
            invocation.arg(*cost);
        }
        let mut conn = self.link.conn();
        let reply: Vec<i64> = self
            .link
            .call(self.timeout, invocation.invoke_async(&mut conn))
            .await?;
        verdicts(&reply, costs.len()).ok_or(SharedError::Unexpected(reply))
    }
}

/// The script's answer read strictly: one pair per cost, or nothing.
fn verdicts(reply: &[i64], n: usize) -> Option<Vec<Verdict>> {
    if reply.len() != 2 * n {
        return None;
    }
    reply
        .chunks_exact(2)
        .map(|pair| match pair {
            [0, _] => Some(Verdict::Admit),
            [1, wait_us] => Some(Verdict::Wait(Duration::from_micros(
                (*wait_us).max(0) as u64
            ))),
            [2, _] => Some(Verdict::Never),
            _ => None,
        })
        .collect()
}

/// Emission interval in microseconds (0: unlimited) and burst.
fn params(rate: Option<&Rate>) -> (u64, u32) {
    match rate {
        Some(r) => ((r.interval().as_micros() as u64).max(1), r.burst),
        None => (0, 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_answers_are_read_strictly() {
        assert_eq!(
            verdicts(&[0, 0, 1, 5, 2, 0], 3),
            Some(vec![
                Verdict::Admit,
                Verdict::Wait(Duration::from_micros(5)),
                Verdict::Never
            ])
        );
        assert_eq!(verdicts(&[0, 0], 2), None);
        assert_eq!(verdicts(&[7, 0], 1), None);
    }
}
