//! The response cache: what is stored, for how long, bound to what; the
//! block-scoped head tier; and what the cache saves on a DApp's read mix.
//! Upstream calls are counted at the backends by taps ([`Tapped`]).

use std::sync::Arc;

use rpcgate::cache::Cache;
use rpcgate::router::RouteError;
use rpcgate_fleet::{Fleet, Tap};

use crate::support::*;

mod head;
mod mix;
mod responses;

/// A fleet of 3 behind counting taps (newHeads straight from the nodes), and a gateway.
pub struct Tapped {
    pub fleet: Fleet,
    pub taps: Vec<Tap>,
    pub gw: Gw,
}

impl Tapped {
    /// Calls of `method` that reached any backend.
    pub fn upstream(&self, method: &str) -> u64 {
        self.taps.iter().map(|t| t.count(method)).sum()
    }

    pub fn upstream_total(&self) -> u64 {
        self.taps.iter().map(Tap::total).sum()
    }

    pub fn reset(&self) {
        self.taps.iter().for_each(Tap::reset);
    }

    pub fn cache(&self) -> Arc<Cache<RouteError>> {
        self.gw.network().cache.clone().expect("the cache is on")
    }
}

/// Head polling slowed down, so that the taps count client calls only (new
/// heads still arrive over WebSocket, straight from the nodes).
pub fn quiet(yaml: &str) -> String {
    yaml.replace("ws_poll_interval: 200ms", "ws_poll_interval: 60s")
        .replace("poll_interval: 50ms", "poll_interval: 60s")
        .replace(
            "finality_poll_interval: 200ms",
            "finality_poll_interval: 60s",
        )
        .replace("syncing_poll_interval: 500ms", "syncing_poll_interval: 60s")
}

/// Mines `blocks` blocks (a transfer in the first) and starts a tapped gateway
/// with the given cache lines; waits until its cache follows the chain.
pub async fn tapped(blocks: u64, cache: &[&str], quiet_heads: bool) -> Tapped {
    tapped_with(blocks, cache, quiet_heads, |y| y).await
}

/// Like [`tapped`], with the gateway's config edited by `edit` first.
pub async fn tapped_with(
    blocks: u64,
    cache: &[&str],
    quiet_heads: bool,
    edit: impl Fn(String) -> String,
) -> Tapped {
    let fleet = fleet(3).await;
    fleet.transfer(OTHER, 1_000).await.unwrap();
    fleet.mine_blocks(blocks).await.unwrap();
    let taps = tap_all(&fleet).await;
    let ups: Vec<Up> = taps
        .iter()
        .enumerate()
        .map(|(i, t)| up(&format!("r{i}"), t.url(), Some(fleet.ws_url(i))))
        .collect();
    let mut y = with_cache(&yaml(fleet.chain_id(), &ups, ""), cache);
    if quiet_heads {
        y = quiet(&y);
    }
    let gw = start_gateway(&edit(y)).await;
    wait_synced(&gw, 3, blocks).await;
    let t = Tapped { fleet, taps, gw };
    wait_cache_current(&t.gw).await;
    t
}

pub async fn wait_cache_current(gw: &Gw) {
    let net = gw.network();
    let cache = net.cache.clone().expect("the cache is on");
    wait_view(gw, "finality known and the cache's chain current", |v| {
        v.finalized.is_some() && cache.chain_current(v)
    })
    .await;
}
