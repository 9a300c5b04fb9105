//! Listeners: accepting connections, bounding them, and shutting down.
//!
//! The [`Gateway`] holds the routing table (networks by path) in an
//! `ArcSwap`, so a request takes one snapshot of it and a reload can swap in
//! a new one without touching requests in flight. Connections are bounded by
//! a semaphore taken before `accept`, so a flood waits in the kernel's
//! backlog instead of growing memory here.

pub mod admin;
mod http;
pub mod reload;
mod rescue;

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::config::{Config, ServerLimits};
use crate::upstream::{http_client, HttpClient, Network};

/// The routing table: which network answers which path.
pub struct Routes {
    pub networks: HashMap<String, Arc<Network>>,
    pub default: Option<Arc<Network>>,
    pub limits: ServerLimits,
}

impl Routes {
    /// The routes of `config`, reusing what `old` already runs.
    fn build(config: &Config, client: &HttpClient, old: Option<&Routes>) -> Routes {
        let mut networks = HashMap::new();
        let mut default = None;
        for net in &config.networks {
            let previous = old.and_then(|o| o.networks.get(&net.name));
            let network = match previous {
                Some(p) if p.config == *net => p.clone(),
                _ => Arc::new(Network::start_after(
                    net.clone(),
                    client,
                    previous.map(|p| &**p),
                )),
            };
            if net.default {
                default = Some(network.clone());
            }
            networks.insert(net.name.clone(), network);
        }
        Routes {
            networks,
            default,
            limits: config.server.clone(),
        }
    }

    /// `/` is the default network, `/<name>` (with or without a trailing slash) a named one.
    pub fn network_for_path(&self, path: &str) -> Option<&Arc<Network>> {
        let name = path.trim_start_matches('/').trim_end_matches('/');
        if name.is_empty() {
            self.default.as_ref()
        } else {
            self.networks.get(name)
        }
    }
}

/// What a running gateway serves.
pub struct Gateway {
    routes: ArcSwap<Routes>,
    client: HttpClient,
    /// The addresses bound at start: a reload cannot move them.
    bound: (SocketAddr, SocketAddr),
    /// Set when shutdown begins: readiness turns false at once.
    draining: AtomicBool,
    pub reloads: ReloadCounters,
}

/// How many reloads took effect and how many were refused.
#[derive(Default)]
pub struct ReloadCounters {
    pub applied: AtomicU64,
    pub refused: AtomicU64,
}

impl Gateway {
    /// Starts the networks (their head tracking begins at once).
    pub fn start(config: &Config) -> Arc<Gateway> {
        let client = http_client();
        let routes = Routes::build(config, &client, None);
        Arc::new(Gateway {
            routes: ArcSwap::from_pointee(routes),
            client,
            bound: (config.listen, config.admin_listen),
            draining: AtomicBool::new(false),
            reloads: ReloadCounters::default(),
        })
    }

    /// Swaps in a new validated config. Networks whose config is unchanged
    /// are kept as they are; changed ones are rebuilt around the trackers of
    /// the backends they keep, so their views are warm at once. Requests in
    /// flight finish on the routes they started with.
    pub fn reload(&self, config: &Config) {
        if (config.listen, config.admin_listen) != self.bound {
            tracing::warn!(
                "listen and admin_listen changes take effect only after a restart; still on {} and {}",
                self.bound.0,
                self.bound.1
            );
        }
        let old = self.routes();
        let routes = Routes::build(config, &self.client, Some(&old));
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
        self.reloads.applied.fetch_add(1, Ordering::Relaxed);
    }

    pub fn routes(&self) -> Arc<Routes> {
        self.routes.load_full()
    }

    /// Why the gateway should not get traffic now (empty when ready): it is
    /// shutting down, or a network has no eligible backend.
    pub fn not_ready(&self) -> Vec<String> {
        if self.draining.load(Ordering::Relaxed) {
            return vec!["shutting down".into()];
        }
        let routes = self.routes();
        let mut reasons: Vec<String> = routes
            .networks
            .iter()
            .filter(|(_, net)| net.view().eligible().next().is_none())
            .map(|(name, _)| format!("network {name} has no eligible backend"))
            .collect();
        reasons.sort();
        reasons
    }
}

/// A bound listener, ready to serve.
pub struct Server {
    listener: TcpListener,
    admin: TcpListener,
    gateway: Arc<Gateway>,
    max_connections: usize,
    header_timeout: Duration,
}

impl Server {
    /// Binds the configured address and starts the gateway's control loops.
    pub async fn bind(config: &Config) -> std::io::Result<Server> {
        let listener = TcpListener::bind(config.listen).await?;
        let admin = TcpListener::bind(config.admin_listen).await.map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!("admin listener {}: {e}", config.admin_listen),
            )
        })?;
        Ok(Server {
            listener,
            admin,
            gateway: Gateway::start(config),
            max_connections: config.server.max_connections,
            header_timeout: config.server.body_read_timeout,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    pub fn admin_addr(&self) -> SocketAddr {
        self.admin
            .local_addr()
            .expect("a bound listener has an address")
    }

    pub fn gateway(&self) -> Arc<Gateway> {
        self.gateway.clone()
    }

    /// Serves until `shutdown` completes; then reports not ready, stops
    /// accepting, and lets open connections finish their requests for at
    /// most `drain`. The admin listener answers until the drain ends.
    pub async fn run(self, shutdown: impl Future<Output = ()>, drain: Duration) {
        let admin = tokio::spawn(admin::serve(self.admin, self.gateway.clone()));
        let permits = Arc::new(Semaphore::new(self.max_connections));
        let graceful = hyper_util::server::graceful::GracefulShutdown::new();
        let mut builder = auto::Builder::new(TokioExecutor::new());
        // A client that never finishes its headers does not hold a connection forever.
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(self.header_timeout);
        tokio::pin!(shutdown);
        loop {
            let permit = tokio::select! {
                _ = &mut shutdown => break,
                permit = permits.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
            };
            let (stream, peer) = tokio::select! {
                _ = &mut shutdown => break,
                accepted = self.listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // EMFILE and friends: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let _ = stream.set_nodelay(true);
            let gateway = self.gateway.clone();
            let service = service_fn(move |req| http::handle(gateway.clone(), req));
            let conn = builder
                .serve_connection_with_upgrades(TokioIo::new(stream), service)
                .into_owned();
            let conn = graceful.watch(conn);
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
                drop(permit);
            });
        }
        self.gateway.draining.store(true, Ordering::Relaxed);
        drop(self.listener);
        tracing::info!("stopped accepting; draining open requests");
        if tokio::time::timeout(drain, graceful.shutdown())
            .await
            .is_err()
        {
            tracing::warn!(?drain, "drain timeout passed with requests still open");
        }
        admin.abort();
    }
}
