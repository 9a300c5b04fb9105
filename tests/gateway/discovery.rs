//! DNS discovery against a real DNS server on loopback: a record added joins
//! (after its chain id and head are checked), a record removed drains, and
//! no request fails meanwhile.

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use rpcgate_fleet::{Anvil, AnvilOptions, DnsServer};
use serde_json::json;

use crate::support::*;

/// A port free on every one of `hosts` (pods of a StatefulSet share their container port).
fn port_free_on(hosts: &[Ipv4Addr]) -> u16 {
    for _ in 0..50 {
        let first = std::net::TcpListener::bind((hosts[0], 0)).unwrap();
        let port = first.local_addr().unwrap().port();
        if hosts[1..]
            .iter()
            .all(|h| std::net::TcpListener::bind((*h, port)).is_ok())
        {
            return port;
        }
    }
    panic!("no port free on all of {hosts:?}");
}

#[tokio::test]
async fn dns_records_added_join_and_removed_drain() {
    let hosts = [Ipv4Addr::new(127, 0, 0, 21), Ipv4Addr::new(127, 0, 0, 22)];
    let port = port_free_on(&hosts);
    let mut nodes = Vec::new();
    for host in hosts {
        let opts = AnvilOptions {
            host,
            ..AnvilOptions::default()
        };
        nodes.push(Anvil::spawn_on_port(&opts, port).await.unwrap());
    }
    let dns = DnsServer::start().await.unwrap();
    dns.set("geth-headless.test", &hosts[..1]);

    let y = format!(
        "listen: 127.0.0.1:0\nadmin_listen: 127.0.0.1:0\nnetworks:\n  dev:\n    chain_id: 31337\n    head:\n      poll_interval: 50ms\n    discover:\n      - name: geth\n        dns: geth-headless.test\n        http_port: {port}\n        interval: 100ms\n        resolver: {}\n",
        dns.addr()
    );
    let gw = start_gateway(&y).await;
    let names = |gw: &Gw| {
        gw.view()
            .eligible()
            .map(|b| b.backend.name.clone())
            .collect::<Vec<_>>()
    };
    wait_for("the first address to serve", || {
        let n = names(&gw);
        async move { n == ["geth-127.0.0.21"] }
    })
    .await;

    let done = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let worker = {
        let (url, done, ok, failed) = (gw.url.clone(), done.clone(), ok.clone(), failed.clone());
        tokio::spawn(async move {
            while !done.load(Ordering::Relaxed) {
                let a = post_json(&url, &json!({"jsonrpc":"2.0","id":1,"method":"eth_getBalance","params":[OTHER,"latest"]})).await;
                if a["result"].is_string() {
                    ok.fetch_add(1, Ordering::Relaxed);
                } else {
                    eprintln!("failed: {a}");
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    };

    dns.set("geth-headless.test", &hosts);
    wait_for("the second address to join", || {
        let n = names(&gw);
        async move { n == ["geth-127.0.0.21", "geth-127.0.0.22"] }
    })
    .await;
    dns.set("geth-headless.test", &hosts[1..]);
    wait_for("the first address to drain", || {
        let all: Vec<String> = gw
            .view()
            .backends
            .iter()
            .map(|b| b.backend.name.clone())
            .collect();
        async move { all == ["geth-127.0.0.22"] }
    })
    .await;
    let before = ok.load(Ordering::Relaxed);
    wait_for("traffic on the remaining node", || {
        let n = ok.load(Ordering::Relaxed);
        async move { n > before + 50 }
    })
    .await;
    done.store(true, Ordering::Relaxed);
    worker.await.unwrap();
    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "requests failed while backends changed"
    );
}
