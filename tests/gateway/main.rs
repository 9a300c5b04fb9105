//! Integration tests of the gateway against a real anvil fleet on loopback.

mod envelope;
mod failover;
mod policy;
mod routing;
mod support;
mod transparency;
