//! One upstream subscription, kept alive across backends.
//!
//! A feed runs while its topic has clients. It picks an eligible backend
//! with a `ws` URL (the highest head; the one that just failed only when it
//! is the only choice), subscribes there, catches up on what the clients
//! missed (see [`super::gap`]), then forwards notifications until the socket
//! drops, the backend leaves the eligible set (checked against the network
//! view a few times a second), or the last client leaves (then it sends
//! `eth_unsubscribe` and closes). Missing headers and logs are fetched from
//! the backend just subscribed to: it has at least the blocks it announces.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;
use std::sync::Arc;
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::gap::{HeadStep, Heads, LogId, Logs, MAX_HEAD_GAP, MAX_REORG_WALK};
use super::topic::{Kind, Topic};
use super::Hub;
use crate::eth::parse_quantity;
use crate::metrics::Label;
use crate::upstream::Backend;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const MIN_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// A subscription that lived this long moves to another backend without a pause.
const STEADY: Duration = Duration::from_secs(1);
/// How often the carrying backend's eligibility is checked.
const ELIGIBILITY_CHECK: Duration = Duration::from_millis(250);
/// Blocks per `eth_getLogs` call when a gap is filled.
const LOGS_CHUNK: u64 = 1000;

type Socket = WebSocketStream<crate::upstream::UpstreamStream>;

/// A backend to subscribe on.
struct FeedBackend {
    backend: Arc<Backend>,
    ws: http::Uri,
    timeout: Duration,
}

/// What the feed has delivered, carried across backends.
struct Delivered {
    heads: Heads,
    logs: Logs,
}

impl Delivered {
    /// Clients subscribed when the gateway served `start`: they get what
    /// comes after it, even what is mined before the first upstream
    /// subscription is confirmed.
    fn after(start: Option<u64>) -> Delivered {
        let mut logs = Logs::default();
        if let Some(n) = start {
            logs.covered_to(n);
        }
        Delivered {
            heads: start.map_or_else(Heads::default, Heads::starting_after),
            logs,
        }
    }
}

/// Runs until `stop` fires (its sender is dropped with the last client).
/// `start`: the served head when the first client subscribed.
pub(super) async fn run(
    hub: Arc<Hub>,
    topic: Topic,
    feed: u64,
    start: Option<u64>,
    mut stop: oneshot::Receiver<()>,
) {
    let mut delivered = Delivered::after(start);
    let mut avoid: Option<String> = None;
    let mut backoff = MIN_BACKOFF;
    let mut sessions = 0u64;
    let mut warned = false;
    loop {
        let Some(target) = pick(&hub, avoid.as_deref()) else {
            if !warned {
                tracing::warn!(network = %hub.network, kind = topic.kind.label(),
                    "no eligible backend with a ws URL for a subscription; retrying");
                warned = true;
            }
            if pause(&mut stop, backoff).await {
                return;
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
            continue;
        };
        hub.set_carrier(&topic, feed, Some(&target.backend.name));
        let began = tokio::time::Instant::now();
        let mut established = false;
        let outcome = session(
            &hub,
            &topic,
            feed,
            &target,
            &mut delivered,
            &mut stop,
            sessions > 0,
            &mut established,
        )
        .await;
        hub.set_carrier(&topic, feed, None);
        let why = match outcome {
            Ok(()) => return,
            Err(why) => why,
        };
        // A subscription that lived a while moves at once; one that keeps
        // failing right away (or never took) is retried with backoff, so two
        // flapping backends cannot make this loop spin.
        let lasted = began.elapsed() >= STEADY;
        if established {
            sessions += 1;
            warned = false;
            tracing::warn!(network = %hub.network, backend = %target.backend.name,
                kind = topic.kind.label(), error = %why, "upstream subscription lost; moving it");
        } else {
            tracing::debug!(network = %hub.network, backend = %target.backend.name,
                error = %why, "upstream subscription failed");
        }
        avoid = Some(target.backend.name.clone());
        if established && lasted {
            backoff = MIN_BACKOFF;
        } else {
            if pause(&mut stop, backoff).await {
                return;
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }
}

/// Sleeps, or returns true at once when the feed is stopped.
async fn pause(stop: &mut oneshot::Receiver<()>, wait: Duration) -> bool {
    tokio::select! {
        _ = stop => true,
        _ = tokio::time::sleep(wait) => false,
    }
}

/// The eligible backend with a ws URL and the highest head, preferring any
/// other than `avoid`; ties are broken at random to spread feeds.
fn pick(hub: &Hub, avoid: Option<&str>) -> Option<FeedBackend> {
    let network = (hub.source)(&hub.network)?;
    let view = network.view();
    let mut candidates: Vec<_> = view
        .eligible()
        .filter(|b| b.backend.ws.is_some() && !b.backend.is_ejected())
        .collect();
    if candidates
        .iter()
        .any(|b| Some(b.backend.name.as_str()) != avoid)
    {
        candidates.retain(|b| Some(b.backend.name.as_str()) != avoid);
    }
    let best = candidates.iter().map(|b| b.head).max()?;
    candidates.retain(|b| b.head == best);
    let chosen = candidates[fastrand::usize(..candidates.len())];
    Some(FeedBackend {
        backend: chosen.backend.clone(),
        ws: chosen.backend.ws.clone()?,
        timeout: network.config.request_timeout,
    })
}

/// Whether the backend named `name` is still eligible in the current view.
fn still_eligible(hub: &Hub, name: &str) -> bool {
    let Some(network) = (hub.source)(&hub.network) else {
        return false;
    };
    let view = network.view();
    let eligible = view
        .backends
        .iter()
        .any(|b| b.backend.name == name && b.eligible() && !b.backend.is_ejected());
    eligible
}

/// One upstream subscription on one backend. `Ok` when stopped (the last
/// client left); `Err` when it must move. `established` turns true once the
/// backend confirmed the subscription.
#[allow(clippy::too_many_arguments)]
async fn session(
    hub: &Hub,
    topic: &Topic,
    feed: u64,
    target: &FeedBackend,
    delivered: &mut Delivered,
    stop: &mut oneshot::Receiver<()>,
    failover: bool,
    established: &mut bool,
) -> Result<(), String> {
    let connect = target.backend.connect_ws(&target.ws);
    let mut ws = tokio::time::timeout(CONNECT_TIMEOUT, connect)
        .await
        .map_err(|_| "connect timed out".to_string())?
        .map_err(|e| format!("connect: {e}"))?;
    let subscribe = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"eth_subscribe","params":{}}}"#,
        topic.params
    );
    ws.send(Message::text(subscribe))
        .await
        .map_err(|e| e.to_string())?;
    let upstream_id = tokio::time::timeout(target.timeout, confirmation(&mut ws))
        .await
        .map_err(|_| "no answer to eth_subscribe".to_string())??;
    *established = true;
    hub.counted_subscribe();
    if failover {
        hub.counted_failover();
    }
    tracing::debug!(network = %hub.network, backend = %target.backend.name,
        kind = topic.kind.label(), "upstream subscription live");

    let mut out = Delivery {
        hub,
        topic,
        feed,
        target,
        delivered,
    };
    out.catch_up().await?;
    let mut tick = tokio::time::interval(ELIGIBILITY_CHECK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = &mut *stop => {
                let bye = format!(
                    r#"{{"jsonrpc":"2.0","id":2,"method":"eth_unsubscribe","params":["{upstream_id}"]}}"#
                );
                let _ = tokio::time::timeout(Duration::from_secs(1), async {
                    let _ = ws.send(Message::text(bye)).await;
                    let _ = ws.close(None).await;
                })
                .await;
                return Ok(());
            }
            _ = tick.tick() => {
                if !still_eligible(hub, &target.backend.name) {
                    return Err("backend is no longer eligible".into());
                }
            }
            message = ws.next() => {
                let message = message
                    .ok_or("connection ended")?
                    .map_err(|e| e.to_string())?;
                match message {
                    Message::Text(text) => out.notification(text.as_str(), &upstream_id).await?,
                    Message::Close(_) => return Err("closed by the backend".into()),
                    _ => {}
                }
            }
        }
    }
}

/// Reads until the answer to `eth_subscribe` (id 1): the upstream id.
async fn confirmation(ws: &mut Socket) -> Result<String, String> {
    #[derive(Deserialize)]
    struct Confirm {
        id: Option<Value>,
        result: Option<String>,
        error: Option<Value>,
    }
    while let Some(message) = ws.next().await {
        let text = match message.map_err(|e| e.to_string())? {
            Message::Text(t) => t,
            Message::Close(_) => return Err("closed by the backend".into()),
            _ => continue,
        };
        let Ok(c) = serde_json::from_str::<Confirm>(text.as_str()) else {
            continue;
        };
        if c.id != Some(Value::from(1)) {
            continue;
        }
        if let Some(e) = c.error {
            return Err(format!("eth_subscribe refused: {e}"));
        }
        return c
            .result
            .ok_or_else(|| "eth_subscribe answered no id".into());
    }
    Err("connection ended".into())
}

/// Delivery for one session: catch-up, gap filling, de-duplication.
struct Delivery<'a> {
    hub: &'a Hub,
    topic: &'a Topic,
    feed: u64,
    target: &'a FeedBackend,
    delivered: &'a mut Delivered,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Header {
    number: String,
    hash: String,
    #[serde(default)]
    parent_hash: Option<String>,
}

/// What identifies a header: its number, its hash and its parent's hash.
struct HeaderId {
    number: u64,
    hash: String,
    parent: Option<String>,
}

impl Delivery<'_> {
    fn deliver(&self, raw: &[u8]) {
        self.hub.deliver(self.topic, self.feed, raw);
    }

    async fn call(&self, method: &str, params: &str) -> Result<crate::jsonrpc::Reply, String> {
        let reply = self
            .target
            .backend
            .exchange(method, Some(params), self.target.timeout)
            .await
            .map_err(|e| format!("{method}: {e}"))?;
        if reply.is_error() {
            return Err(format!(
                "{method}: {}",
                String::from_utf8_lossy(reply.raw())
            ));
        }
        Ok(reply)
    }

    /// Right after subscribing: what the clients missed while no backend
    /// was subscribed, up to this backend's head.
    async fn catch_up(&mut self) -> Result<(), String> {
        match self.topic.kind {
            Kind::NewHeads => {
                let latest = self
                    .call("eth_getBlockByNumber", r#"["latest",false]"#)
                    .await?;
                if self.delivered.heads.last().is_none() {
                    // No starting point known: clients get what comes next.
                    if let Some(id) = header_id(latest.raw()) {
                        self.delivered.heads.delivered(id.number, &id.hash);
                    }
                    return Ok(());
                }
                self.header(latest.raw()).await
            }
            Kind::Logs => {
                let head = self.call("eth_blockNumber", "[]").await?;
                let head = head
                    .parse_result::<String>()
                    .as_deref()
                    .and_then(parse_quantity)
                    .ok_or("eth_blockNumber: not a quantity")?;
                if let Some((from, to)) = self.delivered.logs.missing(head) {
                    self.fill_logs(from, to).await?;
                }
                self.delivered.logs.covered_to(head);
                Ok(())
            }
            Kind::NewPendingTransactions => Ok(()),
        }
    }

    async fn notification(&mut self, text: &str, upstream_id: &str) -> Result<(), String> {
        #[derive(Deserialize)]
        struct Note<'a> {
            #[serde(borrow)]
            params: Option<Params<'a>>,
        }
        #[derive(Deserialize)]
        struct Params<'a> {
            subscription: String,
            #[serde(borrow)]
            result: &'a RawValue,
        }
        let Ok(Note { params: Some(p) }) = serde_json::from_str::<Note>(text) else {
            return Ok(());
        };
        if p.subscription != upstream_id {
            return Ok(());
        }
        let raw = p.result.get().as_bytes();
        match self.topic.kind {
            Kind::NewHeads => self.header(raw).await,
            Kind::Logs => {
                self.log(raw);
                Ok(())
            }
            Kind::NewPendingTransactions => {
                self.deliver(raw);
                Ok(())
            }
        }
    }

    /// A header from this backend: delivered, skipped, or preceded by the
    /// headers between the last delivered one and it.
    async fn header(&mut self, raw: &[u8]) -> Result<(), String> {
        let Some(id) = header_id(raw) else {
            return Ok(());
        };
        match self.delivered.heads.judge(id.number, &id.hash) {
            HeadStep::Skip => return Ok(()),
            HeadStep::Deliver => self.replaced_below(&id).await?,
            HeadStep::Fill { from, to } => {
                if self
                    .delivered
                    .heads
                    .last()
                    .is_some_and(|l| from > l.saturating_add(1))
                {
                    tracing::warn!(network = %self.hub.network, missed = from - 1,
                        "newHeads gap larger than {MAX_HEAD_GAP} blocks; older headers skipped");
                }
                for n in from..=to {
                    let (block, got) = self.block(n).await?;
                    if n == from {
                        self.replaced_below(&got).await?;
                    }
                    self.deliver(block.raw());
                    self.delivered.heads.delivered(n, &got.hash);
                }
            }
        }
        self.deliver(raw);
        self.delivered.heads.delivered(id.number, &id.hash);
        Ok(())
    }

    /// Before header `id` goes out: when its parent is not the header
    /// delivered one below it, the chain changed below it too (a reorg seen
    /// only now, by a feed that moved, say), and the replacements of the
    /// delivered headers are fetched back to where the chains meet (at most
    /// [`MAX_REORG_WALK`] blocks) and delivered first, oldest first, as a
    /// node announces a new branch.
    async fn replaced_below(&mut self, id: &HeaderId) -> Result<(), String> {
        let mut replacements = Vec::new();
        let (mut number, mut parent) = (id.number, id.parent.clone());
        while let (Some(p), Some(below)) = (parent.as_deref(), number.checked_sub(1)) {
            let Some(known) = self.delivered.heads.hash_at(below) else {
                break;
            };
            if known.eq_ignore_ascii_case(p) || replacements.len() >= MAX_REORG_WALK {
                break;
            }
            let (block, got) = self.block(below).await?;
            if !got.hash.eq_ignore_ascii_case(p) {
                return Err(format!(
                    "block {below} is not the parent of the next one here"
                ));
            }
            parent = got.parent.clone();
            number = below;
            replacements.push((block, got));
        }
        for (block, got) in replacements.into_iter().rev() {
            self.deliver(block.raw());
            self.delivered.heads.delivered(got.number, &got.hash);
        }
        Ok(())
    }

    /// Block `n` of this backend, without transactions.
    async fn block(&self, n: u64) -> Result<(crate::jsonrpc::Reply, HeaderId), String> {
        let block = self
            .call("eth_getBlockByNumber", &format!(r#"["0x{n:x}",false]"#))
            .await?;
        let got = header_id(block.raw()).ok_or_else(|| format!("backend has no block {n}"))?;
        if got.number != n {
            return Err(format!("asked for block {n}, got {}", got.number));
        }
        Ok((block, got))
    }

    /// A log from this backend: delivered unless already delivered, after
    /// the removal of the logs a reorg it reveals took out.
    fn log(&mut self, raw: &[u8]) {
        let Some(id) = log_id(raw) else {
            // A log without a block (pending) cannot be de-duplicated: pass it on.
            self.deliver(raw);
            return;
        };
        let admitted = self.delivered.logs.admit(&id, raw);
        for removed in &admitted.removed {
            self.deliver(removed);
        }
        if admitted.deliver {
            self.deliver(raw);
        }
    }

    /// `eth_getLogs` over `from..=to` in chunks, delivering what is new.
    async fn fill_logs(&mut self, from: u64, to: u64) -> Result<(), String> {
        let filter = self.topic.filter.clone().unwrap_or_default();
        let mut start = from;
        while start <= to {
            let end = to.min(start.saturating_add(LOGS_CHUNK - 1));
            let mut f = filter.clone();
            f.insert("fromBlock".into(), format!("0x{start:x}").into());
            f.insert("toBlock".into(), format!("0x{end:x}").into());
            let params = Value::Array(vec![Value::Object(f)]).to_string();
            let reply = self.call("eth_getLogs", &params).await?;
            let logs: Vec<&RawValue> = serde_json::from_slice(reply.raw())
                .map_err(|_| "eth_getLogs: not a list".to_string())?;
            for raw in logs {
                self.log(raw.get().as_bytes());
            }
            if end == u64::MAX {
                break;
            }
            start = end + 1;
        }
        Ok(())
    }
}

fn header_id(raw: &[u8]) -> Option<HeaderId> {
    let h: Header = serde_json::from_slice(raw).ok()?;
    Some(HeaderId {
        number: parse_quantity(&h.number)?,
        hash: h.hash,
        parent: h.parent_hash,
    })
}

fn log_id(raw: &[u8]) -> Option<LogId> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Wire {
        block_number: Option<String>,
        block_hash: Option<String>,
        log_index: Option<String>,
        #[serde(default)]
        removed: bool,
    }
    let w: Wire = serde_json::from_slice(raw).ok()?;
    Some(LogId {
        block: parse_quantity(w.block_number.as_deref()?)?,
        block_hash: w.block_hash?,
        index: parse_quantity(w.log_index.as_deref()?)?,
        removed: w.removed,
    })
}
