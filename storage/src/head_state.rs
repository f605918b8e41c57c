//! The committed state at one head, fixed for as long as a reader needs it.
//!
//! A read-only contract call reads tens of keys, one after the other, while
//! the producer goes on committing blocks. Read from the live store, its
//! first keys could come from block `h` and its last from `h + 1`: a state
//! that never existed. [`HeadState`] reads everything, the head's header
//! and shard map included, from one RocksDB snapshot, so a commit running
//! meanwhile is either wholly in it or not at all.

use crate::error::StorageError;
use crate::shard_store::ShardStore;
use atoll_primitives::{ShardBlockHeader, ShardMap, StateKey, StateValue};
use rocksdb::{DBWithThreadMode, SingleThreaded, SnapshotWithThreadMode};

/// The state, header and shard map of one committed head (see the module
/// docs). Holding it keeps RocksDB from dropping what it reads, so hold it
/// only for one reader's work.
pub struct HeadState<'a> {
    store: &'a ShardStore,
    snapshot: SnapshotWithThreadMode<'a, DBWithThreadMode<SingleThreaded>>,
    head: ShardBlockHeader,
}

impl ShardStore {
    /// The committed head with its state, read from one snapshot; None for
    /// a store with no block yet.
    pub fn head_state(&self) -> Result<Option<HeadState<'_>>, StorageError> {
        let snapshot = self.db.snapshot();
        let Some(head) = self.head_from(&snapshot)? else {
            return Ok(None);
        };
        Ok(Some(HeadState {
            store: self,
            snapshot,
            head,
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
    /// Read when asked: most readers need only the state.
    pub fn shard_map(&self) -> Result<Option<ShardMap>, StorageError> {
        self.store.shard_map_from(&self.snapshot)
    }

    /// The value of `key` after the head, None if the state does not hold it.
    pub fn state(&self, key: &StateKey) -> Result<Option<StateValue>, StorageError> {
        self.store.state_from(&self.snapshot, key)
    }
}
