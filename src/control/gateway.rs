//! What a running gateway serves, and the control-plane operations that
//! change it: config reloads and DNS discovery.
//!
//! Both build a new [`NetworkTable`] from the current config plus the discovered
//! backends, reusing every network (and every backend's tracker) that stays
//! the same, then swap it in with one atomic store. Requests read the routes
//! with one atomic load and never wait on these operations; the operations
//! serialize among themselves on a mutex the request path never touches.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use parking_lot::Mutex;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::beacon::BeaconNetworks;
use crate::config::{
    Config, DiscoverConfig, NetworkConfig, PolicyConfig, RedisConfig, ServerConfig, UpstreamConfig,
    RESTART_ONLY_KEYS,
};
use crate::metrics::Metrics;
use crate::network::Network;
use crate::policy::ClientPolicy;
use crate::redis_link::{LinkError, RedisLink};
use crate::subscriptions::{Hubs, NetworkSource};
use crate::upstream::{discovery, http_client, HttpClient};

/// The table of networks by path: which network answers which path, and
/// the settings every request reads with it (one snapshot per request).
pub struct NetworkTable {
    pub networks: HashMap<String, Arc<Network>>,
    pub default: Option<Arc<Network>>,
    /// The `server:` keys read per request.
    pub server: ServerConfig,
    pub policy: Arc<ClientPolicy>,
    /// What `policy` was built from, so a reload can tell whether it changed.
    policy_source: (PolicyConfig, Option<RedisConfig>),
    /// The one Redis connection (restart-only: a reload keeps it).
    pub redis: Option<Arc<RedisLink>>,
}

/// Why a gateway could not start, or a config could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Redis(#[from] LinkError),
}

/// One discovery loop per discover group; each holds only a weak reference,
/// so a dropped gateway ends them.
fn spawn_discovery(gateway: &Arc<Gateway>, config: &Config) -> Vec<JoinHandle<()>> {
    let mut tasks = Vec::new();
    for net in &config.networks {
        for group in &net.discover {
            let weak: Weak<Gateway> = Arc::downgrade(gateway);
            let (name, g) = (net.name.clone(), group.clone());
            let publish: discovery::Publish = Arc::new(move |ups| {
                if let Some(gateway) = weak.upgrade() {
                    gateway.discovered(&name, &g, ups);
                }
            });
            tasks.push(tokio::spawn(discovery::run(
                net.name.clone(),
                group.clone(),
                publish,
            )));
        }
    }
    tasks
}

impl NetworkTable {
    /// The routes of `config` plus the `discovered` backends, reusing what
    /// `old` already runs.
    fn build(
        config: &Config,
        client: &HttpClient,
        old: Option<&NetworkTable>,
        discovered: &Discovered,
        metrics: &Metrics,
    ) -> Result<NetworkTable, StartError> {
        // The policy keeps its limiter state (budgets spent, connections
        // open) across a reload that does not change it.
        let redis = match old {
            Some(o) => o.redis.clone(),
            None => match &config.redis {
                Some(r) => Some(Arc::new(RedisLink::new(r, &metrics.redis)?)),
                None => None,
            },
        };
        let policy_source = (config.policy.clone(), config.redis.clone());
        let policy = match old {
            Some(o) if o.policy_source == policy_source => o.policy.clone(),
            _ => {
                let policy = Arc::new(ClientPolicy::new(
                    &config.policy,
                    redis.as_ref(),
                    &metrics.policy,
                ));
                forget_idle_clients(Arc::downgrade(&policy));
                policy
            }
        };
        let mut networks = HashMap::new();
        let mut default = None;
        for net in &config.networks {
            let net = &with_discovered(net, discovered);
            let previous = old.and_then(|o| o.networks.get(&net.name));
            let network = match previous {
                Some(p) if p.config == *net => p.clone(),
                _ => {
                    crate::subscriptions::network_started(metrics, &net.name);
                    Arc::new(Network::start_after(
                        net.clone(),
                        client,
                        redis.as_ref(),
                        metrics,
                        previous.map(|p| &**p),
                    ))
                }
            };
            if net.default {
                default = Some(network.clone());
            }
            networks.insert(net.name.clone(), network);
        }
        Ok(NetworkTable {
            networks,
            default,
            server: config.server.clone(),
            policy,
            policy_source,
            redis,
        })
    }

    /// The network a path names, and the API key in its last segment:
    /// `/`, `/<network>`, `/<network>/<key>` (trailing slashes ignored).
    pub fn resolve<'p>(&self, path: &'p str) -> Option<(&Arc<Network>, Option<&'p str>)> {
        let path = path.trim_start_matches('/').trim_end_matches('/');
        if path.is_empty() {
            return self.default.as_ref().map(|n| (n, None));
        }
        match path.split_once('/') {
            None => self.networks.get(path).map(|n| (n, None)),
            Some((name, key)) if !key.is_empty() && !key.contains('/') => {
                self.networks.get(name).map(|n| (n, Some(key)))
            }
            Some(_) => None,
        }
    }
}

/// Discovered upstreams, by network and discover group (with the group's
/// config, so a reload that changes the group drops what it found).
type Discovered = HashMap<(String, String), (DiscoverConfig, Vec<UpstreamConfig>)>;

/// The network's configured upstreams followed by those its groups found.
fn with_discovered(net: &NetworkConfig, discovered: &Discovered) -> NetworkConfig {
    let mut net = net.clone();
    for group in &net.discover {
        if let Some((cfg, ups)) = discovered.get(&(net.name.clone(), group.name.clone())) {
            if cfg == group {
                net.upstreams.extend(ups.iter().cloned());
            }
        }
    }
    net
}

/// Control-plane state: changed only by reloads and discovery, one at a time.
struct Control {
    config: Config,
    discovered: Discovered,
    discovery: Vec<JoinHandle<()>>,
}

/// What a running gateway serves.
pub struct Gateway {
    routes: ArcSwap<NetworkTable>,
    control: Mutex<Control>,
    client: HttpClient,
    /// Its registry: every component of it counts here, and `/metrics` reads it.
    metrics: Metrics,
    /// The config the listeners bound and the logger started with: a reload
    /// cannot change its restart-only keys (see `config::restart`).
    started: Config,
    /// Set when shutdown begins: readiness turns false at once.
    pub(crate) draining: AtomicBool,
    pub reloads: ReloadCounters,
    /// Client subscriptions and their upstream feeds, per network.
    subscriptions: Hubs,
    /// The `kind: beacon` networks, started once (restart-only but for
    /// their `paths:`, which a reload applies).
    beacon: BeaconNetworks,
    /// Turns true when shutdown begins. Every open client WebSocket holds a
    /// receiver: it says goodbye (1001) on the change, and the listener's
    /// drain waits until every receiver is gone.
    pub(crate) closing: watch::Sender<bool>,
}

/// How many reloads took effect and how many were refused; and, per
/// restart-only key, how many applied reloads changed it to no effect.
#[derive(Default)]
pub struct ReloadCounters {
    pub applied: AtomicU64,
    pub refused: AtomicU64,
    /// By the key's position in [`RESTART_ONLY_KEYS`].
    restart_required: [AtomicU64; RESTART_ONLY_KEYS.len()],
}

impl ReloadCounters {
    /// Reloads that changed `key` (a restart-only key) while the old value stayed.
    pub fn restart_required(&self, key: &str) -> u64 {
        RESTART_ONLY_KEYS
            .iter()
            .position(|k| *k == key)
            .map_or(0, |i| self.restart_required[i].load(Ordering::Relaxed))
    }

    /// Every restart-only key and its count, for `/metrics`.
    pub fn restart_required_by_key(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        RESTART_ONLY_KEYS
            .iter()
            .zip(&self.restart_required)
            .map(|(k, n)| (*k, n.load(Ordering::Relaxed)))
    }

    fn count_restart_required(&self, key: &str) {
        if let Some(i) = RESTART_ONLY_KEYS.iter().position(|k| *k == key) {
            self.restart_required[i].fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Gateway {
    /// Starts the networks (their head tracking begins at once), the client
    /// policy and DNS discovery, counting in `metrics` (this gateway's own).
    pub fn start(config: &Config, metrics: Metrics) -> Result<Arc<Gateway>, StartError> {
        let client = http_client();
        let discovered = Discovered::new();
        let routes = NetworkTable::build(config, &client, None, &discovered, &metrics)?;
        apply_memory_bounds(config);
        let gateway = Arc::new_cyclic(|weak: &Weak<Gateway>| Gateway {
            subscriptions: Hubs::new(network_source(weak.clone()), metrics.clone()),
            beacon: BeaconNetworks::start(&config.beacon, &metrics),
            closing: watch::channel(false).0,
            routes: ArcSwap::from_pointee(routes),
            control: Mutex::new(Control {
                config: config.clone(),
                discovered,
                discovery: Vec::new(),
            }),
            client,
            metrics,
            started: config.clone(),
            draining: AtomicBool::new(false),
            reloads: ReloadCounters::default(),
        });
        let mut control = gateway.control.lock();
        control.discovery = spawn_discovery(&gateway, config);
        drop(control);
        super::admin::register_state(&gateway);
        super::pending_feed::spawn(Arc::downgrade(&gateway));
        Ok(gateway)
    }

    /// A discover group found a new set of upstreams.
    fn discovered(&self, network: &str, group: &DiscoverConfig, ups: Vec<UpstreamConfig>) {
        let mut control = self.control.lock();
        let key = (network.to_string(), group.name.clone());
        control.discovered.insert(key, (group.clone(), ups));
        let old = self.table();
        // The policy is reused from `old`, so this does not fail in
        // practice; if it did, the old routes would stay.
        match NetworkTable::build(
            &control.config,
            &self.client,
            Some(&old),
            &control.discovered,
            &self.metrics,
        ) {
            Ok(routes) => self.routes.store(Arc::new(routes)),
            Err(e) => tracing::error!(%network, error = %e, "discovered backends not applied"),
        }
    }

    /// Swaps in a new validated config. Networks whose config is unchanged
    /// are kept as they are; changed ones are rebuilt around the trackers of
    /// the backends they keep, so their views are warm at once. Requests in
    /// flight finish on the routes they started with.
    pub fn reload(self: &Arc<Self>, config: &Config) -> Result<(), StartError> {
        let mut control = self.control.lock();
        // What was discovered for a group that is gone or changed is dropped.
        let keep = |(net, group): &(String, String),
                    (cfg, _): &mut (DiscoverConfig, Vec<UpstreamConfig>)| {
            config
                .network(net)
                .is_some_and(|n| n.discover.iter().any(|g| &g.name == group && g == cfg))
        };
        let mut discovered = control.discovered.clone();
        discovered.retain(|k, v| keep(k, v));
        let old = self.table();
        let routes =
            NetworkTable::build(config, &self.client, Some(&old), &discovered, &self.metrics)?;
        control.discovered = discovered;
        for name in old
            .networks
            .keys()
            .filter(|n| !routes.networks.contains_key(*n))
        {
            tracing::info!(network = %name, "network removed");
        }
        for (name, net) in &routes.networks {
            match old.networks.get(name) {
                None => tracing::info!(network = %name, "network added"),
                Some(prev) if !Arc::ptr_eq(prev, net) => {
                    let names = |n: &Network| {
                        n.config
                            .upstreams
                            .iter()
                            .map(|u| u.name.clone())
                            .collect::<Vec<_>>()
                    };
                    tracing::info!(network = %name, upstreams = ?names(net), was = ?names(prev), "network reconfigured");
                }
                Some(_) => {}
            }
        }
        self.routes.store(Arc::new(routes));
        control.config = config.clone();
        for task in control.discovery.drain(..) {
            task.abort();
        }
        control.discovery = spawn_discovery(self, config);
        drop(control);
        crate::logs::apply(&config.log);
        apply_memory_bounds(config);
        self.beacon.apply(&config.beacon);
        for key in self.started.restart_only_changes(config) {
            tracing::warn!(
                key,
                "this key takes effect only after a restart; the value the gateway started with stays"
            );
            self.reloads.count_restart_required(key);
        }
        self.reloads.applied.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    pub fn table(&self) -> Arc<NetworkTable> {
        self.routes.load_full()
    }

    /// This gateway's metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Client subscriptions, per network.
    pub fn subscriptions(&self) -> &Hubs {
        &self.subscriptions
    }

    /// The beacon networks.
    pub fn beacon(&self) -> &BeaconNetworks {
        &self.beacon
    }

    /// Why the gateway should not get traffic now (empty when ready): it is
    /// shutting down, or a network required for readiness (`ready_required`:
    /// execution networks by default, beacon networks not) has no eligible
    /// backend or node. One front's outage then keeps the other in its
    /// load balancer; `/readyz/<network>` answers for one network.
    pub fn not_ready(&self) -> Vec<String> {
        if self.draining.load(Ordering::Relaxed) {
            return vec!["shutting down".into()];
        }
        let routes = self.table();
        let mut reasons: Vec<String> = routes
            .networks
            .values()
            .filter(|net| net.config.ready_required)
            .filter_map(|net| network_not_ready(net))
            .collect();
        reasons.extend(
            self.beacon
                .by_name
                .values()
                .filter(|net| net.ready_required())
                .filter_map(|net| net.not_ready()),
        );
        reasons.sort();
        reasons
    }

    /// Why one network (either kind) should not get traffic now: `None`
    /// when no network has that name, else the reasons (empty when ready),
    /// whether or not it is required for the gateway's readiness.
    pub fn network_not_ready(&self, name: &str) -> Option<Vec<String>> {
        let not_ready = if let Some(net) = self.table().networks.get(name) {
            network_not_ready(net)
        } else {
            self.beacon.by_name.get(name)?.not_ready()
        };
        let draining = self.draining.load(Ordering::Relaxed);
        Some(
            draining
                .then(|| "shutting down".to_string())
                .into_iter()
                .chain(not_ready)
                .collect(),
        )
    }
}

/// Why an execution network cannot serve now (`None`: it can).
fn network_not_ready(net: &Network) -> Option<String> {
    net.view()
        .eligible()
        .next()
        .is_none()
        .then(|| format!("network {} has no eligible backend", net.config.name))
}

/// The process's memory budgets (see `crate::memory`) as `config` sets them.
fn apply_memory_bounds(config: &Config) {
    let limits = &config.server;
    crate::memory::configure(
        limits.max_inflight_answer_bytes,
        limits.max_inflight_request_bytes,
        limits.memory_wait,
    );
}

/// Subscription feeds find their network in the current routes each time,
/// so they follow reloads; a dropped gateway has no networks.
fn network_source(gateway: Weak<Gateway>) -> NetworkSource {
    Arc::new(move |name: &str| {
        gateway
            .upgrade()
            .and_then(|g| g.table().networks.get(name).cloned())
    })
}

/// Trims the anonymous tier's per-IP limiter state now and then, until the
/// policy is dropped.
fn forget_idle_clients(policy: std::sync::Weak<ClientPolicy>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(30));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match policy.upgrade() {
                Some(p) => p.forget_idle(),
                None => return,
            }
        }
    });
}
