//! Integration tests of the gateway against a real anvil fleet on loopback.

mod cache;
mod cache_mix;
mod envelope;
mod failover;
mod routing;
mod support;
mod transparency;
