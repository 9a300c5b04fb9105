//! The one table of JSON-RPC methods the gateway knows by name.
//!
//! Each method says, once, everything the pipeline needs to know about it:
//! - where it takes its block argument ([`BlockArg`]), which block pinning
//!   rewrites and backend choice reads;
//! - how its answer may be cached ([`Caching`]);
//! - its cost in compute units (methods without one cost the configured
//!   `policy.default_cost`, and [`COST_GLOBS`] price whole families);
//! - whether it is open to every caller by default (`open`);
//! - whether it reads state at its block (`reads_state`, written
//!   `.reads_state()` after the entry): a pruned node keeps only recent
//!   state, so the router sends an old block's state reads only to nodes
//!   that still hold it;
//! - and, by being here at all, that it gets a metric label of its own
//!   (anything else a caller invents is counted as `other`).
//!
//! Before this table, five lists had to agree by hand (the router's block
//! table, the cache's rules, the default allow list, the cost table and the
//! metrics' known names); now each reads its column here.
//!
//! The open list is explicit rather than "every `eth_`": what is open is what
//! real clients send, and nothing that acts with the node's own keys
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
//! - the execution-apis spec's `eth` namespace (`src/eth/*.yaml` of
//!   ethereum/execution-apis): each of its methods is open here, or listed
//!   in [`SPEC_LEFT_OUT`] with the reason (a unit test holds the index).
//!
//! The methods that are known but closed are the ones operators commonly
//! open to trusted clients, and the dangerous ones whose blocked calls are
//! worth seeing by name in the metrics.

use std::collections::HashMap;
use std::sync::LazyLock;

/// Where a method takes its block parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockArg {
    /// No block parameter: the call reads the present.
    None,
    /// A block number, tag or hash, required at this index.
    At(usize),
    /// At this index; absent means `latest`.
    AtOrLatest(usize),
    /// An `eth_getLogs` filter object at index 0.
    LogFilter,
    /// A block hash at this index (the call names its block by hash only).
    HashAt(usize),
}

/// How a method's answer may be cached (the block argument and the answer
/// decide the rest, see the cache's rules).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caching {
    /// Never cached nor shared: writes, filters, subscriptions, node state.
    Never,
    /// A read of the present with no block to bind it to: identical calls in
    /// flight are coalesced into one, nothing is kept.
    Coalesce,
    /// A read of the present that is the same question for everyone while
    /// the head stays (fees): kept per served head, bound to its hash.
    PerHead,
    /// A chain constant.
    Constant,
    /// Keyed by the block hash it names.
    ByHash,
    /// A read of the block argument; the answer names its block and is
    /// checked against it.
    AtBlock,
    /// A read of state at the block argument, which may be rewritten to
    /// `{"blockHash": ...}` so that the node answers for exactly that block.
    StateAtBlock,
    /// `eth_getLogs` over a range of blocks.
    LogRange,
    /// A transaction lookup by hash: kept once its block is final.
    Transaction,
}

/// One method and everything the gateway knows about it.
#[derive(Debug, PartialEq, Eq)]
pub struct Method {
    pub name: &'static str,
    pub block: BlockArg,
    pub caching: Caching,
    /// Compute units; `None` costs the configured default (or a glob's).
    pub cost: Option<u32>,
    /// Open to every caller unless a client's rules say otherwise.
    pub open: bool,
    /// Reads the state (accounts, code, storage) at its block argument: only
    /// a node that still holds that block's state can answer it (see the
    /// router's state filter); a pruned node answers `missing trie node`.
    pub reads_state: bool,
}

impl Method {
    /// Whether asking it twice, of two nodes, is harmless: what the cache
    /// may share (anything not [`Caching::Never`]), or a call that names a
    /// block or reads state at one. Writes (`eth_sendRawTransaction`),
    /// filters and subscriptions (whose ids live on one node), signing and
    /// node-steering methods are none of these; neither are a few reads of
    /// the present with no block (`eth_callMany`, `eth_simulateV1`), which
    /// err on the side of one send. Request hedging reads this column.
    pub const fn is_read(&self) -> bool {
        !matches!(self.caching, Caching::Never)
            || self.reads_state
            || !matches!(self.block, BlockArg::None)
    }
}

/// A method open to every caller by default (the `open` column).
const fn open(name: &'static str, block: BlockArg, caching: Caching, cost: Option<u32>) -> Method {
    Method {
        name,
        block,
        caching,
        cost,
        open: true,
        reads_state: false,
    }
}

/// A method known by name but closed by default: a client's rules must open it.
const fn closed(
    name: &'static str,
    block: BlockArg,
    caching: Caching,
    cost: Option<u32>,
) -> Method {
    Method {
        open: false,
        ..open(name, block, caching, cost)
    }
}

impl Method {
    /// The same method, marked as reading state at its block argument (the
    /// `reads_state` column).
    const fn reads_state(self) -> Method {
        Method {
            reads_state: true,
            ..self
        }
    }
}

use BlockArg as B;
use Caching as C;

/// Every method the gateway knows by name, one a line: a table kept aligned
/// by hand, since rustfmt would spread the longer entries over seven lines.
#[rustfmt::skip]
pub const METHODS: &[Method] = &[
    // constructor and name                            block argument    caching          cost
    // net_ and web3_
    open("net_version",                                B::None,          C::Constant,     Some(1)),
    open("net_listening",                              B::None,          C::Never,        Some(1)),
    open("net_peerCount",                              B::None,          C::Never,        None),
    open("web3_clientVersion",                         B::None,          C::Never,        Some(1)),
    open("web3_sha3",                                  B::None,          C::Never,        None),
    // chain state
    open("eth_chainId",                                B::None,          C::Constant,     Some(1)),
    open("eth_blockNumber",                            B::None,          C::Never,        Some(5)),
    open("eth_syncing",                                B::None,          C::Never,        Some(5)),
    open("eth_protocolVersion",                        B::None,          C::Never,        None),
    open("eth_mining",                                 B::None,          C::Never,        None),
    open("eth_hashrate",                               B::None,          C::Never,        None),
    open("eth_gasPrice",                               B::None,          C::PerHead,      Some(10)),
    open("eth_maxPriorityFeePerGas",                   B::None,          C::PerHead,      Some(10)),
    open("eth_feeHistory",                             B::At(1),         C::PerHead,      Some(10)),
    open("eth_blobBaseFee",                            B::None,          C::PerHead,      Some(10)),
    // EIP-7910: the current, next and last fork's parameters; they change at
    // a fork's activation time, so shared while in flight and never stored.
    open("eth_config",                                 B::None,          C::Coalesce,     Some(5)),
    // accounts and execution
    open("eth_getBalance",                             B::At(1),         C::StateAtBlock, Some(15)).reads_state(),
    open("eth_getTransactionCount",                    B::At(1),         C::StateAtBlock, Some(15)).reads_state(),
    open("eth_getCode",                                B::At(1),         C::StateAtBlock, Some(15)).reads_state(),
    open("eth_getStorageAt",                           B::At(2),         C::StateAtBlock, Some(15)).reads_state(),
    // Many slots of many accounts at one block: `[{address: [slot, ...]}, block]`.
    open("eth_getStorageValues",                       B::At(1),         C::StateAtBlock, Some(50)).reads_state(),
    open("eth_getProof",                               B::At(2),         C::Never,        Some(50)).reads_state(),
    open("eth_getAccount",                             B::None,          C::Never,        None),
    open("eth_getAccountInfo",                         B::None,          C::Never,        None),
    open("eth_call",                                   B::AtOrLatest(1), C::StateAtBlock, Some(25)).reads_state(),
    open("eth_callMany",                               B::None,          C::Never,        Some(100)),
    open("eth_estimateGas",                            B::AtOrLatest(1), C::Coalesce,     Some(50)).reads_state(),
    open("eth_createAccessList",                       B::AtOrLatest(1), C::Never,        Some(50)).reads_state(),
    open("eth_simulateV1",                             B::None,          C::Never,        Some(100)),
    open("eth_fillTransaction",                        B::None,          C::Never,        None),
    // blocks
    open("eth_getBlockByNumber",                       B::At(0),         C::AtBlock,      Some(15)),
    open("eth_getBlockByHash",                         B::HashAt(0),     C::ByHash,       Some(15)),
    open("eth_getBlockReceipts",                       B::At(0),         C::AtBlock,      Some(75)),
    open("eth_getBlockTransactionCountByNumber",       B::At(0),         C::Never,        None),
    open("eth_getBlockTransactionCountByHash",         B::HashAt(0),     C::ByHash,       None),
    open("eth_getUncleByBlockHashAndIndex",            B::None,          C::Never,        None),
    open("eth_getUncleByBlockNumberAndIndex",          B::At(0),         C::Never,        None),
    open("eth_getUncleCountByBlockHash",               B::None,          C::Never,        None),
    open("eth_getUncleCountByBlockNumber",             B::At(0),         C::Never,        None),
    // A header names its number and hash, like a block: checked and cached the same way.
    open("eth_getHeaderByNumber",                      B::At(0),         C::AtBlock,      Some(10)),
    open("eth_getHeaderByHash",                        B::HashAt(0),     C::ByHash,       Some(10)),
    // EIP-7928's access list does not name its block, so the cache could not
    // check an answer against the block it asked for: never stored.
    open("eth_getBlockAccessList",                     B::At(0),         C::Never,        Some(75)),
    // transactions
    open("eth_getTransactionByHash",                   B::None,          C::Transaction,  Some(15)),
    open("eth_getTransactionByBlockHashAndIndex",      B::HashAt(0),     C::ByHash,       None),
    open("eth_getTransactionByBlockNumberAndIndex",    B::At(0),         C::Never,        None),
    open("eth_getRawTransactionByHash",                B::None,          C::Never,        None),
    open("eth_getRawTransactionByBlockHashAndIndex",   B::None,          C::Never,        None),
    open("eth_getRawTransactionByBlockNumberAndIndex", B::None,          C::Never,        None),
    open("eth_getTransactionReceipt",                  B::None,          C::Transaction,  Some(15)),
    open("eth_sendRawTransaction",                     B::None,          C::Never,        Some(100)),
    open("eth_sendRawTransactionSync",                 B::None,          C::Never,        Some(100)),
    // logs, filters, subscriptions
    open("eth_getLogs",                                B::LogFilter,     C::LogRange,     Some(75)),
    open("eth_newFilter",                              B::None,          C::Never,        Some(20)),
    open("eth_newBlockFilter",                         B::None,          C::Never,        Some(20)),
    open("eth_newPendingTransactionFilter",            B::None,          C::Never,        None),
    open("eth_getFilterChanges",                       B::None,          C::Never,        Some(20)),
    open("eth_getFilterLogs",                          B::None,          C::Never,        Some(75)),
    open("eth_uninstallFilter",                        B::None,          C::Never,        Some(10)),
    open("eth_subscribe",                              B::None,          C::Never,        None),
    open("eth_unsubscribe",                            B::None,          C::Never,        None),
    // Known, but closed by default: they act with the node's keys, inspect
    // or steer the node, or re-execute blocks.
    closed("eth_accounts",                             B::None,          C::Never,        None),
    closed("eth_sign",                                 B::None,          C::Never,        None),
    closed("eth_signTransaction",                      B::None,          C::Never,        None),
    closed("eth_signTypedData_v4",                     B::None,          C::Never,        None),
    closed("eth_sendTransaction",                      B::None,          C::Never,        None),
    closed("eth_coinbase",                             B::None,          C::Never,        None),
    closed("eth_getWork",                              B::None,          C::Never,        None),
    closed("eth_submitWork",                           B::None,          C::Never,        None),
    closed("eth_submitHashrate",                       B::None,          C::Never,        None),
    // Private order flow, a relay's API (bundles, private transactions):
    // for trusted clients, sent through a route (see `router::routes`).
    closed("eth_sendBundle",                           B::None,          C::Never,        Some(100)),
    closed("eth_sendPrivateTransaction",               B::None,          C::Never,        Some(100)),
    closed("eth_cancelPrivateTransaction",             B::None,          C::Never,        Some(100)),
    // One node's own retention and head: behind a fleet it would describe
    // whichever backend answered, not what the gateway can serve.
    closed("eth_capabilities",                         B::None,          C::Never,        None),
    closed("debug_traceTransaction",                   B::None,          C::Never,        None),
    closed("debug_traceCall",                          B::None,          C::Never,        None),
    closed("debug_traceBlockByNumber",                 B::None,          C::Never,        None),
    closed("debug_traceBlockByHash",                   B::None,          C::Never,        None),
    closed("debug_getRawTransaction",                  B::None,          C::Never,        None),
    closed("trace_block",                              B::None,          C::Never,        None),
    closed("trace_transaction",                        B::None,          C::Never,        None),
    closed("trace_call",                               B::None,          C::Never,        None),
    closed("trace_filter",                             B::None,          C::Never,        None),
    closed("trace_replayTransaction",                  B::None,          C::Never,        None),
    closed("trace_replayBlockTransactions",            B::None,          C::Never,        None),
    closed("txpool_content",                           B::None,          C::Never,        None),
    closed("txpool_status",                            B::None,          C::Never,        None),
    closed("txpool_inspect",                           B::None,          C::Never,        None),
    closed("admin_peers",                              B::None,          C::Never,        None),
    closed("admin_nodeInfo",                           B::None,          C::Never,        None),
    closed("admin_addPeer",                            B::None,          C::Never,        None),
    closed("personal_sign",                            B::None,          C::Never,        None),
    closed("personal_unlockAccount",                   B::None,          C::Never,        None),
    closed("miner_start",                              B::None,          C::Never,        None),
    closed("miner_stop",                               B::None,          C::Never,        None),
    closed("engine_forkchoiceUpdatedV3",               B::None,          C::Never,        None),
    closed("engine_newPayloadV3",                      B::None,          C::Never,        None),
    closed("engine_getPayloadV3",                      B::None,          C::Never,        None),
];

/// Methods of the execution-apis spec's `eth` namespace (`src/eth/*.yaml`)
/// that are not open by default, and why. Every other method of that index
/// is open in [`METHODS`] (a unit test holds the index and checks both).
/// The spec's other namespaces (`debug_`, `engine_`, `txpool_`, `trace_`,
/// `admin_`, `testing_`, `wallet_`, `address_`) steer or inspect a node, or
/// are proposals no client sends; they stay closed as a whole.
pub const SPEC_LEFT_OUT: &[(&str, &str)] = &[
    ("eth_accounts", "the node's own accounts: meaningless behind a gateway, and it names keys the node holds"),
    ("eth_coinbase", "the node's own etherbase address: node state, not chain data"),
    ("eth_sign", "signs with a key the node holds"),
    ("eth_signTransaction", "signs with a key the node holds"),
    ("eth_sendTransaction", "signs with a key the node holds, then sends"),
    ("eth_getWork", "proof-of-work mining: no client of a post-merge chain sends it"),
    ("eth_submitWork", "proof-of-work mining, and a write to one node"),
    ("eth_submitHashrate", "proof-of-work mining, and a write to one node"),
    ("eth_capabilities", "one node's retention and head: behind a fleet it would describe whichever backend answered"),
];

/// Writes sent to another backend only when the first surely did not
/// receive them (the router's send rule); each is in [`METHODS`].
pub const SENT_ONCE: &[&str] = &[
    "eth_sendRawTransaction",
    "eth_sendBundle",
    "eth_sendPrivateTransaction",
    "eth_cancelPrivateTransaction",
];

/// Costs of whole method families, after any exact entry (a `*` matches any run).
pub const COST_GLOBS: &[(&str, u32)] = &[("trace_*", 300), ("debug_trace*", 300)];

/// Looked up once per call: foldhash rather than SipHash, since only this
/// table fills it.
static BY_NAME: LazyLock<HashMap<&'static str, usize, foldhash::fast::FixedState>> =
    LazyLock::new(|| {
        METHODS
            .iter()
            .enumerate()
            .map(|(i, m)| (m.name, i))
            .collect()
    });

/// The method named `name`, and its position in [`METHODS`].
pub fn lookup(name: &str) -> Option<(usize, &'static Method)> {
    let &i = BY_NAME.get(name)?;
    Some((i, &METHODS[i]))
}

/// A method name as a caller sent it, with its entry in the table (if any)
/// looked up once per call: the client policy, block pinning, the cache and
/// the metrics all read that entry, so no step hashes the name again.
#[derive(Debug, Clone, Copy)]
pub struct Resolved<'a> {
    pub name: &'a str,
    /// The position in [`METHODS`] and the entry; `None` for a name the
    /// table does not know.
    pub known: Option<(usize, &'static Method)>,
}

impl<'a> Resolved<'a> {
    pub fn of(name: &'a str) -> Resolved<'a> {
        Resolved {
            name,
            known: lookup(name),
        }
    }

    /// The table's entry.
    pub fn spec(&self) -> Option<&'static Method> {
        self.known.map(|(_, m)| m)
    }

    /// The position in [`METHODS`].
    pub fn position(&self) -> Option<usize> {
        self.known.map(|(i, _)| i)
    }
}

impl<'a> From<&'a str> for Resolved<'a> {
    fn from(name: &'a str) -> Resolved<'a> {
        Resolved::of(name)
    }
}

/// The methods open to every caller by default.
pub fn open_methods() -> impl Iterator<Item = &'static str> {
    METHODS.iter().filter(|m| m.open).map(|m| m.name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_filters_and_subscriptions_are_no_reads() {
        let read = |name| lookup(name).unwrap().1.is_read();
        for name in [
            "eth_call",
            "eth_getLogs",
            "eth_getBalance",
            "eth_getBlockByNumber",
            "eth_getBlockByHash",
            "eth_getTransactionReceipt",
            "eth_getProof",
            "eth_gasPrice",
        ] {
            assert!(read(name), "{name}");
        }
        for name in [
            "eth_sendRawTransaction",
            "eth_sendRawTransactionSync",
            "eth_sendTransaction",
            "eth_newFilter",
            "eth_getFilterChanges",
            "eth_uninstallFilter",
            "eth_subscribe",
            "eth_sign",
            "debug_traceCall",
        ] {
            assert!(!read(name), "{name}");
        }
    }

    #[test]
    fn names_are_unique_and_found() {
        assert_eq!(BY_NAME.len(), METHODS.len(), "a name is listed twice");
        for (i, m) in METHODS.iter().enumerate() {
            assert_eq!(lookup(m.name), Some((i, m)));
        }
        assert_eq!(lookup("eth_notAMethod"), None);
    }

    #[test]
    fn writes_sent_once_are_known_and_private_order_flow_is_closed() {
        for name in SENT_ONCE {
            assert!(lookup(name).is_some(), "{name} is not in the table");
        }
        for name in [
            "eth_sendBundle",
            "eth_sendPrivateTransaction",
            "eth_cancelPrivateTransaction",
        ] {
            assert!(!lookup(name).unwrap().1.open, "{name} is open by default");
        }
    }

    #[test]
    fn nothing_dangerous_is_open() {
        let closed = [
            "admin_",
            "debug_",
            "miner_",
            "txpool_",
            "engine_",
            "personal_",
            "anvil_",
            "evm_",
        ];
        for m in METHODS.iter().filter(|m| m.open) {
            assert!(
                !closed.iter().any(|p| m.name.starts_with(p)),
                "{} is open",
                m.name
            );
        }
        for name in ["eth_sign", "eth_sendTransaction", "eth_accounts"] {
            assert!(!lookup(name).unwrap().1.open, "{name}");
        }
    }

    /// Every method of the execution-apis spec's `eth` namespace, by file of
    /// `src/eth/` (block.yaml at 0538eea, client.yaml at 15cfa66, the others
    /// as of late 2025; `eth_getStorageValues` from the state.yaml of the
    /// same period).
    const SPEC_ETH: &[&str] = &[
        // block.yaml
        "eth_getBlockByHash",
        "eth_getBlockByNumber",
        "eth_getHeaderByHash",
        "eth_getHeaderByNumber",
        "eth_getBlockTransactionCountByHash",
        "eth_getBlockTransactionCountByNumber",
        "eth_getBlockReceipts",
        "eth_getBlockAccessList",
        // capabilities.yaml
        "eth_capabilities",
        // client.yaml
        "eth_chainId",
        "eth_syncing",
        "eth_coinbase",
        "eth_accounts",
        "eth_blockNumber",
        "eth_config",
        // execute.yaml
        "eth_call",
        "eth_estimateGas",
        "eth_createAccessList",
        "eth_simulateV1",
        // fee_market.yaml
        "eth_gasPrice",
        "eth_blobBaseFee",
        "eth_maxPriorityFeePerGas",
        "eth_feeHistory",
        // fill.yaml
        "eth_fillTransaction",
        // filter.yaml
        "eth_newFilter",
        "eth_newBlockFilter",
        "eth_newPendingTransactionFilter",
        "eth_uninstallFilter",
        "eth_getFilterChanges",
        "eth_getFilterLogs",
        "eth_getLogs",
        // mining.yaml
        "eth_mining",
        "eth_hashrate",
        "eth_getWork",
        "eth_submitWork",
        "eth_submitHashrate",
        // sign.yaml
        "eth_sign",
        "eth_signTransaction",
        // state.yaml
        "eth_getBalance",
        "eth_getStorageAt",
        "eth_getStorageValues",
        "eth_getTransactionCount",
        "eth_getCode",
        "eth_getProof",
        // submit.yaml
        "eth_sendTransaction",
        "eth_sendRawTransaction",
        // subscribe.yaml
        "eth_subscribe",
        "eth_unsubscribe",
        // transaction.yaml
        "eth_getTransactionByHash",
        "eth_getTransactionByBlockHashAndIndex",
        "eth_getTransactionByBlockNumberAndIndex",
        "eth_getTransactionReceipt",
    ];

    #[test]
    fn every_spec_method_is_open_or_left_out_with_a_reason() {
        let left_out = |name: &str| SPEC_LEFT_OUT.iter().find(|(n, _)| *n == name);
        for name in SPEC_ETH {
            let open = lookup(name).is_some_and(|(_, m)| m.open);
            match left_out(name) {
                Some((_, why)) => {
                    assert!(!open, "{name} is open, yet listed as left out");
                    assert!(!why.is_empty(), "{name}: no reason");
                    // Known by name, so its refused calls are counted by name.
                    assert!(
                        lookup(name).is_some(),
                        "{name} left out but not in the table"
                    );
                }
                None => assert!(
                    open,
                    "{name} is in the spec: open it, or leave it out with a reason"
                ),
            }
        }
        for (name, _) in SPEC_LEFT_OUT {
            assert!(
                SPEC_ETH.contains(name),
                "{name} is left out but not in the spec list"
            );
        }
    }

    #[test]
    fn state_reads_take_a_block_at_a_fixed_position() {
        let state: Vec<_> = METHODS.iter().filter(|m| m.reads_state).collect();
        assert!(state.len() >= 8, "{state:?}");
        for m in state {
            assert!(
                matches!(m.block, BlockArg::At(_) | BlockArg::AtOrLatest(_)),
                "{}",
                m.name
            );
        }
        assert!(lookup("eth_getProof").unwrap().1.reads_state);
        assert!(!lookup("eth_getBlockByNumber").unwrap().1.reads_state);
    }

    #[test]
    fn cached_reads_take_their_block_where_the_cache_expects_it() {
        for m in METHODS {
            match m.caching {
                Caching::ByHash => assert!(
                    matches!(m.block, BlockArg::HashAt(_) | BlockArg::At(_)),
                    "{}",
                    m.name
                ),
                Caching::AtBlock | Caching::StateAtBlock => assert!(
                    matches!(m.block, BlockArg::At(_) | BlockArg::AtOrLatest(_)),
                    "{}",
                    m.name
                ),
                Caching::LogRange => assert_eq!(m.block, BlockArg::LogFilter, "{}", m.name),
                _ => {}
            }
        }
    }
}
