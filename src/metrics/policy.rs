//! The families of the client policy (`crate::policy`): refusals by a rate
//! limit or a method rule, unknown keys, and Redis checks decided without
//! Redis.

use prometheus::{IntCounter, IntCounterVec, Registry};

use super::{counter, counter_vec};

pub struct PolicyMetrics {
    /// `rpcgate_policy_rate_limited_total{client}`: calls refused by a rate limit.
    pub rate_limited: IntCounterVec,
    /// `rpcgate_policy_blocked_total{client}`: calls to a method the client may not call.
    pub blocked: IntCounterVec,
    /// `rpcgate_policy_unauthorized_total`: requests with an unknown key, or
    /// with none where a key is required.
    pub unauthorized: IntCounter,
    /// `rpcgate_policy_redis_fallbacks_total`: rate-limit checks that Redis did
    /// not answer, decided by the fallback setting instead.
    pub redis_fallbacks: IntCounter,
}

impl PolicyMetrics {
    pub(super) fn register(r: &Registry) -> PolicyMetrics {
        PolicyMetrics {
            rate_limited: counter_vec(
                r,
                "rpcgate_policy_rate_limited_total",
                "Calls refused by a client's rate limit (requests or compute units).",
                &["client"],
            ),
            blocked: counter_vec(
                r,
                "rpcgate_policy_blocked_total",
                "Calls to a method the client may not call.",
                &["client"],
            ),
            unauthorized: counter(
                r,
                "rpcgate_policy_unauthorized_total",
                "Requests with an unknown API key, or without one where a key is required.",
            ),
            redis_fallbacks: counter(
                r,
                "rpcgate_policy_redis_fallbacks_total",
                "Rate-limit checks Redis did not answer, decided by the fallback setting.",
            ),
        }
    }
}
