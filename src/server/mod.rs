//! Listeners: accepting connections, bounding them, and shutting down.
//!
//! The [`Gateway`] holds the routing table (networks by path) in an
//! `ArcSwap`, so a request takes one snapshot of it and a reload can swap in
//! a new one without touching requests in flight. Connections are bounded by
//! a semaphore taken before `accept`, so a flood waits in the kernel's
//! backlog instead of growing memory here; one IP's share of them is capped
//! by the client policy right after `accept`.

mod http;
mod rescue;

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::config::{Config, ServerLimits};
use crate::policy::Policy;
use crate::upstream::{http_client, Network};

/// The routing table: which network answers which path.
pub struct Routes {
    pub networks: HashMap<String, Arc<Network>>,
    pub default: Option<Arc<Network>>,
    pub limits: ServerLimits,
    pub policy: Arc<Policy>,
}

impl Routes {
    /// `/` is the default network, `/<name>` (with or without a trailing slash) a named one.
    pub fn network_for_path(&self, path: &str) -> Option<&Arc<Network>> {
        self.resolve(path).map(|(network, _)| network)
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

/// Why a gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
}

/// What a running gateway serves.
pub struct Gateway {
    routes: ArcSwap<Routes>,
}

impl Gateway {
    /// Starts the networks (their head tracking begins at once) and the
    /// client policy.
    pub fn start(config: &Config) -> Result<Arc<Gateway>, StartError> {
        let client = http_client();
        let mut networks = HashMap::new();
        let mut default = None;
        for net in &config.networks {
            let network = Arc::new(Network::start(net.clone(), &client));
            if net.default {
                default = Some(network.clone());
            }
            networks.insert(net.name.clone(), network);
        }
        let policy = Arc::new(Policy::new(&config.policy, config.redis.as_ref())?);
        forget_idle_clients(Arc::downgrade(&policy));
        let routes = Routes {
            networks,
            default,
            limits: config.server.clone(),
            policy,
        };
        Ok(Arc::new(Gateway {
            routes: ArcSwap::from_pointee(routes),
        }))
    }

    pub fn routes(&self) -> Arc<Routes> {
        self.routes.load_full()
    }
}

/// Trims the anonymous tier's per-IP limiter state now and then, until the
/// policy is dropped.
fn forget_idle_clients(policy: std::sync::Weak<Policy>) {
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

/// A bound listener, ready to serve.
pub struct Server {
    listener: TcpListener,
    gateway: Arc<Gateway>,
    max_connections: usize,
    header_timeout: Duration,
}

impl Server {
    /// Binds the configured address and starts the gateway's control loops.
    pub async fn bind(config: &Config) -> std::io::Result<Server> {
        let listener = TcpListener::bind(config.listen).await?;
        Ok(Server {
            listener,
            gateway: Gateway::start(config).map_err(std::io::Error::other)?,
            max_connections: config.server.max_connections,
            header_timeout: config.server.body_read_timeout,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    pub fn gateway(&self) -> Arc<Gateway> {
        self.gateway.clone()
    }

    /// Serves until `shutdown` completes, then lets open connections finish
    /// their requests for at most `drain`.
    pub async fn run(self, shutdown: impl Future<Output = ()>, drain: Duration) {
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
            let Some(slot) = self
                .gateway
                .routes()
                .policy
                .connections()
                .try_open(peer.ip())
            else {
                crate::metrics::metrics().connections_refused.inc();
                http::refuse_connection(stream);
                continue;
            };
            let _ = stream.set_nodelay(true);
            let gateway = self.gateway.clone();
            let service = service_fn(move |req| http::handle(gateway.clone(), peer, req));
            let conn = builder
                .serve_connection_with_upgrades(TokioIo::new(stream), service)
                .into_owned();
            let conn = graceful.watch(conn);
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
                drop((slot, permit));
            });
        }
        drop(self.listener);
        if tokio::time::timeout(drain, graceful.shutdown())
            .await
            .is_err()
        {
            tracing::warn!(?drain, "drain timeout passed with requests still open");
        }
    }
}
