//! The families of the shared Redis connection (`crate::redis_link`): its
//! circuit breaker, the calls it did not make or that failed, and values read
//! from Redis that did not pass their check.

use prometheus::{IntCounter, IntCounterVec, IntGauge, Registry};

use super::{counter, counter_vec, gauge_vec};

pub struct RedisMetrics {
    /// `rpcgate_redis_breaker_open`: 1 while the breaker skips Redis.
    pub breaker_open: IntGauge,
    /// `rpcgate_redis_breaker_opened_total`: times the breaker opened.
    pub breaker_opened: IntCounter,
    /// `rpcgate_redis_skipped_total`: calls not sent because the breaker was
    /// open (each decided by its fallback at once).
    pub skipped: IntCounter,
    /// `rpcgate_redis_failures_total`: calls sent that failed or missed
    /// their deadline (each waited for Redis).
    pub failures: IntCounter,
    /// `rpcgate_redis_invalid_values_total{kind}`: values read from Redis
    /// that did not parse as what was written, refused and not served.
    pub invalid: IntCounterVec,
}

impl RedisMetrics {
    pub(super) fn register(r: &Registry) -> RedisMetrics {
        let open = gauge_vec(
            r,
            "rpcgate_redis_breaker_open",
            "1 while the Redis circuit breaker is open (Redis skipped, fallbacks used).",
            &[],
        );
        RedisMetrics {
            breaker_open: open.with_label_values(&[] as &[&str]),
            breaker_opened: counter(
                r,
                "rpcgate_redis_breaker_opened_total",
                "Times the Redis circuit breaker opened after failed or slow calls.",
            ),
            skipped: counter(
                r,
                "rpcgate_redis_skipped_total",
                "Redis calls not made because the breaker was open.",
            ),
            failures: counter(
                r,
                "rpcgate_redis_failures_total",
                "Redis calls that failed or missed their deadline.",
            ),
            invalid: counter_vec(
                r,
                "rpcgate_redis_invalid_values_total",
                "Values read from Redis that failed their check and were not served (kind: cache, filter, pending, send).",
                &["kind"],
            ),
        }
    }
}
