//! Which Beacon API paths the gateway serves, and how: the path allowlist.
//!
//! One table decides what a request is. Reads (the standard `beacon`,
//! `config` and `node` namespaces, and the validator namespace's duties and
//! data) go to one eligible node; publishing goes to every eligible node;
//! subscriptions go to every node and are kept for replay. Everything else
//! is closed: the `debug` namespace (whole states), client-specific
//! namespaces (`/lighthouse/`, `/lodestar/`) and admin paths. The validator
//! namespace, and every write, is for named clients only: an anonymous
//! caller reads the chain, it does not act in it.

use http::Method;

/// What a request is, by method and path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// A read of the chain or the node, for anyone the policy admits.
    Read,
    /// A read of the validator namespace (duties, attestation data, block
    /// production): named clients only.
    ValidatorRead,
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
            Route::ValidatorRead | Route::Publish | Route::Subscribe
        )
    }

    /// The `group` label of the request metrics.
    pub fn label(self) -> &'static str {
        match self {
            Route::Read => "read",
            Route::ValidatorRead => "validator",
            Route::Publish => "publish",
            Route::Subscribe => "subscribe",
            Route::Events => "events",
            Route::Closed => "closed",
        }
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
        assert_eq!(get("/eth/v3/validator/blocks/9"), Route::ValidatorRead);
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
    }
}
