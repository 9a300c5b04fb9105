//! Client policy: who is calling, what they may call, and how often.
//!
//! Every request is attributed to a tier before its body is read: a named
//! client (by API key, see [`keys`] and [`identity`]) or the anonymous tier
//! (no key; budgets per client IP). Then each call, alone or in a batch, is
//! judged on its own by [`ClientPolicy::admit`]: the tier's method rules
//! ([`methods`]), then its budgets of requests and compute units ([`cost`]),
//! locally ([`local`], governor's GCRA) or, with `redis:` configured, shared
//! by every replica ([`redis`]). A batch therefore costs the sum of its
//! entries, and a refused entry fails alone; its entries are judged together
//! ([`ClientPolicy::admit_all`]), in Redis by one script call. [`conns`] caps open
//! connections per IP at accept time, and again at a WebSocket upgrade by
//! the address the policy resolved (a forwarded one behind a trusted proxy).
//!
//! Nothing a caller sends is free: a call refused by the method rules, an
//! invalid entry, a body that does not parse and a WebSocket upgrade each
//! cost one request and [`REFUSED_COST`] units ([`ClientPolicy::charge_refused`]),
//! so a client sending garbage runs out of budget like any other. The
//! anonymous tier has, beside each IP's budgets, optional ones for all its
//! callers together (`aggregate_limits`, process-local: each replica
//! enforces them on its own), checked after the IP's.
//!
//! The policy is built once from the config and read by requests without
//! locks; the only shared mutable state is the limiters' atomic words and
//! the keyed maps of the anonymous tier, which a timer trims.
//!
//! Nothing here logs a key or its hash, or puts either in a metric label:
//! callers are named by their configured client name (or `anonymous`).

pub mod conns;
pub mod cost;
pub mod identity;
pub mod keys;
pub mod local;
pub mod methods;
pub mod redis;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use http::HeaderMap;
use prometheus::IntCounter;
use serde_json::value::RawValue;

use self::redis::RedisLimits;
use crate::config::{ClientRules, IpNet, LimitsConfig, PolicyConfig, RedisFallback};
use crate::eth::methods::Resolved;
use crate::metrics::PolicyMetrics;
use crate::redis_link::RedisLink;
use conns::ConnLimits;
use cost::CostTable;
use keys::KeyTable;
use local::{LocalLimits, Verdict};
use methods::MethodRules;

/// Why a request or a call is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("unknown API key")]
    UnknownKey,
    #[error("an API key is required")]
    KeyRequired,
    #[error("method {0} is not allowed")]
    MethodBlocked(String),
    #[error("rate limit exceeded")]
    Limited { retry_after: Duration },
    #[error("the call costs {cost} compute units, more than the client's burst")]
    TooCostly { cost: u32 },
    #[error("rate limits cannot be checked now")]
    LimiterUnavailable,
    #[error("too many open connections from this client address")]
    TooManyConnections,
}

/// What a call refused by the method rules, an invalid entry, an
/// unparseable body or a WebSocket upgrade costs in compute units (beside
/// one request): enough that garbage is not free, less than any real read.
pub const REFUSED_COST: u32 = 10;

impl Refusal {
    /// How long the caller should wait before trying again, when that is known.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Refusal::Limited { retry_after } => Some(*retry_after),
            Refusal::LimiterUnavailable | Refusal::TooManyConnections => {
                Some(Duration::from_secs(1))
            }
            _ => None,
        }
    }
}

/// One class of callers: a named client, or the anonymous callers.
pub struct ClientClass<C: Clock = DefaultClock> {
    name: Box<str>,
    anonymous: bool,
    methods: MethodRules,
    limits: LimitsConfig,
    allowed_origins: Option<Vec<String>>,
    max_logs_block_range: Option<u64>,
    local: LocalLimits<C>,
    /// All anonymous callers together (unlimited for a named client).
    aggregate: LocalLimits<C>,
    rate_limited: IntCounter,
    blocked: IntCounter,
}

impl<C: Clock + Clone> ClientClass<C> {
    fn new(
        name: &str,
        anonymous: bool,
        config: &ClientRules,
        clock: &C,
        metrics: &PolicyMetrics,
    ) -> ClientClass<C> {
        ClientClass {
            name: name.into(),
            anonymous,
            methods: MethodRules::new(config),
            limits: config.limits.clone(),
            allowed_origins: config.allowed_origins.clone(),
            max_logs_block_range: config.max_logs_block_range,
            local: LocalLimits::new(&config.limits, anonymous, clock),
            aggregate: LocalLimits::new(&config.aggregate, false, clock),
            rate_limited: metrics.rate_limited.with_label_values(&[name]),
            blocked: metrics.blocked.with_label_values(&[name]),
        }
    }
}

/// Who is calling, for the length of one HTTP request.
pub struct Caller<'p, C: Clock = DefaultClock> {
    class: &'p ClientClass<C>,
    ip: IpAddr,
}

impl<C: Clock> Caller<'_, C> {
    /// The configured client name, or `anonymous`.
    pub fn name(&self) -> &str {
        &self.class.name
    }

    pub fn ip(&self) -> IpAddr {
        self.ip
    }

    /// Whether the caller came without a key (the anonymous tier).
    pub fn is_anonymous(&self) -> bool {
        self.class.anonymous
    }

    /// The key per-client budgets count under (shared rate limits, filter
    /// caps): `c:<name>` for a named client, `ip:<addr>` (IPv6 by /64) for
    /// the anonymous tier.
    pub fn bucket(&self) -> String {
        if self.class.anonymous {
            format!("ip:{}", local::ip_bucket(self.ip))
        } else {
            format!("c:{}", self.class.name)
        }
    }

    /// The client's own browser origins, when it names any.
    pub fn allowed_origins(&self) -> Option<&[String]> {
        self.class.allowed_origins.as_deref()
    }

    /// Blocks one `eth_getLogs` may span for this tier, when it has its own
    /// bound (else the network's applies).
    pub fn max_logs_block_range(&self) -> Option<u64> {
        self.class.max_logs_block_range
    }
}

/// The policy of one gateway process.
pub struct ClientPolicy<C: Clock = DefaultClock> {
    clients: Vec<ClientClass<C>>,
    anonymous: Option<ClientClass<C>>,
    keys: KeyTable,
    costs: CostTable,
    trusted_proxies: Vec<IpNet>,
    shared: Option<RedisLimits>,
    fallback: RedisFallback,
    conns: Arc<ConnLimits>,
    /// `rpcgate_policy_unauthorized_total`, `rpcgate_policy_redis_fallbacks_total`.
    unauthorized: IntCounter,
    redis_fallbacks: IntCounter,
}

impl ClientPolicy {
    /// The policy with the system clock; shares limits through `redis` if
    /// given, and counts in `metrics`.
    pub fn new(
        config: &PolicyConfig,
        redis: Option<&Arc<RedisLink>>,
        metrics: &PolicyMetrics,
    ) -> ClientPolicy {
        ClientPolicy::with_clock(config, redis, DefaultClock::default(), metrics)
    }
}

impl<C: Clock + Clone> ClientPolicy<C> {
    pub fn with_clock(
        config: &PolicyConfig,
        redis: Option<&Arc<RedisLink>>,
        clock: C,
        metrics: &PolicyMetrics,
    ) -> ClientPolicy<C> {
        let mut keys = KeyTable::default();
        let mut clients = Vec::with_capacity(config.clients.len());
        for (i, c) in config.clients.iter().enumerate() {
            for digest in &c.keys {
                keys.insert(*digest, i);
            }
            clients.push(ClientClass::new(&c.name, false, &c.rules, &clock, metrics));
        }
        let shared = redis.map(|link| RedisLimits::new(link.clone(), config.redis_timeout));
        ClientPolicy {
            clients,
            anonymous: config
                .anonymous
                .as_ref()
                .map(|t| ClientClass::new("anonymous", true, t, &clock, metrics)),
            keys,
            costs: CostTable::new(config),
            trusted_proxies: config.trusted_proxies.clone(),
            shared,
            fallback: config.redis_fallback,
            conns: Arc::new(ConnLimits::new(
                config.max_connections_per_ip,
                config.trusted_proxies.clone(),
            )),
            unauthorized: metrics.unauthorized.clone(),
            redis_fallbacks: metrics.redis_fallbacks.clone(),
        }
    }

    /// Attributes a request to a tier: by its key, or as anonymous by IP.
    pub fn identify(
        &self,
        peer: IpAddr,
        headers: &HeaderMap,
        path_key: Option<&str>,
    ) -> Result<Caller<'_, C>, Refusal> {
        let ip = identity::client_ip(peer, headers, &self.trusted_proxies);
        let class = match identity::presented_key(headers, path_key) {
            Some(key) => match self.keys.find(key) {
                Some(i) => &self.clients[i],
                None => {
                    self.unauthorized.inc();
                    // Debug only: a key scan must not flood the logs.
                    tracing::debug!(client_ip = %ip, "request with an unknown API key refused");
                    return Err(Refusal::UnknownKey);
                }
            },
            None => match &self.anonymous {
                Some(t) => t,
                None => {
                    self.unauthorized.inc();
                    return Err(Refusal::KeyRequired);
                }
            },
        };
        Ok(Caller { class, ip })
    }

    /// The method check: the call's cost when the tier may call it.
    pub fn permit_method<'a>(
        &self,
        caller: &Caller<'_, C>,
        method: impl Into<Resolved<'a>>,
    ) -> Result<u32, Refusal> {
        let method = method.into();
        if !caller.class.methods.allows(method) {
            caller.class.blocked.inc();
            return Err(Refusal::MethodBlocked(method.name.to_string()));
        }
        Ok(self.costs.cost(method))
    }

    /// The process-local budget check of one call of `cost` units: the
    /// caller's own budgets, then (anonymous) all anonymous callers' together.
    pub fn check_local(&self, caller: &Caller<'_, C>, cost: u32) -> Result<(), Refusal> {
        self.verdict(caller, caller.class.local.check(caller.ip, cost), cost)?;
        self.check_aggregate(caller, cost)
    }

    fn check_aggregate(&self, caller: &Caller<'_, C>, cost: u32) -> Result<(), Refusal> {
        let aggregate = &caller.class.aggregate;
        if aggregate.is_unlimited() {
            return Ok(());
        }
        self.verdict(caller, aggregate.check(caller.ip, cost), cost)
    }

    /// Judges one call: its method, then the caller's budgets.
    pub async fn admit<'a>(
        &self,
        caller: &Caller<'_, C>,
        method: impl Into<Resolved<'a>>,
    ) -> Result<(), Refusal> {
        self.admit_call(caller, method, None).await
    }

    /// Judges one call with its `params`, which raise the price of the
    /// calls whose work they decide ([`cost::scaled`]). A call the method
    /// rules refuse still costs [`REFUSED_COST`]; once that budget is spent
    /// it is refused as limited.
    pub async fn admit_call<'a>(
        &self,
        caller: &Caller<'_, C>,
        method: impl Into<Resolved<'a>>,
        params: Option<&RawValue>,
    ) -> Result<(), Refusal> {
        // One call alone takes no vectors: the per-call stage allocates only
        // when a call fails.
        let method = method.into();
        match self.permit_method(caller, method) {
            Ok(cost) => {
                self.charge(caller, cost::scaled(method.name, params, cost))
                    .await
            }
            Err(blocked) => {
                self.charge(caller, REFUSED_COST).await?;
                Err(blocked)
            }
        }
    }

    /// Judges the calls of one message in order, each on its own (its
    /// method, then the budgets as the earlier calls left them): one verdict
    /// per call (`None`: an entry that could not be read). A call the method
    /// rules refuse, and an unreadable entry, still cost [`REFUSED_COST`].
    /// Shared budgets are charged by one Redis script call
    /// for all of them.
    pub async fn admit_all(
        &self,
        caller: &Caller<'_, C>,
        calls: &[Option<(Resolved<'_>, Option<&RawValue>)>],
    ) -> Vec<Result<(), Refusal>> {
        let judged: Vec<(u32, Option<Refusal>)> = calls
            .iter()
            .map(|call| match call {
                // An entry that could not be read costs as a refusal; the
                // caller answers it as invalid while its budget lasts.
                None => (REFUSED_COST, None),
                Some((method, params)) => match self.permit_method(caller, *method) {
                    Ok(cost) => (cost::scaled(method.name, *params, cost), None),
                    Err(blocked) => (REFUSED_COST, Some(blocked)),
                },
            })
            .collect();
        let costs: Vec<u32> = judged.iter().map(|(cost, _)| *cost).collect();
        let charged = self.charge_all(caller, &costs).await;
        judged
            .into_iter()
            .zip(charged)
            .map(|((_, blocked), charged)| {
                charged?;
                blocked.map_or(Ok(()), Err)
            })
            .collect()
    }

    /// Charges what is refused or cannot be read (an invalid entry, an
    /// unparseable body, a WebSocket upgrade): one request and
    /// [`REFUSED_COST`] units.
    pub async fn charge_refused(&self, caller: &Caller<'_, C>) -> Result<(), Refusal> {
        self.charge(caller, REFUSED_COST).await
    }

    /// Charges one request of `cost` units to the caller's budgets.
    pub async fn charge(&self, caller: &Caller<'_, C>, cost: u32) -> Result<(), Refusal> {
        if caller.class.local.is_unlimited() {
            return self.check_aggregate(caller, cost);
        }
        if self.shared.is_none() {
            return self.check_local(caller, cost);
        }
        let mut verdicts = self.charge_all(caller, &[cost]).await;
        verdicts.pop().unwrap_or(Err(Refusal::LimiterUnavailable))
    }

    /// Charges one request per item of `costs`, in order, to the caller's
    /// budgets (in Redis by one script call), then to the anonymous
    /// aggregate: one verdict each.
    async fn charge_all(&self, caller: &Caller<'_, C>, costs: &[u32]) -> Vec<Result<(), Refusal>> {
        let class = caller.class;
        if class.local.is_unlimited() {
            return costs
                .iter()
                .map(|&cost| self.check_aggregate(caller, cost))
                .collect();
        }
        let Some(shared) = &self.shared else {
            return costs
                .iter()
                .map(|&cost| self.check_local(caller, cost))
                .collect();
        };
        if costs.is_empty() {
            return Vec::new();
        }
        // Boxed: the Redis script call's future is large, and held inline
        // it would be copied with every call's future, limited or not.
        match Box::pin(shared.check_all(&caller.bucket(), &class.limits, costs)).await {
            Ok(verdicts) => {
                if shared.mark_up() {
                    tracing::info!("shared rate limits available again in redis");
                }
                let mut verdicts = verdicts.into_iter();
                costs
                    .iter()
                    .map(|&cost| {
                        let v = verdicts.next().unwrap_or(Verdict::Never);
                        self.verdict(caller, v, cost)?;
                        self.check_aggregate(caller, cost)
                    })
                    .collect()
            }
            Err(e) => {
                self.redis_fallbacks.inc_by(costs.len() as u64);
                // Once per outage, not once per call.
                if shared.mark_down() {
                    tracing::warn!(error = %e, fallback = ?self.fallback, "shared rate limits unavailable; falling back until redis answers");
                }
                costs
                    .iter()
                    .map(|&cost| match self.fallback {
                        RedisFallback::Open => self.check_local(caller, cost),
                        RedisFallback::Closed => Err(Refusal::LimiterUnavailable),
                    })
                    .collect()
            }
        }
    }

    fn verdict(&self, caller: &Caller<'_, C>, v: Verdict, cost: u32) -> Result<(), Refusal> {
        match v {
            Verdict::Admit => Ok(()),
            Verdict::Wait(retry_after) => {
                caller.class.rate_limited.inc();
                Err(Refusal::Limited { retry_after })
            }
            Verdict::Never => {
                caller.class.rate_limited.inc();
                Err(Refusal::TooCostly { cost })
            }
        }
    }

    /// The per-IP connection cap, checked at accept.
    pub fn connections(&self) -> &Arc<ConnLimits> {
        &self.conns
    }

    /// Drops the state of anonymous IPs whose budgets have refilled.
    pub fn forget_idle(&self) {
        if let Some(t) = &self.anonymous {
            t.local.forget_idle();
        }
    }
}

#[cfg(test)]
mod tests;
