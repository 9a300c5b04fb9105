//! The retry loop against real sockets and no anvil: small hyper servers on
//! port 0 that answer, fail with a status or stall, and count what reaches
//! them. Candidates are ordered by hand through their load estimates (the
//! cheaper of two is always tried first), so each test is exact whatever
//! the seed.

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use fastrand::Rng;
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use super::*;
use crate::config::{Config, UpstreamConfig};
use crate::upstream::head::{BlockId, ChainCheck, HeadState};
use crate::upstream::{http_client, Backend};

#[derive(Clone, Copy)]
enum Behaviour {
    Answer,
    Status(u16),
    Stall,
}

struct Server {
    url: String,
    calls: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl Server {
    async fn start(behaviour: Behaviour) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let calls = Arc::new(AtomicU64::new(0));
        let counted = calls.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let counted = counted.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |_| {
                        counted.fetch_add(1, Ordering::SeqCst);
                        answer(behaviour)
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Server { url, calls, task }
    }

    fn calls(&self) -> u64 {
        self.calls.load(Ordering::SeqCst)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn answer(behaviour: Behaviour) -> Result<http::Response<Full<Bytes>>, Infallible> {
    let (status, body): (u16, &'static [u8]) = match behaviour {
        Behaviour::Answer => (200, br#"{"jsonrpc":"2.0","id":1,"result":"0x2a"}"#),
        Behaviour::Status(s) => (s, b"busy"),
        Behaviour::Stall => {
            let never: Infallible = std::future::pending().await;
            match never {}
        }
    };
    let mut response = http::Response::new(Full::new(Bytes::from_static(body)));
    *response.status_mut() = http::StatusCode::from_u16(status).unwrap();
    Ok(response)
}

/// A network config with `extra` keys, and an `Upstreams` with no
/// trackers: the candidates are built by hand.
fn network(extra: &str) -> (NetworkConfig, Upstreams) {
    let yaml = format!(
        "networks:\n  dev:\n    chain_id: 1\n{extra}    upstreams:\n      - name: unused\n        http: http://127.0.0.1:1\n"
    );
    let mut config = Config::from_yaml(&yaml).unwrap().networks.remove(0);
    config.upstreams.clear();
    let upstreams = Upstreams::start(&config, &http_client(), None);
    (config, upstreams)
}

fn backend(name: &str, url: &str, eject_after: u32) -> Arc<Backend> {
    let cfg = UpstreamConfig {
        name: name.into(),
        http: url.parse().unwrap(),
        ws: None,
        headers: Default::default(),
        tls: None,
    };
    Backend::new("router-test", &cfg, http_client(), 1 << 20, eject_after)
}

/// Eligible views at head 10 of `backends`.
pub(super) fn views_of(backends: &[Arc<Backend>]) -> Vec<BackendView> {
    backends
        .iter()
        .map(|b| BackendView {
            backend: b.clone(),
            state: HeadState {
                chain: ChainCheck::Ok,
                reachable: true,
                syncing: false,
                latest: Some(BlockId {
                    number: 10,
                    hash: "0x0a".into(),
                }),
                safe: None,
                finalized: None,
                reorgs: 0,
                last_error: None,
            },
            head: 10,
            ineligible: None,
        })
        .collect()
}

fn view(backends: &[Arc<Backend>]) -> NetworkView {
    NetworkView {
        backends: views_of(backends),
        best_head: Some(10),
        served_head: Some(10),
        ..NetworkView::default()
    }
}

/// Makes `first` the cheaper of the two, so P2C tries it first.
fn order(first: &Backend, second: &Backend) {
    first.load.reset(Duration::from_micros(10));
    second.load.reset(Duration::from_secs(1));
}

async fn read(
    config: &NetworkConfig,
    upstreams: &Upstreams,
    view: &NetworkView,
    method: &str,
) -> Result<Reply, RouteError> {
    let target = Target { config, upstreams };
    let call = Forward {
        method,
        params: Some(r#"["0x01"]"#),
        min_head: 10,
    };
    forward_with(target, view, call, &mut Rng::with_seed(5)).await
}

/// A backend answering 503 and one answering, in that order of preference
/// once [`order`] is applied; `eject_after` for both.
async fn bad_and_good(eject_after: u32) -> (Server, Server, [Arc<Backend>; 2]) {
    let bad = Server::start(Behaviour::Status(503)).await;
    let good = Server::start(Behaviour::Answer).await;
    let bs = [
        backend("bad", &bad.url, eject_after),
        backend("good", &good.url, eject_after),
    ];
    (bad, good, bs)
}

#[tokio::test]
async fn a_failed_read_is_retried_once_on_another_backend() {
    let (config, ups) = network("");
    let (bad, good, bs) = bad_and_good(3).await;
    order(&bs[0], &bs[1]);
    let reply = read(&config, &ups, &view(&bs), "eth_getBalance")
        .await
        .unwrap();
    assert_eq!(reply.raw(), br#""0x2a""#);
    assert_eq!((bad.calls(), good.calls()), (1, 1));
}

#[tokio::test]
async fn each_backend_is_tried_at_most_once_and_max_attempts_bounds_the_tries() {
    let (config, ups) = network("    max_attempts: 3\n");
    let servers = [
        Server::start(Behaviour::Status(503)).await,
        Server::start(Behaviour::Status(500)).await,
    ];
    let bs: Vec<_> = servers
        .iter()
        .map(|s| backend("failing", &s.url, 10))
        .collect();
    let err = read(&config, &ups, &view(&bs), "eth_getBalance")
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            RouteError::Upstream {
                error: UpstreamError::Status(500 | 503),
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(
        servers.iter().map(Server::calls).collect::<Vec<_>>(),
        [1, 1]
    );

    let (config, ups) = network("    max_attempts: 2\n");
    let mut servers = Vec::new();
    for _ in 0..4 {
        servers.push(Server::start(Behaviour::Status(503)).await);
    }
    let bs: Vec<_> = servers
        .iter()
        .map(|s| backend("failing", &s.url, 10))
        .collect();
    assert!(read(&config, &ups, &view(&bs), "eth_getBalance")
        .await
        .is_err());
    assert_eq!(servers.iter().map(Server::calls).sum::<u64>(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_stalled_backend_times_out_and_the_read_goes_elsewhere() {
    let (config, ups) = network("    request_timeout: 30s\n");
    let (stalled, good) = (
        Server::start(Behaviour::Stall).await,
        Server::start(Behaviour::Answer).await,
    );
    let bs = [
        backend("stalled", &stalled.url, 3),
        backend("good", &good.url, 3),
    ];
    order(&bs[0], &bs[1]);
    let started = tokio::time::Instant::now();
    let reply = read(&config, &ups, &view(&bs), "eth_getBalance")
        .await
        .unwrap();
    assert_eq!(reply.raw(), br#""0x2a""#);
    assert!(started.elapsed() >= Duration::from_secs(30));
    assert_eq!((stalled.calls(), good.calls()), (1, 1));
    // The timeout counts as a slow answer: the stalled backend is avoided next.
    assert!(bs[0].load.estimate() >= Duration::from_secs(20));
}

#[tokio::test]
async fn a_failing_backend_is_ejected_and_gets_nothing_more() {
    let (config, ups) = network("    eject_after_failures: 2\n");
    let (bad, good, bs) = bad_and_good(2).await;
    let v = view(&bs);
    for _ in 0..2 {
        order(&bs[0], &bs[1]);
        assert!(read(&config, &ups, &v, "eth_getBalance").await.is_ok());
    }
    assert!(bs[0].is_ejected());
    // Cheap again, but ejected: not a candidate even in the old snapshot.
    order(&bs[0], &bs[1]);
    assert!(read(&config, &ups, &v, "eth_getBalance").await.is_ok());
    assert_eq!((bad.calls(), good.calls()), (2, 3));
}

#[tokio::test]
async fn a_send_goes_elsewhere_only_when_surely_not_received() {
    let (config, ups) = network("");
    let (bad, good, bs) = bad_and_good(3).await;
    order(&bs[0], &bs[1]);
    // A 503 may come from a proxy after the node took the transaction.
    let err = read(&config, &ups, &view(&bs), "eth_sendRawTransaction")
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            RouteError::Upstream {
                error: UpstreamError::Status(503),
                ..
            }
        ),
        "{err}"
    );
    assert_eq!((bad.calls(), good.calls()), (1, 0));

    // A refused connection: nothing was sent, so the next backend gets it.
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let refused = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let bs = [
        backend("refused", &refused, 3),
        backend("good", &good.url, 3),
    ];
    order(&bs[0], &bs[1]);
    let reply = read(&config, &ups, &view(&bs), "eth_sendRawTransaction")
        .await
        .unwrap();
    assert_eq!(reply.raw(), br#""0x2a""#);
    assert_eq!(good.calls(), 1);
}
