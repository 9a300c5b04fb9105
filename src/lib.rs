//! rpcgate: a JSON-RPC gateway for Ethereum node fleets.
//!
//! A request crosses the crate in one direction. The [`server`] listens
//! (HTTP or WebSocket), reads the [`jsonrpc`] envelope, and runs each call
//! through its pipeline (`server::pipeline`), which is the only place that
//! knows the order of the steps:
//!
//! ```text
//! listener -> envelope -> client policy -> local answers, block pinning
//!   -> cache lookup -> router (choose a backend, retry) -> upstream client
//!   -> cache store -> answer (the caller's id restored) -> metrics
//! ```
//!
//! No step calls the next one itself: the router does not know that a cache
//! exists, and the cache shares in-flight calls without knowing the router's
//! error type. Beside that path run the control loops, each owning one kind
//! of state and publishing it as an immutable snapshot that requests read
//! without locks: head tracking and the view per network ([`upstream`]), the
//! cache's reorg follower ([`cache`]), DNS discovery and config reload
//! ([`server`]). [`subscriptions`] serves `eth_subscribe` on client
//! WebSockets: one upstream subscription per distinct request, moved to
//! another backend without a gap when its own fails.
//!
//! ## Module order
//!
//! Each module may use only the modules below it; `eth` uses nothing of the
//! crate. The order follows the request from the listener down to the
//! backends, with the foundations every layer shares (wire types, metrics,
//! logs, config, Ethereum basics) at the bottom. `scripts/check-layers`
//! reads this list and fails the test command on an import that climbs it.
//!
//! ```text
//! server         listeners, the call pipeline, error translation, admin, reload, discovery wiring
//! subscriptions  eth_subscribe: one upstream feed per distinct request, failover without gaps
//! network        one network as it runs: its config, upstreams, cache and filters, started together
//! filters        eth_newFilter and kin answered by the gateway, in memory or in Redis
//! policy         API keys, client IPs, method rules, compute-unit costs, rate limits
//! cache          cache rules, keys, the byte-bounded store, in-flight sharing, reorg eviction
//! router         local answers, backend choice (P2C over Peak-EWMA), retries, sends, read-your-writes
//! upstream       backend clients, head tracking, latency, the network view, DNS discovery
//! jsonrpc        the envelope: parsing, error objects, answers built from raw parts
//! memory         the process's byte budgets: answers and request bodies in flight
//! metrics        one gateway's registry handle, the registration helpers, families and label enums
//! logs           tracing to stderr, human or JSON, level reloadable
//! config         the YAML schema, validation with key paths, defaults
//! eth            quantities, hashes, block references, the method table, block pinning
//! ```
pub mod cache;
pub mod config;
pub mod eth;
pub mod filters;
pub mod jsonrpc;
pub mod logs;
pub mod memory;
pub mod metrics;
pub mod network;
pub mod policy;
pub mod router;
pub mod server;
pub mod subscriptions;
pub mod upstream;
