//! One network's backends and the control loops that watch them: a head
//! tracker per backend and the view builder that folds their states into
//! the [`NetworkView`] snapshot requests read.
//!
//! A backend's head tracker is shared through an `Arc` by every
//! [`Upstreams`] built with the same backend settings, so a config reload
//! that keeps a backend keeps its tracker, its state and its latency
//! estimate: the new network's view is warm the moment it is built, and no
//! request fails because a reload made the gateway forget where its backends
//! are.
//!
//! Upstreams of `tier: route` (relays that serve only the routes naming
//! them) get no tracker and stay out of the view: nothing they answer or
//! fail to answer moves the served head or readiness. They are kept here as
//! fixed [`BackendView`]s for the router's routes (`relays`).

use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

use super::client::{Backend, CallLimits, HttpClient};
use super::head::{self, HeadState};
use super::view::{self, BackendView, Ineligible, NetworkView, ServedHead, Tracked};
use crate::config::{HeadConfig, NetworkConfig, UpstreamConfig, UpstreamTier};
use crate::metrics::{BlockWait, BlockWaitSeries, Metrics};

/// Everything that makes two trackers interchangeable.
#[derive(PartialEq)]
struct TrackerKey {
    upstream: UpstreamConfig,
    chain_id: u64,
    head: HeadConfig,
    max_response_bytes: usize,
    max_upstream_body_bytes: usize,
    request_timeout: std::time::Duration,
    eject_after: u32,
}

impl TrackerKey {
    fn of(config: &NetworkConfig, upstream: &UpstreamConfig) -> TrackerKey {
        TrackerKey {
            upstream: upstream.clone(),
            chain_id: config.chain_id,
            head: config.head.clone(),
            max_response_bytes: config.max_response_bytes,
            max_upstream_body_bytes: config.max_upstream_body_bytes,
            request_timeout: config.request_timeout,
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

/// The backends of one network, their trackers and the view built from
/// them. Dropping it stops the view builder (and the trackers no other
/// network uses).
pub struct Upstreams {
    view: Arc<ArcSwap<NetworkView>>,
    /// Told of every new view (for loops that follow the view, like the cache's).
    published: watch::Receiver<()>,
    refresh: Arc<Notify>,
    backends: Vec<Arc<TrackedBackend>>,
    /// The `tier: route` upstreams, untracked: head 0, never ineligible.
    relays: Vec<BackendView>,
    builder: JoinHandle<()>,
    /// How long a read waits for a backend to reach its block (`reaching`).
    catch_up: std::time::Duration,
    block_waits: BlockWaitSeries,
}

impl Upstreams {
    /// Starts head tracking for every upstream of `config` and the view
    /// builder, taking over from `previous` (the same network under the old
    /// config): unchanged backends keep their trackers, and the served head
    /// continues from where it was.
    pub fn start(
        config: &NetworkConfig,
        client: &HttpClient,
        metrics: &Metrics,
        previous: Option<&Upstreams>,
    ) -> Upstreams {
        let backends: Vec<Arc<TrackedBackend>> = config
            .upstreams
            .iter()
            .filter(|up| up.tier != UpstreamTier::Route)
            .map(|up| {
                let key = TrackerKey::of(config, up);
                let kept = previous.and_then(|p| p.backends.iter().find(|b| b.key == key));
                match kept {
                    Some(b) => b.clone(),
                    None => {
                        let backend = Backend::with_limits(
                            &config.name,
                            up,
                            client.clone(),
                            limits(config, config.eject_after_failures),
                            metrics,
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
        let rules = view::Rules {
            network: config.name.clone(),
            max_lag: config.max_lag_blocks,
            watchdog: config.head.served_head_watchdog,
            catch_up: config.head.catch_up_wait,
        };
        let first = view::build(states, &rules, &mut carry, tokio::time::Instant::now());
        first.tell_fallbacks();
        let view = Arc::new(ArcSwap::from_pointee(first));
        let refresh = Arc::new(Notify::new());
        let (publish, published) = watch::channel(());
        let builder = tokio::spawn(view::run(
            tracked,
            rules,
            refresh.clone(),
            view.clone(),
            publish,
            carry,
        ));
        Upstreams {
            view,
            published,
            refresh,
            backends,
            relays: relays(config, client, metrics),
            builder,
            catch_up: config.head.catch_up_wait,
            block_waits: metrics.block_waits(&config.name),
        }
    }

    /// The `tier: route` upstreams (see the module doc).
    pub fn relays(&self) -> &[BackendView] {
        &self.relays
    }

    /// The current snapshot (one atomic load).
    pub fn view(&self) -> Arc<NetworkView> {
        self.view.load_full()
    }

    /// The published view itself, and a receiver told of each new one, for
    /// a control loop that follows the view.
    pub fn follow(&self) -> (Arc<ArcSwap<NetworkView>>, watch::Receiver<()>) {
        (self.view.clone(), self.published.clone())
    }

    /// Asks the view builder to look again (after the request path ejected a backend).
    pub fn refresh(&self) {
        self.refresh.notify_one();
    }

    /// A view in which no backend's head is in doubt (see
    /// `client::HeadDoubt`): each doubted head was probed again and the view
    /// rebuilt with what the probe found, so the served head is re-derived
    /// from heads the backends answered just now. Waits at most `within`,
    /// then takes the view as it is. For the rare call whose pinned block
    /// every backend denied; the request path never waits here otherwise.
    pub async fn view_without_doubts(&self, within: std::time::Duration) -> Arc<NetworkView> {
        let mut published = self.published.clone();
        let deadline = tokio::time::Instant::now() + within;
        loop {
            published.borrow_and_update();
            let view = self.view();
            let doubted = view.backends.iter().any(|b| {
                b.backend.head_doubt.doubted() || b.ineligible == Some(Ineligible::HeadUnknown)
            });
            if !doubted {
                return view;
            }
            match tokio::time::timeout_at(deadline, published.changed()).await {
                Ok(Ok(())) => {}
                _ => return self.view(),
            }
        }
    }

    /// For a read of block `block`, at or below the served head, that no
    /// eligible backend has now (mid-reorg, restarted behind): the first
    /// published view in which one has it, or in which the served head was
    /// derived again below it (the chain got shorter, see `view`); after
    /// `head.catch_up_wait`, the view as it is. Follows the published views
    /// (no polling, no lock); a wait is counted in
    /// `rpcgate_block_waits_total` (a view that has it at once is none).
    pub async fn reaching(&self, block: u64) -> Arc<NetworkView> {
        let mut published = self.published.clone();
        let deadline = tokio::time::Instant::now() + self.catch_up;
        let mut waited = false;
        loop {
            published.borrow_and_update();
            let view = self.view();
            let outcome = if view.eligible().any(|b| b.head >= block) {
                BlockWait::Reached
            } else if view.served_head.is_none_or(|s| s < block) {
                BlockWait::Shorter
            } else {
                waited = true;
                match tokio::time::timeout_at(deadline, published.changed()).await {
                    Ok(Ok(())) => continue,
                    _ => BlockWait::TimedOut,
                }
            };
            if waited {
                self.block_waits.count(outcome);
            }
            return if outcome == BlockWait::TimedOut {
                self.view()
            } else {
                view
            };
        }
    }
}

/// A fixed view of each `tier: route` upstream. With no probe to re-admit
/// one, none is ejected (its failures still weigh on its latency estimate).
fn relays(config: &NetworkConfig, client: &HttpClient, metrics: &Metrics) -> Vec<BackendView> {
    config
        .upstreams
        .iter()
        .filter(|up| up.tier == UpstreamTier::Route)
        .map(|up| {
            let backend = Backend::with_limits(
                &config.name,
                up,
                client.clone(),
                limits(config, u32::MAX),
                metrics,
            );
            BackendView {
                state_history: backend.state_history(),
                backend,
                state: HeadState::initial(),
                head: 0,
                ineligible: None,
                ask: None,
            }
        })
        .collect()
}

impl Drop for Upstreams {
    fn drop(&mut self) {
        self.builder.abort();
    }
}

/// The per-request limits a network sets its backends.
fn limits(config: &NetworkConfig, eject_after: u32) -> CallLimits {
    CallLimits {
        max_reply_bytes: config.max_response_bytes,
        max_request_bytes: config.max_upstream_body_bytes,
        eject_after,
        request_timeout: config.request_timeout,
        max_in_flight: config.upstream_max_in_flight,
        saturated_batch_max: config.saturated_batch_max,
        saturated_batch_max_bytes: config.saturated_batch_max_bytes,
    }
}
