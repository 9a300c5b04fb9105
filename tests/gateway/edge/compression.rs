//! Compression as clients see it: answers in gzip, br and zstd that decode
//! to exactly the bytes of the uncompressed answer (a block with 40
//! transactions, and a small answer that stays uncompressed), `Vary`, curl
//! `--compressed` as a real client, compressed request bodies, and a
//! decompression bomb refused with 413 while the gateway process's peak RSS
//! stays far below what the bomb inflates to.

use std::io::{Read, Write};

use serde_json::{json, Value};

use crate::support::*;

const BLOCK_CALL: &str =
    r#"{"jsonrpc":"2.0","id":7,"method":"eth_getBlockByNumber","params":["0x1",true]}"#;
const SMALL_CALL: &str = r#"{"jsonrpc":"2.0","id":8,"method":"eth_chainId"}"#;

fn header<'a>(headers: &'a http::HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).map(|v| v.to_str().unwrap())
}

/// A decoder of one content coding.
type Decode = fn(&[u8]) -> Vec<u8>;

fn gunzip(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(data)
        .read_to_end(&mut out)
        .unwrap();
    out
}

fn unbrotli(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    brotli::Decompressor::new(data, 4096)
        .read_to_end(&mut out)
        .unwrap();
    out
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(9));
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn brotli(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let params = brotli::enc::BrotliEncoderParams {
        quality: 9,
        ..Default::default()
    };
    brotli::BrotliCompress(&mut &data[..], &mut out, &params).unwrap();
    out
}

/// One anvil whose block 1 holds 40 transfers, behind a gateway in this process.
async fn block_with_transactions() -> (rpcgate_fleet::Fleet, Gw) {
    let fleet = fleet(1).await;
    for i in 0..40u128 {
        fleet.transfer(OTHER, 1_000 + i).await.unwrap();
    }
    fleet.mine().await.unwrap();
    let gw = gateway_over(&fleet, "", 1).await;
    (fleet, gw)
}

#[tokio::test]
async fn answers_decode_to_exactly_the_uncompressed_answer() {
    let (_fleet, gw) = block_with_transactions().await;

    let plain = post_with_headers(&gw.url, &[], BLOCK_CALL).await;
    assert_eq!(plain.status, 200);
    assert_eq!(header(&plain.headers, "content-encoding"), None);
    assert_eq!(header(&plain.headers, "vary"), Some("accept-encoding"));
    let block: Value = serde_json::from_slice(&plain.body).unwrap();
    assert_eq!(
        block["result"]["transactions"].as_array().unwrap().len(),
        40
    );
    assert!(plain.body.len() > 20_000, "{} bytes", plain.body.len());

    let decoders: [(&str, Decode); 3] = [
        ("gzip", gunzip),
        ("br", unbrotli),
        ("zstd", |d| zstd::decode_all(d).unwrap()),
    ];
    for (coding, decode) in decoders {
        // The second and later ones are cache hits: compressed per answer.
        let reply = post_with_headers(&gw.url, &[("accept-encoding", coding)], BLOCK_CALL).await;
        assert_eq!(reply.status, 200);
        assert_eq!(
            header(&reply.headers, "content-encoding"),
            Some(coding),
            "{coding}"
        );
        assert_eq!(header(&reply.headers, "vary"), Some("accept-encoding"));
        assert_eq!(
            header(&reply.headers, "content-length"),
            Some(reply.body.len().to_string().as_str())
        );
        assert!(
            reply.body.len() * 3 < plain.body.len(),
            "{coding}: {} of {} bytes",
            reply.body.len(),
            plain.body.len()
        );
        assert_eq!(decode(&reply.body), plain.body, "{coding}");
    }

    // A browser's list picks the configured first (zstd); q-values win
    // over that order; q=0 refuses a coding.
    let pick = |accept: &'static str| {
        let url = gw.url.clone();
        async move {
            let reply = post_with_headers(&url, &[("accept-encoding", accept)], BLOCK_CALL).await;
            header(&reply.headers, "content-encoding").map(str::to_string)
        }
    };
    assert_eq!(
        pick("gzip, deflate, br, zstd").await.as_deref(),
        Some("zstd")
    );
    assert_eq!(
        pick("gzip;q=1, br;q=0.8, zstd;q=0.5").await.as_deref(),
        Some("gzip")
    );
    assert_eq!(pick("*;q=0.1, zstd;q=0").await.as_deref(), Some("br"));
    assert_eq!(pick("gzip;q=0, identity").await, None);

    // With an Origin, one Vary header names both.
    let reply = post_with_headers(
        &gw.url,
        &[
            ("accept-encoding", "gzip"),
            ("origin", "http://127.0.0.1:5173"),
        ],
        BLOCK_CALL,
    )
    .await;
    assert_eq!(reply.headers.get_all("vary").iter().count(), 1);
    assert_eq!(
        header(&reply.headers, "vary"),
        Some("origin, accept-encoding")
    );
    assert_eq!(gunzip(&reply.body), plain.body);

    // Under 1 KiB: sent as it is, whatever the client accepts.
    let small_plain = post_with_headers(&gw.url, &[], SMALL_CALL).await;
    let small = post_with_headers(
        &gw.url,
        &[("accept-encoding", "gzip, br, zstd")],
        SMALL_CALL,
    )
    .await;
    assert!(small.body.len() < 1024);
    assert_eq!(header(&small.headers, "content-encoding"), None);
    assert_eq!(header(&small.headers, "vary"), Some("accept-encoding"));
    assert_eq!(small.body, small_plain.body);

    // A real client: curl decodes what it asked for (it offers every
    // coding it was built with) and prints the answer's own bytes.
    if std::process::Command::new("curl")
        .arg("--version")
        .output()
        .is_ok()
    {
        let out = tokio::process::Command::new("curl")
            .args([
                "-sS",
                "--compressed",
                "-D",
                "-",
                "-H",
                "content-type: application/json",
                "--data-binary",
                BLOCK_CALL,
                &gw.url,
            ])
            .output()
            .await
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        let head = head.to_ascii_lowercase();
        assert!(head.contains("content-encoding: "), "{head}");
        assert_eq!(body.as_bytes(), &plain.body[..]);
    } else {
        eprintln!("curl is not installed: the curl --compressed check is skipped");
    }
}

#[tokio::test]
async fn compression_off_sends_every_answer_as_it_is() {
    let (fleet, gw) = {
        let fleet = fleet(1).await;
        for _ in 0..5 {
            fleet.transfer(OTHER, 1).await.unwrap();
        }
        fleet.mine().await.unwrap();
        let config = format!(
            "server:\n  compression:\n    enabled: false\n{}",
            yaml(fleet.chain_id(), &fleet_ups(&fleet), "")
        );
        let gw = start_gateway(&config).await;
        wait_synced(&gw, 1, 1).await;
        (fleet, gw)
    };
    let reply = post_with_headers(&gw.url, &[("accept-encoding", "gzip, br")], BLOCK_CALL).await;
    assert!(reply.body.len() > 1024);
    assert_eq!(header(&reply.headers, "content-encoding"), None);
    assert_eq!(header(&reply.headers, "vary"), None);
    let block: Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(block["result"]["transactions"].as_array().unwrap().len(), 5);
    // Request bodies are still decoded.
    let reply = post_with_headers(
        &gw.url,
        &[("content-encoding", "gzip")],
        gzip(SMALL_CALL.as_bytes()),
    )
    .await;
    assert_eq!(
        json_or_null(&reply.body)["result"],
        json!(hex(fleet.chain_id()))
    );
}

#[tokio::test]
async fn compressed_request_bodies_are_decoded() {
    let fleet = fleet(1).await;
    let gw = gateway_over(&fleet, "", 0).await;
    let batch = json!([
        {"jsonrpc":"2.0","id":1,"method":"eth_chainId"},
        {"jsonrpc":"2.0","id":"two","method":"eth_getBalance","params":[DEV,"latest"]},
    ])
    .to_string();
    let plain = post_with_headers(&gw.url, &[], batch.clone()).await;
    assert_eq!(plain.status, 200);
    let answers = json_or_null(&plain.body);
    assert_eq!(answers[0]["result"], json!(hex(fleet.chain_id())));

    for (coding, body) in [
        ("gzip", gzip(batch.as_bytes())),
        ("br", brotli(batch.as_bytes())),
        ("zstd", zstd::encode_all(batch.as_bytes(), 3).unwrap()),
        ("deflate", {
            let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::new(6));
            e.write_all(batch.as_bytes()).unwrap();
            e.finish().unwrap()
        }),
    ] {
        let reply = post_with_headers(&gw.url, &[("content-encoding", coding)], body).await;
        assert_eq!(reply.status, 200, "{coding}");
        assert_eq!(reply.body, plain.body, "{coding}");
    }

    // A coding we do not take: 415, with a JSON-RPC error that names it.
    let reply =
        post_with_headers(&gw.url, &[("content-encoding", "compress")], batch.clone()).await;
    assert_eq!(reply.status, 415);
    let error = &json_or_null(&reply.body)["error"];
    assert_eq!(error["code"], -32600);
    assert!(
        error["message"].as_str().unwrap().contains("compress"),
        "{error}"
    );
    let reply =
        post_with_headers(&gw.url, &[("content-encoding", "gzip, br")], batch.clone()).await;
    assert_eq!(reply.status, 415);

    // Bytes that are not gzip: 400 and a parse error.
    let reply = post_with_headers(&gw.url, &[("content-encoding", "gzip")], batch.clone()).await;
    assert_eq!(reply.status, 400);
    assert_eq!(json_or_null(&reply.body)["error"]["code"], -32700);
}

#[tokio::test]
async fn a_decompression_bomb_gets_413_and_no_memory() {
    const INFLATED: usize = 100 << 20;
    let fleet = fleet(1).await;
    // The default cap, 5 MiB, written out: the bomb inflates to twenty times it.
    let y = format!(
        "server:\n  max_body_bytes: {}\n{}",
        5 << 20,
        yaml(fleet.chain_id(), &fleet_ups(&fleet), "")
    );
    let gw = RpcgateProcess::start(&y, &[]);
    let url = gw.url.clone();

    // 100 MiB of zeros: 1 KiB or less in brotli and zstd, about 100 KiB in
    // gzip (deflate cannot pack more than about 1032 to 1).
    let zeros = vec![0u8; INFLATED];
    let bombs = [
        ("br", brotli(&zeros)),
        ("zstd", zstd::encode_all(&zeros[..], 3).unwrap()),
        ("gzip", gzip(&zeros)),
    ];
    drop(zeros);
    for (coding, bomb) in &bombs {
        eprintln!(
            "{coding} bomb: {} bytes, inflating to {INFLATED}",
            bomb.len()
        );
    }
    assert!(
        bombs[0].1.len() <= 1024,
        "br bomb: {} bytes",
        bombs[0].1.len()
    );

    // Warm the process up first: a compressed call of each coding, so the
    // decoders' code and the allocator's arenas are already in.
    for (coding, _) in &bombs {
        let call = match *coding {
            "br" => brotli(SMALL_CALL.as_bytes()),
            "zstd" => zstd::encode_all(SMALL_CALL.as_bytes(), 3).unwrap(),
            _ => gzip(SMALL_CALL.as_bytes()),
        };
        let reply = post_with_headers(&url, &[("content-encoding", coding)], call).await;
        assert_eq!(reply.status, 200, "{coding}");
    }
    let peak_before = gw.status_kib("VmHWM");
    for (coding, bomb) in &bombs {
        let reply = post_with_headers(&url, &[("content-encoding", coding)], bomb.clone()).await;
        assert_eq!(
            reply.status,
            413,
            "{coding} bomb of {} bytes: {}",
            bomb.len(),
            String::from_utf8_lossy(&reply.body)
        );
        let error = &json_or_null(&reply.body)["error"];
        assert!(
            error["message"].as_str().unwrap().contains("5242880"),
            "{error}"
        );
    }
    let peak_after = gw.status_kib("VmHWM");
    let growth_mib = (peak_after.saturating_sub(peak_before)) / 1024;
    // The cap (5 MiB) plus a decoder window (brotli's is at most 16 MiB)
    // and allocator slack; the bombs held whole would be 100 MiB.
    assert!(
        growth_mib < 40,
        "peak RSS grew by {growth_mib} MiB ({peak_before} kB to {peak_after} kB)"
    );
    eprintln!("peak RSS {peak_before} kB before three bombs, {peak_after} kB after");

    // Counted as decoded bodies that passed the cap.
    let metrics = scrape(&gw.admin).await;
    for coding in ["br", "zstd", "gzip"] {
        assert_eq!(
            metrics.get(
                "rpcgate_http_decoded_requests_total",
                &[("encoding", coding), ("outcome", "too_large")]
            ),
            Some(1.0),
            "{coding} in\n{}",
            metrics.text
        );
    }

    // And the gateway still answers, compressed or not.
    let reply = post_with_headers(&url, &[], SMALL_CALL).await;
    assert_eq!(
        json_or_null(&reply.body)["result"],
        json!(hex(fleet.chain_id()))
    );
}
