//! [`FleetError`]: everything the fleet harness can fail with, one enum for the crate.
//!
//! Errors of one replica are wrapped once in [`FleetError::Replica`] so a message says
//! which node failed, and [`FleetError::rpc_code`] sees through that wrapping.

use std::path::PathBuf;
use std::time::Duration;

/// Everything the fleet harness can fail with.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    #[error("anvil binary not found (looked at {looked_at}); run scripts/install-anvil or set RPCGATE_ANVIL")]
    AnvilNotFound { looked_at: String },
    #[error("could not start anvil at {}: {source}", path.display())]
    Spawn {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("anvil exited before listening ({status}); stderr: {stderr}")]
    AnvilExited { status: String, stderr: String },
    #[error("redis-server: {0}")]
    Redis(String),
    #[error("test DNS server: {0}")]
    Dns(String),
    #[error("test TLS: {0}")]
    Tls(String),
    #[error("anvil did not print its port within {after:?}; stderr: {stderr}")]
    StartTimeout { after: Duration, stderr: String },
    #[error("{context}: {source}")]
    Io {
        context: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid url {0:?}")]
    BadUrl(String),
    #[error("{method}: transport error: {detail}")]
    Transport { method: String, detail: String },
    #[error("{method}: HTTP status {status}")]
    HttpStatus { method: String, status: u16 },
    #[error("{method}: no answer within {after:?}")]
    Timeout { method: String, after: Duration },
    #[error("{method}: JSON-RPC error {code}: {message}")]
    Rpc {
        method: String,
        code: i64,
        message: String,
    },
    #[error("{method}: unexpected response: {detail}")]
    BadResponse { method: String, detail: String },
    #[error("replica {index} does not exist (the fleet has {len})")]
    NoSuchReplica { index: usize, len: usize },
    #[error("replica {0} is stopped")]
    ReplicaStopped(usize),
    #[error("no replica is running")]
    NoLiveReplica,
    #[error("checkpoint {0} is unknown or was discarded by an earlier reorg")]
    UnknownCheckpoint(u64),
    #[error("invalid fleet options: {0}")]
    InvalidOptions(String),
    #[error("invalid raw transaction {0:?}: expected 0x-prefixed hex")]
    InvalidRawTx(String),
    #[error("replica {index}: {source}")]
    Replica {
        index: usize,
        #[source]
        source: Box<FleetError>,
    },
}

impl FleetError {
    /// The JSON-RPC error code, if the node answered with an error object.
    pub fn rpc_code(&self) -> Option<i64> {
        match self {
            Self::Rpc { code, .. } => Some(*code),
            Self::Replica { source, .. } => source.rpc_code(),
            _ => None,
        }
    }

    pub(crate) fn on_replica(self, index: usize) -> Self {
        match self {
            Self::Replica { .. } => self,
            other => Self::Replica {
                index,
                source: Box::new(other),
            },
        }
    }
}
