//! Integration tests of the gateway against a real anvil fleet on loopback.

mod discovery;
mod envelope;
mod failover;
mod operations;
mod policy;
mod routing;
mod support;
mod transparency;
