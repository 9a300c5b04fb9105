//! What operators rely on: readiness (per front too), shutdown, reload, metrics, logs.

mod lifecycle;
mod log_hygiene;
mod metrics;
mod readiness;
mod reload;
