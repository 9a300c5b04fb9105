//! Which Beacon API paths the gateway serves, and how: the path allowlist,
//! the chain point a read names, what may be cached, and the metric group.
//!
//! One table decides what a request is. Reads (the standard `beacon`,
//! `config` and `node` namespaces, and the validator namespace's duties and
//! data) go to one eligible node; block production goes to the healthiest
//! node; publishing goes to every eligible node; subscriptions go to every
//! node and are kept for replay. Everything else is closed: the `debug`
//! namespace (whole states), client-specific namespaces (`/lighthouse/`,
//! `/lodestar/`) and admin paths. The validator namespace, and every write,
//! is for named clients only: an anonymous caller reads the chain, it does
//! not act in it.
//!
//! A read's block or state id ([`pin`]) says which nodes can answer it:
//! `head` only the nodes at the served head, a slot only nodes that reached
//! it, a root any node (one that lacks it says 404, and another is asked).
//! What cannot change is cached ([`keep`]): the genesis, the spec, the fork
//! schedule and the deposit contract at once, headers and blocks by root
//! once finalized; never states.

use http::Method;

/// What a request is, by method and path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// A read of the chain or the node, for anyone the policy admits.
    Read,
    /// A read of the validator namespace (duties, attestation data):
    /// named clients only.
    ValidatorRead,
    /// Block production (`validator/blocks/{slot}`,
    /// `validator/blinded_blocks/{slot}`): the healthiest node, another
    /// only within the slot.
    Produce,
    /// Sent to every eligible node; answered when the first accepts.
    Publish,
    /// Sent to every node and replayed to a node that becomes eligible.
    Subscribe,
    /// `/eth/v1/events`: a client's event stream (see `super::events`).
    Events,
    /// Not open through the gateway.
    Closed,
}

impl Route {
    /// Whether only named clients (not the anonymous tier) may use it.
    pub fn needs_named_client(self) -> bool {
        matches!(
            self,
            Route::ValidatorRead | Route::Produce | Route::Publish | Route::Subscribe
        )
    }
}

/// Publishing endpoints (POST), version segment removed.
const PUBLISH: &[&str] = &[
    "beacon/blocks",
    "beacon/blinded_blocks",
    "beacon/pool/attestations",
    "beacon/pool/sync_committees",
    "beacon/pool/voluntary_exits",
    "beacon/pool/bls_to_execution_changes",
    "beacon/pool/attester_slashings",
    "beacon/pool/proposer_slashings",
    "validator/aggregate_and_proofs",
    "validator/contribution_and_proofs",
];

/// Subscriptions and preparations (POST) a failover target must also hold.
pub const SUBSCRIBE: &[&str] = &[
    "validator/beacon_committee_subscriptions",
    "validator/sync_committee_subscriptions",
    "validator/prepare_beacon_proposer",
    "validator/register_validator",
];

/// POSTs that only read: their bodies are lists of ids.
const POST_READS: &[&str] = &[
    "validator/duties/attester/",
    "validator/duties/sync/",
    "validator/liveness/",
    "beacon/rewards/",
];

/// POSTs of the beacon namespace that only read (`states/{id}/validators`).
fn is_state_post_read(rest: &str) -> bool {
    let Some(state) = rest.strip_prefix("beacon/states/") else {
        return false;
    };
    let tail = state.split_once('/').map_or("", |(_, t)| t);
    matches!(
        tail,
        "validators" | "validator_balances" | "validator_identities"
    )
}

/// `validator/blocks/{slot}` or `validator/blinded_blocks/{slot}`.
fn is_production(rest: &str) -> bool {
    production_slot(rest).is_some()
}

/// The slot of a block production path (`rest`: after the version segment).
fn production_slot(rest: &str) -> Option<u64> {
    let slot = rest
        .strip_prefix("validator/blocks/")
        .or_else(|| rest.strip_prefix("validator/blinded_blocks/"))?;
    decimal(slot)
}

/// A slot or epoch as the Beacon API writes it in a path: decimal digits.
fn decimal(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// The path after `/eth/v<N>/`, when it has that shape.
fn after_version(path: &str) -> Option<&str> {
    let rest = path.strip_prefix("/eth/v")?;
    let (version, rest) = rest.split_once('/')?;
    (!version.is_empty() && version.bytes().all(|b| b.is_ascii_digit())).then_some(rest)
}

/// The slot a block production request is for (`path`: `/eth/v<N>/...`).
pub fn produced_slot(path: &str) -> Option<u64> {
    production_slot(after_version(path)?)
}

/// The chain point a read names, by its block or state id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pin {
    /// `head`: only nodes at the served head answer it.
    Head,
    /// A slot: only nodes whose head reached it.
    Slot(u64),
    /// A block or state root: any node; one that lacks it says 404.
    Root,
    /// `finalized`, `justified`, `genesis`, or no id at all: any node.
    Any,
}

/// Segments after which the next one is a block or state id.
const ID_AFTER: &[&str] = &[
    "beacon/states/",
    "beacon/headers/",
    "beacon/blocks/",
    "beacon/blinded_blocks/",
    "beacon/blob_sidecars/",
    "beacon/blobs_sidecars/",
    "beacon/light_client/bootstrap/",
    "beacon/rewards/blocks/",
    "beacon/rewards/sync_committee/",
    "beacon/proof/state/",
];

/// The chain point `path` (`/eth/v<N>/...`, no query) names.
pub fn pin(path: &str) -> Pin {
    let Some(rest) = after_version(path) else {
        return Pin::Any;
    };
    let Some(id) = ID_AFTER
        .iter()
        .find_map(|p| rest.strip_prefix(p))
        .map(|tail| tail.split('/').next().unwrap_or_default())
    else {
        return Pin::Any;
    };
    match id {
        "head" => Pin::Head,
        _ if id.starts_with("0x") => Pin::Root,
        _ => decimal(id).map_or(Pin::Any, Pin::Slot),
    }
}

/// Whether an answer may be kept, and until what.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    /// It cannot change while the chain is the same chain.
    Always,
    /// A header or block by root: once its slot is finalized.
    OnceFinalized,
    Never,
}

/// Reads whose answers never change on one chain.
const ALWAYS: &[&str] = &[
    "beacon/genesis",
    "config/spec",
    "config/fork_schedule",
    "config/deposit_contract",
];

/// Whether the answer to a GET of `path` (no query) may be cached.
pub fn keep(method: &Method, path: &str) -> Keep {
    if method != Method::GET {
        return Keep::Never;
    }
    let Some(rest) = after_version(path) else {
        return Keep::Never;
    };
    if ALWAYS.contains(&rest) {
        return Keep::Always;
    }
    let by_root = [
        "beacon/headers/",
        "beacon/blocks/",
        "beacon/blinded_blocks/",
    ]
    .iter()
    .filter_map(|p| rest.strip_prefix(p))
    .any(|id| id.starts_with("0x") && !id.contains('/'));
    if by_root {
        Keep::OnceFinalized
    } else {
        Keep::Never
    }
}

/// The `group` label of the request metrics: what kind of work a request is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    /// `beacon/states/...`
    State,
    /// Headers, blocks and their parts.
    Block,
    /// The rest of the `beacon` namespace (genesis, pools, light client, rewards).
    Beacon,
    Config,
    Node,
    /// Duties and the other reads of the validator namespace.
    Validator,
    Produce,
    Publish,
    Subscribe,
    Events,
    /// Refused by the allowlist.
    Closed,
}

impl Group {
    pub fn of(route: Route, path: &str) -> Group {
        match route {
            Route::ValidatorRead => return Group::Validator,
            Route::Produce => return Group::Produce,
            Route::Publish => return Group::Publish,
            Route::Subscribe => return Group::Subscribe,
            Route::Events => return Group::Events,
            Route::Closed => return Group::Closed,
            Route::Read => {}
        }
        let rest = after_version(path).unwrap_or_default();
        if rest.starts_with("beacon/states/") {
            Group::State
        } else if ["beacon/headers", "beacon/blocks/", "beacon/blinded_blocks/"]
            .iter()
            .any(|p| rest.starts_with(p))
        {
            Group::Block
        } else if rest.starts_with("config/") {
            Group::Config
        } else if rest.starts_with("node/") {
            Group::Node
        } else {
            Group::Beacon
        }
    }
}

impl crate::metrics::Label for Group {
    const ALL: &'static [Group] = &[
        Group::State,
        Group::Block,
        Group::Beacon,
        Group::Config,
        Group::Node,
        Group::Validator,
        Group::Produce,
        Group::Publish,
        Group::Subscribe,
        Group::Events,
        Group::Closed,
    ];

    fn label(self) -> &'static str {
        match self {
            Group::State => "state",
            Group::Block => "block",
            Group::Beacon => "beacon",
            Group::Config => "config",
            Group::Node => "node",
            Group::Validator => "validator",
            Group::Produce => "produce",
            Group::Publish => "publish",
            Group::Subscribe => "subscribe",
            Group::Events => "events",
            Group::Closed => "closed",
        }
    }
}

/// Classifies a request by its method and path (`/eth/v<N>/...`, without
/// the network prefix or the query).
pub fn classify(method: &Method, path: &str) -> Route {
    let Some(rest) = path.strip_prefix("/eth/v") else {
        return Route::Closed;
    };
    let Some((version, rest)) = rest.split_once('/') else {
        return Route::Closed;
    };
    if version.is_empty() || !version.bytes().all(|b| b.is_ascii_digit()) {
        return Route::Closed;
    }
    // `..` or an empty segment could mean another path to the node than the one judged here.
    if rest
        .split('/')
        .any(|s| s.is_empty() || s == "." || s == "..")
    {
        return Route::Closed;
    }
    let namespace = rest.split('/').next().unwrap_or_default();
    match *method {
        Method::GET | Method::HEAD => match namespace {
            "beacon" | "config" | "node" => Route::Read,
            "validator" if is_production(rest) => Route::Produce,
            "validator" => Route::ValidatorRead,
            "events" if rest == "events" => Route::Events,
            _ => Route::Closed,
        },
        Method::POST => {
            if PUBLISH.contains(&rest) {
                Route::Publish
            } else if SUBSCRIBE.contains(&rest) {
                Route::Subscribe
            } else if POST_READS.iter().any(|p| rest.starts_with(p)) {
                if namespace == "validator" {
                    Route::ValidatorRead
                } else {
                    Route::Read
                }
            } else if is_state_post_read(rest) {
                Route::Read
            } else {
                Route::Closed
            }
        }
        _ => Route::Closed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_allowlist() {
        let get = |p| classify(&Method::GET, p);
        let post = |p| classify(&Method::POST, p);
        assert_eq!(get("/eth/v1/beacon/genesis"), Route::Read);
        assert_eq!(get("/eth/v2/beacon/blocks/head"), Route::Read);
        assert_eq!(get("/eth/v1/config/spec"), Route::Read);
        assert_eq!(get("/eth/v1/node/syncing"), Route::Read);
        assert_eq!(
            get("/eth/v1/validator/duties/proposer/3"),
            Route::ValidatorRead
        );
        assert_eq!(get("/eth/v3/validator/blocks/9"), Route::Produce);
        assert_eq!(get("/eth/v1/validator/blinded_blocks/9"), Route::Produce);
        assert_eq!(get("/eth/v1/validator/blocks/x"), Route::ValidatorRead);
        assert_eq!(
            post("/eth/v1/validator/duties/attester/3"),
            Route::ValidatorRead
        );
        assert_eq!(post("/eth/v1/beacon/states/head/validators"), Route::Read);
        assert_eq!(post("/eth/v1/beacon/blocks"), Route::Publish);
        assert_eq!(post("/eth/v2/beacon/blinded_blocks"), Route::Publish);
        assert_eq!(post("/eth/v1/beacon/pool/attestations"), Route::Publish);
        assert_eq!(
            post("/eth/v1/validator/aggregate_and_proofs"),
            Route::Publish
        );
        assert_eq!(
            post("/eth/v1/validator/prepare_beacon_proposer"),
            Route::Subscribe
        );
        assert_eq!(
            post("/eth/v1/validator/beacon_committee_subscriptions"),
            Route::Subscribe
        );
        assert_eq!(get("/eth/v1/events"), Route::Events);
        // Closed: debug, client namespaces, admin, odd paths and methods.
        assert_eq!(get("/eth/v2/debug/beacon/states/head"), Route::Closed);
        assert_eq!(get("/lighthouse/health"), Route::Closed);
        assert_eq!(get("/eth/v1/lodestar/heap"), Route::Closed);
        assert_eq!(post("/eth/v1/beacon/genesis"), Route::Closed);
        assert_eq!(get("/eth/v1/beacon/../debug/x"), Route::Closed);
        assert_eq!(get("/eth/v1//beacon/genesis"), Route::Closed);
        assert_eq!(get("/eth/vx/beacon/genesis"), Route::Closed);
        assert_eq!(
            classify(&Method::DELETE, "/eth/v1/beacon/genesis"),
            Route::Closed
        );
        assert!(Route::Publish.needs_named_client());
        assert!(!Route::Read.needs_named_client());
        assert!(Route::Produce.needs_named_client());
    }

    #[test]
    fn reads_name_their_chain_point() {
        assert_eq!(pin("/eth/v1/beacon/headers/head"), Pin::Head);
        assert_eq!(pin("/eth/v2/beacon/blocks/head"), Pin::Head);
        assert_eq!(pin("/eth/v1/beacon/states/head/fork"), Pin::Head);
        assert_eq!(pin("/eth/v1/beacon/blocks/head/root"), Pin::Head);
        assert_eq!(pin("/eth/v1/beacon/states/123/validators"), Pin::Slot(123));
        assert_eq!(pin("/eth/v1/beacon/headers/7"), Pin::Slot(7));
        assert_eq!(pin("/eth/v1/beacon/headers/0xab"), Pin::Root);
        assert_eq!(pin("/eth/v1/beacon/states/0xab/root"), Pin::Root);
        assert_eq!(pin("/eth/v1/beacon/states/finalized/fork"), Pin::Any);
        assert_eq!(pin("/eth/v1/beacon/states/genesis/fork"), Pin::Any);
        assert_eq!(pin("/eth/v1/beacon/headers"), Pin::Any);
        assert_eq!(pin("/eth/v1/beacon/genesis"), Pin::Any);
        assert_eq!(pin("/eth/v1/node/version"), Pin::Any);
        assert_eq!(
            pin("/eth/v1/beacon/headers/99999999999999999999999"),
            Pin::Any
        );
        assert_eq!(produced_slot("/eth/v3/validator/blocks/42"), Some(42));
        assert_eq!(produced_slot("/eth/v1/validator/blinded_blocks/4"), Some(4));
        assert_eq!(produced_slot("/eth/v1/validator/duties/proposer/4"), None);
    }

    #[test]
    fn what_may_be_cached() {
        let g = |p| keep(&Method::GET, p);
        assert_eq!(g("/eth/v1/beacon/genesis"), Keep::Always);
        assert_eq!(g("/eth/v1/config/spec"), Keep::Always);
        assert_eq!(g("/eth/v1/config/fork_schedule"), Keep::Always);
        assert_eq!(g("/eth/v1/config/deposit_contract"), Keep::Always);
        assert_eq!(g("/eth/v1/beacon/headers/0xab"), Keep::OnceFinalized);
        assert_eq!(g("/eth/v2/beacon/blocks/0xab"), Keep::OnceFinalized);
        assert_eq!(g("/eth/v1/beacon/headers/head"), Keep::Never);
        assert_eq!(g("/eth/v1/beacon/headers/12"), Keep::Never);
        assert_eq!(g("/eth/v1/beacon/blocks/0xab/attestations"), Keep::Never);
        assert_eq!(g("/eth/v1/beacon/states/0xab/root"), Keep::Never);
        assert_eq!(g("/eth/v1/node/version"), Keep::Never);
        assert_eq!(keep(&Method::POST, "/eth/v1/config/spec"), Keep::Never);
    }
}
