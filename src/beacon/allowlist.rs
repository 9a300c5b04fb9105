//! The operator's additions to the path allowlist (`paths:` of a beacon
//! network): prefixes that open reads of a namespace the built-in table
//! ([`super::paths`]) keeps closed, such as `/eth/v1/debug/` or
//! `/lighthouse/`, and prefixes that close anything. The longest matching
//! prefix decides; a path no prefix matches keeps the table's route.
//!
//! A prefix is matched against the path as the node will read it: with its
//! percent-escapes decoded (else `/eth/v1/node/%70eers` would pass a deny
//! of `/eth/v1/node/peers`), and a path with an empty, `.` or `..` segment
//! is closed (else `/eth/v1/debug/../../lighthouse/x` would pass an allow of
//! `/eth/v1/debug/`). An allow opens reads only (GET, HEAD): writes keep
//! the table's meaning, since a publish or a subscription has its own
//! routing and a write the table does not know is nothing the gateway can
//! send safely. A reload swaps the rules in (one atomic load per request).

use http::Method;

use super::paths::{self, Route};
use crate::config::BeaconPathsConfig;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Allow,
    Deny,
}

/// A network's prefixes, longest first.
#[derive(Debug, Default)]
pub(super) struct PathRules {
    entries: Vec<(String, Verdict)>,
}

impl PathRules {
    pub(super) fn new(config: &BeaconPathsConfig) -> PathRules {
        let mut entries: Vec<(String, Verdict)> = config
            .allow
            .iter()
            .map(|p| (p.clone(), Verdict::Allow))
            .chain(config.deny.iter().map(|p| (p.clone(), Verdict::Deny)))
            .collect();
        // Validation keeps a prefix out of both lists; deny first on a tie all the same.
        entries.sort_by(|a, b| {
            b.0.len()
                .cmp(&a.0.len())
                .then((a.1 == Verdict::Allow).cmp(&(b.1 == Verdict::Allow)))
        });
        PathRules { entries }
    }

    /// The route of a request (`path`: without the network prefix, the key
    /// or the query): the table's, changed by the longest matching prefix.
    pub(super) fn route(&self, method: &Method, path: &str) -> Route {
        let table = paths::classify(method, path);
        if self.entries.is_empty() {
            return table;
        }
        let Some(decoded) = decode(path) else {
            return Route::Closed;
        };
        if odd_segments(&decoded) {
            return Route::Closed;
        }
        match self.longest(&decoded) {
            None => table,
            Some(Verdict::Deny) => Route::Closed,
            Some(Verdict::Allow) => {
                let read = *method == Method::GET || *method == Method::HEAD;
                if table == Route::Closed && read {
                    Route::Read
                } else {
                    table
                }
            }
        }
    }

    /// Whether an allow is the longest prefix matching `path` (a path the
    /// main listener then takes for this network though it is not `/eth/...`).
    pub(super) fn opens(&self, path: &str) -> bool {
        decode(path).is_some_and(|d| !odd_segments(&d) && self.longest(&d) == Some(Verdict::Allow))
    }

    fn longest(&self, path: &str) -> Option<Verdict> {
        self.entries
            .iter()
            .find(|(prefix, _)| path.starts_with(prefix.as_str()))
            .map(|(_, v)| *v)
    }
}

/// Whether a path has an empty, `.` or `..` segment (a trailing `/` aside).
fn odd_segments(path: &str) -> bool {
    let inner = path.strip_suffix('/').unwrap_or(path);
    inner
        .strip_prefix('/')
        .unwrap_or(inner)
        .split('/')
        .any(|s| s.is_empty() || s == "." || s == "..")
}

/// `path` with its percent-escapes decoded; `None` when an escape is broken
/// or the result is not UTF-8 (no node reads such a path as the table would).
fn decode(path: &str) -> Option<std::borrow::Cow<'_, str>> {
    if !path.contains('%') {
        return Some(path.into());
    }
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok().map(Into::into)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(allow: &[&str], deny: &[&str]) -> PathRules {
        PathRules::new(&BeaconPathsConfig {
            allow: allow.iter().map(|s| s.to_string()).collect(),
            deny: deny.iter().map(|s| s.to_string()).collect(),
        })
    }

    #[test]
    fn the_longest_prefix_decides_over_the_table() {
        let r = rules(
            &["/eth/v1/debug/", "/lighthouse/", "/eth/v1/node/peers/abc"],
            &[
                "/eth/v1/node/peers",
                "/eth/v1/debug/beacon/states/",
                "/lighthouse/admin",
            ],
        );
        let get = |p| r.route(&Method::GET, p);
        // Opened: a closed namespace, for reads only.
        assert_eq!(get("/eth/v1/debug/beacon/heads"), Route::Read);
        assert_eq!(
            r.route(&Method::HEAD, "/eth/v1/debug/fork_choice"),
            Route::Read
        );
        assert_eq!(r.route(&Method::POST, "/eth/v1/debug/x"), Route::Closed);
        assert_eq!(get("/lighthouse/health"), Route::Read);
        // A longer deny inside an allow, and a longer allow inside a deny.
        assert_eq!(get("/eth/v1/debug/beacon/states/head"), Route::Closed);
        assert_eq!(get("/lighthouse/admin/peers"), Route::Closed);
        assert_eq!(get("/eth/v1/node/peers"), Route::Closed);
        assert_eq!(get("/eth/v1/node/peers/xyz"), Route::Closed);
        assert_eq!(get("/eth/v1/node/peers/abc"), Route::Read);
        // Untouched by the lists: the table's route.
        assert_eq!(get("/eth/v1/node/peer_count"), Route::Read);
        assert_eq!(get("/eth/v2/debug/beacon/heads"), Route::Closed);
        assert_eq!(
            get("/eth/v1/validator/duties/proposer/1"),
            Route::ValidatorRead
        );
        assert_eq!(
            r.route(&Method::POST, "/eth/v1/beacon/pool/attestations"),
            Route::Publish
        );
        // An allow does not change what the table already opens.
        let r2 = rules(&["/eth/v1/validator/"], &[]);
        assert_eq!(
            r2.route(&Method::GET, "/eth/v1/validator/duties/proposer/1"),
            Route::ValidatorRead
        );
    }

    #[test]
    fn escapes_and_odd_segments_do_not_slip_past() {
        let r = rules(&["/eth/v1/debug/"], &["/eth/v1/node/peers"]);
        let get = |p| r.route(&Method::GET, p);
        assert_eq!(get("/eth/v1/node/%70eers"), Route::Closed);
        assert_eq!(get("/eth/v1/node/%70eer_count"), Route::Read);
        assert_eq!(get("/eth/v1/node/peer%"), Route::Closed);
        assert_eq!(get("/eth/v1/node/%ff"), Route::Closed);
        assert_eq!(get("/eth/v1/debug/../../lighthouse/x"), Route::Closed);
        assert_eq!(get("/eth/v1/debug/%2e%2e/x"), Route::Closed);
        assert_eq!(get("/eth/v1/debug//x"), Route::Closed);
        assert_eq!(get("/eth/v1/debug/beacon/heads/"), Route::Read);
        assert!(r.opens("/eth/v1/debug/beacon/heads"));
        assert!(!r.opens("/eth/v1/node/peers"));
        assert!(!r.opens("/eth/v1/debug/../x"));
        assert!(!r.opens("/lighthouse/health"));
        // No lists: the table alone, as before.
        let none = PathRules::default();
        assert_eq!(none.route(&Method::GET, "/eth/v1/node/peers"), Route::Read);
        assert_eq!(none.route(&Method::GET, "/eth/v1/debug/x"), Route::Closed);
    }
}
