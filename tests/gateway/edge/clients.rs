//! Real clients through rpcgate, as DApps run them: a page in headless
//! Chromium on another origin (plain `fetch` with an `Authorization` header,
//! so a preflight; viem bundled into the page), and ethers, viem and web3.py
//! watching events and blocks through filters over HTTP while replicas fail.
//!
//! The clients live in `tests/clients` (pinned in its package-lock.json, and
//! web3.py in a venv); `scripts/install-clients` installs them and Debian's
//! chromium, and bundles the page. These tests fail, rather than skip, when
//! they are missing: a skipped browser test would prove nothing.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use rpcgate_fleet::{Fleet, Tap};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

use crate::support::*;

/// A contract that emits `Ping(uint256 n)` with its calldata as `n` on every
/// call: runtime `calldatacopy(0, 0, size); log1(0, size, topic)`.
const PING_INIT: &str = "0x602c600c600039602c6000f33660006000377f48257dc961b6f792c2b78a080dacfed693b660960a702de21cee364e20270e2f366000a100";
const FILTER_METHODS: [&str; 4] = [
    "eth_newFilter",
    "eth_newBlockFilter",
    "eth_getFilterChanges",
    "eth_uninstallFilter",
];

fn clients_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients")
}

fn chromium() -> PathBuf {
    std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| "/usr/bin/chromium".into())
}

fn python() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target/clients-venv/bin/python")
}

/// Panics (with what to run) unless the clients are installed.
fn require_clients() {
    let dir = clients_dir();
    for needed in [
        dir.join("node_modules/playwright-core"),
        dir.join("node_modules/viem"),
        dir.join("node_modules/ethers"),
        dir.join("dist/dapp.js"),
        chromium(),
        python(),
    ] {
        assert!(
            needed.exists(),
            "{} is missing: run scripts/install-clients",
            needed.display()
        );
    }
}

/// Serves the test DApp (`page/index.html`, the bundled `dist/dapp.js`) on
/// 127.0.0.1:0: its own origin, not the gateway's. Returns the origin.
async fn serve_page() -> String {
    let dir = clients_dir();
    let html = Bytes::from(std::fs::read(dir.join("page/index.html")).unwrap());
    let js = Bytes::from(std::fs::read(dir.join("dist/dapp.js")).unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let (html, js) = (html.clone(), js.clone());
            tokio::spawn(async move {
                let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let (body, kind, status) = match req.uri().path() {
                        "/" | "/index.html" => (html.clone(), "text/html", 200),
                        "/dapp.js" => (js.clone(), "text/javascript", 200),
                        _ => (Bytes::new(), "text/plain", 404),
                    };
                    let response = hyper::Response::builder()
                        .status(status)
                        .header("content-type", kind)
                        .body(Full::new(body))
                        .unwrap();
                    async move { Ok::<_, std::convert::Infallible>(response) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    origin
}

/// A client process whose stdout is one JSON object a line. Any other line
/// (a library printing an error it swallowed, as ethers does) is kept in
/// `noise`, which the tests require to stay empty.
struct Process {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
    name: String,
    noise: Vec<String>,
}

impl Process {
    fn spawn(mut command: Command, name: &str) -> Process {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("start {name}: {e}"));
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        Process {
            child,
            lines,
            name: name.into(),
            noise: Vec::new(),
        }
    }

    /// The next line that satisfies `ok` (the failure message shows the
    /// lines before it); a hang guard of 150 s.
    async fn until(&mut self, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
        let mut seen = Vec::new();
        let found = tokio::time::timeout(Duration::from_secs(150), async {
            while let Some(line) = self.lines.next_line().await.unwrap() {
                let Ok(v) = serde_json::from_str::<Value>(&line) else {
                    self.noise.push(line);
                    continue;
                };
                if ok(&v) {
                    return Some(v);
                }
                seen.push(v);
            }
            None
        })
        .await;
        match found {
            Ok(Some(v)) => v,
            Ok(None) => panic!(
                "{} ended before {what}; it printed {seen:?} and {:?}; {:?}",
                self.name,
                self.noise,
                self.child.wait().await
            ),
            Err(_) => panic!(
                "{}: no {what} in 150 s; it printed {seen:?} and {:?}",
                self.name, self.noise
            ),
        }
    }
}

/// A fleet of `replicas` with a tap in front of each (to count what reaches
/// a node), the Ping contract deployed, and a gateway in front of the taps.
async fn setup(replicas: usize, server: &str) -> (Fleet, Vec<Tap>, Gw, String) {
    let fleet = fleet(replicas).await;
    let (_, deploy) = fleet.deploy(PING_INIT, 200_000).await.unwrap();
    let height = fleet.mine().await.unwrap();
    let receipt = call(
        &fleet.http_url(0),
        "eth_getTransactionReceipt",
        json!([deploy]),
    )
    .await;
    let contract = receipt["result"]["contractAddress"]
        .as_str()
        .unwrap_or_else(|| panic!("no contract address in {receipt}"))
        .to_string();
    let mut taps = Vec::new();
    let mut ups = Vec::new();
    for i in 0..replicas {
        let tap = Tap::start(&fleet.http_url(i)).await.unwrap();
        ups.push(up(&format!("r{i}"), tap.url(), Some(fleet.ws_url(i))));
        taps.push(tap);
    }
    let policy = format!(
        "policy:\n  clients:\n    dapp:\n      key_sha256: [{}]\n",
        sha256_hex(KEY)
    );
    let config = format!("{server}{policy}{}", yaml(fleet.chain_id(), &ups, ""));
    let gw = start_gateway(&config).await;
    wait_synced(&gw, replicas, height).await;
    (fleet, taps, gw, contract)
}

/// Sends `n` as the calldata of a Ping call (so the event carries it).
async fn ping(fleet: &Fleet, contract: &str, n: u64) {
    fleet
        .invoke(contract, &format!("0x{n:064x}"), 100_000)
        .await
        .unwrap();
}

fn filter_calls_at_nodes(taps: &[Tap]) -> u64 {
    taps.iter()
        .flat_map(|t| FILTER_METHODS.map(|m| t.count(m)))
        .sum()
}

/// The `n` of each event, checking every event is a live (not removed) log
/// of the contract in a block of the canonical chain.
async fn event_numbers(fleet: &Fleet, client: &str, events: &Value) -> Vec<u64> {
    let mut ns = Vec::new();
    for e in events
        .as_array()
        .unwrap_or_else(|| panic!("{client}: {events}"))
    {
        assert_eq!(e["removed"], json!(false), "{client}: {e}");
        let block = e["block"].as_u64().unwrap();
        let receipt = call(
            &fleet.http_url(0),
            "eth_getTransactionReceipt",
            json!([e["tx"]]),
        )
        .await;
        assert_eq!(
            quantity(&receipt["result"]["blockNumber"]),
            block,
            "{client}: {e} is not in the block the chain has it in"
        );
        ns.push(e["n"].as_u64().unwrap());
    }
    ns
}

#[tokio::test]
async fn a_browser_page_on_another_origin_reads_and_watches_events_through_filters() {
    require_clients();
    let page = serve_page().await;
    let elsewhere = serve_page().await;
    let server = format!("server:\n  cors:\n    allowed_origins: [\"{page}\"]\n");
    let (fleet, taps, gw, contract) = setup(3, &server).await;
    let events = 6;
    let query = |mode: &str| {
        format!(
            "/?mode={mode}&gw={}&key={KEY}&chain={}&contract={contract}&events={events}",
            gw.url,
            fleet.chain_id()
        )
    };
    let mut command = Command::new("node");
    command
        .current_dir(clients_dir())
        .env("CHROMIUM", chromium())
        .arg("browser.mjs")
        .arg(format!("{elsewhere}{}", query("blocked")))
        .arg(format!("{page}{}", query("dapp")));
    let mut browser = Process::spawn(command, "chromium");

    // An origin outside the list: the browser refuses the page the answer.
    let blocked = browser
        .until("the blocked page", |v| v.get("blocked").is_some())
        .await;
    assert_eq!(blocked["blocked"], json!(true), "{blocked}");
    assert_eq!(blocked["error"], json!("TypeError"), "{blocked}");

    // The listed origin: a preflighted fetch with a key, then viem.
    let fetched = browser
        .until("the fetch", |v| v.get("fetch").is_some())
        .await;
    let fetch = &fetched["fetch"];
    assert_eq!(fetch["status"], json!(200), "{fetched}");
    let height = fleet.height().await;
    assert_eq!(quantity(&fetch["body"]["result"]), height, "{fetched}");
    let refused = browser
        .until("the refused fetch", |v| v.get("refused").is_some())
        .await;
    assert_eq!(
        refused["refused"]["body"]["error"]["code"],
        json!(-32601),
        "{refused}"
    );
    assert!(
        refused["refused"]["requestId"].is_string(),
        "X-Request-Id of a failed call is exposed to the page: {refused}"
    );
    let number = browser
        .until("the block number", |v| v.get("blockNumber").is_some())
        .await;
    assert_eq!(number["blockNumber"], json!(height));
    let balance = browser
        .until("the balance", |v| v.get("balance").is_some())
        .await;
    let direct = call(&fleet.http_url(1), "eth_getBalance", json!([DEV, "latest"])).await;
    assert_eq!(
        balance["balance"]
            .as_str()
            .unwrap()
            .parse::<u128>()
            .unwrap(),
        u128::from_str_radix(
            direct["result"].as_str().unwrap().trim_start_matches("0x"),
            16
        )
        .unwrap()
    );

    browser
        .until("the watch", |v| v.get("watching").is_some())
        .await;
    for n in 1..=events {
        ping(&fleet, &contract, n).await;
        if n % 2 == 0 {
            fleet.mine().await.unwrap();
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
    let seen = browser
        .until("the events", |v| v.get("events").is_some())
        .await;
    assert_eq!(seen["errors"], json!([]), "{seen}");
    let methods = seen["methods"].as_array().unwrap();
    assert!(
        methods.contains(&json!("eth_newFilter"))
            && methods.contains(&json!("eth_getFilterChanges")),
        "viem watched through filters: {seen}"
    );
    let ns = event_numbers(&fleet, "viem in chromium", &seen["events"]).await;
    assert_eq!(
        ns,
        (1..=events).collect::<Vec<_>>(),
        "every event once, in order"
    );
    assert_eq!(
        filter_calls_at_nodes(&taps),
        0,
        "the gateway answers filter calls itself"
    );
}

#[tokio::test]
async fn ethers_viem_and_web3py_see_every_event_and_block_once_while_replicas_fail() {
    require_clients();
    let (fleet, taps, gw, contract) = setup(3, "").await;
    let rounds = 3u64;
    let per_block = 2u64;
    let blocks_per_round = 4u64;
    let events = rounds * blocks_per_round * per_block;
    let blocks = rounds * blocks_per_round;

    let mut node = Command::new("node");
    node.current_dir(clients_dir())
        .arg("watch.mjs")
        .arg(&gw.url)
        .arg(fleet.chain_id().to_string())
        .arg(&contract)
        .arg(events.to_string());
    let mut node = Process::spawn(node, "ethers and viem");
    let mut py = Command::new(python());
    py.current_dir(clients_dir())
        .arg("watch.py")
        .arg(&gw.url)
        .arg(&contract)
        .arg(events.to_string())
        .arg(blocks.to_string());
    let mut py = Process::spawn(py, "web3.py");
    let start = fleet.height().await;
    for _ in 0..2 {
        node.until("a client's first poll", |v| v.get("ready").is_some())
            .await;
    }
    py.until("its filters", |v| v.get("ready").is_some()).await;

    let mut n = 0;
    for round in 0..rounds as usize {
        let down = round % fleet.len();
        for b in 0..blocks_per_round {
            if b == 1 {
                fleet.stop(down).await.unwrap();
            }
            if b == 3 {
                fleet.restart(down).await.unwrap();
            }
            for _ in 0..per_block {
                n += 1;
                ping(&fleet, &contract, n).await;
            }
            fleet.mine().await.unwrap();
            tokio::time::sleep(Duration::from_millis(400)).await;
        }
    }
    let end = fleet.height().await;
    assert_eq!(end - start, blocks);

    let want: Vec<u64> = (1..=events).collect();
    for _ in 0..2 {
        let seen = node
            .until("a client's events", |v| v.get("client").is_some())
            .await;
        let client = seen["client"].as_str().unwrap().to_string();
        assert_eq!(seen["errors"], json!([]), "{seen}");
        let methods = seen["methods"].as_array().unwrap();
        assert!(
            methods.contains(&json!("eth_newFilter"))
                && methods.contains(&json!("eth_getFilterChanges")),
            "{client} watched through filters: {seen}"
        );
        assert_eq!(
            event_numbers(&fleet, &client, &seen["events"]).await,
            want,
            "{client}"
        );
    }
    let seen = py
        .until("its blocks and events", |v| v.get("client").is_some())
        .await;
    assert_eq!(seen["errors"], json!([]), "{seen}");
    assert_eq!(
        event_numbers(&fleet, "web3.py", &seen["events"]).await,
        want
    );
    let mut canonical = Vec::new();
    for b in start + 1..=end {
        canonical.push(json!(fleet.block_hash(0, b).await.unwrap().unwrap()));
    }
    assert_eq!(
        seen["blocks"],
        json!(canonical),
        "every block hash once, in order"
    );
    assert_eq!(
        filter_calls_at_nodes(&taps),
        0,
        "the gateway answers filter calls itself"
    );
}
