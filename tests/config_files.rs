//! The config files we ship are valid, and the binary reports bad ones with
//! the key's path and exit code 2, before anything listens.

// Test code: its helpers are no API, and a failed unwrap is a failed test
// (the product's lints in Cargo.toml are for src/).
#![allow(unreachable_pub, clippy::unwrap_used)]

use std::process::Command;

use rpcgate::config::Config;

#[test]
fn the_example_config_is_valid() {
    let c = Config::load(std::path::Path::new("config/rpcgate.example.yaml")).unwrap();
    assert_eq!(c.networks[0].name, "mainnet");
    let cache = &c.networks[0].cache;
    assert!(cache.enabled && !cache.shared);
    assert_eq!(cache.max_bytes, 256 * 1024 * 1024);
    assert_eq!(cache.shared_ttl, std::time::Duration::from_secs(24 * 3600));
    // Hedging is off unless configured.
    assert!(c.networks[0].hedge.is_empty());
}

/// The routing config each Kubernetes overlay ships (k8s/check also runs
/// `rpcgate check-config` on what kustomize renders into the ConfigMap).
#[test]
fn the_kubernetes_configs_are_valid_and_safe() {
    for (file, network, chain_id, redis) in [
        ("k8s/base/config/rpcgate.yaml", "mainnet", 1, false),
        ("k8s/overlays/dev/rpcgate.yaml", "sepolia", 11155111, false),
        ("k8s/overlays/prod/rpcgate.yaml", "mainnet", 1, true),
    ] {
        // The keys files are the Secret's mount in the pod; stand-ins here.
        let dir = tempfile::tempdir().unwrap();
        let text = std::fs::read_to_string(file).unwrap();
        assert!(
            text.contains("keys_file: /etc/rpcgate/keys/dapps"),
            "{file}"
        );
        let text = with_stand_in_keys(&text, dir.path());
        let c = Config::from_yaml(&text).unwrap_or_else(|e| panic!("{file}: {e}"));
        let net = &c.networks[0];
        assert_eq!(
            (net.name.as_str(), net.chain_id),
            (network, chain_id),
            "{file}"
        );
        assert_eq!(net.discover.len(), 1);
        assert_eq!(net.discover[0].dns, "geth-headless.web3.svc.cluster.local");
        assert_eq!(
            (net.discover[0].http_port, net.discover[0].ws_port),
            (8545, Some(8546))
        );
        // The Deployment binds the admin port to the pod IP (RPCGATE_ADMIN_LISTEN);
        // the file's own address is loopback, never 0.0.0.0.
        assert_eq!(c.listener.admin_listen.port(), 8580, "{file}");
        assert!(c.listener.admin_listen.ip().is_loopback(), "{file}");
        assert!(c.log.json);
        let anon = c
            .policy
            .anonymous
            .as_ref()
            .expect("anonymous calls are limited, not off");
        assert!(
            anon.limits.requests.is_some() && anon.limits.compute_units.is_some(),
            "{file}"
        );
        assert!(!c.policy.trusted_proxies.is_empty(), "{file}");
        // The DApps' keys, and the validator clients' for the beacon network.
        assert_eq!(c.policy.clients.len(), 2, "{file}");
        assert_eq!(c.redis.is_some(), redis, "{file}");
    }
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

/// A file with three independent mistakes: check-config names all three,
/// one line each with the file and the key path, and exits 2.
#[test]
fn check_config_reports_every_problem_of_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "server:\n  max_batch_len: 0\nnetworks:\n  main:\n    chain_id: 1\n    request_timeout: soon\n    upstreams:\n      - name: a\n        http: http://127.0.0.1:1\n      - name: b\n        http: ftp://x\n",
    )
    .unwrap();
    let (code, stderr) = rpcgate(&["check-config", bad.to_str().unwrap()]);
    assert_eq!(code, 2);
    let file = bad.display().to_string();
    let lines: Vec<&str> = stderr.lines().filter(|l| l.starts_with(&file)).collect();
    for key in [
        "server.max_batch_len: ",
        "networks.main.upstreams[1].http: ",
        "networks.main.request_timeout: ",
    ] {
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with(&format!("{file}: {key}"))),
            "{key} missing:\n{stderr}"
        );
    }
    assert_eq!(lines.len(), 3, "{stderr}");
}

/// Durations take hours and days, as the example config writes them.
#[test]
fn durations_take_hours_and_days() {
    let text = std::fs::read_to_string("config/rpcgate.example.yaml").unwrap();
    assert!(text.contains("shared_ttl: 24h"));
    let c = Config::from_yaml(&text.replace("shared_ttl: 24h", "shared_ttl: 2d")).unwrap();
    assert_eq!(
        c.networks[0].cache.shared_ttl,
        std::time::Duration::from_secs(2 * 86_400)
    );
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

/// Words an operator might type as a key (or copy from an example): a
/// shipped config that holds the hash of one of them ships a guessable key.
const DICTIONARY: &[&str] = &[
    "password",
    "passw0rd",
    "123456",
    "12345678",
    "qwerty",
    "secret",
    "admin",
    "root",
    "test",
    "testing",
    "changeme",
    "letmein",
    "welcome",
    "example",
    "demo",
    "default",
    "key",
    "apikey",
    "api-key",
    "api_key",
    "token",
    "rpcgate",
    "ethereum",
    "mainnet",
    "sepolia",
    "dapp",
    "example-dapp",
    "dapps",
    "client",
    "user",
    "guest",
    "public",
    "private",
    "hello",
    "abc123",
];

/// `text` with each keys file of the Secret's mount (`/etc/rpcgate/keys/<client>`)
/// moved to a stand-in file in `dir`, one placeholder key per client.
fn with_stand_in_keys(text: &str, dir: &std::path::Path) -> String {
    for (client, key) in [
        ("dapps", "a-placeholder-key-0123456789"),
        ("validators", "a-placeholder-validator-key-9876543210"),
    ] {
        std::fs::write(dir.join(client), format!("{key}\n")).unwrap();
    }
    text.replace("/etc/rpcgate/keys/", &format!("{}/", dir.display()))
}

/// Every config we ship: the example, the Kubernetes overlays' files (keys
/// files replaced by stand-ins) and the demo's generated one.
fn shipped_configs(dir: &std::path::Path) -> Vec<(String, String)> {
    let mut configs = Vec::new();
    for file in [
        "config/rpcgate.example.yaml",
        "k8s/base/config/rpcgate.yaml",
        "k8s/overlays/dev/rpcgate.yaml",
        "k8s/overlays/prod/rpcgate.yaml",
    ] {
        let text = std::fs::read_to_string(file).unwrap();
        configs.push((file.to_string(), with_stand_in_keys(&text, dir)));
    }
    let upstreams = [(
        "http://127.0.0.1:8545".to_string(),
        "ws://127.0.0.1:8545".to_string(),
    )];
    let demo =
        rpcgate_fleet::demo_config::demo_yaml(31337, "127.0.0.1:8545".parse().unwrap(), &upstreams);
    configs.push(("rpcgate-demo's config".to_string(), demo));
    let load = rpcgate_fleet::demo_config::load_yaml(
        31337,
        "127.0.0.1:8545".parse().unwrap(),
        &upstreams,
        10_000,
    );
    configs.push(("rpcgate-demo's load-test config".to_string(), load));
    configs
}

#[test]
fn every_shipped_config_limits_anonymous_callers_and_has_no_guessable_key() {
    use sha2::{Digest, Sha256};
    let dir = tempfile::tempdir().unwrap();
    let words: Vec<[u8; 32]> = DICTIONARY
        .iter()
        .map(|w| Sha256::digest(w.as_bytes()).into())
        .collect();
    for (name, text) in shipped_configs(dir.path()) {
        let c = Config::from_yaml(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        let anon = c.policy.anonymous.as_ref();
        assert!(
            anon.is_some_and(|a| a.limits.requests.is_some() && a.limits.compute_units.is_some()),
            "{name}: anonymous callers must be limited (requests and compute units)"
        );
        for client in &c.policy.clients {
            for key in &client.keys {
                if let Some(i) = words.iter().position(|w| *w == key.0) {
                    panic!(
                        "{name}: client {} has the key {:?} (its SHA-256 is in the config)",
                        client.name, DICTIONARY[i]
                    );
                }
            }
        }
        // A debug_ method opened to a client says why, in the comment just above.
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let code = line.split('#').next().unwrap();
            if !(code.contains("allow:") && code.contains("debug_")) {
                continue;
            }
            let comment: String = lines[..i]
                .iter()
                .rev()
                .take_while(|l| l.trim_start().starts_with('#'))
                .copied()
                .collect();
            assert!(
                comment.contains("debug_"),
                "{name}:{}: a debug_ method is opened without a comment saying why",
                i + 1
            );
        }
    }
}
