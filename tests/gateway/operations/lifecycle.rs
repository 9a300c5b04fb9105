//! What operators rely on: readiness, status, and a graceful SIGTERM.

use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use rpcgate_fleet::child::{signal, Signal};
use rpcgate_fleet::{Fault, Tap};
use serde_json::{json, Value};

use crate::support::*;

#[tokio::test]
async fn readiness_follows_the_fleet_and_status_shows_each_backend() {
    let fleet = fleet(2).await;
    fleet.mine_blocks(3).await.unwrap();
    let gw = gateway_over(&fleet, "", 3).await;
    assert_eq!(get(&format!("{}/livez", gw.admin)).await.0, 200);
    assert_eq!(get(&format!("{}/readyz", gw.admin)).await.0, 200);

    fleet.hold(1).await.unwrap();
    fleet.mine_blocks(3).await.unwrap();
    wait_view(&gw, "r1 lagging", |v| v.backends[1].ineligible.is_some()).await;
    let (status, body) = get(&format!("{}/status", gw.admin)).await;
    assert_eq!(status, 200);
    let v: Value = serde_json::from_str(&body).unwrap();
    let net = &v["networks"]["dev"];
    assert_eq!(net["served_head"], 6);
    assert_eq!(net["backends"][0]["eligible"], true);
    assert_eq!(net["backends"][0]["head"], 6);
    assert_eq!(net["backends"][1]["eligible"], false);
    assert_eq!(net["backends"][1]["lag"], 3);
    assert_eq!(net["backends"][1]["reason"], "lagging 3 blocks");
    assert!(net["backends"][0]["latency_ms"].as_f64().unwrap() > 0.0);

    // The same state in Prometheus text: well-formed, and the numbers agree.
    let scraped = scrape(&gw.admin).await;
    let text = &scraped.text;
    check_exposition(text);
    let sample = |name: &str, labels: &[(&str, &str)]| {
        scraped
            .get(name, labels)
            .unwrap_or_else(|| panic!("{name} {labels:?} missing:\n{text}"))
    };
    let dev = ("network", "dev");
    assert_eq!(sample("rpcgate_served_head", &[dev]), 6.0);
    assert_eq!(
        sample("rpcgate_backend_eligible", &[dev, ("backend", "r0")]),
        1.0
    );
    assert_eq!(
        sample("rpcgate_backend_eligible", &[dev, ("backend", "r1")]),
        0.0
    );
    assert_eq!(
        sample("rpcgate_backend_lag_blocks", &[dev, ("backend", "r1")]),
        3.0
    );
    assert_eq!(sample("rpcgate_eligible_backends", &[dev]), 1.0);
    assert_eq!(sample("rpcgate_ready", &[]), 1.0);
    // scripts/test installs promtool (Debian's prometheus package).
    {
        let promtool = which_promtool()
            .expect("promtool is missing: scripts/test installs it (apt-get install prometheus)");
        let checked = std::process::Command::new(promtool)
            .args(["check", "metrics"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                use std::io::Write;
                child.stdin.take().unwrap().write_all(text.as_bytes())?;
                child.wait_with_output()
            })
            .unwrap();
        // Lint findings (exit 3) are style advice; exit 1 is a parse failure.
        assert_ne!(
            checked.status.code(),
            Some(1),
            "promtool: {}",
            String::from_utf8_lossy(&checked.stderr)
        );
    }

    fleet.stop(0).await.unwrap();
    fleet.stop(1).await.unwrap();
    wait_for("not ready without backends", || {
        let url = format!("{}/readyz", gw.admin);
        async move { get(&url).await.0 == 503 }
    })
    .await;
    let (_, why) = get(&format!("{}/readyz", gw.admin)).await;
    assert!(why.contains("network dev has no eligible backend"), "{why}");

    fleet.restart(0).await.unwrap();
    fleet.restart(1).await.unwrap();
    fleet.release(1).await.unwrap();
    wait_for("ready again", || {
        let url = format!("{}/readyz", gw.admin);
        async move { get(&url).await.0 == 200 }
    })
    .await;
}

/// The rpcgate binary, serving `config` (a file the test may rewrite),
/// with a drain long enough for the slow requests below.
fn start(config: &std::path::Path, extra: &[&str]) -> RpcgateProcess {
    let mut args = vec!["--drain-timeout", "10s"];
    args.extend_from_slice(extra);
    RpcgateProcess::start_at(config, &args)
}

#[tokio::test]
async fn sigterm_drains_in_flight_requests_and_exits_zero() {
    let fleet = fleet(1).await;
    fleet.mine().await.unwrap();
    let tap = Tap::start(&fleet.http_url(0)).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("rpcgate.yaml");
    let y = yaml(
        fleet.chain_id(),
        &[up("r0", tap.url(), None)],
        "request_timeout: 5s",
    )
    .replace("probe_timeout: 1s", "probe_timeout: 3s");
    std::fs::write(&config, y).unwrap();
    let mut gw = start(&config, &[]);
    let (url, admin) = (gw.url.clone(), gw.admin.clone());
    wait_for("ready", || {
        let url = format!("{admin}/readyz");
        async move { get(&url).await.0 == 200 }
    })
    .await;

    // Ten slow requests in flight (distinct, so none is coalesced), then SIGTERM.
    tap.set_fault(Fault::Delay(Duration::from_millis(800)));
    tap.reset();
    let url = Arc::new(url);
    let in_flight: Vec<_> = (0..10)
        .map(|i| {
            let url = url.clone();
            tokio::spawn(async move {
                let who = format!("0x{:040x}", i + 1);
                post_json(
                    &url,
                    &json!({"jsonrpc":"2.0","id":i,"method":"eth_getBalance","params":[who,"0x1"]}),
                )
                .await
            })
        })
        .collect();
    wait_for("all ten at the backend", || {
        let n = tap.count("eth_getBalance");
        async move { n == 10 }
    })
    .await;
    signal(gw.pid(), Signal::Terminate).expect("SIGTERM");

    // While draining: not ready, and new connections are refused.
    wait_for("not ready while draining", || {
        let url = format!("{admin}/readyz");
        async move { get(&url).await.0 == 503 }
    })
    .await;
    let addr = url.trim_start_matches("http://").to_string();
    wait_for("new connections refused", || {
        let addr = addr.clone();
        async move { tokio::net::TcpStream::connect(addr).await.is_err() }
    })
    .await;

    for request in in_flight {
        let answer = request.await.unwrap();
        assert!(
            answer["result"].is_string(),
            "an in-flight request was cut: {answer}"
        );
    }
    assert_eq!(gw.exited().await.code(), Some(0));
}

/// Writes `content` the way Kubernetes updates a mounted ConfigMap: into a new
/// directory, then an atomic swap of the `..data` symlink.
fn configmap_write(dir: &std::path::Path, version: u32, content: &str) {
    let data = dir.join(format!("..v{version}"));
    std::fs::create_dir(&data).unwrap();
    // As `start_gateway` does: the traffic here is one address's, unlimited.
    std::fs::write(data.join("rpcgate.yaml"), unlimited_anonymous(content)).unwrap();
    let tmp = dir.join("..data_tmp");
    std::os::unix::fs::symlink(format!("..v{version}"), &tmp).unwrap();
    std::fs::rename(&tmp, dir.join("..data")).unwrap();
    let link = dir.join("rpcgate.yaml");
    if std::fs::symlink_metadata(&link).is_err() {
        std::os::unix::fs::symlink("..data/rpcgate.yaml", &link).unwrap();
    }
}

#[tokio::test]
async fn reload_under_traffic_fails_no_request_and_refuses_a_bad_file() {
    use rpcgate::control::reload::{watch, Overrides, Watch};
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

    let fleet = fleet(3).await;
    fleet.mine_blocks(2).await.unwrap();
    let ups = fleet_ups(&fleet);
    let first = yaml(fleet.chain_id(), &ups[..2], "");
    let dir = tempfile::tempdir().unwrap();
    configmap_write(dir.path(), 1, &first);
    let gw = start_gateway(&first).await;
    wait_synced(&gw, 2, 2).await;
    let path = dir.path().join("rpcgate.yaml");
    let w = Watch {
        path: path.clone(),
        loaded: first.clone().into_bytes(),
        every: Duration::from_millis(50),
        overrides: Overrides::default(),
    };
    let watcher = tokio::spawn(watch(w, gw.gateway.clone()));

    let done = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let workers: Vec<_> = (0..3)
        .map(|_| {
            let (url, done, ok, failed) = (gw.url.clone(), done.clone(), ok.clone(), failed.clone());
            tokio::spawn(async move {
                while !done.load(Ordering::Relaxed) {
                    let a = post_json(&url, &json!({"jsonrpc":"2.0","id":1,"method":"eth_getBalance","params":[OTHER,"latest"]})).await;
                    if a["result"].is_string() { ok.fetch_add(1, Ordering::Relaxed); } else { eprintln!("failed: {a}"); failed.fetch_add(1, Ordering::Relaxed); }
                }
            })
        })
        .collect();
    let names = |gw: &Gw| {
        gw.network()
            .config
            .upstreams
            .iter()
            .map(|u| u.name.clone())
            .collect::<Vec<_>>()
    };

    // Add r2, remove r0, tighten the batch limit: one swap.
    let second = yaml(fleet.chain_id(), &ups[1..], "").replacen(
        "networks:",
        "server:\n  max_batch_len: 5\nnetworks:",
        1,
    );
    configmap_write(dir.path(), 2, &second);
    wait_for("the swap to be noticed", || {
        let n = names(&gw);
        async move { n == ["r1", "r2"] }
    })
    .await;
    wait_synced(&gw, 2, 2).await;
    let batch: Vec<Value> = (0..6)
        .map(|i| json!({"jsonrpc":"2.0","id":i,"method":"eth_chainId"}))
        .collect();
    let answer = post_json(&gw.url, &Value::Array(batch)).await;
    assert_eq!(
        answer["error"]["code"], -32600,
        "the tightened batch limit applies: {answer}"
    );

    // An invalid file is refused; the config before it keeps serving.
    let refused = gw.gateway.reloads.refused.load(Ordering::Relaxed);
    configmap_write(
        dir.path(),
        3,
        &second
            .replace("max_lag_blocks", "max_lag_blokcs")
            .replace("chain_id:", "chian_id:"),
    );
    wait_for("the bad file to be refused", || {
        let n = gw.gateway.reloads.refused.load(Ordering::Relaxed);
        async move { n > refused }
    })
    .await;
    assert_eq!(names(&gw), ["r1", "r2"]);
    let before = ok.load(Ordering::Relaxed);
    wait_for("traffic still flows", || {
        let n = ok.load(Ordering::Relaxed);
        async move { n > before + 100 }
    })
    .await;

    done.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.unwrap();
    }
    watcher.abort();
    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "requests failed during reloads"
    );
    assert_eq!(gw.gateway.reloads.applied.load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn sighup_reloads_the_binary() {
    let fleet = fleet(2).await;
    fleet.mine().await.unwrap();
    let ups = fleet_ups(&fleet);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("rpcgate.yaml");
    std::fs::write(&config, yaml(fleet.chain_id(), &ups[..1], "")).unwrap();
    // File polling effectively off: only SIGHUP can reload.
    let gw = start(&config, &["--reload-interval", "60m"]);
    let admin = gw.admin.clone();
    let backends = |admin: String| async move {
        let (_, body) = get(&format!("{admin}/status")).await;
        let v: Value = serde_json::from_str(&body).unwrap();
        v["networks"]["dev"]["backends"].as_array().unwrap().len()
    };
    assert_eq!(backends(admin.clone()).await, 1);
    std::fs::write(&config, yaml(fleet.chain_id(), &ups, "")).unwrap();
    signal(gw.pid(), Signal::Hangup).expect("SIGHUP");
    wait_for("two backends after SIGHUP", || {
        backends(admin.clone()).then(|n| async move { n == 2 })
    })
    .await;
}

/// Checks the text format more strictly than the parser that reads it:
/// every line is a comment or `name{labels} value`, HELP/TYPE come before
/// their samples, and no series appears twice.
fn check_exposition(text: &str) {
    let mut series = std::collections::HashSet::new();
    let mut typed = std::collections::HashSet::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            typed.insert(rest.split_whitespace().next().unwrap().to_string());
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        let (one, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("bad line {line:?}"));
        let name = one.split('{').next().unwrap();
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| name.strip_suffix(suffix).filter(|f| typed.contains(*f)))
            .unwrap_or(name);
        assert!(
            typed.contains(family),
            "{name} has no TYPE before its samples"
        );
        value
            .parse::<f64>()
            .unwrap_or_else(|_| panic!("bad value in {line:?}"));
        assert!(series.insert(one.to_string()), "duplicate series {one}");
    }
}

/// promtool, from Debian's prometheus package, when installed.
fn which_promtool() -> Result<std::path::PathBuf, ()> {
    ["/usr/bin/promtool", "/usr/local/bin/promtool"]
        .iter()
        .map(std::path::PathBuf::from)
        .find(|p| p.exists())
        .ok_or(())
}
