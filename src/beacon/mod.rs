//! The consensus layer's Beacon REST API, served beside JSON-RPC: a second
//! front on the same edge, client policy and metrics.
//!
//! A `kind: beacon` network ([`crate::config::BeaconNetworkConfig`]) is
//! served at `/<network>/eth/...` on the main listener and at `/eth/...` on
//! its own `listen` address. Beside the request path runs one health loop
//! per network ([`health`]): it reads every node, judges them together
//! ([`judge`]: same genesis, not syncing, not optimistic, execution layer
//! online, within `max_lag_slots` of the head the nodes agree on) and
//! publishes a snapshot that requests read with one atomic load. A request
//! is classified by one table ([`paths`]: the allowlist), admitted by the
//! client policy, then routed ([`proxy`]): a read to one eligible node, a
//! publish to every eligible node, a subscription to every node, kept
//! ([`replay`]) and sent again to a node that becomes eligible later. The
//! bytes pass through untouched ([`node`]); failures of the gateway's own
//! are answered in the Beacon API's error form in one place ([`rescue`]).
//! `/eth/v1/events` is served from one shared stream per topic set
//! ([`events`]), moved between nodes without a gap.
//!
//! It sits below `control` in the module order so that the control plane
//! can start the networks and report them in `/status`, readiness and
//! `/metrics`; the edge hands it requests by path.

pub mod events;
pub mod health;
pub mod judge;
mod node;
pub mod paths;
mod proxy;
mod replay;
mod rescue;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::{HeaderMap, Request, Response};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;

use crate::config::BeaconNetworkConfig;
use crate::policy::{ClientPolicy, Refusal};
pub use events::{AnswerBody, EventBody, Events};
use health::{Health, Snapshot};
pub use node::{Node, SendCounts};
use paths::Route;
use proxy::{FanOut, Owned};
use replay::{Kept, Replay};

/// Why a beacon request failed in the gateway (a node's own error answer
/// is not one of these: it passes through).
#[derive(Debug, thiserror::Error)]
pub enum BeaconError {
    #[error("this path is not open through the gateway")]
    Closed,
    #[error("this path is for named clients (an API key) only")]
    NamedClientsOnly,
    #[error("{0}")]
    Policy(Refusal),
    #[error("the path is not a valid URL path")]
    BadPath,
    #[error("the request body is larger than {0} bytes")]
    BodyTooLarge(usize),
    #[error("the request body could not be read")]
    BodyRead,
    #[error("no beacon node is eligible to serve now")]
    NoEligibleNode,
    #[error("beacon node {0}")]
    Node(String),
    #[error("a beacon node's answer is larger than {0} bytes")]
    ReplyTooLarge(usize),
    #[error("{0}")]
    BadTopics(String),
    #[error("this network serves at most {0} event streams at once")]
    TooManyStreams(usize),
}

/// Subscriptions kept for replay, at most: entries and bytes.
const REPLAY_MAX_ENTRIES: usize = 512;
const REPLAY_MAX_BYTES: usize = 8 * 1024 * 1024;

/// One beacon network as it runs.
pub struct BeaconNetwork {
    pub config: BeaconNetworkConfig,
    snapshot: Arc<ArcSwap<Snapshot>>,
    turn: AtomicUsize,
    replay: Arc<Replay>,
    pub events: Arc<Events>,
    health: tokio::task::JoinHandle<()>,
}

impl Drop for BeaconNetwork {
    fn drop(&mut self) {
        self.health.abort();
    }
}

impl BeaconNetwork {
    /// Builds the nodes' clients and starts the health loop (within a tokio runtime).
    pub fn start(config: BeaconNetworkConfig) -> Arc<BeaconNetwork> {
        let nodes: Vec<Arc<Node>> = config
            .upstreams
            .iter()
            .map(|u| {
                Arc::new(Node::new(
                    u,
                    config.request_timeout,
                    config.max_response_bytes,
                ))
            })
            .collect();
        let snapshot = Arc::new(ArcSwap::from_pointee(Snapshot::initial(&nodes)));
        let replay = Arc::new(Replay::new(REPLAY_MAX_ENTRIES, REPLAY_MAX_BYTES));
        let events = Arc::new(Events::new(&config, snapshot.clone()));
        let health = tokio::spawn(run_health(
            Health {
                nodes,
                max_lag_slots: config.max_lag_slots,
                seconds_per_slot: None,
                round: 0,
                heads: events.heads.clone(),
            },
            config.poll_interval,
            snapshot.clone(),
            replay.clone(),
            config.name.clone(),
        ));
        Arc::new(BeaconNetwork {
            config,
            snapshot,
            turn: AtomicUsize::new(0),
            replay,
            events,
            health,
        })
    }

    /// The current verdicts (one atomic load).
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.load_full()
    }
}

/// The health loop: a round per `every`; a node that became eligible gets
/// the kept subscriptions, in a task of its own so the next round is not late.
async fn run_health(
    mut health: Health,
    every: Duration,
    published: Arc<ArcSwap<Snapshot>>,
    replay: Arc<Replay>,
    network: String,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        for node in health.round(&published).await {
            let kept = replay.all();
            tracing::info!(%network, node = %node.name, replayed = kept.len(), "beacon node eligible");
            tokio::spawn(replay_to(node, kept));
        }
    }
}

/// Sends the kept subscriptions to a node that joined, oldest first.
async fn replay_to(node: Arc<Node>, kept: Vec<Kept>) {
    for k in kept {
        let answer = node
            .send(node::Outgoing {
                method: &http::Method::POST,
                path_and_query: &k.path_and_query,
                headers: &k.headers,
                body: k.body.clone(),
            })
            .await;
        node.subscriptions.count(&answer);
    }
}

/// The beacon networks of a gateway, by name (started once: restart-only).
#[derive(Default)]
pub struct BeaconNetworks {
    pub by_name: HashMap<String, Arc<BeaconNetwork>>,
}

impl BeaconNetworks {
    pub fn start(configs: &[BeaconNetworkConfig]) -> BeaconNetworks {
        BeaconNetworks {
            by_name: configs
                .iter()
                .map(|c| (c.name.clone(), BeaconNetwork::start(c.clone())))
                .collect(),
        }
    }

    /// Ends every event stream (the gateway is draining).
    pub fn close_event_streams(&self) {
        for net in self.by_name.values() {
            net.events.close();
        }
    }

    /// The network and its `/eth/...` path named by a main-listener path
    /// `/<network>/eth/...`.
    pub fn resolve<'p>(&self, path: &'p str) -> Option<(&Arc<BeaconNetwork>, &'p str)> {
        let rest = path.strip_prefix('/')?;
        let (name, _) = rest.split_once('/')?;
        let net = self.by_name.get(name)?;
        let api = &rest[name.len()..];
        api.starts_with("/eth/").then_some((net, api))
    }
}

/// Limits of a request body, from the `server:` section.
#[derive(Clone, Copy)]
pub struct BodyLimits {
    pub max_bytes: usize,
    pub read_timeout: Duration,
}

/// Serves one request of a beacon network; `api_path` is its `/eth/...` path.
pub async fn serve(
    net: &BeaconNetwork,
    policy: &ClientPolicy,
    peer: SocketAddr,
    req: Request<Incoming>,
    api_path: &str,
    limits: BodyLimits,
) -> Response<AnswerBody> {
    match answer(net, policy, peer, req, api_path, limits).await {
        Ok(response) => response,
        Err(e) => rescue::answer(&e).map(AnswerBody::from),
    }
}

/// A client's event stream (its caller admitted).
async fn events(
    net: &BeaconNetwork,
    query: Option<&str>,
) -> Result<Response<AnswerBody>, BeaconError> {
    let body = net.events.open(query).await?;
    let mut response = Response::new(AnswerBody::Events(body));
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-cache"),
    );
    // Proxies that buffer answers (nginx) pass this one on as it comes.
    headers.insert("x-accel-buffering", http::HeaderValue::from_static("no"));
    Ok(response)
}

async fn answer(
    net: &BeaconNetwork,
    policy: &ClientPolicy,
    peer: SocketAddr,
    req: Request<Incoming>,
    api_path: &str,
    limits: BodyLimits,
) -> Result<Response<AnswerBody>, BeaconError> {
    let route = paths::classify(req.method(), api_path);
    if route == Route::Closed {
        return Err(BeaconError::Closed);
    }
    let caller = policy
        .identify(peer.ip(), req.headers(), None)
        .map_err(BeaconError::Policy)?;
    if route.needs_named_client() && caller.is_anonymous() {
        return Err(BeaconError::NamedClientsOnly);
    }
    policy
        .check_local(&caller, 1)
        .map_err(BeaconError::Policy)?;
    if route == Route::Events {
        return events(net, req.uri().query()).await;
    }
    let path_and_query = match req.uri().query() {
        Some(q) => format!("{api_path}?{q}"),
        None => api_path.to_string(),
    };
    let (parts, body) = req.into_parts();
    let body = read_body(body, limits).await?;
    let owned = Owned {
        method: parts.method,
        path_and_query,
        headers: parts.headers,
        body,
    };
    let snapshot = net.snapshot();
    let reply = match route {
        Route::Publish => {
            let nodes = snapshot.eligible().map(|v| v.node.clone()).collect();
            proxy::fan_out(nodes, owned, FanOut::Publish).await?
        }
        Route::Subscribe => {
            net.replay.keep(Kept {
                path_and_query: owned.path_and_query.clone(),
                headers: replayed_headers(&owned.headers),
                body: owned.body.clone(),
            });
            // Every node that answers, eligible or not yet: a failover target must hold them.
            let nodes = snapshot
                .nodes
                .iter()
                .filter(|v| v.reading.reachable)
                .map(|v| v.node.clone())
                .collect();
            proxy::fan_out(nodes, owned, FanOut::Subscribe).await?
        }
        _ => proxy::read(&snapshot, &net.turn, &owned).await?,
    };
    let mut response = Response::new(AnswerBody::from(Full::new(reply.body)));
    *response.status_mut() = reply.status;
    *response.headers_mut() = reply.headers;
    Ok(response)
}

/// The request headers a replay sends again (those a node reads).
fn replayed_headers(headers: &HeaderMap) -> HeaderMap {
    headers
        .iter()
        .filter(|(k, _)| *k == http::header::CONTENT_TYPE || k.as_str().starts_with("eth-"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// The whole body, at most `limits.max_bytes`, within `limits.read_timeout`.
async fn read_body(body: Incoming, limits: BodyLimits) -> Result<Bytes, BeaconError> {
    let collect = Limited::new(body, limits.max_bytes).collect();
    match tokio::time::timeout(limits.read_timeout, collect).await {
        Err(_) => Err(BeaconError::BodyRead),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
            Err(BeaconError::BodyTooLarge(limits.max_bytes))
        }
        Ok(Err(_)) => Err(BeaconError::BodyRead),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn main_listener_paths_name_the_network() {
        let config = crate::config::Config::from_yaml(
            "networks:\n  b:\n    kind: beacon\n    upstreams: [{ name: n, http: http://127.0.0.1:9 }]\n",
        )
        .unwrap();
        let nets = BeaconNetworks::start(&config.beacon);
        let (net, api) = nets.resolve("/b/eth/v1/node/syncing").unwrap();
        assert_eq!(net.config.name, "b");
        assert_eq!(api, "/eth/v1/node/syncing");
        assert!(nets.resolve("/b/other").is_none());
        assert!(nets.resolve("/c/eth/v1/node/syncing").is_none());
        assert!(nets.resolve("/b").is_none());
    }
}
