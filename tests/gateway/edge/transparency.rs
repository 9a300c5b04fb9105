//! The same request, sent to a replica directly and through rpcgate, gets the
//! same answer.

use serde_json::{json, Value};

use crate::support::*;

async fn both(direct: &str, gw: &str, method: &str, params: Value) -> (Value, Value) {
    let body = json!({"jsonrpc": "2.0", "id": 42, "method": method, "params": params});
    (post_json(direct, &body).await, post_json(gw, &body).await)
}

async fn same(direct: &str, gw: &str, method: &str, params: Value) -> Value {
    let (d, g) = both(direct, gw, method, params.clone()).await;
    assert_eq!(d, g, "{method} {params}: direct vs gateway");
    g
}

#[tokio::test]
async fn answers_match_a_replica() {
    let fleet = fleet(3).await;
    let (_, deploy_hash) = fleet.deploy(LOGGER_INIT, 200_000).await.unwrap();
    let (_, transfer_hash) = fleet.transfer(OTHER, 1_000_000).await.unwrap();
    let height = fleet.mine_blocks(2).await.unwrap();
    let gw = gateway_over(&fleet, "", height).await;
    let direct = fleet.http_url(0);
    let g = gw.url.as_str();

    same(&direct, g, "eth_chainId", json!([])).await;
    let receipt = same(
        &direct,
        g,
        "eth_getTransactionReceipt",
        json!([deploy_hash]),
    )
    .await;
    let contract = receipt["result"]["contractAddress"]
        .as_str()
        .expect("a contract address")
        .to_string();
    assert_eq!(receipt["result"]["logs"].as_array().unwrap().len(), 1);
    same(
        &direct,
        g,
        "eth_getTransactionReceipt",
        json!([transfer_hash]),
    )
    .await;
    let block = same(&direct, g, "eth_getBlockByNumber", json!(["0x1", true])).await;
    same(&direct, g, "eth_getBlockByNumber", json!(["latest", false])).await;
    same(
        &direct,
        g,
        "eth_getBlockByHash",
        json!([block["result"]["hash"], true]),
    )
    .await;
    same(&direct, g, "eth_getBalance", json!([OTHER, "latest"])).await;
    same(&direct, g, "eth_getBalance", json!([OTHER, "0x0"])).await;
    same(&direct, g, "eth_getCode", json!([contract, "latest"])).await;
    let called = same(
        &direct,
        g,
        "eth_call",
        json!([{"to": contract, "data": "0x1234"}, "latest"]),
    )
    .await;
    assert!(called["result"].as_str().unwrap().ends_with("2a"));
    same(
        &direct,
        g,
        "eth_call",
        json!([{"to": contract, "data": "0x1234"}]),
    )
    .await;
    same(
        &direct,
        g,
        "eth_estimateGas",
        json!([{"from": DEV, "to": contract, "data": "0x1234"}]),
    )
    .await;
    let logs = same(
        &direct,
        g,
        "eth_getLogs",
        json!([{"fromBlock": "0x0", "toBlock": "latest", "address": contract}]),
    )
    .await;
    assert_eq!(logs["result"].as_array().unwrap().len(), 1);
    same(&direct, g, "eth_getLogs", json!([{"address": contract}])).await;

    // Errors come back as the node gave them.
    let e = same(
        &direct,
        g,
        "eth_getBalance",
        json!(["0xnot-an-address", "latest"]),
    )
    .await;
    assert!(e.get("error").is_some());
    // A method outside the default list never reaches a node: the gateway
    // answers as a node would (-32601), naming the method.
    let (d, e) = both(&direct, g, "eth_noSuchMethod", json!([])).await;
    assert_eq!(d["error"]["code"], -32601);
    assert_eq!(
        (e["id"].clone(), e["error"]["code"].clone()),
        (json!(42), json!(-32601))
    );
    assert!(e["error"]["message"]
        .as_str()
        .unwrap()
        .contains("eth_noSuchMethod"));
    let e = same(&direct, g, "eth_sendRawTransaction", json!(["0xdeadbeef"])).await;
    assert!(e.get("error").is_some());
}

#[tokio::test]
async fn raw_transactions_are_sent_once_and_already_known_is_success() {
    let fleet = fleet(3).await;
    fleet.mine().await.unwrap();
    let gw = gateway_over(&fleet, "", 1).await;

    let (raw, hash) = fleet.sign_transfer(OTHER, 12345).await.unwrap();
    assert_eq!(
        result(&gw.url, "eth_sendRawTransaction", json!([raw])).await,
        json!(hash)
    );
    // A client that sends it again gets the hash, not "already known".
    assert_eq!(
        result(&gw.url, "eth_sendRawTransaction", json!([raw])).await,
        json!(hash)
    );

    fleet.submit(raw).await.unwrap();
    let height = fleet.mine().await.unwrap();
    wait_synced(&gw, 3, height).await;
    let receipt = same(
        &fleet.http_url(1),
        &gw.url,
        "eth_getTransactionReceipt",
        json!([hash]),
    )
    .await;
    assert_eq!(receipt["result"]["status"], "0x1");
    assert_eq!(quantity(&receipt["result"]["blockNumber"]), height);
}
