//! A cap on open connections per client IP.
//!
//! The listener's global cap (`server.max_connections`) keeps the process
//! alive; this one keeps a single address from taking all of it. Counted at
//! accept, by the socket's peer address (headers are not read yet), so
//! trusted proxies are exempt there: behind an Ingress every client shares
//! the proxy's address. A WebSocket outlives its request, so an upgrade
//! that came through a trusted proxy is counted again, by the forwarded
//! client address the policy resolved ([`ConnGuard::is_exempt`] tells the
//! edge which connections need it); a direct client's socket already holds
//! its slot. IPv6 is counted by /64, as the rate limits count it:
//! one subscriber usually holds a whole /64, so capping single addresses
//! would let one host take every slot. An address's entry is removed when
//! its last connection closes, so the map holds only addresses with open
//! connections.

use std::net::IpAddr;
use std::sync::Arc;

use dashmap::DashMap;

use super::local::ip_bucket;
use crate::config::{canonical_ip, IpNet};

pub struct ConnLimits {
    max: u32,
    exempt: Vec<IpNet>,
    open: DashMap<IpAddr, u32>,
}

/// One counted connection; closing it (dropping this) gives its slot back.
pub struct ConnGuard {
    limits: Arc<ConnLimits>,
    ip: Option<IpAddr>,
}

impl ConnLimits {
    pub fn new(max: u32, exempt: Vec<IpNet>) -> ConnLimits {
        ConnLimits {
            max,
            exempt,
            open: DashMap::new(),
        }
    }

    /// A slot for a connection from `ip`, or `None` when it has `max` open.
    pub fn try_open(self: &Arc<Self>, ip: IpAddr) -> Option<ConnGuard> {
        let ip = canonical_ip(ip);
        if self.exempt(ip) {
            return Some(ConnGuard {
                limits: self.clone(),
                ip: None,
            });
        }
        let ip = ip_bucket(ip);
        let mut count = self.open.entry(ip).or_insert(0);
        if *count >= self.max {
            return None;
        }
        *count += 1;
        Some(ConnGuard {
            limits: self.clone(),
            ip: Some(ip),
        })
    }

    /// Whether `ip` is a trusted proxy's (its connections are not counted).
    pub fn exempt(&self, ip: IpAddr) -> bool {
        let ip = canonical_ip(ip);
        self.exempt.iter().any(|n| n.contains(&ip))
    }

    /// Addresses with open connections (for tests and metrics).
    pub fn tracked(&self) -> usize {
        self.open.len()
    }
}

impl ConnGuard {
    /// A trusted proxy's connection: counted for nobody.
    pub fn is_exempt(&self) -> bool {
        self.ip.is_none()
    }
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        if let Some(ip) = self.ip {
            self.limits.open.remove_if_mut(&ip, |_, n| {
                *n = n.saturating_sub(1);
                *n == 0
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cap_per_ip_and_release() {
        let limits = Arc::new(ConnLimits::new(
            2,
            vec![IpNet::new("10.0.0.1".parse().unwrap(), 32).unwrap()],
        ));
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let g1 = limits.try_open(a).unwrap();
        let g2 = limits.try_open(a).unwrap();
        assert!(limits.try_open(a).is_none());
        assert!(limits.try_open("192.0.2.2".parse().unwrap()).is_some());
        drop(g1);
        let g3 = limits.try_open(a).unwrap();
        drop((g2, g3));
        assert_eq!(limits.tracked(), 0);
        let proxies: Vec<_> = (0..5)
            .map(|_| limits.try_open("10.0.0.1".parse().unwrap()).unwrap())
            .collect();
        assert_eq!(proxies.len(), 5);
    }

    #[test]
    fn ipv6_is_capped_per_64() {
        let limits = Arc::new(ConnLimits::new(2, Vec::new()));
        let g1 = limits.try_open("2001:db8:1:2::1".parse().unwrap()).unwrap();
        let g2 = limits
            .try_open("2001:db8:1:2::ffff:2".parse().unwrap())
            .unwrap();
        // A third address of the same /64 shares its two slots.
        assert!(limits
            .try_open("2001:db8:1:2:aaaa::3".parse().unwrap())
            .is_none());
        assert!(limits
            .try_open("2001:db8:1:3::1".parse().unwrap())
            .is_some());
        drop((g1, g2));
        assert_eq!(limits.tracked(), 0);
    }
}
