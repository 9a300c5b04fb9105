//! rpcgate: a JSON-RPC gateway for Ethereum node fleets.
pub mod config;
pub mod fleet;
pub mod jsonrpc;
pub mod router;
pub mod server;
pub mod upstream;
