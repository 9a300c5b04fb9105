//! Coalescing: identical calls in flight at the same time make one upstream call.
//!
//! The first caller of a key becomes the leader and calls upstream; callers
//! that arrive while it is in flight follow it and get a copy of its outcome
//! (each answer is wrapped with its own caller's id later, in the HTTP stage).
//! The table holds only calls in flight, so it is bounded by the requests the
//! server accepts at once. The lock is held only to look up, insert or remove
//! one key, never across an await, and no control loop takes it.
//!
//! A leader whose client went away is dropped mid-call: its guard removes the
//! key and closes the channel, and its followers start over (one of them
//! becomes the new leader), so nobody waits for an answer that never comes.
//!
//! The table is generic over what a flight ends with (`T`): the cache
//! shares whatever the pipeline's upstream call returns, answer or error,
//! without knowing the router's error type.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::watch;

use super::key::Key;

type Slot<T> = watch::Receiver<Option<T>>;

/// foldhash (seeded per process) rather than SipHash: every miss hashes
/// its key here twice (join, leave).
///
/// Each flight is numbered, so that a leader leaving removes its own
/// flight and not a newer one under the same key.
pub(super) struct Flights<T> {
    table: Mutex<HashMap<Key, (u64, Slot<T>), foldhash::fast::RandomState>>,
    next: AtomicU64,
}

impl<T> Default for Flights<T> {
    fn default() -> Self {
        Flights {
            table: Mutex::default(),
            next: AtomicU64::new(0),
        }
    }
}

/// Either the call to make, or the leader to wait for.
pub(super) enum Joined<'a, T> {
    Lead(Lead<'a, T>),
    Follow(Slot<T>),
}

/// The leader's duty: call upstream, then [`Lead::finish`].
pub(super) struct Lead<'a, T> {
    flights: &'a Flights<T>,
    key: Key,
    id: u64,
    tx: watch::Sender<Option<T>>,
    /// Whether the key left the table already.
    left: bool,
}

impl<T: Clone> Flights<T> {
    pub(super) fn join(&self, key: &Key) -> Joined<'_, T> {
        let mut table = self.table.lock();
        if let Some((_, slot)) = table.get(key) {
            return Joined::Follow(slot.clone());
        }
        let (tx, rx) = watch::channel(None);
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        table.insert(key.clone(), (id, rx));
        Joined::Lead(Lead {
            flights: self,
            key: key.clone(),
            id,
            tx,
            left: false,
        })
    }

    /// Calls in flight (for tests and metrics).
    pub(super) fn in_flight(&self) -> usize {
        self.table.lock().len()
    }
}

/// Waits for the leader. `None`: it gave up, start over.
pub(super) async fn follow<T: Clone>(mut slot: Slot<T>) -> Option<T> {
    match slot.wait_for(Option::is_some).await {
        Ok(outcome) => outcome.clone(),
        Err(_) => None,
    }
}

impl<T: Clone> Lead<'_, T> {
    /// Hands the outcome to every follower and ends the flight. The key
    /// leaves the table first, so the followers counted then are all there
    /// will be: a call that nothing joined (most calls: distinct requests)
    /// hands nothing over, neither a copy of the outcome nor a wake-up.
    pub(super) fn finish(mut self, outcome: &T) {
        self.leave();
        if self.tx.receiver_count() > 0 {
            self.tx.send_replace(Some(outcome.clone()));
        }
    }
}

impl<T> Lead<'_, T> {
    /// Removes the flight from the table (once).
    fn leave(&mut self) {
        if self.left {
            return;
        }
        self.left = true;
        let mut table = self.flights.table.lock();
        // Only our own flight: a new leader may already own the key.
        if table.get(&self.key).is_some_and(|(id, _)| *id == self.id) {
            table.remove(&self.key);
        }
    }
}

impl<T> Drop for Lead<'_, T> {
    fn drop(&mut self) {
        self.leave();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the tests' flights end with: a result text, or a failure.
    type Outcome = Result<&'static str, ()>;

    fn key() -> Key {
        Key::new("eth_getBalance", Some(r#"["0x1","0x2"]"#))
    }

    #[tokio::test]
    async fn followers_get_the_leaders_outcome() {
        let flights = Flights::<Outcome>::default();
        let Joined::Lead(lead) = flights.join(&key()) else {
            panic!("the first caller leads")
        };
        let followers: Vec<_> = (0..5)
            .map(|_| match flights.join(&key()) {
                Joined::Follow(slot) => tokio::spawn(follow(slot)),
                Joined::Lead(_) => panic!("a second leader"),
            })
            .collect();
        let other = Key::new("eth_getBalance", Some(r#"["0x1","0x3"]"#));
        assert!(matches!(flights.join(&other), Joined::Lead(_)));
        lead.finish(&Ok("\"0x5\""));
        for f in followers {
            let outcome = f.await.unwrap().expect("an outcome");
            assert_eq!(outcome.unwrap(), "\"0x5\"");
        }
        assert_eq!(flights.in_flight(), 0);
        assert!(
            matches!(flights.join(&key()), Joined::Lead(_)),
            "a new flight"
        );
    }

    #[tokio::test]
    async fn a_dropped_leader_releases_its_followers() {
        let flights = Flights::<Outcome>::default();
        let lead = flights.join(&key());
        let Joined::Follow(slot) = flights.join(&key()) else {
            panic!()
        };
        drop(lead);
        assert!(follow(slot).await.is_none());
        assert_eq!(flights.in_flight(), 0);
        assert!(matches!(flights.join(&key()), Joined::Lead(_)));
    }
}
