//! Redis shared by gateway replicas, against real redis-server processes:
//! over TLS with an ACL user ([`tls_acl`]), frozen under load behind the
//! circuit breaker ([`breaker`]), one script call per batch and values
//! checked before they are served ([`hygiene`]), and read-your-writes across
//! two gateways ([`replicas`]).

mod breaker;
mod hygiene;
mod replicas;
mod tls_acl;

use rpcgate_fleet::Fleet;

use crate::support::{fleet_ups, yaml};

/// A config for `fleet` with the top-level `redis` lines (indented under
/// `redis:`) and `rest` (more top-level sections) appended.
pub fn with_redis(fleet: &Fleet, network: &str, redis: &[String], rest: &str) -> String {
    let mut y = yaml(fleet.chain_id(), &fleet_ups(fleet), network);
    y.push_str("redis:\n");
    for line in redis {
        y.push_str(&format!("  {line}\n"));
    }
    y.push_str(rest);
    y
}
