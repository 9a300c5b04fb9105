//! rpcgate: a JSON-RPC gateway for Ethereum node fleets.
//!
//! A request crosses the crate in one direction:
//! [`server`] (HTTP tier) → [`jsonrpc`] (envelope) → [`policy`] (keys, method
//! rules, rate limits) → [`router`] (backend choice, retries) → [`upstream`]
//! (backend clients) → response with the caller's id. [`metrics`] holds the
//! counters.
//! Beside that path, the control loops in [`upstream`] track each backend's
//! head and publish immutable snapshots that the router reads.
pub mod config;
pub mod demo;
pub mod fleet;
pub mod jsonrpc;
pub mod metrics;
pub mod policy;
pub mod router;
pub mod server;
pub mod upstream;
