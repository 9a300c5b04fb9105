//! API keys: the presented key to the client it belongs to.
//!
//! The table holds only SHA-256 digests (the config never needs a key in
//! clear). A presented key is hashed, then looked up; digests compare with
//! `subtle::ConstantTimeEq`, so the comparison takes the same time whether
//! the first or the last byte differs. The lookup's bucket choice depends on
//! the digest under the map's random SipHash key, which tells an attacker
//! nothing about any configured key.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};

use subtle::ConstantTimeEq;

use crate::config::KeyDigest;

/// A digest whose equality runs in constant time.
#[derive(Clone, Copy)]
struct CtDigest([u8; 32]);

impl PartialEq for CtDigest {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl Eq for CtDigest {}

impl Hash for CtDigest {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.hash(state)
    }
}

/// Key digests to client indexes.
#[derive(Default)]
pub struct KeyTable {
    owners: HashMap<CtDigest, usize>,
}

impl KeyTable {
    pub fn insert(&mut self, digest: KeyDigest, client: usize) {
        self.owners.insert(CtDigest(digest.0), client);
    }

    /// The index of the client that owns `key`.
    pub fn find(&self, key: &str) -> Option<usize> {
        self.owners.get(&CtDigest(KeyDigest::of(key).0)).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_find_their_client() {
        let mut t = KeyTable::default();
        t.insert(KeyDigest::of("key-of-client-zero"), 0);
        t.insert(KeyDigest::of("key-of-client-one"), 1);
        assert_eq!(t.find("key-of-client-one"), Some(1));
        assert_eq!(t.find("key-of-client-zero"), Some(0));
        assert_eq!(t.find("key-of-client-onf"), None);
        assert_eq!(t.find(""), None);
    }
}
