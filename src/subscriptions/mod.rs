//! `eth_subscribe` over client WebSockets: multiplexing and failover.
//!
//! This module owns subscriptions from the moment a client asks for one to
//! the moment its connection closes:
//!
//! - **Ids** are the gateway's own (`0x` and 32 random hex digits, like
//!   Geth's), never a backend's: a client's subscription outlives the
//!   upstream socket that feeds it.
//! - **Multiplexing** ([`hub`]): all client subscriptions of one network with
//!   the same normalized request ([`topic`]) share one upstream subscription.
//!   The first client starts it, the last one leaving stops it (and
//!   unsubscribes upstream); a closed connection drops its subscriptions.
//! - **Failover** ([`feed`]): the upstream subscription lives on one eligible
//!   backend's WebSocket. When that socket drops or the backend stops being
//!   eligible in the network view, the feed subscribes on another eligible
//!   backend and fills the gap ([`gap`]): `newHeads` fetches the headers the
//!   client missed (every number once, in order; a number again only with a
//!   new hash, i.e. a reorg), `logs` fetches `eth_getLogs` over the blocks not
//!   yet covered and drops what was already delivered. `newPendingTransactions`
//!   is best effort: transactions announced while no backend was subscribed are
//!   not replayed (a pool has no history to ask for).
//!   With no eligible backend that has a `ws` URL, the feed retries with
//!   backoff for as long as it has clients; client subscriptions stay.
//! - **Session**: one per client connection, capped at
//!   `server.max_subscriptions_per_connection` subscriptions over at most
//!   `server.max_topics_per_connection` distinct topics.
//! - **Feeds** over the whole gateway are capped at
//!   `server.max_upstream_subscriptions`: each distinct `logs` filter opens
//!   one upstream subscription, so without a cap clients choose how many.
//!   A subscription that joins a running feed is never refused by it. One
//!   client (a key's client, or one IP) holds at most [`client_share`] of
//!   them (an eighth, at least 16), so it cannot take the cap every other
//!   client needs.
//!
//! Nothing here blocks on a client: notifications go through each
//! connection's [`Outbox`], bounded in bytes, and a client that does not read is
//! disconnected by its listener.

mod feed;
pub mod gap;
pub mod hub;
pub mod outbox;
pub mod topic;

use std::collections::HashMap;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

use parking_lot::Mutex;

use bytes::Bytes;
use prometheus::IntGauge;
use serde_json::value::RawValue;

pub use hub::Hub;
pub use outbox::{Outbox, Outgoing, PER_MESSAGE};
pub use topic::{Kind, Topic};

use crate::metrics::{Metrics, WsLimit};
use crate::network::Network;

/// Why a subscription call failed (turned into JSON-RPC in `calls::rescue`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubscriptionError {
    #[error("subscriptions need a WebSocket connection")]
    NeedsWebSocket,
    #[error("invalid params: {0}")]
    InvalidParams(&'static str),
    #[error("limit exceeded: at most {0} subscriptions per connection")]
    TooMany(usize),
    #[error("limit exceeded: at most {0} distinct subscription topics per connection")]
    TooManyTopics(usize),
    #[error("limit exceeded: the gateway holds its maximum of {0} upstream subscriptions")]
    TooManyFeeds(usize),
    #[error("limit exceeded: this client already holds its share of {0} upstream subscriptions")]
    TooManyClientFeeds(usize),
}

impl SubscriptionError {
    /// A cap was reached (-32005), rather than a request being wrong.
    pub fn is_limit(&self) -> bool {
        matches!(
            self,
            SubscriptionError::TooMany(_)
                | SubscriptionError::TooManyTopics(_)
                | SubscriptionError::TooManyFeeds(_)
                | SubscriptionError::TooManyClientFeeds(_)
        )
    }
}

/// Debug builds only: `RPCGATE_TEST_WS_OFF=queue,topics,feeds,grow,frame,write` turns
/// those WebSocket bounds off, so that their tests can be seen failing
/// without them. A release build never reads the variable.
pub fn switched_off(bound: &str) -> bool {
    cfg!(debug_assertions)
        && std::env::var("RPCGATE_TEST_WS_OFF").is_ok_and(|v| v.split(',').any(|b| b == bound))
}

/// Whether a method is answered by this module rather than routed.
pub fn is_subscription_method(method: &str) -> bool {
    matches!(method, "eth_subscribe" | "eth_unsubscribe")
}

/// The current network of a name, looked up each time it is needed so that
/// a feed follows reloads and never keeps a replaced network alive.
pub type NetworkSource = Arc<dyn Fn(&str) -> Option<Arc<Network>> + Send + Sync>;

/// Every network's [`Hub`], created on first use.
pub struct Hubs {
    source: NetworkSource,
    hubs: Mutex<HashMap<String, Arc<Hub>>>,
    /// Upstream feeds running now, over every network: what
    /// `server.max_upstream_subscriptions` caps.
    feeds: Arc<AtomicUsize>,
    /// Feeds each client holds, over every network.
    shares: hub::FeedShares,
    metrics: Metrics,
}

impl Hubs {
    pub fn new(source: NetworkSource, metrics: Metrics) -> Hubs {
        Hubs {
            source,
            metrics,
            hubs: Mutex::new(HashMap::new()),
            feeds: Arc::new(AtomicUsize::new(0)),
            shares: hub::FeedShares::default(),
        }
    }

    /// The hub of the network named `network` (a configured name).
    pub fn hub(&self, network: &str) -> Arc<Hub> {
        let mut hubs = self.hubs.lock();
        hubs.entry(network.to_string())
            .or_insert_with(|| {
                let (source, feeds) = (self.source.clone(), self.feeds.clone());
                let shares = self.shares.clone();
                Arc::new(Hub::new(network, source, feeds, shares, &self.metrics))
            })
            .clone()
    }
}

/// Makes the subscription gauges of `network` at zero, so that they exist
/// before its first subscription (its hub is made at the first).
pub fn network_started(metrics: &Metrics, network: &str) {
    crate::metrics::each_gauge::<Kind, 3>(&metrics.ws.subscriptions, &[network]);
}

/// The caps a [`Session`] enforces, from `server.*` when its connection opened.
#[derive(Debug, Clone, Copy)]
pub struct SessionLimits {
    /// `server.max_subscriptions_per_connection`
    pub subscriptions: usize,
    /// `server.max_topics_per_connection`: distinct topics (normalized requests).
    pub topics: usize,
    /// `server.max_upstream_subscriptions`: feeds over the whole gateway.
    pub feeds: usize,
    /// Feeds one client may start and hold (see [`client_share`]).
    pub feeds_per_client: usize,
}

/// The feeds one client (a key's client, or one IP when anonymous) may
/// hold: an eighth of `server.max_upstream_subscriptions`, at least 16 (or
/// the whole cap when it is smaller), so that one client's distinct `logs`
/// filters cannot take the cap that every other client's new filter needs.
pub fn client_share(max_feeds: usize) -> usize {
    (max_feeds / 8).max(16).min(max_feeds)
}

/// What a subscription call answers: the raw `result`, and the id of a
/// subscription it created (to activate once the answer is queued).
pub struct Answer {
    pub result: Bytes,
    pub created: Option<String>,
}

struct Held {
    topic: Topic,
    gauge: IntGauge,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.gauge.dec();
    }
}

/// The subscriptions of one client connection.
pub struct Session {
    hub: Arc<Hub>,
    /// The client's `Caller::bucket`: whose feed share its feeds count in.
    client: String,
    outbox: Outbox,
    limits: SessionLimits,
    subs: Mutex<HashMap<String, Held>>,
}

impl Session {
    pub fn new(hub: Arc<Hub>, client: String, outbox: Outbox, limits: SessionLimits) -> Session {
        Session {
            hub,
            client,
            outbox,
            limits,
            subs: Mutex::new(HashMap::new()),
        }
    }

    fn subs(&self) -> parking_lot::MutexGuard<'_, HashMap<String, Held>> {
        self.subs.lock()
    }

    /// Answers `eth_subscribe` or `eth_unsubscribe`.
    pub fn call(
        &self,
        method: &str,
        params: Option<&RawValue>,
    ) -> Result<Answer, SubscriptionError> {
        match method {
            "eth_subscribe" => self.subscribe(params),
            _ => self.unsubscribe(params),
        }
    }

    fn subscribe(&self, params: Option<&RawValue>) -> Result<Answer, SubscriptionError> {
        let topic = topic::parse(params)?;
        let mut subs = self.subs();
        let limits = self.limits;
        if subs.len() >= limits.subscriptions {
            return Err(SubscriptionError::TooMany(limits.subscriptions));
        }
        if !subs.values().any(|h| h.topic == topic) {
            let mut topics: Vec<&Topic> = subs.values().map(|h| &h.topic).collect();
            topics.sort_by(|a, b| a.params.cmp(&b.params));
            topics.dedup();
            if topics.len() >= limits.topics && !switched_off("topics") {
                self.hub.limit_hit(WsLimit::TopicsPerConnection);
                return Err(SubscriptionError::TooManyTopics(limits.topics));
            }
        }
        let id = format!("0x{:032x}", fastrand::u128(..));
        self.hub
            .add(&topic, &id, self.outbox.clone(), &self.client, limits)?;
        let gauge = self.hub.held[topic.kind as usize].clone();
        gauge.inc();
        subs.insert(id.clone(), Held { topic, gauge });
        Ok(Answer {
            result: Bytes::from(format!("\"{id}\"")),
            created: Some(id),
        })
    }

    fn unsubscribe(&self, params: Option<&RawValue>) -> Result<Answer, SubscriptionError> {
        let ids: Vec<&str> = params
            .and_then(|p| serde_json::from_str(p.get()).ok())
            .filter(|ids: &Vec<&str>| ids.len() == 1)
            .ok_or(SubscriptionError::InvalidParams(
                "expected [subscription id]",
            ))?;
        let removed = self.subs().remove(ids[0]);
        let found = match removed {
            Some(held) => {
                self.hub.remove(&held.topic, ids[0]);
                true
            }
            None => false,
        };
        Ok(Answer {
            result: Bytes::from_static(if found { b"true" } else { b"false" }),
            created: None,
        })
    }

    /// The answers naming these subscriptions are queued: let their notifications flow.
    pub fn activate(&self, ids: &[String]) {
        let subs = self.subs();
        for id in ids {
            if let Some(held) = subs.get(id) {
                self.hub.activate(&held.topic, id);
            }
        }
    }

    /// Subscriptions held now.
    pub fn len(&self) -> usize {
        self.subs().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        for (id, held) in self.subs().drain() {
            self.hub.remove(&held.topic, &id);
        }
    }
}
