//! An in-memory cache of committed accounts in front of the store.
//!
//! Every transaction reads its sender's account at admission, again when
//! its block picks ready nonces, and its sender's and recipient's accounts
//! during execution; served from RocksDB each read walks the memtable's skip
//! list. The cache answers repeat reads from a hash map.
//!
//! Consistency: the block producer is the only writer. After each commit it
//! applies the block's state changes ([`CachedState::apply`]), which also
//! bumps a generation number. A reader that missed and went to the store
//! inserts what it read only if no commit happened meanwhile, so a value
//! read before a commit can never overwrite the value after it. Entries are
//! never evicted; past `capacity` new keys are read through without being
//! kept, which bounds the memory.
//!
//! Reads take no lock: the Block-STM threads read the cache for every key
//! no earlier transaction of the block wrote, and a read lock's counter,
//! shared by all of them, moved between the cores on every read. Writers
//! (a miss that inserts, a block's changes, a snapshot's install) take one
//! mutex, which also orders the generation check with the insert. A reader
//! sees each key either before or after a block's change, as it did when
//! the store alone was read during a commit.

use super::StateView;
use crate::error::ShardError;
use ahash::RandomState;
use atoll_primitives::{Account, Address, StateChange, StateKey, StateValue};
use atoll_storage::ShardStore;
use parking_lot::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Values kept by default (about 80 bytes each: code is never kept, see
/// [`kept`]).
pub const DEFAULT_CAPACITY: usize = 1 << 20;

/// The store's committed state, with a bounded read cache.
pub struct CachedState {
    store: Arc<ShardStore>,
    map: papaya::HashMap<StateKey, Option<StateValue>, RandomState>,
    /// Bumped by every change of the store's state; written only while
    /// `writer` is held.
    generation: AtomicU64,
    /// Held by whoever inserts into `map`.
    writer: Mutex<()>,
    capacity: usize,
}

impl CachedState {
    /// A cache of at most `capacity` accounts over `store`.
    pub fn new(store: Arc<ShardStore>, capacity: usize) -> CachedState {
        CachedState {
            store,
            map: papaya::HashMap::builder()
                .hasher(RandomState::new())
                .build(),
            generation: AtomicU64::new(0),
            writer: Mutex::new(()),
            capacity,
        }
    }

    /// The committed value of `key`.
    pub fn value(&self, key: &StateKey) -> Result<Option<StateValue>, ShardError> {
        if let Some(value) = self.map.pin().get(key) {
            return Ok(value.clone());
        }
        let generation = self.generation.load(Ordering::Acquire);
        let value = self.store.state(key)?;
        if kept(key) {
            let _writer = self.writer.lock();
            if self.generation.load(Ordering::Acquire) == generation
                && self.map.len() < self.capacity
            {
                self.map.pin().insert(*key, value.clone());
            }
        }
        Ok(value)
    }

    /// The committed account at `address`: the empty account when the
    /// state does not hold it.
    pub fn account(&self, address: &Address) -> Result<Account, ShardError> {
        Ok(super::account_in(self.value(&StateKey::Account(*address))?))
    }

    /// Records a committed block's final values. Call after the commit.
    pub fn apply(&self, changes: &[StateChange]) {
        let _writer = self.writer.lock();
        self.generation.fetch_add(1, Ordering::AcqRel);
        let map = self.map.pin();
        // Counted here: the map's own count is a sum over its shards.
        let mut held = map.len();
        for (key, value) in changes {
            if !kept(key) {
                continue;
            }
            if held < self.capacity {
                if map.insert(*key, value.clone()).is_none() {
                    held += 1;
                }
            } else if map.contains_key(key) {
                map.insert(*key, value.clone());
            }
        }
    }

    /// Forgets every account held: the store's state was replaced
    /// wholesale (a snapshot was installed). Call after the write.
    pub fn clear(&self) {
        let _writer = self.writer.lock();
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.map.pin().clear();
    }

    /// Accounts held.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether no account is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl StateView for CachedState {
    fn get(&self, key: &StateKey) -> Result<Option<StateValue>, ShardError> {
        self.value(key)
    }
}

/// The cache holds what the store holds (a block's writes reach both in its
/// commit), so the store lists the slots.
impl super::SlotScan for CachedState {
    fn slots(
        &self,
        address: &Address,
        limit: usize,
    ) -> Result<Vec<atoll_primitives::Slot>, ShardError> {
        Ok(self.store.slots(address, limit)?)
    }
}

/// Whether the cache keeps `key`'s value: everything but code, which can
/// be tens of kilobytes a value (a count bound would not bound its memory)
/// and is read once per block by the contracts that run it.
fn kept(key: &StateKey) -> bool {
    !matches!(key, StateKey::Code(_))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::test_key;
    use atoll_primitives::{ChainId, ShardId};
    use atoll_storage::StoreIdentity;

    fn store() -> (tempfile::TempDir, Arc<ShardStore>) {
        let dir = tempfile::tempdir().expect("temp dir");
        let identity = StoreIdentity {
            chain_id: ChainId(1),
            shard: ShardId(0),
        };
        let store = ShardStore::open(dir.path(), identity).expect("store");
        (dir, Arc::new(store))
    }

    #[test]
    fn applied_values_win_and_the_capacity_holds() {
        let (_dir, store) = store();
        let cache = CachedState::new(store, 2);
        let (a, b, c) = (test_key(1), test_key(2), test_key(3));
        assert_eq!(cache.value(&a).expect("read"), None);
        let one = Some(StateValue::Account(atoll_primitives::Account {
            balance: 5,
            nonce: 1,
        }));
        cache.apply(&[(a, one.clone()), (b, one.clone())]);
        assert_eq!(cache.value(&a).expect("read"), one);
        assert_eq!(cache.len(), 2);
        // Full: a new key is read through, not kept; held keys still update.
        assert_eq!(cache.value(&c).expect("read"), None);
        assert_eq!(cache.len(), 2);
        let two = Some(StateValue::Slot([2; 32]));
        cache.apply(&[(a, two.clone()), (c, two.clone())]);
        assert_eq!(cache.value(&a).expect("read"), two);
        assert_eq!(cache.len(), 2);
        // A deletion is kept as "absent".
        cache.apply(&[(a, None)]);
        assert_eq!(cache.value(&a).expect("read"), None);
        // Code is never kept.
        let code = StateKey::Code(atoll_primitives::Hash([1; 32]));
        cache.apply(&[(code, Some(StateValue::Code(vec![1, 2, 3])))]);
        assert!(!cache.map.pin().contains_key(&code));
    }
}
