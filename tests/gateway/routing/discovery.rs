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

/// An anvil node on each of `hosts`, all on one port free on every one of them.
async fn nodes_on(hosts: &[Ipv4Addr]) -> (u16, Vec<Anvil>) {
    let port = port_free_on(hosts);
    let mut nodes = Vec::new();
    for &host in hosts {
        let opts = AnvilOptions {
            host,
            ..AnvilOptions::default()
        };
        nodes.push(Anvil::spawn_on_port(&opts, port).await.unwrap());
    }
    (port, nodes)
}

#[tokio::test]
async fn dns_records_added_join_and_removed_drain() {
    let hosts = [Ipv4Addr::new(127, 0, 0, 21), Ipv4Addr::new(127, 0, 0, 22)];
    let (port, _nodes) = nodes_on(&hosts).await;
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

/// The shipped Kubernetes config (k8s/base/config/rpcgate.yaml) with what a test must
/// change: loopback listeners, anvil's chain id, the anvils' port, a fast interval, the
/// loopback DNS server, and the keys file (the Secret's mount in the pod) stood in for;
/// without its beacon network.
fn shipped_k8s_config(port: u16, dns: std::net::SocketAddr, keys: &std::path::Path) -> String {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/k8s/base/config/rpcgate.yaml"
    ))
    .unwrap();
    let mut c: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).unwrap();
    c["listen"] = "127.0.0.1:0".into();
    c["admin_listen"] = "127.0.0.1:0".into();
    c["policy"]["clients"]["dapps"]["keys_file"] = keys.to_str().unwrap().into();
    // The beacon side (its Lighthouse Service, its validators' keys) is not what
    // this test follows.
    c["policy"]["clients"]
        .as_mapping_mut()
        .unwrap()
        .remove("validators");
    c["networks"]
        .as_mapping_mut()
        .unwrap()
        .remove("mainnet-beacon");
    let net = &mut c["networks"]["mainnet"];
    net["chain_id"] = 31337.into();
    net["head"]["poll_interval"] = "50ms".into();
    let group = &mut net["discover"][0];
    assert_eq!(group["dns"], "geth-headless.web3.svc.cluster.local");
    group["http_port"] = port.into();
    group["ws_port"] = port.into();
    group["interval"] = "100ms".into();
    group["resolver"] = dns.to_string().into();
    // A second network pinned to one pod by its StatefulSet name.
    let mut pinned = net.clone();
    pinned["default"] = false.into();
    pinned["discover"][0]["dns"] = "geth-0.geth-headless.web3.svc.cluster.local".into();
    c["networks"]["pinned"] = pinned;
    serde_yaml_ng::to_string(&c).unwrap()
}

/// The records a cluster DNS serves for the Geth StatefulSet's headless Service: the
/// Service name has one A record per ready pod, and each pod has its own name
/// (`geth-<ordinal>.geth-headless.<namespace>.svc.cluster.local`). Scaling down
/// removes the highest ordinal from both; scaled to zero, the Service name is gone.
#[tokio::test]
async fn the_headless_service_records_of_the_statefulset_as_the_cluster_serves_them() {
    let hosts = [Ipv4Addr::new(127, 0, 0, 31), Ipv4Addr::new(127, 0, 0, 32)];
    let (port, nodes) = nodes_on(&hosts).await;
    let dns = DnsServer::start().await.unwrap();
    let service = "geth-headless.web3.svc.cluster.local";
    let pod = |i: usize| format!("geth-{i}.geth-headless.web3.svc.cluster.local");
    dns.set(service, &hosts);
    dns.set(&pod(0), &hosts[..1]);
    dns.set(&pod(1), &hosts[1..]);
    let keys = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(keys.path(), "a-placeholder-key-0123456789\n").unwrap();
    let gw = start_gateway(&shipped_k8s_config(port, dns.addr(), keys.path())).await;

    let names = |view: &rpcgate::upstream::NetworkView| {
        view.backends
            .iter()
            .map(|b| b.backend.name.clone())
            .collect::<Vec<_>>()
    };
    // Discovery rebuilds a network around its new backends: read the current one each time.
    let current = |path: &str| {
        gw.gateway
            .table()
            .resolve(path)
            .map(|(network, _)| network)
            .expect("a network")
            .view()
    };
    wait_for("both pods of the Service to serve", || {
        let v = current("/");
        let ok = v.eligible().count() == 2 && names(&v) == ["geth-127.0.0.31", "geth-127.0.0.32"];
        async move { ok }
    })
    .await;
    wait_for("the pod name to resolve to geth-0 only", || {
        let v = current("/pinned");
        let ok = v.eligible().count() == 1 && names(&v) == ["geth-127.0.0.31"];
        async move { ok }
    })
    .await;
    let call = json!({"jsonrpc":"2.0","id":"k8s","method":"eth_chainId","params":[]});
    let answer = post_json(&gw.url, &call).await;
    assert_eq!(answer["result"], "0x7a69", "{answer}");
    assert_eq!(answer["id"], "k8s");
    let answer = post_json(&format!("{}/pinned", gw.url), &call).await;
    assert_eq!(answer["result"], "0x7a69", "{answer}");

    // kubectl scale statefulset geth --replicas=1: geth-1 leaves both names.
    dns.set(service, &hosts[..1]);
    dns.remove(&pod(1));
    wait_for("geth-1 to drain", || {
        let ok = names(&current("/")) == ["geth-127.0.0.31"];
        async move { ok }
    })
    .await;
    // --replicas=0: the Service name has no records; no backends, and calls are
    // refused rather than queued.
    dns.remove(service);
    wait_for("no backend", || {
        let ok = current("/").backends.is_empty();
        async move { ok }
    })
    .await;
    // (eth_chainId is answered from the config, eth_blockNumber from the served head;
    // a state read needs a backend.)
    let read =
        json!({"jsonrpc":"2.0","id":"k8s","method":"eth_getBalance","params":[OTHER, "latest"]});
    let answer = post_json(&gw.url, &read).await;
    assert!(answer["error"].is_object(), "{answer}");
    assert_eq!(answer["id"], "k8s");
    drop(nodes);
}
