//! What one call costs, in compute units.
//!
//! The defaults follow the spirit of the hosted providers' compute units: a
//! call answered from memory (`eth_chainId`) costs almost nothing, a state
//! read a little, `eth_call` and gas estimation more (they execute code), and
//! log queries and traces much more (they scan many blocks or re-execute
//! them). Operators override any entry, or add globs, with `policy.costs`;
//! methods no entry matches cost `policy.default_cost`. The built-in costs
//! are a column of the method table ([`crate::eth::methods`]).
//!
//! A flat price per method undercharges the calls whose work grows with
//! their arguments, so [`scaled`] raises the price of two kinds by what they
//! ask for: execution (`eth_call`, `eth_estimateGas`,
//! `eth_createAccessList`) by the `gas` the call allows, one price per
//! [`GAS_PER_PRICE`] started (a call that names no gas pays the flat price:
//! the node's own gas cap bounds it), and `eth_feeHistory` with reward
//! percentiles by the blocks times percentiles it asks the node to read
//! and sort, one unit per [`FEE_HISTORY_CELLS_PER_UNIT`] above its price.
//! Arguments the gateway cannot read are priced flat; the node refuses them.

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::config::{MethodPattern, PolicyConfig};
use crate::eth::methods::{Resolved, COST_GLOBS, METHODS};
use crate::jsonrpc::json_text;

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

/// Gas one price of an execution call covers.
pub const GAS_PER_PRICE: u64 = 10_000_000;
/// Blocks times reward percentiles of `eth_feeHistory` one unit covers.
pub const FEE_HISTORY_CELLS_PER_UNIT: u64 = 10;
/// No call is priced above this (far above any burst: it is refused as too costly).
const MAX_PRICE: u64 = 1_000_000_000;

/// The price of one call of `method` with `params`, from its table price `base`.
pub fn scaled(method: &str, params: Option<&RawValue>, base: u32) -> u32 {
    let Some(params) = params else {
        return base;
    };
    let price = match method {
        "eth_call" | "eth_estimateGas" | "eth_createAccessList" => {
            let starts = gas_of(params).map_or(1, |gas| gas.div_ceil(GAS_PER_PRICE).max(1));
            u64::from(base).saturating_mul(starts)
        }
        "eth_feeHistory" => {
            let cells = fee_history_cells(params).unwrap_or(0);
            u64::from(base).saturating_add(cells.div_ceil(FEE_HISTORY_CELLS_PER_UNIT))
        }
        _ => return base,
    };
    price.min(MAX_PRICE) as u32
}

/// The first parameter's `gas`, a quantity.
fn gas_of(params: &RawValue) -> Option<u64> {
    #[derive(Deserialize)]
    struct Tx<'a> {
        #[serde(borrow)]
        gas: Option<&'a str>,
    }
    // The first parameter found by the scanner, not a list built: every
    // eth_call is priced here.
    let (_, first) = json_text::nth(params.get(), 0)?;
    let tx: Tx<'_> = serde_json::from_str(first?).ok()?;
    quantity(tx.gas?)
}

/// Blocks asked times reward percentiles asked (0 without percentiles).
fn fee_history_cells(params: &RawValue) -> Option<u64> {
    let list: Vec<&RawValue> = serde_json::from_str(params.get()).ok()?;
    let percentiles: Vec<&RawValue> = serde_json::from_str(list.get(2)?.get()).ok()?;
    // Block count: a quantity, or (as Geth also takes) a decimal number.
    let count = list.first()?.get();
    let blocks = match serde_json::from_str::<&str>(count) {
        Ok(text) => quantity(text)?,
        Err(_) => count.parse::<u64>().ok()?,
    };
    Some(blocks.saturating_mul(percentiles.len() as u64))
}

/// A `0x` quantity; over `u64` counts as `u64::MAX` (priced at the cap).
fn quantity(text: &str) -> Option<u64> {
    let digits = text.strip_prefix("0x")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let significant = digits.trim_start_matches('0');
    if significant.len() > 16 {
        return Some(u64::MAX);
    }
    u64::from_str_radix(
        if significant.is_empty() {
            "0"
        } else {
            significant
        },
        16,
    )
    .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(text: &str) -> Box<RawValue> {
        RawValue::from_string(text.to_string()).unwrap()
    }

    #[test]
    fn execution_is_priced_by_gas() {
        let plain = raw(r#"[{"to":"0x01","data":"0x"},"latest"]"#);
        assert_eq!(scaled("eth_call", Some(&plain), 25), 25);
        let small = raw(r#"[{"to":"0x01","gas":"0x5208"},"latest"]"#);
        assert_eq!(scaled("eth_call", Some(&small), 25), 25);
        // 50,000,000 gas: five prices.
        let heavy = raw(r#"[{"to":"0x01","gas":"0x2faf080"},"latest"]"#);
        assert_eq!(scaled("eth_call", Some(&heavy), 25), 125);
        assert_eq!(scaled("eth_estimateGas", Some(&heavy), 50), 250);
        let huge = raw(r#"[{"gas":"0xffffffffffffffffffff"}]"#);
        assert_eq!(scaled("eth_call", Some(&huge), 25), MAX_PRICE as u32);
        // Unreadable arguments: the flat price (the node refuses them).
        assert_eq!(scaled("eth_call", Some(&raw(r#"[{"gas":7}]"#)), 25), 25);
        assert_eq!(scaled("eth_call", Some(&raw("{}")), 25), 25);
        assert_eq!(scaled("eth_getBalance", Some(&heavy), 5), 5);
    }

    #[test]
    fn fee_history_is_priced_by_blocks_times_percentiles() {
        let bare = raw(r#"["0x400","latest"]"#);
        assert_eq!(scaled("eth_feeHistory", Some(&bare), 10), 10);
        let none = raw(r#"["0x400","latest",[]]"#);
        assert_eq!(scaled("eth_feeHistory", Some(&none), 10), 10);
        let five = raw(r#"["0x400","latest",[10,20,30,40,50]]"#);
        assert_eq!(scaled("eth_feeHistory", Some(&five), 10), 10 + 512);
        let decimal = raw(r#"[1024,"latest",[50]]"#);
        assert_eq!(scaled("eth_feeHistory", Some(&decimal), 10), 10 + 103);
    }

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
