//! Errors of the storage crate.

use thiserror::Error;

/// A store operation failed.
#[derive(Debug, Error)]
pub enum StorageError {
    /// RocksDB reported an error.
    #[error("rocksdb: {0}")]
    Rocks(#[from] rocksdb::Error),
}
