//! Readiness per front: a beacon network with no eligible node keeps the
//! JSON-RPC front ready (beacon networks are not required for `/readyz`
//! unless `ready_required: true`), and `/readyz/<network>` answers for one
//! network of either kind.

use rpcgate::config::Config;
use serde_json::Value;

use crate::support::*;

/// A port nothing listens on: bound, then let go.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[tokio::test]
async fn a_beacon_network_without_a_node_does_not_take_the_json_rpc_front_out() {
    let fleet = fleet(2).await;
    fleet.mine_blocks(2).await.unwrap();
    let beacon = format!(
        "  lh:\n    kind: beacon\n    poll_interval: 100ms\n    upstreams: [{{ name: b0, http: \"http://127.0.0.1:{}\" }}]\n",
        closed_port()
    );
    let base = format!("{}{beacon}", yaml(fleet.chain_id(), &fleet_ups(&fleet), ""));
    let gw = start_gateway(&base).await;
    wait_synced(&gw, 2, 2).await;
    let ready = |path: &str| {
        let url = format!("{}{path}", gw.admin);
        async move { get(&url).await }
    };
    let (status, why) = ready("/readyz").await;
    assert_eq!(status, 200, "the JSON-RPC front is ready: {why}");
    assert_eq!(ready("/readyz/dev").await.0, 200);
    let (status, why) = ready("/readyz/lh").await;
    assert_eq!(status, 503);
    assert!(
        why.contains("beacon network lh has no eligible node"),
        "{why}"
    );
    assert_eq!(ready("/readyz/nope").await.0, 404);
    let (_, status) = ready("/status").await;
    let status: Value = serde_json::from_str(&status).unwrap();
    assert_eq!(status["ready"], true);
    let lh = &status["beacon_networks"]["lh"];
    assert_eq!(lh["eligible"], 0, "/status still shows the beacon network");
    assert_eq!(lh["ready_required"], false);
    assert_eq!(lh["nodes"][0]["eligible"], false);
    assert_eq!(status["networks"]["dev"]["ready_required"], true);

    // Required by the operator (a reload applies it): the gateway is not ready.
    let required = unlimited_anonymous(&format!("{base}    ready_required: true\n"));
    gw.gateway
        .reload(&Config::from_yaml(&required).unwrap())
        .unwrap();
    let (status, why) = ready("/readyz").await;
    assert_eq!(status, 503, "the beacon network is required now");
    assert!(
        why.contains("beacon network lh has no eligible node"),
        "{why}"
    );
    assert!(!why.contains("network dev"), "{why}");
    assert_eq!(ready("/readyz/dev").await.0, 200);

    // An execution network not required: its outage leaves /readyz alone.
    let optional = unlimited_anonymous(&base.replace(
        "    upstreams:\n      - name",
        "    ready_required: false\n    upstreams:\n      - name",
    ));
    gw.gateway
        .reload(&Config::from_yaml(&optional).unwrap())
        .unwrap();
    fleet.stop(0).await.unwrap();
    fleet.stop(1).await.unwrap();
    wait_for("dev has no eligible backend", || {
        let url = format!("{}/readyz/dev", gw.admin);
        async move { get(&url).await.0 == 503 }
    })
    .await;
    let (status, why) = ready("/readyz").await;
    assert_eq!(status, 200, "nothing required is down: {why}");
}
