//! CPU time per compressed answer, and the ratio, for a real 100 KiB
//! `eth_getBlockByNumber(n, true)` answer from anvil (128 transactions,
//! `benches/fixtures/block-with-transactions.json`, made by
//! `benches/fixtures/make-block`).
//!
//! Baseline, measured in the same run: copying the answer into a fresh
//! buffer, which is about what a cache hit already pays to build an answer
//! around the cached result. The codings run at the levels the gateway uses
//! (`rpcgate::edge::compression`), beside a few other levels to show why
//! those were chosen. Compressed sizes are printed once. Report ratios
//! against the baseline, not absolute times: the machine is shared.

// Bench code: no API, and a failed unwrap stops the run.
#![allow(unreachable_pub, clippy::unwrap_used)]

use std::hint::black_box;
use std::io::Write;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rpcgate::config::ContentCoding;
use rpcgate::edge::compression::{compress, Inflater};

const BLOCK: &[u8] = include_bytes!("fixtures/block-with-transactions.json");

fn gzip(level: u32, body: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(level));
    e.write_all(body).unwrap();
    e.finish().unwrap()
}

fn brotli(quality: i32, body: &[u8]) -> Vec<u8> {
    let params = brotli::enc::BrotliEncoderParams {
        quality,
        size_hint: body.len(),
        ..Default::default()
    };
    let mut out = Vec::new();
    brotli::BrotliCompress(&mut &body[..], &mut out, &params).unwrap();
    out
}

fn bench(c: &mut Criterion) {
    let n = BLOCK.len();
    let report = |name: &str, len: usize| {
        println!(
            "size {name}: {len} bytes of {n} ({:.1}%, {} saved)",
            100.0 * len as f64 / n as f64,
            n - len
        );
    };
    for coding in [ContentCoding::Gzip, ContentCoding::Br, ContentCoding::Zstd] {
        report(
            &format!("{} (gateway level)", coding.token()),
            compress(coding, BLOCK).unwrap().len(),
        );
    }
    for level in [1, 3, 6, 9] {
        report(&format!("gzip level {level}"), gzip(level, BLOCK).len());
    }
    for quality in [2, 3, 5, 6, 11] {
        report(
            &format!("br quality {quality}"),
            brotli(quality, BLOCK).len(),
        );
    }
    for level in [3, 6] {
        report(
            &format!("zstd level {level}"),
            zstd::bulk::compress(BLOCK, level).unwrap().len(),
        );
    }

    let mut g = c.benchmark_group("block answer 100 KiB");
    g.throughput(Throughput::Bytes(n as u64));
    g.bench_function("baseline: copy the answer", |b| {
        b.iter(|| black_box(black_box(BLOCK).to_vec()))
    });
    for coding in [ContentCoding::Gzip, ContentCoding::Br, ContentCoding::Zstd] {
        g.bench_function(format!("{} (gateway level)", coding.token()), |b| {
            b.iter(|| black_box(compress(coding, black_box(BLOCK)).unwrap()))
        });
    }
    g.bench_function("gzip level 6", |b| b.iter(|| black_box(gzip(6, BLOCK))));
    g.bench_function("gzip level 1", |b| b.iter(|| black_box(gzip(1, BLOCK))));
    g.bench_function("gzip level 3", |b| b.iter(|| black_box(gzip(3, BLOCK))));
    g.bench_function("br quality 3", |b| b.iter(|| black_box(brotli(3, BLOCK))));
    g.bench_function("br quality 5", |b| b.iter(|| black_box(brotli(5, BLOCK))));
    g.bench_function("br quality 6", |b| b.iter(|| black_box(brotli(6, BLOCK))));
    g.bench_function("zstd level 3", |b| {
        b.iter(|| black_box(zstd::bulk::compress(BLOCK, 3).unwrap()))
    });
    // The other side: a compressed request body of this size, decoded
    // frame by frame under the cap, as the HTTP tier does.
    for coding in [ContentCoding::Gzip, ContentCoding::Br, ContentCoding::Zstd] {
        let packed = compress(coding, BLOCK).unwrap();
        g.bench_function(format!("decode a {} request body", coding.token()), |b| {
            b.iter(|| {
                let mut inflater = Inflater::new(coding, 5 << 20).unwrap();
                for chunk in packed.chunks(16 * 1024) {
                    inflater.feed_all(chunk).unwrap();
                }
                black_box(inflater.finish().unwrap())
            })
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(std::time::Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);
