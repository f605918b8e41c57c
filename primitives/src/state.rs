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
    /// The nonce that marks an account whose state is on its way from
    /// another shard (it moved here at an epoch boundary and the receipt
    /// carrying its state has not been applied yet). It cannot send until
    /// then: its real nonce is not known here, and accepting its old
    /// nonces would replay transactions. No account reaches this nonce by
    /// sending (it would take 2^64 - 1 transactions).
    pub const ARRIVING_NONCE: u64 = u64::MAX;

    /// An account whose state has not arrived yet, holding `balance`
    /// (credits that reached it first).
    pub fn arriving(balance: u128) -> Account {
        Account {
            balance,
            nonce: Account::ARRIVING_NONCE,
        }
    }

    /// Whether this account's state is still on its way from another shard.
    pub fn is_arriving(&self) -> bool {
        self.nonce == Account::ARRIVING_NONCE
    }

    /// This account with `moved` merged in: the state an account moving
    /// here carried from its old shard (or credits forwarded after it).
    /// Balances add up; the nonce is the moved one unless that is itself
    /// still unknown (a state forwarded before it arrived anywhere).
    pub fn merge_moved(self, moved: Account) -> Option<Account> {
        Some(Account {
            balance: self.balance.checked_add(moved.balance)?,
            nonce: if moved.is_arriving() {
                self.nonce
            } else if self.is_arriving() {
                moved.nonce
            } else {
                self.nonce.max(moved.nonce)
            },
        })
    }

    /// The canonical (borsh) encoding, used as the stored value.
    pub fn to_bytes(&self) -> Vec<u8> {
        borsh::to_vec(self).expect("encoding an account into a Vec cannot fail")
    }
}
