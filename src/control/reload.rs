//! Config reload: a control loop that watches the config file and SIGHUP.
//!
//! The file is re-read every `every` and on SIGHUP, and reloaded when its
//! content differs from what was last loaded. Comparing content (not mtimes
//! or inotify events) follows every way a file can change, including the
//! one Kubernetes uses for a mounted ConfigMap: the `..data` symlink is
//! swapped to a new directory, and the path we hold resolves to new content.
//! A new file is validated in full before anything changes; an invalid one
//! is refused with a log line naming the bad key, and the old config keeps
//! serving.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::Gateway;
use crate::config::Config;

/// Listen addresses given on the command line or in the environment; they
/// win over the file's on every reload as they did at start.
#[derive(Debug, Clone, Copy, Default)]
pub struct Overrides {
    pub listen: Option<SocketAddr>,
    pub admin_listen: Option<SocketAddr>,
}

impl Overrides {
    pub fn apply(&self, config: &mut Config) {
        if let Some(a) = self.listen {
            config.listener.listen = a;
        }
        if let Some(a) = self.admin_listen {
            config.listener.admin_listen = a;
        }
    }
}

/// What to watch.
pub struct Watch {
    pub path: PathBuf,
    /// The content the gateway started with.
    pub loaded: Vec<u8>,
    pub every: Duration,
    pub overrides: Overrides,
}

/// Watches the config file until the task is aborted.
pub async fn watch(w: Watch, gateway: Arc<Gateway>) {
    let Watch {
        path,
        loaded,
        every,
        overrides,
    } = w;
    let mut last = loaded;
    let mut hup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(error = %e, "no SIGHUP handler; reloading on file changes only");
            None
        }
    };
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let forced = tokio::select! {
            _ = tick.tick() => false,
            Some(()) = async { match hup.as_mut() { Some(h) => h.recv().await, None => std::future::pending().await } } => true,
        };
        let content = match tokio::fs::read(&path).await {
            Ok(c) => c,
            Err(e) => {
                // A ConfigMap swap can leave the path missing for an instant.
                if forced {
                    tracing::error!(path = %path.display(), error = %e, "reload refused: cannot read the config");
                    gateway.reloads.refused.fetch_add(1, Ordering::Relaxed);
                }
                continue;
            }
        };
        if content == last && !forced {
            continue;
        }
        reload(&gateway, &path, &content, overrides);
        last = content;
    }
}

/// Validates `content` and applies it; returns whether it was applied.
pub fn reload(
    gateway: &Arc<Gateway>,
    path: &std::path::Path,
    content: &[u8],
    overrides: Overrides,
) -> bool {
    let parsed = std::str::from_utf8(content)
        .map_err(|_| "the file is not UTF-8".to_string())
        .and_then(|text| Config::from_yaml(text).map_err(|e| e.to_string()))
        .and_then(|mut config| {
            overrides.apply(&mut config);
            gateway.reload(&config).map_err(|e| e.to_string())
        });
    match parsed {
        Ok(()) => {
            tracing::info!(path = %path.display(), "config reloaded");
            true
        }
        Err(e) => {
            tracing::error!(path = %path.display(), error = %e, "reload refused; the previous config keeps serving");
            gateway.reloads.refused.fetch_add(1, Ordering::Relaxed);
            false
        }
    }
}
