//! What one call costs, in compute units.
//!
//! The defaults follow the spirit of the hosted providers' compute units: a
//! call answered from memory (`eth_chainId`) costs almost nothing, a state
//! read a little, `eth_call` and gas estimation more (they execute code), and
//! log queries and traces much more (they scan many blocks or re-execute
//! them). Operators override any entry, or add globs, with `policy.costs`;
//! methods no entry matches cost `policy.default_cost`. The built-in costs
//! are a column of the method table ([`crate::eth::methods`]).

use std::collections::HashMap;

use crate::config::{MethodPattern, PolicyConfig};
use crate::eth::methods::{Resolved, COST_GLOBS, METHODS};

#[derive(Debug)]
pub struct CostTable {
    /// Looked up once per call: foldhash rather than SipHash, since only the
    /// config fills it (a client's method names are only looked up).
    exact: HashMap<Box<str>, u32, foldhash::fast::RandomState>,
    /// The operator's globs first, then the built-in ones.
    globs: Vec<(MethodPattern, u32)>,
    default: u32,
    /// The cost of each method of the table, by its position, decided once.
    known: Box<[u32]>,
}

impl CostTable {
    pub fn new(config: &PolicyConfig) -> CostTable {
        let mut exact = HashMap::default();
        let mut globs = Vec::new();
        for (m, c) in &config.costs {
            if m.is_exact() {
                exact.insert(m.as_str().into(), *c);
            } else {
                globs.push((m.clone(), *c));
            }
        }
        for m in METHODS {
            if let Some(c) = m.cost {
                exact.entry(m.name.into()).or_insert(c);
            }
        }
        // The built-in globs are written in the method table's grammar, which
        // is the config's (a unit test there parses each).
        globs.extend(
            COST_GLOBS
                .iter()
                .filter_map(|&(g, c)| Some((MethodPattern::parse(g).ok()?, c))),
        );
        let mut table = CostTable {
            exact,
            globs,
            default: config.default_cost,
            known: Box::default(),
        };
        table.known = METHODS.iter().map(|m| table.by_name(m.name)).collect();
        table
    }

    pub fn cost<'a>(&self, method: impl Into<Resolved<'a>>) -> u32 {
        let method = method.into();
        match method.position() {
            Some(i) => self.known[i],
            None => self.by_name(method.name),
        }
    }

    fn by_name(&self, method: &str) -> u32 {
        if let Some(c) = self.exact.get(method) {
            return *c;
        }
        self.globs
            .iter()
            .find(|(g, _)| g.matches(method))
            .map_or(self.default, |(_, c)| *c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(pattern: &str) -> MethodPattern {
        MethodPattern::parse(pattern).unwrap()
    }

    #[test]
    fn the_built_in_globs_are_method_patterns() {
        for (g, _) in COST_GLOBS {
            assert!(MethodPattern::parse(g).is_ok(), "{g}");
        }
    }

    /// The costs decided once per table method agree with pricing the name.
    #[test]
    fn known_costs_match_the_name() {
        let config = PolicyConfig {
            costs: vec![(p("eth_getLogs"), 7), (p("eth_get*"), 2)],
            ..PolicyConfig::default()
        };
        let t = CostTable::new(&config);
        for m in METHODS {
            assert_eq!(t.cost(m.name), t.by_name(m.name), "{}", m.name);
        }
        assert_eq!(t.cost("eth_getLogs"), 7);
    }

    #[test]
    fn defaults_and_overrides() {
        let t = CostTable::new(&PolicyConfig::default());
        assert!(t.cost("eth_getLogs") > 10 * t.cost("eth_chainId"));
        assert_eq!(t.cost("debug_traceTransaction"), 300);
        assert_eq!(t.cost("eth_somethingNew"), 20);
        let t = CostTable::new(&PolicyConfig {
            costs: vec![(p("eth_getLogs"), 7), (p("debug_*"), 900)],
            default_cost: 3,
            ..PolicyConfig::default()
        });
        assert_eq!(t.cost("eth_getLogs"), 7);
        assert_eq!(t.cost("debug_traceCall"), 900);
        assert_eq!(t.cost("eth_call"), 25);
        assert_eq!(t.cost("eth_somethingNew"), 3);
    }
}
