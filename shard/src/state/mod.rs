//! Shard state: the read interface the executor uses, and the authenticated
//! state tree that commits to every account.

pub mod cache;
pub mod proof;
pub mod tree;

use crate::error::ShardError;
use atoll_primitives::{Account, StateKey};
use std::collections::HashMap;

pub use cache::CachedState;
pub use proof::StateProof;
pub use tree::StateTree;

/// Read access to a shard's committed state, shared by all executor threads.
pub trait StateView: Sync {
    /// The value stored under `key`, or `None` if the key has never been written.
    fn get(&self, key: &StateKey) -> Result<Option<Account>, ShardError>;
}

impl StateView for HashMap<StateKey, Account> {
    fn get(&self, key: &StateKey) -> Result<Option<Account>, ShardError> {
        Ok(HashMap::get(self, key).copied())
    }
}

/// A state key from a number, for the state tree's tests.
#[cfg(test)]
pub(crate) fn test_key(i: u64) -> StateKey {
    let mut bytes = [0u8; 20];
    bytes[..8].copy_from_slice(&i.to_le_bytes());
    StateKey::Account(atoll_primitives::Address(bytes))
}
