//! `/eth/v1/events`: the nodes' event streams, served by the gateway.
//!
//! Clients asking for the same topic set ([`topics`]) share one stream from
//! one node ([`shared`]): a task reads it ([`sse`]) and puts each event, as
//! written once for every client, into a broadcast ring that each client's
//! task ([`client`]) reads, with keep-alive comments between events. When
//! the node fails, stops being eligible or falls behind the head the nodes
//! agree on, the stream moves to another eligible node; clients' streams
//! stay open, the events of the move's gap are read from the new node's
//! REST API ([`fill`]) and the ones a client already had are not given
//! again ([`order`]). The streams' `head` events also tell the health loop
//! each source node's head ([`heads`]).
//!
//! Bounds: `events.max_streams` client streams per network (one more gets
//! 429), `events.client_queue` events a client may be behind (then it is
//! cut), one upstream stream per distinct topic set (a subset of the
//! clients' sets, so within the same cap); connections keep the edge's
//! write deadline.

mod client;
mod fill;
pub mod heads;
mod order;
mod shared;
mod sse;
mod topics;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use arc_swap::ArcSwap;
use http::Uri;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use parking_lot::Mutex;
use tokio::sync::watch;

use super::health::Snapshot;
use super::BeaconError;
use crate::config::BeaconNetworkConfig;
pub use client::{AnswerBody, EventBody};
use heads::Heads;
use shared::{Phase, Shared};
use topics::Topics;

/// The event counts of a network, read at scrape time.
#[derive(Default)]
pub struct Counts {
    /// Client streams open.
    pub clients: AtomicUsize,
    /// Upstream streams open (connected to a node).
    pub upstreams: AtomicUsize,
    /// Upstream streams moved to another node.
    pub moves: AtomicU64,
    /// Events handed to clients (one per client).
    pub delivered: AtomicU64,
    /// Events slow clients lost (their streams were cut).
    pub dropped: AtomicU64,
    /// Client streams cut for being too far behind.
    pub cut: AtomicU64,
    /// Events read from a node's REST API to fill a move's gap.
    pub filled: AtomicU64,
}

/// An event bigger than this ends the node's stream (events are small JSON).
const MAX_EVENT_BYTES: usize = 1024 * 1024;

/// The event streams of one beacon network.
pub struct Events {
    network: String,
    keepalive: Duration,
    max_streams: usize,
    client_queue: usize,
    max_lag_slots: u64,
    request_timeout: Duration,
    snapshot: Arc<ArcSwap<Snapshot>>,
    /// Each node's base URL, in the order of the snapshot's nodes.
    bases: Vec<Uri>,
    client: sse::SseClient,
    streams: Mutex<HashMap<String, Arc<Shared>>>,
    pub counts: Arc<Counts>,
    pub heads: Arc<Heads>,
    closing: watch::Sender<bool>,
    slots_per_epoch: OnceLock<u64>,
}

impl Events {
    pub(crate) fn new(config: &BeaconNetworkConfig, snapshot: Arc<ArcSwap<Snapshot>>) -> Events {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(2)));
        Events {
            network: config.name.clone(),
            keepalive: config.events.keepalive,
            max_streams: config.events.max_streams,
            client_queue: config.events.client_queue,
            max_lag_slots: config.max_lag_slots,
            request_timeout: config.request_timeout,
            snapshot,
            bases: config.upstreams.iter().map(|u| u.http.clone()).collect(),
            client: Client::builder(TokioExecutor::new())
                .pool_max_idle_per_host(0)
                .build(connector),
            streams: Mutex::new(HashMap::new()),
            counts: Arc::new(Counts::default()),
            heads: Arc::new(Heads::new(config.upstreams.len())),
            closing: watch::Sender::new(false),
            slots_per_epoch: OnceLock::new(),
        }
    }

    /// Opens a client's stream of the topics in `query`.
    pub(crate) async fn open(
        self: &Arc<Self>,
        query: Option<&str>,
    ) -> Result<EventBody, BeaconError> {
        let topics = Topics::parse(query)?;
        if self.counts.clients.fetch_add(1, Ordering::Relaxed) >= self.max_streams {
            self.counts.clients.fetch_sub(1, Ordering::Relaxed);
            return Err(BeaconError::TooManyStreams(self.max_streams));
        }
        let slot = client::Slot(self.counts.clone());
        let (shared, events) = {
            let mut streams = self.streams.lock();
            let shared = streams
                .entry(topics.key())
                .or_insert_with(|| shared::start(self.clone(), topics, self.client_queue))
                .clone();
            let events = shared.subscribe();
            (shared, events)
        };
        let mut phase = shared.phase();
        let settled = tokio::time::timeout(
            self.request_timeout,
            phase.wait_for(|p| !matches!(p, Phase::Connecting)),
        )
        .await;
        match settled {
            Ok(Ok(p)) => match &*p {
                Phase::Refused(why) => return Err(BeaconError::BadTopics(why.clone())),
                Phase::NoNode => return Err(BeaconError::NoEligibleNode),
                _ => {}
            },
            // The stream's task ended (refused, or closing).
            Ok(Err(_)) => return Err(BeaconError::NoEligibleNode),
            Err(_) => return Err(BeaconError::NoEligibleNode),
        }
        Ok(client::start(
            events,
            self.keepalive,
            self.closing.subscribe(),
            slot,
        ))
    }

    /// Ends every stream (the gateway is draining).
    pub fn close(&self) {
        self.closing.send_replace(true);
    }

    /// Whether a shared stream of `key` is open (for tests and `/status`).
    pub fn upstream_sources(&self) -> Vec<(String, Option<String>)> {
        let streams = self.streams.lock();
        let mut out: Vec<(String, Option<String>)> = streams
            .iter()
            .map(|(k, s)| (k.clone(), s.source()))
            .collect();
        out.sort();
        out
    }
}
