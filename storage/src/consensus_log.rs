//! What the beacon store keeps for consensus: vote records written by
//! atoll before the vote log ([`crate::VoteLog`]; the node moves them there
//! on start), every final
//! consensus block with the certificates that prove it (served to
//! validators catching up), the newest final block, and the newest block
//! whose payload the shards executed.
//!
//! Consensus types live in `atoll-consensus`, above this crate, so values
//! are stored as their encodings; the caller decodes them with its bounds.

use crate::beacon_store::BeaconStore;
use crate::error::StorageError;
use crate::keys::cf;
use crate::shard_store::sync_write;
use atoll_primitives::{codec, Hash};
use rocksdb::{Direction, IteratorMode, WriteBatch};

/// Prefix of a vote record: big-endian height and a kind byte follow.
const VOTE: &[u8] = b"consensus/vote/";
/// Prefix of a final block: the big-endian height follows.
const FINAL_BLOCK: &[u8] = b"consensus/block/";
/// The newest final block: borsh `(u64, Hash)`.
const FINAL_HEAD: &[u8] = b"consensus/final";
/// The newest executed block: borsh `(u64, Hash)`.
pub(crate) const EXECUTED: &[u8] = b"consensus/executed";
/// Prefix of "beacon block h was made of consensus block (height, hash)".
pub(crate) const EXECUTED_AT: &[u8] = b"consensus/executed-at/";

/// The key of beacon height `height` under [`EXECUTED_AT`].
pub(crate) fn executed_at_key(height: u64) -> Vec<u8> {
    keyed(EXECUTED_AT, height, b"")
}

fn keyed(prefix: &[u8], height: u64, suffix: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(prefix.len() + 8 + suffix.len());
    key.extend_from_slice(prefix);
    key.extend_from_slice(&height.to_be_bytes());
    key.extend_from_slice(suffix);
    key
}

impl BeaconStore {
    /// Stores a vote record of `height` (`kind` tells records of one height
    /// apart), synced: it is on disk when this returns.
    pub fn put_vote_record(
        &self,
        height: u64,
        kind: u8,
        record: &[u8],
    ) -> Result<(), StorageError> {
        let meta = self.inner.cf(cf::META);
        self.inner
            .db
            .put_cf_opt(meta, keyed(VOTE, height, &[kind]), record, &sync_write())?;
        Ok(())
    }

    /// Every vote record at `from` or above, in height order.
    pub fn vote_records(&self, from: u64) -> Result<Vec<Vec<u8>>, StorageError> {
        self.scan(VOTE, from, usize::MAX)
            .map(|found| found.into_iter().map(|(_, v)| v).collect())
    }

    /// Deletes the vote records below `height` (no longer needed once the
    /// chain is final far above them).
    pub fn prune_vote_records(&self, below: u64) -> Result<(), StorageError> {
        let meta = self.inner.cf(cf::META);
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(meta, keyed(VOTE, 0, &[]), keyed(VOTE, below, &[]));
        self.inner.db.write(batch)?;
        Ok(())
    }

    /// Stores final blocks (height and encoding) and the newest final
    /// block, in one synced write.
    pub fn put_final_blocks(
        &self,
        blocks: &[(u64, Vec<u8>)],
        newest: (u64, Hash),
    ) -> Result<(), StorageError> {
        let meta = self.inner.cf(cf::META);
        let mut batch = WriteBatch::default();
        for (height, bytes) in blocks {
            batch.put_cf(meta, keyed(FINAL_BLOCK, *height, &[]), bytes);
        }
        batch.put_cf(meta, FINAL_HEAD, codec::encode(&newest));
        self.inner.db.write_opt(batch, &sync_write())?;
        Ok(())
    }

    /// Final blocks from `from` on (height and encoding), at most `max`.
    pub fn final_blocks(&self, from: u64, max: usize) -> Result<Vec<(u64, Vec<u8>)>, StorageError> {
        self.scan(FINAL_BLOCK, from, max)
    }

    /// The newest final block (height and hash), if any.
    pub fn final_head(&self) -> Result<Option<(u64, Hash)>, StorageError> {
        self.inner
            .get(cf::META, "final consensus block", FINAL_HEAD, 64)
    }

    /// The newest consensus block whose payload the shards executed (stored
    /// with the beacon block that recorded it, see [`BeaconStore::append`]).
    pub fn executed(&self) -> Result<Option<(u64, Hash)>, StorageError> {
        self.inner
            .get(cf::META, "executed consensus block", EXECUTED, 64)
    }

    /// The consensus block (height, hash) that beacon block `height` was
    /// made of, with several validators.
    pub fn executed_at(&self, height: u64) -> Result<Option<(u64, Hash)>, StorageError> {
        self.inner.get(
            cf::META,
            "executed consensus block",
            &executed_at_key(height),
            64,
        )
    }

    fn scan(
        &self,
        prefix: &[u8],
        from: u64,
        max: usize,
    ) -> Result<Vec<(u64, Vec<u8>)>, StorageError> {
        let meta = self.inner.cf(cf::META);
        let start = keyed(prefix, from, &[]);
        let mut out = Vec::new();
        for item in self
            .inner
            .db
            .iterator_cf(meta, IteratorMode::From(&start, Direction::Forward))
        {
            let (key, value) = item?;
            if out.len() >= max || !key.starts_with(prefix) || key.len() < prefix.len() + 8 {
                break;
            }
            let mut height = [0u8; 8];
            height.copy_from_slice(&key[prefix.len()..prefix.len() + 8]);
            out.push((u64::from_be_bytes(height), value.to_vec()));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use atoll_primitives::ChainId;

    #[test]
    fn records_and_final_blocks_survive_a_reopen_and_prune_by_height() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("beacon");
        {
            let store = BeaconStore::open(&path, ChainId(5)).expect("open");
            assert_eq!(store.final_head().expect("read"), None);
            store.put_vote_record(3, 0, b"a").expect("put");
            store.put_vote_record(3, 1, b"b").expect("put");
            store.put_vote_record(9, 0, b"c").expect("put");
            store
                .put_final_blocks(
                    &[(1, b"one".to_vec()), (2, b"two".to_vec())],
                    (2, Hash([2; 32])),
                )
                .expect("put");
        }
        let store = BeaconStore::open(&path, ChainId(5)).expect("reopen");
        assert_eq!(
            store.vote_records(0).expect("read"),
            vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]
        );
        store.prune_vote_records(4).expect("prune");
        assert_eq!(store.vote_records(0).expect("read"), vec![b"c".to_vec()]);
        assert_eq!(store.final_head().expect("read"), Some((2, Hash([2; 32]))));
        assert_eq!(
            store.final_blocks(2, 10).expect("read"),
            vec![(2, b"two".to_vec())]
        );
        assert_eq!(store.final_blocks(0, 1).expect("read").len(), 1);
        assert_eq!(store.executed().expect("read"), None);
    }
}
