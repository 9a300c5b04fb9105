//! Integration tests of the gateway against a real anvil fleet on loopback.

mod cache;
mod cache_mix;
mod discovery;
mod envelope;
mod failover;
mod metrics;
mod operations;
mod policy;
mod routing;
mod support;
mod transparency;
mod websocket;
