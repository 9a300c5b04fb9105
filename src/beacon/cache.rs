//! Answers that cannot change, kept: the genesis, the spec, the fork
//! schedule and the deposit contract as soon as a node gave them; a header
//! or block by root once its slot is finalized on every eligible node
//! (before that its `canonical` flag, and on newer nodes its `finalized`
//! one, may still change). Never a state, never an answer other than 200.
//!
//! The key is the path and query as sent and the `Accept` header (JSON and
//! SSZ answers of one path are different bytes); a cached answer carries
//! the node's headers (`Content-Type`, `Eth-Consensus-Version`), so a hit
//! is the node's answer byte for byte. The store is moka's (TinyLFU
//! admission), bounded by the bytes its entries weigh.

use std::sync::Arc;

use http::header;

use super::counts::Series;
use super::node::Reply;
use super::paths::Keep;
use super::proxy::Owned;

/// Bytes charged per entry beyond its key and answer (map node, headers map).
const ENTRY_OVERHEAD: usize = 128;

pub(super) struct AnswerCache {
    entries: moka::future::Cache<String, Arc<Reply>>,
}

/// The cache key of a request: `Accept`, then the path and query.
pub(super) fn key(req: &Owned) -> String {
    let accept = req
        .headers
        .get(header::ACCEPT)
        .map(|v| v.as_bytes())
        .unwrap_or_default();
    format!(
        "{}\n{}",
        String::from_utf8_lossy(accept),
        req.path_and_query
    )
}

fn weight(key: &str, reply: &Reply) -> usize {
    let headers: usize = reply
        .headers
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len())
        .sum();
    key.len() + reply.body.len() + headers + ENTRY_OVERHEAD
}

/// The slot of a header or block answer (`data.header.message.slot` or
/// `data.message.slot`), when the body says.
fn slot_of(body: &[u8]) -> Option<u64> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let data = &v["data"];
    let slot = if data["header"]["message"]["slot"].is_null() {
        &data["message"]["slot"]
    } else {
        &data["header"]["message"]["slot"]
    };
    slot.as_str()?.parse().ok()
}

impl AnswerCache {
    pub(super) fn new(max_bytes: u64) -> AnswerCache {
        AnswerCache {
            entries: moka::future::Cache::builder()
                .max_capacity(max_bytes)
                .weigher(|k: &String, r: &Arc<Reply>| {
                    u32::try_from(weight(k, r)).unwrap_or(u32::MAX)
                })
                .build(),
        }
    }

    /// The kept answer for `key`, counted as a hit or a miss.
    pub(super) async fn get(&self, key: &str, series: &Series) -> Option<Reply> {
        match self.entries.get(key).await {
            Some(r) => {
                series.cache_hits.inc();
                Some(Reply::clone(&r))
            }
            None => {
                series.cache_misses.inc();
                None
            }
        }
    }

    /// Keeps `reply` when `keep` allows it now (`finalized_slot`: final on
    /// every eligible node).
    pub(super) async fn store(
        &self,
        key: String,
        reply: &Reply,
        keep: Keep,
        finalized_slot: Option<u64>,
        series: &Series,
    ) {
        if reply.status != http::StatusCode::OK {
            return;
        }
        let ok = match keep {
            Keep::Always => true,
            Keep::OnceFinalized => match (slot_of(&reply.body), finalized_slot) {
                (Some(slot), Some(fin)) => slot <= fin,
                // An SSZ answer does not say its slot here: not kept.
                _ => false,
            },
            Keep::Never => false,
        };
        if ok {
            self.entries.insert(key, Arc::new(reply.clone())).await;
            series
                .cache_bytes
                .set(i64::try_from(self.entries.weighted_size()).unwrap_or(i64::MAX));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_of_headers_and_blocks() {
        let header =
            br#"{"data":{"root":"0x1","canonical":true,"header":{"message":{"slot":"17"}}}}"#;
        let block = br#"{"version":"altair","data":{"message":{"slot":"18"},"signature":"0x"}}"#;
        assert_eq!(slot_of(header), Some(17));
        assert_eq!(slot_of(block), Some(18));
        assert_eq!(slot_of(b"\x00\x01ssz"), None);
    }
}
