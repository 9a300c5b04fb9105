//! Listeners: accepting connections, bounding them, and shutting down.
//!
//! The [`Gateway`] holds the routing table (networks by path) in an
//! `ArcSwap`, so a request takes one snapshot of it and a reload can swap in
//! a new one without touching requests in flight. Connections are bounded by
//! a semaphore taken before `accept`, so a flood waits in the kernel's
//! backlog instead of growing memory here.

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
use crate::upstream::{http_client, Network};

/// The routing table: which network answers which path.
pub struct Routes {
    pub networks: HashMap<String, Arc<Network>>,
    pub default: Option<Arc<Network>>,
    pub limits: ServerLimits,
}

impl Routes {
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
}

impl Gateway {
    /// Starts the networks (their head tracking begins at once).
    pub fn start(config: &Config) -> Arc<Gateway> {
        let client = http_client();
        let mut networks = HashMap::new();
        let mut default = None;
        for net in &config.networks {
            let network = Arc::new(Network::start(net.clone(), &client, config.redis.as_ref()));
            if net.default {
                default = Some(network.clone());
            }
            networks.insert(net.name.clone(), network);
        }
        let routes = Routes {
            networks,
            default,
            limits: config.server.clone(),
        };
        Arc::new(Gateway {
            routes: ArcSwap::from_pointee(routes),
        })
    }

    pub fn routes(&self) -> Arc<Routes> {
        self.routes.load_full()
    }
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
        drop(self.listener);
        if tokio::time::timeout(drain, graceful.shutdown())
            .await
            .is_err()
        {
            tracing::warn!(?drain, "drain timeout passed with requests still open");
        }
    }
}
