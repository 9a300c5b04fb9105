//! The served-by headers (`server.expose_upstream_headers`): absent by
//! default; when on, which backend answered, how the cache took part, and
//! how many backend calls it took, one item per batch entry.

use std::time::Duration;

use rpcgate_fleet::Fault;
use serde_json::json;

use crate::support::*;

const UPSTREAM: &str = "x-rpcgate-upstream";
const CACHE: &str = "x-rpcgate-cache";
const ATTEMPTS: &str = "x-rpcgate-attempts";

fn body(method: &str) -> String {
    json!({"jsonrpc": "2.0", "id": 1, "method": method}).to_string()
}

/// The three headers of an answer (`None` for each one absent).
async fn served(url: &str, body: String) -> [Option<String>; 3] {
    let reply = post_with_headers(url, &[], body).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    [UPSTREAM, CACHE, ATTEMPTS].map(|h| {
        reply
            .headers
            .get(h)
            .map(|v| v.to_str().unwrap().to_string())
    })
}

fn some(values: [&str; 3]) -> [Option<String>; 3] {
    values.map(|v| Some(v.to_string()))
}

#[tokio::test]
async fn served_by_headers_are_off_by_default_and_say_where_an_answer_came_from() {
    let (fleet, t0, t1, ups) = two_tapped_replicas().await;
    // Ejected after one failure, re-admitted by the next good probe: r0 keeps
    // coming back as a first choice, so a failover from it can be seen.
    let config = yaml(fleet.chain_id(), &ups, "eject_after_failures: 1");
    let off = start_gateway(&config).await;
    let on = start_gateway(&format!(
        "server:\n  expose_upstream_headers: true\n{config}"
    ))
    .await;
    wait_synced(&off, 2, 1).await;
    wait_synced(&on, 2, 1).await;

    // Off by default: none of the three, whatever served the call.
    for method in [
        "net_version",
        "net_version",
        "web3_clientVersion",
        "eth_chainId",
    ] {
        assert_eq!(
            served(&off.url, body(method)).await,
            [None, None, None],
            "{method}"
        );
    }

    // Not cacheable: one backend, one attempt.
    let [upstream, cache, attempts] = served(&on.url, body("web3_clientVersion")).await;
    assert!(
        matches!(upstream.as_deref(), Some("r0" | "r1")),
        "{upstream:?}"
    );
    assert_eq!(
        (cache.as_deref(), attempts.as_deref()),
        (Some("pass"), Some("1"))
    );

    // A chain constant: fetched once (a miss), then a hit that names no backend.
    let [upstream, cache, attempts] = served(&on.url, body("net_version")).await;
    assert!(
        matches!(upstream.as_deref(), Some("r0" | "r1")),
        "{upstream:?}"
    );
    assert_eq!(
        (cache.as_deref(), attempts.as_deref()),
        (Some("miss"), Some("1"))
    );
    assert_eq!(
        served(&on.url, body("net_version")).await,
        some(["-", "hit", "0"])
    );

    // A batch: one item per entry, in the batch's order.
    let batch = json!([
        {"jsonrpc": "2.0", "id": 1, "method": "net_version"},
        {"jsonrpc": "2.0", "id": 2, "method": "eth_chainId"},
        {"jsonrpc": "2.0", "id": 3, "method": "admin_peers"},
        {"jsonrpc": "2.0", "id": 4, "method": "web3_clientVersion"},
    ]);
    let [upstream, cache, attempts] = served(&on.url, batch.to_string()).await;
    let upstream = upstream.unwrap();
    let items: Vec<&str> = upstream.split(", ").collect();
    assert_eq!(items[..3], ["-", "-", "-"], "{upstream}");
    assert!(matches!(items[3], "r0" | "r1"), "{upstream}");
    assert_eq!(cache.as_deref(), Some("hit, local, -, pass"));
    assert_eq!(attempts.as_deref(), Some("0, 0, 0, 1"));

    // r0 fails this method (its probes still pass): every answer is r1's, and
    // one that tried r0 first says 2 attempts. r1 answers it slowly, so once
    // it has, its latency estimate makes a re-admitted r0 the first choice.
    t1.set_fault_on(
        "web3_clientVersion",
        Fault::Delay(Duration::from_millis(300)),
    );
    t0.set_fault_on("web3_clientVersion", Fault::Status(503));
    let mut failovers = 0;
    for _ in 0..20 {
        // A re-admitted backend shows in the view with the next head change
        // (the tracker publishes only what changed): a block makes one.
        fleet.mine().await.unwrap();
        wait_view(&on, "r0 eligible", |v| v.backends[0].eligible()).await;
        let [upstream, cache, attempts] = served(&on.url, body("web3_clientVersion")).await;
        assert_eq!(upstream.as_deref(), Some("r1"));
        assert_eq!(cache.as_deref(), Some("pass"));
        match attempts.as_deref() {
            Some("1") => {}
            Some("2") => {
                failovers += 1;
                break;
            }
            other => panic!("attempts {other:?}"),
        }
    }
    assert_eq!(failovers, 1, "no call tried r0 first in 20");
    assert!(t0.count("web3_clientVersion") >= 1);
    t0.set_fault(Fault::None);
    t1.set_fault(Fault::None);
}
