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
use crate::config::{Config, UpstreamConfig, UpstreamTier};
use crate::metrics::{Metrics, RouteSeries};
use crate::upstream::head::{BlockId, ChainCheck, HeadState};
use crate::upstream::{http_client, Backend, Ineligible};

#[derive(Clone, Copy)]
pub(super) enum Behaviour {
    Answer,
    Status(u16),
    Stall,
    /// A pruned node asked for old state.
    MissingState,
}

pub(super) struct Server {
    pub(super) url: String,
    calls: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl Server {
    pub(super) async fn start(behaviour: Behaviour) -> Server {
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

    pub(super) fn calls(&self) -> u64 {
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
        Behaviour::MissingState => (
            200,
            br#"{"jsonrpc":"2.0","id":1,"error":{"code":-32000,"message":"missing trie node 5b2e8c (path ) <nil>"}}"#,
        ),
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
    let upstreams = Upstreams::start(&config, &http_client(), &Metrics::new(), None);
    (config, upstreams)
}

pub(super) fn backend(name: &str, url: &str, eject_after: u32) -> Arc<Backend> {
    backend_as(name, url, eject_after, UpstreamTier::Primary, None)
}

fn backend_as(
    name: &str,
    url: &str,
    eject_after: u32,
    tier: UpstreamTier,
    state_history: Option<u64>,
) -> Arc<Backend> {
    let cfg = UpstreamConfig {
        name: name.into(),
        http: url.parse().unwrap(),
        ws: None,
        headers: Default::default(),
        tier,
        state_history,
        tls: None,
    };
    Backend::new(
        "router-test",
        &cfg,
        http_client(),
        1 << 20,
        eject_after,
        &Metrics::new(),
    )
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
                seen: Vec::new(),
            },
            head: 10,
            // A fallback is in standby, as the view builder makes it while primaries serve.
            ineligible: (b.tier == UpstreamTier::Fallback).then_some(Ineligible::Standby),
            state_history: b.state_history(),
            ask: None,
        })
        .collect()
}

pub(super) fn view(backends: &[Arc<Backend>]) -> NetworkView {
    NetworkView {
        backends: views_of(backends),
        best_head: Some(10),
        served_head: Some(10),
        ..NetworkView::default()
    }
}

/// Makes `first` the cheaper of the two, so P2C tries it first.
pub(super) fn order(first: &Backend, second: &Backend) {
    set_estimate(first, Duration::from_micros(10));
    set_estimate(second, Duration::from_secs(1));
}

/// Gives `b` the estimate `rtt`, as if its first answer had taken that long.
pub(super) fn set_estimate(b: &Backend, rtt: Duration) {
    b.load.reset(rtt);
    b.load.observe(rtt);
}

async fn read(
    config: &NetworkConfig,
    upstreams: &Upstreams,
    view: &NetworkView,
    method: &str,
) -> Result<Reply, RouteError> {
    read_state(config, upstreams, view, method, None, 5).await
}

/// A read of the state at `state_at` (when given), with the seed `seed`.
async fn read_state(
    config: &NetworkConfig,
    upstreams: &Upstreams,
    view: &NetworkView,
    method: &str,
    state_at: Option<u64>,
    seed: u64,
) -> Result<Reply, RouteError> {
    let hedging = hedge::Hedging::new(config, &Metrics::new().hedges);
    let target = Target {
        config,
        upstreams,
        hedging: &hedging,
        routed: &RouteSeries::default(),
    };
    let call = Forward {
        method,
        params: Some(r#"["0x01"]"#),
        min_head: state_at.unwrap_or(10),
        state_at,
        block: None,
    };
    forward_with(target, view, call, &mut Rng::with_seed(seed)).await
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
async fn a_request_the_backend_refuses_is_not_retried_and_does_not_eject() {
    // 413 is the request's fault (F5): one call, no ejection even at
    // `eject_after: 1`, no other backend, and no latency penalty.
    let (config, ups) = network("");
    let refusing = Server::start(Behaviour::Status(413)).await;
    let good = Server::start(Behaviour::Answer).await;
    let bs = [
        backend("refusing", &refusing.url, 1),
        backend("good", &good.url, 1),
    ];
    order(&bs[0], &bs[1]);
    let err = read(&config, &ups, &view(&bs), "eth_getBalance")
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            RouteError::Upstream {
                error: UpstreamError::Refused(413),
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!((refusing.calls(), good.calls()), (1, 0));
    assert!(!bs[0].is_ejected());
    assert!(
        bs[0].load.estimate() < std::time::Duration::from_secs(1),
        "no penalty"
    );
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

#[tokio::test]
async fn old_state_goes_only_to_nodes_that_hold_it_and_recent_state_everywhere() {
    let (config, ups) = network("");
    let servers = [
        Server::start(Behaviour::Answer).await,
        Server::start(Behaviour::Answer).await,
        Server::start(Behaviour::Answer).await,
    ];
    // Two pruned nodes keeping 4 blocks below head 10, one archive.
    let bs = [
        backend_as(
            "pruned-0",
            &servers[0].url,
            3,
            UpstreamTier::Primary,
            Some(4),
        ),
        backend_as(
            "pruned-1",
            &servers[1].url,
            3,
            UpstreamTier::Primary,
            Some(4),
        ),
        backend_as("archive", &servers[2].url, 3, UpstreamTier::Primary, None),
    ];
    let v = view(&bs);
    for seed in 0..60 {
        read_state(&config, &ups, &v, "eth_getBalance", Some(5), seed)
            .await
            .unwrap();
    }
    let calls = || servers.iter().map(Server::calls).collect::<Vec<_>>();
    assert_eq!(
        calls(),
        [0, 0, 60],
        "block 5 is 5 deep: only the archive holds it"
    );
    // Block 6 is 4 deep: every node holds it, and P2C spreads the reads.
    for seed in 0..300 {
        // Equal loads, so the spread is P2C's alone (real round trips vary).
        // The estimate decays from its reset on, so the node reset last
        // looks a little slower: the order rotates, or a slow machine would
        // always hand the ties to the same node.
        for i in 0..bs.len() {
            bs[(i + seed as usize) % bs.len()]
                .load
                .reset(Duration::from_millis(1));
        }
        read_state(&config, &ups, &v, "eth_getBalance", Some(6), seed)
            .await
            .unwrap();
    }
    let spread = calls();
    // Each of the three gets a part of the 300 (the archive had 60 before).
    assert!(
        spread[0] >= 30 && spread[1] >= 30 && spread[2] >= 60 + 30,
        "{spread:?}"
    );
    // No filter for a call that reads no state.
    assert!(read(&config, &ups, &v, "eth_getBlockByNumber")
        .await
        .is_ok());
}

#[tokio::test]
async fn a_missing_state_answer_teaches_the_window_and_is_retried_at_once() {
    // Two attempts: the missing-state answer uses one (F7: a read that every
    // node answers so costs `max_attempts` calls, not one per backend), and
    // it is no failure (one failure would eject here).
    let (config, ups) = network("    max_attempts: 2\n    eject_after_failures: 1\n");
    let pruned = Server::start(Behaviour::MissingState).await;
    let archive = Server::start(Behaviour::Answer).await;
    let bs = [
        backend("pruned", &pruned.url, 1),
        backend("archive", &archive.url, 1),
    ];
    order(&bs[0], &bs[1]);
    let reply = read_state(&config, &ups, &view(&bs), "eth_getBalance", Some(3), 5)
        .await
        .unwrap();
    assert_eq!(reply.raw(), br#""0x2a""#);
    assert_eq!((pruned.calls(), archive.calls()), (1, 1));
    // Lacking block 3 at head 10 (7 deep): taken as keeping 3, and no failure.
    assert_eq!(bs[0].state_history(), Some(3));
    assert_eq!(bs[0].missing_state_answers(), 1);
    assert!(!bs[0].is_ejected());
    assert_eq!(bs[1].state_history(), None);
    // The next view carries the window: reads of blocks 3 to 6 skip the
    // pruned node though it is the cheaper; block 7 (3 deep) is still its.
    let v = view(&bs);
    for block in 3..=6 {
        order(&bs[0], &bs[1]);
        read_state(&config, &ups, &v, "eth_getBalance", Some(block), 5)
            .await
            .unwrap();
    }
    assert_eq!((pruned.calls(), archive.calls()), (1, 5));
    order(&bs[0], &bs[1]);
    let answer = read_state(&config, &ups, &v, "eth_getBalance", Some(7), 5).await;
    assert_eq!(answer.unwrap().raw(), br#""0x2a""#);
    assert_eq!((pruned.calls(), archive.calls()), (2, 6));
    // The window only narrows: lacking block 7 (3 deep) teaches 1.
    assert_eq!(bs[0].state_history(), Some(1));
    // A missing-state answer at the node's own head is not about pruning:
    // passed on as the node's answer, nothing learned.
    let alone = [backend("pruned-alone", &pruned.url, 1)];
    let reply = read_state(&config, &ups, &view(&alone), "eth_getBalance", Some(10), 5)
        .await
        .unwrap();
    assert!(reply.is_error());
    assert_eq!(alone[0].state_history(), None);
}

#[tokio::test]
async fn when_no_node_is_known_to_hold_the_block_all_are_tried_the_widest_first() {
    let (config, ups) = network("");
    let narrow = Server::start(Behaviour::Answer).await;
    let wide = Server::start(Behaviour::MissingState).await;
    let bs = [
        backend_as("narrow", &narrow.url, 3, UpstreamTier::Primary, Some(2)),
        backend_as("wide", &wide.url, 3, UpstreamTier::Primary, Some(5)),
    ];
    // Cheapest first would be `narrow`; the order of state kept wins.
    order(&bs[0], &bs[1]);
    let reply = read_state(&config, &ups, &view(&bs), "eth_getBalance", Some(1), 5)
        .await
        .unwrap();
    assert_eq!(reply.raw(), br#""0x2a""#, "not refused: tried anyway");
    assert_eq!((wide.calls(), narrow.calls()), (1, 1));
    // Every node answers "missing": the client gets the node's own answer.
    let both = [
        backend_as("a", &wide.url, 3, UpstreamTier::Primary, Some(2)),
        backend_as("b", &wide.url, 3, UpstreamTier::Primary, Some(5)),
    ];
    let reply = read_state(&config, &ups, &view(&both), "eth_getBalance", Some(1), 5)
        .await
        .unwrap();
    assert!(reply.error_message().unwrap().contains("missing trie node"));
    assert_eq!(wide.calls(), 3);
}

#[tokio::test]
async fn a_fallback_is_idle_while_a_primary_answers_and_serves_when_every_primary_fails() {
    let (config, ups) = network("    max_attempts: 2\n");
    let primary = Server::start(Behaviour::Answer).await;
    let fallback = Server::start(Behaviour::Answer).await;
    let bs = [
        backend("primary", &primary.url, 10),
        backend_as("fallback", &fallback.url, 10, UpstreamTier::Fallback, None),
    ];
    // The fallback looks cheaper, and is still not chosen.
    order(&bs[1], &bs[0]);
    let v = view(&bs);
    for seed in 0..30 {
        read_state(&config, &ups, &v, "eth_getBalance", None, seed)
            .await
            .unwrap();
    }
    assert_eq!((primary.calls(), fallback.calls()), (30, 0));

    // Both primaries fail this call: the fallback answers it.
    let failing = [
        Server::start(Behaviour::Status(503)).await,
        Server::start(Behaviour::Status(500)).await,
    ];
    let bs = [
        backend("p0", &failing[0].url, 10),
        backend("p1", &failing[1].url, 10),
        backend_as("fallback", &fallback.url, 10, UpstreamTier::Fallback, None),
    ];
    let reply = read(&config, &ups, &view(&bs), "eth_getBalance")
        .await
        .unwrap();
    assert_eq!(reply.raw(), br#""0x2a""#);
    assert_eq!(
        (failing[0].calls(), failing[1].calls(), fallback.calls()),
        (1, 1, 1)
    );
    // No primary in the view at all (the ejected ones are no candidates):
    // the fallback still serves rather than a "no backend" error.
    let gone = [backend("gone", &failing[0].url, 1)];
    let _ = gone[0]
        .call("eth_chainId", None, Duration::from_secs(1))
        .await;
    assert!(gone[0].is_ejected());
    let bs = [
        gone[0].clone(),
        backend_as("fallback", &fallback.url, 10, UpstreamTier::Fallback, None),
    ];
    assert!(read(&config, &ups, &view(&bs), "eth_getBalance")
        .await
        .is_ok());
    assert_eq!(fallback.calls(), 2);
}
