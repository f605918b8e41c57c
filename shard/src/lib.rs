//! A shard: its state and state tree, batch signature verification, and the
//! Block-STM parallel executor with its sequential reference.

pub mod error;
pub mod state;

pub use error::ShardError;
