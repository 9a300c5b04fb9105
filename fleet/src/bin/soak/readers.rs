//! The DApp's HTTP traffic: readers of the head, of balances of fresh addresses
//! at `latest`, of blocks at and just below the head and of the contract
//! (`eth_call`), each alternating between the gateways; and a wallet that sends
//! a transfer every second with its nonce read through the gateways.
//!
//! A reader remembers the highest head each gateway served it and the highest
//! of all: an answer below the first is a stale answer of that gateway, below
//! the second (only) a stale answer across gateways.

use std::sync::Arc;
use std::time::Duration;

use rpcgate_fleet::RECEIVER_ACCOUNT;
use serde_json::{json, Value};

use super::context::{is_transport, quantity, Soak};
use super::record::Count;

/// Dev account 2 of anvil's mnemonic: the wallet (the fleet signs with account 0).
pub const WALLET: &str = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC";
/// A pause between a reader's rounds, so that the soak leaves CPU to the gateways.
const READ_PAUSE: Duration = Duration::from_millis(10);

pub async fn reader(soak: Arc<Soak>, id: usize) {
    let mut best = vec![0u64; soak.gateways.len()];
    let mut best_any = 0u64;
    let mut rng = fastrand::Rng::with_seed(id as u64 * 7919 + 1);
    let mut round = 0u64;
    while !soak.stopping() {
        round += 1;
        let g = (round as usize + id) % soak.gateways.len();
        let head = match read(&soak, g, "eth_blockNumber", json!([])).await {
            Some((value, served_by)) => match quantity(&value) {
                Some(head) => {
                    if head < best[served_by] {
                        soak.record.fail(
                            Count::StaleSameGateway,
                            format!(
                                "reader {id}: gateway {served_by} served head {head} after {}",
                                best[served_by]
                            ),
                        );
                    } else if head < best_any {
                        soak.record.fail(
                            Count::StaleAcrossGateways,
                            format!("reader {id}: gateway {served_by} served head {head} after {best_any} (other gateway)"),
                        );
                    }
                    best[served_by] = best[served_by].max(head);
                    best_any = best_any.max(head);
                    if soak.inject.stale && id == 0 && round == 20 {
                        best[served_by] += 3;
                        best_any += 3;
                    }
                    head
                }
                None => {
                    soak.record.fail(
                        Count::FailedReads,
                        format!("eth_blockNumber on gateway {served_by}: {value}"),
                    );
                    continue;
                }
            },
            None => {
                soak.pause(READ_PAUSE).await;
                continue;
            }
        };

        let fresh = format!("0x{:040x}", rng.u128(..) >> 8);
        if let Some((value, served_by)) =
            read(&soak, g, "eth_getBalance", json!([fresh, "latest"])).await
        {
            if value != json!("0x0") {
                soak.record.fail(
                    Count::FailedReads,
                    format!("eth_getBalance of a fresh address on gateway {served_by}: {value}"),
                );
            }
        }

        let number = head.saturating_sub(rng.u64(0..3));
        let tag = format!("{number:#x}");
        if let Some((value, served_by)) =
            read(&soak, g, "eth_getBlockByNumber", json!([tag, false])).await
        {
            if value.get("number").and_then(quantity) != Some(number) {
                soak.record.fail(
                    Count::FailedReads,
                    format!(
                        "eth_getBlockByNumber({number}) on gateway {served_by}, head {head}: {}",
                        short(&value)
                    ),
                );
            }
        }

        let call = json!([{ "to": soak.contract, "data": "0x" }, "latest"]);
        if let Some((value, served_by)) = read(&soak, g, "eth_call", call).await {
            if quantity(&value) != Some(42) {
                soak.record.fail(
                    Count::FailedReads,
                    format!("eth_call on gateway {served_by}: {}", short(&value)),
                );
            }
        }
        soak.record.note("read rounds", 1);
        soak.pause(READ_PAUSE).await;
    }
}

/// One read; a failure is counted (and `None` returned).
async fn read(
    soak: &Soak,
    g: usize,
    method: &'static str,
    params: Value,
) -> Option<(Value, usize)> {
    soak.record.note("reads", 1);
    match soak.call(g, method, params).await {
        Ok(answer) => Some(answer),
        Err(error) => {
            if !soak.stopping() {
                soak.record.fail(
                    Count::FailedReads,
                    format!("{method} on gateway {g}: {error}"),
                );
            }
            None
        }
    }
}

fn short(value: &Value) -> String {
    let text = value.to_string();
    if text.len() > 160 {
        format!("{}...", &text[..160])
    } else {
        text
    }
}

/// A transfer a second: nonce (pending) read through one gateway, the raw
/// transaction signed by a replica, sent through the other gateway.
pub async fn wallet(soak: Arc<Soak>) {
    let mut next = 0u64;
    let mut round = 0usize;
    while soak.pause(Duration::from_secs(1)).await {
        round += 1;
        let g = round % soak.gateways.len();
        let other = (g + 1) % soak.gateways.len();
        let params = json!([WALLET, "pending"]);
        let nonce = match soak.call(g, "eth_getTransactionCount", params).await {
            Ok((value, _)) => match quantity(&value) {
                Some(n) => n,
                None => {
                    soak.record.fail(
                        Count::SendErrors,
                        format!("nonce read on gateway {g}: {value}"),
                    );
                    continue;
                }
            },
            Err(error) => {
                soak.record.fail(
                    Count::SendErrors,
                    format!("nonce read on gateway {g}: {error}"),
                );
                continue;
            }
        };
        // The chain may have dropped a send the gateway accepted (a replica that
        // had it in its pool was killed, say): the chain's count is the truth.
        if nonce > next {
            next = nonce;
        }
        let mut use_nonce = nonce;
        if soak.inject.send && round == 10 && nonce > 0 {
            use_nonce = nonce - 1;
        }
        let Some(raw) = sign(&soak, use_nonce).await else {
            continue;
        };
        soak.record.note("sends", 1);
        let _chain = soak.chain.lock().await;
        match soak.call(other, "eth_sendRawTransaction", json!([raw])).await {
            Ok(_) if use_nonce == next => {
                next += 1;
                if let Err(error) = soak.fleet.submit(raw).await {
                    eprintln!("soak: submit to the fleet failed: {error}");
                }
            }
            Ok(_) => soak.record.fail(
                Count::SendErrors,
                format!("nonce {use_nonce} read on gateway {g}, {next} expected; the send was accepted on gateway {other}"),
            ),
            Err(error) if is_transport(&error) && soak.stopping() => {}
            Err(error) => soak.record.fail(
                Count::SendErrors,
                format!("nonce {use_nonce} read on gateway {g} ({next} expected), sent on gateway {other}: {error}"),
            ),
        }
    }
}

/// The wallet's transfer with `nonce`, signed by the first replica that answers.
async fn sign(soak: &Soak, nonce: u64) -> Option<String> {
    let tx = json!({
        "from": WALLET, "to": RECEIVER_ACCOUNT, "value": "0x1", "gas": "0x5208",
        "nonce": format!("{nonce:#x}"), "maxFeePerGas": "0x2540be400",
        "maxPriorityFeePerGas": "0x3b9aca00", "chainId": format!("{:#x}", soak.fleet.chain_id()),
    });
    for i in 0..soak.fleet.len() {
        let Ok(rpc) = soak.fleet.rpc(i).await else {
            continue;
        };
        if let Ok(Value::String(raw)) = rpc.call("eth_signTransaction", json!([tx])).await {
            return Some(raw);
        }
    }
    eprintln!("soak: no replica could sign the wallet's transfer");
    None
}
