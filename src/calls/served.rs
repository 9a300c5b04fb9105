//! The served-by headers (`server.expose_upstream_headers`, off by default):
//! for an operator debugging a DApp, each HTTP answer says which backend
//! served it, how the cache took part, and how many backend calls it took.
//!
//! - `X-Rpcgate-Upstream`: the backend's configured (or discovered) name;
//!   `-` when no backend's reply is in the answer (a hit, a local answer, a
//!   refusal). A coalesced call names the backend of the call it joined.
//! - `X-Rpcgate-Cache`: `hit` (the in-memory store), `shared` (the shared
//!   tier in Redis), `coalesced` (joined an identical call in flight),
//!   `miss` (looked up, not there: fetched from a backend), `pass` (not the
//!   cache's business: writes, filters, node state; or no cache), `local` (answered by the gateway: `eth_blockNumber`,
//!   `eth_chainId`), `-` (not routed: refused, invalid, a subscription call).
//! - `X-Rpcgate-Attempts`: backend calls this request made for the call,
//!   retries included (`2` after one failover; `0` for a hit, or a call
//!   that joined another's).
//!
//! A batch gets one item per entry, in the batch's order, comma-separated
//! (`anvil-0, -, anvil-1`), so that entry *i* of the body and item *i* of
//! each header belong together. Past [`MAX_LISTED`] entries the lists stop
//! with `+N` (the number of entries not listed), so a large batch cannot
//! make a header larger than clients accept. WebSocket messages have no
//! headers: they get none of this.

use std::fmt::Write as _;

use http::{HeaderMap, HeaderName, HeaderValue};

use super::ServedBy;

pub(super) const X_RPCGATE_UPSTREAM: HeaderName = HeaderName::from_static("x-rpcgate-upstream");
pub(super) const X_RPCGATE_CACHE: HeaderName = HeaderName::from_static("x-rpcgate-cache");
pub(super) const X_RPCGATE_ATTEMPTS: HeaderName = HeaderName::from_static("x-rpcgate-attempts");

/// Entries of a batch listed in each header; the rest are counted as `+N`.
pub(super) const MAX_LISTED: usize = 100;

/// Adds the three headers for `served` (one item per call of the message);
/// nothing when the message had no calls that were answered.
pub(crate) fn decorate(headers: &mut HeaderMap, served: &[ServedBy]) {
    if served.is_empty() {
        return;
    }
    let upstream = list(served, |s, out| {
        out.push_str(s.upstream.as_deref().unwrap_or("-"));
    });
    let cache = list(served, |s, out| {
        out.push_str(s.cache.map_or("-", |c| c.label()));
    });
    let attempts = list(served, |s, out| {
        let _ = write!(out, "{}", s.attempts);
    });
    for (name, value) in [
        (X_RPCGATE_UPSTREAM, upstream),
        (X_RPCGATE_CACHE, cache),
        (X_RPCGATE_ATTEMPTS, attempts),
    ] {
        // Backend names are validated config names or `<group>-<address>`,
        // so they are visible ASCII; anything else leaves the header out.
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    }
}

fn list(served: &[ServedBy], item: impl Fn(&ServedBy, &mut String)) -> String {
    let mut out = String::new();
    for (i, s) in served.iter().take(MAX_LISTED).enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        item(s, &mut out);
    }
    if served.len() > MAX_LISTED {
        let _ = write!(out, ", +{}", served.len() - MAX_LISTED);
    }
    out
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::cache::CacheUse;

    fn by(upstream: Option<&str>, cache: Option<CacheUse>, attempts: u32) -> ServedBy {
        ServedBy {
            upstream: upstream.map(Arc::from),
            cache,
            attempts,
        }
    }

    #[test]
    fn one_item_per_entry_in_order() {
        let mut h = HeaderMap::new();
        decorate(
            &mut h,
            &[
                by(Some("anvil-0"), Some(CacheUse::Miss), 2),
                by(None, None, 0),
                by(None, Some(CacheUse::Hit), 0),
            ],
        );
        assert_eq!(h[&X_RPCGATE_UPSTREAM], "anvil-0, -, -");
        assert_eq!(h[&X_RPCGATE_CACHE], "miss, -, hit");
        assert_eq!(h[&X_RPCGATE_ATTEMPTS], "2, 0, 0");
    }

    #[test]
    fn large_batches_are_cut_short_with_a_count() {
        let mut h = HeaderMap::new();
        let served = vec![by(Some("b"), Some(CacheUse::Pass), 1); MAX_LISTED + 7];
        decorate(&mut h, &served);
        let cache = h[&X_RPCGATE_CACHE].to_str().unwrap();
        assert_eq!(cache.split(", ").count(), MAX_LISTED + 1);
        assert!(cache.ends_with(", +7"));
    }

    #[test]
    fn nothing_for_a_message_without_calls() {
        let mut h = HeaderMap::new();
        decorate(&mut h, &[]);
        assert!(h.is_empty());
    }
}
