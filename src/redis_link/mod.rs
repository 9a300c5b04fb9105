//! The one connection to Redis that a gateway's shared state goes through:
//! rate limits (`policy`), filters, the cache's shared tier and
//! read-your-writes (`router::ryw`) all take it from here, so TLS, the ACL
//! user, the key prefix and the circuit breaker are set up in one place.
//!
//! - **Connection.** Built from [`RedisConfig`]: `rediss://` is TLS with
//!   rustls, trusting `redis.ca_file` (else the system's roots); the ACL
//!   user and password come from the config's secret, never from the URL.
//!   A redis `ConnectionManager`, made lazily (the gateway starts while
//!   Redis is down) and reconnecting by itself.
//! - **Keys.** Every key starts with `redis.prefix`, so deployments sharing
//!   a Redis never share budgets, filters or cache entries; per-network state
//!   also carries the network's name and chain id ([`RedisLink::space`]).
//!   The keys one script touches share a `{hash tag}`.
//! - **Breaker.** Every call goes through [`RedisLink::call`]: a deadline,
//!   and the [`breaker`], which after `redis.breaker_failures` failed or slow
//!   calls in a row skips Redis for `redis.breaker_cooldown`. A skipped call
//!   is an immediate [`LinkError::Skipped`], which each caller turns into its
//!   fallback (the local limiter, a cache miss, a -32000 for a filter call,
//!   the local read-your-writes record): an outage costs each call nothing,
//!   not `redis_timeout`.
//! - **Values.** What comes back from Redis was written by whoever can reach
//!   it; each reader parses it before use and counts what fails
//!   ([`RedisLink::invalid`]).
//!
//! Redis Cluster is not supported: the client here speaks to one endpoint
//! (a primary, or a managed service's single endpoint or proxy). The keys
//! are laid out for it all the same (one hash tag per script), so cluster
//! support is a change of client, not of key names.

pub mod breaker;

use std::future::Future;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{ConnectionAddr, IntoConnectionInfo, RedisConnectionInfo};

use self::breaker::{Breaker, Change, Pass};
use crate::config::RedisConfig;
use crate::metrics::RedisMetrics;

/// Why a Redis call gave no answer. Never carries the URL or a secret.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("redis did not answer within {0:?}")]
    Timeout(Duration),
    #[error("redis is skipped for a while after failing (circuit breaker open)")]
    Skipped,
}

impl LinkError {
    /// Whether the command most likely reached a live Redis and was applied
    /// although no answer came in time: a timeout (a slow Redis applies what
    /// it was sent). A skipped call, a refused connection and an error reply
    /// were not applied; a connection lost is a Redis gone, whose last
    /// writes its restart may not have kept either, so it counts as not.
    pub fn may_have_applied(&self) -> bool {
        match self {
            LinkError::Timeout(_) => true,
            LinkError::Skipped => false,
            LinkError::Redis(e) => e.is_timeout(),
        }
    }
}

/// A kind of value read from Redis, for `rpcgate_redis_invalid_values_total`.
#[derive(Debug, Clone, Copy)]
pub enum ValueKind {
    Cache,
    Filter,
    Pending,
    Send,
}

impl ValueKind {
    fn label(self) -> &'static str {
        match self {
            ValueKind::Cache => "cache",
            ValueKind::Filter => "filter",
            ValueKind::Pending => "pending",
            ValueKind::Send => "send",
        }
    }
}

pub struct RedisLink {
    conn: ConnectionManager,
    prefix: String,
    breaker: Breaker,
    metrics: Metrics,
}

struct Metrics {
    open: prometheus::IntGauge,
    opened: prometheus::IntCounter,
    skipped: prometheus::IntCounter,
    failures: prometheus::IntCounter,
    invalid: prometheus::IntCounterVec,
}

impl RedisLink {
    /// Does not connect yet: the first call does, and later ones reconnect.
    pub fn new(config: &RedisConfig, metrics: &RedisMetrics) -> Result<RedisLink, LinkError> {
        let addr = if config.tls {
            ConnectionAddr::TcpTls {
                host: config.host.clone(),
                port: config.port,
                insecure: false,
                tls_params: None,
            }
        } else {
            ConnectionAddr::Tcp(config.host.clone(), config.port)
        };
        let mut settings = RedisConnectionInfo::default().set_db(config.db);
        if let Some(user) = &config.username {
            settings = settings.set_username(user);
        }
        if let Some(password) = &config.password {
            settings = settings.set_password(password.expose());
        }
        let info = addr.into_connection_info()?.set_redis_settings(settings);
        let client = match &config.ca_pem {
            Some(pem) => redis::Client::build_with_tls(
                info,
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(pem.clone()),
                },
            )?,
            None => redis::Client::open(info)?,
        };
        let manager = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_response_timeout(Some(Duration::from_secs(1)))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_secs(1));
        metrics.breaker_open.set(0);
        Ok(RedisLink {
            conn: ConnectionManager::new_lazy_with_config(client, manager)?,
            prefix: config.prefix.clone(),
            breaker: Breaker::new(config.breaker_failures, config.breaker_cooldown),
            metrics: Metrics {
                open: metrics.breaker_open.clone(),
                opened: metrics.breaker_opened.clone(),
                skipped: metrics.skipped.clone(),
                failures: metrics.failures.clone(),
                invalid: metrics.invalid.clone(),
            },
        })
    }

    /// A handle on the connection for one call (cheap: the manager is shared).
    pub fn conn(&self) -> ConnectionManager {
        self.conn.clone()
    }

    /// `<prefix>:<rest>`: every key of this deployment.
    pub fn key(&self, rest: &str) -> String {
        format!("{}:{rest}", self.prefix)
    }

    /// The part of a key naming one network: its name and chain id, so a
    /// "mainnet" that is really a fork never meets the real one's state.
    pub fn space(network: &str, chain_id: u64) -> String {
        format!("{network}@{chain_id}")
    }

    /// Whether the breaker is skipping Redis now.
    pub fn is_open(&self) -> bool {
        self.breaker.is_open()
    }

    /// Runs `call` within `timeout`, unless the breaker is open (then at
    /// once [`LinkError::Skipped`], without touching Redis). Failures and
    /// timeouts count towards opening it; an answer closes it.
    pub async fn call<T>(
        &self,
        timeout: Duration,
        call: impl Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, LinkError> {
        let pass = self.breaker.pass();
        if pass == Pass::Skip {
            self.metrics.skipped.inc();
            return Err(LinkError::Skipped);
        }
        let result = match tokio::time::timeout(timeout, call).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(LinkError::Redis(e)),
            Err(_) => Err(LinkError::Timeout(timeout)),
        };
        match &result {
            Ok(_) => {
                if self.breaker.succeeded() == Change::Closed {
                    self.metrics.open.set(0);
                    tracing::info!("redis answers again; circuit breaker closed");
                }
            }
            // An error reply (a script's, a refused command) is an answer: Redis is up.
            Err(LinkError::Redis(e)) if matches!(e.kind(), redis::ErrorKind::Server(_)) => {
                self.breaker.succeeded();
            }
            Err(e) => {
                self.metrics.failures.inc();
                if self.breaker.failed() == Change::Opened {
                    self.metrics.open.set(1);
                    self.metrics.opened.inc();
                    tracing::warn!(error = %e, "redis failing or slow; circuit breaker open, fallbacks in use");
                }
            }
        }
        result
    }

    /// Counts a value read from Redis that failed its check (the reader
    /// treats it as absent).
    pub fn invalid(&self, kind: ValueKind) {
        self.metrics
            .invalid
            .with_label_values(&[kind.label()])
            .inc();
        tracing::debug!(
            kind = kind.label(),
            "a value read from redis failed its check; ignored"
        );
    }
}
