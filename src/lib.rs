//! rpcgate: a JSON-RPC gateway for Ethereum node fleets.
//!
//! A request crosses the crate in one direction. The [`edge`] accepts
//! connections (HTTP or WebSocket, TLS, deadlines, CORS, compression) and
//! hands each JSON-RPC payload to the per-call stage, [`calls`], whose
//! pipeline (`calls::pipeline`) is the only place that knows the order of
//! the steps:
//!
//! ```text
//! edge -> envelope -> client policy -> local answers, filters, block pinning
//!   -> cache lookup -> router (choose a backend, retry) -> upstream client
//!   -> cache store -> answer (the caller's id restored) -> metrics
//! ```
//!
//! No step calls the next one itself: the router does not know that a cache
//! exists, and the cache shares in-flight calls without knowing the router's
//! error type. Beside that path run the control loops, each owning one kind
//! of state and publishing it as an immutable snapshot that requests read
//! without locks: head tracking, the canonical chain and the view per
//! network ([`upstream`]), the table of networks with config reload and DNS
//! discovery ([`control`]). [`subscriptions`] serves `eth_subscribe` on
//! client WebSockets: one upstream subscription per distinct request, moved
//! to another backend without a gap when its own fails.
//!
//! ## Module order
//!
//! Each module may use only the modules below it. The order follows the
//! request from the listener down to the backends, with the foundations every
//! layer shares at the bottom: metrics, logs, config, then Ethereum basics on
//! top of the wire (`eth` reads and splices params with the wire's JSON text
//! scanner), the wire itself, and the byte budgets a reply holds (`memory`,
//! which uses nothing of the crate).
//! `scripts/check-layers` reads this list and fails the test command on an
//! import that climbs it.
//!
//! ```text
//! fuzzing        the fuzz targets' entry points (feature `fuzzing` only): they reach into every parser
//! edge           listeners: accept, TLS, connection lifetimes, the HTTP stage (CORS, compression, body limits), WebSocket upgrade
//! calls          the per-call JSON-RPC stage: the pipeline's order, local answers, the heavy-call bound, the one rescue point, panics
//! control        the control plane: the network table, reload, the pending feed, admin
//! beacon         the Beacon REST API front: node health and agreed head, the path allowlist, reads, publish fan-out, replayed subscriptions
//! subscriptions  eth_subscribe: one upstream feed per distinct request, failover without gaps
//! network        one network as it runs: its config, upstreams, cache and filters, started together
//! filters        eth_newFilter and kin answered by the gateway, in memory or in Redis
//! policy         API keys, client IPs, method rules, compute-unit costs, rate limits
//! cache          cache rules, keys, the byte-bounded store, in-flight coalescing, eviction on reorg
//! router         backend choice (P2C over Peak-EWMA), retries, hedging, transaction submission, read-your-writes
//! upstream       backend clients, head tracking, the canonical chain, latency, the network view, discovery
//! redis_link     the one Redis connection: TLS, ACL user, key prefix, circuit breaker, value checks
//! metrics        one gateway's registry handle, the registration helpers, families and label enums
//! logs           tracing to stderr, human or JSON, level reloadable
//! config         the YAML schema, validation with key paths, defaults
//! eth            quantities, hashes, block references, the method table, block pinning
//! jsonrpc        the wire: the envelope, error objects, backend replies, JSON text scanning
//! memory         the process's byte budgets: answers and request bodies in flight
//! ```
//!
//! ## A second protocol
//!
//! The consensus layer's Beacon REST API (and its event stream) is the next
//! front. It plugs in beside `calls`, not inside it: [`beacon`], a module of
//! its own (its per-request stage: which routes exist, which may be retried
//! or fanned out, how a failure is answered), reached from the edge by path
//! the way a JSON-RPC network is. It sits just below `control`, so that the
//! control plane starts its networks and reports them in `/status`,
//! readiness and `/metrics`. What it shares, and must
//! not copy:
//! - the edge: accept, TLS, deadlines, body limits, CORS and compression are
//!   protocol-blind, and the edge hands a request to the front its path
//!   names;
//! - client policy: callers are identified and rate limited by [`policy`]
//!   whatever they speak (a REST route takes the place of a method name in
//!   the rules and the cost table);
//! - the upstream pool and head tracking: [`upstream`] keeps backend
//!   clients, latency estimates and heads; a beacon backend is an upstream
//!   whose head is a slot, chosen by the same P2C rules in [`router`];
//! - metrics, logs, config and memory budgets: one registry, one log format,
//!   one YAML file (a section per front), one budget for bytes in flight.
//!
//! What it owns: its wire format and error mapping (its own rescue point, as
//! `calls::rescue` is JSON-RPC's), its cache rules, and its event stream
//! (SSE, moved between backends the way [`subscriptions`] moves a feed).
pub mod beacon;
pub mod cache;
pub mod calls;
pub mod config;
pub mod control;
pub mod edge;
pub mod eth;
pub mod filters;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod jsonrpc;
pub mod logs;
pub mod memory;
pub mod metrics;
pub mod network;
pub mod policy;
pub mod redis_link;
pub mod router;
pub mod subscriptions;
pub mod upstream;
