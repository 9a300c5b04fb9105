//! Integration tests of the gateway against a real anvil fleet on loopback,
//! one folder per area of the gateway (one test binary: one link, one run):
//!
//! - `edge`: what reaches the listeners: the envelope, hostile input,
//!   connection lifetimes, TLS, CORS, compression, panics, transparency,
//!   and real client libraries.
//! - `policy`: client policy: keys, method rules, rate limits, heavy calls,
//!   and budgets shared by processes through redis.
//! - `cache`: the response cache, the block-scoped head tier, a DApp mix.
//! - `routing`: backend choice: the agreed head, head freshness, failover, the fallback tier,
//!   method routes, hedging, read-your-writes, archive state, upstream
//!   batches, DNS discovery, the served-by headers.
//! - `websocket`: calls and subscriptions over a client WebSocket, and its bounds.
//! - `filters`: filters owned by the gateway.
//! - `operations`: readiness, shutdown, reload, metrics, logs.
//! - `shared_redis`: Redis shared by replicas: TLS and an ACL user, the
//!   circuit breaker, one script call per batch, values checked, and
//!   read-your-writes across gateways.
//!
//! The memory flood runs in a binary of its own (`tests/memory`); the
//! helpers both binaries use are in `tests/support`.

// Test code: its helpers are no API, and a failed unwrap is a failed test
// (the product's lints in Cargo.toml are for src/).
#![allow(unreachable_pub, clippy::unwrap_used)]

mod cache;
mod edge;
mod filters;
mod operations;
mod policy;
mod routing;
mod shared_redis;
#[path = "../support/mod.rs"]
mod support;
mod websocket;
