//! Filters owned by the gateway (`eth_newFilter` and its polls).

mod bounds;
mod polling;
