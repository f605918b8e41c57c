//! The state model: a key-value map from state keys to values.
//!
//! Accounts are the only values today; contract storage slots will be added as
//! new [`StateKey`] variants (appended, so existing encodings do not change), which
//! is what lets the EVM run over the same executor and store.

use crate::crypto::Address;
use borsh::{BorshDeserialize, BorshSerialize};

/// A key in a shard's state.
#[derive(
    Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, BorshSerialize, BorshDeserialize,
)]
pub enum StateKey {
    /// The balance and nonce of an account.
    Account(Address),
}

impl StateKey {
    /// The canonical (borsh) encoding, used as the storage key.
    pub fn to_bytes(&self) -> Vec<u8> {
        borsh::to_vec(self).expect("encoding a state key into a Vec cannot fail")
    }
}

/// An account: its balance and the nonce its next transaction must carry.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default, BorshSerialize, BorshDeserialize)]
pub struct Account {
    /// Spendable balance, in the smallest unit.
    pub balance: u128,
    /// The nonce the account's next transaction must carry.
    pub nonce: u64,
}

impl Account {
    /// The canonical (borsh) encoding, used as the stored value.
    pub fn to_bytes(&self) -> Vec<u8> {
        borsh::to_vec(self).expect("encoding an account into a Vec cannot fail")
    }
}
