//! Integration tests of the gateway against a real anvil fleet on loopback.

// Test code: its helpers are no API, and a failed unwrap is a failed test
// (the product's lints in Cargo.toml are for src/).
#![allow(unreachable_pub, clippy::unwrap_used)]

mod cache;
mod cache_mix;
mod cors;
mod discovery;
mod envelope;
mod failover;
mod heavy;
mod hostile;
mod lifetimes;
mod metrics;
mod operations;
// The panic hook exists only with debug assertions (never in a release build).
#[cfg(debug_assertions)]
mod panics;
mod policy;
mod routing;
mod support;
mod transparency;
mod websocket;
