//! Which keys only a restart applies, and which of them a new config changes.
//!
//! The listeners read [`super::ListenerConfig`] once, when they bind, and the
//! log subscriber is installed once with its format; everything else is
//! read from the routes a reload publishes. A reload cannot re-bind a
//! socket under open connections, so it keeps the old values of these keys
//! and says which it kept: the gateway logs a warning naming each key and
//! counts it in `rpcgate_reload_restart_required_total{key}`. README.md
//! lists the same keys.

use super::Config;

/// A key that only a restart applies, and whether two configs differ in it.
type RestartOnly = (&'static str, fn(&Config, &Config) -> bool);

/// Every restart-only key, by its YAML path.
const RESTART_ONLY: [RestartOnly; 18] = [
    ("listen", |a, b| a.listener.listen != b.listener.listen),
    ("admin_listen", |a, b| {
        a.listener.admin_listen != b.listener.admin_listen
    }),
    ("server.max_connections", |a, b| {
        a.listener.max_connections != b.listener.max_connections
    }),
    ("server.admin_max_connections", |a, b| {
        a.listener.admin_max_connections != b.listener.admin_max_connections
    }),
    // Bodies follow a reload; hyper's header read timeout is set at bind.
    ("server.body_read_timeout", |a, b| {
        a.listener.header_read_timeout != b.listener.header_read_timeout
    }),
    ("server.first_request_timeout", |a, b| {
        a.listener.first_request_timeout != b.listener.first_request_timeout
    }),
    ("server.idle_timeout", |a, b| {
        a.listener.idle_timeout != b.listener.idle_timeout
    }),
    ("server.write_timeout", |a, b| {
        a.listener.write_timeout != b.listener.write_timeout
    }),
    ("server.tcp_keepalive", |a, b| {
        a.listener.tcp_keepalive != b.listener.tcp_keepalive
    }),
    ("server.http2_max_concurrent_streams", |a, b| {
        a.listener.http2_max_concurrent_streams != b.listener.http2_max_concurrent_streams
    }),
    ("server.http2_keepalive_interval", |a, b| {
        a.listener.http2_keepalive_interval != b.listener.http2_keepalive_interval
    }),
    ("server.http2_keepalive_timeout", |a, b| {
        a.listener.http2_keepalive_timeout != b.listener.http2_keepalive_timeout
    }),
    ("server.max_header_list_bytes", |a, b| {
        a.listener.max_header_list_bytes != b.listener.max_header_list_bytes
    }),
    ("server.tls", |a, b| a.listener.tls != b.listener.tls),
    // The request threads and their sockets exist from start to exit.
    ("server.runtime", |a, b| {
        a.listener.runtime != b.listener.runtime
    }),
    ("log.format", |a, b| a.log.json != b.log.json),
    // One connection per process, shared by the policy and every network.
    ("redis", |a, b| a.redis != b.redis),
    // Beacon networks are started once with their listeners and node loops
    // (`paths` and `ready_required` excepted: a reload applies them).
    ("networks.<beacon network>", |a, b| {
        let restart = |c: &Config| {
            c.beacon
                .iter()
                .map(|n| n.restart_part())
                .collect::<Vec<_>>()
        };
        restart(a) != restart(b)
    }),
];

/// The YAML paths of the keys that only a restart applies, in a fixed order
/// (the gateway keeps one counter per entry).
pub const RESTART_ONLY_KEYS: [&str; RESTART_ONLY.len()] = {
    let mut keys = [""; RESTART_ONLY.len()];
    let mut i = 0;
    while i < keys.len() {
        keys[i] = RESTART_ONLY[i].0;
        i += 1;
    }
    keys
};

impl Config {
    /// The keys (YAML paths, from [`RESTART_ONLY_KEYS`]) whose value in
    /// `new` differs from this config's while only a restart applies them.
    pub fn restart_only_changes(&self, new: &Config) -> Vec<&'static str> {
        RESTART_ONLY
            .iter()
            .filter(|(_, differs)| differs(self, new))
            .map(|(key, _)| *key)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "networks:\n  m:\n    chain_id: 1\n    upstreams:\n      - name: a\n        http: http://127.0.0.1:1\n";

    fn load(top: &str) -> Config {
        Config::from_yaml(&format!("{top}{BASE}")).unwrap()
    }

    #[test]
    fn each_restart_only_key_is_named_when_it_changes_and_only_then() {
        let base = load("");
        let changed = [
            ("listen", "listen: 127.0.0.1:9\n"),
            ("admin_listen", "admin_listen: 127.0.0.1:9\n"),
            ("server.max_connections", "server: { max_connections: 7 }\n"),
            (
                "server.admin_max_connections",
                "server: { admin_max_connections: 7 }\n",
            ),
            (
                "server.body_read_timeout",
                "server: { body_read_timeout: 7s }\n",
            ),
            (
                "server.first_request_timeout",
                "server: { first_request_timeout: 7s }\n",
            ),
            ("server.idle_timeout", "server: { idle_timeout: 7s }\n"),
            ("server.write_timeout", "server: { write_timeout: 7s }\n"),
            ("server.tcp_keepalive", "server: { tcp_keepalive: 7s }\n"),
            (
                "server.http2_max_concurrent_streams",
                "server: { http2_max_concurrent_streams: 7 }\n",
            ),
            (
                "server.http2_keepalive_interval",
                "server: { http2_keepalive_interval: 7s }\n",
            ),
            (
                "server.http2_keepalive_timeout",
                "server: { http2_keepalive_timeout: 7s }\n",
            ),
            (
                "server.max_header_list_bytes",
                "server: { max_header_list_bytes: 9000 }\n",
            ),
            (
                "server.tls",
                "server: { tls: { cert_file: /c, key_file: /k } }\n",
            ),
            ("log.format", "log: { format: json }\n"),
            ("server.runtime", "server: { runtime: per_core }\n"),
            ("redis", "redis: { url: redis://127.0.0.1:1 }\n"),
            (
                "networks.<beacon network>",
                // Indented: a network added under BASE's `networks:`.
                "  b:\n    kind: beacon\n    upstreams: [{ name: n, http: http://127.0.0.1:2 }]\n",
            ),
        ];
        assert_eq!(changed.len(), RESTART_ONLY_KEYS.len());
        for (key, top) in changed {
            let new = match top.starts_with("  ") {
                true => Config::from_yaml(&format!("{BASE}{top}")).unwrap(),
                false => load(top),
            };
            assert_eq!(base.restart_only_changes(&new), [key], "{top}");
            assert_eq!(new.restart_only_changes(&base), [key], "{top}");
        }
        // Reloadable keys name nothing, even when they change.
        let new = load("server: { max_body_bytes: 1000, cors: { allowed_origins: [\"https://a.test\"] } }\nlog: { level: debug }\n");
        assert!(base.restart_only_changes(&new).is_empty());
        assert!(base.restart_only_changes(&base).is_empty());
        // A beacon network's `paths` follow a reload.
        let beacon =
            "  b:\n    kind: beacon\n    upstreams: [{ name: n, http: http://127.0.0.1:2 }]\n";
        let with = Config::from_yaml(&format!("{BASE}{beacon}")).unwrap();
        let paths = "    paths: { allow: [/eth/v1/debug/], deny: [/eth/v1/node/peers] }\n";
        let new = Config::from_yaml(&format!("{BASE}{beacon}{paths}")).unwrap();
        assert_eq!(new.beacon[0].paths.allow, ["/eth/v1/debug/"]);
        assert!(with.restart_only_changes(&new).is_empty());
    }
}
