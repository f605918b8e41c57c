//! The state model: a key-value map from state keys to values.
//!
//! One map holds everything a shard knows: accounts (balance and nonce),
//! which code an account runs (its code hash), code by its hash (stored
//! once however many accounts run it), contracts' storage slots, and where
//! a contract lives when that is not the shard its address range gives
//! (its placement). Each
//! [`StateKey`] variant has exactly one [`StateValue`] variant; new kinds
//! are appended to both enums, so existing encodings never change. A
//! [`StateChange`] with no value deletes its key (an emptied storage slot
//! is deleted, not stored as zero).

use crate::crypto::Address;
use crate::error::DecodeError;
use crate::hash::Hash;
use crate::shard::ShardId;
use borsh::{BorshDeserialize, BorshSerialize};

/// A key in a shard's state.
#[derive(
    Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, BorshSerialize, BorshDeserialize,
)]
pub enum StateKey {
    /// The balance and nonce of an account ([`StateValue::Account`]).
    Account(Address),
    /// The hash of the code an account runs ([`StateValue::CodeHash`]);
    /// absent for an account without code.
    CodeHash(Address),
    /// Code, by its hash ([`StateValue::Code`]).
    Code(Hash),
    /// One 32-byte storage slot of a contract ([`StateValue::Slot`]);
    /// absent when the slot holds zero.
    Slot(Address, [u8; 32]),
    /// The shard a contract lives on when that is not the one its
    /// address range gives ([`StateValue::Placement`]): held by the shard
    /// that created it and by the shard its range gives, which routes to it.
    Placement(Address),
}

/// A value in a shard's state; which variant goes with which key is fixed
/// by the key ([`StateValue::fits`]).
#[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub enum StateValue {
    /// An account's balance and nonce.
    Account(Account),
    /// The hash of an account's code.
    CodeHash(Hash),
    /// Code.
    Code(Vec<u8>),
    /// A storage slot's value (never zero: a zero slot is deleted).
    Slot([u8; 32]),
    /// The shard a contract lives on.
    Placement(ShardId),
}

/// A storage slot's key and (non-zero) value.
pub type Slot = ([u8; 32], [u8; 32]);

/// One key's new value in a block's write set; `None` deletes the key.
pub type StateChange = (StateKey, Option<StateValue>);

impl StateValue {
    /// The account, if this is one.
    pub fn account(&self) -> Option<&Account> {
        match self {
            StateValue::Account(account) => Some(account),
            _ => None,
        }
    }

    /// The shard a placement names, if this is one.
    pub fn placement(&self) -> Option<ShardId> {
        match self {
            StateValue::Placement(shard) => Some(*shard),
            _ => None,
        }
    }

    /// Whether this value is of the kind `key` holds.
    pub fn fits(&self, key: &StateKey) -> bool {
        matches!(
            (key, self),
            (StateKey::Account(_), StateValue::Account(_))
                | (StateKey::CodeHash(_), StateValue::CodeHash(_))
                | (StateKey::Code(_), StateValue::Code(_))
                | (StateKey::Slot(..), StateValue::Slot(_))
                | (StateKey::Placement(_), StateValue::Placement(_))
        )
    }

    /// The stored (and hashed) bytes: the value's own encoding, without
    /// the variant (the key says which it is). An account's bytes are what
    /// they were before other kinds of values existed, so state roots of
    /// account-only states did not change.
    pub fn to_bytes(&self) -> Vec<u8> {
        match self {
            StateValue::Account(account) => account.to_bytes(),
            StateValue::CodeHash(hash) => hash.0.to_vec(),
            StateValue::Code(code) => code.clone(),
            StateValue::Slot(word) => word.to_vec(),
            StateValue::Placement(shard) => shard.0.to_be_bytes().to_vec(),
        }
    }

    /// Decodes the stored `bytes` of `key`'s value (see
    /// [`StateValue::to_bytes`]).
    pub fn from_bytes(key: &StateKey, bytes: &[u8]) -> Result<StateValue, DecodeError> {
        let fixed = |what: &'static str| DecodeError::Invalid {
            what,
            reason: format!("{} bytes, not 32", bytes.len()),
        };
        Ok(match key {
            StateKey::Account(_) => {
                StateValue::Account(crate::codec::decode("account", bytes, bytes.len())?)
            }
            StateKey::CodeHash(_) => {
                StateValue::CodeHash(Hash(bytes.try_into().map_err(|_| fixed("code hash"))?))
            }
            StateKey::Code(_) => StateValue::Code(bytes.to_vec()),
            StateKey::Slot(..) => {
                StateValue::Slot(bytes.try_into().map_err(|_| fixed("storage slot"))?)
            }
            StateKey::Placement(_) => {
                let shard = bytes.try_into().map_err(|_| DecodeError::Invalid {
                    what: "placement",
                    reason: format!("{} bytes, not 2", bytes.len()),
                })?;
                StateValue::Placement(ShardId(u16::from_be_bytes(shard)))
            }
        })
    }
}

impl From<Account> for StateValue {
    fn from(account: Account) -> StateValue {
        StateValue::Account(account)
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_round_trips_through_its_stored_bytes() {
        let address = Address([4; 20]);
        let cases = [
            (
                StateKey::Account(address),
                StateValue::Account(Account {
                    balance: 7,
                    nonce: 3,
                }),
            ),
            (
                StateKey::CodeHash(address),
                StateValue::CodeHash(Hash([9; 32])),
            ),
            (
                StateKey::Code(Hash([9; 32])),
                StateValue::Code(vec![0x60, 0x00]),
            ),
            (StateKey::Slot(address, [1; 32]), StateValue::Slot([2; 32])),
            (
                StateKey::Placement(address),
                StateValue::Placement(ShardId(3)),
            ),
        ];
        for (key, value) in cases {
            assert!(value.fits(&key));
            assert_eq!(StateValue::from_bytes(&key, &value.to_bytes()), Ok(value));
        }
        // An account's stored bytes are its encoding alone, as before code
        // and slots existed.
        let account = Account {
            balance: 1,
            nonce: 2,
        };
        assert_eq!(StateValue::from(account).to_bytes(), account.to_bytes());
        assert!(!StateValue::Slot([1; 32]).fits(&StateKey::Account(address)));
        assert!(StateValue::from_bytes(&StateKey::Slot(address, [0; 32]), &[1; 31]).is_err());
    }
}
