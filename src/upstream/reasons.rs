//! Why a backend is out, said once in the log when it changes.
//!
//! `/status` shows each backend's reason at every moment; the log should say
//! when it changes (a TLS error, a refused connection, a wrong chain id,
//! behind, ahead and unconfirmed, on another chain), so an operator reading
//! "no backend can serve" finds the cause a few lines above. Reasons are
//! compared by kind, not by their numbers (a laggard's distance changes
//! every block), and an unreachable backend's error text is part of its
//! kind. Each backend logs at most once per [`MIN_GAP`]; a change inside
//! that gap is said with the next build after it (the view is rebuilt on
//! every head), with the count of changes not logged.
//!
//! Runs in the view builder; it also counts a backend's moves onto another
//! chain (`rpcgate_backend_chain_mismatch_total`).

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

use super::view::{BackendView, Ineligible, NetworkView};

/// The least time between two lines about one backend.
pub(super) const MIN_GAP: Duration = Duration::from_secs(10);

/// What was last said about each backend, by name.
#[derive(Default)]
pub(super) struct Reasons {
    said: HashMap<String, Said>,
}

struct Said {
    /// The kind last logged.
    kind: String,
    at: Instant,
    /// The kind at the last build.
    now: String,
    /// Changes since the last line, not logged (inside the gap).
    unsaid: u64,
}

/// A reason's kind: what a change of is worth a line.
fn kind_of(b: &BackendView) -> String {
    match &b.ineligible {
        None => "eligible".into(),
        Some(Ineligible::Unreachable) => format!(
            "unreachable: {}",
            b.state.last_error.as_deref().unwrap_or("no answer")
        ),
        Some(Ineligible::Lagging { .. }) => "lagging".into(),
        Some(Ineligible::AheadUnconfirmed { .. }) => "ahead, unconfirmed".into(),
        Some(Ineligible::OtherChain { .. }) => OTHER_CHAIN.into(),
        Some(other) => other.to_string(),
    }
}

impl Reasons {
    /// Logs the backends of `view` whose reason changed, and counts moves
    /// onto another chain.
    pub(super) fn note(&mut self, network: &str, view: &NetworkView, now: Instant) {
        for b in &view.backends {
            let kind = kind_of(b);
            let name = &b.backend.name;
            let said = match self.said.get_mut(name) {
                Some(said) => said,
                None => {
                    // A backend first seen eligible or starting is not news.
                    let quiet = matches!(
                        b.ineligible,
                        None | Some(Ineligible::NoHead | Ineligible::ChainUnchecked)
                    );
                    let said = Said {
                        kind: if quiet { kind.clone() } else { String::new() },
                        at: now.checked_sub(MIN_GAP).unwrap_or(now),
                        now: String::new(),
                        unsaid: 0,
                    };
                    self.said.entry(name.clone()).or_insert(said)
                }
            };
            if said.now != kind {
                if kind == OTHER_CHAIN {
                    b.backend.count_chain_mismatch();
                }
                if !said.now.is_empty() {
                    said.unsaid += 1;
                }
                said.now.clone_from(&kind);
            }
            if said.kind == kind || now.saturating_duration_since(said.at) < MIN_GAP {
                continue;
            }
            // The change being said is not one of the unsaid ones.
            let unsaid = said.unsaid.saturating_sub(1);
            match &b.ineligible {
                None => tracing::info!(
                    network, backend = %name, before = %said.kind, unsaid,
                    "backend eligible again"
                ),
                Some(reason) => tracing::warn!(
                    network, backend = %name, %reason, error = ?b.state.last_error,
                    unsaid, "backend out"
                ),
            }
            said.kind = kind;
            said.at = now;
            said.unsaid = 0;
        }
    }
}

const OTHER_CHAIN: &str = "another chain";
