//! The shard store: opening it and reading from it. Writing is in `commit.rs`.

use crate::error::StorageError;
use crate::keys::{self, cf};
use crate::schema::{self, Found, StoreIdentity, SCHEMA_VERSION};
use atoll_primitives::codec::{self, MAX_BLOCK_BYTES, MAX_RECEIPT_BYTES};
use atoll_primitives::{
    Account, Address, Hash, Receipt, ShardBlock, ShardBlockBody, ShardBlockHeader, ShardId,
    ShardMap, Slot, StateKey, StateValue, TxOutcome,
};
use borsh::{BorshDeserialize, BorshSerialize};
use rocksdb::{
    BlockBasedOptions, ColumnFamily, ColumnFamilyDescriptor, DBCompressionType, DBPinnableSlice,
    DBWithThreadMode, IteratorMode, Options, SingleThreaded, SnapshotWithThreadMode, WriteBatch,
    WriteOptions,
};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// Largest encoded state key, account, height or cursor accepted from the store.
pub(crate) const MAX_SMALL_VALUE_BYTES: usize = 256;
/// Largest encoded [`TxLocation`] accepted. A contract outcome holds logs
/// and return data, which gas bounds: a transaction may use at most 2^24
/// gas, log data costs 8 gas a byte and memory grows quadratically in cost,
/// so neither passes a few megabytes; 16 MiB leaves room.
pub const MAX_TX_LOCATION_BYTES: usize = 16 * 1024 * 1024;

/// Where a transaction was included, and what it did.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct TxLocation {
    /// Height of the block that includes the transaction.
    pub height: u64,
    /// Position of the transaction in that block's body.
    pub index: u32,
    /// The transaction's outcome.
    pub outcome: TxOutcome,
    /// The receipt it emitted to another shard (destination, sequence).
    pub receipt: Option<(ShardId, u64)>,
}

/// Where a transaction in the chain is ([`ShardStore::inclusion`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Inclusion {
    /// In the index: its block, position and outcome.
    Indexed(TxLocation),
    /// In a block at or below `height`, the snapshot this store was
    /// installed from; known by hash only.
    BelowSnapshot {
        /// The snapshot's height.
        height: u64,
    },
}

/// The RocksDB store of one shard: blocks, state, outgoing receipts and the
/// transaction index, all advanced together by [`ShardStore::commit_block`].
///
/// Reads may run from any thread; commits are serialised by an internal lock.
pub struct ShardStore {
    pub(crate) db: DBWithThreadMode<SingleThreaded>,
    identity: StoreIdentity,
    path: PathBuf,
    /// Held from a commit's validation to its write, so two commits cannot
    /// both validate against the same head.
    pub(crate) commit_lock: Mutex<()>,
    /// Whether the state was installed from a snapshot: transactions below
    /// the history are then known by hash only.
    pub(crate) synced: AtomicBool,
}

impl std::fmt::Debug for ShardStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShardStore")
            .field("path", &self.path)
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}

/// The options every column family is opened with.
fn column_family_options(name: &str) -> Options {
    let mut options = Options::default();
    options.set_compression_type(DBCompressionType::Lz4);
    // Point lookups dominate (the duplicate check of every admission and
    // every block, account reads): a bloom filter over the memtable's keys
    // answers a miss without walking its skip list.
    options.set_memtable_prefix_bloom_ratio(0.1);
    options.set_memtable_whole_key_filtering(true);
    if name == cf::TX_INDEX || name == cf::HEADERS {
        // Most tx index lookups are for transactions that are not there yet
        // (the duplicate check of every commit): a bloom filter answers them
        // without reading a block.
        let mut table = BlockBasedOptions::default();
        table.set_bloom_filter(10.0, false);
        options.set_block_based_table_factory(&table);
    }
    options
}

impl ShardStore {
    /// Opens (creating if the directory is missing or empty) the store at `path` for `identity`.
    ///
    /// Refuses, without modifying the directory, a path that holds something
    /// other than an atoll shard store, a store of another schema version, or
    /// the store of another chain or shard.
    pub fn open(path: &Path, identity: StoreIdentity) -> Result<ShardStore, StorageError> {
        let found = schema::inspect(path, identity)?;
        let mut names: Vec<String> = cf::ALL.iter().map(|name| name.to_string()).collect();
        if let Found::Store { column_families } = &found {
            // RocksDB opens a database only with all of its column families.
            for name in column_families {
                if !names.contains(name) {
                    names.push(name.clone());
                }
            }
        }
        let mut options = Options::default();
        options.create_if_missing(true);
        options.create_missing_column_families(true);
        options.set_keep_log_file_num(4);
        let descriptors = names
            .iter()
            .map(|name| ColumnFamilyDescriptor::new(name, column_family_options(name)));
        let db =
            DBWithThreadMode::<SingleThreaded>::open_cf_descriptors(&options, path, descriptors)
                .map_err(|source| StorageError::Open {
                    path: path.to_path_buf(),
                    source,
                })?;
        let store = ShardStore {
            db,
            identity,
            path: path.to_path_buf(),
            commit_lock: Mutex::new(()),
            synced: AtomicBool::new(false),
        };
        if !matches!(found, Found::Store { .. }) {
            store.write_meta()?;
        }
        store
            .synced
            .store(store.history_from()? > 0, Ordering::Release);
        Ok(store)
    }

    /// Records the schema version and identity of a new store.
    fn write_meta(&self) -> Result<(), StorageError> {
        let meta = self.cf(cf::META);
        let mut batch = WriteBatch::default();
        batch.put_cf(
            meta,
            keys::META_SCHEMA_VERSION,
            codec::encode(&SCHEMA_VERSION),
        );
        batch.put_cf(meta, keys::META_IDENTITY, codec::encode(&self.identity));
        self.db.write_opt(batch, &sync_write())?;
        Ok(())
    }

    /// The chain and shard this store holds.
    pub fn identity(&self) -> StoreIdentity {
        self.identity
    }

    /// The data directory of this store.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The handle of column family `name`.
    pub(crate) fn cf(&self, name: &str) -> &ColumnFamily {
        self.db
            .cf_handle(name)
            .expect("open() opens every column family of cf::ALL")
    }

    /// Reads and decodes the value at `key` of column family `family`.
    pub(crate) fn get<T: BorshDeserialize>(
        &self,
        family: &str,
        what: &'static str,
        key: &[u8],
        limit: usize,
    ) -> Result<Option<T>, StorageError> {
        self.get_from(&self.db, family, what, key, limit)
    }

    /// As [`ShardStore::get`], from `source` (the database or a snapshot).
    fn get_from<T: BorshDeserialize>(
        &self,
        source: &impl Source,
        family: &str,
        what: &'static str,
        key: &[u8],
        limit: usize,
    ) -> Result<Option<T>, StorageError> {
        match source.pinned(self.cf(family), key)? {
            Some(bytes) => keys::decode(what, key, &bytes, limit).map(Some),
            None => Ok(None),
        }
    }

    /// The newest committed header, None for a store with no block yet.
    pub fn head(&self) -> Result<Option<ShardBlockHeader>, StorageError> {
        self.head_from(&self.db)
    }

    /// As [`ShardStore::head`], from `source`.
    pub(crate) fn head_from(
        &self,
        source: &impl Source,
    ) -> Result<Option<ShardBlockHeader>, StorageError> {
        let Some(height) = self.get_from::<u64>(
            source,
            cf::META,
            "head height",
            keys::META_HEAD,
            MAX_SMALL_VALUE_BYTES,
        )?
        else {
            return Ok(None);
        };
        let header = self.get_from::<ShardBlockHeader>(
            source,
            cf::HEADERS,
            "block header",
            &keys::header(height),
            MAX_BLOCK_BYTES,
        )?;
        match header {
            Some(header) => Ok(Some(header)),
            None => Err(StorageError::Corrupt {
                what: "head height",
                key: hex::encode(keys::META_HEAD),
                reason: format!("the head is at height {height}, which has no header"),
            }),
        }
    }

    /// The shard map the head executed under, if it was ever recorded (a
    /// store whose shards never changed has none: its genesis layout holds).
    pub fn shard_map(&self) -> Result<Option<ShardMap>, StorageError> {
        self.shard_map_from(&self.db)
    }

    /// As [`ShardStore::shard_map`], from `source`.
    pub(crate) fn shard_map_from(
        &self,
        source: &impl Source,
    ) -> Result<Option<ShardMap>, StorageError> {
        let Some(bytes) = source.pinned(self.cf(cf::META), keys::META_SHARD_MAP)? else {
            return Ok(None);
        };
        ShardMap::decode(&bytes)
            .map(Some)
            .map_err(|err| StorageError::Corrupt {
                what: "shard map",
                key: hex::encode(keys::META_SHARD_MAP),
                reason: err.to_string(),
            })
    }

    /// The header at `height`, if a block was committed there.
    pub fn header(&self, height: u64) -> Result<Option<ShardBlockHeader>, StorageError> {
        self.get(
            cf::HEADERS,
            "block header",
            &keys::header(height),
            MAX_BLOCK_BYTES,
        )
    }

    /// The height of the committed block whose hash is `hash`.
    pub fn height_of(&self, hash: &Hash) -> Result<Option<u64>, StorageError> {
        self.get(
            cf::HEADERS,
            "block height",
            &keys::height_by_hash(hash),
            MAX_SMALL_VALUE_BYTES,
        )
    }

    /// The block (header and body) at `height`.
    pub fn block(&self, height: u64) -> Result<Option<ShardBlock>, StorageError> {
        let Some(header) = self.header(height)? else {
            return Ok(None);
        };
        let key = keys::body(height);
        match self.get::<ShardBlockBody>(cf::BLOCKS, "block body", &key, MAX_BLOCK_BYTES)? {
            Some(body) => Ok(Some(ShardBlock { header, body })),
            // The head of a snapshot comes without its body.
            None if self.synced.load(Ordering::Acquire) && height == self.history_from()? => {
                Ok(None)
            }
            None => Err(StorageError::Corrupt {
                what: "block body",
                key: hex::encode(key),
                reason: format!("height {height} has a header but no body"),
            }),
        }
    }

    /// The current value of `key`, None if the state does not hold it.
    pub fn state(&self, key: &StateKey) -> Result<Option<StateValue>, StorageError> {
        self.state_from(&self.db, key)
    }

    /// As [`ShardStore::state`], from `source`.
    pub(crate) fn state_from(
        &self,
        source: &impl Source,
        key: &StateKey,
    ) -> Result<Option<StateValue>, StorageError> {
        let stored = keys::state(key);
        match source.pinned(self.cf(cf::STATE), &stored)? {
            Some(bytes) => keys::state_value(key, &stored, &bytes).map(Some),
            None => Ok(None),
        }
    }

    /// The account at `address`, None if the state does not hold it.
    pub fn account(&self, address: &Address) -> Result<Option<Account>, StorageError> {
        Ok(match self.state(&StateKey::Account(*address))? {
            Some(StateValue::Account(account)) => Some(account),
            _ => None,
        })
    }

    /// The storage slots of the contract at `address` (key, value), in key
    /// order, at most `limit` of them: a caller that wants to know whether
    /// there are more asks for one more than it takes.
    pub fn slots(&self, address: &Address, limit: usize) -> Result<Vec<Slot>, StorageError> {
        let prefix = keys::slots_of(address);
        let mut slots = Vec::new();
        let entries = self.db.iterator_cf(
            self.cf(cf::STATE),
            IteratorMode::From(&prefix, rocksdb::Direction::Forward),
        );
        for entry in entries {
            if slots.len() >= limit {
                break;
            }
            let (key, value) = entry?;
            if !key.starts_with(&prefix) {
                break;
            }
            let state_key = keys::decode("state key", &key, &key, MAX_SMALL_VALUE_BYTES)?;
            match (state_key, keys::state_value(&state_key, &key, &value)?) {
                (StateKey::Slot(_, slot), StateValue::Slot(value)) => slots.push((slot, value)),
                (other, _) => {
                    return Err(StorageError::Corrupt {
                        what: "state key",
                        key: hex::encode(&key),
                        reason: format!("{other:?} under the slots of {address}"),
                    })
                }
            }
        }
        Ok(slots)
    }

    /// Every (key, value) of the state, in key order (used to rebuild the state tree at start-up).
    ///
    /// The iteration reads one consistent snapshot of the state.
    pub fn state_entries(
        &self,
    ) -> impl Iterator<Item = Result<(StateKey, StateValue), StorageError>> + '_ {
        self.db
            .iterator_cf(self.cf(cf::STATE), IteratorMode::Start)
            .map(|entry| {
                let (key, value) = entry?;
                let state_key = keys::decode("state key", &key, &key, MAX_SMALL_VALUE_BYTES)?;
                let value = keys::state_value(&state_key, &key, &value)?;
                Ok((state_key, value))
            })
    }

    /// Whether the transaction `hash` is in the chain: indexed, or below the
    /// history of a store installed from a snapshot.
    pub fn includes_transaction(&self, hash: &Hash) -> Result<bool, StorageError> {
        Ok(self.inclusion(hash)?.is_some())
    }

    /// For each of `hashes`, in order, whether [`ShardStore::includes_transaction`]
    /// says so, read in one batch (a block producer asks about every
    /// transaction it takes). Only presence is read, not the location.
    pub fn known_transactions(&self, hashes: &[Hash]) -> Result<Vec<bool>, StorageError> {
        let index = self.cf(cf::TX_INDEX);
        let indexed: Vec<[u8; 32]> = hashes.iter().map(keys::transaction).collect();
        let mut known = self
            .db
            .batched_multi_get_cf(index, &indexed, false)
            .into_iter()
            .map(|found| Ok(found?.is_some()))
            .collect::<Result<Vec<bool>, StorageError>>()?;
        if self.synced.load(Ordering::Acquire) {
            let (unknown, synced): (Vec<usize>, Vec<[u8; 33]>) = known
                .iter()
                .enumerate()
                .filter(|(_, known)| !**known)
                .map(|(i, _)| (i, keys::synced_transaction(&hashes[i])))
                .unzip();
            let found = self.db.batched_multi_get_cf(index, &synced, false);
            for (i, found) in unknown.into_iter().zip(found) {
                known[i] = found?.is_some();
            }
        }
        Ok(known)
    }

    /// Where the transaction `hash` is in the chain, if it is: the one
    /// answer to "already included?" for every path that asks (a block's
    /// transactions, the mempool's admission).
    pub fn inclusion(&self, hash: &Hash) -> Result<Option<Inclusion>, StorageError> {
        if let Some(location) = self.transaction(hash)? {
            return Ok(Some(Inclusion::Indexed(location)));
        }
        if !self.synced.load(Ordering::Acquire)
            || self
                .db
                .get_pinned_cf(self.cf(cf::TX_INDEX), keys::synced_transaction(hash))?
                .is_none()
        {
            return Ok(None);
        }
        Ok(Some(Inclusion::BelowSnapshot {
            height: self.history_from()?,
        }))
    }

    /// The lowest height whose block this store holds: 0 for a store that
    /// executed every block from genesis, the snapshot's height for one
    /// installed from a peer's snapshot (its head then, with no body; such
    /// a store also keeps its genesis block).
    pub fn history_from(&self) -> Result<u64, StorageError> {
        Ok(self
            .get(
                cf::META,
                "history start",
                keys::META_HISTORY_FROM,
                MAX_SMALL_VALUE_BYTES,
            )?
            .unwrap_or(0))
    }

    /// Where the transaction `hash` was included, and its outcome.
    pub fn transaction(&self, hash: &Hash) -> Result<Option<TxLocation>, StorageError> {
        self.get(
            cf::TX_INDEX,
            "transaction location",
            &keys::transaction(hash),
            MAX_TX_LOCATION_BYTES,
        )
    }

    /// Where this shard forwarded incoming receipt `sequence` from
    /// `source` (destination, sequence), if it did.
    pub fn forwarded(
        &self,
        source: ShardId,
        sequence: u64,
    ) -> Result<Option<(ShardId, u64)>, StorageError> {
        self.get(
            cf::META,
            "forwarded receipt",
            &keys::forwarded(source, sequence),
            MAX_SMALL_VALUE_BYTES,
        )
    }

    /// What incoming call receipt `sequence` from `source` did here, if a
    /// block of this shard ran it.
    pub fn call_record(
        &self,
        source: ShardId,
        sequence: u64,
    ) -> Result<Option<atoll_primitives::CallRecord>, StorageError> {
        self.get(
            cf::META,
            "call record",
            &keys::call(source, sequence),
            MAX_TX_LOCATION_BYTES,
        )
    }

    /// The height of the block that applied receipt `sequence` from
    /// `source`, if one did.
    pub fn incoming_applied(
        &self,
        source: ShardId,
        sequence: u64,
    ) -> Result<Option<u64>, StorageError> {
        self.get(
            cf::META,
            "incoming receipt height",
            &keys::incoming(source, sequence),
            MAX_SMALL_VALUE_BYTES,
        )
    }

    /// Next outgoing receipt sequence number to `destination` (0 if none sent yet).
    pub fn outbox_cursor(&self, destination: ShardId) -> Result<u64, StorageError> {
        let key = keys::outbox_cursor(destination);
        let cursor = self.get(cf::META, "outbox cursor", &key, MAX_SMALL_VALUE_BYTES)?;
        Ok(cursor.unwrap_or(0))
    }

    /// The outgoing receipt `sequence` to `destination`, if it was emitted.
    pub fn outgoing_receipt(
        &self,
        destination: ShardId,
        sequence: u64,
    ) -> Result<Option<Receipt>, StorageError> {
        Ok(self
            .outgoing_receipt_at(destination, sequence)?
            .map(|stored| stored.receipt))
    }

    /// The outgoing receipt `sequence` to `destination` with the height of
    /// the block that emitted it.
    pub fn outgoing_receipt_at(
        &self,
        destination: ShardId,
        sequence: u64,
    ) -> Result<Option<StoredReceipt>, StorageError> {
        self.get(
            cf::RECEIPTS,
            "receipt",
            &keys::receipt(destination, sequence),
            MAX_STORED_RECEIPT_BYTES,
        )
    }
}

/// Largest stored receipt accepted: the receipt and its block height.
const MAX_STORED_RECEIPT_BYTES: usize = MAX_RECEIPT_BYTES + 8;

/// An outgoing receipt as stored: with the height of the block that emitted
/// it, so its proof can be rebuilt from that block's receipts.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct StoredReceipt {
    /// Height of the emitting block.
    pub height: u64,
    /// The receipt.
    pub receipt: Receipt,
}

/// Write options that make a commit durable before it returns.
pub(crate) fn sync_write() -> WriteOptions {
    let mut options = WriteOptions::default();
    options.set_sync(true);
    options
}

/// Where a read goes: the live database, or one snapshot of it (see
/// [`crate::HeadState`]).
pub(crate) trait Source {
    /// The value at `key` of `family`, pinned.
    fn pinned(
        &self,
        family: &ColumnFamily,
        key: &[u8],
    ) -> Result<Option<DBPinnableSlice<'_>>, rocksdb::Error>;
}

impl Source for DBWithThreadMode<SingleThreaded> {
    fn pinned(
        &self,
        family: &ColumnFamily,
        key: &[u8],
    ) -> Result<Option<DBPinnableSlice<'_>>, rocksdb::Error> {
        self.get_pinned_cf(family, key)
    }
}

impl Source for SnapshotWithThreadMode<'_, DBWithThreadMode<SingleThreaded>> {
    fn pinned(
        &self,
        family: &ColumnFamily,
        key: &[u8],
    ) -> Result<Option<DBPinnableSlice<'_>>, rocksdb::Error> {
        self.get_pinned_cf(family, key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use atoll_primitives::{Address, ChainId};

    fn identity() -> StoreIdentity {
        StoreIdentity {
            chain_id: ChainId(9),
            shard: ShardId(2),
        }
    }

    #[test]
    fn store_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<ShardStore>();
    }

    #[test]
    fn new_store_is_empty() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = ShardStore::open(dir.path(), identity()).expect("open empty dir");
        assert_eq!(store.identity(), identity());
        assert_eq!(store.head().ok(), Some(None));
        assert_eq!(store.header(0).ok(), Some(None));
        assert_eq!(store.outbox_cursor(ShardId(0)).ok(), Some(0));
        assert_eq!(store.state_entries().count(), 0);
    }

    #[test]
    fn garbage_in_the_store_is_reported_as_corruption() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = ShardStore::open(dir.path(), identity()).expect("open empty dir");
        let key = StateKey::Account(Address([4; 20]));
        store
            .db
            .put_cf(store.cf(cf::STATE), keys::state(&key), [1, 2, 3])
            .expect("raw write");
        assert!(matches!(
            store.state(&key),
            Err(StorageError::Corrupt {
                what: "state value",
                ..
            })
        ));
        let entries: Vec<_> = store.state_entries().collect();
        assert!(matches!(
            entries.as_slice(),
            [Err(StorageError::Corrupt { .. })]
        ));
        store
            .db
            .put_cf(store.cf(cf::META), keys::META_HEAD, codec::encode(&5u64))
            .expect("raw write");
        assert!(matches!(
            store.head(),
            Err(StorageError::Corrupt {
                what: "head height",
                ..
            })
        ));
    }
}
