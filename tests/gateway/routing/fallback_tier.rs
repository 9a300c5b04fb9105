//! Fallback tier: r0 and r1 primaries, r2 a `tier: fallback` upstream (a
//! paid provider, say), each behind a tap. The fallback gets nothing while
//! a primary serves (not even probes, with the probe interval at an hour),
//! serves when both primaries fail, and is idle again once they recover.

use rpcgate::upstream::Ineligible;
use rpcgate_fleet::Fault;
use serde_json::json;

use crate::support::*;

/// `rpcgate_fallback_serving` of network `dev` (it must be there).
async fn gauge(admin: &str) -> f64 {
    let metrics = scrape(admin).await;
    metrics
        .get("rpcgate_fallback_serving", &[("network", "dev")])
        .unwrap_or_else(|| panic!("no fallback gauge in:\n{}", metrics.text))
}

async fn reads(gw: &Gw, n: usize) {
    for _ in 0..n {
        let answer = call(&gw.url, "eth_getBalance", json!([OTHER, "latest"])).await;
        assert!(
            answer.get("result").is_some_and(|r| r.is_string()),
            "a client error: {answer}"
        );
    }
}

#[tokio::test]
async fn a_fallback_is_idle_while_primaries_serve_and_serves_while_they_fail() {
    let fleet = fleet(3).await;
    fleet.mine().await.unwrap();
    let taps = tap_all(&fleet).await;
    let ups = vec![
        up("r0", taps[0].url(), None),
        up("r1", taps[1].url(), None),
        up("r2", taps[2].url(), None).with("tier: fallback"),
    ];
    let extra = format!("eject_after_failures: 2\n{ROUTING_ONLY}");
    let y = yaml(fleet.chain_id(), &ups, &extra).replace(
        "      probe_timeout: 1s\n",
        "      probe_timeout: 1s\n      fallback_probe_interval: 60m\n",
    );
    let gw = start_gateway(&y).await;
    // Its one standby probe (chain id, then latest) done; idle after it.
    wait_view(
        &gw,
        "primaries serving, the fallback probed once and idle",
        |v| {
            v.eligible().count() == 2
                && v.served_head == Some(1)
                && v.backends[2].ineligible == Some(Ineligible::Standby)
                && v.backends[2].state.latest.is_some()
        },
    )
    .await;
    let probes = taps[2].total();
    eprintln!("calls to the fallback before idling: {probes}");
    assert!(probes <= 4, "{probes} calls");
    for t in &taps {
        t.reset();
    }

    // Idle: 60 reads, not one call of any kind at the fallback's tap.
    reads(&gw, 60).await;
    assert_eq!(
        taps[2].total(),
        0,
        "the fallback got calls while primaries served"
    );
    assert_eq!(
        taps[0].count("eth_getBalance") + taps[1].count("eth_getBalance"),
        60
    );
    assert_eq!(gauge(&gw.admin).await, 0.0);

    // Both primaries fail: reads keep answering (every primary attempt
    // fails, then the fallback), and once probes see them down the
    // fallback serves on its own, its head counting for the served head.
    taps[0].set_fault(Fault::Status(503));
    taps[1].set_fault(Fault::Status(503));
    reads(&gw, 30).await;
    assert!(taps[2].count("eth_getBalance") >= 30);
    let height = fleet.mine().await.unwrap();
    wait_view(&gw, "the fallback serving at the new head", |v| {
        v.fallback_serving && v.backends[2].eligible() && v.served_head == Some(height)
    })
    .await;
    assert_eq!(gauge(&gw.admin).await, 1.0);
    for t in &taps {
        t.reset();
    }
    reads(&gw, 60).await;
    assert_eq!(taps[2].count("eth_getBalance"), 60);
    assert_eq!(
        taps[0].count("eth_getBalance") + taps[1].count("eth_getBalance"),
        0
    );

    // They recover: the fallback is idle again.
    taps[0].set_fault(Fault::None);
    taps[1].set_fault(Fault::None);
    // Their heads too: a primary seen again before its head poll has
    // caught up is behind the served head, and a read of `latest` (pinned
    // to that head) then rightly goes to the fallback that has it.
    wait_view(
        &gw,
        "primaries back at the head, the fallback in standby",
        |v| {
            !v.fallback_serving
                && v.eligible().count() == 2
                && v.eligible().all(|b| b.head == height)
                && v.backends[2].ineligible == Some(Ineligible::Standby)
        },
    )
    .await;
    for t in &taps {
        t.reset();
    }
    reads(&gw, 60).await;
    assert_eq!(
        taps[2].count("eth_getBalance"),
        0,
        "the fallback got reads after recovery"
    );
    // At most a probe round that was in flight when it went idle.
    assert!(taps[2].total() <= 4, "{} calls", taps[2].total());
    assert_eq!(gauge(&gw.admin).await, 0.0);
}
