//! CPU cost of choosing a backend for one call, with 3, 30 and 300
//! upstreams in a network: the candidate filter over the view snapshot
//! (eligible, not ejected, head high enough) and one power-of-two-choices
//! pick over the Peak-EWMA loads (two estimate reads, decayed to now).
//! The filter is linear in the upstreams, the pick constant. The machine is
//! shared and noisy: compare the sizes with each other, not across runs.

// Bench code: no API, and a failed unwrap stops the run (the product's
// lints in Cargo.toml are for src/).
#![allow(unreachable_pub, clippy::unwrap_used)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use rpcgate::config::UpstreamConfig;
use rpcgate::router::select;
use rpcgate::upstream::head::{BlockId, ChainCheck, HeadState};
use rpcgate::upstream::view::{self, ServedHead};
use rpcgate::upstream::{http_client, Backend, NetworkView};

/// A network of `n` backends at heads 100 and 99 (all eligible), with
/// latency estimates from 1 to 4 ms and a few requests in flight.
fn network(n: usize) -> NetworkView {
    let client = http_client();
    let states = (0..n)
        .map(|i| {
            let cfg = UpstreamConfig {
                name: format!("b{i}"),
                http: format!("http://127.0.0.1:{}", 10_000 + i).parse().unwrap(),
                ws: None,
                headers: Default::default(),
                tier: Default::default(),
                state_history: None,
                tls: None,
            };
            let b = Backend::new(
                "bench",
                &cfg,
                client.clone(),
                1 << 20,
                3,
                &rpcgate::metrics::Metrics::new(),
            );
            b.load
                .observe(Duration::from_micros(1000 + 1000 * (i as u64 % 4)));
            let number = 100 - (i as u64 % 2);
            let state = HeadState {
                chain: ChainCheck::Ok,
                reachable: true,
                syncing: false,
                latest: Some(BlockId {
                    number,
                    hash: format!("0x{number:x}"),
                }),
                safe: None,
                finalized: None,
                reorgs: 0,
                last_error: None,
                seen: vec![BlockId {
                    number,
                    hash: format!("0x{number:x}"),
                }],
            };
            (b, state)
        })
        .collect();
    let rules = view::Rules {
        network: "bench".into(),
        max_lag: 2,
        watchdog: Duration::from_secs(10),
        catch_up: Duration::from_secs(2),
    };
    view::build(
        states,
        &rules,
        &mut ServedHead::default(),
        tokio::time::Instant::now(),
    )
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("select one backend (filter + P2C)");
    for n in [3, 30, 300] {
        let view = network(n);
        let _held: Vec<_> = view
            .backends
            .iter()
            .step_by(3)
            .map(|b| b.backend.load.start())
            .collect();
        let mut rng = fastrand::Rng::with_seed(1);
        group.bench_with_input(BenchmarkId::from_parameter(n), &view, |b, view| {
            b.iter(|| {
                let candidates = select::candidates(black_box(view), 99);
                black_box(select::pick(&candidates, &mut rng).map(|c| c.head))
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
