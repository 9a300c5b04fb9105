//! The gateway replicas under test: rpcgate binaries started as processes,
//! each on fixed ports (so that clients reconnect to the same address after a
//! restart), with a config of its own that the soak rewrites and reloads.
//!
//! The soak spawns the binary rather than linking the product: what it
//! measures (RSS, descriptors, SIGTERM, SIGHUP) is the process an operator
//! runs, and the fleet crate stays free of the product.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use rpcgate_fleet::child::{signal, Signal};
use rpcgate_fleet::{Fleet, RpcClient};
use tokio::process::{Child, Command};

/// How long a gateway may take to answer after it starts.
const START: Duration = Duration::from_secs(60);

/// What every gateway's config is made of.
pub struct Setup {
    pub binary: PathBuf,
    pub dir: PathBuf,
    pub redis_url: String,
    pub upstreams: Vec<(String, String)>,
    pub chain_id: u64,
}

pub struct Gateway {
    pub index: usize,
    pub port: u16,
    admin_port: u16,
    child: Mutex<Option<Child>>,
    pid: Mutex<Option<u32>>,
    /// Set while the soak restarts it on purpose: transport errors then are failovers.
    restarting: AtomicBool,
    /// Flipped by each config reload, so the file really changes.
    reloads: Mutex<u64>,
    pub client: RpcClient,
}

impl Gateway {
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn ws_url(&self) -> String {
        format!("ws://127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> Option<u32> {
        *self.pid.lock()
    }

    pub fn is_restarting(&self) -> bool {
        self.restarting.load(Ordering::Relaxed)
    }

    fn config_path(setup: &Setup, index: usize) -> PathBuf {
        setup.dir.join(format!("gateway-{index}.yaml"))
    }

    /// Starts gateway `index` and waits until it answers.
    pub async fn start(setup: &Setup, index: usize) -> Result<Gateway, String> {
        let port = free_port()?;
        let admin_port = free_port()?;
        let client =
            RpcClient::new(&format!("http://127.0.0.1:{port}")).map_err(|e| e.to_string())?;
        let gateway = Gateway {
            index,
            port,
            admin_port,
            child: Mutex::new(None),
            pid: Mutex::new(None),
            restarting: AtomicBool::new(false),
            reloads: Mutex::new(0),
            client,
        };
        gateway.write_config(setup)?;
        gateway.spawn(setup).await?;
        Ok(gateway)
    }

    fn write_config(&self, setup: &Setup) -> Result<(), String> {
        let reloads = *self.reloads.lock();
        // The reload changes a key that matters to routing, so it is really applied.
        let max_lag = 2 + reloads % 2;
        // GATEWAY_LOG=info shows the routing decisions (the head held, a
        // read waiting, a backend's head doubted) when a count needs a cause.
        // A filter with directives works too, e.g.
        // GATEWAY_LOG=warn,rpcgate::router::ryw_read=debug.
        let level = std::env::var("GATEWAY_LOG")
            .ok()
            .filter(|l| {
                !l.is_empty()
                    && l.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"_,:=".contains(&b))
            })
            .unwrap_or_else(|| "warn".into());
        let mut yaml = format!(
            "listen: 127.0.0.1:{port}\nadmin_listen: 127.0.0.1:{admin}\nlog:\n  level: \"{level}\"\n\
             server:\n  first_request_timeout: 2s\n\
             networks:\n  soak:\n    chain_id: {chain}\n    max_lag_blocks: {max_lag}\n\
             \x20   cache:\n      shared: true\n    upstreams:\n",
            port = self.port,
            admin = self.admin_port,
            chain = setup.chain_id,
        );
        for (i, (http, ws)) in setup.upstreams.iter().enumerate() {
            yaml.push_str(&format!(
                "      - name: anvil-{i}\n        http: {http}\n        ws: {ws}\n"
            ));
        }
        // The traffic all comes from 127.0.0.1: the anonymous tier's default
        // per-IP limits would refuse most of it.
        yaml.push_str("policy:\n  anonymous:\n    limits: {}\n");
        yaml.push_str(&format!(
            "redis:\n  url: {}\n# reload {reloads}\n",
            setup.redis_url
        ));
        std::fs::write(Gateway::config_path(setup, self.index), yaml).map_err(|e| e.to_string())
    }

    async fn spawn(&self, setup: &Setup) -> Result<(), String> {
        let log_path = setup.dir.join(format!("gateway-{}.log", self.index));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| format!("{}: {e}", log_path.display()))?;
        let mut command = Command::new(&setup.binary);
        command
            .arg("--config")
            .arg(Gateway::config_path(setup, self.index))
            .args(["--drain-timeout", "3s"])
            .env_remove("RUST_LOG")
            .env_remove("RPCGATE_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true);
        // A soak stopped by Ctrl-C never drops its gateways: they go with it.
        rpcgate_fleet::child::die_with_parent(&mut command);
        let child = command
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", setup.binary.display()))?;
        *self.pid.lock() = child.id();
        *self.child.lock() = Some(child);
        let deadline = tokio::time::Instant::now() + START;
        loop {
            if self
                .client
                .call("eth_chainId", serde_json::json!([]))
                .await
                .is_ok()
            {
                return Ok(());
            }
            if let Some(child) = self.child.lock().as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    return Err(format!(
                        "gateway {} exited at start ({status}); see {}",
                        self.index,
                        log_path.display()
                    ));
                }
            }
            if tokio::time::Instant::now() > deadline {
                return Err(format!(
                    "gateway {} did not answer within {START:?}; see {}",
                    self.index,
                    log_path.display()
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// SIGTERM, wait for the exit (its drain), start again on the same ports.
    pub async fn restart(&self, setup: &Setup) -> Result<String, String> {
        self.restarting.store(true, Ordering::Relaxed);
        let result = async {
            let child = self.child.lock().take();
            let mut status = String::from("not running");
            if let Some(mut child) = child {
                if let Some(pid) = child.id() {
                    signal(pid, Signal::Terminate).map_err(|e| e.to_string())?;
                }
                status = match tokio::time::timeout(Duration::from_secs(30), child.wait()).await {
                    Ok(Ok(s)) => s.to_string(),
                    Ok(Err(e)) => e.to_string(),
                    Err(_) => {
                        let _ = child.kill().await;
                        "no exit within 30s after SIGTERM: killed".to_string()
                    }
                };
            }
            self.spawn(setup).await?;
            Ok(status)
        }
        .await;
        // Clients learn of the restart a little after it: their pooled sockets fail
        // on next use, which is still the restart's doing.
        tokio::time::sleep(Duration::from_secs(2)).await;
        self.restarting.store(false, Ordering::Relaxed);
        result
    }

    /// Rewrites the config (one routing key changed) and sends SIGHUP.
    pub fn reload(&self, setup: &Setup) -> Result<(), String> {
        *self.reloads.lock() += 1;
        self.write_config(setup)?;
        match self.pid() {
            Some(pid) => signal(pid, Signal::Hangup).map_err(|e| e.to_string()),
            None => Ok(()),
        }
    }

    pub async fn stop(&self) {
        let child = self.child.lock().take();
        if let Some(mut child) = child {
            if let Some(pid) = child.id() {
                let _ = signal(pid, Signal::Terminate);
            }
            if tokio::time::timeout(Duration::from_secs(10), child.wait())
                .await
                .is_err()
            {
                let _ = child.kill().await;
            }
        }
    }
}

/// The fleet's replicas as the gateways' upstreams.
pub fn upstreams(fleet: &Fleet) -> Vec<(String, String)> {
    (0..fleet.len())
        .map(|i| (fleet.http_url(i), fleet.ws_url(i)))
        .collect()
}

/// VmRSS in KiB and the count of open descriptors of `pid`.
pub fn resources(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64;
    Some((rss, fds))
}

fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free port: {e}"))
}

/// The directory of this run's files, made if missing.
pub fn run_dir(root: &Path) -> Result<PathBuf, String> {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let dir = root.join(stamp(secs));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    Ok(dir)
}

/// `YYYYMMDDTHHMMSSZ` of a Unix time, without a date crate.
fn stamp(secs: u64) -> String {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn stamps_are_utc_dates() {
        assert_eq!(super::stamp(0), "19700101T000000Z");
        assert_eq!(super::stamp(1_796_601_600 + 3_723), "20261207T010203Z");
    }
}
