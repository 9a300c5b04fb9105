//! Ethereum basics, and the one table of methods: the leaf of the crate.
//!
//! Hex quantities ([`quantity`]), hashes ([`hash`]), block references as
//! clients write them ([`block_ref`]), the table of every method the gateway
//! knows ([`methods`]: where it takes its block, how it may be cached, its
//! cost, whether it is open by default, its metric label) and what a call's
//! block argument resolves to once `latest` is pinned ([`pinned`]).
//!
//! Nothing here imports anything else of the crate, so every layer above can
//! use it, and a fact about Ethereum is written down once.

pub mod block_ref;
pub mod hash;
pub mod methods;
pub mod pinned;
pub mod quantity;

pub use block_ref::BlockRef;
pub use hash::{parse_hash, Hash};
pub use methods::{BlockArg, Caching, Method};
pub use pinned::Pinned;
pub use quantity::parse_quantity;
