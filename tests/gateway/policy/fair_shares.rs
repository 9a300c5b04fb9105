//! Fair shares and safe defaults, against a real anvil node: what a caller
//! sends costs its budget whether or not it is served (garbage, blocked
//! calls, WebSocket upgrades), upgrades through a trusted proxy count
//! against the forwarded address's connection cap, the anonymous callers
//! share an aggregate budget, heavy calls cost by their arguments, a config
//! without a policy still limits anonymous callers, over-broad trusted
//! proxies are refused, and the admin listener answers only names a
//! rebinding page cannot use, on a bounded number of connections.
//!
//! Distinct clients are distinct source addresses of 127.0.0.0/8 (every one
//! of them is this host's loopback on Linux) or forwarded addresses from a
//! trusted 127.0.0.1.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::support::*;

/// A gateway over one anvil replica (one block) with top-level YAML `top`,
/// exactly as written when `as_is` (the product's defaults apply), else
/// with anonymous callers unlimited unless `top` limits them.
async fn gateway(top: &str, as_is: bool) -> (rpcgate_fleet::Fleet, Gw) {
    let fleet = fleet(1).await;
    fleet.mine().await.unwrap();
    let config = format!(
        "{}{top}",
        yaml(fleet.chain_id(), &fleet_ups(&fleet), ROUTING_ONLY)
    );
    let gw = match as_is {
        true => start_gateway_as_is(&config).await,
        false => start_gateway(&config).await,
    };
    wait_synced(&gw, 1, 1).await;
    (fleet, gw)
}

fn addr(url: &str) -> SocketAddr {
    url.trim_start_matches("http://").parse().unwrap()
}

/// A TCP connection to `to` from the loopback address `from`.
async fn connect_from(from: Ipv4Addr, to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(IpAddr::V4(from), 0)).unwrap();
    socket.connect(to).await.unwrap()
}

/// Writes `request` and reads what comes back first (a status line and
/// more); the stream stays open for the caller to hold.
async fn exchange(mut stream: TcpStream, request: &[u8]) -> (TcpStream, String) {
    stream.write_all(request).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf))
        .await
        .expect("an answer within 10 s")
        .unwrap();
    (stream, String::from_utf8_lossy(&buf[..n]).into_owned())
}

/// A POST of `body` with `headers` (lines ending in \r\n), as raw HTTP/1.1.
fn post_raw(body: &str, headers: &str) -> Vec<u8> {
    format!(
        "POST / HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n{headers}connection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// A WebSocket upgrade of `/` with `headers`, as raw HTTP/1.1.
fn upgrade_raw(headers: &str) -> Vec<u8> {
    format!(
        "GET / HTTP/1.1\r\nhost: x\r\nupgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n{headers}\r\n"
    )
    .into_bytes()
}

fn status(answer: &str) -> u16 {
    answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {answer:?}"))
}

fn rpc(method: &str, params: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
}

/// The JSON-RPC error code of an answer (an object), if any.
fn code(answer: &Value) -> Option<i64> {
    answer["error"]["code"].as_i64()
}

#[tokio::test]
async fn garbage_and_blocked_calls_drain_the_budget() {
    let limits = "policy:\n  anonymous:\n    deny: [eth_blockNumber]\n    limits:\n      requests_per_second: 0.001\n      burst: 4\n";
    for body in [
        "{not json".to_string(),
        json!({"jsonrpc": "2.0", "id": 1}).to_string(),
        json!([1, 2]).to_string(),
        rpc("eth_blockNumber", json!([])).to_string(),
    ] {
        let (_fleet, gw) = gateway(limits, false).await;
        let mut codes = Vec::new();
        for _ in 0..10 {
            let reply = post_with_headers(&gw.url, &[], body.clone()).await;
            let answer: Value = serde_json::from_slice(&reply.body).unwrap();
            let first = if answer.is_array() {
                &answer[0]
            } else {
                &answer
            };
            codes.push(code(first));
            if code(first) == Some(-32005) {
                assert_eq!(reply.status, 429, "{body}");
                break;
            }
        }
        assert_eq!(
            codes.last(),
            Some(&Some(-32005)),
            "{body}: a client sending only this is limited: {codes:?}"
        );
        // The budget was spent by the refusals themselves: a real call is limited too.
        let (status, _, answer) = send(&gw.url, &[], &rpc("eth_chainId", json!([]))).await;
        assert_eq!((status, code(&answer)), (429, Some(-32005)), "{body}");
    }
}

#[tokio::test]
async fn websocket_upgrades_are_rate_limited_and_capped_by_forwarded_address() {
    // Rate: each upgrade costs a request of the caller's budget.
    let (_fleet, gw) = gateway(
        "policy:\n  anonymous:\n    limits:\n      requests_per_second: 0.001\n      burst: 3\n",
        false,
    )
    .await;
    let to = addr(&gw.url);
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let (socket, answer) =
            exchange(TcpStream::connect(to).await.unwrap(), &upgrade_raw("")).await;
        statuses.push(status(&answer));
        drop(socket);
    }
    assert_eq!(statuses, [101, 101, 101, 429]);

    // Cap: behind a trusted proxy (127.0.0.1), by the forwarded address.
    let (_fleet, gw) = gateway(
        "policy:\n  trusted_proxies: [127.0.0.1/32]\n  max_connections_per_ip: 2\n",
        false,
    )
    .await;
    let to = addr(&gw.url);
    let from = |ip: &str| format!("x-forwarded-for: {ip}\r\n");
    let mut open = Vec::new();
    for _ in 0..2 {
        let (socket, answer) = exchange(
            TcpStream::connect(to).await.unwrap(),
            &upgrade_raw(&from("203.0.113.9")),
        )
        .await;
        assert_eq!(status(&answer), 101, "{answer}");
        open.push(socket);
    }
    let (_refused, answer) = exchange(
        TcpStream::connect(to).await.unwrap(),
        &upgrade_raw(&from("203.0.113.9")),
    )
    .await;
    assert_eq!(
        status(&answer),
        429,
        "a third socket for one forwarded address: {answer}"
    );
    let (other, answer) = exchange(
        TcpStream::connect(to).await.unwrap(),
        &upgrade_raw(&from("203.0.113.10")),
    )
    .await;
    assert_eq!(
        status(&answer),
        101,
        "another forwarded address has its own slots: {answer}"
    );
    // A closed socket gives its slot back.
    drop(open.pop());
    let mut back = None;
    for _ in 0..500 {
        let (socket, answer) = exchange(
            TcpStream::connect(to).await.unwrap(),
            &upgrade_raw(&from("203.0.113.9")),
        )
        .await;
        if status(&answer) == 101 {
            back = Some(socket);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(back.is_some(), "the forwarded address's slot came back");
    drop((open, other, back));
}

#[tokio::test]
async fn the_aggregate_anonymous_budget_caps_many_addresses_together() {
    let (_fleet, gw) = gateway(
        "policy:\n  anonymous:\n    limits:\n      requests_per_second: 0.001\n      burst: 5\n    aggregate_limits:\n      requests_per_second: 0.001\n      burst: 6\n",
        false,
    )
    .await;
    let to = addr(&gw.url);
    let call = rpc("eth_chainId", json!([])).to_string();
    let mut statuses = Vec::new();
    // Four addresses, two calls each: each stays within its own 5.
    for last in 2..6 {
        for _ in 0..2 {
            let from = Ipv4Addr::new(127, 0, 1, last);
            let (_, answer) = exchange(connect_from(from, to).await, &post_raw(&call, "")).await;
            statuses.push(status(&answer));
        }
    }
    assert_eq!(statuses, [200, 200, 200, 200, 200, 200, 429, 429]);
    // A fresh address finds the shared budget spent as well.
    let (_, answer) = exchange(
        connect_from(Ipv4Addr::new(127, 0, 1, 9), to).await,
        &post_raw(&call, ""),
    )
    .await;
    assert_eq!(status(&answer), 429, "{answer}");
}

#[tokio::test]
async fn a_50m_gas_call_costs_more_than_a_plain_one() {
    // Compute units only: 130 a burst, earned back at 0.001 a second.
    let (_fleet, gw) = gateway(
        "policy:\n  trusted_proxies: [127.0.0.1/32]\n  anonymous:\n    limits:\n      compute_units_per_second: 0.001\n      compute_burst: 130\n",
        false,
    )
    .await;
    let plain = rpc("eth_call", json!([{"to": OTHER, "data": "0x"}, "latest"]));
    let heavy = rpc(
        "eth_call",
        json!([{"to": OTHER, "data": "0x", "gas": "0x2faf080"}, "latest"]),
    );
    let as_client = |ip: &'static str| [("x-forwarded-for", ip)];
    // Plain calls: 25 units each, five fit.
    for i in 0..5 {
        let (status, _, answer) = send(&gw.url, &as_client("203.0.113.1"), &plain).await;
        assert_eq!(
            (status, code(&answer)),
            (200, None),
            "plain call {i}: {answer}"
        );
    }
    // One 50,000,000-gas call is five prices: after it, a plain one does not fit.
    let (status, _, answer) = send(&gw.url, &as_client("203.0.113.2"), &heavy).await;
    assert_ne!(code(&answer), Some(-32005), "{answer}");
    assert_eq!(status, 200);
    let (status, _, answer) = send(&gw.url, &as_client("203.0.113.2"), &plain).await;
    assert_eq!((status, code(&answer)), (429, Some(-32005)), "{answer}");
}

#[tokio::test]
async fn a_config_without_a_policy_limits_anonymous_callers() {
    let (_fleet, gw) = gateway("", true).await;
    let batch = |n: usize| {
        Value::Array(
            (0..n)
                .map(|i| json!({"jsonrpc": "2.0", "id": i, "method": "eth_chainId"}))
                .collect(),
        )
    };
    // Twice the default burst of 100 requests, in two batches of 100.
    let (status, _, first) = send(&gw.url, &[], &batch(100)).await;
    assert_eq!(status, 200);
    assert!(
        first.as_array().unwrap().iter().all(|a| code(a).is_none()),
        "{first}"
    );
    let (_, _, second) = send(&gw.url, &[], &batch(100)).await;
    let limited = second
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| code(a) == Some(-32005))
        .count();
    assert!(
        limited >= 50,
        "the default anonymous budget holds: {limited} of 100 limited"
    );
}

#[test]
fn trusted_proxies_of_the_whole_internet_are_a_config_error() {
    for wide in ["0.0.0.0/0", "::/0"] {
        let yaml = format!(
            "networks:\n  dev:\n    chain_id: 1\n    upstreams:\n      - name: a\n        http: http://127.0.0.1:1\npolicy:\n  trusted_proxies: ['{wide}']\n"
        );
        let e = rpcgate::config::Config::from_yaml(&yaml).unwrap_err();
        assert_eq!(e.problems()[0].path, "policy.trusted_proxies[0]", "{e}");
        assert!(e.to_string().contains("too wide"), "{e}");
    }
}

/// GET `path` on the admin listener with `Host: host`, as raw HTTP/1.1.
fn admin_get(host: &str) -> Vec<u8> {
    format!("GET /status HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n\r\n").into_bytes()
}

#[tokio::test]
async fn the_admin_listener_answers_only_hosts_a_rebinding_page_cannot_send() {
    let (_fleet, gw) = gateway("server:\n  admin_hosts: [rpcgate-admin.test]\n", false).await;
    let to = addr(&gw.admin);
    for (host, expected) in [
        ("rebound.attacker.example:8580", 421),
        ("localhost.attacker.example", 421),
        ("127.0.0.1:8580", 200),
        ("localhost:8580", 200),
        ("[::1]:8580", 200),
        ("rpcgate-admin.test", 200),
    ] {
        let (_, answer) = exchange(TcpStream::connect(to).await.unwrap(), &admin_get(host)).await;
        assert_eq!(status(&answer), expected, "Host: {host}: {answer}");
    }
}

#[tokio::test]
async fn the_admin_listener_caps_its_connections() {
    let (_fleet, gw) = gateway("server:\n  admin_max_connections: 2\n", false).await;
    let to = addr(&gw.admin);
    // Two idle connections hold both slots: a third is turned away at once.
    let idle = [
        TcpStream::connect(to).await.unwrap(),
        TcpStream::connect(to).await.unwrap(),
    ];
    let (_, answer) = exchange(
        TcpStream::connect(to).await.unwrap(),
        &admin_get("127.0.0.1"),
    )
    .await;
    assert_eq!(status(&answer), 503, "{answer}");
    drop(idle);
    wait_for("an admin slot back", || async {
        let (_, answer) = exchange(
            TcpStream::connect(to).await.unwrap(),
            &admin_get("127.0.0.1"),
        )
        .await;
        status(&answer) == 200
    })
    .await;
}
