//! Which methods a caller may call: allow and deny lists of names and globs.
//!
//! The default list is the method table's `open` column
//! ([`crate::eth::methods`], which says why each method is open or not).
//!
//! A client's own `allow` replaces the default list (`@default` brings it
//! back inside that list); `deny` always wins.

use std::collections::HashSet;

use crate::config::{AllowEntry, ClientRules, MethodPattern};
use crate::eth::methods::{open_methods, Resolved, METHODS};

/// A set of method names and globs.
#[derive(Debug, Default)]
struct Patterns {
    /// Looked up once per call: foldhash rather than SipHash, since only the
    /// config fills it (a client's method names are only looked up).
    exact: HashSet<Box<str>, foldhash::fast::RandomState>,
    globs: Vec<MethodPattern>,
}

impl Patterns {
    fn add(&mut self, pattern: &MethodPattern) {
        if pattern.is_exact() {
            self.exact.insert(pattern.as_str().into());
        } else {
            self.globs.push(pattern.clone());
        }
    }

    fn open_methods(&mut self) {
        self.exact.extend(open_methods().map(Box::from));
    }

    fn matches(&self, method: &str) -> bool {
        self.exact.contains(method) || self.globs.iter().any(|g| g.matches(method))
    }
}

/// The method rules of one class of callers.
#[derive(Debug)]
pub struct MethodRules {
    allow: Patterns,
    deny: Patterns,
    /// The verdict for each method of the table, by its position, decided
    /// once when the rules are built: a known method costs no lookup here.
    known: Box<[bool]>,
}

impl MethodRules {
    pub fn new(rules: &ClientRules) -> MethodRules {
        let mut allow = Patterns::default();
        match &rules.allow {
            None => allow.open_methods(),
            Some(list) => {
                for entry in list {
                    match entry {
                        AllowEntry::OpenMethods => allow.open_methods(),
                        AllowEntry::Pattern(p) => allow.add(p),
                    }
                }
            }
        }
        let mut deny = Patterns::default();
        for p in &rules.deny {
            deny.add(p);
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(allow: Option<&[&str]>, deny: &[&str]) -> MethodRules {
        let pattern = |p: &&str| MethodPattern::parse(p).unwrap();
        let entry = |p: &&str| match *p {
            "@default" => AllowEntry::OpenMethods,
            _ => AllowEntry::Pattern(pattern(p)),
        };
        MethodRules::new(&ClientRules {
            allow: allow.map(|a| a.iter().map(entry).collect()),
            deny: deny.iter().map(pattern).collect(),
            limits: Default::default(),
            aggregate: Default::default(),
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
