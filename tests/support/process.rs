//! A real rpcgate process (the binary cargo built for these tests), for
//! what only a process shows: its log on stderr, signals, its exit status,
//! its memory from /proc, and several gateways sharing one redis.
//!
//! [`RpcgateProcess`] starts the binary, waits for its "rpcgate serving"
//! line and learns both listeners' addresses from it (so configs listen on
//! port 0), keeps every line of stderr for the test to read, and kills the
//! process on drop, passed or failed.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde_json::Value;

use super::wait_for;

/// How long a process may take to serve: the first start of a test binary
/// shares both cores with the other tests.
const START: Duration = Duration::from_secs(30);

/// A running rpcgate binary; killed on drop.
pub struct RpcgateProcess {
    child: Child,
    /// `http://` and the JSON-RPC listener's address.
    pub url: String,
    /// `http://` and the admin listener's address.
    pub admin: String,
    lines: Arc<Mutex<Vec<String>>>,
    /// The directory of a config written by [`RpcgateProcess::start`].
    _dir: Option<tempfile::TempDir>,
}

impl Drop for RpcgateProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl RpcgateProcess {
    /// Starts `rpcgate --config FILE ARGS…` on `yaml`, written to a file of
    /// its own, and waits until it serves.
    pub fn start(yaml: &str, args: &[&str]) -> RpcgateProcess {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("rpcgate.yaml");
        std::fs::write(&config, super::unlimited_anonymous(yaml)).unwrap();
        let mut process = RpcgateProcess::start_at(&config, args);
        process._dir = Some(dir);
        process
    }

    /// Starts on `yaml` with both listeners on port 0 (whatever the YAML
    /// says) and its log as JSON lines (no colour codes) at `filter`.
    pub fn start_json_log(yaml: &str, filter: &str) -> RpcgateProcess {
        RpcgateProcess::start(
            yaml,
            &[
                "--listen",
                "127.0.0.1:0",
                "--admin-listen",
                "127.0.0.1:0",
                "--log",
                filter,
                "--log-json",
            ],
        )
    }

    /// Starts `rpcgate --config CONFIG ARGS…` on a file the test owns (and
    /// may rewrite, to reload), and waits until it serves.
    ///
    /// `RUST_LOG` and `RPCGATE_LOG` are not passed on: the log a test reads
    /// is the one its config and arguments ask for.
    pub fn start_at(config: &Path, args: &[&str]) -> RpcgateProcess {
        let mut child = Command::new(env!("CARGO_BIN_EXE_rpcgate"))
            .arg("--config")
            .arg(config)
            .args(args)
            .env_remove("RUST_LOG")
            .env_remove("RPCGATE_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start rpcgate");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (serving, addresses) = std::sync::mpsc::channel();
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let kept = lines.clone();
        // Read to the end, so the process never blocks on a full pipe. Lines
        // are split on \n only: a raw \r or U+2028 stays inside its line,
        // where the log hygiene tests look for it.
        std::thread::spawn(move || {
            let mut raw = Vec::new();
            while stderr.read_until(b'\n', &mut raw).unwrap_or(0) > 0 {
                let line = String::from_utf8_lossy(&raw)
                    .trim_end_matches('\n')
                    .to_string();
                raw.clear();
                if line.contains("rpcgate serving") {
                    let _ = serving.send(listeners(&line));
                }
                kept.lock().push(line);
            }
        });
        let (listen, admin) = addresses.recv_timeout(START).unwrap_or_else(|_| {
            let _ = child.kill();
            panic!("rpcgate did not serve:\n{}", lines.lock().join("\n"))
        });
        RpcgateProcess {
            child,
            url: format!("http://{listen}"),
            admin: format!("http://{admin}"),
            lines,
            _dir: None,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Every line of stderr so far.
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().clone()
    }

    /// Every line of stderr so far, as one text.
    pub fn log(&self) -> String {
        self.lines().join("\n")
    }

    /// Every line so far, parsed: the process was asked for JSON lines
    /// (`--log-json` or `log.format: json`), and a line that is not one fails.
    pub fn json_lines(&self) -> Vec<Value> {
        self.lines()
            .iter()
            .map(|line| {
                serde_json::from_str(line).unwrap_or_else(|_| panic!("not a JSON line: {line}"))
            })
            .collect()
    }

    /// Waits (bounded) for a line that satisfies `found`, and returns it.
    pub async fn wait_line(&self, what: &str, found: impl Fn(&str) -> bool) -> String {
        let mut line = None;
        wait_for(what, || {
            line = self.lines().into_iter().find(|l| found(l));
            let done = line.is_some();
            async move { done }
        })
        .await;
        line.unwrap()
    }

    /// A field of /proc/<pid>/status, in KiB (`VmRSS`, `VmHWM`).
    pub fn status_kib(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        let line = status
            .lines()
            .find(|l| l.strip_prefix(field).is_some_and(|r| r.starts_with(':')))
            .unwrap_or_else(|| panic!("no {field} in /proc status"));
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    /// Waits (bounded) until the process exits, and returns how.
    pub async fn exited(&mut self) -> ExitStatus {
        let deadline = tokio::time::Instant::now() + START;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "rpcgate did not exit:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// The two addresses of the "rpcgate serving" line, in either log format.
fn listeners(line: &str) -> (String, String) {
    if let Ok(v) = serde_json::from_str::<Value>(line) {
        let field = |key: &str| {
            v["fields"][key]
                .as_str()
                .unwrap_or_else(|| panic!("no {key} in {line}"))
                .to_string()
        };
        return (field("listen"), field("admin"));
    }
    // Human lines: `key=value`, values unquoted (addresses).
    let field = |key: &str| {
        let at = line
            .find(&format!(" {key}="))
            .unwrap_or_else(|| panic!("no {key} in {line}"))
            + key.len()
            + 2;
        line[at..].split(' ').next().unwrap().to_string()
    };
    (field("listen"), field("admin"))
}
