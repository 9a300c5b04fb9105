//! The routing, cache, production and policy scenarios of the beacon test
//! (run in order by `beacon_gateway_over_lodestar`, on its devnet and gateway).

use std::time::Duration;

use http::Method;

use crate::devnet::Devnet;
use crate::tap::{Mode, Tap};
use crate::{get, request, wait_eligible, Reply, Running, KEY, SLOW_KEY};

/// The eligible nodes' names and the served head's root, from the snapshot.
fn served(gw: &Running) -> (Vec<String>, Option<String>, Vec<Option<String>>) {
    let net = gw.gateway.beacon().by_name["lh"].clone();
    let snap = net.snapshot();
    let names = snap.eligible().map(|v| v.node.name.clone()).collect();
    let at_agreed = snap
        .eligible()
        .find(|v| v.reading.head_slot == snap.agreed_slot)
        .and_then(|v| v.reading.head_root.clone());
    let roots = snap
        .nodes
        .iter()
        .map(|v| v.reading.head_root.clone())
        .collect();
    (names, at_agreed, roots)
}

/// n2 held behind (its tap answers the head of the moment the hold began):
/// while it is still eligible but no longer at the served head, reads of
/// `head` go only to n1, other reads still to both.
pub async fn head_reads_only_from_nodes_at_the_served_head(gw: &Running, taps: &[Tap; 2]) {
    const HEAD_READS: [&str; 3] = [
        "/eth/v1/beacon/headers/head",
        "/eth/v1/beacon/states/head/fork",
        "/eth/v2/beacon/blocks/head",
    ];
    // A missed slot can push a held node past the lag at once: try again then.
    for attempt in 0..4 {
        taps[1].set(Mode::Held);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        let window = loop {
            let (names, served, roots) = served(gw);
            if names.len() == 2 && served.is_some() && roots[1] != served {
                break true;
            }
            if names.len() < 2 && roots[1].is_some() && attempt < 3 {
                break false;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "n2 held behind while eligible: {names:?} {roots:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        if !window {
            taps[1].set(Mode::Faithful);
            wait_eligible(gw, "n2 back", |n| n.len() == 2).await;
            continue;
        }
        taps.iter().for_each(Tap::reset);
        // Whether n2 stayed eligible and off the served head around every
        // read (a new slot can make the two nodes' heads meet or part).
        let behind = || {
            let (names, served, roots) = served(gw);
            names.len() == 2 && served.is_some() && roots[1] != served
        };
        let mut throughout = behind();
        for _ in 0..4 {
            for path in HEAD_READS {
                let r = get(&format!("{}{path}", gw.own)).await;
                assert_eq!(r.status, 200, "{path}");
                throughout &= behind();
            }
            get(&format!("{}/eth/v1/node/version", gw.own)).await;
        }
        taps[1].set(Mode::Faithful);
        let n2 = taps[1].traffic();
        if !throughout && attempt < 3 {
            // n2 fell out or met the served head during the reads: the
            // check would prove nothing.
            wait_eligible(gw, "n2 back", |n| n.len() == 2).await;
            continue;
        }
        assert!(
            n2.iter().all(|s| !HEAD_READS.contains(&s.path.as_str())),
            "a node behind the served head got head reads: {n2:?}"
        );
        assert!(
            n2.iter().any(|s| s.path == "/eth/v1/node/version"),
            "n2 was still serving other reads: {n2:?}"
        );
        let n1 = taps[0].traffic();
        let head_reads = n1
            .iter()
            .filter(|s| HEAD_READS.contains(&s.path.as_str()))
            .count();
        assert_eq!(head_reads, 12, "n1 answered every head read");
        wait_eligible(gw, "n2 back", |n| n.len() == 2).await;
        return;
    }
}

/// The genesis, spec, fork schedule, deposit contract and a finalized
/// header by root come from a node once, then from the cache; a header by
/// root that is not final yet is asked each time.
pub async fn what_cannot_change_is_read_once(gw: &Running, taps: &[Tap; 2], devnet: &Devnet) {
    let direct = &devnet.urls[0];
    let finalized = get(&format!("{direct}/eth/v1/beacon/headers/finalized"))
        .await
        .json();
    let final_root = finalized["data"]["root"].as_str().unwrap().to_string();
    let head = get(&format!("{direct}/eth/v1/beacon/headers/head"))
        .await
        .json();
    let head_root = head["data"]["root"].as_str().unwrap().to_string();
    let fixed = [
        "/eth/v1/beacon/genesis".to_string(),
        "/eth/v1/config/spec".into(),
        "/eth/v1/config/fork_schedule".into(),
        "/eth/v1/config/deposit_contract".into(),
        format!("/eth/v1/beacon/headers/{final_root}"),
        format!("/eth/v2/beacon/blocks/{final_root}"),
    ];
    // Once, so each is kept whatever the reads before did.
    for path in &fixed {
        assert_eq!(
            get(&format!("{}{path}", gw.main)).await.status,
            200,
            "{path}"
        );
    }
    taps.iter().for_each(Tap::reset);
    for base in [&gw.main, &gw.own] {
        for path in &fixed {
            let want = get(&format!("{direct}{path}")).await;
            let got = get(&format!("{base}{path}")).await;
            assert_eq!(got.status, 200, "{path}");
            assert_eq!(got.body, want.body, "{path}: the cached body");
            assert_eq!(
                got.headers.get("content-type"),
                want.headers.get("content-type")
            );
        }
    }
    let reached: Vec<String> = taps
        .iter()
        .flat_map(|t| t.traffic())
        .map(|s| s.path)
        .collect();
    assert!(
        reached.is_empty(),
        "cached reads reached a node: {reached:?}"
    );
    // Not final: every read is a node's.
    for _ in 0..2 {
        let path = format!("/eth/v1/beacon/headers/{head_root}");
        assert_eq!(get(&format!("{}{path}", gw.own)).await.status, 200);
    }
    let reached = taps.iter().map(|t| t.traffic().len()).sum::<usize>();
    assert_eq!(reached, 2, "a header that is not final yet is not cached");
    let metrics = gw.gateway.metrics().render();
    assert!(
        metric(
            &metrics,
            "rpcgate_beacon_cache_lookups_total",
            &["result=\"hit\""]
        ) >= 12.0,
        "hits counted"
    );
}

/// The value of the first series of `name` whose labels contain each of `labels`.
fn metric(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .filter(|l| labels.iter().all(|want| l.contains(want)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Block production whose first node fails (503 from its tap) goes to the
/// other node only while its slot lasts: a slot long past is asked of one
/// node, a slot still ahead of both.
pub async fn production_is_retried_only_within_its_slot(gw: &Running, taps: &[Tap; 2]) {
    let prefix = "/eth/v2/validator/blocks/";
    for tap in taps {
        tap.fail_path(Some(prefix));
    }
    let randao = format!("0x{}", "ab".repeat(96));
    let produce = |slot: u64| {
        format!(
            "{}/eth/v2/validator/blocks/{slot}?randao_reveal={randao}",
            gw.own
        )
    };
    let asked = || {
        taps.iter()
            .map(|t| {
                t.traffic()
                    .iter()
                    .filter(|s| s.path.starts_with(prefix))
                    .count()
            })
            .collect::<Vec<_>>()
    };
    taps.iter().for_each(Tap::reset);
    let past = request(Method::GET, &produce(1), Some(KEY), None).await;
    assert_eq!(past.status, 503, "the failing node's answer");
    assert_eq!(
        asked().iter().sum::<usize>(),
        1,
        "slot 1 is past: no second node: {:?}",
        asked()
    );
    let net = gw.gateway.beacon().by_name["lh"].clone();
    let agreed = net.snapshot().agreed_slot.unwrap();
    taps.iter().for_each(Tap::reset);
    let ahead = request(Method::GET, &produce(agreed + 1000), Some(KEY), None).await;
    assert_eq!(ahead.status, 503);
    assert_eq!(asked(), [1, 1], "within the slot: the other node too");
    let anonymous = request(Method::GET, &produce(agreed + 1000), None, None).await;
    assert_eq!(
        anonymous.status, 403,
        "block production is for named clients"
    );
    for tap in taps {
        tap.fail_path(None);
    }
}

/// A client over its budget gets 429 in the Beacon API form; every request
/// is counted by path group and outcome.
pub async fn client_limits_and_request_metrics(gw: &Running) {
    let url = format!("{}/eth/v1/node/version", gw.own);
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(request(Method::GET, &url, Some(SLOW_KEY), None).await);
    }
    let limited: Vec<&Reply> = statuses.iter().filter(|r| r.status == 429).collect();
    assert!(
        !limited.is_empty(),
        "a burst of 3 at 0.2/s: the 4th and 5th refused"
    );
    assert_eq!(limited[0].json()["code"], 429);
    assert!(limited[0].headers.contains_key("retry-after"));
    let text = gw.gateway.metrics().render();
    let count = |labels: &[&str]| metric(&text, "rpcgate_beacon_requests_total", labels);
    assert!(count(&["group=\"node\"", "outcome=\"ok\""]) >= 10.0);
    assert!(count(&["group=\"node\"", "outcome=\"refused\""]) >= 2.0);
    assert!(count(&["group=\"config\"", "outcome=\"ok\""]) >= 8.0);
    assert!(count(&["group=\"produce\"", "outcome=\"node_error\""]) >= 2.0);
    assert!(count(&["group=\"closed\"", "outcome=\"refused\""]) >= 3.0);
    assert!(
        metric(
            &text,
            "rpcgate_beacon_request_duration_seconds_count",
            &["group=\"block\""]
        ) >= 1.0
    );
}
