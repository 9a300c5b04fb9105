//! One anvil process: starting it, learning its port, stopping it. Where the binary is
//! found is `lookup`'s concern ([`anvil_binary`]).
//!
//! anvil is started with `--port 0` so the kernel picks a free port, and the port is
//! read back from the `Listening on 127.0.0.1:PORT` line anvil prints on stdout. After
//! that line both pipes are drained by background tasks until the process exits:
//! anvil logs every request on stdout, and a full pipe would stall it. The last few
//! KiB of stderr are kept so a failed start can say why.
//!
//! The process is started with `kill_on_drop`, so forgetting an [`Anvil`] never leaks
//! a node; [`Anvil::kill`] stops it and waits until the port is free again, which
//! [`Anvil::spawn_on_port`] relies on to restart a node at the same address.
//!
//! Each process gets a home directory of its own, removed with it: past a few
//! hundred blocks anvil writes old states under `$HOME/.foundry/anvil/tmp` and never
//! removes them when it is killed (a soak that restarts replicas of a long chain left
//! 45 GB there and filled the disk).

use std::process::Stdio;
use std::sync::Arc;

use parking_lot::Mutex;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, ChildStdout, Command};

use super::FleetError;

mod lookup;

pub use lookup::{anvil_binary, ANVIL_ENV, INSTALLED_ANVIL};

/// How long anvil may take to print its port (it is quick, but CI machines are slow).
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// How much of stderr is kept for error messages.
const STDERR_TAIL_BYTES: usize = 8 * 1024;

/// How one anvil node is started. Two nodes with equal options start from the same
/// genesis block, which is what lockstep mining builds on.
#[derive(Debug, Clone)]
pub struct AnvilOptions {
    pub chain_id: u64,
    /// Timestamp of the genesis block (`--timestamp`).
    pub genesis_timestamp: u64,
    /// `--slots-in-an-epoch`: with 1, `safe` is latest-1 and `finalized` latest-2.
    pub slots_in_an_epoch: u64,
    /// Passed to anvil after the harness's own arguments.
    pub extra_args: Vec<String>,
    /// The loopback address to listen on (127.0.0.1 unless a test needs
    /// several nodes on one port, as pods behind a headless Service are).
    pub host: std::net::Ipv4Addr,
}

impl Default for AnvilOptions {
    fn default() -> Self {
        Self {
            chain_id: 31337,
            genesis_timestamp: 1_700_000_000,
            slots_in_an_epoch: 1,
            extra_args: Vec::new(),
            host: std::net::Ipv4Addr::LOCALHOST,
        }
    }
}

/// A running anvil process on a loopback address.
#[derive(Debug)]
pub struct Anvil {
    child: Child,
    host: std::net::Ipv4Addr,
    port: u16,
    /// The process's `$HOME` (its state spill); dropped after the child.
    _home: tempfile::TempDir,
}

impl Anvil {
    /// Starts anvil on a port the kernel chooses.
    pub async fn spawn(opts: &AnvilOptions) -> Result<Self, FleetError> {
        Self::spawn_on_port(opts, 0).await
    }

    /// Starts anvil on `port` (0: any free port). Restarting a stopped node on its old
    /// port keeps the URLs that clients (such as the gateway under test) hold valid.
    pub async fn spawn_on_port(opts: &AnvilOptions, port: u16) -> Result<Self, FleetError> {
        let path = anvil_binary()?;
        let home = tempfile::Builder::new()
            .prefix("rpcgate-anvil-")
            .tempdir()
            .map_err(|source| FleetError::Io {
                context: "making anvil's home directory",
                source,
            })?;
        let mut command = Command::new(&path);
        command
            .env("HOME", home.path())
            .args(["--host", &opts.host.to_string(), "--no-mining"])
            .args(["--port", &port.to_string()])
            .args(["--timestamp", &opts.genesis_timestamp.to_string()])
            .args(["--chain-id", &opts.chain_id.to_string()])
            .args(["--slots-in-an-epoch", &opts.slots_in_an_epoch.to_string()])
            .args(&opts.extra_args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        crate::child::die_with_parent(&mut command);
        let mut child = command.spawn().map_err(|source| FleetError::Spawn {
            path: path.clone(),
            source,
        })?;

        let stderr_tail = Arc::new(Mutex::new(String::new()));
        if let Some(stderr) = child.stderr.take() {
            tokio::spawn(keep_tail(stderr, Arc::clone(&stderr_tail)));
        }
        let stdout = child.stdout.take().ok_or_else(|| FleetError::AnvilExited {
            status: "stdout was not captured".to_owned(),
            stderr: String::new(),
        })?;

        let tail = || stderr_tail.lock().clone();
        match tokio::time::timeout(START_TIMEOUT, read_port(stdout)).await {
            Ok(Some((port, rest))) => {
                tokio::spawn(drain(rest));
                tracing::debug!(port, "anvil listening");
                Ok(Self {
                    child,
                    host: opts.host,
                    port,
                    _home: home,
                })
            }
            Ok(None) => {
                // stdout closed: the process is gone or about to be; give stderr a
                // moment to arrive so the error says why.
                let status = tokio::time::timeout(Duration::from_secs(2), child.wait())
                    .await
                    .map(|s| s.map(|s| s.to_string()).unwrap_or_else(|e| e.to_string()))
                    .unwrap_or_else(|_| "still running".to_owned());
                Err(FleetError::AnvilExited {
                    status,
                    stderr: tail(),
                })
            }
            Err(_) => {
                let _ = child.kill().await;
                Err(FleetError::StartTimeout {
                    after: START_TIMEOUT,
                    stderr: tail(),
                })
            }
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn http_url(&self) -> String {
        format!("http://{}:{}", self.host, self.port)
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}:{}", self.host, self.port)
    }

    /// Kills the process and waits for it to exit, so its port can be bound again.
    pub async fn kill(&mut self) -> Result<(), FleetError> {
        self.child.kill().await.map_err(|source| FleetError::Io {
            context: "killing anvil",
            source,
        })
    }
}

/// Reads stdout until the `Listening on HOST:PORT` line; returns the port and the
/// reader so the caller can keep draining it.
async fn read_port(stdout: ChildStdout) -> Option<(u16, BufReader<ChildStdout>)> {
    let mut reader = BufReader::new(stdout);
    let mut line = String::new();
    loop {
        line.clear();
        match reader.read_line(&mut line).await {
            Ok(0) | Err(_) => return None,
            Ok(_) => {}
        }
        if let Some(addr) = line.trim().strip_prefix("Listening on ") {
            let port = addr.rsplit(':').next()?.parse().ok()?;
            return Some((port, reader));
        }
    }
}

async fn drain(mut reader: BufReader<ChildStdout>) {
    let mut line = String::new();
    loop {
        line.clear();
        match reader.read_line(&mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => tracing::trace!(target: "rpcgate_fleet::anvil", "{}", line.trim_end()),
        }
    }
}

async fn keep_tail(stream: impl AsyncRead + Unpin, tail: Arc<Mutex<String>>) {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    loop {
        line.clear();
        match reader.read_line(&mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let mut tail = tail.lock();
        tail.push_str(&line);
        if tail.len() > STDERR_TAIL_BYTES {
            let mut cut = tail.len() - STDERR_TAIL_BYTES;
            while !tail.is_char_boundary(cut) {
                cut += 1;
            }
            tail.drain(..cut);
        }
    }
}
