//! The `policy:` section's loading and its errors, by key path.

use std::time::Duration;

use super::*;
use crate::config::{Config, ConfigError};

const BASE: &str = "networks:\n  dev:\n    chain_id: 1\n    upstreams:\n      - name: a\n        http: http://127.0.0.1:1\n";

fn load(policy: &str) -> Result<Config, ConfigError> {
    Config::from_yaml(&format!("{BASE}policy:\n{policy}"))
}

fn err_path(policy: &str) -> String {
    match load(policy) {
        Err(e) if !e.problems().is_empty() => e.problems()[0].path.clone(),
        other => panic!("expected an invalid config, got {other:?}"),
    }
}

const HASH: &str = "5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8";

#[test]
fn without_a_policy_section_anonymous_callers_get_the_defaults() {
    let c = Config::from_yaml(BASE).unwrap();
    let anonymous = c.policy.anonymous.as_ref().unwrap();
    // Limited, not unlimited: per IP, no aggregate unless asked for.
    assert_eq!(anonymous.limits, DEFAULT_ANONYMOUS_LIMITS);
    assert!(anonymous.limits.requests.is_some() && anonymous.limits.compute_units.is_some());
    assert_eq!(anonymous.aggregate, LimitsConfig::default());
    assert!(c.policy.clients.is_empty());
    assert_eq!(c.policy.redis_fallback, RedisFallback::Open);
    // A policy that leaves the anonymous limits out gets them too; `limits: {}` opts out.
    let c = load("  anonymous:\n    deny: [eth_call]\n").unwrap();
    assert_eq!(c.policy.anonymous.unwrap().limits, DEFAULT_ANONYMOUS_LIMITS);
    let c = load("  anonymous:\n    limits: {}\n").unwrap();
    assert_eq!(c.policy.anonymous.unwrap().limits, LimitsConfig::default());
    let c = load("  anonymous:\n    aggregate_limits:\n      requests_per_second: 100\n").unwrap();
    let aggregate = c.policy.anonymous.unwrap().aggregate;
    assert_eq!(aggregate.requests.unwrap().burst, 100);
    assert_eq!(aggregate.compute_units, None);
}

#[test]
fn trusted_proxies_refuse_the_whole_internet() {
    for wide in [
        "0.0.0.0/0",
        "::/0",
        "10.0.0.0/7",
        "2001::/31",
        "::ffff:0.0.0.0/96",
    ] {
        assert_eq!(
            err_path(&format!("  trusted_proxies: [10.0.0.1, '{wide}']\n")),
            "policy.trusted_proxies[1]",
            "{wide}"
        );
    }
    let e = load("  trusted_proxies: [0.0.0.0/0]\n").unwrap_err();
    assert!(e.to_string().contains("too wide"), "{e}");
    load("  trusted_proxies: [10.0.0.0/8, '2001:db8::/32', 192.0.2.7]\n").unwrap();
}

#[test]
fn a_full_policy_loads() {
    std::env::set_var(
        "RPCGATE_TEST_KEYS_A",
        "k-aaaaaaaaaaaaaaaa, k-bbbbbbbbbbbbbbbb",
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("keys");
    std::fs::write(&file, "# rotated 2024\nk-cccccccccccccccc\n\n").unwrap();
    let c = load(&format!(
        "  trusted_proxies: [10.0.0.0/8, '::1']\n  redis_fallback: closed\n  costs:\n    eth_getLogs: 100\n    debug_*: 500\n  anonymous:\n    limits:\n      requests_per_second: 0.5\n  clients:\n    dapp:\n      key_sha256: [{HASH}]\n      keys_env: RPCGATE_TEST_KEYS_A\n      keys_file: {}\n      allow: ['@default', debug_traceTransaction]\n      deny: [eth_sendRawTransaction]\n      limits:\n        requests_per_second: 10\n        burst: 20\n        compute_units_per_second: 300\n",
        file.display()
    ))
    .unwrap();
    let p = &c.policy;
    assert_eq!(p.redis_fallback, RedisFallback::Closed);
    let has =
        |i: usize, ip: &str| p.trusted_proxies[i].contains(&canonical_ip(ip.parse().unwrap()));
    assert!(has(0, "10.1.2.3"));
    assert!(has(0, "::ffff:10.1.2.3"));
    assert!(!has(0, "11.0.0.1"));
    assert!(has(1, "::1"));
    assert!(!has(1, "::2"));
    let dapp = &p.clients[0];
    assert_eq!(dapp.keys.len(), 4);
    assert!(dapp.keys.contains(&KeyDigest::of("password")));
    assert!(dapp.keys.contains(&KeyDigest::of("k-bbbbbbbbbbbbbbbb")));
    assert!(dapp.keys.contains(&KeyDigest::of("k-cccccccccccccccc")));
    let r = dapp.rules.limits.requests.unwrap();
    assert_eq!((r.per_second, r.burst), (10.0, 20));
    assert_eq!(dapp.rules.limits.compute_units.unwrap().burst, 300);
    let anon = p.anonymous.as_ref().unwrap();
    assert_eq!(anon.limits.requests.unwrap().burst, 1);
    assert_eq!(
        anon.limits.requests.unwrap().interval(),
        Duration::from_secs(2)
    );
    // A dumped config shows no key material.
    let dump = format!("{c:?}");
    assert!(!dump.contains(HASH) && !dump.contains("k-aaaa"), "{dump}");
}

#[test]
fn bad_policies_name_their_path() {
    assert_eq!(
        err_path("  trusted_proxies: [10.0.0.0/33]\n"),
        "policy.trusted_proxies[0]"
    );
    assert_eq!(
        err_path("  redis_fallback: maybe\n"),
        "policy.redis_fallback"
    );
    let key = "a".repeat(64);
    assert_eq!(
        err_path(&format!(
            "  clients:\n    dapp:\n      key_sha256: [{key}]\n      allowed_origins: [\"https://*.dapp.test\", \"dapp.test\"]\n"
        )),
        "policy.clients.dapp.allowed_origins[1]"
    );
    assert_eq!(
        err_path("  costs:\n    'eth getLogs': 3\n"),
        "policy.costs.eth getLogs"
    );
    assert_eq!(
        err_path("  clients:\n    dapp:\n      allow: [eth_*]\n"),
        "policy.clients.dapp"
    );
    assert_eq!(
        err_path("  clients:\n    dapp:\n      key_sha256: [abc]\n"),
        "policy.clients.dapp.key_sha256[0]"
    );
    assert_eq!(
        err_path(&format!(
            "  clients:\n    dapp:\n      key_sha256: [{HASH}]\n      deny: ['eth-x']\n"
        )),
        "policy.clients.dapp.deny[0]"
    );
    assert_eq!(
        err_path(&format!(
            "  clients:\n    a:\n      key_sha256: [{HASH}]\n    b:\n      key_sha256: [{HASH}]\n"
        )),
        "policy.clients.b"
    );
    assert_eq!(
        err_path("  clients:\n    dapp:\n      keys_env: RPCGATE_TEST_NO_SUCH_VAR\n"),
        "policy.clients.dapp.keys_env"
    );
    std::env::set_var("RPCGATE_TEST_SHORT_KEY", "short");
    let e = load("  clients:\n    dapp:\n      keys_env: RPCGATE_TEST_SHORT_KEY\n").unwrap_err();
    assert!(!e.to_string().contains("short\""), "{e}");
    assert_eq!(
        err_path("  anonymous:\n    limits:\n      burst: 5\n"),
        "policy.anonymous.limits.burst"
    );
    assert_eq!(
        err_path("  anonymous:\n    limits:\n      requests_per_second: 0\n"),
        "policy.anonymous.limits.requests_per_second"
    );
    assert_eq!(
        err_path("  anonymous:\n    limit: {}\n"),
        "policy.anonymous.limit"
    );
    assert_eq!(
        err_path("  anonymous:\n    aggregate_limits:\n      compute_burst: 5\n"),
        "policy.anonymous.aggregate_limits.compute_burst"
    );
    assert_eq!(
        err_path(&format!(
            "  clients:\n    anonymous:\n      key_sha256: [{HASH}]\n"
        )),
        "policy.clients.anonymous"
    );
}

#[test]
fn anonymous_can_be_turned_off() {
    let c = load("  anonymous:\n    enabled: false\n").unwrap();
    assert!(c.policy.anonymous.is_none());
}

#[test]
fn trusted_proxies_are_ranges_and_mapped_ipv6_ranges_are_ipv4() {
    let c =
        load("  trusted_proxies: ['::ffff:10.0.0.0/104', 192.0.2.7, '2001:db8::/32']\n").unwrap();
    let p = &c.policy;
    let has =
        |i: usize, ip: &str| p.trusted_proxies[i].contains(&canonical_ip(ip.parse().unwrap()));
    assert!(has(0, "10.9.9.9") && has(0, "::ffff:10.9.9.9") && !has(0, "11.0.0.1"));
    assert!(has(1, "192.0.2.7") && !has(1, "192.0.2.8"));
    assert!(has(2, "2001:db8:1::1") && !has(2, "2001:db9::1"));
    assert_eq!(
        err_path("  trusted_proxies: ['10.0.0.0/8', nope]\n"),
        "policy.trusted_proxies[1]"
    );
}

/// Every mistake of the section at once.
#[test]
fn every_policy_problem_is_reported() {
    let e = load(
        "  redis_fallback: maybe\n  costs:\n    'eth-x': 3\n  anonymous:\n    deny: ['eth call']\n",
    )
    .unwrap_err();
    let paths: Vec<&str> = e.problems().iter().map(|p| p.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "policy.redis_fallback",
            "policy.costs.eth-x",
            "policy.anonymous.deny[0]"
        ]
    );
}
