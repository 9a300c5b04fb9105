//! Backends: clients, head tracking, latency, and the network view.
//!
//! Each backend has a control loop ([`head`]) publishing what it knows on a
//! `watch` channel; a per-network loop ([`view`]) folds those into one
//! immutable [`view::NetworkView`] that the router reads lock-free, judging
//! each backend against the head the fleet agrees on ([`agree`]) and saying
//! in the log why one is out (`reasons`).

pub mod agree;
pub mod chain;
mod client;
pub mod discovery;
pub mod head;
pub mod latency;
mod lean;
mod newheads;
mod pool;
mod reasons;
mod tls;
mod upstreams;
pub mod view;

pub use client::batch::{entry_failure, BatchCall, BatchFailure, BatchReplies};
pub use client::{
    http_client, ws_request, Backend, CallLimits, HeadDoubt, HttpClient, UpstreamError,
};
pub use tls::UpstreamStream;
pub use upstreams::Upstreams;
pub use view::{BackendView, Ineligible, NetworkView};
