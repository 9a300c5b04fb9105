//! A real redis-server (Debian's package) on a free loopback port, for tests
//! of state shared between gateway replicas.
//!
//! redis-server cannot bind port 0 and report it, so a free port is found by
//! binding 127.0.0.1:0 and releasing it just before the server starts; the
//! start is retried on another port if that one was taken in between.
//! [`RedisServer::start_tls`] starts one that speaks TLS only (`--port 0`,
//! `--tls-port`), with certificates the test made, and ACL users of its
//! choice; [`RedisServer::freeze`] and [`RedisServer::thaw`] make it a server
//! that accepts connections but answers nothing (SIGSTOP), as a stalled or
//! overloaded Redis looks to a client.
//!
//! Persistence is off: each server starts empty, unless it is started with an
//! append-only file ([`RedisServer::start_with_aof`]), which the soak uses to
//! SIGKILL it and bring it back with its data. Like anvil nodes, the process
//! gets SIGKILL when the thread that started it goes.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::process::{Child, Command};

use super::FleetError;

/// A running redis-server; killed on drop.
pub struct RedisServer {
    port: u16,
    child: Option<Child>,
    /// The directory of its append-only file, when it keeps one.
    aof_dir: Option<PathBuf>,
}

impl RedisServer {
    /// Starts redis-server on a free loopback port and waits until it answers PING.
    pub async fn start() -> Result<RedisServer, FleetError> {
        let mut last = None;
        for _ in 0..5 {
            let port = free_port()?;
            match RedisServer::start_on(port).await {
                Ok(server) => return Ok(server),
                Err(e) => last = Some(e),
            }
        }
        Err(last.expect("at least one attempt"))
    }

    /// Starts redis-server on a free port with an append-only file in `dir`,
    /// written at every command (`appendfsync always`): a SIGKILL loses nothing
    /// that was acknowledged, and [`RedisServer::restart`] reloads it.
    pub async fn start_with_aof(dir: &Path) -> Result<RedisServer, FleetError> {
        let mut last = None;
        for _ in 0..5 {
            let port = free_port()?;
            let listen = ["--port".to_string(), port.to_string()];
            match RedisServer::launch(port, &listen, false, Some(dir)).await {
                Ok(server) => return Ok(server),
                Err(e) => last = Some(e),
            }
        }
        Err(last.expect("at least one attempt"))
    }

    /// Starts redis-server on `port` (used to bring a killed server back).
    pub async fn start_on(port: u16) -> Result<RedisServer, FleetError> {
        RedisServer::launch(port, &["--port".to_string(), port.to_string()], false, None).await
    }

    /// Starts redis-server speaking TLS only on a free loopback port, with
    /// the certificate and key files `cert` and `key` (issued for
    /// 127.0.0.1), clients unauthenticated by certificate, and `users`: ACL
    /// rules, one user per item (e.g. `"app on >secret ~* +@all"`, `"default
    /// off"`). Ready once it accepts TCP connections.
    pub async fn start_tls(
        cert: &std::path::Path,
        key: &std::path::Path,
        users: &[&str],
    ) -> Result<RedisServer, FleetError> {
        let mut last = None;
        for _ in 0..5 {
            let port = free_port()?;
            let mut args: Vec<String> = vec![
                "--port".into(),
                "0".into(),
                "--tls-port".into(),
                port.to_string(),
                "--tls-cert-file".into(),
                cert.display().to_string(),
                "--tls-key-file".into(),
                key.display().to_string(),
                "--tls-auth-clients".into(),
                "no".into(),
            ];
            for user in users {
                args.push("--user".into());
                args.extend(user.split_whitespace().map(str::to_string));
            }
            match RedisServer::launch(port, &args, true, None).await {
                Ok(server) => return Ok(server),
                Err(e) => last = Some(e),
            }
        }
        Err(last.expect("at least one attempt"))
    }

    /// Freezes the server (SIGSTOP): connections are accepted by the kernel,
    /// nothing is answered.
    pub fn freeze(&self) -> Result<(), FleetError> {
        self.send(crate::child::Signal::Stop)
    }

    /// Thaws a frozen server (SIGCONT).
    pub fn thaw(&self) -> Result<(), FleetError> {
        self.send(crate::child::Signal::Continue)
    }

    fn send(&self, signal: crate::child::Signal) -> Result<(), FleetError> {
        let pid = self
            .child
            .as_ref()
            .and_then(|c| c.id())
            .ok_or_else(|| FleetError::Redis("not running".into()))?;
        crate::child::signal(pid, signal).map_err(|e| FleetError::Redis(format!("signal: {e}")))
    }

    /// Starts the server again on its port (and with its append-only file, if it
    /// keeps one), after [`RedisServer::kill`].
    pub async fn restart(&mut self) -> Result<(), FleetError> {
        self.kill().await?;
        let port = self.port;
        let listen = ["--port".to_string(), port.to_string()];
        let again = RedisServer::launch(port, &listen, false, self.aof_dir.as_deref()).await?;
        self.child = again.into_child();
        Ok(())
    }

    fn into_child(mut self) -> Option<Child> {
        self.child.take()
    }

    /// Starts redis-server with `listen` (its port arguments) and, with
    /// `aof_dir`, an append-only file written at every command.
    async fn launch(
        port: u16,
        listen: &[String],
        tls: bool,
        aof_dir: Option<&Path>,
    ) -> Result<RedisServer, FleetError> {
        let mut command = Command::new("redis-server");
        command.args(["--bind", "127.0.0.1"]).args(listen).args([
            "--save",
            "",
            "--protected-mode",
            "yes",
        ]);
        match aof_dir {
            Some(dir) => {
                command
                    .args(["--appendonly", "yes", "--appendfsync", "always"])
                    .arg("--dir")
                    .arg(dir);
            }
            None => {
                command.args(["--appendonly", "no"]);
            }
        }
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        crate::child::die_with_parent(&mut command);
        let mut child = command.spawn().map_err(|e| {
            FleetError::Redis(format!(
                "cannot start it ({e}); apt-get install redis-server"
            ))
        })?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                let mut out = String::new();
                if let Some(mut stdout) = child.stdout.take() {
                    let _ = stdout.read_to_string(&mut out).await;
                }
                return Err(FleetError::Redis(format!(
                    "exited on port {port} ({status}): {out}"
                )));
            }
            let ready = if tls {
                tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .is_ok()
            } else {
                ping(port).await
            };
            if ready {
                // Drain its output so a chatty server never blocks on a full pipe.
                if let (Some(mut out), Some(mut err)) = (child.stdout.take(), child.stderr.take()) {
                    tokio::spawn(async move {
                        let mut sink = Vec::new();
                        let _ = tokio::join!(out.read_to_end(&mut sink), async {
                            let mut sink = Vec::new();
                            err.read_to_end(&mut sink).await
                        });
                    });
                }
                return Ok(RedisServer {
                    port,
                    child: Some(child),
                    aof_dir: aof_dir.map(Path::to_path_buf),
                });
            }
            if tokio::time::Instant::now() > deadline {
                return Err(FleetError::Redis(format!(
                    "no PONG on port {port} within 10s"
                )));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// `rediss://127.0.0.1:PORT` (for a server from [`RedisServer::start_tls`]).
    pub fn tls_url(&self) -> String {
        format!("rediss://127.0.0.1:{}", self.port)
    }

    /// Kills the server (SIGKILL) and waits for it to exit.
    pub async fn kill(&mut self) -> Result<(), FleetError> {
        if let Some(mut child) = self.child.take() {
            child
                .kill()
                .await
                .map_err(|e| FleetError::Redis(format!("kill: {e}")))?;
        }
        Ok(())
    }
}

fn free_port() -> Result<u16, FleetError> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| FleetError::Redis(format!("no free port: {e}")))?;
    Ok(listener.port())
}

/// One RESP PING over a fresh connection.
async fn ping(port: u16) -> bool {
    use tokio::io::AsyncWriteExt;
    let Ok(mut stream) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return false;
    };
    if stream.write_all(b"*1\r\n$4\r\nPING\r\n").await.is_err() {
        return false;
    }
    let mut buf = [0u8; 7];
    matches!(
        tokio::time::timeout(Duration::from_secs(1), stream.read_exact(&mut buf)).await,
        Ok(Ok(_))
    ) && &buf == b"+PONG\r\n"
}
