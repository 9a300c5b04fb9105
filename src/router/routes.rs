//! Method routes: calls that go to named upstreams only (`routes:` of a
//! network, see `config::RouteConfig`).
//!
//! A routed call is chosen among the route's upstreams with the same P2C,
//! retries and submission rules as any call (`try_group`), and with the route's
//! timeout (`NetworkConfig::timeout_for` reads it). Its candidates:
//! - `tier: route` upstreams (relays) always: they have no head tracker,
//!   so nothing but their own answers can judge them, and the router's
//!   latency estimate already steers away from one that fails;
//! - tracked upstreams while eligible, or in standby (a `tier: fallback`
//!   upstream a route names is asked for its routed calls whatever the
//!   primaries do).
//!
//! When every attempt failed (or none could be made) and the failure lets
//! another backend try (for a write: the upstream surely did not receive
//! it), a route with `fallback: primary` hands the call to the network's
//! ordinary path: the primaries, then the fallback tier as usual. Without
//! it the call fails with the route's own error and reaches no other
//! backend, so a private transaction never leaks to a public mempool.
//!
//! Private order flow (`eth_sendBundle`, `eth_sendPrivateTransaction`,
//! `eth_cancelPrivateTransaction`) is sent like `eth_sendRawTransaction`:
//! to another of the route's upstreams only when the first surely did not
//! get it; params go through unchanged.
//!
//! Each routed call is counted in `rpcgate_routed_calls_total{network,
//! route, outcome}`, by the route's configured name (or index).

use fastrand::Rng;

use super::{attempt, try_group, Forward, Order, RouteError, Target, Unanswered};
use crate::config::{RouteConfig, RouteFallback};
use crate::eth::methods::SENT_ONCE;
use crate::jsonrpc::Reply;
use crate::metrics::RouteOutcome;
use crate::upstream::{BackendView, Ineligible, NetworkView, UpstreamError};

/// Sends `call` through `route` (and, if it allows, the ordinary path).
pub(super) async fn forward(
    target: Target<'_>,
    view: &NetworkView,
    route: &RouteConfig,
    call: Forward<'_>,
    rng: &mut Rng,
) -> Result<Reply, RouteError> {
    let candidates = candidates(target, view, route);
    let routed = if candidates.is_empty() {
        Err(Unanswered::nothing(RouteError::NoBackend))
    } else if SENT_ONCE.contains(&call.method) && call.method != "eth_sendRawTransaction" {
        let order = Order {
            in_order: false,
            rng: &mut *rng,
            batch: None,
        };
        let again = UpstreamError::surely_not_received;
        attempt(target, candidates, &call, again, order).await
    } else {
        try_group(target, candidates, &call, &mut *rng, None).await
    };
    let unanswered = match routed {
        Ok(reply) => {
            count(target, route, RouteOutcome::Routed);
            return Ok(reply);
        }
        Err(u) if u.go_on && route.fallback == RouteFallback::Primary => u,
        Err(u) => {
            count(target, route, RouteOutcome::Failed);
            return u.into_result();
        }
    };
    tracing::debug!(
        network = %target.config.name, route = %route.name, method = call.method,
        error = %unanswered.error,
        "the route's upstreams failed this call; trying the network's own backends"
    );
    match super::ordinary(target, view, call, rng, None).await {
        Ok(reply) => {
            count(target, route, RouteOutcome::Fallback);
            Ok(reply)
        }
        Err(e) => {
            count(target, route, RouteOutcome::Failed);
            Err(e)
        }
    }
}

/// The route's upstreams that may take a call now, in its order.
fn candidates<'a>(
    target: Target<'a>,
    view: &'a NetworkView,
    route: &RouteConfig,
) -> Vec<&'a BackendView> {
    let relays = target.upstreams.relays();
    route
        .upstreams
        .iter()
        .filter_map(|name| {
            if let Some(relay) = relays.iter().find(|r| &r.backend.name == name) {
                return Some(relay);
            }
            view.backends.iter().find(|b| {
                &b.backend.name == name
                    && matches!(b.ineligible, None | Some(Ineligible::Standby))
                    && !b.backend.is_ejected()
            })
        })
        .collect()
}

/// Counts a call of `route`, found by its place in the network's routes (a
/// handful: a scan is cheaper than a map).
fn count(target: Target<'_>, route: &RouteConfig, outcome: RouteOutcome) {
    let routes = &target.config.routes;
    if let Some(at) = routes.iter().position(|r| std::ptr::eq(r, route)) {
        target.routed.count(at, outcome);
    }
}
