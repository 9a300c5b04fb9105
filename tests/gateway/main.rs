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
mod lifetimes;
mod metrics;
mod operations;
mod policy;
mod routing;
mod support;
mod tls;
mod transparency;
mod websocket;
