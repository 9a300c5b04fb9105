//! Which methods a caller may call: allow and deny lists of names and globs.
//!
//! The default list is the method table's `open` column
//! ([`crate::eth::methods`], which says why each method is open or not).
//!
//! A client's own `allow` replaces the default list (`@default` brings it
//! back inside that list); `deny` always wins.

use std::collections::HashSet;

use crate::config::TierConfig;
use crate::eth::methods::{open_methods, Resolved, METHODS};

/// A set of method names and globs.
#[derive(Debug, Default)]
struct Patterns {
    /// Looked up once per call: foldhash rather than SipHash, since only the
    /// config fills it (a client's method names are only looked up).
    exact: HashSet<Box<str>, foldhash::fast::RandomState>,
    globs: Vec<Box<str>>,
}

impl Patterns {
    fn new<'a>(list: impl IntoIterator<Item = &'a str>) -> Patterns {
        let mut p = Patterns::default();
        for item in list {
            if item == "@default" {
                p.exact.extend(open_methods().map(Box::from));
            } else if item.contains('*') {
                p.globs.push(item.into());
            } else {
                p.exact.insert(item.into());
            }
        }
        p
    }

    fn matches(&self, method: &str) -> bool {
        self.exact.contains(method) || self.globs.iter().any(|g| glob(g, method))
    }
}

/// One tier's method rules.
#[derive(Debug)]
pub struct MethodRules {
    allow: Patterns,
    deny: Patterns,
    /// The verdict for each method of the table, by its position, decided
    /// once when the rules are built: a known method costs no lookup here.
    known: Box<[bool]>,
}

impl MethodRules {
    pub fn new(tier: &TierConfig) -> MethodRules {
        let allow = match &tier.allow {
            Some(list) => Patterns::new(list.iter().map(String::as_str)),
            None => Patterns::new(open_methods()),
        };
        let deny = Patterns::new(tier.deny.iter().map(String::as_str));
        let judge = |m: &str| allow.matches(m) && !deny.matches(m);
        let known = METHODS.iter().map(|m| judge(m.name)).collect();
        MethodRules { allow, deny, known }
    }

    pub fn allows<'a>(&self, method: impl Into<Resolved<'a>>) -> bool {
        let method = method.into();
        match method.position() {
            Some(i) => self.known[i],
            None => self.allow.matches(method.name) && !self.deny.matches(method.name),
        }
    }
}

/// `*` matches any run of characters (also none); everything else itself.
/// Greedy with one backtrack point: linear in practice, O(n·m) at worst, and
/// both sides are bounded (method names by `server.max_method_len`).
pub fn glob(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(allow: Option<&[&str]>, deny: &[&str]) -> MethodRules {
        MethodRules::new(&TierConfig {
            allow: allow.map(|a| a.iter().map(|s| s.to_string()).collect()),
            deny: deny.iter().map(|s| s.to_string()).collect(),
            limits: Default::default(),
            allowed_origins: None,
            max_logs_block_range: None,
        })
    }

    /// The verdicts decided once per table method agree with judging the
    /// name itself, for the default list, an allow list with globs and a deny.
    #[test]
    fn known_verdicts_match_the_patterns() {
        let tiers = [
            rules(None, &[]),
            rules(None, &["eth_call", "eth_get*"]),
            rules(
                Some(&["@default", "debug_*", "trace_call"]),
                &["debug_getRaw*"],
            ),
        ];
        for r in &tiers {
            for m in METHODS {
                let unresolved = Resolved {
                    name: m.name,
                    known: None,
                };
                assert_eq!(r.allows(m.name), r.allows(unresolved), "{}", m.name);
            }
        }
    }

    #[test]
    fn globs() {
        assert!(glob("eth_*", "eth_call"));
        assert!(glob("eth_*", "eth_"));
        assert!(!glob("eth_*", "debug_eth_call"));
        assert!(glob("*_trace*", "debug_traceTransaction"));
        assert!(glob("debug_traceTransaction", "debug_traceTransaction"));
        assert!(!glob("debug_trace", "debug_traceTransaction"));
        assert!(glob("a*b*c", "aXXbYYbc"));
        assert!(!glob("a*b*c", "aXXbYYb"));
        assert!(glob("*", ""));
    }

    #[test]
    fn default_closed_namespaces() {
        let r = rules(None, &[]);
        for open in [
            "eth_call",
            "eth_getLogs",
            "eth_sendRawTransaction",
            "eth_feeHistory",
            "eth_fillTransaction",
            "eth_getTransactionCount",
            "net_version",
            "web3_clientVersion",
        ] {
            assert!(r.allows(open), "{open}");
        }
        for closed in [
            "admin_peers",
            "debug_traceTransaction",
            "personal_sign",
            "engine_newPayloadV3",
            "miner_start",
            "txpool_content",
            "les_serverInfo",
            "clique_getSigners",
            "anvil_setBalance",
            "hardhat_impersonateAccount",
            "evm_mine",
            "eth_sendTransaction",
            "eth_sign",
            "eth_accounts",
            "eth_noSuchMethod",
        ] {
            assert!(!r.allows(closed), "{closed}");
        }
    }

    #[test]
    fn allow_globs_and_deny_wins() {
        let r = rules(
            Some(&["eth_*", "debug_traceTransaction"]),
            &["eth_sendRawTransaction"],
        );
        assert!(r.allows("eth_anything"));
        assert!(r.allows("debug_traceTransaction"));
        assert!(!r.allows("debug_traceCall"));
        assert!(!r.allows("eth_sendRawTransaction"));
        assert!(!r.allows("net_version"));
        let r = rules(Some(&["@default", "debug_trace*"]), &["debug_traceBlock*"]);
        assert!(r.allows("net_version") && r.allows("debug_traceCall"));
        assert!(!r.allows("debug_traceBlockByNumber"));
    }
}
