//! The memory bounds under a flood of clients that never read (`bounds`),
//! and attacks that try to pin memory cheaply (`attacks`), in a test binary
//! of their own.
//!
//! Why apart from `tests/gateway`: the flood (a real rpcgate process asked
//! for hundreds of MiB by twenty clients) takes both cores for seconds.
//! Cargo runs test binaries one after another, so here it disturbs no other
//! test (the share a re-admitted backend wins back is judged on latency),
//! and no other test's load decides whether the budget is still full when
//! this one looks.

// Test code: its helpers are no API, and a failed unwrap is a failed test
// (the product's lints in Cargo.toml are for src/).
#![allow(unreachable_pub, clippy::unwrap_used)]

mod attacks;
mod bounds;
// The support both test binaries share (see its module doc); this binary
// uses a part of it.
#[allow(dead_code, unused_imports)]
#[path = "../support/mod.rs"]
mod support;
