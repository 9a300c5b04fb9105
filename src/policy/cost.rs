//! What one call costs, in compute units.
//!
//! The defaults follow the spirit of the hosted providers' compute units: a
//! call answered from memory (`eth_chainId`) costs almost nothing, a state
//! read a little, `eth_call` and gas estimation more (they execute code), and
//! log queries and traces much more (they scan many blocks or re-execute
//! them). Operators override any entry, or add globs, with `policy.costs`;
//! methods no entry matches cost `policy.default_cost`.

use std::collections::HashMap;

use super::methods::glob;
use crate::config::PolicyConfig;

/// Built-in costs; a `*` entry is a glob.
pub const DEFAULT_COSTS: &[(&str, u32)] = &[
    ("eth_chainId", 1),
    ("net_version", 1),
    ("net_listening", 1),
    ("web3_clientVersion", 1),
    ("eth_blockNumber", 5),
    ("eth_syncing", 5),
    ("eth_gasPrice", 10),
    ("eth_maxPriorityFeePerGas", 10),
    ("eth_blobBaseFee", 10),
    ("eth_feeHistory", 10),
    ("eth_getBalance", 15),
    ("eth_getTransactionCount", 15),
    ("eth_getCode", 15),
    ("eth_getStorageAt", 15),
    ("eth_getBlockByNumber", 15),
    ("eth_getBlockByHash", 15),
    ("eth_getTransactionByHash", 15),
    ("eth_getTransactionReceipt", 15),
    ("eth_getFilterChanges", 20),
    ("eth_newFilter", 20),
    ("eth_newBlockFilter", 20),
    ("eth_uninstallFilter", 10),
    ("eth_call", 25),
    ("eth_estimateGas", 50),
    ("eth_createAccessList", 50),
    ("eth_getProof", 50),
    ("eth_getBlockReceipts", 75),
    ("eth_getLogs", 75),
    ("eth_getFilterLogs", 75),
    ("eth_simulateV1", 100),
    ("eth_callMany", 100),
    ("eth_sendRawTransaction", 100),
    ("eth_sendRawTransactionSync", 100),
    ("trace_*", 300),
    ("debug_trace*", 300),
];

#[derive(Debug)]
pub struct CostTable {
    /// Looked up once per call: foldhash rather than SipHash, since only the
    /// config fills it (a client's method names are only looked up).
    exact: HashMap<Box<str>, u32, foldhash::fast::RandomState>,
    /// The operator's globs first, then the built-in ones.
    globs: Vec<(Box<str>, u32)>,
    default: u32,
}

impl CostTable {
    pub fn new(config: &PolicyConfig) -> CostTable {
        let mut exact = HashMap::default();
        let mut globs = Vec::new();
        for (m, c) in config.costs.iter().map(|(m, c)| (m.as_str(), *c)) {
            if m.contains('*') {
                globs.push((m.into(), c));
            } else {
                exact.insert(m.into(), c);
            }
        }
        for &(m, c) in DEFAULT_COSTS {
            if m.contains('*') {
                globs.push((m.into(), c));
            } else {
                exact.entry(m.into()).or_insert(c);
            }
        }
        CostTable {
            exact,
            globs,
            default: config.default_cost,
        }
    }

    pub fn cost(&self, method: &str) -> u32 {
        if let Some(c) = self.exact.get(method) {
            return *c;
        }
        self.globs
            .iter()
            .find(|(g, _)| glob(g, method))
            .map_or(self.default, |(_, c)| *c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_overrides() {
        let t = CostTable::new(&PolicyConfig::default());
        assert!(t.cost("eth_getLogs") > 10 * t.cost("eth_chainId"));
        assert_eq!(t.cost("debug_traceTransaction"), 300);
        assert_eq!(t.cost("eth_somethingNew"), 20);
        let t = CostTable::new(&PolicyConfig {
            costs: vec![("eth_getLogs".into(), 7), ("debug_*".into(), 900)],
            default_cost: 3,
            ..PolicyConfig::default()
        });
        assert_eq!(t.cost("eth_getLogs"), 7);
        assert_eq!(t.cost("debug_traceCall"), 900);
        assert_eq!(t.cost("eth_call"), 25);
        assert_eq!(t.cost("eth_somethingNew"), 3);
    }
}
