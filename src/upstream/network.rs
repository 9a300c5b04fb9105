//! One network's backends and the control loops that watch them.
//!
//! A backend's head tracker is shared through an `Arc` by every [`Network`]
//! built with the same backend settings, so a config reload that keeps a
//! backend keeps its tracker, its state and its latency estimate: the new
//! network's view is warm the moment it is built, and no request fails
//! because a reload made the gateway forget where its backends are.

use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

use super::client::{Backend, HttpClient};
use super::head::{self, HeadState};
use super::view::{self, NetworkView, ServedHead, Tracked};
use crate::cache::Cache;
use crate::config::{HeadConfig, NetworkConfig, RedisConfig, UpstreamConfig};
use crate::metrics::NetworkSeries;

/// Everything that makes two trackers interchangeable.
#[derive(PartialEq)]
struct TrackerKey {
    upstream: UpstreamConfig,
    chain_id: u64,
    head: HeadConfig,
    max_response_bytes: usize,
    eject_after: u32,
}

impl TrackerKey {
    fn of(config: &NetworkConfig, upstream: &UpstreamConfig) -> TrackerKey {
        TrackerKey {
            upstream: upstream.clone(),
            chain_id: config.chain_id,
            head: config.head.clone(),
            max_response_bytes: config.max_response_bytes,
            eject_after: config.eject_after_failures,
        }
    }
}

/// A backend and its running head tracker; the tracker stops when the last
/// network using it is dropped.
struct TrackedBackend {
    key: TrackerKey,
    backend: Arc<Backend>,
    state: watch::Receiver<HeadState>,
    task: JoinHandle<()>,
}

impl Drop for TrackedBackend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The running state of one network: its config, its backends, its view,
/// its response cache. Dropping it stops its view builder, its cache's loops
/// (and trackers no other network uses).
pub struct Network {
    pub config: NetworkConfig,
    /// Its call counters and latency histograms, resolved once.
    pub series: NetworkSeries,
    /// `None` when the network's cache is disabled.
    pub cache: Option<Arc<Cache>>,
    cache_tasks: Vec<JoinHandle<()>>,
    view: Arc<ArcSwap<NetworkView>>,
    refresh: Arc<Notify>,
    backends: Vec<Arc<TrackedBackend>>,
    builder: JoinHandle<()>,
}

impl Network {
    /// Starts head tracking for every upstream, the view builder and the
    /// cache's loops (`redis` serves the cache's shared tier when enabled).
    pub fn start(
        config: NetworkConfig,
        client: &HttpClient,
        redis: Option<&RedisConfig>,
    ) -> Network {
        Network::start_after(config, client, redis, None)
    }

    /// Like [`Network::start`], taking over from `previous` (the same network
    /// under the old config): unchanged backends keep their trackers, and the
    /// served head continues from where it was.
    pub fn start_after(
        config: NetworkConfig,
        client: &HttpClient,
        redis: Option<&RedisConfig>,
        previous: Option<&Network>,
    ) -> Network {
        crate::metrics::metrics().network_started(&config.name);
        let backends: Vec<Arc<TrackedBackend>> = config
            .upstreams
            .iter()
            .map(|up| {
                let key = TrackerKey::of(&config, up);
                let kept = previous.and_then(|p| p.backends.iter().find(|b| b.key == key));
                match kept {
                    Some(b) => b.clone(),
                    None => {
                        let backend = Backend::new(
                            &config.name,
                            up,
                            client.clone(),
                            config.max_response_bytes,
                            config.eject_after_failures,
                        );
                        let (state, task) =
                            head::spawn(backend.clone(), config.chain_id, config.head.clone());
                        Arc::new(TrackedBackend {
                            key,
                            backend,
                            state,
                            task,
                        })
                    }
                }
            })
            .collect();
        let tracked: Vec<Tracked> = backends
            .iter()
            .map(|b| Tracked {
                backend: b.backend.clone(),
                state: b.state.clone(),
            })
            .collect();
        let mut carry =
            previous.map_or_else(ServedHead::default, |p| ServedHead::continuing(&p.view()));
        // Built now, so the network is ready to serve the moment it exists.
        let states = tracked
            .iter()
            .map(|t| (t.backend.clone(), t.state.borrow().clone()))
            .collect();
        let first = view::build(states, config.max_lag_blocks, &mut carry);
        let view = Arc::new(ArcSwap::from_pointee(first));
        let refresh = Arc::new(Notify::new());
        let (published, on_publish) = watch::channel(());
        let builder = tokio::spawn(view::run(
            tracked,
            config.max_lag_blocks,
            refresh.clone(),
            view.clone(),
            published,
            carry,
        ));
        // A reconfigured network starts with an empty cache: its entries are
        // bound to this network's view and reorg loop.
        let mut cache_tasks = Vec::new();
        let cache = config.cache.enabled.then(|| {
            let (cache, tasks) = Cache::start(
                &config.name,
                &config.cache,
                redis,
                view.clone(),
                on_publish,
                config.head.probe_timeout,
            );
            cache_tasks = tasks;
            cache
        });
        Network {
            series: NetworkSeries::new(&config.name),
            config,
            cache,
            cache_tasks,
            view,
            refresh,
            backends,
            builder,
        }
    }

    /// The current snapshot (one atomic load).
    pub fn view(&self) -> Arc<NetworkView> {
        self.view.load_full()
    }

    /// Asks the view builder to look again (after the request path ejected a backend).
    pub fn refresh(&self) {
        self.refresh.notify_one();
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        self.builder.abort();
        for task in &self.cache_tasks {
            task.abort();
        }
    }
}
