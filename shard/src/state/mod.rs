//! Shard state: the read interface the executor uses, and the authenticated
//! state tree that commits to every account.

pub mod cache;
pub mod proof;
pub mod tree;

use crate::error::ShardError;
use atoll_primitives::{Account, Address, Slot, StateKey, StateValue};
use std::collections::HashMap;

pub use cache::CachedState;
pub use proof::StateProof;
pub use tree::StateTree;

/// Read access to a shard's committed state, shared by all executor threads.
pub trait StateView: Sync {
    /// The value stored under `key`, or `None` if the state does not hold it.
    fn get(&self, key: &StateKey) -> Result<Option<StateValue>, ShardError>;
}

/// A state that also lists a contract's storage: what a block's opening
/// reads, since a contract that moves to another shard takes every slot
/// with it.
pub trait SlotScan: StateView {
    /// The storage slots (key, value) of the contract at `address`, in key
    /// order, at most `limit` of them.
    fn slots(&self, address: &Address, limit: usize) -> Result<Vec<Slot>, ShardError>;
}

impl StateView for HashMap<StateKey, StateValue> {
    fn get(&self, key: &StateKey) -> Result<Option<StateValue>, ShardError> {
        Ok(HashMap::get(self, key).cloned())
    }
}

/// The committed state at one head, read from one store snapshot (see
/// [`atoll_storage::HeadState`]): what a read-only call runs on.
impl StateView for atoll_storage::HeadState<'_> {
    fn get(&self, key: &StateKey) -> Result<Option<StateValue>, ShardError> {
        Ok(self.state(key)?)
    }
}

/// The account a value read under an account key holds: the empty account
/// when the state does not hold the key.
pub fn account_in(value: Option<StateValue>) -> Account {
    match value {
        Some(StateValue::Account(account)) => account,
        _ => Account::default(),
    }
}

/// A state key from a number, for the state tree's tests.
#[cfg(test)]
pub(crate) fn test_key(i: u64) -> StateKey {
    let mut bytes = [0u8; 20];
    bytes[..8].copy_from_slice(&i.to_le_bytes());
    StateKey::Account(atoll_primitives::Address(bytes))
}
