//! CPU cost of the request path outside the network: envelope parsing, block
//! pinning and answer assembly, per call and per batch of 100; and a whole
//! cache hit (parse, client policy, block analysis, cache lookup, answer
//! bytes), the per-call work the cache-hit load test adds to a bare server.
//!
//! Baseline, measured in the same run: parsing the same body into a full
//! `serde_json::Value` (what a gateway that does not keep params raw pays
//! before it even starts). Report the ratios, not the absolute times: the
//! machine is shared and noisy.

// Bench and example code: no API, and a failed unwrap stops the run
// (the product's lints in Cargo.toml are for src/).
#![allow(unreachable_pub, clippy::unwrap_used)]

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion};
use http::{header, HeaderMap, HeaderValue};
use rpcgate::cache::{Cache, Lookup};
use rpcgate::config::{CacheConfig, PolicyConfig};
use rpcgate::eth::methods::{self, Resolved};
use rpcgate::eth::{self, BlockArg, Method, Pinned};
use rpcgate::jsonrpc::Reply;
use rpcgate::jsonrpc::{self, Payload};
use rpcgate::policy::ClientPolicy;
use rpcgate::router::RouteError;
use rpcgate::upstream::NetworkView;

const CALL: &str = r#"{"jsonrpc":"2.0","id":7,"method":"eth_call","params":[{"from":"0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266","to":"0x70997970c51812dc3a010c7d01b54e5c0979720c","data":"0xa9059cbb00000000000000000000000070997970c51812dc3a010c7d01b54e5c0979720c0000000000000000000000000000000000000000000000000de0b6b3a7640000"},"latest"]}"#;

/// Block pinning as the pipeline runs it: the method looked up in the
/// table, then its block argument pinned.
fn pin<'a>(
    method: &str,
    params: Option<&'a serde_json::value::RawValue>,
    served: u64,
) -> (Option<&'static Method>, Pinned<'a>) {
    let spec = methods::lookup(method).map(|(_, m)| m);
    let arg = spec.map_or(BlockArg::None, |m| m.block);
    (spec, eth::pin(arg, params, served))
}

fn batch() -> String {
    format!("[{}]", vec![CALL; 100].join(","))
}

fn bench(c: &mut Criterion) {
    let result = br#""0x000000000000000000000000000000000000000000000000000000000000002a""#;
    c.bench_function("baseline: serde_json::Value parse of one call", |b| {
        b.iter(|| black_box(serde_json::from_str::<serde_json::Value>(black_box(CALL)).unwrap()))
    });
    c.bench_function("rpcgate: one call (parse, pin latest, answer)", |b| {
        b.iter(|| {
            let Ok(Payload::Single(Ok(call))) =
                jsonrpc::parse(black_box(CALL.as_bytes()), 100, 128, 64)
            else {
                unreachable!()
            };
            let pinned = pin(&call.method, call.params, 0x1234);
            black_box(&pinned);
            black_box(jsonrpc::result_response(call.reply_id(), result))
        })
    });
    let body = batch();
    c.bench_function("baseline: serde_json::Value parse of a batch of 100", |b| {
        b.iter(|| black_box(serde_json::from_str::<serde_json::Value>(black_box(&body)).unwrap()))
    });
    c.bench_function("rpcgate: batch of 100 (parse, pin latest, answer)", |b| {
        b.iter(|| {
            let Ok(Payload::Batch(entries)) =
                jsonrpc::parse(black_box(body.as_bytes()), 100, 128, 64)
            else {
                unreachable!()
            };
            let parts: Vec<_> = entries
                .into_iter()
                .map(|e| {
                    let call = e.unwrap();
                    black_box(pin(&call.method, call.params, 0x1234));
                    jsonrpc::result_response(call.reply_id(), result)
                })
                .collect();
            black_box(jsonrpc::join_batch(&parts))
        })
    });
}

/// The call of `loadtests/cache-hit`: a finalized block, answered from memory.
const HIT: &str =
    r#"{"jsonrpc":"2.0","id":1,"method":"eth_getBlockByNumber","params":["0x0",false]}"#;

fn cache_hit(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let policy = ClientPolicy::new(
        &PolicyConfig::default(),
        None,
        &rpcgate::metrics::Metrics::new().policy,
    );
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let peer = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let view = NetworkView {
        served_head: Some(0x100),
        finalized: Some(0xf0),
        ..NetworkView::default()
    };
    // A block answer of the size anvil gives for block 0 (about 1.7 kB).
    let block = Bytes::from(format!(
        r#"{{"number":"0x0","hash":"0x{}","logsBloom":"0x{}","transactions":[]}}"#,
        "ab".repeat(32),
        "00".repeat(256 + 300)
    ));
    let (_published, published) = tokio::sync::watch::channel(());
    let cache = rt.block_on(async {
        let (cache, _tasks) = Cache::<RouteError>::start(
            "bench",
            &CacheConfig::default(),
            None,
            Arc::new(ArcSwap::from_pointee(view.clone())),
            published,
            Duration::from_secs(1),
        );
        // The first call misses and stores the answer; every later one hits.
        let Ok(Payload::Single(Ok(call))) = jsonrpc::parse(HIT.as_bytes(), 100, 128, 64) else {
            unreachable!()
        };
        let (spec, pinned) = pin(&call.method, call.params, 0x100);
        let Lookup::Fetch(ticket) = cache.lookup(&view, &call.method, spec, &pinned).await else {
            panic!("the first call is a miss")
        };
        let stored = ticket
            .complete(&view, Ok(Reply::result_from(block.clone())))
            .await;
        assert!(stored.is_ok());
        cache
    });
    c.bench_function(
        "rpcgate: cache hit (parse, policy, pin, lookup, answer)",
        |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let start = Instant::now();
                    for _ in 0..iters {
                        let Ok(Payload::Single(Ok(call))) =
                            jsonrpc::parse(black_box(HIT.as_bytes()), 100, 128, 64)
                        else {
                            unreachable!()
                        };
                        let caller = policy.identify(peer, &headers, None).unwrap();
                        // As the pipeline does: the method resolved once, read by every step.
                        let method = Resolved::of(&call.method);
                        policy.admit(&caller, method).await.unwrap();
                        let spec = method.spec();
                        let arg = spec.map_or(BlockArg::None, |m| m.block);
                        let pinned = eth::pin(arg, call.params, 0x100);
                        let Lookup::Answered(Ok(reply), _) =
                            cache.lookup(&view, &call.method, spec, &pinned).await
                        else {
                            panic!("a hit")
                        };
                        black_box(jsonrpc::result_response(call.reply_id(), reply.raw()));
                    }
                    start.elapsed()
                })
            })
        },
    );
}

criterion_group!(benches, bench, cache_hit);
criterion_main!(benches);
