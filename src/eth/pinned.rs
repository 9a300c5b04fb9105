//! What a call's block argument resolves to once `latest` is pinned to the
//! served head: the lowest head that can serve it, the block it names, the
//! span of a log filter. Block pinning (`calls::pinning`) produces it; the
//! cache's rules, the heavy-call bound and the router read it, so the params
//! are read once. The type lives here, in the leaf, because the cache below
//! the per-call stage reads it too.

use std::borrow::Cow;

use super::block_ref::BlockRef;

/// What one call needs, with `latest` pinned.
#[derive(Debug, PartialEq, Eq)]
pub struct Pinned<'a> {
    /// The lowest backend head that can serve the call.
    pub min_head: u64,
    /// The params to send: the caller's text, or a rewrite with `latest` pinned.
    pub params: Option<Cow<'a, str>>,
    /// Whether `latest` was pinned: the call reads the present, which the
    /// cache never keeps.
    pub pinned_latest: bool,
    /// The block argument as the caller wrote it, for a method that takes
    /// one at a fixed position (not `eth_getLogs`); `None` when it is absent
    /// or the params are not a list.
    pub block: Option<BlockRef>,
    /// For a log filter: how many blocks it spans (`fromBlock` to `toBlock`
    /// with `latest` read as the served head; a `blockHash` filter is one
    /// block), so that a heavy range is refused without parsing it again.
    pub log_blocks: Option<u64>,
    /// For a log filter: a key that a node would take for one of the
    /// filter's fields but is not spelled as that field (`FROMBLOCK`,
    /// `ToBlock`), see [`odd_filter_key`]. Such a filter is refused: its
    /// range as the node reads it is not the range judged here.
    pub odd_filter_key: Option<String>,
}

impl Pinned<'_> {
    /// The block whose state a state read needs (`Method::reads_state`),
    /// when its number is known: a number, `earliest`, or `latest` and
    /// `pending` (the served head). A hash, `safe` or `finalized` is not
    /// placed here, and such a read goes to any backend at the served head.
    pub fn state_block(&self, served: u64) -> Option<u64> {
        match self.block {
            Some(BlockRef::Number(n)) => Some(n),
            Some(BlockRef::Earliest) => Some(0),
            Some(BlockRef::Pending) => Some(served),
            _ if self.pinned_latest => Some(self.min_head),
            _ => None,
        }
    }
}

/// The fields of a log filter, as nodes name them.
const FILTER_FIELDS: [&str; 5] = ["fromBlock", "toBlock", "blockHash", "address", "topics"];

/// Whether `key` names a filter field for a node without being spelled as
/// it. Geth decodes the filter with Go's `encoding/json`, which matches
/// object keys to fields ignoring case, with Unicode simple case folding:
/// `FROMBLOCK`, `ToBlock`, even `fromBloc\u{212a}` (the Kelvin sign folds to
/// `k`, the long s `\u{17f}` to `s`) set `fromBlock`, and a later key wins
/// over an earlier one. Read case-sensitively here, such a key would let a
/// client hide the range the node will serve.
pub fn odd_filter_key(key: &str) -> bool {
    let folded: Option<String> = key
        .chars()
        .map(|c| match c {
            '\u{212a}' => Some('k'),
            '\u{17f}' => Some('s'),
            c if c.is_ascii() => Some(c.to_ascii_lowercase()),
            _ => None,
        })
        .collect();
    let Some(folded) = folded else {
        return false;
    };
    FILTER_FIELDS
        .iter()
        .any(|f| f.eq_ignore_ascii_case(&folded) && *f != key)
}
