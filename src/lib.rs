//! rpcgate: a JSON-RPC gateway for Ethereum node fleets.
//!
//! A request crosses the crate in one direction:
//! [`server`] (HTTP or WebSocket listener) → [`jsonrpc`] (envelope) → [`policy`] (keys, method
//! rules, rate limits) → [`router`] (pins `latest`, asks the [`cache`],
//! chooses a backend, retries) → [`upstream`] (backend clients) → response
//! with the caller's id. [`metrics`] holds the counters.
//! Beside that path, the control loops in [`upstream`] track each backend's
//! head and publish immutable snapshots that the router reads; the cache's
//! reorg loop follows those snapshots. [`subscriptions`] serves
//! `eth_subscribe` on client WebSockets: one upstream subscription per
//! distinct request, moved to another backend without a gap when its own fails.
pub mod cache;
pub mod config;
pub mod jsonrpc;
pub mod logs;
pub mod metrics;
pub mod policy;
pub mod router;
pub mod server;
pub mod subscriptions;
pub mod upstream;
