//! The memory bounds under a flood of clients that never read, in a test
//! binary of their own.
//!
//! Why apart from `tests/gateway`: the flood (a real rpcgate process asked
//! for hundreds of MiB by twenty clients) takes both cores for seconds.
//! Cargo runs test binaries one after another, so here it disturbs no other
//! test (the share a re-admitted backend wins back is judged on latency),
//! and no other test's load decides whether the budget is still full when
//! this one looks.
#![allow(unreachable_pub, clippy::unwrap_used)]

#[allow(dead_code, unused_imports)]
#[path = "gateway/support.rs"]
mod support;

#[path = "gateway/memory.rs"]
mod memory;
