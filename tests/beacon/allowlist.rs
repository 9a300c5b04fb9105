//! The operator's `paths:` over real Lodestar nodes, applied by a reload of
//! the running gateway: an allow opens a read the built-in table closes
//! (the node's own answer comes back, on both listeners and for a non-`/eth`
//! namespace on the main one), a deny closes a read the table opens (the
//! Beacon API's 403, no node asked, its percent-escaped spelling too); a
//! reload without them restores the table.

use rpcgate::config::Config;

use crate::tap::Tap;
use crate::{get, Running};

const DEBUG: &str = "/eth/v1/debug/beacon/heads";
const PEERS: &str = "/eth/v1/node/peers";

/// Reloads the gateway with its own config plus `extra` (keys of network `lh`).
fn reload(gw: &Running, extra: &str) {
    let config = Config::from_yaml(&format!("{}{extra}", gw.yaml)).unwrap();
    gw.gateway.reload(&config).unwrap();
}

/// `direct`: the node behind `taps[0]`, asked without the gateway.
pub async fn operator_paths(gw: &Running, taps: &[Tap; 2], direct: &str) {
    let closed = get(&format!("{}{DEBUG}", gw.main)).await;
    assert_eq!(closed.status, 403, "closed by the table before the reload");
    reload(
        gw,
        "    paths:\n      allow: [\"/eth/v1/debug/\", \"/lodestar/\"]\n      deny: [\"/eth/v1/node/peers\"]\n",
    );
    taps.iter().for_each(Tap::reset);
    let want = get(&format!("{direct}{DEBUG}")).await;
    for base in [&gw.main, &gw.own] {
        let r = get(&format!("{base}{DEBUG}")).await;
        assert_eq!(
            (r.status, &r.body),
            (want.status, &want.body),
            "{base}{DEBUG} passed through: the node's own answer"
        );
    }
    let reached = |path: &str| {
        taps.iter()
            .flat_map(|t| t.traffic())
            .filter(|s| s.path == path)
            .count()
    };
    assert!(reached(DEBUG) >= 2, "the opened read reached a node");
    // A namespace outside /eth, on the main listener as /<network>/lodestar/...
    let want = get(&format!("{direct}/lodestar/no-such-path")).await;
    let r = get(&format!("{}/lodestar/no-such-path", gw.main)).await;
    assert_eq!((r.status, &r.body), (want.status, &want.body));
    assert!(reached("/lodestar/no-such-path") >= 1);
    taps.iter().for_each(Tap::reset);
    for url in [
        format!("{}{PEERS}", gw.main),
        format!("{}{PEERS}", gw.own),
        format!("{}/eth/v1/node/%70eers", gw.own),
    ] {
        let r = get(&url).await;
        assert_eq!(r.status, 403, "{url}: denied");
        assert_eq!(r.json()["code"], 403, "{url}: the Beacon API error form");
    }
    let seen = taps.iter().flat_map(|t| t.traffic()).collect::<Vec<_>>();
    assert!(seen.is_empty(), "a denied path reached a node: {seen:?}");
    let next_door = get(&format!("{}/eth/v1/node/peer_count", gw.own)).await;
    assert_eq!(next_door.status, 200, "a deny closes its prefix only");
    reload(gw, "");
    let r = get(&format!("{}{DEBUG}", gw.main)).await;
    assert_eq!(r.status, 403, "closed again by the reload without paths");
}
