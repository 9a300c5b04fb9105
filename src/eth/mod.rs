//! Ethereum basics, and the one table of methods.
//!
//! Hex quantities ([`quantity`]), hashes ([`hash`]), block references as
//! clients write them ([`block_ref`]), the table of every method the gateway
//! knows ([`methods`]: where it takes its block, how it may be cached, its
//! cost, whether it is open by default, its metric label) and block pinning
//! ([`pinning`]: `latest` rewritten to the served head, and what block a
//! call needs), which reads and splices the params with the wire's JSON text
//! scanner ([`crate::jsonrpc::json_text`]).
//!
//! Nothing here imports anything of the crate but the wire below it
//! ([`crate::jsonrpc`]), so every layer above can use it, and a fact about
//! Ethereum is written down once.

pub mod block_ref;
pub mod hash;
pub mod methods;
pub mod pinning;
pub mod quantity;

pub use block_ref::BlockRef;
pub use hash::{parse_hash, Hash};
pub use methods::{BlockArg, Caching, Method};
pub use pinning::{pin, Pinned};
pub use quantity::parse_quantity;
