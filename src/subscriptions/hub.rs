//! One network's subscriptions: which clients follow which [`Topic`], and
//! the one upstream feed per topic that serves them all.
//!
//! The table is behind a plain mutex held for a few map operations at a time
//! (never across an await): subscribing, unsubscribing, and fanning one
//! notification out. Fan-out never waits on a client: each gets the message
//! through its connection's bounded [`Outbox`], and a full outbox closes that
//! connection rather than slowing the feed or buffering without bound.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use bytes::Bytes;
use prometheus::{IntCounter, IntCounterVec, IntGauge};
use tokio::sync::oneshot;

use super::topic::{Kind, Topic};
use super::{feed, NetworkSource, Outbox, SubscriptionError};
use crate::metrics::{each_gauge, Label, Metrics, WsLimit};

/// Notifications kept for a subscription whose id has not reached its
/// client yet (the answer to `eth_subscribe` is still being queued).
const MAX_PENDING: usize = 64;

/// Feeds started per client (`Caller::bucket`), over every network: one
/// client may hold only its share of `server.max_upstream_subscriptions`.
pub type FeedShares = Arc<Mutex<HashMap<String, usize>>>;

struct Client {
    /// Whose feed share this subscription counts in, if it holds the feed.
    key: String,
    outbox: Outbox,
    /// `Some` until the client has its subscription id: notifications wait
    /// here so none can arrive before the id does.
    pending: Option<Vec<Bytes>>,
}

struct Feed {
    id: u64,
    clients: HashMap<String, Client>,
    /// Dropped when the last client leaves: the feed unsubscribes upstream.
    _stop: oneshot::Sender<()>,
    /// The backend carrying the upstream subscription now.
    carrier: Option<String>,
    /// The client whose share the feed counts in: the one that started it,
    /// then another of its clients when that one leaves.
    holder: String,
}

/// The subscriptions of one network.
pub struct Hub {
    pub(super) network: String,
    pub(super) source: NetworkSource,
    feeds: Mutex<HashMap<Topic, Feed>>,
    /// Feeds running over every network (shared by all hubs), for
    /// `server.max_upstream_subscriptions`.
    all_feeds: Arc<AtomicUsize>,
    shares: FeedShares,
    next_feed: AtomicU64,
    upstream_subscribes: AtomicU64,
    failovers: AtomicU64,
    failovers_metric: IntCounter,
    /// `rpcgate_ws_subscriptions` by `Kind` position.
    pub(super) held: [IntGauge; 3],
    /// `rpcgate_ws_limit_hits_total`: its series are made when a bound first trips.
    limit_hits: IntCounterVec,
}

impl Hub {
    pub(super) fn new(
        network: &str,
        source: NetworkSource,
        all_feeds: Arc<AtomicUsize>,
        shares: FeedShares,
        metrics: &Metrics,
    ) -> Hub {
        Hub {
            network: network.to_string(),
            source,
            feeds: Mutex::new(HashMap::new()),
            all_feeds,
            shares,
            next_feed: AtomicU64::new(1),
            upstream_subscribes: AtomicU64::new(0),
            failovers: AtomicU64::new(0),
            failovers_metric: metrics.ws.failovers.with_label_values(&[network]),
            held: each_gauge::<Kind, 3>(&metrics.ws.subscriptions, &[network]),
            limit_hits: metrics.ws.limit_hits.clone(),
        }
    }

    fn table(&self) -> parking_lot::MutexGuard<'_, HashMap<Topic, Feed>> {
        // A panic elsewhere cannot leave these maps half-changed.
        self.feeds.lock()
    }

    /// Adds a client subscription of `client` (`Caller::bucket`), starting
    /// the topic's feed if it has none, fewer than `limits.feeds` run over
    /// the whole gateway and the client holds fewer than its share
    /// (`limits.feeds_per_client`). Joining a running feed is never refused.
    pub(super) fn add(
        self: &Arc<Self>,
        topic: &Topic,
        id: &str,
        outbox: Outbox,
        client: &str,
        limits: super::SessionLimits,
    ) -> Result<(), SubscriptionError> {
        let max_feeds = limits.feeds;
        let mut feeds = self.table();
        if !feeds.contains_key(topic) {
            let mut shares = self.shares.lock();
            let held = shares.get(client).copied().unwrap_or(0);
            if held >= limits.feeds_per_client && !super::switched_off("share") {
                drop(shares);
                drop(feeds);
                self.limit_hit(WsLimit::UpstreamSubscriptions);
                return Err(SubscriptionError::TooManyClientFeeds(
                    limits.feeds_per_client,
                ));
            }
            let admitted = self
                .all_feeds
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                    (n < max_feeds || super::switched_off("feeds")).then_some(n + 1)
                });
            if admitted.is_err() {
                drop(shares);
                drop(feeds);
                self.limit_hit(WsLimit::UpstreamSubscriptions);
                return Err(SubscriptionError::TooManyFeeds(max_feeds));
            }
            *shares.entry(client.to_string()).or_insert(0) += 1;
        }
        let feed = feeds.entry(topic.clone()).or_insert_with(|| {
            let (stop, stopped) = oneshot::channel();
            let id = self.next_feed.fetch_add(1, Ordering::Relaxed);
            let start = (self.source)(&self.network).and_then(|n| n.view().served_head);
            tokio::spawn(feed::run(self.clone(), topic.clone(), id, start, stopped));
            Feed {
                id,
                clients: HashMap::new(),
                _stop: stop,
                carrier: None,
                holder: client.to_string(),
            }
        });
        feed.clients.insert(
            id.to_string(),
            Client {
                key: client.to_string(),
                outbox,
                pending: Some(Vec::new()),
            },
        );
        Ok(())
    }

    /// Counts a cap that refused a subscription or closed a connection.
    pub(super) fn limit_hit(&self, limit: WsLimit) {
        self.limit_hits
            .with_label_values(&[&self.network, limit.label()])
            .inc();
    }

    /// The client has its id: what waited is sent, and the rest goes straight out.
    pub(super) fn activate(&self, topic: &Topic, id: &str) {
        let mut feeds = self.table();
        let Some(client) = feeds.get_mut(topic).and_then(|f| f.clients.get_mut(id)) else {
            return;
        };
        for message in client.pending.take().unwrap_or_default() {
            if !client.outbox.push(message) {
                break;
            }
        }
    }

    /// Removes a client subscription; the last one out stops the feed.
    pub(super) fn remove(&self, topic: &Topic, id: &str) {
        let mut feeds = self.table();
        if let Some(feed) = feeds.get_mut(topic) {
            feed.clients.remove(id);
            let holder_left = !feed.clients.values().any(|c| c.key == feed.holder);
            if !holder_left {
                return;
            }
            let mut shares = self.shares.lock();
            if let Some(n) = shares.get_mut(&feed.holder) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    shares.remove(&feed.holder);
                }
            }
            // The feed goes on for its other clients: one of them holds it now.
            match feed.clients.values().next().map(|c| c.key.clone()) {
                Some(next) => {
                    *shares.entry(next.clone()).or_insert(0) += 1;
                    feed.holder = next;
                }
                None => {
                    feeds.remove(topic);
                    self.all_feeds.fetch_sub(1, Ordering::AcqRel);
                }
            }
        }
    }

    /// Sends one upstream `result` to every client of the topic. Returns
    /// false when the feed has been stopped (no client is left).
    pub(super) fn deliver(&self, topic: &Topic, feed: u64, result: &[u8]) -> bool {
        let mut feeds = self.table();
        let Some(entry) = feeds.get_mut(topic).filter(|f| f.id == feed) else {
            return false;
        };
        for (id, client) in &mut entry.clients {
            let message = notification(id, result);
            match &mut client.pending {
                Some(waiting) if waiting.len() < MAX_PENDING => waiting.push(message),
                Some(_) => client.outbox.overflow(),
                None => {
                    client.outbox.push(message);
                }
            }
        }
        true
    }

    pub(super) fn set_carrier(&self, topic: &Topic, feed: u64, backend: Option<&str>) {
        if let Some(entry) = self.table().get_mut(topic).filter(|f| f.id == feed) {
            entry.carrier = backend.map(str::to_string);
        }
    }

    pub(super) fn counted_subscribe(&self) {
        self.upstream_subscribes.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn counted_failover(&self) {
        self.failovers.fetch_add(1, Ordering::Relaxed);
        self.failovers_metric.inc();
    }

    /// `eth_subscribe` calls sent upstream so far (each feed sends one per backend it uses).
    pub fn upstream_subscribes(&self) -> u64 {
        self.upstream_subscribes.load(Ordering::Relaxed)
    }

    /// Upstream subscriptions moved to another backend so far.
    pub fn failovers(&self) -> u64 {
        self.failovers.load(Ordering::Relaxed)
    }

    /// Upstream feeds running now (one per distinct topic with clients).
    pub fn feeds(&self) -> usize {
        self.table().len()
    }

    /// The backend carrying the feed of the first topic of `kind`, if it is subscribed now.
    pub fn carrier(&self, kind: Kind) -> Option<String> {
        self.table()
            .iter()
            .find(|(t, _)| t.kind == kind)
            .and_then(|(_, f)| f.carrier.clone())
    }
}

/// `{"jsonrpc":"2.0","method":"eth_subscription","params":{"subscription":<id>,"result":<raw>}}`
fn notification(id: &str, result: &[u8]) -> Bytes {
    const HEAD: &[u8] =
        br#"{"jsonrpc":"2.0","method":"eth_subscription","params":{"subscription":""#;
    let mut out = Vec::with_capacity(HEAD.len() + id.len() + result.len() + 16);
    out.extend_from_slice(HEAD);
    out.extend_from_slice(id.as_bytes());
    out.extend_from_slice(br#"","result":"#);
    out.extend_from_slice(result);
    out.extend_from_slice(b"}}");
    out.into()
}

#[cfg(test)]
mod tests {
    #[test]
    fn notifications_are_json() {
        let n = super::notification("0xab", br#"{"number":"0x1"}"#);
        let v: serde_json::Value = serde_json::from_slice(&n).unwrap();
        assert_eq!(v["method"], "eth_subscription");
        assert_eq!(v["params"]["subscription"], "0xab");
        assert_eq!(v["params"]["result"]["number"], "0x1");
    }
}
