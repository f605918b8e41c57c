//! Why a question about the chain has no answer here: each failure with
//! the message a client sees. The RPC picks the error code.

use atoll_primitives::{Hash, ShardId};
use thiserror::Error;

/// Why a query failed.
#[derive(Debug, Error)]
pub enum QueryError {
    /// The chain has no such shard.
    #[error("there is no shard {shard}; the chain has {count}")]
    NoShard {
        /// The shard asked for.
        shard: u16,
        /// How many shards the chain has.
        count: usize,
    },
    /// This validator does not store or execute the shard in this epoch.
    #[error(
        "this validator does not track shard {shard} in this epoch; its committee is \
         validators {members:?} (indices in genesis.json)"
    )]
    NotTracked {
        /// The shard.
        shard: ShardId,
        /// The validators that do, by genesis index.
        members: Vec<usize>,
    },
    /// No block at that height.
    #[error("no block at height {height}")]
    NoBlock {
        /// The height asked for.
        height: u64,
    },
    /// No block with that hash.
    #[error("no block has that hash")]
    NoBlockWithHash {
        /// The hash asked for.
        hash: Hash,
    },
    /// The height is above the head.
    #[error("height {wanted} is beyond the head (height {head})")]
    BeyondHead {
        /// The height asked for.
        wanted: u64,
        /// The head's.
        head: u64,
    },
    /// The state at that height is not kept.
    #[error(
        "this node keeps only the state at its head (height {head}); height {wanted} is not kept"
    )]
    StateNotKept {
        /// The height asked for.
        wanted: u64,
        /// The head's.
        head: u64,
    },
    /// State is read at a height, not at a block hash.
    #[error("an account is read at \"latest\", \"final\" or a height, not a block hash")]
    StateAtHash,
    /// The head did not become final within the wait.
    #[error(
        "the head (height {height}) did not become final within {seconds}s; this node keeps \
         only the head's state"
    )]
    NotFinalInTime {
        /// The head's height.
        height: u64,
        /// How long the query waited.
        seconds: u64,
    },
    /// A block below the snapshot this validator synced the shard from.
    #[error(
        "this validator synced shard {shard}'s state from a snapshot at height {from} and holds \
         only its genesis block and the blocks above it; ask a validator that executed height \
         {height}"
    )]
    HistoryNotHeld {
        /// The shard.
        shard: ShardId,
        /// The snapshot's height.
        from: u64,
        /// The height asked for.
        height: u64,
    },
    /// The source shard sent no such receipt.
    #[error("shard {source_shard} sent no receipt {sequence} to shard {destination}")]
    NoReceipt {
        /// The source shard.
        source_shard: ShardId,
        /// The destination shard.
        destination: ShardId,
        /// The sequence number asked for.
        sequence: u64,
    },
    /// Reading the node's stores failed (the RPC logs it and shows the
    /// client an internal error).
    #[error("{0}")]
    Internal(String),
}

impl QueryError {
    /// An internal failure, from anything that says what went wrong.
    pub fn internal(error: impl std::fmt::Display) -> QueryError {
        QueryError::Internal(error.to_string())
    }
}
