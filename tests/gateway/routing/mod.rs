//! Backend choice: which backend serves a call, and what happens when it cannot.

mod agreed_head;
mod discovery;
mod failover;
mod fallback_tier;
mod head_freshness;
mod hedging;
mod method_routes;
mod read_your_writes;
mod served_by;
mod state_history;
mod upstream_batches;
