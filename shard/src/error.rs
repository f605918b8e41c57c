//! Errors of the shard crate.

use thiserror::Error;

/// A shard operation failed.
#[derive(Debug, Error)]
pub enum ShardError {
    /// Reading or writing the shard's store failed.
    #[error(transparent)]
    Storage(#[from] atoll_storage::StorageError),
    /// The stored state does not hash to the head's state root.
    #[error("the stored state at height {height} hashes to {stored}, but the header says {header}: the data directory is corrupt; restore it from a backup or resync")]
    StateRootMismatch {
        /// Head height.
        height: u64,
        /// Root in the head header.
        header: atoll_primitives::Hash,
        /// Root of the stored state.
        stored: atoll_primitives::Hash,
    },
    /// An incoming receipt was refused; nothing was applied.
    #[error("incoming receipt {index}: {error}")]
    Receipt {
        /// Its position in the list offered.
        index: usize,
        /// Why.
        error: crate::inbox::ReceiptError,
    },
    /// A credit would overflow a balance, which conservation rules out: the
    /// state or a source shard is corrupt.
    #[error("crediting receipt {sequence} from shard {from} would overflow the balance of {to}")]
    CreditOverflow {
        /// The source shard.
        from: atoll_primitives::ShardId,
        /// The receipt's sequence number.
        sequence: u64,
        /// The recipient.
        to: atoll_primitives::Address,
    },
    /// An account's code hash names code the state does not hold: the
    /// store is corrupt.
    #[error("{address} has a code hash but its code is not in the state: the data directory is corrupt; restore it from a backup or resync")]
    MissingCode {
        /// The account.
        address: atoll_primitives::Address,
    },
    /// The executor's worker pool could not be created.
    #[error("cannot start {threads} executor threads: {reason}")]
    ThreadPool {
        /// Requested threads.
        threads: usize,
        /// What the OS said.
        reason: String,
    },
}
