//! rpcgate: a JSON-RPC gateway for Ethereum node fleets.
//!
//! A request crosses the crate in one direction:
//! [`server`] (HTTP tier) → [`jsonrpc`] (envelope) → [`router`] (backend choice,
//! retries) → [`upstream`] (backend clients) → response with the caller's id.
//! Beside that path, the control loops in [`upstream`] track each backend's
//! head and publish immutable snapshots that the router reads.
pub mod config;
pub mod demo;
pub mod fleet;
pub mod jsonrpc;
pub mod router;
pub mod server;
pub mod upstream;
