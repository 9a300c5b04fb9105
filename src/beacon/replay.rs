//! Subscriptions and preparations kept for replay: what validator clients
//! told the nodes (`beacon_committee_subscriptions`,
//! `sync_committee_subscriptions`, `prepare_beacon_proposer`,
//! `register_validator`) is sent again to a node that becomes eligible
//! later, so a failover target already holds it.
//!
//! Bounded by count and bytes: the oldest go first. A body sent again is
//! moved to the back instead of kept twice (validator clients repeat their
//! preparations every epoch). Writes are rare (a few per epoch per
//! validator client) and off the read path, so a plain mutex is enough.

use std::collections::VecDeque;

use bytes::Bytes;
use http::HeaderMap;
use parking_lot::Mutex;

/// One request kept for replay.
#[derive(Clone)]
pub(super) struct Kept {
    /// Path and query as the client sent them.
    pub path_and_query: String,
    /// The headers that go to a node (content type, `Eth-*`).
    pub headers: HeaderMap,
    pub body: Bytes,
}

pub(super) struct Replay {
    kept: Mutex<VecDeque<Kept>>,
    max_entries: usize,
    max_bytes: usize,
}

impl Replay {
    pub(super) fn new(max_entries: usize, max_bytes: usize) -> Replay {
        Replay {
            kept: Mutex::new(VecDeque::new()),
            max_entries,
            max_bytes,
        }
    }

    /// Keeps one request (a body larger than the whole bound is not kept).
    pub(super) fn keep(&self, entry: Kept) {
        if entry.body.len() > self.max_bytes {
            return;
        }
        let mut kept = self.kept.lock();
        kept.retain(|k| k.path_and_query != entry.path_and_query || k.body != entry.body);
        kept.push_back(entry);
        let mut bytes: usize = kept.iter().map(|k| k.body.len()).sum();
        while kept.len() > self.max_entries || bytes > self.max_bytes {
            match kept.pop_front() {
                Some(old) => bytes -= old.body.len(),
                None => break,
            }
        }
    }

    /// What a joining node is sent, oldest first.
    pub(super) fn all(&self) -> Vec<Kept> {
        self.kept.lock().iter().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kept(path: &str, body: &'static str) -> Kept {
        Kept {
            path_and_query: path.into(),
            headers: HeaderMap::new(),
            body: Bytes::from_static(body.as_bytes()),
        }
    }

    #[test]
    fn bounded_and_repeated_bodies_kept_once() {
        let r = Replay::new(3, 10);
        r.keep(kept("/a", "1"));
        r.keep(kept("/b", "2"));
        r.keep(kept("/a", "1"));
        let paths: Vec<String> = r.all().into_iter().map(|k| k.path_and_query).collect();
        assert_eq!(paths, ["/b", "/a"]);
        r.keep(kept("/c", "3"));
        r.keep(kept("/d", "4"));
        let paths: Vec<String> = r.all().into_iter().map(|k| k.path_and_query).collect();
        assert_eq!(paths, ["/a", "/c", "/d"]);
        r.keep(kept("/e", "123456789"));
        let paths: Vec<String> = r.all().into_iter().map(|k| k.path_and_query).collect();
        assert_eq!(paths, ["/d", "/e"], "the bytes bound drops the oldest");
        r.keep(kept("/f", "12345678901"));
        assert_eq!(r.all().len(), 2, "a body over the whole bound is not kept");
    }
}
