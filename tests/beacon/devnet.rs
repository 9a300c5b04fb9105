//! The Lodestar devnet the beacon tests share: started once per test binary
//! run with the shared `devnet.sh` (node 1 holds the 8 interop validators,
//! the others follow it), stopped when the guard drops.

use std::path::PathBuf;
use std::process::Command;

pub struct Devnet {
    pub urls: Vec<String>,
    work: tempfile::TempDir,
}

/// Where `scripts/install-lodestar` put Lodestar (or `$RPCGATE_LODESTAR_DIR`).
pub fn lodestar_dir() -> PathBuf {
    match std::env::var_os("RPCGATE_LODESTAR_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".tools/lodestar"),
    }
}

impl Devnet {
    /// `None` (with the reason printed) when Lodestar is not installed.
    pub fn start(nodes: usize) -> Option<Devnet> {
        let dir = lodestar_dir();
        let bin = dir.join("node_modules/.bin/lodestar");
        if !bin.exists() {
            eprintln!(
                "SKIPPED: Lodestar is not installed at {} (run scripts/install-lodestar)",
                bin.display()
            );
            return None;
        }
        let work = tempfile::tempdir().unwrap();
        // Ports apart from other test runs on this machine: by process id.
        let base = 21000 + (std::process::id() % 900) * 8;
        let status = Command::new(dir.join("devnet.sh"))
            .arg(work.path())
            .arg(nodes.to_string())
            .arg(base.to_string())
            .arg((base + 4).to_string())
            .env("BEACON_BIN", &bin)
            // Followers must peer with node 1 before its first slots pass: a
            // node alone past genesis calls itself syncing and its validators
            // stop. On a loaded machine starting a node takes ten seconds or more.
            .env(
                "GENESIS_DELAY",
                std::env::var("GENESIS_DELAY").unwrap_or("20".into()),
            )
            // 4 s slots: 2 s ones are missed on a loaded machine, and a node
            // that misses its first slots without peers stays at slot 0.
            .env(
                "SLOT_SECONDS",
                std::env::var("SLOT_SECONDS").unwrap_or("4".into()),
            )
            .current_dir(&dir)
            .status()
            .unwrap();
        let devnet = Devnet {
            urls: (1..=nodes)
                .map(|i| {
                    let f = work.path().join(format!("n{i}/rest_url"));
                    std::fs::read_to_string(f).unwrap().trim().to_string()
                })
                .collect(),
            work,
        };
        assert!(status.success(), "devnet.sh failed");
        Some(devnet)
    }
}

impl Devnet {
    /// Sends `signal` (`KILL`, `STOP`, `CONT`) to node `i` (1-based).
    pub fn signal(&self, i: usize, signal: &str) {
        let pid = std::fs::read_to_string(self.work.path().join(format!("n{i}/pid"))).unwrap();
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.trim())
            .status()
            .unwrap();
        assert!(status.success(), "kill -{signal} node {i}");
    }
}

impl Drop for Devnet {
    fn drop(&mut self) {
        for i in 1..=self.urls.len() {
            let pid = self.work.path().join(format!("n{i}/pid"));
            if let Ok(pid) = std::fs::read_to_string(pid) {
                // A stopped node takes no TERM until continued.
                let _ = Command::new("kill").arg("-CONT").arg(pid.trim()).status();
                let _ = Command::new("kill").arg(pid.trim()).status();
            }
        }
    }
}
