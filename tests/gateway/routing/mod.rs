//! Backend choice: which backend serves a call, and what happens when it cannot.

mod agreed_head;
mod client_faults;
mod discovery;
mod distinct_calls;
mod failover;
mod fallback_tier;
mod head_freshness;
mod hedging;
mod method_routes;
mod read_your_writes;
mod reorg_reads;
mod saturated_batches;
mod served_by;
mod stale_heads;
mod state_history;
mod upstream_batches;
