//! The multi-version memory of Block-STM (Gelashvili et al., "Block-STM:
//! Scaling Blockchain Execution by Turning Ordering Curse to a Performance
//! Blessing", PPoPP 2023, Algorithm 2).
//!
//! For every state key it keeps, sorted by transaction index, the value each
//! transaction wrote (with the incarnation that wrote it), or an ESTIMATE
//! marker where an aborted incarnation wrote and its re-execution probably
//! will again. A read by
//! transaction `j` returns the entry of the highest index below `j`.
//!
//! Keys a transaction declares up front (a native transfer's sender and
//! recipient) are entered as ESTIMATE markers before execution starts, the
//! pre-estimation the paper suggests: a later reader then waits for the writer
//! instead of reading a stale value and being aborted.

use super::super::rules::WriteSet;
use ahash::RandomState;
use atoll_primitives::{StateChange, StateKey, StateValue};
use parking_lot::Mutex;
use rayon::prelude::*;
use smallvec::SmallVec;

/// A transaction's position in the block.
pub(crate) type TxnIndex = u32;
/// How many times a transaction has been (re-)started.
pub(crate) type Incarnation = u32;

/// Where a read value came from; validation compares it with a re-read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ReadOrigin {
    /// The committed state below the block (no lower transaction wrote the key).
    Storage,
    /// The write of this transaction incarnation.
    Version(TxnIndex, Incarnation),
}

/// The result of reading a key from the multi-version memory.
#[derive(Clone, Debug)]
pub(crate) enum MvRead {
    /// A lower transaction wrote this value (`None`: it deleted the key).
    Value(TxnIndex, Incarnation, Option<StateValue>),
    /// No lower transaction wrote the key: read the committed state.
    NotFound,
    /// The highest lower writer is being re-executed: wait for it.
    Dependency(TxnIndex),
}

#[derive(Clone, Debug)]
enum Entry {
    Written(Incarnation, Option<StateValue>),
    Estimate,
}

/// The entries of one key, sorted by transaction index. Most keys have a
/// few writers in a block, so they live inline, without a heap allocation.
#[derive(Default)]
struct KeyVersions(Mutex<SmallVec<[(TxnIndex, Entry); 2]>>);

impl KeyVersions {
    fn read(&self, txn: TxnIndex) -> MvRead {
        let entries = self.0.lock();
        let below = entries.partition_point(|(writer, _)| *writer < txn);
        match below.checked_sub(1).map(|i| &entries[i]) {
            None => MvRead::NotFound,
            Some((writer, Entry::Estimate)) => MvRead::Dependency(*writer),
            Some((writer, Entry::Written(incarnation, value))) => {
                MvRead::Value(*writer, *incarnation, value.clone())
            }
        }
    }

    /// Where `txn`'s read would come from, without copying the value;
    /// `None` when it would meet an ESTIMATE.
    fn origin(&self, txn: TxnIndex) -> Option<ReadOrigin> {
        let entries = self.0.lock();
        let below = entries.partition_point(|(writer, _)| *writer < txn);
        match below.checked_sub(1).map(|i| &entries[i]) {
            None => Some(ReadOrigin::Storage),
            Some((_, Entry::Estimate)) => None,
            Some((writer, Entry::Written(incarnation, _))) => {
                Some(ReadOrigin::Version(*writer, *incarnation))
            }
        }
    }

    fn insert(entries: &mut SmallVec<[(TxnIndex, Entry); 2]>, txn: TxnIndex, entry: Entry) {
        let at = entries.partition_point(|(writer, _)| *writer < txn);
        match entries.get_mut(at) {
            Some(slot) if slot.0 == txn => slot.1 = entry,
            _ => entries.insert(at, (txn, entry)),
        }
    }

    fn set(&self, txn: TxnIndex, entry: Entry) {
        KeyVersions::insert(&mut self.0.lock(), txn, entry);
    }

    fn remove(&self, txn: TxnIndex) {
        let mut entries = self.0.lock();
        if let Ok(at) = entries.binary_search_by_key(&txn, |(writer, _)| *writer) {
            entries.remove(at);
        }
    }
}

/// The keys a transaction read, with where each value came from.
pub(crate) type ReadSet = SmallVec<[(StateKey, ReadOrigin); 2]>;
type KeyList = SmallVec<[StateKey; 3]>;

pub(crate) struct MvMemory {
    /// The versions of every key written or declared in the block. Every
    /// transaction reads its contract's code and account, so a read must
    /// not write shared memory (a lock's state would move between the
    /// cores on every read): the map's reads take no lock, and a key no
    /// transaction writes is not in it at all.
    versions: papaya::HashMap<StateKey, KeyVersions, RandomState>,
    last_written: Vec<Mutex<KeyList>>,
    last_read: Vec<Mutex<ReadSet>>,
}

/// Keys the map is sized for per transaction, besides the declared ones
/// (an ERC-20 transfer writes two slots, a swap about six).
const UNDECLARED_PER_TX: usize = 4;

impl MvMemory {
    /// A memory for a block whose transaction `i` declares `declared[i]`,
    /// with an ESTIMATE for each declared write (entered on `pool`).
    pub(crate) fn with_estimates(
        declared_keys: Vec<KeyList>,
        pool: &rayon::ThreadPool,
    ) -> MvMemory {
        let declared: usize = declared_keys.iter().map(|keys| keys.len()).sum();
        let versions = papaya::HashMap::builder()
            .capacity(declared + declared_keys.len() * UNDECLARED_PER_TX)
            .hasher(RandomState::new())
            .build();
        pool.install(|| {
            declared_keys
                .par_iter()
                .enumerate()
                .for_each(|(txn, keys)| {
                    let map = versions.pin();
                    for key in keys {
                        map.get_or_insert_with(*key, KeyVersions::default)
                            .set(txn as TxnIndex, Entry::Estimate);
                    }
                })
        });
        let last_read = (0..declared_keys.len())
            .map(|_| Mutex::new(ReadSet::new()))
            .collect();
        let last_written = declared_keys.into_iter().map(Mutex::new).collect();
        MvMemory {
            versions,
            last_written,
            last_read,
        }
    }

    fn with_versions<R>(&self, key: &StateKey, f: impl FnOnce(&KeyVersions) -> R) -> Option<R> {
        self.versions.pin().get(key).map(f)
    }

    fn with_versions_or_insert<R>(&self, key: &StateKey, f: impl FnOnce(&KeyVersions) -> R) -> R {
        f(self
            .versions
            .pin()
            .get_or_insert_with(*key, KeyVersions::default))
    }

    /// Reads `key` as transaction `txn` sees it.
    pub(crate) fn read(&self, key: &StateKey, txn: TxnIndex) -> MvRead {
        self.with_versions(key, |v| v.read(txn))
            .unwrap_or(MvRead::NotFound)
    }

    /// Records the reads and writes of incarnation `incarnation` of `txn`.
    /// Returns whether it wrote a key its previous incarnation did not (then
    /// higher transactions must be validated again).
    pub(crate) fn record(
        &self,
        txn: TxnIndex,
        incarnation: Incarnation,
        reads: ReadSet,
        writes: WriteSet,
    ) -> bool {
        let new_keys: KeyList = writes.iter().map(|(k, _)| *k).collect();
        for (key, value) in writes {
            self.with_versions_or_insert(&key, |v| v.set(txn, Entry::Written(incarnation, value)));
        }
        let mut last_written = self.last_written[txn as usize].lock();
        for old in last_written.iter().filter(|k| !new_keys.contains(k)) {
            self.with_versions(old, |v| v.remove(txn));
        }
        let wrote_new_key = new_keys.iter().any(|k| !last_written.contains(k));
        *last_written = new_keys;
        drop(last_written);
        *self.last_read[txn as usize].lock() = reads;
        wrote_new_key
    }

    /// Replaces the writes of `txn`'s aborted incarnation with ESTIMATE markers.
    pub(crate) fn convert_writes_to_estimates(&self, txn: TxnIndex) {
        for key in self.last_written[txn as usize].lock().iter() {
            self.with_versions(key, |v| v.set(txn, Entry::Estimate));
        }
    }

    /// Whether every read of `txn`'s last incarnation would still return the
    /// same version.
    pub(crate) fn validate_read_set(&self, txn: TxnIndex) -> bool {
        let reads = self.last_read[txn as usize].lock();
        reads.iter().all(|(key, origin)| {
            let now = self
                .with_versions(key, |v| v.origin(txn))
                .unwrap_or(Some(ReadOrigin::Storage));
            now == Some(*origin)
        })
    }

    /// The final value of every written key once all transactions are
    /// done.
    pub(crate) fn final_writes(&self) -> Vec<StateChange> {
        self.versions
            .pin()
            .iter()
            .filter_map(|(key, versions)| match versions.0.lock().last() {
                Some((_, Entry::Written(_, value))) => Some((*key, value.clone())),
                // A declared key no transaction wrote has no entries left.
                None => None,
                Some((_, Entry::Estimate)) => {
                    unreachable!("no ESTIMATE survives a completed block")
                }
            })
            .collect()
    }
}
