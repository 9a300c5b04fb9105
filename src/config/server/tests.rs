//! `listen`, `admin_listen` and `server:`: defaults, bounds, CORS and
//! compression, each error by its key path.

use crate::config::tests::{err_path, GOOD};
use crate::config::Config;

#[test]
fn the_websocket_bounds_are_checked() {
    for key in [
        "max_topics_per_connection",
        "max_upstream_subscriptions",
        "ws_max_queued_bytes",
    ] {
        let y = format!("server:\n  {key}: 0\n{GOOD}");
        assert_eq!(err_path(&y), format!("server.{key}"));
    }
    let y = format!("server:\n  ws_max_queued_bytes: 65536\n  max_topics_per_connection: 2\n  max_upstream_subscriptions: 5\n{GOOD}");
    let c = Config::from_yaml(&y).unwrap();
    assert_eq!(c.server.ws_max_queued_bytes, 65536);
    assert_eq!(c.server.max_topics_per_connection, 2);
    assert_eq!(c.server.max_upstream_subscriptions, 5);
}

#[test]
fn the_runtime_layout_is_one_of_two_and_restart_only() {
    use crate::config::RuntimeLayout;
    let c = Config::from_yaml(GOOD).unwrap();
    assert_eq!(c.listener.runtime, RuntimeLayout::Shared);
    let y = format!("server:\n  runtime: per_core\n{GOOD}");
    let per_core = Config::from_yaml(&y).unwrap();
    assert_eq!(per_core.listener.runtime, RuntimeLayout::PerCore);
    assert_eq!(c.restart_only_changes(&per_core), ["server.runtime"]);
    let y = format!("server:\n  runtime: threads\n{GOOD}");
    assert_eq!(err_path(&y), "server.runtime");
}

#[test]
fn the_subscription_cap_is_checked() {
    let y = format!("server:\n  max_subscriptions_per_connection: 0\n{GOOD}");
    assert_eq!(err_path(&y), "server.max_subscriptions_per_connection");
    let y = format!("server:\n  max_subscriptions_per_connection: 3\n{GOOD}");
    let c = Config::from_yaml(&y).unwrap();
    assert_eq!(c.server.max_subscriptions_per_connection, 3);
}

#[test]
fn cors_origins() {
    use std::time::Duration;
    let with = |cors: &str| format!("server:\n  cors:\n{cors}{GOOD}");
    let c = Config::from_yaml(GOOD).unwrap();
    assert_eq!(c.server.cors.allowed_origins, vec!["*".to_string()]);
    assert_eq!(c.server.cors.max_age, Duration::from_secs(600));
    let c = Config::from_yaml(&with(
        "    allowed_origins: [\"https://*.example.com\", \"http://127.0.0.1:3000\"]\n    max_age: 60s\n",
    ))
    .unwrap();
    assert_eq!(c.server.cors.allowed_origins.len(), 2);
    assert_eq!(c.server.cors.max_age, Duration::from_secs(60));
    assert_eq!(
        err_path(&with("    allowed_origins: [\"*\", \"https://a.com/\"]\n")),
        "server.cors.allowed_origins[1]"
    );
    assert_eq!(
        err_path(&with("    allowed_origins: [\"example.com\"]\n")),
        "server.cors.allowed_origins[0]"
    );
    assert_eq!(
        err_path(&with("    max_age: 90000s\n")),
        "server.cors.max_age"
    );
    assert_eq!(err_path(&with("    origins: []\n")), "server.cors.origins");
}

#[test]
fn compression_settings() {
    use crate::config::ContentCoding::{Br, Deflate, Gzip, Zstd};
    let with = |c: &str| format!("server:\n  compression:\n{c}{GOOD}");
    let c = Config::from_yaml(GOOD).unwrap().server.compression;
    assert!(c.enabled);
    assert_eq!(c.min_bytes, 1024);
    assert_eq!(c.algorithms, vec![Zstd, Br, Gzip]);
    assert_eq!(c.request_encodings, vec![Gzip, Deflate, Br, Zstd]);
    let c = Config::from_yaml(&with(
        "    enabled: false\n    min_bytes: 0\n    algorithms: [gzip, BR]\n    request_encodings: [gzip]\n",
    ))
    .unwrap()
    .server
    .compression;
    assert!(!c.enabled);
    assert_eq!(c.min_bytes, 0);
    assert_eq!(c.algorithms, vec![Gzip, Br]);
    assert_eq!(c.request_encodings, vec![Gzip]);
    for (bad, path) in [
        ("    algorithms: []\n", "server.compression.algorithms"),
        (
            "    algorithms: [gzip, lz4]\n",
            "server.compression.algorithms[1]",
        ),
        (
            "    algorithms: [deflate]\n",
            "server.compression.algorithms[0]",
        ),
        (
            "    algorithms: [br, br]\n",
            "server.compression.algorithms[1]",
        ),
        (
            "    request_encodings: [compress]\n",
            "server.compression.request_encodings[0]",
        ),
        ("    min_bytes: -1\n", "server.compression.min_bytes"),
        ("    level: 9\n", "server.compression.level"),
    ] {
        assert_eq!(err_path(&with(bad)), path, "{bad}");
    }
}

#[test]
fn the_default_admin_port_is_clear_of_prometheus() {
    let c = Config::from_yaml(GOOD).unwrap();
    assert_eq!(c.listener.admin_listen.port(), 8580);
}
