//! Bounds no spelling sidesteps (issue 22, item 2) and filters shared safely
//! (F12, issue 24 item 3), against real anvil fleets and a real Redis:
//! block arguments judged as the node reads them or refused, a filter's
//! criteria and replay state bounded, filter ids answered only for their
//! owner, and a block filter polled on two gateways that see different
//! chains delivering every hash once.

use std::collections::HashSet;

use rpcgate_fleet::RedisServer;
use serde_json::{json, Value};

use crate::support::*;

/// One call from the anonymous client at `ip` (believed through X-Forwarded-For).
async fn call_from(url: &str, ip: &str, method: &str, params: Value) -> Value {
    let body = json!({"jsonrpc": "2.0", "id": 7, "method": method, "params": params});
    let reply = post_with_headers(url, &[("x-forwarded-for", ip)], body.to_string()).await;
    serde_json::from_slice(&reply.body).unwrap()
}

fn code(answer: &Value) -> i64 {
    answer["error"]["code"]
        .as_i64()
        .unwrap_or_else(|| panic!("an error answer: {answer}"))
}

#[tokio::test]
async fn block_spellings_are_judged_as_the_node_reads_them() {
    let fleet = fleet(1).await;
    // The fleet's anvil: safe is 1 block below the head, finalized 2.
    let top = fleet.mine_blocks(20).await.unwrap();
    let gw = gateway_over(&fleet, "max_logs_block_range: 2", top).await;
    wait_view(&gw, "safe and finalized known", |v| {
        v.safe.is_some() && v.finalized.is_some()
    })
    .await;
    let url = gw.url.as_str();
    let logs = |filter: Value| call(url, "eth_getLogs", json!([filter]));

    // Spellings nodes read two ways: refused, never guessed.
    for filter in [
        json!({"fromBlock": "0X0"}),
        json!({"fromBlock": "0x00", "toBlock": "0x5"}),
        json!({"fromBlock": "0x1", "toBlock": "0X0"}),
        json!({"fromBlock": "0x0", "toBlock": "0x05"}),
        json!({"fromBlock": 0, "toBlock": "0x5"}),
    ] {
        let answer = logs(filter.clone()).await;
        assert_eq!(answer["error"]["code"], -32602, "{filter}: {answer}");
    }
    let balance = call(url, "eth_getBalance", json!([OTHER, "0X10"])).await;
    assert_eq!(code(&balance), -32602, "{balance}");
    let new_filter = call(url, "eth_newFilter", json!([{"fromBlock": "0X0"}])).await;
    assert_eq!(code(&new_filter), -32602, "{new_filter}");

    // Tags read as the node reads them: finalized..latest is 3 blocks,
    // 0..safe 20; both over the bound of 2, so refused (-32005). (Taken as
    // the served head, as before, finalized..latest was one block.)
    for filter in [
        json!({"fromBlock": "finalized"}),
        json!({"fromBlock": "finalized", "toBlock": "latest"}),
        json!({"fromBlock": "0x0", "toBlock": "safe"}),
    ] {
        let answer = logs(filter.clone()).await;
        let view = gw.view();
        assert_eq!(
            answer["error"]["code"],
            -32005,
            "{filter} spans more than 2 blocks: {answer} (view: served {:?}, safe {:?}, finalized {:?})",
            view.served_head,
            view.safe,
            view.finalized
        );
    }
    // finalized..safe is 2 blocks: served, and what the node itself gives.
    let served = logs(json!({"fromBlock": "finalized", "toBlock": "safe"})).await;
    assert!(served["result"].is_array(), "{served}");
    let node = call(
        &fleet.http_url(0),
        "eth_getLogs",
        json!([{"fromBlock": "finalized", "toBlock": "safe"}]),
    )
    .await;
    assert_eq!(served["result"], node["result"]);
    let safe = logs(json!({"fromBlock": "safe", "toBlock": "pending"})).await;
    assert!(safe["result"].is_array(), "{safe}");
}

#[tokio::test]
async fn filter_criteria_are_capped_and_folded() {
    let fleet = fleet(1).await;
    let top = fleet.mine_blocks(1).await.unwrap();
    let y = format!(
        "{}server:\n  max_body_bytes: 16777216\n",
        yaml(fleet.chain_id(), &fleet_ups(&fleet), "")
    );
    let gw = start_gateway(&y).await;
    wait_synced(&gw, 1, top).await;
    let url = gw.url.as_str();
    // 110,000 distinct addresses (5 MB of JSON, under the body limit set
    // here, so that the filter's own cap is what refuses it).
    let many: Vec<String> = (0..110_000u64).map(|i| format!("0x{i:040x}")).collect();
    let refused = call(url, "eth_newFilter", json!([{"address": many}])).await;
    assert_eq!(code(&refused), -32602, "{refused}");
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("1000"),
        "{refused}"
    );
    let topics: Vec<String> = (0..1001u64).map(|i| format!("0x{i:064x}")).collect();
    let refused = call(url, "eth_newFilter", json!([{"topics": [null, topics]}])).await;
    assert_eq!(code(&refused), -32602, "{refused}");
    // 110,000 copies of one address are one address.
    let before = scrape(&gw.admin)
        .await
        .value("rpcgate_filters_state_bytes", &[("network", "dev")]);
    let same = vec![format!("0x{:040x}", 7); 110_000];
    let folded = call(url, "eth_newFilter", json!([{"address": same}])).await;
    assert!(folded["result"].is_string(), "{folded}");
    let after = scrape(&gw.admin)
        .await
        .value("rpcgate_filters_state_bytes", &[("network", "dev")]);
    assert!(
        after - before < 1024.0,
        "a folded filter holds {} bytes",
        after - before
    );
}

#[tokio::test]
async fn a_catch_all_log_filter_polled_for_many_blocks_has_bounded_state() {
    const REPLAY: f64 = 2048.0;
    let fleet = fleet(1).await;
    let start = fleet.mine_blocks(1).await.unwrap();
    let y = yaml(fleet.chain_id(), &fleet_ups(&fleet), "").replace(
        "    upstreams:\n",
        "    filters:\n      max_replay_bytes: 2048\n    upstreams:\n",
    );
    let gw = start_gateway(&y).await;
    wait_synced(&gw, 1, start).await;
    let id = result(&gw.url, "eth_newFilter", json!([{}])).await;
    let mut delivered = 0;
    let mut most: f64 = 0.0;
    for _ in 0..30 {
        fleet.deploy(LOGGER_INIT, 200_000).await.unwrap();
        let top = fleet.mine().await.unwrap();
        wait_synced(&gw, 1, top).await;
        let got = result(&gw.url, "eth_getFilterChanges", json!([id])).await;
        delivered += got.as_array().unwrap().len();
        let bytes = scrape(&gw.admin)
            .await
            .value("rpcgate_filters_state_bytes", &[("network", "dev")]);
        most = most.max(bytes);
    }
    // The view can name a block a moment before the chain follower has read
    // it: the last block's log may come on a later poll (never twice).
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while delivered < 30 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let got = result(&gw.url, "eth_getFilterChanges", json!([id])).await;
        delivered += got.as_array().unwrap().len();
    }
    assert_eq!(
        delivered, 30,
        "every log delivered: the bound drops replay state only"
    );
    // The replay logs, plus the blocks remembered (128 at most) and the criteria.
    assert!(
        most <= REPLAY + 6000.0,
        "a catch-all filter held {most} bytes (replay bound {REPLAY})"
    );
}

#[tokio::test]
async fn another_clients_filter_id_is_not_found() {
    let fleet = fleet(1).await;
    let top = fleet.mine_blocks(1).await.unwrap();
    let y = format!(
        "{}policy:\n  trusted_proxies: [127.0.0.1/32]\n",
        yaml(fleet.chain_id(), &fleet_ups(&fleet), "")
    );
    let gw = start_gateway(&y).await;
    wait_synced(&gw, 1, top).await;
    let url = gw.url.as_str();
    let mine = call_from(url, "10.0.0.1", "eth_newBlockFilter", json!([])).await;
    let id = mine["result"].clone();
    assert!(id.is_string(), "{mine}");
    let top = fleet.mine().await.unwrap();
    wait_synced(&gw, 1, top).await;
    for method in ["eth_getFilterChanges", "eth_getFilterLogs"] {
        let theirs = call_from(url, "10.0.0.2", method, json!([id])).await;
        assert_eq!(code(&theirs), -32000, "{method}: {theirs}");
        assert_eq!(theirs["error"]["message"], "filter not found");
    }
    let uninstall = call_from(url, "10.0.0.2", "eth_uninstallFilter", json!([id])).await;
    assert_eq!(uninstall["result"], json!(false), "{uninstall}");
    // The owner's filter is untouched: the other client's poll took nothing.
    let own = call_from(url, "10.0.0.1", "eth_getFilterChanges", json!([id])).await;
    assert_eq!(own["result"].as_array().map(Vec::len), Some(1), "{own}");
}

#[tokio::test]
async fn a_block_filter_on_two_gateways_whose_chains_differ_delivers_each_hash_once() {
    // Gateway A follows one fleet; gateway B, sharing A's Redis, another
    // one whose blocks differ from A's at every height (another genesis
    // time; same chain id): the extreme of replicas that disagree for a
    // moment, ahead of A for some polls and behind it for others.
    let main = fleet(1).await;
    let other = rpcgate_fleet::Fleet::start(rpcgate_fleet::FleetOptions {
        replicas: 1,
        genesis_timestamp: 1_700_000_500,
        ..rpcgate_fleet::FleetOptions::default()
    })
    .await
    .unwrap();
    let redis = RedisServer::start().await.unwrap();
    let start = main.mine_blocks(2).await.unwrap();
    let other_start = other.mine_blocks(3).await.unwrap();
    let on_redis = |fleet: &rpcgate_fleet::Fleet| {
        format!(
            "{}redis:\n  url: {}\n",
            yaml(fleet.chain_id(), &fleet_ups(fleet), ""),
            redis.url()
        )
    };
    let a = start_gateway(&on_redis(&main)).await;
    let b = start_gateway(&on_redis(&other)).await;
    wait_synced(&a, 1, start).await;
    wait_synced(&b, 1, other_start).await;
    let id = result(&a.url, "eth_newBlockFilter", json!([])).await;
    let mut seen: Vec<String> = Vec::new();
    let poll = |url: String| {
        let id = id.clone();
        async move {
            let got = result(&url, "eth_getFilterChanges", json!([id])).await;
            got.as_array()
                .unwrap_or_else(|| panic!("not a list: {got}"))
                .iter()
                .map(|h| h.as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        }
    };
    let mut top = start;
    for round in 0..6 {
        // B is ahead for some rounds, behind for others.
        top = main
            .mine_blocks(if round % 3 == 2 { 3 } else { 1 })
            .await
            .unwrap();
        let other_top = other.mine_blocks(1).await.unwrap();
        wait_synced(&a, 1, top).await;
        wait_synced(&b, 1, other_top).await;
        seen.extend(poll(a.url.clone()).await);
        let from_b = poll(b.url.clone()).await;
        if other_top < top {
            assert!(from_b.is_empty(), "B is behind the filter: [] ({from_b:?})");
        }
        seen.extend(from_b);
    }
    seen.extend(poll(a.url.clone()).await);
    assert_ne!(
        main.block_hash(0, start + 1).await.unwrap(),
        other.block_hash(0, start + 1).await.unwrap(),
        "the two chains differ"
    );
    let mut once = HashSet::new();
    for h in &seen {
        assert!(once.insert(h.clone()), "{h} delivered twice: {seen:?}");
    }
    for n in start + 1..=top {
        let h = main.block_hash(0, n).await.unwrap().unwrap();
        assert!(
            once.contains(&h),
            "block {n} ({h}) of A's chain never delivered"
        );
    }
}
