//! Filters owned by the gateway: `eth_newFilter`, `eth_newBlockFilter`,
//! `eth_newPendingTransactionFilter`, `eth_getFilterChanges`,
//! `eth_getFilterLogs` and `eth_uninstallFilter` are answered here, never
//! forwarded to one node.
//!
//! Why: a filter that lives on one node dies with it, and with several
//! gateway replicas (or several backends) the next poll lands elsewhere and
//! gets "filter not found". Here a filter is a small record (the next block
//! to look at, the recent blocks seen) kept by the gateway, so any backend
//! answers the reads it needs, and with `redis:` any replica answers any poll.
//!
//! - **Block filters** read the gateway's window of canonical hashes (the
//!   cache's reorg loop, or the same loop run alone when the cache is off,
//!   see `network`): every block once, in order, up to the served head;
//!   after a reorg, the new blocks. A poll costs no upstream call (unless the
//!   filter fell below the window, then one `eth_getBlockByNumber` per block).
//! - **Log filters** call `eth_getLogs` for the blocks since the last poll,
//!   with an explicit range ending at the top of that window, routed like any
//!   read (so a node's loss is retried elsewhere). Logs of blocks a reorg
//!   replaced come again with `removed: true`, then the new ones.
//! - **Pending-transaction filters** read the hashes of one
//!   `newPendingTransactions` subscription, which the server runs while such
//!   a filter was created or polled within `expiry` ([`pending`]): each poll
//!   returns the hashes announced since the last one. Best effort, as on a
//!   node: nothing announced before the filter, or while no feed ran.
//!
//! Answers are shaped as Geth's: ids are hex quantities, an unknown id is
//! -32000 "filter not found", caps are -32005.

mod pending;
mod poll;
mod state;
mod store;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use bytes::Bytes;
use prometheus::{IntCounter, IntCounterVec, IntGauge};
use serde_json::Value;
use tokio::task::JoinHandle;

use crate::config::FiltersConfig;
use crate::jsonrpc::Reply;
use crate::metrics::{each, FilterMetrics, FilterRefusal};
use crate::redis_link::RedisLink;
use crate::router::{self, Forward, RouteError, Target};
use crate::upstream::chain::Canon;
use crate::upstream::NetworkView;
use pending::PendingLog;
pub use state::MAX_ALTERNATIVES;
use state::{Bound, Criteria, KindName, State};
pub use store::Cap;
use store::{Bounds, Local, RedisFilters, Store, StoreError};

/// The clock `Filters::pending_used` counts from.
static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);

fn now_ms() -> u64 {
    EPOCH.elapsed().as_millis() as u64
}

/// Blocks below the canonical window one block filter poll fetches at most
/// (one `eth_getBlockByNumber` each): on a chain whose finality is near its
/// head the window is shallow, and a poll must not turn into a thousand
/// upstream calls.
const MAX_FETCHES_PER_POLL: usize = 32;

/// The longest a filter call waits for Redis.
const REDIS_TIMEOUT: Duration = Duration::from_secs(1);

/// A filter method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterMethod {
    New,
    NewBlock,
    NewPending,
    Changes,
    Logs,
    Uninstall,
}

impl FilterMethod {
    pub fn of(method: &str) -> Option<FilterMethod> {
        Some(match method {
            "eth_newFilter" => FilterMethod::New,
            "eth_newBlockFilter" => FilterMethod::NewBlock,
            "eth_newPendingTransactionFilter" => FilterMethod::NewPending,
            "eth_getFilterChanges" => FilterMethod::Changes,
            "eth_getFilterLogs" => FilterMethod::Logs,
            "eth_uninstallFilter" => FilterMethod::Uninstall,
            _ => return None,
        })
    }
}

/// Why a filter call got no answer.
#[derive(Debug, thiserror::Error)]
pub enum FilterError {
    /// Geth's words, so clients that re-create lost filters recognize them.
    #[error("filter not found")]
    NotFound,
    #[error("invalid params: {0}")]
    InvalidParams(String),
    #[error("too many filters")]
    TooMany(Cap),
    #[error("eth_getFilterLogs spans {blocks} blocks, over the limit of {limit}")]
    LogRange { blocks: u64, limit: u64 },
    #[error("a backend answered eth_getLogs with something that is not a list of logs")]
    UnreadableLogs,
    #[error("filter state unavailable: {0}")]
    Unavailable(String),
    #[error(transparent)]
    Route(#[from] RouteError),
}

/// The filters of one network.
pub struct Filters {
    network: String,
    config: FiltersConfig,
    /// The canonical hashes, kept by a reorg loop the network runs.
    chain: Arc<ArcSwap<Canon>>,
    store: Arc<Store>,
    /// The hashes pending filters read, beside the store (same place).
    pending: Arc<PendingLog>,
    /// When a pending filter was last created or polled (ms on `EPOCH`,
    /// 0: never): the server feeds `pending` while this is recent.
    pending_used: AtomicU64,
    sweeper: Option<JoinHandle<()>>,
    series: FilterSeries,
}

/// A network's filter series, resolved once (and so made at zero when the
/// network starts, filters on or off).
#[derive(Clone)]
pub struct FilterSeries {
    live: IntGauge,
    /// By `KindName` position.
    created: [IntCounter; 3],
    expired: IntCounter,
    /// By `FilterRefusal` position.
    refused: [IntCounter; 3],
    state_bytes: IntGauge,
    /// Its series is made when the pending feed first records.
    pending_hashes: IntCounterVec,
}

impl FilterSeries {
    pub fn resolve(m: &FilterMetrics, network: &str) -> FilterSeries {
        FilterSeries {
            live: m.live.with_label_values(&[network]),
            created: each::<KindName, 3>(&m.created, &[network]),
            expired: m.expired.with_label_values(&[network]),
            refused: each::<FilterRefusal, 3>(&m.refused, &[network]),
            state_bytes: m.state_bytes.with_label_values(&[network]),
            pending_hashes: m.pending_hashes.clone(),
        }
    }
}

impl Filters {
    /// Starts the filters of `network`: in Redis when `redis` is given, else
    /// in memory (taking over `previous`'s filters after a reload).
    pub fn start(
        network: &str,
        config: &FiltersConfig,
        redis: Option<(&Arc<RedisLink>, &str)>,
        chain: Arc<ArcSwap<Canon>>,
        previous: Option<&Filters>,
        series: FilterSeries,
    ) -> Filters {
        let shared =
            redis.map(|(link, space)| RedisFilters::new(link.clone(), space, REDIS_TIMEOUT));
        let kept = config.max_pending_hashes;
        let (store, pending) = match (shared, previous) {
            (Some(s), _) => {
                let log = PendingLog::Redis(s.pending_log(kept));
                (Arc::new(Store::Redis(s)), Arc::new(log))
            }
            (None, Some(old)) if matches!(*old.store, Store::Local(_)) => {
                (old.store.clone(), old.pending.clone())
            }
            (None, _) => (
                Arc::new(Store::Local(Local::default())),
                Arc::new(PendingLog::local(kept)),
            ),
        };
        let pending_used = previous.map_or(0, |p| p.pending_used.load(Ordering::Relaxed));
        let sweeper = matches!(*store, Store::Local(_))
            .then(|| tokio::spawn(sweep(series.clone(), Arc::downgrade(&store), config.expiry)));
        Filters {
            network: network.to_string(),
            config: config.clone(),
            chain,
            store,
            pending,
            pending_used: AtomicU64::new(pending_used),
            sweeper,
            series,
        }
    }

    /// Whether a pending filter was created or polled within `expiry`: the
    /// server keeps a `newPendingTransactions` feed running for them while
    /// this holds.
    pub fn pending_wanted(&self) -> bool {
        let used = self.pending_used.load(Ordering::Relaxed);
        used != 0 && now_ms().saturating_sub(used) < self.config.expiry.as_millis() as u64
    }

    fn pending_touched(&self) {
        self.pending_used.store(now_ms().max(1), Ordering::Relaxed);
    }

    /// Records hashes the pending feed announced (best effort: a store that
    /// cannot take them now loses them, as a node's filter would).
    pub async fn record_pending(&self, hashes: &[String]) {
        match self.pending.append(hashes, self.config.expiry).await {
            Ok(n) => self
                .series
                .pending_hashes
                .with_label_values(&[&self.network])
                .inc_by(n as u64),
            Err(e) => {
                tracing::warn!(network = %self.network, error = %e, "pending hashes not recorded")
            }
        }
    }

    fn bounds(&self) -> Bounds {
        Bounds {
            expiry: self.config.expiry,
            max_per_client: self.config.max_per_client,
            max_total: self.config.max_total,
            max_bytes: self.config.max_state_bytes,
        }
    }

    /// Answers one filter call for `client` (`Caller::bucket`), reading
    /// `view` and routing the reads it needs to `target`; `max_logs_blocks`
    /// bounds `eth_getFilterLogs` as it bounds `eth_getLogs`.
    pub async fn answer(
        &self,
        target: Target<'_>,
        view: &NetworkView,
        method: FilterMethod,
        params: Option<&str>,
        client: &str,
        max_logs_blocks: u64,
    ) -> Result<Reply, FilterError> {
        let served = view.served_head.ok_or(RouteError::NoBackend)?;
        match method {
            FilterMethod::NewBlock => {
                self.create(State::new(
                    client.into(),
                    KindName::Block,
                    None,
                    served.saturating_add(1),
                ))
                .await
            }
            FilterMethod::NewPending => {
                self.pending_touched();
                let mut state = State::new(
                    client.into(),
                    KindName::Pending,
                    None,
                    served.saturating_add(1),
                );
                state.cursor = Some(self.pending.cursor_now().await.map_err(unavailable)?);
                self.create(state).await
            }
            FilterMethod::New => {
                let criteria = Criteria::parse(params).map_err(FilterError::InvalidParams)?;
                let next = match criteria.from {
                    Bound::Number(n) => n.max(served.saturating_add(1)),
                    _ => served.saturating_add(1),
                };
                self.create(State::new(
                    client.into(),
                    KindName::Log,
                    Some(criteria),
                    next,
                ))
                .await
            }
            FilterMethod::Changes => {
                let id = id_param(params)?.ok_or(FilterError::NotFound)?;
                self.changes(target, view, &id, client).await
            }
            FilterMethod::Logs => {
                let id = id_param(params)?.ok_or(FilterError::NotFound)?;
                self.logs(target, view, &id, client, served, max_logs_blocks)
                    .await
            }
            FilterMethod::Uninstall => {
                let removed = match id_param(params)? {
                    Some(id) => self.store.remove(&id, client).await.map_err(unavailable)?,
                    None => false,
                };
                self.count_live();
                Ok(json(if removed { "true" } else { "false" }))
            }
        }
    }

    async fn create(&self, state: State) -> Result<Reply, FilterError> {
        let id = state::new_id()
            .ok_or_else(|| FilterError::Unavailable("no randomness for a filter id".into()))?;
        let m = &self.series;
        match self.store.create(&id, &state, self.bounds()).await {
            Ok((live, expired)) => {
                m.created[state.kind as usize].inc();
                m.expired.inc_by(expired);
                m.live.set(live as i64);
                self.count_live();
                Ok(json(&format!("\"{id}\"")))
            }
            Err(StoreError::Refused(cap)) => {
                let reason = match cap {
                    Cap::Client(_) => FilterRefusal::Client,
                    Cap::Total(_) => FilterRefusal::Total,
                    Cap::Bytes(_) => FilterRefusal::Bytes,
                };
                m.refused[reason as usize].inc();
                Err(FilterError::TooMany(cap))
            }
            Err(StoreError::Unavailable(why) | StoreError::Unknown(why)) => {
                Err(FilterError::Unavailable(why))
            }
        }
    }

    async fn changes(
        &self,
        target: Target<'_>,
        view: &NetworkView,
        id: &str,
        client: &str,
    ) -> Result<Reply, FilterError> {
        let (version, mut state) = self.load_owned(id, client).await?;
        let chain = self.chain.load_full();
        let max = self.config.max_poll_blocks;
        let delivered: Vec<Value> = match state.kind {
            KindName::Pending => {
                self.pending_touched();
                let cursor = match state.cursor.take() {
                    Some(c) => c,
                    None => self.pending.cursor_now().await.map_err(unavailable)?,
                };
                let (hashes, last) = self
                    .pending
                    .since(&cursor, self.config.max_pending_hashes)
                    .await
                    .map_err(unavailable)?;
                state.cursor = Some(last);
                hashes.into_iter().map(Value::String).collect()
            }
            KindName::Block => {
                let mut hashes = Vec::new();
                let mut fetched = 0;
                let next = state.next;
                let span = poll::block_span(&mut state, &chain, max);
                tracing::debug!(filter = id, next, ?span, base = chain.base(), top = ?chain.top(), stamp = ?chain.stamp, "block filter poll");
                if let Some((from, to)) = span {
                    for n in from..=to {
                        let hash = match chain.hash(n) {
                            Some(h) => *h,
                            // Below the window: a call per block, so few
                            // per poll; the next poll goes on from here.
                            None if fetched == MAX_FETCHES_PER_POLL => break,
                            None => {
                                fetched += 1;
                                block_hash(target, view, n).await?
                            }
                        };
                        let tag = state::hash_tag(&hash);
                        tracing::debug!(filter = id, n, tag = %format_args!("{tag:016x}"), again = poll::delivered(&state, n, tag), "block filter block");
                        if !poll::delivered(&state, n, tag) {
                            poll::record_delivery(&mut state, n, tag);
                            hashes.push(Value::String(crate::eth::hash::to_hex(&hash)));
                        }
                    }
                }
                hashes
            }
            KindName::Log => {
                let criteria = state.criteria.clone().ok_or(FilterError::NotFound)?;
                let end = match (criteria.block_hash.is_some(), criteria.to) {
                    (true, _) => Some(0),
                    (false, Bound::Number(n)) => Some(n),
                    (false, Bound::Earliest) => Some(0),
                    (false, Bound::Moving) => None,
                };
                let mut out = poll::rewind(&mut state, &chain);
                if let Some((from, to)) = poll::span(&state, &chain, end, max) {
                    let params = criteria.logs_params(from, to);
                    let reply = router::forward(
                        target,
                        view,
                        Forward {
                            method: "eth_getLogs",
                            params: Some(&params),
                            min_head: to,
                            state_at: None,
                            block: None,
                        },
                    )
                    .await?;
                    if reply.is_error() {
                        // The node's own refusal, as it gave it; the filter
                        // stays where it was.
                        return Ok(reply);
                    }
                    let logs: Vec<Value> =
                        reply.parse_result().ok_or(FilterError::UnreadableLogs)?;
                    if poll::accept_logs(&mut state, &chain, from, to, &logs).is_ok() {
                        out.extend(logs);
                    }
                    poll::trim_replay(&mut state, self.config.max_replay_bytes);
                }
                out
            }
        };
        let saved = match self.store.save(id, version, &state, self.bounds()).await {
            Ok(saved) => saved,
            Err(StoreError::Unknown(why)) => self.saved_after_all(id, version, &state, why).await?,
            Err(e) => return Err(unavailable(e)),
        };
        self.count_live();
        // A poll of the same filter that finished first delivered these.
        let delivered = if saved { delivered } else { Vec::new() };
        Ok(Reply::result_from(Bytes::from(
            Value::Array(delivered).to_string(),
        )))
    }

    async fn logs(
        &self,
        target: Target<'_>,
        view: &NetworkView,
        id: &str,
        client: &str,
        served: u64,
        limit: u64,
    ) -> Result<Reply, FilterError> {
        let (_, state) = self.load_owned(id, client).await?;
        let criteria = state.criteria.ok_or(FilterError::NotFound)?;
        let (params, min_head) = match &criteria.block_hash {
            Some(hash) => (criteria.block_hash_params(hash), 0),
            None => {
                let at = |b: Bound| match b {
                    Bound::Number(n) => n,
                    Bound::Earliest => 0,
                    Bound::Moving => served,
                };
                let (from, to) = (at(criteria.from), at(criteria.to));
                if from > to {
                    return Ok(json("[]"));
                }
                let blocks = to - from + 1;
                if blocks > limit {
                    return Err(FilterError::LogRange { blocks, limit });
                }
                (criteria.logs_params(from, to), to)
            }
        };
        Ok(router::forward(
            target,
            view,
            Forward {
                method: "eth_getLogs",
                params: Some(&params),
                min_head,
                state_at: None,
                block: None,
            },
        )
        .await?)
    }

    /// Whether a poll's save whose answer never came was applied. Failing
    /// the poll when it was would lose what it delivers for good: the next
    /// poll starts after it. So a read of the filter settles it (on Redis's
    /// one connection it is answered after the save): still at `version`,
    /// not applied (the poll fails, the next one delivers the same); at the
    /// next version with `state`, applied; anything else, another poll of
    /// the filter won (it delivered these). When that read fails too the
    /// save is taken as applied: a slow Redis applies what it was sent, and
    /// were it lost, the next poll would deliver the same again.
    async fn saved_after_all(
        &self,
        id: &str,
        version: u64,
        state: &State,
        why: String,
    ) -> Result<bool, FilterError> {
        match self.store.load(id).await {
            Ok(Some((now, _))) if now == version => Err(FilterError::Unavailable(why)),
            Ok(Some((now, saved))) => Ok(now == version + 1 && saved == *state),
            Ok(None) => Ok(false),
            Err(_) => Ok(true),
        }
    }

    /// The filter `id` if `client` made it: another client's filter is
    /// "not found", as if the id were wrong (a poll consumes what the owner
    /// would have been given, and an uninstall ends its filter).
    async fn load_owned(&self, id: &str, client: &str) -> Result<(u64, State), FilterError> {
        self.store
            .load(id)
            .await
            .map_err(unavailable)?
            .filter(|(_, s)| s.client == client)
            .ok_or(FilterError::NotFound)
    }

    fn count_live(&self) {
        if let Store::Local(l) = &*self.store {
            self.series.live.set(l.live() as i64);
            self.series.state_bytes.set(l.bytes() as i64);
        }
    }
}

impl Drop for Filters {
    fn drop(&mut self) {
        if let Some(task) = &self.sweeper {
            task.abort();
        }
    }
}

/// Drops in-memory filters past their deadline, a few times per expiry.
async fn sweep(series: FilterSeries, store: std::sync::Weak<Store>, expiry: Duration) {
    let every = (expiry / 4).clamp(Duration::from_millis(100), Duration::from_secs(30));
    loop {
        tokio::time::sleep(every).await;
        let Some(store) = store.upgrade() else {
            return;
        };
        if let Store::Local(l) = &*store {
            let expired = l.sweep(Instant::now());
            series.expired.inc_by(expired);
            series.live.set(l.live() as i64);
            series.state_bytes.set(l.bytes() as i64);
        }
    }
}

/// `[id]`: `None` when the id cannot be one of ours.
fn id_param(params: Option<&str>) -> Result<Option<String>, FilterError> {
    let [id]: [String; 1] = serde_json::from_str(params.unwrap_or("[]"))
        .map_err(|_| FilterError::InvalidParams("expected [filter id]".into()))?;
    Ok(state::parse_id(&id))
}

/// The hash of block `n`, from a backend (a filter below the hash window).
async fn block_hash(
    target: Target<'_>,
    view: &NetworkView,
    n: u64,
) -> Result<crate::eth::Hash, FilterError> {
    #[derive(serde::Deserialize)]
    struct Block {
        hash: String,
    }
    let params = format!("[\"0x{n:x}\",false]");
    let reply = router::forward(
        target,
        view,
        Forward {
            method: "eth_getBlockByNumber",
            params: Some(&params),
            min_head: n,
            state_at: None,
            block: None,
        },
    )
    .await?;
    reply
        .parse_result::<Option<Block>>()
        .flatten()
        .and_then(|b| crate::eth::parse_hash(&b.hash))
        .ok_or(FilterError::Route(RouteError::BlockUnavailable(n)))
}

fn unavailable(e: StoreError) -> FilterError {
    match e {
        StoreError::Refused(cap) => FilterError::TooMany(cap),
        StoreError::Unavailable(why) | StoreError::Unknown(why) => FilterError::Unavailable(why),
    }
}

fn json(text: &str) -> Reply {
    Reply::result_from(Bytes::from(text.to_string()))
}
