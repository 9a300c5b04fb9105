//! `server.runtime: per_core`: the main listener served by one
//! single-threaded tokio runtime per core.
//!
//! Each runtime owns a socket of its own bound to the same address with
//! `SO_REUSEPORT`, so the kernel spreads new connections over them and a
//! connection's reads, its calls and its writes stay on the thread that
//! accepted it: no work-stealing scheduler waking a parked worker to take a
//! request another thread was woken for. Everything else (control loops,
//! the admin and beacon listeners, signals) stays on the process's own
//! runtime, and the request path reads the same published snapshots from
//! every core.
//!
//! Shutdown: `stop` ends every accept loop; each runtime then drains its
//! own connections (its own graceful watcher) and says so; `finish` lets
//! the threads end, which drops whatever their runtimes still hold.

use std::net::SocketAddr;
use std::thread::JoinHandle;

use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::{oneshot, watch};

use super::{accept_main, Accepting};

/// The listen backlog of each socket (tokio's own for `TcpListener::bind`).
const BACKLOG: u32 = 1024;

/// Binds one socket per core on `addr` (the first one resolves port 0 for
/// the others): the first as a listener of the calling runtime, the rest
/// detached, for the cores' runtimes to take.
pub(super) fn bind(addr: SocketAddr) -> std::io::Result<(TcpListener, Vec<std::net::TcpListener>)> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let first = reuse_port_listener(addr)?;
    let bound = first.local_addr()?;
    let mut more = Vec::with_capacity(cores.saturating_sub(1));
    for _ in 1..cores {
        more.push(reuse_port_listener(bound)?.into_std()?);
    }
    Ok((first, more))
}

fn reuse_port_listener(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.set_reuseport(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

/// The running cores, as `run` steers them through shutdown.
pub(super) struct Cores {
    stop: watch::Sender<bool>,
    drained: Vec<oneshot::Receiver<()>>,
    finish: watch::Sender<bool>,
    threads: Vec<JoinHandle<()>>,
}

/// Starts one thread with a current-thread runtime per socket, each
/// accepting on its socket until [`Cores::stop`].
pub(super) fn start(sockets: Vec<std::net::TcpListener>, accepting: Accepting) -> Cores {
    let (stop, _) = watch::channel(false);
    let (finish, _) = watch::channel(false);
    let mut drained = Vec::with_capacity(sockets.len());
    let mut threads = Vec::with_capacity(sockets.len());
    for (i, socket) in sockets.into_iter().enumerate() {
        let (done, drained_rx) = oneshot::channel();
        let core = Core {
            socket,
            accepting: accepting.clone(),
            stop: stop.subscribe(),
            finish: finish.subscribe(),
            done,
        };
        let spawned = std::thread::Builder::new()
            .name(format!("rpcgate-core-{i}"))
            .spawn(move || core.serve());
        match spawned {
            Ok(thread) => {
                threads.push(thread);
                drained.push(drained_rx);
            }
            Err(e) => tracing::error!(core = i, error = %e, "cannot start a request thread"),
        }
    }
    Cores {
        stop,
        drained,
        finish,
        threads,
    }
}

impl Cores {
    /// Every core stops accepting (its socket is closed) and starts draining.
    pub(super) fn stop(&self) {
        self.stop.send_replace(true);
    }

    /// Completes when every core's connections have ended.
    pub(super) async fn drained(&mut self) {
        for core in self.drained.drain(..) {
            let _ = core.await;
        }
    }

    /// Ends the threads (open connections past the drain are dropped) and
    /// waits for them.
    pub(super) async fn finish(self) {
        self.finish.send_replace(true);
        let threads = self.threads;
        let joined = tokio::task::spawn_blocking(move || {
            for thread in threads {
                let _ = thread.join();
            }
        });
        let _ = joined.await;
    }
}

/// One core's share: its socket, and the signals of shutdown.
struct Core {
    socket: std::net::TcpListener,
    accepting: Accepting,
    stop: watch::Receiver<bool>,
    finish: watch::Receiver<bool>,
    done: oneshot::Sender<()>,
}

impl Core {
    fn serve(self) {
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "cannot build a request thread's runtime");
                return;
            }
        };
        let Core {
            socket,
            accepting,
            mut stop,
            mut finish,
            done,
        } = self;
        runtime.block_on(async move {
            let listener = match TcpListener::from_std(socket) {
                Ok(l) => l,
                Err(e) => {
                    tracing::error!(error = %e, "a request thread cannot take its socket");
                    return;
                }
            };
            let graceful = GracefulShutdown::new();
            let stopped = async {
                let _ = stop.wait_for(|s| *s).await;
            };
            accept_main(&listener, &accepting, &graceful, stopped).await;
            drop(listener);
            let finished = async {
                let _ = finish.wait_for(|f| *f).await;
            };
            tokio::pin!(finished);
            tokio::select! {
                _ = graceful.shutdown() => {
                    let _ = done.send(());
                    finished.await;
                }
                _ = &mut finished => {}
            }
        });
    }
}
