//! Loading whole files: defaults, key paths of errors, and every error of
//! a file at once. Each section's own cases live beside it.

use crate::config::Config;

/// One network, two upstreams: the base most cases edit.
pub(super) const GOOD: &str = r#"
listen: 127.0.0.1:8545
networks:
  mainnet:
    chain_id: 1
    default: true
    max_lag_blocks: 2
    upstreams:
      - name: geth-0
        http: http://127.0.0.1:9545
        ws: ws://127.0.0.1:9545
      - name: geth-1
        http: http://127.0.0.1:9546
"#;

/// The key path of the first problem of a file.
pub(super) fn err_path(yaml: &str) -> String {
    match Config::from_yaml(yaml) {
        Err(e) if !e.problems().is_empty() => e.problems()[0].path.clone(),
        other => panic!("expected an invalid config, got {other:?}"),
    }
}

/// Every problem of a file, by key path.
fn err_paths(yaml: &str) -> Vec<String> {
    match Config::from_yaml(yaml) {
        Err(e) => e.problems().iter().map(|p| p.path.clone()).collect(),
        Ok(_) => panic!("expected an invalid config"),
    }
}

#[test]
fn the_documented_shape_loads() {
    let c = Config::from_yaml(GOOD).unwrap();
    let n = c.network("mainnet").unwrap();
    assert_eq!(n.chain_id, 1);
    assert!(n.default);
    assert_eq!(n.upstreams.len(), 2);
    assert_eq!(n.upstreams[0].ws.as_ref().unwrap().port_u16(), Some(9545));
    assert_eq!(c.server.max_batch_len, 100);
    assert_eq!(c.server.max_body_bytes, 5 * 1024 * 1024);
    assert_eq!(c.server.max_subscriptions_per_connection, 100);
    assert_eq!(c.server.max_topics_per_connection, 16);
    assert_eq!(c.server.max_upstream_subscriptions, 1000);
    assert_eq!(c.server.ws_max_queued_bytes, 16 * 1024 * 1024);
}

#[test]
fn unknown_keys_name_their_path() {
    let y = GOOD.replace("max_lag_blocks", "max_lag_block");
    assert_eq!(err_path(&y), "networks.mainnet.max_lag_block");
    let y = GOOD.replace("ws: ws", "wss_url: ws");
    assert_eq!(err_path(&y), "networks.mainnet.upstreams[0].wss_url");
}

#[test]
fn bad_values_name_their_path() {
    assert_eq!(
        err_path(&GOOD.replace("http://127.0.0.1:9546", "ftp://x")),
        "networks.mainnet.upstreams[1].http"
    );
    assert_eq!(
        err_path(&GOOD.replace("http://127.0.0.1:9546", "not a url")),
        "networks.mainnet.upstreams[1].http"
    );
    assert_eq!(
        err_path(&GOOD.replace("geth-1", "geth-0")),
        "networks.mainnet.upstreams[1].name"
    );
    assert_eq!(
        err_path(&GOOD.replace("chain_id: 1", "chain_id: one")),
        "networks.mainnet.chain_id"
    );
    assert_eq!(
        err_path(&GOOD.replace("127.0.0.1:8545", "nowhere")),
        "listen"
    );
    let empty = "networks:\n  mainnet:\n    chain_id: 1\n    upstreams: []\n";
    assert_eq!(err_path(empty), "networks.mainnet.upstreams");
    assert_eq!(err_path("listen: 127.0.0.1:1\n"), "networks");
}

#[test]
fn redis_url_is_checked() {
    let c = Config::from_yaml(&format!("{GOOD}redis:\n  url: redis://127.0.0.1:6379\n")).unwrap();
    assert_eq!(c.redis.unwrap().url, "redis://127.0.0.1:6379");
    assert_eq!(
        err_path(&format!("{GOOD}redis:\n  url: http://x\n")),
        "redis.url"
    );
    assert_eq!(
        err_path(&format!("{GOOD}redis:\n  host: x\n")),
        "redis.host"
    );
}

#[test]
fn redis_secrets_never_come_from_the_url_nor_reach_errors() {
    // A password in the URL is refused, and the error does not quote it.
    let e = Config::from_yaml(&format!(
        "{GOOD}redis:\n  url: rediss://app:hunter2-secret@127.0.0.1:6380/2\n"
    ))
    .unwrap_err()
    .to_string();
    assert!(e.contains("redis.url"), "{e}");
    assert!(!e.contains("hunter2-secret"), "{e}");
    assert!(e.contains("app:***"), "{e}");
    // From a file, TLS with a CA file, a prefix.
    let dir = std::env::temp_dir().join(format!("rpcgate-redis-cfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (pw, ca) = (dir.join("pw"), dir.join("ca.pem"));
    std::fs::write(&pw, "s3cret-from-file\n").unwrap();
    std::fs::write(&ca, "-----BEGIN CERTIFICATE-----\n").unwrap();
    let c = Config::from_yaml(&format!(
        "{GOOD}redis:\n  url: rediss://redis.internal:6380/3\n  username: app\n  password_file: {}\n  ca_file: {}\n  prefix: prod-eu\n  breaker_failures: 3\n  breaker_cooldown: 5s\n",
        pw.display(),
        ca.display()
    ))
    .unwrap();
    let r = c.redis.unwrap();
    assert!(r.tls);
    assert_eq!((r.host.as_str(), r.port, r.db), ("redis.internal", 6380, 3));
    assert_eq!(r.password.as_ref().unwrap().expose(), "s3cret-from-file");
    assert!(
        !format!("{r:?}").contains("s3cret"),
        "Debug shows the secret"
    );
    assert_eq!(r.prefix, "prod-eu");
    assert_eq!(r.breaker_failures, 3);
    // A user without a password, a CA without TLS, a missing variable, a bad prefix.
    for (extra, path) in [
        ("  username: app\n", "redis.username"),
        (
            "  password_env: RPCGATE_TEST_NO_SUCH_REDIS_PW\n",
            "redis.password_env",
        ),
        ("  prefix: 'a b'\n", "redis.prefix"),
        ("  breaker_failures: 0\n", "redis.breaker_failures"),
    ] {
        let yaml = format!("{GOOD}redis:\n  url: redis://127.0.0.1:6379\n{extra}");
        assert_eq!(err_path(&yaml), path, "{extra}");
    }
    let yaml = format!(
        "{GOOD}redis:\n  url: redis://127.0.0.1:6379\n  ca_file: {}\n",
        ca.display()
    );
    assert_eq!(err_path(&yaml), "redis.ca_file");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn only_one_default() {
    let two = format!(
        "{GOOD}  goerli:\n    chain_id: 5\n    default: true\n    upstreams:\n      - name: a\n        http: http://127.0.0.1:1\n"
    );
    assert_eq!(err_path(&two), "networks.mainnet.default");
}

/// Three independent mistakes in one file are all reported, each with its
/// key path, section by section.
#[test]
fn every_problem_of_a_file_is_reported_at_once() {
    let y = GOOD.replace("http://127.0.0.1:9546", "ftp://x").replace(
        "max_lag_blocks: 2",
        "max_lag_blocks: 2\n    request_timeout: 0s",
    ) + "server:\n  max_batch_len: 0\nlog:\n  format: xml\n";
    assert_eq!(
        err_paths(&y),
        [
            "server.max_batch_len",
            "networks.mainnet.upstreams[1].http",
            "networks.mainnet.request_timeout",
            "log.format",
        ]
    );
    let e = Config::from_yaml(&y).unwrap_err().to_string();
    assert_eq!(e.lines().count(), 4, "{e}");
    assert!(
        e.starts_with("server.max_batch_len: 0 is out of range (1 to 100000)\n"),
        "{e}"
    );
}

#[test]
fn durations_take_hours_and_days() {
    use std::time::Duration;
    let y = GOOD.replace(
        "    upstreams:",
        "    cache:\n      shared_ttl: 2d\n    read_your_writes:\n      ttl: 1h\n    upstreams:",
    );
    let c = Config::from_yaml(&y).unwrap();
    let n = c.network("mainnet").unwrap();
    assert_eq!(n.cache.shared_ttl, Duration::from_secs(2 * 86_400));
    assert_eq!(n.read_your_writes.ttl, Duration::from_secs(3600));
    // The range checks stay as they were.
    let y = GOOD.replace(
        "    upstreams:",
        "    read_your_writes:\n      ttl: 2h\n    upstreams:",
    );
    assert_eq!(err_path(&y), "networks.mainnet.read_your_writes.ttl");
}
