//! One network as the gateway runs it: its config, its backends (with their
//! trackers and view), its response cache, its filters and its recent sends
//! (read-your-writes, see `router::ryw`), started and dropped together.
//!
//! This module sits above both `upstream` and `cache` so that neither has to
//! know the other: the cache follows the view that `upstream` publishes
//! through the receiver handed to it here, and the pipeline reads both.

use std::sync::Arc;

use tokio::task::JoinHandle;

use crate::cache::Cache;
use crate::config::NetworkConfig;
use crate::filters::{FilterSeries, Filters};
use crate::metrics::{Metrics, NetworkSeries, RouteSeries};
use crate::redis_link::RedisLink;
use crate::router::hedge::Hedging;
use crate::router::ryw::{RecentSends, SharedSends};
use crate::router::{RouteError, Target};
use crate::upstream::{HttpClient, NetworkView, Upstreams};

/// The running state of one network. Dropping it stops its view builder,
/// its cache's loops (and trackers no other network uses).
pub struct Network {
    pub config: NetworkConfig,
    /// Its call counters and latency histograms, resolved once.
    pub series: NetworkSeries,
    /// Its hedging rules and counters (`hedge:`), resolved once.
    pub hedging: Hedging,
    /// The counters of its method routes (`routes:`), resolved once.
    pub routed: RouteSeries,
    /// The gateway's metrics, for what is counted per gateway rather than
    /// per network (panics caught while answering).
    pub metrics: Metrics,
    pub upstreams: Upstreams,
    /// `None` when the network's cache is disabled.
    pub cache: Option<Arc<Cache<RouteError>>>,
    /// `None` when `filters.enabled` is off (the filter methods are then
    /// forwarded like any other call).
    pub filters: Option<Filters>,
    /// `None` when `read_your_writes.enabled` is off.
    pub recent_sends: Option<Arc<RecentSends>>,
    cache_tasks: Vec<JoinHandle<()>>,
}

impl Network {
    /// Starts head tracking for every upstream, the view builder and the
    /// cache's loops (`redis` serves the cache's shared tier when enabled).
    pub fn start(
        config: NetworkConfig,
        client: &HttpClient,
        redis: Option<&Arc<RedisLink>>,
        metrics: &Metrics,
    ) -> Network {
        Network::start_after(config, client, redis, metrics, None)
    }

    /// Like [`Network::start`], taking over from `previous` (the same network
    /// under the old config): unchanged backends keep their trackers, and the
    /// served head continues from where it was. Its counters go to `metrics`.
    pub fn start_after(
        config: NetworkConfig,
        client: &HttpClient,
        redis: Option<&Arc<RedisLink>>,
        metrics: &Metrics,
        previous: Option<&Network>,
    ) -> Network {
        metrics.network_started(&config.name);
        let filter_series = FilterSeries::resolve(&metrics.filters, &config.name);
        let routes = config.routes.iter().map(|r| r.name.as_str());
        let routed = metrics.routes.series(&config.name, routes);
        let upstreams = Upstreams::start(&config, client, metrics, previous.map(|p| &p.upstreams));
        // This network's part of the shared Redis: its keys carry its name
        // and chain id under the deployment's prefix.
        let space = RedisLink::space(&config.name, config.chain_id);
        let redis = redis.map(|link| (link, space.as_str()));
        // A reconfigured network starts with an empty cache: its entries are
        // bound to this network's view and reorg loop.
        let mut cache_tasks = Vec::new();
        let cache = config.cache.enabled.then(|| {
            let (view, published) = upstreams.follow();
            let (cache, tasks) = Cache::start(
                &config.name,
                &config.cache,
                redis,
                view,
                published,
                config.head.probe_timeout,
            );
            cache_tasks = tasks;
            cache
        });
        // Filters read the canonical hashes the cache follows; with the cache
        // off, the same reorg loop runs for them alone.
        let filters = config.filters.enabled.then(|| {
            let chain = match &cache {
                Some(cache) => cache.chain(),
                None => {
                    let (view, published) = upstreams.follow();
                    let (chain, task) = crate::upstream::chain::follow_alone(
                        &config.name,
                        view,
                        published,
                        config.head.probe_timeout,
                    );
                    cache_tasks.push(task);
                    chain
                }
            };
            Filters::start(
                &config.name,
                &config.filters,
                redis,
                chain,
                previous.and_then(|p| p.filters.as_ref()),
                filter_series,
            )
        });
        // Sends stay remembered over a reload that keeps their settings;
        // with Redis, they are shared by every replica.
        let recent_sends = config.read_your_writes.enabled.then(|| {
            previous
                .filter(|p| p.config.read_your_writes == config.read_your_writes)
                .and_then(|p| p.recent_sends.clone())
                .unwrap_or_else(|| {
                    let series = metrics.read_your_writes.series(&config.name);
                    let shared = redis.map(|(link, space)| SharedSends::new(link.clone(), space));
                    Arc::new(RecentSends::new(series, &config.read_your_writes, shared))
                })
        });
        Network {
            series: metrics.calls.network(&config.name),
            hedging: Hedging::new(&config, &metrics.hedges),
            routed,
            metrics: metrics.clone(),
            config,
            upstreams,
            cache,
            filters,
            recent_sends,
            cache_tasks,
        }
    }

    /// The current snapshot (one atomic load).
    pub fn view(&self) -> Arc<NetworkView> {
        self.upstreams.view()
    }

    /// What the router needs of this network.
    pub fn target(&self) -> Target<'_> {
        Target {
            config: &self.config,
            upstreams: &self.upstreams,
            hedging: &self.hedging,
            routed: &self.routed,
        }
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        for task in &self.cache_tasks {
            task.abort();
        }
    }
}
