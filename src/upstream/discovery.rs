//! DNS discovery: backends found by resolving a name, typically the headless
//! Service of a Geth StatefulSet (`geth-headless.web3.svc.cluster.local`,
//! one A record per ready pod).
//!
//! One control loop per discover group re-resolves the name every
//! `interval` and, when the set of addresses changes, hands the new list of
//! upstreams to the gateway, which rebuilds that network around the trackers
//! it keeps (see `Network::start_after`). New addresses join like any new
//! backend: not eligible until their chain id and head are checked. Vanished
//! addresses leave the next view; requests already sent to them finish on
//! the `Arc<Backend>` they hold, which is their drain.
//!
//! A name with no records means no backends (a StatefulSet scaled to zero);
//! any other DNS failure keeps the last known set, so a resolver hiccup never
//! empties a network.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::{Resolver, TokioResolver};

use crate::config::{DiscoverConfig, UpstreamConfig};

/// Receives the upstreams of a group each time they change.
pub type Publish = Arc<dyn Fn(Vec<UpstreamConfig>) + Send + Sync>;

/// Resolves `group` until the task is aborted.
pub async fn run(network: String, group: DiscoverConfig, publish: Publish) {
    let resolver = match resolver(&group) {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(%network, group = %group.name, error = %e, "DNS discovery cannot start");
            return;
        }
    };
    let mut known: Option<BTreeSet<IpAddr>> = None;
    let mut tick = tokio::time::interval(group.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let found = match resolver.lookup_ip(group.dns.as_str()).await {
            Ok(ips) => ips.iter().collect::<BTreeSet<IpAddr>>(),
            Err(e) if e.is_no_records_found() => BTreeSet::new(),
            Err(e) => {
                tracing::warn!(%network, dns = %group.dns, error = %e, "DNS lookup failed; keeping the last known backends");
                continue;
            }
        };
        if known.as_ref() == Some(&found) {
            continue;
        }
        tracing::info!(%network, dns = %group.dns, addresses = ?found, "discovered backends changed");
        publish(upstreams(&group, &found));
        known = Some(found);
    }
}

/// One upstream per address, named `<group>-<address>`.
pub fn upstreams(group: &DiscoverConfig, addresses: &BTreeSet<IpAddr>) -> Vec<UpstreamConfig> {
    addresses
        .iter()
        .map(|ip| {
            let host = match ip {
                IpAddr::V4(v4) => v4.to_string(),
                IpAddr::V6(v6) => format!("[{v6}]"),
            };
            let uri = |scheme: &str, port: u16| -> http::Uri {
                format!("{scheme}://{host}:{port}")
                    .parse()
                    .expect("an address and a port make a URI")
            };
            UpstreamConfig {
                name: format!("{}-{ip}", group.name),
                http: uri("http", group.http_port),
                ws: group.ws_port.map(|p| uri("ws", p)),
                headers: http::HeaderMap::new(),
                tier: Default::default(),
                state_history: None,
                tls: None,
            }
        })
        .collect()
}

fn resolver(group: &DiscoverConfig) -> Result<TokioResolver, String> {
    let mut builder = match group.resolver {
        Some(addr) => {
            // The name server may listen on any port (a test's, a sidecar's).
            let mut udp = ConnectionConfig::udp();
            udp.port = addr.port();
            let server = NameServerConfig::new(addr.ip(), true, vec![udp]);
            let config = ResolverConfig::from_name_servers(vec![server]);
            Resolver::builder_with_config(config, TokioRuntimeProvider::default())
        }
        None => Resolver::builder_tokio().map_err(|e| e.to_string())?,
    };
    let opts = builder.options_mut();
    // Every tick must see the current records: no cache, no hosts file.
    opts.cache_size = 0;
    opts.use_hosts_file = ResolveHosts::Never;
    opts.timeout = Duration::from_secs(2);
    opts.attempts = 2;
    builder.build().map_err(|e| e.to_string())
}
