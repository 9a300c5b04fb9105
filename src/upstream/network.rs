//! One network's backends and the control loops that watch them.

use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

use super::client::{Backend, HttpClient};
use super::head;
use super::view::{self, NetworkView, Tracked};
use crate::cache::Cache;
use crate::config::{NetworkConfig, RedisConfig};

/// The running state of one network: its config, its backends, its view,
/// its response cache. Dropping it stops its control loops.
pub struct Network {
    pub config: NetworkConfig,
    /// `None` when the network's cache is disabled.
    pub cache: Option<Arc<Cache>>,
    view: Arc<ArcSwap<NetworkView>>,
    changed: Arc<Notify>,
    tasks: Vec<JoinHandle<()>>,
}

impl Network {
    /// Starts head tracking for every upstream, the view builder and the
    /// cache's loops (`redis` serves the cache's shared tier when enabled).
    pub fn start(
        config: NetworkConfig,
        client: &HttpClient,
        redis: Option<&RedisConfig>,
    ) -> Network {
        let changed = Arc::new(Notify::new());
        let mut tasks = Vec::new();
        let mut tracked = Vec::new();
        for up in &config.upstreams {
            let backend = Backend::new(
                up,
                client.clone(),
                config.max_response_bytes,
                config.eject_after_failures,
            );
            let (state, task) = head::spawn(
                backend.clone(),
                config.chain_id,
                config.head.clone(),
                changed.clone(),
            );
            tasks.push(task);
            tracked.push(Tracked { backend, state });
        }
        // Until the first build, every backend is listed as not checked yet.
        let initial = tracked
            .iter()
            .map(|t| (t.backend.clone(), t.state.borrow().clone()))
            .collect();
        let first = view::build(initial, config.max_lag_blocks, &mut Default::default());
        let view = Arc::new(ArcSwap::from_pointee(first));
        let (published, on_publish) = watch::channel(());
        tasks.push(tokio::spawn(view::run(
            tracked,
            config.max_lag_blocks,
            changed.clone(),
            view.clone(),
            published,
        )));
        let cache = config.cache.enabled.then(|| {
            let (cache, cache_tasks) = Cache::start(
                &config.name,
                &config.cache,
                redis,
                view.clone(),
                on_publish,
                config.head.probe_timeout,
            );
            tasks.extend(cache_tasks);
            cache
        });
        Network {
            config,
            cache,
            view,
            changed,
            tasks,
        }
    }

    /// The current snapshot (one atomic load).
    pub fn view(&self) -> Arc<NetworkView> {
        self.view.load_full()
    }

    /// Asks the view builder to look again (after the request path ejected a backend).
    pub fn refresh(&self) {
        self.changed.notify_one();
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}
