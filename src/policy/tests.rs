//! The policy as a whole, on a clock the tests move by hand: exact, no sleeps.

use std::net::IpAddr;
use std::time::Duration;

use governor::clock::FakeRelativeClock;
use http::{HeaderMap, HeaderValue};

use super::{ClientPolicy, Refusal};
use crate::config::{Config, KeyDigest};
use crate::metrics::Metrics;

const KEY: &str = "dapp-key-0123456789";

fn policy(section: &str) -> (ClientPolicy<FakeRelativeClock>, FakeRelativeClock) {
    let yaml = format!(
        "networks:\n  dev:\n    chain_id: 1\n    upstreams:\n      - name: a\n        http: http://127.0.0.1:1\npolicy:\n{section}"
    );
    let config = Config::from_yaml(&yaml).unwrap();
    let clock = FakeRelativeClock::default();
    (
        ClientPolicy::with_clock(&config.policy, None, clock.clone(), &Metrics::new().policy),
        clock,
    )
}

fn hex(key: &str) -> String {
    KeyDigest::of(key)
        .0
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn dapp(limits: &str) -> String {
    format!(
        "  clients:\n    dapp:\n      key_sha256: [{}]\n      allow: [eth_*, debug_traceTransaction]\n      deny: [eth_sendRawTransaction]\n{limits}",
        hex(KEY)
    )
}

const IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));

fn header(name: &'static str, value: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(name, HeaderValue::from_str(value).unwrap());
    h
}

#[test]
fn keys_in_each_place_name_the_client() {
    let (p, _) = policy(&dapp(""));
    let bearer = header("authorization", &format!("Bearer {KEY}"));
    assert_eq!(p.identify(IP, &bearer, None).unwrap().name(), "dapp");
    let x_api_key = header("x-api-key", KEY);
    assert_eq!(p.identify(IP, &x_api_key, None).unwrap().name(), "dapp");
    assert_eq!(
        p.identify(IP, &HeaderMap::new(), Some(KEY)).unwrap().name(),
        "dapp"
    );
    assert_eq!(
        p.identify(IP, &HeaderMap::new(), None).unwrap().name(),
        "anonymous"
    );
    let wrong = header("x-api-key", "dapp-key-0123456780");
    assert_eq!(
        p.identify(IP, &wrong, None).err(),
        Some(Refusal::UnknownKey)
    );
    assert_eq!(
        p.identify(IP, &HeaderMap::new(), Some("nope")).err(),
        Some(Refusal::UnknownKey)
    );
    let (p, _) = policy(&format!("  anonymous:\n    enabled: false\n{}", dapp("")));
    assert_eq!(
        p.identify(IP, &HeaderMap::new(), None).err(),
        Some(Refusal::KeyRequired)
    );
}

#[tokio::test]
async fn method_rules_per_tier() {
    let (p, _) = policy(&dapp(""));
    let dapp = p.identify(IP, &header("x-api-key", KEY), None).unwrap();
    let anon = p.identify(IP, &HeaderMap::new(), None).unwrap();
    assert!(p.admit(&dapp, "debug_traceTransaction").await.is_ok());
    assert!(p.admit(&dapp, "eth_whatever").await.is_ok());
    assert_eq!(
        p.admit(&dapp, "eth_sendRawTransaction").await,
        Err(Refusal::MethodBlocked("eth_sendRawTransaction".into()))
    );
    assert!(p.admit(&dapp, "net_version").await.is_err());
    assert!(p.admit(&anon, "eth_sendRawTransaction").await.is_ok());
    assert!(p.admit(&anon, "debug_traceTransaction").await.is_err());
    assert!(p.admit(&anon, "anvil_mine").await.is_err());
}

#[tokio::test]
async fn burst_then_refill() {
    let (p, clock) = policy(&dapp(
        "      limits:\n        requests_per_second: 1\n        burst: 3\n",
    ));
    let dapp = p.identify(IP, &header("x-api-key", KEY), None).unwrap();
    for _ in 0..3 {
        p.admit(&dapp, "eth_call").await.unwrap();
    }
    assert_eq!(
        p.admit(&dapp, "eth_call").await,
        Err(Refusal::Limited {
            retry_after: Duration::from_secs(1)
        })
    );
    clock.advance(Duration::from_millis(999));
    assert!(p.admit(&dapp, "eth_call").await.is_err());
    clock.advance(Duration::from_millis(1));
    p.admit(&dapp, "eth_call").await.unwrap();
    assert!(p.admit(&dapp, "eth_call").await.is_err());
    // A blocked method costs budget too: with none left it is refused as limited.
    assert!(matches!(
        p.admit(&dapp, "net_version").await,
        Err(Refusal::Limited { .. })
    ));
    clock.advance(Duration::from_secs(2));
    p.admit(&dapp, "eth_call").await.unwrap();
    p.admit(&dapp, "eth_call").await.unwrap();
    assert!(p.admit(&dapp, "eth_call").await.is_err());
}

#[tokio::test]
async fn a_batch_is_charged_the_sum_of_its_costs() {
    // 100 units of burst, 10 per second; eth_getLogs costs 75, eth_chainId 1.
    let (p, clock) = policy(&dapp(
        "      limits:\n        compute_units_per_second: 10\n        compute_burst: 100\n",
    ));
    let dapp = p.identify(IP, &header("x-api-key", KEY), None).unwrap();
    let batch = [
        "eth_getLogs",
        "eth_chainId",
        "eth_getLogs",
        "eth_chainId",
        "eth_call",
    ];
    let mut verdicts = Vec::new();
    for m in batch {
        verdicts.push(p.admit(&dapp, m).await.is_ok());
    }
    // 75 + 1 pass, the second eth_getLogs (75 more) does not, a cheap call
    // still fits, and eth_call (25) no longer does: 75 + 1 + 1 = 77.
    assert_eq!(verdicts, [true, true, false, true, false]);
    clock.advance(Duration::from_millis(2300));
    // 23 units came back: 77 - 23 = 54 used, so 46 are free.
    p.admit(&dapp, "eth_call").await.unwrap();
    p.admit(&dapp, "eth_call").await.unwrap_err();
    assert!(matches!(
        p.admit(&dapp, "debug_traceTransaction").await,
        Err(Refusal::TooCostly { cost: 300 })
    ));
}

#[tokio::test]
async fn anonymous_budgets_are_per_ip() {
    let (p, _) =
        policy("  anonymous:\n    limits:\n      requests_per_second: 0.001\n      burst: 2\n");
    let a = p.identify(IP, &HeaderMap::new(), None).unwrap();
    let b = p
        .identify("192.0.2.99".parse().unwrap(), &HeaderMap::new(), None)
        .unwrap();
    p.admit(&a, "eth_chainId").await.unwrap();
    p.admit(&a, "eth_chainId").await.unwrap();
    assert!(matches!(
        p.admit(&a, "eth_chainId").await,
        Err(Refusal::Limited { .. })
    ));
    p.admit(&b, "eth_chainId").await.unwrap();
}

#[test]
fn forwarded_for_only_from_trusted_proxies() {
    let (p, _) = policy("  trusted_proxies: [10.0.0.0/8]\n");
    let h = header("x-forwarded-for", "203.0.113.5");
    let via_proxy = p.identify("10.0.0.1".parse().unwrap(), &h, None).unwrap();
    assert_eq!(via_proxy.ip(), "203.0.113.5".parse::<IpAddr>().unwrap());
    let direct = p.identify(IP, &h, None).unwrap();
    assert_eq!(direct.ip(), IP);
}

#[tokio::test]
async fn refused_calls_cost_budget_too() {
    let (p, _) = policy(&dapp(
        "      limits:\n        requests_per_second: 0.001\n        burst: 3\n",
    ));
    let dapp = p.identify(IP, &header("x-api-key", KEY), None).unwrap();
    // Blocked methods and garbage spend the same budget as calls.
    assert!(matches!(
        p.admit(&dapp, "net_version").await,
        Err(Refusal::MethodBlocked(_))
    ));
    p.charge_refused(&dapp).await.unwrap();
    p.admit(&dapp, "eth_chainId").await.unwrap();
    assert!(matches!(
        p.admit(&dapp, "net_version").await,
        Err(Refusal::Limited { .. })
    ));
    assert!(matches!(
        p.charge_refused(&dapp).await,
        Err(Refusal::Limited { .. })
    ));
}

#[tokio::test]
async fn the_aggregate_budget_caps_all_anonymous_ips_together() {
    let (p, _) = policy(
        "  anonymous:\n    limits:\n      requests_per_second: 0.001\n      burst: 2\n    aggregate_limits:\n      requests_per_second: 0.001\n      burst: 3\n",
    );
    let caller = |last: u8| {
        p.identify(
            IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, last)),
            &HeaderMap::new(),
            None,
        )
        .unwrap()
    };
    let (a, b, c) = (caller(1), caller(2), caller(3));
    p.admit(&a, "eth_chainId").await.unwrap();
    p.admit(&b, "eth_chainId").await.unwrap();
    p.admit(&c, "eth_chainId").await.unwrap();
    // Each IP has budget left; all of them together have none.
    for who in [&a, &b, &c] {
        assert!(matches!(
            p.admit(who, "eth_chainId").await,
            Err(Refusal::Limited { .. })
        ));
    }
    // A named client is not in the anonymous aggregate.
    let (p, _) = policy(&format!(
        "  anonymous:\n    aggregate_limits:\n      requests_per_second: 0.001\n      burst: 1\n{}",
        dapp("")
    ));
    let dapp = p.identify(IP, &header("x-api-key", KEY), None).unwrap();
    for _ in 0..5 {
        p.admit(&dapp, "eth_chainId").await.unwrap();
    }
}

#[tokio::test]
async fn heavy_arguments_cost_more() {
    let (p, _) = policy(&dapp(
        "      limits:\n        compute_units_per_second: 0.001\n        compute_burst: 150\n",
    ));
    let dapp = p.identify(IP, &header("x-api-key", KEY), None).unwrap();
    let heavy =
        serde_json::value::RawValue::from_string(r#"[{"gas":"0x2faf080"},"latest"]"#.into())
            .unwrap();
    // 125 units of 150: one heavy call, then a plain one (25) empties it.
    p.admit_call(&dapp, "eth_call", Some(&heavy)).await.unwrap();
    p.admit(&dapp, "eth_call").await.unwrap();
    assert!(matches!(
        p.admit(&dapp, "eth_call").await,
        Err(Refusal::Limited { .. })
    ));
}
