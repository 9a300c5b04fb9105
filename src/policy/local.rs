//! Process-local rate limits: governor's GCRA, one state word per bucket.
//!
//! GCRA keeps a single "theoretical arrival time" per bucket and updates it
//! with one compare-and-swap, so a check takes no lock and allocates nothing
//! (a keyed bucket's first call from a new IP inserts one map entry). A named
//! client has its own direct limiter; the anonymous tier has one keyed by
//! client IP (IPv6 by /64, the block one subscriber usually holds, so that
//! rotating addresses within it buys nothing). Keyed state of idle IPs is
//! dropped by [`LocalLimits::forget_idle`], which the gateway runs on a timer,
//! so the map holds only IPs seen within one refill period.
//!
//! The clock is a type parameter so tests can drive it by hand
//! (`governor::clock::FakeRelativeClock`) and check exact admissions.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::DashMapStateStore;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};

use crate::config::{LimitsConfig, Rate};

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Admit,
    /// Over the limit; this much later it would pass.
    Wait(Duration),
    /// The cost is over the burst: it can never pass.
    Never,
}

type Direct<C> = RateLimiter<NotKeyed, InMemoryState, C, NoOpMiddleware<<C as Clock>::Instant>>;
type PerIp<C> =
    RateLimiter<IpAddr, DashMapStateStore<IpAddr>, C, NoOpMiddleware<<C as Clock>::Instant>>;

enum Bucket<C: Clock> {
    Direct(Direct<C>),
    PerIp(PerIp<C>),
}

impl<C: Clock + Clone> Bucket<C> {
    fn new(rate: &Rate, per_ip: bool, clock: &C) -> Bucket<C> {
        let burst = NonZeroU32::new(rate.burst).unwrap_or(NonZeroU32::MIN);
        let quota = Quota::with_period(rate.interval())
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MAX))
            .allow_burst(burst);
        if per_ip {
            Bucket::PerIp(RateLimiter::new(
                quota,
                DashMapStateStore::default(),
                clock.clone(),
            ))
        } else {
            Bucket::Direct(RateLimiter::direct_with_clock(quota, clock.clone()))
        }
    }

    fn take(&self, ip: &IpAddr, n: u32) -> Verdict {
        let Some(n) = NonZeroU32::new(n) else {
            return Verdict::Admit;
        };
        let (outcome, now) = match self {
            Bucket::Direct(l) => (l.check_n(n), l.clock().now()),
            Bucket::PerIp(l) => (l.check_key_n(ip, n), l.clock().now()),
        };
        match outcome {
            Ok(Ok(())) => Verdict::Admit,
            Ok(Err(not_until)) => Verdict::Wait(not_until.wait_time_from(now)),
            Err(_) => Verdict::Never,
        }
    }

    fn forget_idle(&self) {
        if let Bucket::PerIp(l) = self {
            l.retain_recent();
            l.shrink_to_fit();
        }
    }
}

/// The anonymous tier's key for an IP: IPv4 as is, IPv6 by /64.
pub fn ip_bucket(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => IpAddr::V6((u128::from(v6) & (u128::MAX << 64)).into()),
        v4 => v4,
    }
}

/// One tier's two budgets: requests, and compute units.
pub struct LocalLimits<C: Clock = DefaultClock> {
    requests: Option<Bucket<C>>,
    units: Option<Bucket<C>>,
}

impl<C: Clock + Clone> LocalLimits<C> {
    pub fn new(config: &LimitsConfig, per_ip: bool, clock: &C) -> LocalLimits<C> {
        LocalLimits {
            requests: config
                .requests
                .as_ref()
                .map(|r| Bucket::new(r, per_ip, clock)),
            units: config
                .compute_units
                .as_ref()
                .map(|r| Bucket::new(r, per_ip, clock)),
        }
    }

    pub fn is_unlimited(&self) -> bool {
        self.requests.is_none() && self.units.is_none()
    }

    /// Charges one request of `cost` units. A request refused by the unit
    /// budget has still used its request slot: governor cannot test two
    /// buckets as one, and counting refused requests is the stricter error.
    pub fn check(&self, ip: IpAddr, cost: u32) -> Verdict {
        let ip = ip_bucket(ip);
        if let Some(b) = &self.requests {
            let v = b.take(&ip, 1);
            if v != Verdict::Admit {
                return v;
            }
        }
        match &self.units {
            Some(b) => b.take(&ip, cost),
            None => Verdict::Admit,
        }
    }

    /// Drops per-IP state that has fully refilled (it would admit a full burst anyway).
    pub fn forget_idle(&self) {
        for b in [&self.requests, &self.units].into_iter().flatten() {
            b.forget_idle();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use governor::clock::FakeRelativeClock;

    fn limits(
        requests: Option<(f64, u32)>,
        units: Option<(f64, u32)>,
        per_ip: bool,
    ) -> (LocalLimits<FakeRelativeClock>, FakeRelativeClock) {
        let clock = FakeRelativeClock::default();
        let rate = |(per_second, burst)| Rate { per_second, burst };
        let config = LimitsConfig {
            requests: requests.map(rate),
            compute_units: units.map(rate),
        };
        (LocalLimits::new(&config, per_ip, &clock), clock)
    }

    const IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));

    #[test]
    fn burst_then_refill() {
        let (l, clock) = limits(Some((2.0, 3)), None, false);
        for _ in 0..3 {
            assert_eq!(l.check(IP, 1), Verdict::Admit);
        }
        assert_eq!(l.check(IP, 1), Verdict::Wait(Duration::from_millis(500)));
        clock.advance(Duration::from_millis(499));
        assert!(matches!(l.check(IP, 1), Verdict::Wait(_)));
        clock.advance(Duration::from_millis(1));
        assert_eq!(l.check(IP, 1), Verdict::Admit);
        assert!(matches!(l.check(IP, 1), Verdict::Wait(_)));
        clock.advance(Duration::from_secs(10));
        for _ in 0..3 {
            assert_eq!(l.check(IP, 1), Verdict::Admit);
        }
        assert!(matches!(l.check(IP, 1), Verdict::Wait(_)));
    }

    #[test]
    fn cost_weighting() {
        let (l, clock) = limits(None, Some((10.0, 100)), false);
        assert_eq!(l.check(IP, 75), Verdict::Admit);
        assert_eq!(l.check(IP, 25), Verdict::Admit);
        assert_eq!(l.check(IP, 1), Verdict::Wait(Duration::from_millis(100)));
        assert_eq!(l.check(IP, 101), Verdict::Never);
        clock.advance(Duration::from_secs(1));
        // Ten units came back: a cheap call passes, an expensive one does not.
        assert_eq!(l.check(IP, 75), Verdict::Wait(Duration::from_millis(6500)));
        assert_eq!(l.check(IP, 10), Verdict::Admit);
        assert!(matches!(l.check(IP, 1), Verdict::Wait(_)));
        assert_eq!(l.check(IP, 0), Verdict::Admit);
    }

    #[test]
    fn anonymous_buckets_are_per_ip_and_per_ipv6_64() {
        let (l, _clock) = limits(Some((1.0, 1)), None, true);
        assert_eq!(l.check(IP, 1), Verdict::Admit);
        assert!(matches!(l.check(IP, 1), Verdict::Wait(_)));
        assert_eq!(l.check("192.0.2.2".parse().unwrap(), 1), Verdict::Admit);
        assert_eq!(l.check("2001:db8::1".parse().unwrap(), 1), Verdict::Admit);
        assert!(matches!(
            l.check("2001:db8::ffff:1".parse().unwrap(), 1),
            Verdict::Wait(_)
        ));
        assert_eq!(
            l.check("2001:db8:0:1::1".parse().unwrap(), 1),
            Verdict::Admit
        );
    }
}
