//! `ws-fanout`: many WebSocket clients subscribed to `newHeads` through the
//! gateway, and how long one head takes to reach all of them.
//!
//! ```text
//! ws-fanout --url ws://127.0.0.1:PORT/ --clients 10000 --duration 30s \
//!   [--pid <rpcgate pid>] [--direct ws://<replica>/]
//! ```
//!
//! Opens `--clients` connections (one small task each, started a bounded
//! number at a time), subscribes each to `newHeads`, then for `--duration`
//! records when every client receives every head. For each head it reports
//! the spread from the first client receiving it to the last (`p50_ms`,
//! `p99_ms`, `max_ms` over heads) and, with `--direct`, the delay from a
//! subscription held directly on a replica to the last gateway client
//! (`direct_*`): that includes the gateway's own receipt and fan-out. With
//! `--pid`, the process's VmRSS is sampled every 100 ms: `rss_start_mib`
//! before the first client, `rss_idle_mib` once all are subscribed (before
//! the window), `rss_mib` the peak. One JSON line on stdout, progress on
//! stderr.
//!
//! Test support, not product: it lives in the fleet crate and is driven by
//! `loadtests/ws-fanout`. The clients read into small buffers themselves, so
//! that 10,000 of them fit on the machine beside the gateway.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use parking_lot::Mutex;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

#[derive(Parser)]
#[command(
    about = "WebSocket newHeads fan-out load: N subscribers, per-head delivery spread, gateway RSS"
)]
struct Cli {
    /// The gateway's WebSocket URL.
    #[arg(long)]
    url: String,
    /// How many subscribed clients.
    #[arg(long, default_value_t = 1000)]
    clients: usize,
    /// How long heads are measured once every client is subscribed.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    duration: Duration,
    /// The gateway's process id: its VmRSS is sampled.
    #[arg(long)]
    pid: Option<u32>,
    /// A replica's WebSocket URL: heads are also timed from its own notification.
    #[arg(long)]
    direct: Option<String>,
    /// Connection handshakes in flight at once.
    #[arg(long, default_value_t = 64)]
    connect_concurrency: usize,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let (n, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = n.parse().map_err(|_| format!("not a duration: {s}"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" | "" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        _ => Err(format!("not a duration: {s} (use ms, s or m)")),
    }
}

/// When a head reached the clients: first, last, how many.
#[derive(Clone, Copy)]
struct Seen {
    first: Instant,
    last: Instant,
    count: usize,
}

#[derive(Default)]
struct Tally {
    heads: Mutex<HashMap<u64, Seen>>,
    direct: Mutex<HashMap<u64, Instant>>,
    subscribed: AtomicUsize,
    settled: AtomicUsize,
    errors: AtomicUsize,
}

impl Tally {
    fn saw(&self, number: u64, at: Instant) {
        let mut heads = self.heads.lock();
        let seen = heads.entry(number).or_insert(Seen {
            first: at,
            last: at,
            count: 0,
        });
        seen.first = seen.first.min(at);
        seen.last = seen.last.max(at);
        seen.count += 1;
    }
}

fn main() {
    let cli = Cli::parse();
    raise_nofile();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(run(cli));
}

/// Each client socket is a descriptor: lift the soft limit to the hard one.
fn raise_nofile() {
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    unsafe {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            limit.rlim_cur = limit.rlim_max;
            let _ = libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

fn client_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0)
}

async fn run(cli: Cli) {
    let tally = Arc::new(Tally::default());
    let rss_peak = Arc::new(AtomicUsize::new(0));
    let rss_start = cli.pid.and_then(rss_kib);
    let sampler = cli.pid.map(|pid| {
        let peak = rss_peak.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            loop {
                tick.tick().await;
                if let Some(kib) = rss_kib(pid) {
                    peak.fetch_max(kib, Ordering::Relaxed);
                }
            }
        })
    });
    if let Some(url) = cli.direct.clone() {
        let tally = tally.clone();
        tokio::spawn(async move {
            if let Err(e) = direct(&url, &tally).await {
                eprintln!("ws-fanout: the direct subscription failed: {e}");
            }
        });
    }

    let started = Instant::now();
    let gate = Arc::new(Semaphore::new(cli.connect_concurrency.max(1)));
    let mut clients = Vec::with_capacity(cli.clients);
    for _ in 0..cli.clients {
        clients.push(tokio::spawn(client(
            cli.url.clone(),
            tally.clone(),
            gate.clone(),
        )));
    }
    // Every client subscribed or failed (bounded: a stuck handshake counts as failed).
    let deadline =
        started + Duration::from_secs(60) + Duration::from_millis(20 * cli.clients as u64);
    while tally.settled.load(Ordering::Relaxed) < cli.clients && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let subscribed = tally.subscribed.load(Ordering::Relaxed);
    eprintln!(
        "ws-fanout: {subscribed} of {} clients subscribed in {:.1}s; measuring for {:?}",
        cli.clients,
        started.elapsed().as_secs_f64(),
        cli.duration
    );
    // Let the subscribe traffic's garbage go before the idle figure.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_idle = cli.pid.and_then(rss_kib);
    let window = Instant::now();
    tokio::time::sleep(cli.duration).await;
    let end = Instant::now();
    // The last clients of the last head in the window.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let alive = tally.subscribed.load(Ordering::Relaxed);
    let heads: Vec<(u64, Seen)> = tally
        .heads
        .lock()
        .iter()
        .filter(|(_, s)| s.first >= window && s.first < end)
        .map(|(n, s)| (*n, *s))
        .collect();
    let direct = tally.direct.lock().clone();
    let mut spreads = Vec::new();
    let mut from_direct = Vec::new();
    let mut incomplete = 0;
    for (number, seen) in &heads {
        if seen.count < alive {
            incomplete += 1;
        }
        spreads.push(ms(seen.last - seen.first));
        if let Some(at) = direct.get(number) {
            from_direct.push(ms(seen.last.saturating_duration_since(*at)));
        }
    }
    for c in clients {
        c.abort();
    }
    if let Some(s) = sampler {
        s.abort();
    }
    let mib = |kib: usize| (kib as f64 / 1024.0 * 10.0).round() / 10.0;
    let mut line = serde_json::json!({
        "clients": cli.clients,
        "subscribed": subscribed,
        "heads": heads.len(),
        "p50_ms": quantile(&mut spreads, 0.50),
        "p99_ms": quantile(&mut spreads, 0.99),
        "max_ms": quantile(&mut spreads, 1.0),
        "errors": tally.errors.load(Ordering::Relaxed),
        "incomplete_heads": incomplete,
    });
    if cli.direct.is_some() {
        line["direct_p50_ms"] = quantile(&mut from_direct, 0.50).into();
        line["direct_p99_ms"] = quantile(&mut from_direct, 0.99).into();
        line["direct_max_ms"] = quantile(&mut from_direct, 1.0).into();
    }
    if cli.pid.is_some() {
        line["rss_mib"] = mib(rss_peak.load(Ordering::Relaxed)).into();
        line["rss_start_mib"] = rss_start.map(mib).into();
        line["rss_idle_mib"] = rss_idle.map(mib).into();
    }
    println!("{line}");
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The `q` quantile (nearest rank), rounded to 0.1 ms; null with no samples.
fn quantile(xs: &mut [f64], q: f64) -> Option<f64> {
    if xs.is_empty() {
        return None;
    }
    xs.sort_by(f64::total_cmp);
    let rank = ((q * xs.len() as f64).ceil() as usize).clamp(1, xs.len());
    Some((xs[rank - 1] * 10.0).round() / 10.0)
}

/// VmRSS of `pid` in KiB.
fn rss_kib(pid: u32) -> Option<usize> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

const SUBSCRIBE: &str =
    r#"{"jsonrpc":"2.0","id":1,"method":"eth_subscribe","params":["newHeads"]}"#;

/// One subscriber: connect, subscribe, then time every head until aborted.
async fn client(url: String, tally: Arc<Tally>, gate: Arc<Semaphore>) {
    let permit = gate.acquire_owned().await;
    let mut socket = None;
    for attempt in 0..3 {
        match tokio_tungstenite::connect_async_with_config(&url, Some(client_config()), false).await
        {
            Ok((s, _)) => {
                socket = Some(s);
                break;
            }
            Err(e) if attempt == 2 => eprintln!("ws-fanout: connect failed: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    let Some(mut ws) = socket else {
        tally.errors.fetch_add(1, Ordering::Relaxed);
        tally.settled.fetch_add(1, Ordering::Relaxed);
        return;
    };
    let subscribed = async {
        ws.send(Message::text(SUBSCRIBE)).await.ok()?;
        loop {
            match ws.next().await? {
                Ok(Message::Text(t)) if t.contains("\"id\":1") => {
                    return t.contains("\"result\"").then_some(());
                }
                Ok(Message::Close(_)) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    };
    let ok = tokio::time::timeout(Duration::from_secs(30), subscribed)
        .await
        .ok()
        .flatten()
        .is_some();
    drop(permit);
    if !ok {
        tally.errors.fetch_add(1, Ordering::Relaxed);
        tally.settled.fetch_add(1, Ordering::Relaxed);
        return;
    }
    tally.subscribed.fetch_add(1, Ordering::Relaxed);
    tally.settled.fetch_add(1, Ordering::Relaxed);
    while let Some(message) = ws.next().await {
        match message {
            Ok(Message::Text(t)) => {
                if let Some(n) = head_number(t.as_str()) {
                    tally.saw(n, Instant::now());
                }
            }
            Ok(Message::Close(_)) | Err(_) => break,
            Ok(_) => {}
        }
    }
    // The socket ended while it should have stayed subscribed.
    tally.subscribed.fetch_sub(1, Ordering::Relaxed);
    tally.errors.fetch_add(1, Ordering::Relaxed);
}

/// A subscription held on a replica itself: when each head left the node.
async fn direct(url: &str, tally: &Tally) -> Result<(), String> {
    let (mut ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .map_err(|e| e.to_string())?;
    ws.send(Message::text(SUBSCRIBE))
        .await
        .map_err(|e| e.to_string())?;
    while let Some(message) = ws.next().await {
        if let Ok(Message::Text(t)) = message {
            if let Some(n) = head_number(t.as_str()) {
                tally.direct.lock().entry(n).or_insert_with(Instant::now);
            }
        }
    }
    Err("the replica closed the subscription".into())
}

/// The block number of a `newHeads` notification, read without a full parse.
fn head_number(text: &str) -> Option<u64> {
    if !text.contains("eth_subscription") {
        return None;
    }
    let at = text.find("\"number\":\"0x")? + "\"number\":\"0x".len();
    let digits = &text[at..];
    let end = digits.find('"')?;
    u64::from_str_radix(&digits[..end], 16).ok()
}
