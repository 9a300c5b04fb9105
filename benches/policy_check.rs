//! CPU cost of the client policy per request: identify the caller (key from
//! a header, SHA-256, constant-time table lookup), check the method rules,
//! look up the cost, and charge the local limiter. Target: under 1 µs.
//!
//! Baseline, measured in the same run: parsing one small call into a
//! `serde_json::Value` (what a gateway pays for any request before routing
//! it). Report the ratio beside the absolute time: the machine is shared.
//! First run (2 shared cores, 200 clients): keyed client 322 ns, anonymous
//! 189 ns, baseline 714 ns (ratios 0.45 and 0.27).

// Bench and example code: no API, and a failed unwrap stops the run
// (the product's lints in Cargo.toml are for src/).
#![allow(unreachable_pub, clippy::unwrap_used)]

use std::net::IpAddr;

use criterion::{criterion_group, criterion_main, Criterion};
use http::{HeaderMap, HeaderValue};
use rpcgate::config::Config;
use rpcgate::policy::ClientPolicy;
use std::hint::black_box;

const KEY: &str = "bench-key-0123456789abcdef";
const CALL: &str = r#"{"jsonrpc":"2.0","id":7,"method":"eth_getBalance","params":["0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266","latest"]}"#;

fn config() -> Config {
    // 200 clients with a key each, limits far above what the bench spends.
    let mut yaml = String::from(
        "networks:\n  dev:\n    chain_id: 1\n    upstreams:\n      - name: a\n        http: http://127.0.0.1:1\npolicy:\n  anonymous:\n    limits:\n      requests_per_second: 10000000\n      burst: 4000000000\n      compute_units_per_second: 10000000\n      compute_burst: 4000000000\n  clients:\n",
    );
    for i in 0..200 {
        let key = if i == 77 {
            KEY.to_string()
        } else {
            format!("other-key-{i:016}")
        };
        let hex: String = rpcgate::config::KeyDigest::of(&key)
            .0
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        yaml.push_str(&format!(
            "    c{i}:\n      key_sha256: [{hex}]\n      allow: ['@default', debug_trace*]\n      deny: [eth_sendRawTransaction]\n      limits:\n        requests_per_second: 10000000\n        burst: 4000000000\n        compute_units_per_second: 10000000\n        compute_burst: 4000000000\n"
        ));
    }
    Config::from_yaml(&yaml).expect("bench config")
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _guard = runtime.enter();
    let config = config();
    let policy = ClientPolicy::new(
        &config.policy,
        None,
        &rpcgate::metrics::Metrics::new().policy,
    );
    let peer: IpAddr = "192.0.2.1".parse().unwrap();
    let mut with_key = HeaderMap::new();
    with_key.insert("x-api-key", HeaderValue::from_static(KEY));
    let anonymous = HeaderMap::new();

    c.bench_function("baseline: serde_json::Value parse of one call", |b| {
        b.iter(|| black_box(serde_json::from_str::<serde_json::Value>(black_box(CALL)).unwrap()))
    });
    c.bench_function("policy: keyed client (key, method, cost, limiter)", |b| {
        b.iter(|| {
            let caller = policy.identify(peer, black_box(&with_key), None).unwrap();
            let cost = policy
                .permit_method(&caller, black_box("eth_getBalance"))
                .unwrap();
            policy.check_local(&caller, cost).unwrap();
        })
    });
    c.bench_function(
        "policy: anonymous by IP (method, cost, keyed limiter)",
        |b| {
            b.iter(|| {
                let caller = policy.identify(peer, black_box(&anonymous), None).unwrap();
                let cost = policy
                    .permit_method(&caller, black_box("eth_getBalance"))
                    .unwrap();
                policy.check_local(&caller, cost).unwrap();
            })
        },
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
