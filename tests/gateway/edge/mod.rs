//! The edge: what reaches the listeners before any backend is chosen.

mod clients;
mod compression;
mod cors;
mod envelope;
mod hostile;
mod lifetimes;
mod per_core;
// The panic hook exists only with debug assertions (never in a release build).
#[cfg(debug_assertions)]
mod panics;
mod tls;
mod transparency;
