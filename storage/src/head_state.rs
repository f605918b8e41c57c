//! The committed state at one head, fixed for as long as a reader needs it.
//!
//! A read-only contract call reads tens of keys, one after the other, while
//! the producer goes on committing blocks. Read from the live store, its
//! first keys could come from block `h` and its last from `h + 1`: a state
//! that never existed. [`HeadState`] reads everything, the head's header
//! and shard map included, from one RocksDB snapshot, so a commit running
//! meanwhile is either wholly in it or not at all.

use crate::error::StorageError;
use crate::keys::{self, cf};
use crate::shard_store::{ShardStore, MAX_SMALL_VALUE_BYTES};
use atoll_primitives::codec::MAX_BLOCK_BYTES;
use atoll_primitives::{ShardBlockHeader, ShardMap, StateKey, StateValue};
use rocksdb::{DBWithThreadMode, SingleThreaded, SnapshotWithThreadMode};

/// The state, header and shard map of one committed head (see the module
/// docs). Holding it keeps RocksDB from dropping what it reads, so hold it
/// only for one reader's work.
pub struct HeadState<'a> {
    store: &'a ShardStore,
    snapshot: SnapshotWithThreadMode<'a, DBWithThreadMode<SingleThreaded>>,
    head: ShardBlockHeader,
    shard_map: Option<ShardMap>,
}

impl ShardStore {
    /// The committed head with its state, read from one snapshot; None for
    /// a store with no block yet.
    pub fn head_state(&self) -> Result<Option<HeadState<'_>>, StorageError> {
        let snapshot = self.db.snapshot();
        let Some(height) = self.get_at::<u64>(
            &snapshot,
            cf::META,
            "head height",
            keys::META_HEAD,
            MAX_SMALL_VALUE_BYTES,
        )?
        else {
            return Ok(None);
        };
        let key = keys::header(height);
        let Some(head) = self.get_at::<ShardBlockHeader>(
            &snapshot,
            cf::HEADERS,
            "block header",
            &key,
            MAX_BLOCK_BYTES,
        )?
        else {
            return Err(StorageError::Corrupt {
                what: "head height",
                key: hex::encode(keys::META_HEAD),
                reason: format!("the head is at height {height}, which has no header"),
            });
        };
        let shard_map = match snapshot.get_pinned_cf(self.cf(cf::META), keys::META_SHARD_MAP)? {
            Some(bytes) => Some(
                ShardMap::decode(&bytes).map_err(|err| StorageError::Corrupt {
                    what: "shard map",
                    key: hex::encode(keys::META_SHARD_MAP),
                    reason: err.to_string(),
                })?,
            ),
            None => None,
        };
        Ok(Some(HeadState {
            store: self,
            snapshot,
            head,
            shard_map,
        }))
    }
}

impl HeadState<'_> {
    /// The head's header.
    pub fn head(&self) -> &ShardBlockHeader {
        &self.head
    }

    /// The shard map the head executed under, if one was ever recorded (as
    /// [`ShardStore::shard_map`]: none means the genesis layout holds).
    pub fn shard_map(&self) -> Option<&ShardMap> {
        self.shard_map.as_ref()
    }

    /// The value of `key` after the head, None if the state does not hold it.
    pub fn state(&self, key: &StateKey) -> Result<Option<StateValue>, StorageError> {
        let stored = keys::state(key);
        match self
            .snapshot
            .get_pinned_cf(self.store.cf(cf::STATE), &stored)?
        {
            Some(bytes) => keys::state_value(key, &stored, &bytes).map(Some),
            None => Ok(None),
        }
    }
}
