//! A lockstep anvil fleet for tests, the demo and the load tests.
//!
//! The gateway routes between replicas of one chain, so its tests need several nodes
//! that agree on block hashes yet can be made to disagree on demand: one lagging, one
//! down, all of them reorged. anvil cannot peer with other anvil nodes, so the fleet
//! makes replicas agree by construction instead: every replica starts from the same
//! genesis (`--timestamp`, `--no-mining`) and the harness mines each block itself on
//! every replica, feeding the same raw transactions and calling `evm_mine` with the
//! same timestamp. Identical inputs give identical block hashes.
//!
//! Owners, one per file:
//! - [`anvil`]: one anvil process (find the binary, start, learn the port, kill).
//! - [`rpc`]: the harness's own small JSON-RPC client.
//! - [`lockstep`]: [`Fleet`], the block history and per-replica progress: mining,
//!   holding back, stopping, restarting and reorging replicas.
//! - `replica`: one replica's process, progress and snapshots; replays blocks onto it.
//! - [`autominer`]: the background miner for the demo (blocks on a timer, random lag).
//! - [`dns`]: [`DnsServer`], an authoritative DNS server for discovery tests.
//! - [`redis`]: [`RedisServer`], a real redis-server on a free loopback port.
//! - [`tap`]: [`Tap`], a counting relay and fault injector in front of one node, for
//!   the faults anvil itself cannot show (HTTP errors, stalls, dropped connections).

pub mod anvil;
pub mod autominer;
pub mod dns;
pub mod lockstep;
pub mod redis;
mod replica;
pub mod rpc;
pub mod tap;

use std::path::PathBuf;
use std::time::Duration;

pub use anvil::{anvil_binary, Anvil, AnvilOptions};
pub use autominer::AutoMiner;
pub use dns::DnsServer;
pub use lockstep::{BlockRef, Checkpoint, Fleet, FleetOptions, DEV_ACCOUNT};
pub use redis::RedisServer;
pub use rpc::RpcClient;
pub use tap::{Fault, Tap};

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

/// Has the kernel kill a child process when the thread that started it goes.
/// A test run killed from outside never drops its fleet, so without this its
/// anvil and redis-server processes would outlive it (for a test, the thread
/// is its runtime's).
pub(crate) fn die_with_parent(command: &mut tokio::process::Command) {
    #[cfg(target_os = "linux")]
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}
