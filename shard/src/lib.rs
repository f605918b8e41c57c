//! A shard: its state and state tree, batch signature verification, and the
//! parallel executors (declared-dependency and Block-STM) with their
//! sequential reference.
//!
//! - [`state`]: the [`state::StateView`] executors read, and the sparse Merkle
//!   [`state::StateTree`] whose root goes into every block header.
//! - [`signatures`]: batched ed25519 verification spread over threads, which
//!   finds exactly the bad signatures when a batch fails.
//! - [`execution`]: transaction semantics, the sequential reference executor,
//!   the declared-dependency executor and the Block-STM executor.
//! - [`inbox`]: the checks on receipts from other shards (destination,
//!   finalized source block, Merkle proof, next sequence number).
//! - [`opening`]: what a block does before its transactions: accounts
//!   moving at an epoch boundary, and crediting (or forwarding) receipts.
//! - [`relay`]: moving proven receipts from source to destination shards,
//!   bounded per destination, dropped only once acknowledged.

pub mod chain;
pub mod contracts;
pub mod error;
pub mod execution;
pub mod inbox;
pub mod mempool;
pub mod opening;
pub mod relay;
pub mod seal;
pub mod signatures;
pub mod state;
pub mod workload;

pub use chain::{ProducedBlock, ShardChain};
pub use error::ShardError;
pub use execution::{
    BlockContext, BlockOutput, ExecutionPath, ExecutionStats, Executor, PreparedTx,
};
