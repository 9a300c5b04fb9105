//! `/eth/v1/events` through the gateway against the devnet's nodes, on a
//! gateway of its own whose nodes are the two followers and then node 1
//! (the producer, never stopped: the chain must go on):
//! - a client's stream carries the head and block events its source node
//!   streams, byte for byte, with keep-alive comments between them; an
//!   unknown topic is 400 in the Beacon error form;
//! - 200 clients of one topic set share one upstream stream (counted by
//!   the metrics);
//! - the source node is killed, then the next one hangs (SIGSTOP: its
//!   stream goes silent, the health loop finds it unreachable): the client's
//!   stream stays open and carries every head and block event once, in
//!   order, checked slot by slot against the surviving node's headers (the
//!   hang leaves a gap of several slots, filled from the new node's REST
//!   API).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

use super::devnet::Devnet;
use super::get;

/// One item of a server-sent event stream.
#[derive(Debug, Clone)]
enum Item {
    Event { topic: String, data: String },
    Comment,
}

struct Sse {
    body: Incoming,
    buf: Vec<u8>,
}

impl Sse {
    async fn open(url: &str) -> (u16, Sse) {
        let client: Client<HttpConnector, Empty<Bytes>> =
            Client::builder(TokioExecutor::new()).build(HttpConnector::new());
        let req = Request::get(url)
            .header("accept", "text/event-stream")
            .body(Empty::new())
            .unwrap();
        let answer = tokio::time::timeout(Duration::from_secs(30), client.request(req))
            .await
            .expect("the stream's answer came")
            .unwrap();
        let status = answer.status().as_u16();
        (
            status,
            Sse {
                body: answer.into_body(),
                buf: Vec::new(),
            },
        )
    }

    /// The next item; panics when the stream ends or says nothing for `within`.
    async fn next(&mut self, within: Duration) -> Item {
        loop {
            if let Some(end) = self.buf.windows(2).position(|w| w == b"\n\n") {
                let block: Vec<u8> = self.buf.drain(..end + 2).collect();
                let text = String::from_utf8_lossy(&block[..end]).into_owned();
                if text.lines().all(|l| l.starts_with(':')) {
                    return Item::Comment;
                }
                let mut topic = String::new();
                let mut data = String::new();
                for line in text.lines() {
                    if let Some(t) = line.strip_prefix("event: ") {
                        topic = t.to_string();
                    } else if let Some(d) = line.strip_prefix("data: ") {
                        data.push_str(d);
                    }
                }
                return Item::Event { topic, data };
            }
            let frame = tokio::time::timeout(within, self.body.frame())
                .await
                .expect("the stream said something in time")
                .expect("the stream stayed open")
                .expect("the stream did not break");
            if let Ok(data) = frame.into_data() {
                self.buf.extend_from_slice(&data);
            }
        }
    }

    /// The next event (comments skipped): topic, slot, block root, raw data.
    async fn event(&mut self, within: Duration) -> (String, u64, String, String) {
        loop {
            if let Item::Event { topic, data } = self.next(within).await {
                let v: Value = serde_json::from_str(&data).unwrap();
                let slot = v["slot"].as_str().unwrap_or("0").parse().unwrap();
                let root = v["block"].as_str().unwrap_or_default().to_string();
                return (topic, slot, root, data);
            }
        }
    }
}

struct EventsGateway {
    gateway: std::sync::Arc<rpcgate::control::Gateway>,
    url: String,
    admin: String,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn start(urls: &[&String]) -> EventsGateway {
    let ups: String = urls
        .iter()
        .enumerate()
        .map(|(i, u)| format!("      - name: e{}\n        http: {u}\n", i + 1))
        .collect();
    // request_timeout: a hung node is found unreachable after 6 s, over a slot
    // (4 s): the move leaves a gap the fill must close.
    let yaml = format!(
        "listen: 127.0.0.1:0\nadmin_listen: 127.0.0.1:0\npolicy:\n  max_connections_per_ip: 5000\n  anonymous:\n    limits: {{ requests_per_second: 100000, burst: 100000 }}\nnetworks:\n  ev:\n    kind: beacon\n    poll_interval: 200ms\n    request_timeout: 6s\n    events:\n      keepalive: 1s\n    upstreams:\n{ups}"
    );
    let config = rpcgate::config::Config::from_yaml(&yaml).unwrap();
    let server = rpcgate::edge::Server::bind(&config).await.unwrap();
    let url = format!("http://{}/ev/eth/v1/events", server.local_addr());
    let admin = format!("http://{}/metrics", server.admin_addr());
    let gateway = server.gateway();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server.run(
        async move {
            let _ = stopped.await;
        },
        Duration::from_secs(2),
    ));
    EventsGateway {
        gateway,
        url,
        admin,
        _stop: stop,
    }
}

impl EventsGateway {
    async fn metric(&self, name: &str) -> f64 {
        let text = String::from_utf8(get(&self.admin).await.body.to_vec()).unwrap();
        text.lines()
            .find(|l| l.starts_with(&format!("{name}{{network=\"ev\"}}")))
            .and_then(|l| l.rsplit(' ').next())
            .map_or(0.0, |v| v.parse().unwrap())
    }

    /// The node the stream of `key` comes from (waits for one).
    async fn source(&self, key: &str) -> String {
        let events = self.gateway.beacon().by_name["ev"].events.clone();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let sources = events.upstream_sources();
            if let Some((_, Some(node))) = sources.iter().find(|(k, _)| k == key) {
                return node.clone();
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "a source for {key}: {sources:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn wait_eligible(&self, n: usize) {
        let net = self.gateway.beacon().by_name["ev"].clone();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while net.snapshot().eligible().count() < n {
            assert!(tokio::time::Instant::now() < deadline, "{n} eligible nodes");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

const WAIT: Duration = Duration::from_secs(60);

pub async fn scenarios(devnet: &Devnet) {
    // Followers first: the stream starts on one of them.
    let gw = start(&[&devnet.urls[1], &devnet.urls[2], &devnet.urls[0]]).await;
    gw.wait_eligible(3).await;
    let (status, refused) = {
        let r = get(&format!("{}?topics=head&topics=heads", gw.url)).await;
        (r.status, r.json())
    };
    assert_eq!(status, 400, "an unknown topic");
    assert_eq!(refused["code"], 400, "the Beacon API error form: {refused}");

    let (status, mut client) = Sse::open(&format!("{}?topics=head&topics=block", gw.url)).await;
    assert_eq!(status, 200);
    as_the_node_streams(&gw, devnet, &mut client).await;
    clients_share_one_stream(&gw).await;
    every_event_once_across_moves(&gw, devnet, client).await;
}

/// The gateway's stream against a direct stream of its source node.
async fn as_the_node_streams(gw: &EventsGateway, devnet: &Devnet, client: &mut Sse) {
    let source = gw.source("block,head").await;
    let index: usize = source.trim_start_matches('e').parse().unwrap();
    let direct_url = [&devnet.urls[1], &devnet.urls[2], &devnet.urls[0]][index - 1];
    let (status, mut direct) = Sse::open(&format!(
        "{direct_url}/eth/v1/events?topics=head&topics=block"
    ))
    .await;
    assert_eq!(status, 200);
    // Both streams from now until each has carried three heads; then the
    // events of the slots both cover must be the same bytes.
    let mut seen: [BTreeMap<(String, u64), String>; 2] = Default::default();
    let mut comments = 0;
    for (i, stream) in [&mut direct, client].into_iter().enumerate() {
        let mut heads = 0;
        while heads < 3 {
            match stream.next(WAIT).await {
                // The first comment comes with the headers; later ones are keep-alives.
                Item::Comment => comments += usize::from(i == 1 && !seen[1].is_empty()),
                Item::Event { topic, data } => {
                    let v: Value = serde_json::from_str(&data).unwrap();
                    let slot: u64 = v["slot"].as_str().unwrap().parse().unwrap();
                    heads += usize::from(topic == "head");
                    seen[i].insert((topic, slot), data);
                }
            }
        }
    }
    let common: Vec<_> = seen[0]
        .keys()
        .filter(|k| seen[1].contains_key(*k))
        .collect();
    assert!(
        !common.is_empty(),
        "both streams carried the same slots: {seen:?}"
    );
    for k in common {
        assert_eq!(
            seen[0][k], seen[1][k],
            "{k:?}: the event as the node wrote it"
        );
    }
    assert!(
        comments > 0,
        "keep-alive comments between events (keepalive: 1s, 4 s slots)"
    );
}

/// 200 more clients of the same topics: still one stream to a node.
async fn clients_share_one_stream(gw: &EventsGateway) {
    let mut clients = Vec::new();
    for i in 0..200 {
        // Either spelling of the set, either order: one set.
        let q = if i % 2 == 0 {
            "topics=block,head"
        } else {
            "topics=head&topics=block"
        };
        let (status, c) = Sse::open(&format!("{}?{q}", gw.url)).await;
        assert_eq!(status, 200);
        clients.push(c);
    }
    assert_eq!(gw.metric("rpcgate_beacon_event_streams").await, 201.0);
    assert_eq!(
        gw.metric("rpcgate_beacon_event_upstreams").await,
        1.0,
        "one upstream stream"
    );
    // Every one of them gets the next head.
    for c in &mut clients {
        loop {
            if c.event(WAIT).await.0 == "head" {
                break;
            }
        }
    }
    drop(clients);
    let deadline = tokio::time::Instant::now() + WAIT;
    while gw.metric("rpcgate_beacon_event_streams").await != 1.0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "closed clients are counted out"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Kill the source, then hang the next one: every head and block once, in order.
async fn every_event_once_across_moves(gw: &EventsGateway, devnet: &Devnet, mut client: Sse) {
    let order = [2usize, 3, 1]; // e1, e2, e3 are devnet nodes 2, 3, 1
    let mut got: Vec<(String, u64, String)> = Vec::new();
    let take = |got: &mut Vec<(String, u64, String)>, e: (String, u64, String, String)| {
        got.push((e.0, e.1, e.2));
    };
    for _ in 0..4 {
        let e = client.event(WAIT).await;
        take(&mut got, e);
    }
    let first = gw.source("block,head").await;
    let victim = order[first.trim_start_matches('e').parse::<usize>().unwrap() - 1];
    assert_ne!(victim, 1, "the stream comes from a follower");
    devnet.signal(victim, "KILL");
    // Two more heads from the next node.
    let mut heads = 0;
    while heads < 2 {
        let e = client.event(WAIT).await;
        heads += usize::from(e.0 == "head");
        take(&mut got, e);
    }
    let second = gw.source("block,head").await;
    assert_ne!(second, first, "the stream moved");
    let hung = order[second.trim_start_matches('e').parse::<usize>().unwrap() - 1];
    if hung != 1 {
        // Its stream goes silent; the node is found unreachable and left.
        devnet.signal(hung, "STOP");
        let mut heads = 0;
        while heads < 3 {
            let e = client.event(WAIT).await;
            heads += usize::from(e.0 == "head");
            take(&mut got, e);
        }
        devnet.signal(hung, "CONT");
    }
    assert!(gw.metric("rpcgate_beacon_event_moves_total").await >= 1.0);
    // Against the producer's chain: each slot with a block, once per topic.
    for topic in ["head", "block"] {
        let slots: Vec<u64> = got.iter().filter(|e| e.0 == topic).map(|e| e.1).collect();
        assert!(
            slots.windows(2).all(|w| w[0] < w[1]),
            "{topic} slots strictly increasing: {slots:?}"
        );
        let (lo, hi) = (slots[0], *slots.last().unwrap());
        let mut want = BTreeSet::new();
        for s in lo..=hi {
            let h = get(&format!("{}/eth/v1/beacon/headers/{s}", devnet.urls[0])).await;
            if h.status == 200 {
                let root = h.json()["data"]["root"].as_str().unwrap().to_string();
                want.insert((s, root));
            }
        }
        let have: BTreeSet<(u64, String)> = got
            .iter()
            .filter(|e| e.0 == topic)
            .map(|e| (e.1, e.2.clone()))
            .collect();
        assert_eq!(
            have, want,
            "{topic}: every block of slots {lo}..={hi}, once"
        );
    }
    eprintln!(
        "events across moves: {} events, moves {}, filled {}",
        got.len(),
        gw.metric("rpcgate_beacon_event_moves_total").await,
        gw.metric("rpcgate_beacon_events_filled_total").await
    );
}
