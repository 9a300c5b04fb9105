//! Which methods a caller may call: allow and deny lists of names and globs.
//!
//! The default list is explicit rather than "every `eth_`": what is open is
//! what real clients send, and nothing that acts with the node's own keys
//! (`eth_sign*`, `eth_sendTransaction`, `eth_accounts`, `personal_`), changes
//! or inspects the node (`admin_`, `debug_`, `miner_`, `txpool_`, `engine_`,
//! `les_`, `clique_`) or drives a dev node (`anvil_`, `hardhat_`, `evm_`).
//! It was checked against the method names in the sources of:
//! - ethers (v5 and v6): chain id, block number, fee data (`eth_gasPrice`,
//!   `eth_maxPriorityFeePerGas`, `eth_feeHistory`), balances, nonce, code,
//!   storage, `eth_call`, `eth_estimateGas`, blocks, transactions, receipts,
//!   `eth_getLogs`, the filter methods for polling, `eth_subscribe`,
//!   `net_version` (v5 network detection);
//! - viem: the above plus `eth_blobBaseFee`, `eth_createAccessList`,
//!   `eth_getProof`, `eth_simulateV1`, `eth_fillTransaction`,
//!   `eth_getBlockReceipts`, `eth_sendRawTransactionSync`, the
//!   block-transaction counts and `web3_clientVersion`;
//! - web3.py: the above plus `eth_syncing`, `eth_getTransactionCount`,
//!   uncle and raw-transaction lookups, `net_listening`, `net_peerCount`,
//!   `web3_sha3`, `eth_protocolVersion`, `eth_mining`, `eth_hashrate`;
//! - alloy: the above plus `eth_getAccount`, `eth_getAccountInfo`,
//!   `eth_callMany`, `eth_getRawTransactionByHash`.
//!
//! A client's own `allow` replaces the default list (`@default` brings it
//! back inside that list); `deny` always wins.

use std::collections::HashSet;

use crate::config::TierConfig;

/// Open to every caller unless a client's rules say otherwise.
pub const DEFAULT_METHODS: &[&str] = &[
    // net_ and web3_
    "net_version",
    "net_listening",
    "net_peerCount",
    "web3_clientVersion",
    "web3_sha3",
    // chain state
    "eth_chainId",
    "eth_blockNumber",
    "eth_syncing",
    "eth_protocolVersion",
    "eth_mining",
    "eth_hashrate",
    "eth_gasPrice",
    "eth_maxPriorityFeePerGas",
    "eth_feeHistory",
    "eth_blobBaseFee",
    // accounts and execution
    "eth_getBalance",
    "eth_getTransactionCount",
    "eth_getCode",
    "eth_getStorageAt",
    "eth_getProof",
    "eth_getAccount",
    "eth_getAccountInfo",
    "eth_call",
    "eth_callMany",
    "eth_estimateGas",
    "eth_createAccessList",
    "eth_simulateV1",
    "eth_fillTransaction",
    // blocks
    "eth_getBlockByNumber",
    "eth_getBlockByHash",
    "eth_getBlockReceipts",
    "eth_getBlockTransactionCountByNumber",
    "eth_getBlockTransactionCountByHash",
    "eth_getUncleByBlockHashAndIndex",
    "eth_getUncleByBlockNumberAndIndex",
    "eth_getUncleCountByBlockHash",
    "eth_getUncleCountByBlockNumber",
    // transactions
    "eth_getTransactionByHash",
    "eth_getTransactionByBlockHashAndIndex",
    "eth_getTransactionByBlockNumberAndIndex",
    "eth_getRawTransactionByHash",
    "eth_getRawTransactionByBlockHashAndIndex",
    "eth_getRawTransactionByBlockNumberAndIndex",
    "eth_getTransactionReceipt",
    "eth_sendRawTransaction",
    "eth_sendRawTransactionSync",
    // logs, filters, subscriptions
    "eth_getLogs",
    "eth_newFilter",
    "eth_newBlockFilter",
    "eth_newPendingTransactionFilter",
    "eth_getFilterChanges",
    "eth_getFilterLogs",
    "eth_uninstallFilter",
    "eth_subscribe",
    "eth_unsubscribe",
];

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
                p.exact
                    .extend(DEFAULT_METHODS.iter().map(|m| Box::from(*m)));
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
}

impl MethodRules {
    pub fn new(tier: &TierConfig) -> MethodRules {
        let allow = match &tier.allow {
            Some(list) => Patterns::new(list.iter().map(String::as_str)),
            None => Patterns::new(DEFAULT_METHODS.iter().copied()),
        };
        MethodRules {
            allow,
            deny: Patterns::new(tier.deny.iter().map(String::as_str)),
        }
    }

    pub fn allows(&self, method: &str) -> bool {
        self.allow.matches(method) && !self.deny.matches(method)
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
        })
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
