//! rpcgate-fleet: the test support of rpcgate, kept out of the product crate.
//!
//! A lockstep anvil fleet for the gateway's tests, the demo (`rpcgate-demo`, a binary of
//! this crate) and the load tests, with the harnesses around it. The product crate
//! takes this crate as a dev-dependency only, so none of it (child processes, `unsafe`
//! for `prctl`, a DNS server) is linked into the gateway.
//!
//! The gateway routes between replicas of one chain, so its tests need several nodes
//! that agree on block hashes yet can be made to disagree on demand: one lagging, one
//! down, all of them reorged. anvil cannot peer with other anvil nodes, so the fleet
//! makes replicas agree by construction instead: every replica starts from the same
//! genesis (`--timestamp`, `--no-mining`) and the harness mines each block itself on
//! every replica, feeding the same raw transactions and calling `evm_mine` with the
//! same timestamp. Identical inputs give identical block hashes.
//!
//! Owners, one per file:
//! - [`anvil`]: one anvil process (start, learn the port, kill); `anvil/lookup.rs`: where
//!   the binary is found, at run time.
//! - [`client`]: the plain HTTP client that tests use to talk to a gateway.
//! - [`rpc`]: the harness's own small JSON-RPC client.
//! - [`lockstep`]: [`Fleet`], the block history and per-replica progress: mining,
//!   holding back, stopping, restarting and reorging replicas.
//! - `replica`: one replica's process, progress and snapshots; replays blocks onto it.
//! - [`autominer`]: the background miner for the demo (blocks on a timer, random lag).
//! - [`dns`]: [`DnsServer`], an authoritative DNS server for discovery tests.
//! - [`fixed_node`]: a fixed-answer node, the cheapest backend rpcgate accepts, for the
//!   load tests and the profile.
//! - [`redis`]: [`RedisServer`], a real redis-server on a free loopback port.
//! - [`tap`]: [`Tap`], a counting relay and fault injector in front of one node, for
//!   the faults anvil itself cannot show (HTTP errors, stalls, dropped connections).
//! - [`tls`]: [`TestCa`] (certificates made by the tests, rcgen), a client that trusts
//!   it, and [`TlsTerminator`], a TLS front for a node (https and wss upstreams).
//! - [`FleetError`] (`error.rs`): everything the harness can fail with.
//! - [`child`]: child processes: the harness's die with their parent; tests signal theirs.

pub mod anvil;
pub mod autominer;
pub mod child;
pub mod client;
pub mod demo_config;
pub mod dns;
mod error;
pub mod fixed_node;
pub mod lockstep;
pub mod redis;
mod replica;
pub mod rpc;
pub mod tap;
pub mod tls;

pub use anvil::{anvil_binary, Anvil, AnvilOptions};
pub use autominer::AutoMiner;
pub use dns::DnsServer;
pub use error::FleetError;
pub use lockstep::{ChainTip, Checkpoint, Fleet, FleetOptions, DEV_ACCOUNT, RECEIVER_ACCOUNT};
pub use redis::RedisServer;
pub use rpc::RpcClient;
pub use tap::{CallMatch, Fault, HeadAt, HeadLie, Tap};
pub use tls::{Leaf, TestCa, TlsTerminator};
