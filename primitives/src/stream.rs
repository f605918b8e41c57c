//! Receipt streams: the one rule of their sequence numbers.
//!
//! The receipts from one shard to another form a stream numbered 0, 1,
//! 2, … with no gap and no repeat ([`crate::Receipt::sequence`]). The
//! destination applies them in that order and a source block sends them in
//! that order, so every path that checks a stream (a block's incoming
//! receipts, its outgoing receipts, a peer's run of receipts) asks the same
//! question: is this number the next one? [`follows`] answers it, and
//! [`StreamCursors`] keeps the next number of each stream one shard sees.

use crate::shard::ShardId;
use std::collections::BTreeMap;

/// Why a receipt cannot be the next of its stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SequenceBreak {
    /// The number was already taken by an earlier receipt.
    #[error("sequence {got} was already taken; the next one is {expected}")]
    Replayed {
        /// The next number of the stream.
        expected: u64,
        /// The receipt's.
        got: u64,
    },
    /// Numbers between the stream's next one and this one are missing.
    #[error("sequence {got} skips ahead; the next one is {expected}")]
    Skipped {
        /// The next number of the stream.
        expected: u64,
        /// The receipt's.
        got: u64,
    },
    /// The stream reached `u64::MAX`, past which no number follows (no
    /// real stream gets there: this is a damaged cursor).
    #[error("the stream is at sequence u64::MAX, after which no receipt can follow")]
    Exhausted,
}

/// Whether a receipt numbered `got` is the next of a stream whose next
/// number is `expected`; if so, the stream's next number after it.
pub fn follows(expected: u64, got: u64) -> Result<u64, SequenceBreak> {
    if got < expected {
        return Err(SequenceBreak::Replayed { expected, got });
    }
    if got > expected {
        return Err(SequenceBreak::Skipped { expected, got });
    }
    expected.checked_add(1).ok_or(SequenceBreak::Exhausted)
}

/// The next sequence number of each stream one shard reads or writes: an
/// inbox's, by source shard, or an outbox's, by destination. A stream not
/// listed starts at 0.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StreamCursors(BTreeMap<ShardId, u64>);

impl StreamCursors {
    /// Cursors starting where `cursors` says.
    pub fn new(cursors: impl IntoIterator<Item = (ShardId, u64)>) -> StreamCursors {
        StreamCursors(cursors.into_iter().collect())
    }

    /// The next number of the stream with `peer`.
    pub fn next(&self, peer: ShardId) -> u64 {
        self.0.get(&peer).copied().unwrap_or(0)
    }

    /// Whether the stream with `peer` is listed.
    pub fn has(&self, peer: ShardId) -> bool {
        self.0.contains_key(&peer)
    }

    /// Lists the stream with `peer` at `next` (where a store says it is).
    pub fn set(&mut self, peer: ShardId, next: u64) {
        self.0.insert(peer, next);
    }

    /// Takes `sequence` as the next receipt of the stream with `peer`
    /// ([`follows`]); on success the stream moves one on, on failure
    /// nothing changes.
    pub fn take(&mut self, peer: ShardId, sequence: u64) -> Result<(), SequenceBreak> {
        let after = follows(self.next(peer), sequence)?;
        self.0.insert(peer, after);
        Ok(())
    }

    /// The listed streams and their next numbers, by shard.
    pub fn iter(&self) -> impl Iterator<Item = (ShardId, u64)> + '_ {
        self.0.iter().map(|(peer, next)| (*peer, *next))
    }

    /// The cursors as a map.
    pub fn into_map(self) -> BTreeMap<ShardId, u64> {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_next_number_follows() {
        assert_eq!(follows(3, 3), Ok(4));
        assert_eq!(
            follows(3, 2),
            Err(SequenceBreak::Replayed {
                expected: 3,
                got: 2
            })
        );
        assert_eq!(
            follows(3, 5),
            Err(SequenceBreak::Skipped {
                expected: 3,
                got: 5
            })
        );
        assert_eq!(follows(u64::MAX, u64::MAX), Err(SequenceBreak::Exhausted));
    }

    #[test]
    fn a_break_leaves_the_cursors_as_they_were() {
        let (a, b) = (ShardId(1), ShardId(2));
        let mut cursors = StreamCursors::new([(a, 7)]);
        assert_eq!(cursors.take(a, 7), Ok(()));
        assert_eq!(cursors.take(b, 0), Ok(()));
        let before = cursors.clone();
        assert!(cursors.take(a, 7).is_err());
        assert!(cursors.take(b, 2).is_err());
        assert_eq!(cursors, before);
        assert_eq!(cursors.iter().collect::<Vec<_>>(), vec![(a, 8), (b, 1)]);
    }
}
