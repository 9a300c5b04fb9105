//! Listeners: accepting connections, bounding them, and shutting down.
//!
//! The [`Gateway`] holds the routing table (networks by path) in an
//! `ArcSwap`, so a request takes one snapshot of it and a reload can swap in
//! a new one without touching requests in flight. Connections are bounded by
//! a semaphore taken before `accept`, so a flood waits in the kernel's
//! backlog instead of growing memory here; one IP's share of them is capped
//! by the client policy right after `accept`. A connection upgraded to a
//! WebSocket ([`ws`]) keeps both its permit and its per-IP slot until it
//! closes (through a trusted proxy: a slot of the forwarded address). Each connection has deadlines from accept to close
//! ([`lifetimes`]): a first request head, idleness, a write the client
//! does not take.
//!
//! With `server.tls` the same listener speaks TLS ([`tls`]): HTTP/1.1 or h2
//! by ALPN, wss through the same upgrade, the handshake inside the
//! first-request deadline.
//!
//! Shutdown: hyper's graceful drain covers HTTP connections; upgraded
//! sockets are no longer hyper's, so they follow the gateway's `closing`
//! signal instead: each sends a Close frame (1001, going away) and ends, and
//! the drain waits for them as well.

pub mod compression;
mod cores;
mod cors;
mod http;
mod inflate;
mod lifetimes;
mod linger;
mod timer;
mod tls;
pub(crate) mod ws;
mod ws_meter;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::beacon::BeaconNetwork;
use crate::control::{admin, Gateway};

use crate::config::{Config, RuntimeLayout};
use crate::metrics::Metrics;
use crate::policy::conns::ConnGuard;

/// What an accepted connection holds until it closes (a WebSocket task
/// takes a share, so an upgraded socket still counts).
pub(crate) struct ConnHold {
    slot: ConnGuard,
    _permit: OwnedSemaphorePermit,
    /// The socket's progress, which a WebSocket keeps watching for its
    /// write deadline once hyper's watchdog has ended with the upgrade.
    pub(crate) lifetime: Arc<lifetimes::Lifetime>,
    /// `server.write_timeout`.
    pub(crate) write_timeout: Duration,
}

/// What a listener serves: the main one every network by path, a beacon
/// network's own `listen` that network at `/eth/...`.
#[derive(Clone)]
pub(crate) enum Front {
    Main,
    Beacon(Arc<BeaconNetwork>),
}

impl ConnHold {
    /// Whether the connection holds a per-IP slot of its own (a trusted
    /// proxy's does not: its WebSockets are counted by forwarded address).
    pub(crate) fn counted(&self) -> bool {
        !self.slot.is_exempt()
    }
}

/// A bound listener, ready to serve.
pub struct Server {
    listener: TcpListener,
    /// `server.runtime: per_core`: the other cores' sockets on the same
    /// address (`SO_REUSEPORT`), each given to a runtime of its own by `run`.
    more: Vec<std::net::TcpListener>,
    /// The beacon networks' own listeners.
    beacon: Vec<(TcpListener, Arc<BeaconNetwork>)>,
    admin: TcpListener,
    gateway: Arc<Gateway>,
    /// Read once, here: a reload does not change it (see `config::restart`).
    settings: crate::config::ListenerConfig,
    /// `server.tls`: the listener's certificate, followed on disk.
    tls: Option<tls::ListenerTlsState>,
}

impl Server {
    /// Binds the configured address and starts the gateway's control loops.
    pub async fn bind(config: &Config) -> std::io::Result<Server> {
        let (listener, more) = match config.listener.runtime {
            RuntimeLayout::Shared => (TcpListener::bind(config.listener.listen).await?, Vec::new()),
            RuntimeLayout::PerCore => cores::bind(config.listener.listen)?,
        };
        let admin = TcpListener::bind(config.listener.admin_listen)
            .await
            .map_err(|e| {
                std::io::Error::new(
                    e.kind(),
                    format!("admin listener {}: {e}", config.listener.admin_listen),
                )
            })?;
        // One registry per gateway: the listener's counters and the
        // gateway's components count in it, and its /metrics reads it.
        let metrics = Metrics::new();
        let tls = config.listener.tls.as_ref();
        let tls = tls.map(|t| tls::start(t, &metrics)).transpose()?;
        let gateway = Gateway::start(config, metrics).map_err(std::io::Error::other)?;
        let mut beacon = Vec::new();
        for net in &config.beacon {
            let (Some(addr), Some(running)) = (net.listen, gateway.beacon().by_name.get(&net.name))
            else {
                continue;
            };
            let listener = TcpListener::bind(addr).await.map_err(|e| {
                std::io::Error::new(
                    e.kind(),
                    format!("beacon network {} listener {addr}: {e}", net.name),
                )
            })?;
            beacon.push((listener, running.clone()));
        }
        Ok(Server {
            listener,
            more,
            beacon,
            admin,
            tls,
            gateway,
            settings: config.listener.clone(),
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

    /// The address of each beacon network's own listener, by network name.
    pub fn beacon_addrs(&self) -> Vec<(String, SocketAddr)> {
        self.beacon
            .iter()
            .filter_map(|(l, net)| Some((net.config.name.clone(), l.local_addr().ok()?)))
            .collect()
    }

    pub fn gateway(&self) -> Arc<Gateway> {
        self.gateway.clone()
    }

    /// Serves until `shutdown` completes; then reports not ready, stops
    /// accepting, and lets open connections finish their requests for at
    /// most `drain`. The admin listener answers until the drain ends.
    pub async fn run(self, shutdown: impl Future<Output = ()>, drain: Duration) {
        let admin = tokio::spawn(admin::serve(
            self.admin,
            self.gateway.clone(),
            self.settings.admin_max_connections,
        ));
        let permits = Arc::new(Semaphore::new(self.settings.max_connections));
        let mut builder = auto::Builder::new(TokioExecutor::new());
        // A client that never finishes its headers does not hold a connection forever.
        let limits = &self.settings;
        builder
            .http1()
            .timer(timer::ReusingTimer)
            .header_read_timeout(limits.header_read_timeout)
            .max_buf_size(limits.max_header_list_bytes.max(8192));
        builder
            .http2()
            .timer(timer::ReusingTimer)
            .max_concurrent_streams(limits.http2_max_concurrent_streams)
            .max_header_list_size(limits.max_header_list_bytes as u32)
            .keep_alive_interval(Some(limits.http2_keepalive_interval))
            .keep_alive_timeout(limits.http2_keepalive_timeout);
        let deadlines = lifetimes::Deadlines::of(limits);
        let beacon_loops: Vec<_> = self
            .beacon
            .into_iter()
            .map(|(listener, net)| {
                tokio::spawn(accept_plain(
                    listener,
                    Front::Beacon(net),
                    self.gateway.clone(),
                    permits.clone(),
                    builder.clone(),
                    deadlines,
                    limits.tcp_keepalive,
                ))
            })
            .collect();
        let accepting = Accepting {
            gateway: self.gateway.clone(),
            permits,
            builder,
            deadlines,
            tcp_keepalive: limits.tcp_keepalive,
            tls: self.tls.as_ref().map(|t| t.acceptor.clone()),
        };
        let stop_serving = || {
            self.gateway.draining.store(true, Ordering::Relaxed);
            for task in &beacon_loops {
                task.abort();
            }
            tracing::info!("stopped accepting; draining open requests");
            // WebSockets say goodbye (1001) and end; HTTP requests finish.
            self.gateway.closing.send_replace(true);
            self.gateway.beacon().close_event_streams();
        };
        match self.settings.runtime {
            RuntimeLayout::Shared => {
                let graceful = hyper_util::server::graceful::GracefulShutdown::new();
                accept_main(&self.listener, &accepting, &graceful, shutdown).await;
                drop(self.listener);
                stop_serving();
                let drained = async {
                    tokio::join!(graceful.shutdown(), self.gateway.closing.closed());
                };
                if tokio::time::timeout(drain, drained).await.is_err() {
                    tracing::warn!(?drain, "drain timeout passed with requests still open");
                }
            }
            RuntimeLayout::PerCore => {
                let mut sockets = self.more;
                match self.listener.into_std() {
                    Ok(first) => sockets.insert(0, first),
                    Err(e) => tracing::error!(error = %e, "the first listener socket is lost"),
                }
                let mut cores = cores::start(sockets, accepting);
                shutdown.await;
                cores.stop();
                stop_serving();
                let drained = async {
                    tokio::join!(cores.drained(), self.gateway.closing.closed());
                };
                if tokio::time::timeout(drain, drained).await.is_err() {
                    tracing::warn!(?drain, "drain timeout passed with requests still open");
                }
                cores.finish().await;
            }
        }
        drop(self.tls);
        admin.abort();
    }
}

/// What every accept loop of the main listener shares (one per runtime
/// with `server.runtime: per_core`, each holding a clone).
#[derive(Clone)]
pub(crate) struct Accepting {
    gateway: Arc<Gateway>,
    permits: Arc<Semaphore>,
    builder: auto::Builder<TokioExecutor>,
    deadlines: lifetimes::Deadlines,
    tcp_keepalive: Duration,
    /// `server.tls`: the acceptor follows the certificate on disk.
    tls: Option<tokio_rustls::TlsAcceptor>,
}

/// Accepts connections on the main listener until `stop` completes, each
/// served in a task of the runtime this runs on.
pub(crate) async fn accept_main(
    listener: &TcpListener,
    acc: &Accepting,
    graceful: &hyper_util::server::graceful::GracefulShutdown,
    stop: impl Future<Output = ()>,
) {
    let Accepting {
        gateway,
        permits,
        builder,
        deadlines,
        tcp_keepalive,
        tls,
    } = acc;
    let deadlines = *deadlines;
    tokio::pin!(stop);
    loop {
        let permit = tokio::select! {
            _ = &mut stop => break,
            permit = permits.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            _ = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Some(slot) = gateway.table().policy.connections().try_open(peer.ip()) else {
            gateway.metrics().listener.connections_refused.inc();
            if crate::logs::refusal_line() {
                tracing::info!(%peer, "connection refused: its client IP has too many open (policy.max_connections_per_ip)");
            }
            http::refuse_connection(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        lifetimes::keepalive(&stream, *tcp_keepalive);
        let gateway = gateway.clone();
        let lifetime = lifetimes::Lifetime::new();
        let hold = Arc::new(ConnHold {
            slot,
            _permit: permit,
            lifetime: lifetime.clone(),
            write_timeout: deadlines.write,
        });
        let watched = lifetimes::Watched::new(stream, lifetime.clone());
        let requests = lifetime.clone();
        let closed = gateway.metrics().listener.connections_closed.clone();
        let failures = gateway.metrics().listener.tls_handshake_failures.clone();
        let service = service_fn(move |req| {
            let in_flight = requests.request();
            let answer = http::handle(gateway.clone(), peer, req, hold.clone(), Front::Main);
            async move {
                let answer = answer.await;
                http::hold_while_streaming(answer, in_flight)
            }
        });
        let Some(acceptor) = tls else {
            let conn = builder
                .serve_connection_with_upgrades(TokioIo::new(watched), service)
                .into_owned();
            let conn = graceful.watch(conn);
            tokio::spawn(until_deadline(conn, lifetime, deadlines, closed, peer));
            continue;
        };
        // The handshake runs in the connection's task, under its
        // first-request deadline, so a slow one stalls nobody else.
        let acceptor = acceptor.clone();
        let builder = builder.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let handshake = tokio::select! {
                done = acceptor.accept(watched) => done,
                why = lifetime.expired(deadlines, &closed) => {
                    failures.inc();
                    tracing::debug!(%peer, ?why, "TLS handshake not done by the deadline");
                    return;
                }
            };
            let stream = match handshake {
                Ok(s) => s,
                Err(e) => {
                    failures.inc();
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
            };
            let conn = builder
                .serve_connection_with_upgrades(TokioIo::new(stream), service)
                .into_owned();
            until_deadline(watcher.watch(conn), lifetime, deadlines, closed, peer).await;
        });
    }
}

/// Accepts plain-HTTP connections of one front until aborted: the same
/// connection permits, per-IP cap, deadlines and graceful drain as the main
/// listener; the drain follows the gateway's `closing` signal, as upgraded
/// sockets do (a beacon network's own listener speaks no TLS yet).
#[allow(clippy::too_many_arguments)]
async fn accept_plain(
    listener: TcpListener,
    front: Front,
    gateway: Arc<Gateway>,
    permits: Arc<Semaphore>,
    builder: auto::Builder<TokioExecutor>,
    deadlines: lifetimes::Deadlines,
    tcp_keepalive: Duration,
) {
    loop {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        let (stream, peer) = match listener.accept().await {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Some(slot) = gateway.table().policy.connections().try_open(peer.ip()) else {
            gateway.metrics().listener.connections_refused.inc();
            http::refuse_connection(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        lifetimes::keepalive(&stream, tcp_keepalive);
        let lifetime = lifetimes::Lifetime::new();
        let hold = Arc::new(ConnHold {
            slot,
            _permit: permit,
            lifetime: lifetime.clone(),
            write_timeout: deadlines.write,
        });
        let watched = lifetimes::Watched::new(stream, lifetime.clone());
        let requests = lifetime.clone();
        let (gw, front) = (gateway.clone(), front.clone());
        let service = service_fn(move |req| {
            let in_flight = requests.request();
            let answer = http::handle(gw.clone(), peer, req, hold.clone(), front.clone());
            async move {
                let answer = answer.await;
                http::hold_while_streaming(answer, in_flight)
            }
        });
        let conn = builder
            .serve_connection_with_upgrades(TokioIo::new(watched), service)
            .into_owned();
        // The drain waits for every receiver of `closing`: this one is
        // dropped when the connection ends, after a graceful close on shutdown.
        let mut closing = gateway.closing.subscribe();
        let conn = async move {
            tokio::pin!(conn);
            tokio::select! {
                done = conn.as_mut() => done,
                _ = async { let _ = closing.wait_for(|c| *c).await; } => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            }
        };
        let closed = gateway.metrics().listener.connections_closed.clone();
        tokio::spawn(until_deadline(conn, lifetime, deadlines, closed, peer));
    }
}

/// Serves one connection until it ends or one of its deadlines passes.
///
/// The deadlines are watched by a task of their own, which says when one
/// passed over a oneshot channel. Selected here directly, the watcher's timer
/// was polled (its waker registered again) every time the connection woke,
/// several times a request; the channel costs an atomic load instead.
async fn until_deadline<E: std::fmt::Display>(
    conn: impl Future<Output = Result<(), E>>,
    lifetime: Arc<lifetimes::Lifetime>,
    deadlines: lifetimes::Deadlines,
    closed: prometheus::IntCounterVec,
    peer: SocketAddr,
) {
    let (passed, deadline) = tokio::sync::oneshot::channel();
    let watcher = tokio::spawn(async move {
        let _ = passed.send(lifetime.expired(deadlines, &closed).await);
    });
    tokio::select! {
        biased;
        ended = conn => if let Err(e) = ended {
            tracing::debug!(%peer, error = %e, "connection ended with an error");
        },
        Ok(why) = deadline => {
            tracing::debug!(%peer, ?why, "connection closed at a deadline");
        }
    }
    watcher.abort();
}
