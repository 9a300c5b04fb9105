//! Integration tests of the gateway against a real anvil fleet on loopback.

// Test code: its helpers are no API, and a failed unwrap is a failed test
// (the product's lints in Cargo.toml are for src/).
#![allow(unreachable_pub, clippy::unwrap_used)]

mod cache;
mod cache_head;
mod cache_mix;
mod clients;
mod compression;
mod cors;
mod discovery;
mod envelope;
mod failover;
mod filters;
mod heavy;
mod hedging;
mod hostile;
mod lifetimes;
mod log_hygiene;
mod metrics;
mod operations;
// The panic hook exists only with debug assertions (never in a release build).
#[cfg(debug_assertions)]
mod panics;
mod policy;
mod read_your_writes;
mod reload;
mod routes;
mod routing;
mod served_by;
mod state_history;
mod support;
mod tiers;
mod tls;
mod transparency;
mod upstream_batches;
mod websocket;
mod ws_limits;
