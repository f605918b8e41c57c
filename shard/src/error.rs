//! Errors of the shard crate.

use thiserror::Error;

/// A shard operation failed.
#[derive(Debug, Error)]
pub enum ShardError {
    /// Reading or writing the shard's store failed.
    #[error(transparent)]
    Storage(#[from] atoll_storage::StorageError),
    /// The executor's worker pool could not be created.
    #[error("cannot start {threads} executor threads: {reason}")]
    ThreadPool {
        /// Requested threads.
        threads: usize,
        /// What the OS said.
        reason: String,
    },
}
