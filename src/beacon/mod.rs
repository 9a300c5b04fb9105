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
//! is classified by one table ([`paths`]: the allowlist, with the
//! operator's `paths:` prefixes on top, [`allowlist`]), admitted by the
//! client policy, then routed: a read through [`reads`] (the cache of what
//! cannot change, then the nodes that have what it names, [`choose`]), a
//! block production to the healthiest node, retried only within its slot,
//! a publish to every eligible node, a subscription to every node, kept
//! ([`replay`]) and sent again to a node that becomes eligible later
//! ([`proxy`] sends). The bytes pass through untouched ([`node`]); failures
//! of the gateway's own are answered in the Beacon API's error form in one
//! place ([`rescue`]). Each request is counted by path group and outcome
//! ([`counts`]).
//! `/eth/v1/events` is served from one shared stream per topic set
//! ([`mod@events`]), moved between nodes without a gap.
//!
//! It sits below `control` in the module order so that the control plane
//! can start the networks and report them in `/status`, readiness and
//! `/metrics`; the edge hands it requests by path.

mod allowlist;
mod cache;
mod choose;
mod counts;
pub mod events;
pub mod health;
pub mod judge;
mod node;
pub mod paths;
mod proxy;
mod reads;
mod replay;
mod rescue;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use allowlist::PathRules;
use arc_swap::ArcSwap;
use bytes::Bytes;
use http::{HeaderMap, Request, Response};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;

use crate::config::BeaconNetworkConfig;
use crate::metrics::Metrics;
use crate::policy::{ClientPolicy, Refusal};
use cache::AnswerCache;
use choose::HeadFloors;
use counts::{Outcome, Series};
pub use events::{AnswerBody, EventBody, Events};
use health::{Health, Snapshot};
pub use node::{Node, SendCounts};
use paths::{Group, Route};
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
    #[error("no eligible beacon node has reached the head this client was last served yet")]
    HeadBehindClient,
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
/// Bytes of answers that cannot change kept per network.
const CACHE_MAX_BYTES: u64 = 32 * 1024 * 1024;
/// Clients whose last served head is remembered per network.
const HEAD_FLOORS_MAX_CLIENTS: usize = 100_000;

/// One beacon network as it runs.
pub struct BeaconNetwork {
    pub config: BeaconNetworkConfig,
    snapshot: Arc<ArcSwap<Snapshot>>,
    turn: AtomicUsize,
    replay: Arc<Replay>,
    cache: AnswerCache,
    floors: HeadFloors,
    series: Series,
    /// The operator's `paths:` (a reload swaps them).
    rules: ArcSwap<PathRules>,
    /// `ready_required` (a reload sets it).
    ready_required: AtomicBool,
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
    pub fn start(config: BeaconNetworkConfig, metrics: &Metrics) -> Arc<BeaconNetwork> {
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
            series: Series::new(&metrics.beacon, &config.name),
            rules: ArcSwap::from_pointee(PathRules::new(&config.paths)),
            ready_required: AtomicBool::new(config.ready_required),
            config,
            snapshot,
            turn: AtomicUsize::new(0),
            replay,
            cache: AnswerCache::new(CACHE_MAX_BYTES),
            floors: HeadFloors::new(HEAD_FLOORS_MAX_CLIENTS),
            events,
            health,
        })
    }

    /// The current verdicts (one atomic load).
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.load_full()
    }

    /// Takes the keys of `config` a reload applies (the rest stays as started).
    fn apply(&self, config: &BeaconNetworkConfig) {
        self.rules.store(Arc::new(PathRules::new(&config.paths)));
        self.ready_required
            .store(config.ready_required, Ordering::Relaxed);
    }

    /// Whether `/readyz` needs this network to have an eligible node.
    pub fn ready_required(&self) -> bool {
        self.ready_required.load(Ordering::Relaxed)
    }

    /// Why this network cannot serve now (`None`: an eligible node serves).
    pub fn not_ready(&self) -> Option<String> {
        self.snapshot()
            .eligible()
            .next()
            .is_none()
            .then(|| format!("beacon network {} has no eligible node", self.config.name))
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
    pub fn start(configs: &[BeaconNetworkConfig], metrics: &Metrics) -> BeaconNetworks {
        BeaconNetworks {
            by_name: configs
                .iter()
                .map(|c| (c.name.clone(), BeaconNetwork::start(c.clone(), metrics)))
                .collect(),
        }
    }

    /// Applies a reloaded config's reloadable keys to the networks it names
    /// that run (one added or removed by a reload waits for a restart).
    pub fn apply(&self, configs: &[BeaconNetworkConfig]) {
        for config in configs {
            if let Some(net) = self.by_name.get(&config.name) {
                net.apply(config);
            }
        }
    }

    /// Ends every event stream (the gateway is draining).
    pub fn close_event_streams(&self) {
        for net in self.by_name.values() {
            net.events.close();
        }
    }

    /// The network and the rest of the path named by a main-listener path
    /// `/<network>/eth/...` or `/<network>/<key>/eth/...` (see [`split_key`]),
    /// or `/<network>/<path>` when the network's `paths.allow` opens `<path>`.
    pub fn resolve<'p>(&self, path: &'p str) -> Option<(&Arc<BeaconNetwork>, &'p str)> {
        let rest = path.strip_prefix('/')?;
        let (name, _) = rest.split_once('/')?;
        let net = self.by_name.get(name)?;
        let api = &rest[name.len()..];
        (split_key(api).is_some() || net.rules.load().opens(api)).then_some((net, api))
    }
}

/// The API key a path carries and its `/eth/...` rest: `/eth/...` has none,
/// `/<key>/eth/...` has one. Validator clients take a base URL and send no
/// headers of their own (Lodestar's and Teku's command lines have no header
/// option), so a named client presents its key in that base URL, as a
/// JSON-RPC client may in `/<network>/<key>`. `None`: neither form.
pub fn split_key(path: &str) -> Option<(Option<&str>, &str)> {
    if path.starts_with("/eth/") {
        return Some((None, path));
    }
    let rest = path.strip_prefix('/')?;
    let (key, _) = rest.split_once('/')?;
    let api = &rest[key.len()..];
    (!key.is_empty() && api.starts_with("/eth/")).then_some((Some(key), api))
}

/// Limits of a request body, from the `server:` section.
#[derive(Clone, Copy)]
pub struct BodyLimits {
    pub max_bytes: usize,
    pub read_timeout: Duration,
}

/// Serves one request of a beacon network; `api_path` is its `/eth/...`
/// path, or `/<key>/eth/...` ([`split_key`]).
pub async fn serve(
    net: &BeaconNetwork,
    policy: &ClientPolicy,
    peer: SocketAddr,
    req: Request<Incoming>,
    api_path: &str,
    limits: BodyLimits,
) -> Response<AnswerBody> {
    let started = Instant::now();
    let (path_key, api_path) = split_key(api_path).unwrap_or((None, api_path));
    let route = net.rules.load().route(req.method(), api_path);
    let group = Group::of(route, api_path);
    let asked = Asked {
        api_path,
        path_key,
        route,
    };
    let (response, outcome) = match answer(net, policy, peer, req, asked, limits).await {
        Ok(response) => {
            let outcome = Outcome::of_status(response.status());
            (response, outcome)
        }
        Err(e) => (
            rescue::answer(&e).map(AnswerBody::from),
            Outcome::of_error(&e),
        ),
    };
    net.series.count(group, outcome, started.elapsed());
    response
}

/// What a request asks for: its `/eth/...` path, the key its path carried
/// ([`split_key`]) and the route of that path.
struct Asked<'a> {
    api_path: &'a str,
    path_key: Option<&'a str>,
    route: Route,
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
    asked: Asked<'_>,
    limits: BodyLimits,
) -> Result<Response<AnswerBody>, BeaconError> {
    let Asked {
        api_path,
        path_key,
        route,
    } = asked;
    if route == Route::Closed {
        return Err(BeaconError::Closed);
    }
    let caller = policy
        .identify(peer.ip(), req.headers(), path_key)
        .map_err(BeaconError::Policy)?;
    if route.needs_named_client() && caller.is_anonymous() {
        return Err(BeaconError::NamedClientsOnly);
    }
    // One request, one unit; shared by every replica when `redis:` is set.
    policy
        .charge(&caller, 1)
        .await
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
            // The healthiest first: it is asked alone before the others.
            let nodes = choose::by_health(&snapshot)
                .iter()
                .map(|v| v.node.clone())
                .collect();
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
        Route::Produce => {
            let nodes = choose::by_health(&snapshot);
            let slot = paths::produced_slot(api_path);
            proxy::produce(&snapshot, &nodes, slot, &owned).await?
        }
        _ => reads::read(net, &snapshot, &caller.bucket(), api_path, &owned).await?,
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
        let nets = BeaconNetworks::start(&config.beacon, &Metrics::new());
        let (net, api) = nets.resolve("/b/eth/v1/node/syncing").unwrap();
        assert_eq!(net.config.name, "b");
        assert_eq!(api, "/eth/v1/node/syncing");
        assert!(nets.resolve("/b/other").is_none());
        assert!(nets.resolve("/c/eth/v1/node/syncing").is_none());
        assert!(nets.resolve("/b").is_none());
        let (_, api) = nets.resolve("/b/k3y/eth/v1/node/syncing").unwrap();
        assert_eq!(split_key(api), Some((Some("k3y"), "/eth/v1/node/syncing")));
        assert!(nets.resolve("/b/k3y/other/eth/v1").is_none());
    }

    #[test]
    fn keys_in_paths() {
        assert_eq!(split_key("/eth/v1/x"), Some((None, "/eth/v1/x")));
        assert_eq!(split_key("/k/eth/v1/x"), Some((Some("k"), "/eth/v1/x")));
        assert_eq!(split_key("//eth/v1/x"), None);
        assert_eq!(split_key("/k/l/eth/v1/x"), None);
        assert_eq!(split_key("/k"), None);
        assert_eq!(split_key("/lodestar/heap"), None);
    }
}
