//! The shared limiter for Beacon REST: two gateways over the same nodes and
//! one real redis-server (`redis:`), a client with a budget of 4 requests
//! (next to no refill) whose requests alternate between the gateways. The
//! budget is the client's across both: the 5th and 6th requests are refused
//! (429 in the Beacon API's form) though each gateway has seen only two.

use http::Method;
use rpcgate_fleet::RedisServer;

use crate::tap::Tap;
use crate::{request, start_gateway_with, wait_eligible, SHARED_KEY};

pub async fn one_budget_across_two_gateways(taps: &[Tap; 2]) {
    let redis = RedisServer::start().await.unwrap();
    let urls: Vec<String> = taps.iter().map(|t| t.url.clone()).collect();
    let top = format!("redis:\n  url: {}\n", redis.url());
    let gateways = [
        start_gateway_with(&urls, &top).await,
        start_gateway_with(&urls, &top).await,
    ];
    for gw in &gateways {
        wait_eligible(gw, "both nodes eligible", |n| n.len() == 2).await;
    }
    let mut statuses = Vec::new();
    for i in 0..6 {
        let url = format!("{}/eth/v1/node/version", gateways[i % 2].own);
        let r = request(Method::GET, &url, Some(SHARED_KEY), None).await;
        if r.status == 429 {
            assert_eq!(r.json()["code"], 429, "the Beacon API error form");
            assert!(r.headers.contains_key("retry-after"));
        }
        statuses.push(r.status);
    }
    assert_eq!(
        statuses,
        [200, 200, 200, 200, 429, 429],
        "one budget of 4 for the client across both gateways"
    );
}
