//! Which event topics a client may ask for, and the one spelling of a topic
//! set that names its shared upstream stream.
//!
//! The Beacon API's `topics` is a list: repeated (`?topics=head&topics=block`,
//! the form every node accepts, Lodestar v1.5 only this one) or
//! comma-separated (`?topics=head,block`, as some clients send it). Both are
//! read; the set is sorted and deduplicated, so clients asking for the same
//! topics in any order share one stream. An unknown topic is refused here,
//! before any node is asked.

use super::super::BeaconError;

/// The topics of the Beacon API's event stream.
const KNOWN: &[&str] = &[
    "attestation",
    "attester_slashing",
    "blob_sidecar",
    "block",
    "block_gossip",
    "bls_to_execution_change",
    "chain_reorg",
    "contribution_and_proof",
    "data_column_sidecar",
    "finalized_checkpoint",
    "head",
    "light_client_finality_update",
    "light_client_optimistic_update",
    "payload_attributes",
    "proposer_slashing",
    "single_attestation",
    "voluntary_exit",
];

/// A client's topic set, sorted, each once.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Topics(Vec<&'static str>);

impl Topics {
    /// The topics of a query string (`None`: no query at all).
    pub(crate) fn parse(query: Option<&str>) -> Result<Topics, BeaconError> {
        let mut topics: Vec<&'static str> = Vec::new();
        for pair in query.unwrap_or_default().split('&') {
            let Some(value) = pair.strip_prefix("topics=") else {
                continue;
            };
            // A comma may come percent-encoded; topics have no other escapes.
            let value = value.replace("%2C", ",").replace("%2c", ",");
            for name in value.split(',').filter(|n| !n.is_empty()) {
                let known = KNOWN.iter().find(|k| **k == name).ok_or_else(|| {
                    BeaconError::BadTopics(format!("unknown event topic {name:?}"))
                })?;
                topics.push(known);
            }
        }
        if topics.is_empty() {
            return Err(BeaconError::BadTopics(
                "no topics: ask for at least one (?topics=head)".into(),
            ));
        }
        topics.sort_unstable();
        topics.dedup();
        Ok(Topics(topics))
    }

    pub(crate) fn has(&self, topic: &str) -> bool {
        self.0.contains(&topic)
    }

    /// The query a node is asked with: each topic repeated.
    pub(crate) fn query(&self) -> String {
        let pairs: Vec<String> = self.0.iter().map(|t| format!("topics={t}")).collect();
        pairs.join("&")
    }

    /// The set's one spelling (the key of its shared stream).
    pub(crate) fn key(&self) -> String {
        self.0.join(",")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_spellings_name_one_sorted_set() {
        let a = Topics::parse(Some("topics=head&topics=block")).unwrap();
        let b = Topics::parse(Some("topics=block,head,head")).unwrap();
        let c = Topics::parse(Some("x=1&topics=block%2Chead")).unwrap();
        assert_eq!(a, b);
        assert_eq!(a, c);
        assert_eq!(a.key(), "block,head");
        assert_eq!(a.query(), "topics=block&topics=head");
        assert!(a.has("head") && !a.has("finalized_checkpoint"));
    }

    #[test]
    fn unknown_and_missing_topics_are_refused() {
        for q in [None, Some(""), Some("topics="), Some("topic=head")] {
            assert!(Topics::parse(q).is_err(), "{q:?}");
        }
        let e = Topics::parse(Some("topics=head&topics=heads")).unwrap_err();
        assert!(e.to_string().contains("heads"), "{e}");
    }
}
