//! The control plane of the JSON-RPC gateway: what it serves, and the
//! operations that change that while requests run.
//!
//! [`gateway`] owns the table of networks by path ([`NetworkTable`]) and publishes
//! it as an immutable snapshot: the edge and the per-call stage read it with
//! one atomic load. A config [`reload`] and DNS discovery build a new table
//! beside the old one (reusing every network that stays the same) and swap it
//! in; [`pending_feed`] holds the shared pending-transaction subscription
//! while a pending filter needs it; [`admin`] serves health, status and
//! metrics on the admin listener, the beacon networks' part of them in
//! [`beacon_status`].
//!
//! Nothing here is on the request path: the per-call stage above reads what
//! these loops publish and never waits on them.

pub mod admin;
mod beacon_status;
mod gateway;
mod pending_feed;
pub mod reload;

pub use gateway::{Gateway, NetworkTable, ReloadCounters, StartError};
