//! Errors of the storage crate.

use crate::schema::{StoreIdentity, SCHEMA_VERSION};
use atoll_primitives::{ChainId, Hash, ShardId};
use std::path::PathBuf;
use thiserror::Error;

/// A store operation failed.
///
/// Opening errors name the data directory and say how to fix it; commit
/// errors say which rule the block broke, and are returned before anything is
/// written.
#[derive(Debug, Error)]
pub enum StorageError {
    /// RocksDB reported an error.
    #[error("rocksdb: {0}")]
    Rocks(#[from] rocksdb::Error),

    /// The data directory could not be created or listed.
    #[error("cannot use data directory {path}: {source}; check that the path is a directory this user may write")]
    Io {
        /// The data directory.
        path: PathBuf,
        /// What the file system reported.
        #[source]
        source: std::io::Error,
    },

    /// RocksDB refused to open (or to inspect) the store.
    #[error("cannot open the store at {path}: {source}; if another atoll process is using this data directory, stop it first")]
    Open {
        /// The data directory.
        path: PathBuf,
        /// What RocksDB reported.
        #[source]
        source: rocksdb::Error,
    },

    /// The path is not empty and holds no RocksDB database.
    #[error("{path} is not an atoll data directory: it is not empty and holds no RocksDB database (no CURRENT file); point --home at an empty directory or an atoll data directory")]
    NotADataDirectory {
        /// The offending path.
        path: PathBuf,
    },

    /// The path holds a RocksDB database that some other program wrote.
    #[error("{path} holds a RocksDB database that is not an atoll shard store (column families: {column_families:?}); point --home at an empty directory or an atoll data directory")]
    ForeignDatabase {
        /// The data directory.
        path: PathBuf,
        /// The column families found there.
        column_families: Vec<String>,
    },

    /// The store was written by an atoll with another storage layout.
    #[error("{path} was written with store schema version {found}; this atoll reads version {}: start with a fresh data directory, or run the atoll version that wrote it", SCHEMA_VERSION)]
    SchemaVersion {
        /// The data directory.
        path: PathBuf,
        /// The schema version recorded in the store.
        found: u32,
    },

    /// The store belongs to another chain or another shard.
    #[error("{path} holds the store of {found}, but this node expects {expected}: point --home at the data directory of this chain and shard, or start with a fresh one")]
    IdentityMismatch {
        /// The data directory.
        path: PathBuf,
        /// The identity recorded in the store.
        found: StoreIdentity,
        /// The identity the caller asked for.
        expected: StoreIdentity,
    },

    /// Bytes read from the store do not decode: the store is damaged.
    #[error("the store is corrupt: {what} at key {key}: {reason}; restore the data directory from a backup or resynchronise into a fresh one")]
    Corrupt {
        /// What was being read.
        what: &'static str,
        /// The key, in hex.
        key: String,
        /// Why the bytes were refused.
        reason: String,
    },

    /// The block was produced for another chain.
    #[error("block at height {height} is for chain {found}, but this store holds chain {expected}: only commit blocks of this store's chain")]
    WrongChain {
        /// The block height.
        height: u64,
        /// This store's chain.
        expected: ChainId,
        /// The block's chain.
        found: ChainId,
    },

    /// The block belongs to another shard.
    #[error("block at height {height} is for shard {found}, but this store holds shard {expected}: commit it to that shard's store")]
    WrongShard {
        /// The block height.
        height: u64,
        /// This store's shard.
        expected: ShardId,
        /// The block's shard.
        found: ShardId,
    },

    /// The block does not extend the head by exactly one height.
    #[error("block height {found} does not follow the store head: the next height is {expected} (0 for the genesis block of an empty store)")]
    UnexpectedHeight {
        /// The height the next block must have.
        expected: u64,
        /// The block's height.
        found: u64,
    },

    /// The block's parent is not the head.
    #[error("block at height {height} names parent {found}, but the store head is {expected} (the zero hash for genesis): build the block on the current head")]
    ParentMismatch {
        /// The block height.
        height: u64,
        /// The head's hash.
        expected: Hash,
        /// The block's parent hash.
        found: Hash,
    },

    /// There is not one outcome per transaction.
    #[error("the block has {transactions} transactions but {outcomes} outcomes were given: pass one outcome per transaction, in order")]
    OutcomeCount {
        /// Transactions in the block body.
        transactions: usize,
        /// Outcomes passed to the commit.
        outcomes: usize,
    },

    /// The header does not describe the body (transaction count or root).
    #[error("block at height {height}: {reason}: set tx_count and tx_root from the body")]
    BodyMismatch {
        /// The block height.
        height: u64,
        /// What does not match.
        reason: String,
    },

    /// An outgoing receipt names another shard as its source.
    #[error("outgoing receipt {index} has source shard {found}, but this store holds shard {expected}: a block only emits receipts from its own shard")]
    ReceiptSource {
        /// The receipt's position in the commit.
        index: usize,
        /// This store's shard.
        expected: ShardId,
        /// The receipt's source.
        found: ShardId,
    },

    /// An outgoing receipt would leave a gap or repeat a sequence number.
    #[error("outgoing receipt to shard {destination} has sequence {found}, but the next sequence to that shard is {expected}: receipts to one shard are numbered from 0 without gaps")]
    ReceiptSequence {
        /// The destination shard.
        destination: ShardId,
        /// The next sequence number to that destination.
        expected: u64,
        /// The receipt's sequence number.
        found: u64,
    },

    /// The block's incoming receipts do not continue the inbox: one is
    /// addressed elsewhere, replayed, out of order, or the header's cursors
    /// or root do not match them.
    #[error("block at height {height}: {reason}: each receipt from another shard is applied once, in sequence order")]
    IncomingReceipt {
        /// The block height.
        height: u64,
        /// What is wrong.
        reason: String,
    },

    /// A transaction is already in the chain (or twice in this block).
    #[error("transaction {hash} is already included in the block at height {height}: a transaction is included at most once, drop it from the block")]
    DuplicateTransaction {
        /// The transaction hash.
        hash: Hash,
        /// The height of the block that already includes it.
        height: u64,
    },
}
