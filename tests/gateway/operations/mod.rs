//! What operators rely on: readiness, shutdown, reload, metrics, logs.

mod lifecycle;
mod log_hygiene;
mod metrics;
mod reload;
