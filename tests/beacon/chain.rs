//! A Lodestar devnet whose blocks come from a validator client outside it:
//! N `lodestar dev` beacon nodes holding no validators (unlike `devnet.sh`,
//! whose node 1 runs them in-process) and one `lodestar validator` process
//! with the 8 interop keys, pointed at a URL the test chooses (the
//! gateway). Nodes are children of the test, so one can be killed
//! (SIGKILL) and started again by its handle.
//!
//! The chain only starts if the validator client is working before the
//! nodes call themselves syncing: Lodestar refuses validator duties once its
//! head is more than an epoch (8 slots in the minimal preset) behind the
//! clock, and a node without peers is "stalled". So every node must be up
//! and peered before genesis; the genesis delay covers node start-up on a
//! loaded machine (`GENESIS_DELAY`, default 60 s; node 2 and 3 can only start
//! once node 1 tells its ENR).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

pub struct Chain {
    pub urls: Vec<String>,
    pub slot_seconds: u64,
    pub genesis_time: u64,
    bin: PathBuf,
    work: tempfile::TempDir,
    p2p_base: u16,
    rest_base: u16,
    enr: String,
    nodes: Vec<Option<Child>>,
    vc: Option<Child>,
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// One JSON read of a node (`None` while it does not answer).
pub async fn get_json(url: &str) -> Option<Value> {
    serde_json::from_slice(&get_bytes(url).await?).ok()
}

/// One read: the body of a 2xx answer.
pub async fn get_bytes(url: &str) -> Option<Bytes> {
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    let req = http::Request::get(url).body(Full::new(Bytes::new())).ok()?;
    let read = async {
        let answer = client.request(req).await.ok()?;
        if !answer.status().is_success() {
            return None;
        }
        Some(answer.into_body().collect().await.ok()?.to_bytes())
    };
    tokio::time::timeout(Duration::from_secs(5), read)
        .await
        .ok()?
}

impl Chain {
    /// Starts `n` nodes (none holding validators); `None` when Lodestar is not installed.
    pub async fn start(n: usize) -> Option<Chain> {
        let bin = crate::devnet::lodestar_dir().join("node_modules/.bin/lodestar");
        if !bin.exists() {
            eprintln!(
                "SKIPPED: Lodestar is not installed at {} (run scripts/install-lodestar)",
                bin.display()
            );
            return None;
        }
        // Ports apart from devnet.rs's (21000 + ...) and from other runs: by process id.
        let base = 29000 + (std::process::id() % 400) as u16 * 8;
        let slot_seconds = env_u64("SLOT_SECONDS", 4);
        let mut chain = Chain {
            urls: (0..n)
                .map(|i| format!("http://127.0.0.1:{}", base + i as u16))
                .collect(),
            slot_seconds,
            genesis_time: now() + env_u64("GENESIS_DELAY", 60),
            bin,
            work: tempfile::tempdir().unwrap(),
            rest_base: base,
            p2p_base: base + 4,
            enr: String::new(),
            nodes: (0..n).map(|_| None).collect(),
            vc: None,
        };
        chain.start_node(0);
        let identity = format!("{}/eth/v1/node/identity", chain.urls[0]);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(180);
        loop {
            if let Some(v) = get_json(&identity).await {
                chain.enr = v["data"]["enr"].as_str().unwrap().to_string();
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "node 1's REST API did not come up"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        for i in 1..n {
            chain.start_node(i);
        }
        Some(chain)
    }

    /// Starts node `i` (0-based) on a fresh data directory: a restarted node
    /// syncs what it missed from its peers, as a replaced pod does.
    pub fn start_node(&mut self, i: usize) {
        let dir = self.work.path().join(format!("n{}", i + 1));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let (rest, p2p) = (self.rest_base + i as u16, self.p2p_base + i as u16);
        let mut cmd = self.lodestar(&dir, "dev");
        cmd.args(["--dataDir", "./data", "--genesisValidators", "8"])
            .args(["--genesisTime", &self.genesis_time.to_string()])
            .args([
                "--rest.address",
                "127.0.0.1",
                "--rest.port",
                &rest.to_string(),
            ])
            .args(["--listenAddress", "127.0.0.1", "--port", &p2p.to_string()])
            .args(["--enr.ip", "127.0.0.1", "--enr.tcp", &p2p.to_string()])
            .args(["--enr.udp", &p2p.to_string()]);
        if i > 0 {
            cmd.args([
                "--bootnodes",
                &self.enr,
                "--network.connectToDiscv5Bootnodes",
            ]);
        }
        self.nodes[i] = Some(cmd.spawn().unwrap());
    }

    /// Kills node `i` at once (SIGKILL: no goodbye to its peers or clients).
    pub fn kill_node(&mut self, i: usize) {
        if let Some(mut child) = self.nodes[i].take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the validator client with the 8 interop keys against `server`.
    pub fn start_validator(&mut self, server: &str) {
        let dir = self.work.path().join("vc");
        std::fs::create_dir_all(&dir).unwrap();
        let mut cmd = self.lodestar(&dir, "validator");
        cmd.args(["--dataDir", "./data", "--interopIndexes", "0..7"])
            .args(["--server", server]);
        self.vc = Some(cmd.spawn().unwrap());
    }

    /// `lodestar <command>` in `dir`, niced, with the devnet's parameters, logging to `dir/log`.
    fn lodestar(&self, dir: &Path, command: &str) -> Command {
        let log = File::create(dir.join("log")).unwrap();
        let mut cmd = Command::new("nice");
        cmd.arg("-n")
            .arg("10")
            .arg(&self.bin)
            .arg(command)
            .args(["--logFile", "none"])
            .args(["--params.SECONDS_PER_SLOT", &self.slot_seconds.to_string()])
            .args(["--params.ALTAIR_FORK_EPOCH", "0"])
            .current_dir(dir)
            // The preset is read from the environment only; every other
            // LODESTAR_* variable would be parsed as a flag.
            .env("LODESTAR_PRESET", "minimal")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        if command == "validator" {
            cmd.args(["--network", "dev"]);
        }
        cmd
    }

    /// The wall-clock slot.
    pub fn clock_slot(&self) -> u64 {
        now().saturating_sub(self.genesis_time) / self.slot_seconds
    }

    /// The last lines of a process's log (node `Some(i)`, the validator client `None`).
    pub fn log_tail(&self, who: Option<usize>) -> String {
        let name = who.map_or("vc".to_string(), |i| format!("n{}", i + 1));
        let text =
            std::fs::read_to_string(self.work.path().join(name).join("log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().filter(|l| !l.starts_with("    at ")).collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }
}

impl Drop for Chain {
    fn drop(&mut self) {
        if let Some(mut vc) = self.vc.take() {
            let _ = vc.kill();
            let _ = vc.wait();
        }
        for i in 0..self.nodes.len() {
            self.kill_node(i);
        }
    }
}
