//! `networks.<name>.routes`: methods sent to named upstreams only.
//!
//! A route names methods (exact names or globs, see `config::MethodPattern`) and the
//! upstreams that serve them; its calls go to those upstreams alone, with
//! the network's choice (P2C), retries and send rules, and with the route's
//! own `timeout` when it has one. The first route (in file order) with a
//! matching pattern wins. `fallback: primary` lets the network's ordinary
//! backends (the primaries, then the `tier: fallback` upstreams as usual)
//! take a call once every attempt at the route's upstreams failed in a way
//! that allows another try (for a send: the upstream surely did not get it).
//!
//! An upstream of `tier: route` serves routed calls only (a relay such as a
//! private-mempool RPC): it gets no head tracker, so it needs to answer
//! nothing but the calls routed to it, and it never counts for readiness or
//! the served head. The route only decides where a call goes: the client
//! policy has admitted it first.
//!
//! This module holds the schema of one route, its checks and its typed form.

use std::collections::HashMap;
use std::time::Duration;

use serde::Deserialize;

use super::{NetworkConfig, UpstreamConfig, UpstreamTier};
use crate::config::error::{duration, Checks};
use crate::config::MethodPattern;

/// One entry of `routes:` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(in crate::config) struct RawRoute {
    pub name: Option<String>,
    pub methods: Option<Vec<String>>,
    pub upstreams: Option<Vec<String>>,
    pub fallback: Option<String>,
    pub timeout: Option<String>,
}

/// Where a route's call goes when its own upstreams all failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RouteFallback {
    /// Nowhere: the call fails with the route's last error.
    #[default]
    None,
    /// The network's ordinary backends: primaries, then its fallback tier.
    Primary,
}

/// One validated route.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteConfig {
    /// The `route` label of its metrics: as configured, else its index.
    pub name: String,
    /// Method names or globs.
    pub methods: Vec<MethodPattern>,
    /// Names of upstreams of the same network (at least one).
    pub upstreams: Vec<String>,
    pub fallback: RouteFallback,
    /// Time limit of one attempt for its calls; else the network's
    /// `method_timeouts` / `request_timeout`.
    pub timeout: Option<Duration>,
}

impl RouteConfig {
    /// Whether `method` is one of this route's.
    pub fn matches(&self, method: &str) -> bool {
        self.methods.iter().any(|pattern| pattern.matches(method))
    }
}

impl NetworkConfig {
    /// The route that `method` takes, if any: the first that matches.
    pub fn route_for(&self, method: &str) -> Option<&RouteConfig> {
        self.routes.iter().find(|r| r.matches(method))
    }
}

/// Checks `routes` against the network's `upstreams`; `at` is the
/// network's key path (`networks.mainnet`).
pub(super) fn validate(
    c: &mut Checks,
    at: &str,
    raw: Option<Vec<RawRoute>>,
    upstreams: &[UpstreamConfig],
) -> Vec<RouteConfig> {
    let mut routes: Vec<RouteConfig> = Vec::new();
    // Patterns already taken, and by which route (a second one would never apply).
    let mut taken: HashMap<String, usize> = HashMap::new();
    for (i, r) in raw.unwrap_or_default().into_iter().enumerate() {
        let key = |k: &str| format!("{at}.routes[{i}].{k}");
        let name = match r.name {
            None => i.to_string(),
            Some(n) => {
                let plain = !n.is_empty()
                    && n.len() <= 64
                    && n.chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
                if !plain {
                    c.fail(
                        key("name"),
                        "is a metric label: use 1 to 64 letters, digits, '-' and '_'",
                    );
                } else if let Some(j) = routes.iter().position(|o| o.name == n) {
                    c.fail(
                        key("name"),
                        format!("{n:?} is already the name of routes[{j}]"),
                    );
                }
                n
            }
        };
        let written = r.methods.unwrap_or_default();
        if written.is_empty() {
            c.fail(
                key("methods"),
                "is required: one method name or glob at least",
            );
        }
        let mut methods = Vec::with_capacity(written.len());
        for (j, pattern) in written.iter().enumerate() {
            let at = format!("{}[{j}]", key("methods"));
            let Some(parsed) = MethodPattern::parse(pattern)
                .map_err(|e| c.fail(&at, e))
                .ok()
            else {
                continue;
            };
            if let Some(k) = taken.insert(pattern.clone(), i) {
                c.fail(
                    at,
                    format!("{pattern:?} is already routed by routes[{k}] (the first match wins)"),
                );
            }
            methods.push(parsed);
        }
        let names = r.upstreams.unwrap_or_default();
        if names.is_empty() {
            c.fail(
                key("upstreams"),
                "is required: the names of the upstreams that serve these methods",
            );
        }
        for (j, n) in names.iter().enumerate() {
            let at = format!("{}[{j}]", key("upstreams"));
            if !upstreams.iter().any(|u| &u.name == n) {
                c.fail(
                    at,
                    format!("{n:?} is not an upstream of this network (list it under upstreams, with tier: route for one that serves routed calls only)"),
                );
            } else if names[..j].contains(n) {
                c.fail(at, format!("{n:?} is listed twice"));
            }
        }
        let fallback = match r.fallback.as_deref() {
            None | Some("none") => RouteFallback::None,
            Some("primary") => RouteFallback::Primary,
            Some(other) => {
                c.fail(
                    key("fallback"),
                    format!("{other:?} is not a fallback: use primary, or none (the default)"),
                );
                RouteFallback::None
            }
        };
        let timeout = r
            .timeout
            .as_deref()
            .and_then(|t| c.ok(duration(&key("timeout"), t)));
        routes.push(RouteConfig {
            name,
            methods,
            upstreams: names,
            fallback,
            timeout,
        });
    }
    // A route-only upstream that no route names would never get a call.
    for (i, u) in upstreams.iter().enumerate() {
        if u.tier == UpstreamTier::Route && !routes.iter().any(|r| r.upstreams.contains(&u.name)) {
            c.fail(
                format!("{at}.upstreams[{i}].tier"),
                format!(
                    "{:?} is tier: route, but no route names it: it would never get a call",
                    u.name
                ),
            );
        }
    }
    routes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    const UPS: &str = "networks:\n  mainnet:\n    chain_id: 1\n    upstreams:\n      - name: geth-0\n        http: http://127.0.0.1:8545\n      - name: archive-0\n        http: http://127.0.0.1:8546\n      - name: relay\n        http: http://127.0.0.1:8547\n        tier: route\n";

    fn with_routes(routes: &str) -> String {
        format!("{UPS}    routes:\n{routes}")
    }

    fn err_path(yaml: &str) -> String {
        match Config::from_yaml(yaml) {
            Err(e) if !e.problems().is_empty() => e.problems()[0].path.clone(),
            other => panic!("expected an invalid config, got {other:?}"),
        }
    }

    #[test]
    fn the_issue_shape_loads() {
        let c = Config::from_yaml(&with_routes(
            "      - methods: [eth_sendRawTransaction]\n        upstreams: [relay]\n        fallback: primary\n      - methods: [\"debug_*\", \"trace_*\"]\n        upstreams: [archive-0]\n        timeout: 60s\n",
        ))
        .unwrap();
        let n = &c.networks[0];
        assert_eq!(n.upstreams[2].tier, UpstreamTier::Route);
        assert_eq!(n.routes.len(), 2);
        let send = n.route_for("eth_sendRawTransaction").unwrap();
        assert_eq!(
            (send.name.as_str(), send.fallback),
            ("0", RouteFallback::Primary)
        );
        let trace = n.route_for("debug_traceTransaction").unwrap();
        assert_eq!(trace.name, "1");
        assert_eq!(trace.upstreams, ["archive-0"]);
        assert!(n.route_for("trace_block").is_some());
        assert!(n.route_for("eth_call").is_none());
        assert!(n.route_for("debug").is_none());
        // The route's timeout wins over method_timeouts (debug_*: 120s by default).
        assert_eq!(
            n.timeout_for("debug_traceTransaction"),
            Duration::from_secs(60)
        );
        assert_eq!(n.timeout_for("eth_sendRawTransaction"), n.request_timeout);
    }

    #[test]
    fn bad_routes_name_their_key_path() {
        let p = "networks.mainnet.routes";
        let cases = [
            (
                "      - methods: [eth_sendRawTransaction]\n        upstreams: [nowhere]\n",
                format!("{p}[0].upstreams[0]"),
            ),
            (
                "      - methods: [eth_call]\n        upstreams: [relay]\n      - methods: [debug_*]\n        upstreams: [archive-0, relay, gone]\n",
                format!("{p}[1].upstreams[2]"),
            ),
            (
                "      - methods: [eth_call]\n        upstreams: [relay, relay]\n",
                format!("{p}[0].upstreams[1]"),
            ),
            (
                "      - methods: []\n        upstreams: [relay]\n",
                format!("{p}[0].methods"),
            ),
            (
                "      - methods: [eth_call]\n",
                format!("{p}[0].upstreams"),
            ),
            (
                "      - methods: [\"eth-call\"]\n        upstreams: [relay]\n",
                format!("{p}[0].methods[0]"),
            ),
            (
                "      - methods: [\"eth_*call\", \"eth_*.\"]\n        upstreams: [relay]\n",
                format!("{p}[0].methods[1]"),
            ),
            (
                "      - methods: [eth_call]\n        upstreams: [relay]\n      - methods: [eth_getLogs, eth_call]\n        upstreams: [geth-0]\n",
                format!("{p}[1].methods[1]"),
            ),
            (
                "      - methods: [eth_call]\n        upstreams: [relay]\n        fallback: primaries\n",
                format!("{p}[0].fallback"),
            ),
            (
                "      - methods: [eth_call]\n        upstreams: [relay]\n        timeout: 0s\n",
                format!("{p}[0].timeout"),
            ),
            (
                "      - methods: [eth_call]\n        upstreams: [relay]\n        name: \"has space\"\n",
                format!("{p}[0].name"),
            ),
            (
                "      - methods: [eth_call]\n        upstreams: [relay]\n        name: a\n      - methods: [eth_getLogs]\n        upstreams: [relay]\n        name: a\n",
                format!("{p}[1].name"),
            ),
            (
                "      - methods: [eth_call]\n        upstreams: [relay]\n        upstream: [relay]\n",
                format!("{p}[0].upstream"),
            ),
            // The relay is named by no route.
            (
                "      - methods: [eth_call]\n        upstreams: [geth-0]\n",
                "networks.mainnet.upstreams[2].tier".to_string(),
            ),
        ];
        for (routes, path) in cases {
            assert_eq!(err_path(&with_routes(routes)), path, "{routes}");
        }
        // Without routes at all, a route-only upstream is refused too.
        assert_eq!(err_path(UPS), "networks.mainnet.upstreams[2].tier");
    }

    /// Routes take the one method-pattern grammar: `*` anywhere.
    #[test]
    fn routes_take_globs_anywhere() {
        let c = Config::from_yaml(&with_routes(
            "      - methods: [\"*_trace*\"]\n        upstreams: [relay]\n",
        ))
        .unwrap();
        let n = &c.networks[0];
        assert!(n.route_for("debug_traceTransaction").is_some());
        assert!(n.route_for("trace_block").is_none());
    }

    #[test]
    fn route_only_upstreams_are_no_primaries() {
        let only = "networks:\n  m:\n    chain_id: 1\n    upstreams:\n      - name: relay\n        http: http://127.0.0.1:1\n        tier: route\n    routes:\n      - methods: [eth_sendRawTransaction]\n        upstreams: [relay]\n";
        assert_eq!(err_path(only), "networks.m.upstreams");
    }
}
