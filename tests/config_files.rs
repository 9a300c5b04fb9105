//! The config files we ship are valid, and the binary reports bad ones with
//! the key's path and exit code 2, before anything listens.

// Test code: its helpers are no API, and a failed unwrap is a failed test
// (the product's lints in Cargo.toml are for src/).
#![allow(unreachable_pub, clippy::unwrap_used)]

use std::process::Command;

use rpcgate::config::Config;
use serde::Deserialize;

#[test]
fn the_example_config_is_valid() {
    let c = Config::load(std::path::Path::new("config/rpcgate.example.yaml")).unwrap();
    assert_eq!(c.networks[0].name, "mainnet");
    let cache = &c.networks[0].cache;
    assert!(cache.enabled && !cache.shared);
    assert_eq!(cache.max_bytes, 256 * 1024 * 1024);
    assert_eq!(cache.shared_ttl, std::time::Duration::from_secs(24 * 3600));
}

#[test]
fn the_kubernetes_configmap_holds_a_valid_config() {
    let text = std::fs::read_to_string("k8s/rpcgate.yaml").unwrap();
    let mut found = 0;
    for doc in serde_yaml_ng::Deserializer::from_str(&text) {
        let value = serde_yaml_ng::Value::deserialize(doc).unwrap();
        if value["kind"].as_str() == Some("ConfigMap") {
            let embedded = value["data"]["rpcgate.yaml"]
                .as_str()
                .expect("data.rpcgate.yaml");
            let c = Config::from_yaml(embedded).unwrap();
            let net = &c.networks[0];
            assert_eq!(net.discover.len(), 1);
            assert_eq!(net.discover[0].dns, "geth-headless.web3.svc.cluster.local");
            assert_eq!(c.admin_listen.port(), 9090);
            assert!(c.log.json);
            found += 1;
        }
    }
    assert_eq!(found, 1);
}

fn rpcgate(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_rpcgate"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_config_exit_codes() {
    let (code, _) = rpcgate(&["check-config", "config/rpcgate.example.yaml"]);
    assert_eq!(code, 0);
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "networks:\n  main:\n    chain_id: 1\n    upstreams:\n      - name: a\n        http: ftp://x\n").unwrap();
    let (code, stderr) = rpcgate(&["check-config", bad.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("networks.main.upstreams[0].http"),
        "{stderr}"
    );
    // Serving a bad config fails the same way, before listening.
    let (code, stderr) = rpcgate(&["--config", bad.to_str().unwrap(), "--listen", "127.0.0.1:0"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("upstreams[0].http"), "{stderr}");
    let (code, _) = rpcgate(&[
        "check-config",
        dir.path().join("missing.yaml").to_str().unwrap(),
    ]);
    assert_eq!(code, 2);
}

#[test]
fn version_and_help_name_every_flag_and_its_env_var() {
    let out = Command::new(env!("CARGO_BIN_EXE_rpcgate"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("rpcgate {}", env!("CARGO_PKG_VERSION"))
    );
    let out = Command::new(env!("CARGO_BIN_EXE_rpcgate"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for (flag, env) in [
        ("--config", "RPCGATE_CONFIG"),
        ("--listen", "RPCGATE_LISTEN"),
        ("--admin-listen", "RPCGATE_ADMIN_LISTEN"),
        ("--log", "RPCGATE_LOG"),
        ("--drain-timeout", "RPCGATE_DRAIN_TIMEOUT"),
        ("--reload-interval", "RPCGATE_RELOAD_INTERVAL"),
    ] {
        let line = help
            .lines()
            .position(|l| l.contains(&format!("{flag} <")))
            .unwrap_or_else(|| panic!("{flag} missing from --help:\n{help}"));
        // The explanation is on the next line, and ends with the env var.
        let text = help.lines().nth(line + 1).unwrap();
        assert!(text.contains(&format!("[env: {env}=")), "{flag}: {text}");
        assert!(
            text.split('[').next().unwrap().trim().len() > 20,
            "{flag} is not explained"
        );
    }
    assert!(help.contains("--log-json") && help.contains("SIGHUP") && help.contains("SIGTERM"));
}

#[test]
fn env_vars_override_the_listen_addresses() {
    // The config names a port that is taken; the env var moves the listener.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("rpcgate.yaml");
    std::fs::write(
        &config,
        format!(
            "listen: {}\nadmin_listen: {}\nnetworks:\n  main:\n    chain_id: 1\n    upstreams:\n      - name: a\n        http: http://127.0.0.1:9\n",
            taken.local_addr().unwrap(),
            taken.local_addr().unwrap()
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_rpcgate"))
        .args(["--config", config.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "the taken port fails to bind");
    let mut child = Command::new(env!("CARGO_BIN_EXE_rpcgate"))
        .args(["--config", config.to_str().unwrap()])
        .env("RPCGATE_LISTEN", "127.0.0.1:0")
        .env("RPCGATE_ADMIN_LISTEN", "127.0.0.1:0")
        .env("RPCGATE_LOG", "info")
        .env_remove("RUST_LOG")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let serving = std::io::BufRead::lines(stderr)
        .map_while(Result::ok)
        .find(|l| l.contains("rpcgate serving"));
    let _ = child.kill();
    let _ = child.wait();
    let serving = serving.expect("rpcgate serving with the env addresses");
    assert!(
        !serving.contains(&taken.local_addr().unwrap().to_string()),
        "{serving}"
    );
}
