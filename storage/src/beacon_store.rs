//! The beacon's own store: beacon blocks by height, the shard schedule, the
//! newest shard height each beacon block left recorded, and every recorded
//! shard header by (shard, height), so that receipts of old source blocks
//! can still be proven after the beacon's memory let their headers go.
//!
//! It is a RocksDB instance of the same schema as a shard store (so it gets
//! the same checks on open: schema version, chain, not someone else's
//! database), with the identity of the pseudo-shard [`BEACON`]. Beacon types
//! live in `atoll-consensus`, above this crate, so the store holds their
//! encodings; the caller decodes them with their own bounds.

use crate::error::StorageError;
use crate::keys;
use crate::keys::cf;
use crate::shard_store::{sync_write, ShardStore};
use crate::StoreIdentity;
use atoll_primitives::codec::MAX_BLOCK_BYTES;
use atoll_primitives::{codec, ChainId, Hash, ShardBlockHeader, ShardId};

use rocksdb::WriteBatch;
use std::path::Path;
use std::sync::PoisonError;

/// The identity's shard number of a beacon store; no shard has it (a chain
/// has at most a few hundred shards).
pub const BEACON: ShardId = ShardId(u16::MAX);

/// `meta` key of the newest beacon height (a borsh `u64`).
const META_BEACON_HEAD: &[u8] = b"beacon_head";
/// `meta` key of the encoded shard schedule.
const META_SCHEDULE: &[u8] = b"beacon_schedule";
/// `meta` key of the newest recorded height of each shard (borsh
/// `Vec<(ShardId, u64)>`), as of the newest beacon block.
const META_RECORDED: &[u8] = b"beacon_recorded";

/// `meta` key of the newest beacon height whose recorded headers are
/// indexed by (shard, height), with the beacon height that recorded each
/// and the block's height by its hash (a borsh `u64`); absent in stores
/// written before the index was complete, which
/// [`BeaconStore::index_headers`] fills (the key of the first index,
/// `beacon_indexed`, lacked the last two).
const META_INDEXED: &[u8] = b"beacon_indexed_2";

/// Largest encoded list of recorded heights accepted (one per shard).
const MAX_RECORDED_BYTES: usize = 4 + 10 * 4096;

/// The beacon's RocksDB store.
#[derive(Debug)]
pub struct BeaconStore {
    pub(crate) inner: ShardStore,
}

impl BeaconStore {
    /// Opens (creating if missing or empty) the beacon store of `chain_id`
    /// at `path`, with the checks of [`ShardStore::open`].
    pub fn open(path: &Path, chain_id: ChainId) -> Result<BeaconStore, StorageError> {
        let identity = StoreIdentity {
            chain_id,
            shard: BEACON,
        };
        Ok(BeaconStore {
            inner: ShardStore::open(path, identity)?,
        })
    }

    /// The newest beacon height (None before the first beacon block).
    pub fn head(&self) -> Result<Option<u64>, StorageError> {
        self.inner
            .get(cf::META, "beacon head", META_BEACON_HEAD, 16)
    }

    /// The encoding of the beacon block at `height`.
    pub fn block(&self, height: u64) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self
            .inner
            .db
            .get_cf(self.inner.cf(cf::BLOCKS), height.to_be_bytes())?)
    }

    /// The newest recorded height of each shard, as of the newest block.
    pub fn recorded(&self) -> Result<Vec<(ShardId, u64)>, StorageError> {
        Ok(self
            .inner
            .get(
                cf::META,
                "recorded heights",
                META_RECORDED,
                MAX_RECORDED_BYTES,
            )?
            .unwrap_or_default())
    }

    /// The encoding of the shard schedule, if one was stored.
    pub fn schedule(&self) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self
            .inner
            .db
            .get_cf(self.inner.cf(cf::META), META_SCHEDULE)?)
    }

    /// The shard header the beacon recorded for `shard` at `height`.
    pub fn recorded_header(
        &self,
        shard: ShardId,
        height: u64,
    ) -> Result<Option<ShardBlockHeader>, StorageError> {
        self.inner.get(
            cf::HEADERS,
            "recorded shard header",
            &keys::recorded_header(shard, height),
            MAX_BLOCK_BYTES,
        )
    }

    /// The newest beacon height whose recorded headers are indexed (0:
    /// none, or a store from before the index).
    pub fn indexed_to(&self) -> Result<u64, StorageError> {
        Ok(self
            .inner
            .get(cf::META, "indexed beacon height", META_INDEXED, 16)?
            .unwrap_or(0))
    }

    /// Indexes beacon block `height` (whose hash is `hash`) and the
    /// `headers` it recorded (for a store written before the index:
    /// [`BeaconStore::append`] indexes every new block itself). Not
    /// synced: the index and its height are written together, so one lost
    /// in a crash is simply indexed again.
    pub fn index_headers(
        &self,
        height: u64,
        hash: &Hash,
        headers: &[ShardBlockHeader],
    ) -> Result<(), StorageError> {
        let mut batch = WriteBatch::default();
        self.put_headers(&mut batch, height, hash, headers);
        self.inner.db.write(batch)?;
        Ok(())
    }

    /// The height of the beacon block that recorded `shard`'s block at
    /// `height` (None: not recorded yet, or below the history this store
    /// holds).
    pub fn recorded_in(&self, shard: ShardId, height: u64) -> Result<Option<u64>, StorageError> {
        self.inner.get(
            cf::HEADERS,
            "recording beacon height",
            &keys::recorded_in(shard, height),
            16,
        )
    }

    /// The height of the beacon block whose hash is `hash`.
    pub fn height_of(&self, hash: &Hash) -> Result<Option<u64>, StorageError> {
        self.inner.get(
            cf::HEADERS,
            "beacon height by hash",
            &keys::height_by_hash(hash),
            16,
        )
    }

    fn put_headers(
        &self,
        batch: &mut WriteBatch,
        height: u64,
        hash: &Hash,
        headers: &[ShardBlockHeader],
    ) {
        let family = self.inner.cf(cf::HEADERS);
        batch.put_cf(family, keys::height_by_hash(hash), codec::encode(&height));
        for header in headers {
            batch.put_cf(
                family,
                keys::recorded_header(header.shard, header.height),
                codec::encode(header),
            );
            batch.put_cf(
                family,
                keys::recorded_in(header.shard, header.height),
                codec::encode(&height),
            );
        }
        batch.put_cf(
            self.inner.cf(cf::META),
            META_INDEXED,
            codec::encode(&height),
        );
    }

    /// Stores beacon block `height` (which must follow the head; its hash
    /// is `hash`), the shard `headers` it recorded, the shards' recorded heights after it,
    /// the schedule and, with several validators, the consensus block
    /// whose payload it executed, in one synced write.
    #[allow(clippy::too_many_arguments)]
    pub fn append(
        &self,
        height: u64,
        hash: &Hash,
        block: &[u8],
        headers: &[ShardBlockHeader],
        recorded: &[(ShardId, u64)],
        schedule: &[u8],
        executed: Option<(u64, Hash)>,
    ) -> Result<(), StorageError> {
        let _guard = self
            .inner
            .commit_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let expected = self.head()?.map_or(1, |head| head + 1);
        if height != expected {
            return Err(StorageError::UnexpectedHeight {
                expected,
                found: height,
            });
        }
        let meta = self.inner.cf(cf::META);
        let mut batch = WriteBatch::default();
        batch.put_cf(self.inner.cf(cf::BLOCKS), height.to_be_bytes(), block);
        self.put_headers(&mut batch, height, hash, headers);
        batch.put_cf(meta, META_RECORDED, codec::encode(&recorded.to_vec()));
        batch.put_cf(meta, META_SCHEDULE, schedule);
        batch.put_cf(meta, META_BEACON_HEAD, codec::encode(&height));
        if let Some(executed) = executed {
            batch.put_cf(
                meta,
                crate::consensus_log::EXECUTED,
                codec::encode(&executed),
            );
            batch.put_cf(
                meta,
                crate::consensus_log::executed_at_key(height),
                codec::encode(&executed),
            );
        }
        self.inner.db.write_opt(batch, &sync_write())?;
        Ok(())
    }

    /// Replaces the stored schedule (a move was scheduled), synced.
    pub fn put_schedule(&self, schedule: &[u8]) -> Result<(), StorageError> {
        let _guard = self
            .inner
            .commit_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        self.inner.db.put_cf_opt(
            self.inner.cf(cf::META),
            META_SCHEDULE,
            schedule,
            &sync_write(),
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(shard: u16, height: u64) -> ShardBlockHeader {
        ShardBlockHeader {
            chain_id: ChainId(5),
            shard: ShardId(shard),
            height,
            parent: Hash::ZERO,
            timestamp_ms: height,
            epoch: 0,
            map_hash: Hash::ZERO,
            state_root: Hash::ZERO,
            tx_root: Hash::ZERO,
            outcome_root: Hash::ZERO,
            receipt_roots: vec![(ShardId(1), Hash::ZERO)],
            incoming_root: Hash::ZERO,
            inbox_cursors: Vec::new(),
            congested: false,
            tx_count: 0,
            burnt_fees: 0,
        }
    }

    #[test]
    fn recorded_headers_are_found_by_shard_and_height() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = BeaconStore::open(&dir.path().join("beacon"), ChainId(5)).expect("open");
        let first = [header(0, 1), header(1, 1)];
        store
            .append(1, &Hash([1; 32]), b"one", &first, &[], b"s", None)
            .expect("append");
        store
            .append(2, &Hash([2; 32]), b"two", &[header(0, 2)], &[], b"s", None)
            .expect("append");
        assert_eq!(store.indexed_to().expect("read"), 2);
        assert_eq!(
            store.recorded_header(ShardId(1), 1).expect("read"),
            Some(header(1, 1))
        );
        assert_eq!(
            store.recorded_header(ShardId(0), 2).expect("read"),
            Some(header(0, 2))
        );
        assert_eq!(store.recorded_header(ShardId(1), 2).expect("read"), None);
        // Which beacon block recorded each, and beacon heights by hash.
        assert_eq!(store.recorded_in(ShardId(1), 1).expect("read"), Some(1));
        assert_eq!(store.recorded_in(ShardId(0), 2).expect("read"), Some(2));
        assert_eq!(store.recorded_in(ShardId(1), 2).expect("read"), None);
        assert_eq!(store.height_of(&Hash([2; 32])).expect("read"), Some(2));
        assert_eq!(store.height_of(&Hash([9; 32])).expect("read"), None);
        // A store from before the index is filled block by block.
        store
            .index_headers(3, &Hash([3; 32]), &[header(1, 2)])
            .expect("index");
        assert_eq!(store.indexed_to().expect("read"), 3);
        assert_eq!(
            store.recorded_header(ShardId(1), 2).expect("read"),
            Some(header(1, 2))
        );
        assert_eq!(store.recorded_in(ShardId(1), 2).expect("read"), Some(3));
    }

    #[test]
    fn blocks_follow_one_another_and_survive_a_reopen() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("beacon");
        {
            let store = BeaconStore::open(&path, ChainId(5)).expect("open");
            assert_eq!(store.head().expect("head"), None);
            store
                .append(
                    1,
                    &Hash([1; 32]),
                    b"one",
                    &[],
                    &[(ShardId(0), 3)],
                    b"s1",
                    None,
                )
                .expect("first");
            assert!(matches!(
                store.append(3, &Hash([3; 32]), b"three", &[], &[], b"s1", None),
                Err(StorageError::UnexpectedHeight {
                    expected: 2,
                    found: 3
                })
            ));
            store.put_schedule(b"s2").expect("schedule");
        }
        let store = BeaconStore::open(&path, ChainId(5)).expect("reopen");
        assert_eq!(store.head().expect("head"), Some(1));
        assert_eq!(store.block(1).expect("read"), Some(b"one".to_vec()));
        assert_eq!(store.recorded().expect("read"), vec![(ShardId(0), 3)]);
        assert_eq!(store.schedule().expect("read"), Some(b"s2".to_vec()));
        assert_eq!(store.indexed_to().expect("read"), 1);
        drop(store);
        assert!(matches!(
            BeaconStore::open(&path, ChainId(6)),
            Err(StorageError::IdentityMismatch { .. })
        ));
    }
}
