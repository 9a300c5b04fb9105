//! CPU cost of the request path outside the network: envelope parsing, block
//! pinning and answer assembly, per call and per batch of 100.
//!
//! Baseline, measured in the same run: parsing the same body into a full
//! `serde_json::Value` (what a gateway that does not keep params raw pays
//! before it even starts). Report the ratios, not the absolute times: the
//! machine is shared and noisy.

use criterion::{criterion_group, criterion_main, Criterion};
use rpcgate::jsonrpc::{self, Payload};
use rpcgate::router::blocks;
use std::hint::black_box;

const CALL: &str = r#"{"jsonrpc":"2.0","id":7,"method":"eth_call","params":[{"from":"0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266","to":"0x70997970c51812dc3a010c7d01b54e5c0979720c","data":"0xa9059cbb00000000000000000000000070997970c51812dc3a010c7d01b54e5c0979720c0000000000000000000000000000000000000000000000000de0b6b3a7640000"},"latest"]}"#;

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
                jsonrpc::parse(black_box(CALL.as_bytes()), 100, 128)
            else {
                unreachable!()
            };
            let need = blocks::analyze(&call.method, call.params, 0x1234);
            black_box(&need);
            black_box(jsonrpc::result_response(call.reply_id(), result))
        })
    });
    let body = batch();
    c.bench_function("baseline: serde_json::Value parse of a batch of 100", |b| {
        b.iter(|| black_box(serde_json::from_str::<serde_json::Value>(black_box(&body)).unwrap()))
    });
    c.bench_function("rpcgate: batch of 100 (parse, pin latest, answer)", |b| {
        b.iter(|| {
            let Ok(Payload::Batch(entries)) = jsonrpc::parse(black_box(body.as_bytes()), 100, 128)
            else {
                unreachable!()
            };
            let parts: Vec<_> = entries
                .into_iter()
                .map(|e| {
                    let call = e.unwrap();
                    black_box(blocks::analyze(&call.method, call.params, 0x1234));
                    jsonrpc::result_response(call.reply_id(), result)
                })
                .collect();
            black_box(jsonrpc::join_batch(&parts))
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
