//! Failures: a replica dies, a backend errors or stalls, nothing can serve,
//! a backend serves another chain.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rpcgate::upstream::Ineligible;
use rpcgate_fleet::{Anvil, AnvilOptions, Fault, Tap};
use serde_json::{json, Value};

use crate::support::*;

#[tokio::test]
async fn a_replica_stopped_under_steady_traffic_fails_no_read() {
    let fleet = fleet(3).await;
    fleet.transfer(OTHER, 5).await.unwrap();
    fleet.mine().await.unwrap();
    let gw = gateway_over(&fleet, "request_timeout: 2s", 1).await;

    let done = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut workers = Vec::new();
    for w in 0..4 {
        let (url, done, ok, failed) = (gw.url.clone(), done.clone(), ok.clone(), failed.clone());
        workers.push(tokio::spawn(async move {
            let mut i = 0u64;
            while !done.load(Ordering::Relaxed) {
                let body = match (i + w) % 3 {
                    0 => json!({"jsonrpc":"2.0","id":i,"method":"eth_getBalance","params":[OTHER,"latest"]}),
                    1 => json!({"jsonrpc":"2.0","id":i,"method":"eth_getBlockByNumber","params":["latest",false]}),
                    _ => json!({"jsonrpc":"2.0","id":i,"method":"eth_getBalance","params":[OTHER,"0x1"]}),
                };
                let answer = post_json(&url, &body).await;
                if answer.get("result").is_some_and(|r| !r.is_null()) {
                    ok.fetch_add(1, Ordering::Relaxed);
                } else {
                    eprintln!("failed read: {answer}");
                    failed.fetch_add(1, Ordering::Relaxed);
                }
                i += 1;
            }
        }));
    }
    let wait_ok = |n: u64| {
        let ok = ok.clone();
        async move {
            wait_for("reads to flow", || {
                let ok = ok.clone();
                async move { ok.load(Ordering::Relaxed) >= n }
            })
            .await
        }
    };
    wait_ok(300).await;
    fleet.stop(1).await.unwrap();
    let before = ok.load(Ordering::Relaxed);
    wait_ok(before + 300).await;
    fleet.mine().await.unwrap();
    wait_ok(ok.load(Ordering::Relaxed) + 300).await;
    fleet.restart(1).await.unwrap();
    let h = fleet.height().await;
    wait_synced(&gw, 3, h).await;
    wait_ok(ok.load(Ordering::Relaxed) + 300).await;
    done.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.unwrap();
    }
    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "reads failed while a replica stopped"
    );
}

/// r0 and r1 each behind a tap, so faults can be injected.
async fn two_tapped(extra: &str) -> (rpcgate_fleet::Fleet, Tap, Tap, Gw) {
    let (fleet, t0, t1, ups) = two_tapped_replicas().await;
    let extra = format!("{extra}\n{ROUTING_ONLY}");
    let gw = start_gateway(&yaml(fleet.chain_id(), &ups, &extra)).await;
    wait_synced(&gw, 2, 1).await;
    (fleet, t0, t1, gw)
}

#[tokio::test]
async fn errors_and_timeouts_are_retried_and_a_failing_backend_is_ejected() {
    let (_fleet, t0, t1, gw) = two_tapped("request_timeout: 300ms\neject_after_failures: 3").await;
    for fault in [
        Fault::Status(503),
        Fault::Status(429),
        Fault::DropConnection,
        Fault::Delay(Duration::from_secs(2)),
    ] {
        t0.set_fault(fault);
        for _ in 0..10 {
            let balance = result(&gw.url, "eth_getBalance", json!([OTHER, "latest"])).await;
            assert!(balance.as_str().unwrap().starts_with("0x"), "{fault:?}");
        }
        t0.set_fault(Fault::None);
        // Let the probe re-admit r0 before the next fault.
        wait_view(&gw, "r0 eligible again", |v| v.backends[0].eligible()).await;
    }
    // A backend that keeps failing is ejected, and re-admitted after a good probe.
    t0.set_fault(Fault::Status(500));
    wait_view(&gw, "r0 out", |v| !v.backends[0].eligible()).await;
    t0.reset();
    for _ in 0..20 {
        result(&gw.url, "eth_getBalance", json!([OTHER, "latest"])).await;
    }
    assert_eq!(
        t0.count("eth_getBalance"),
        0,
        "an ejected or unreachable backend got traffic"
    );
    assert!(t1.count("eth_getBalance") >= 20);
    t0.set_fault(Fault::None);
    wait_view(&gw, "r0 re-admitted", |v| v.backends[0].eligible()).await;
}

/// A backend that failed until it was ejected (or found unreachable) and
/// then recovered gets its share of reads back within seconds: its failure
/// penalty is forgotten when it comes back, and the estimate decays when read.
#[tokio::test]
async fn a_recovered_backend_gets_its_share_back_within_seconds() {
    let fleet = fleet(3).await;
    fleet.mine().await.unwrap();
    let taps = tap_all(&fleet).await;
    let ups: Vec<_> = (0..3)
        .map(|i| up(&format!("r{i}"), taps[i].url(), None))
        .collect();
    // The default request timeout (10 s): the penalty a failure leaves.
    let extra = format!("eject_after_failures: 3\n{ROUTING_ONLY}");
    let gw = start_gateway(&yaml(fleet.chain_id(), &ups, &extra)).await;
    wait_synced(&gw, 3, 1).await;
    // Each read asks for another address, so that no read shares another's
    // call: each one reaches a backend.
    let read = |k: u64| {
        let address = format!("0x{:040x}", 0xa11c_e000_u64 + k);
        result(&gw.url, "eth_getBalance", json!([address, "latest"]))
    };

    taps[0].set_fault(Fault::Status(500));
    futures_util::future::join_all((0..30).map(read)).await;
    assert!(
        taps[0].count("eth_getBalance") >= 1,
        "r0 was never tried while failing: it carries no penalty"
    );
    wait_view(&gw, "r0 out", |v| !v.backends[0].eligible()).await;
    taps[0].set_fault(Fault::None);
    wait_view(&gw, "r0 back", |v| v.backends[0].eligible()).await;
    for t in &taps {
        t.reset();
    }
    // Every read of the 5 s after recovery counts (bounded in number): the
    // share is judged over the whole window, not over the first few reads,
    // which may come before the probe that re-admits r0 has reset it. Eight
    // clients read at once, as a DApp's users do: one client reading alone
    // lets whichever backend had the lowest recent peak win nearly every
    // pair (Peak-EWMA keeps a peak for its 10 s time constant), so even
    // equal backends would then split a 5 s window very unevenly.
    let started = std::time::Instant::now();
    // Addresses from 100 on: none of the 30 failing reads' addresses.
    let total = AtomicU64::new(100);
    let client = || async {
        loop {
            let k = total.fetch_add(1, Ordering::Relaxed);
            if k >= 50_000 || started.elapsed() >= Duration::from_secs(5) {
                break;
            }
            read(k).await;
        }
    };
    futures_util::future::join_all((0..8).map(|_| client())).await;
    // Each client's last increment started no read.
    let n = total.into_inner() - 100 - 8;
    let got = taps[0].count("eth_getBalance");
    eprintln!(
        "after recovery: r0 served {got} of {n} reads in {:?}",
        started.elapsed()
    );
    // A third of its fair share (a third of the reads) at least.
    assert!(got * 9 >= n, "r0 served {got} of {n} reads after recovery");
}

#[tokio::test]
async fn send_raw_transaction_is_never_sent_twice() {
    let (fleet, t0, t1, gw) = two_tapped("request_timeout: 300ms").await;
    let (raw, _) = fleet.sign_transfer(OTHER, 1).await.unwrap();
    // Both backends stall past the timeout (and then receive it): one attempt only.
    t0.set_fault(Fault::Delay(Duration::from_secs(1)));
    t1.set_fault(Fault::Delay(Duration::from_secs(1)));
    t0.reset();
    t1.reset();
    let answer = call(&gw.url, "eth_sendRawTransaction", json!([raw])).await;
    assert!(answer.get("error").is_some(), "{answer}");
    assert_eq!(
        t0.count("eth_sendRawTransaction") + t1.count("eth_sendRawTransaction"),
        1
    );

    // A 429 means the node did not take it: another node may.
    t0.set_fault(Fault::Status(429));
    t1.set_fault(Fault::Status(429));
    t0.reset();
    t1.reset();
    let answer = call(&gw.url, "eth_sendRawTransaction", json!([raw])).await;
    assert!(answer.get("error").is_some());
    assert_eq!(
        t0.count("eth_sendRawTransaction") + t1.count("eth_sendRawTransaction"),
        2
    );
}

#[tokio::test]
async fn nothing_can_serve_answers_at_once_with_503() {
    let fleet = fleet(1).await;
    fleet.mine().await.unwrap();
    let gw = gateway_over(&fleet, "", 1).await;
    fleet.stop(0).await.unwrap();
    wait_view(&gw, "no eligible backend", |v| v.eligible().count() == 0).await;
    let started = std::time::Instant::now();
    let (status, body) = post(
        &gw.url,
        json!({"jsonrpc":"2.0","id":"q","method":"eth_getBalance","params":[OTHER,"latest"]})
            .to_string(),
    )
    .await;
    assert_eq!(status, 503);
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["id"], "q");
    assert_eq!(v["error"]["code"], -32000);
    // "At once": far below any timeout in play (not a benchmark, a sanity bound).
    assert!(started.elapsed() < Duration::from_secs(5));
    // A gateway whose only backend was never reachable does the same.
    let dead = start_gateway(&yaml(
        31337,
        &[up("gone", "http://127.0.0.1:9".into(), None)],
        "",
    ))
    .await;
    let (status, _) = post(
        &dead.url,
        r#"{"jsonrpc":"2.0","id":1,"method":"eth_gasPrice"}"#,
    )
    .await;
    assert_eq!(status, 503);
}

#[tokio::test]
async fn a_backend_on_another_chain_is_refused() {
    let fleet = fleet(2).await;
    fleet.mine().await.unwrap();
    let stranger = Anvil::spawn(&AnvilOptions {
        chain_id: 999,
        ..AnvilOptions::default()
    })
    .await
    .unwrap();
    let tap = Tap::start(&stranger.http_url()).await.unwrap();
    let mut ups = fleet_ups(&fleet);
    ups.push(up("stranger", tap.url(), None));
    let gw = start_gateway(&yaml(fleet.chain_id(), &ups, "")).await;
    wait_view(&gw, "stranger refused", |v| {
        v.backends[2].ineligible == Some(Ineligible::WrongChain { got: 999 })
    })
    .await;
    wait_synced(&gw, 2, 1).await;
    tap.reset();
    for _ in 0..50 {
        result(&gw.url, "eth_getBalance", json!([OTHER, "0x0"])).await;
        result(&gw.url, "eth_gasPrice", json!([])).await;
    }
    assert_eq!(tap.count("eth_getBalance") + tap.count("eth_gasPrice"), 0);
}
