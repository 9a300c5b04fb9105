//! Client policy: who may call what, how often, and how much.

use rpcgate_fleet::{Fleet, Tap};

use crate::support::*;

mod clients;
mod fair_shares;
mod heavy_calls;
mod processes;

/// One replica with `blocks` mined blocks behind a counting tap, and a
/// gateway in front with the network keys `network` and the top-level YAML
/// `policy`, synced.
async fn tapped_gateway(blocks: u64, network: &str, policy: &str) -> (Fleet, Tap, Gw) {
    let fleet = fleet(1).await;
    fleet.mine_blocks(blocks).await.unwrap();
    let tap = Tap::start(&fleet.http_url(0)).await.unwrap();
    let config = format!(
        "{}{policy}",
        yaml(fleet.chain_id(), &[up("r0", tap.url(), None)], network)
    );
    let gw = start_gateway(&config).await;
    wait_synced(&gw, 1, blocks).await;
    (fleet, tap, gw)
}
