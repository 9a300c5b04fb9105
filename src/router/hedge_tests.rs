//! Hedged reads against real sockets and no anvil (the servers of the
//! router's tests: answering, failing or stalling, and counting what reaches
//! them). A stalled first backend makes "the hedge answered" certain
//! whatever the machine's speed; each test counts in a registry of its own.

use std::sync::Arc;
use std::time::Duration;

use fastrand::Rng;

use super::super::tests::{backend, order, view, Behaviour, Server};
use super::*;
use crate::config::Config;
use crate::metrics::{Metrics, RouteSeries};
use crate::router::{forward_with, Forward, RouteError, Target};
use crate::upstream::{Backend, NetworkView, Upstreams};

/// Network `name` with `extra` keys (each line indented for a network).
/// Each test's counters in a registry of its own.
fn network(name: &str, extra: &str) -> (NetworkConfig, Upstreams, Metrics) {
    let yaml = format!(
        "networks:\n  {name}:\n    chain_id: 1\n{extra}    upstreams:\n      - name: unused\n        http: http://127.0.0.1:1\n"
    );
    let mut config = Config::from_yaml(&yaml).unwrap().networks.remove(0);
    config.upstreams.clear();
    let metrics = Metrics::new();
    let upstreams = Upstreams::start(&config, &crate::upstream::http_client(), &metrics, None);
    (config, upstreams, metrics)
}

async fn read(
    config: &NetworkConfig,
    upstreams: &Upstreams,
    metrics: &Metrics,
    view: &NetworkView,
    method: &str,
) -> Result<Reply, RouteError> {
    let hedging = Hedging::new(config, &metrics.hedges);
    let target = Target {
        config,
        upstreams,
        hedging: &hedging,
        routed: &RouteSeries::default(),
    };
    let call = Forward {
        method,
        params: Some(r#"["0x01"]"#),
        min_head: 10,
        state_at: None,
        block: None,
    };
    forward_with(target, view, call, &mut Rng::with_seed(7)).await
}

/// `[not_needed, first_won, hedge_won, no_other_backend, cancelled]` of `network`.
fn counts(metrics: &Metrics, network: &str) -> [u64; 5] {
    let m = &metrics.hedges;
    let o = |o: &str| m.calls.with_label_values(&[network, o]).get();
    [
        o("not_needed"),
        o("first_won"),
        o("hedge_won"),
        o("no_other_backend"),
        m.cancelled.with_label_values(&[network]).get(),
    ]
}

fn pair(a: &Server, b: &Server) -> [Arc<Backend>; 2] {
    [backend("first", &a.url, 3), backend("second", &b.url, 3)]
}

#[tokio::test]
async fn a_stalled_read_is_answered_by_the_hedge_and_the_loser_is_cancelled() {
    let net = "hedge-stalled";
    let (config, ups, m) = network(
        net,
        "    request_timeout: 30s\n    hedge:\n      - methods: [eth_getBalance]\n        delay: 20ms\n",
    );
    let (stalled, good) = (
        Server::start(Behaviour::Stall).await,
        Server::start(Behaviour::Answer).await,
    );
    let bs = pair(&stalled, &good);
    order(&bs[0], &bs[1]);
    let reply = read(&config, &ups, &m, &view(&bs), "eth_getBalance")
        .await
        .unwrap();
    assert_eq!(reply.raw(), br#""0x2a""#);
    let origin = reply.origin.unwrap();
    assert_eq!((&*origin.backend, origin.attempts), ("second", 2));
    assert_eq!((stalled.calls(), good.calls()), (1, 1));
    assert_eq!(counts(&m, net), [0, 0, 1, 0, 1]);
    // The cancelled send taught its backend that it is at least that slow.
    assert!(bs[0].load.estimate() >= Duration::from_millis(20));
    assert_eq!(bs[0].load.in_flight(), 0);
}

#[tokio::test]
async fn a_read_answered_within_the_delay_is_sent_once() {
    let net = "hedge-fast";
    let (config, ups, m) = network(
        net,
        "    hedge:\n      - methods: ['eth_get*']\n        delay: 10s\n",
    );
    let (a, b) = (
        Server::start(Behaviour::Answer).await,
        Server::start(Behaviour::Answer).await,
    );
    let bs = pair(&a, &b);
    for _ in 0..3 {
        order(&bs[0], &bs[1]);
        let reply = read(&config, &ups, &m, &view(&bs), "eth_getBalance")
            .await
            .unwrap();
        assert_eq!(reply.origin.unwrap().attempts, 1);
    }
    assert_eq!((a.calls(), b.calls()), (3, 0));
    assert_eq!(counts(&m, net), [3, 0, 0, 0, 0]);
    // A method no entry names is not counted at all.
    order(&bs[0], &bs[1]);
    read(&config, &ups, &m, &view(&bs), "eth_chainId")
        .await
        .unwrap();
    assert_eq!(counts(&m, net), [3, 0, 0, 0, 0]);
}

#[tokio::test]
async fn a_failed_first_send_is_retried_as_without_hedging() {
    let net = "hedge-retry";
    let (config, ups, m) = network(
        net,
        "    hedge:\n      - methods: [eth_getBalance]\n        delay: 10s\n",
    );
    let (bad, good) = (
        Server::start(Behaviour::Status(503)).await,
        Server::start(Behaviour::Answer).await,
    );
    let bs = pair(&bad, &good);
    order(&bs[0], &bs[1]);
    let reply = read(&config, &ups, &m, &view(&bs), "eth_getBalance")
        .await
        .unwrap();
    assert_eq!(reply.origin.unwrap().attempts, 2);
    assert_eq!((bad.calls(), good.calls()), (1, 1));
    assert_eq!(counts(&m, net), [1, 0, 0, 0, 0]);
}

#[tokio::test]
async fn writes_are_never_hedged_even_under_a_glob() {
    let net = "hedge-writes";
    let (config, ups, m) = network(
        net,
        "    request_timeout: 300ms\n    hedge:\n      - methods: ['eth_*']\n        delay: 20ms\n",
    );
    let (stalled, good) = (
        Server::start(Behaviour::Stall).await,
        Server::start(Behaviour::Answer).await,
    );
    let bs = pair(&stalled, &good);
    order(&bs[0], &bs[1]);
    let err = read(&config, &ups, &m, &view(&bs), "eth_sendRawTransaction")
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            RouteError::Upstream {
                error: UpstreamError::Timeout(_),
                ..
            }
        ),
        "{err}"
    );
    // A timed-out send may have reached the node: it goes nowhere else.
    assert_eq!((stalled.calls(), good.calls()), (1, 0));
    assert_eq!(counts(&m, net), [0; 5]);
}

#[tokio::test]
async fn no_call_is_sent_more_than_max_extra_times_again() {
    for (max_extra, sends) in [(1, 2), (2, 3)] {
        let net = format!("hedge-max-{max_extra}");
        let (config, ups, m) = network(
            &net,
            &format!("    request_timeout: 400ms\n    max_attempts: 1\n    hedge:\n      - methods: [eth_getBalance]\n        delay: 20ms\n        max_extra: {max_extra}\n"),
        );
        let stalls = [
            Server::start(Behaviour::Stall).await,
            Server::start(Behaviour::Stall).await,
            Server::start(Behaviour::Stall).await,
            Server::start(Behaviour::Stall).await,
        ];
        let bs: Vec<_> = stalls
            .iter()
            .map(|s| backend("stalled", &s.url, 10))
            .collect();
        let err = read(&config, &ups, &m, &view(&bs), "eth_getBalance")
            .await
            .unwrap_err();
        assert!(matches!(err, RouteError::Upstream { .. }), "{err}");
        let calls: Vec<u64> = stalls.iter().map(Server::calls).collect();
        assert_eq!(calls.iter().sum::<u64>(), sends, "{calls:?}");
        assert!(calls.iter().all(|&c| c <= 1), "{calls:?}");
    }
}

#[tokio::test]
async fn a_lone_candidate_is_not_hedged_and_says_so() {
    let net = "hedge-alone";
    let (config, ups, m) = network(
        net,
        "    request_timeout: 30s\n    hedge:\n      - methods: [eth_getBalance]\n        delay: 20ms\n",
    );
    let only = Server::start(Behaviour::Answer).await;
    let bs = [backend("only", &only.url, 3)];
    // It answers at once, so the hedge delay rarely passes first; either
    // way the one backend is asked once.
    read(&config, &ups, &m, &view(&bs), "eth_getBalance")
        .await
        .unwrap();
    assert_eq!(only.calls(), 1);
    let [not_needed, first, hedge, alone, cancelled] = counts(&m, net);
    assert_eq!((first, hedge, cancelled), (0, 0, 0));
    assert_eq!(not_needed + alone, 1);
}

#[tokio::test(start_paused = true)]
async fn p95_is_three_ewma_estimates_between_a_millisecond_and_the_timeout() {
    let b = backend("b", "http://127.0.0.1:1", 3);
    let timeout = Duration::from_secs(1);
    b.load.reset(Duration::from_millis(10));
    assert_eq!(
        delay_for(HedgeDelay::P95, &b, timeout),
        Duration::from_millis(30)
    );
    b.load.reset(Duration::from_micros(10));
    assert_eq!(delay_for(HedgeDelay::P95, &b, timeout), MIN_P95_DELAY);
    b.load.reset(Duration::from_secs(2));
    assert_eq!(delay_for(HedgeDelay::P95, &b, timeout), timeout);
    let fixed = HedgeDelay::After(Duration::from_millis(50));
    assert_eq!(delay_for(fixed, &b, timeout), Duration::from_millis(50));
}

#[test]
fn rules_cover_reads_only_and_the_first_entry_wins() {
    let (config, _) = {
        let yaml = "networks:\n  n:\n    chain_id: 1\n    hedge:\n      - methods: [eth_call]\n        delay: 5ms\n      - methods: ['eth_*']\n        max_extra: 2\n    upstreams:\n      - name: u\n        http: http://127.0.0.1:1\n";
        (Config::from_yaml(yaml).unwrap().networks.remove(0), ())
    };
    let h = Hedging::new(&config, &Metrics::new().hedges);
    let plan = |m: &str| h.race(m).map(|r| r.plan);
    assert_eq!(
        plan("eth_call"),
        Some(Plan {
            delay: HedgeDelay::After(Duration::from_millis(5)),
            max_extra: 1
        })
    );
    assert_eq!(
        plan("eth_getLogs"),
        Some(Plan {
            delay: HedgeDelay::P95,
            max_extra: 2
        })
    );
    for never in [
        "eth_sendRawTransaction",
        "eth_newFilter",
        "eth_getFilterChanges",
        "eth_subscribe",
        "eth_notAMethod",
        "net_version",
    ] {
        assert_eq!(plan(never), None, "{never}");
    }
    assert!(Hedging::off().race("eth_call").is_none());
}
