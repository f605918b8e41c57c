//! Transactions and their signatures.

use crate::codec::{self, MAX_TRANSACTION_BYTES};
use crate::crypto::{Address, KeyPair, PublicKey, Signature};
use crate::error::{CryptoError, DecodeError};
use crate::hash::{domain, Hash};
use borsh::{BorshDeserialize, BorshSerialize};
use serde::{Deserialize, Serialize};
use std::fmt;

/// The chain a transaction is meant for; part of what is signed, so a
/// transaction cannot be replayed on another chain.
#[derive(
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Debug,
    Default,
    BorshSerialize,
    BorshDeserialize,
    Serialize,
    Deserialize,
)]
pub struct ChainId(pub u64);

impl fmt::Display for ChainId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// What a transaction does.
///
/// The encoding is borsh's: a one-byte variant index, then the fields.
/// Contract actions are appended after `Transfer`, so the encoding, hash
/// and signature of a transfer never change.
///
/// What the transaction's `fee` means depends on the action: a transfer
/// pays it as a flat fee; a contract action offers it as its price per
/// unit of gas and buys `gas_limit × fee` up front (see `atoll_shard`'s
/// execution for the refund and the burn).
#[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub enum Action {
    /// Move `amount` from the sender to `to` (on any shard). A transfer to
    /// an account that holds code runs that code with
    /// [`crate::gas::TRANSFER_CALL_GAS`] gas, as on Ethereum.
    Transfer {
        /// The recipient.
        to: Address,
        /// The amount moved, in the smallest unit.
        amount: u128,
    },
    /// Create a contract: run `init_code` and store what it returns as
    /// the new account's code. The new account's address is Ethereum's
    /// (from the sender's address and nonce).
    Create {
        /// Sent to the new contract.
        value: u128,
        /// The creation code (constructor and its ABI-encoded arguments).
        init_code: Vec<u8>,
        /// The most gas the creation may use.
        gas_limit: u64,
    },
    /// Call the contract at `to` with `input` (or send value to an
    /// account without code).
    Call {
        /// The callee.
        to: Address,
        /// Sent with the call.
        value: u128,
        /// The call data (ABI-encoded function and arguments).
        input: Vec<u8>,
        /// The most gas the call may use.
        gas_limit: u64,
    },
}

impl Action {
    /// The value the action moves out of the sender's balance (besides
    /// the fee).
    pub fn value(&self) -> u128 {
        match self {
            Action::Transfer { amount, .. } => *amount,
            Action::Create { value, .. } | Action::Call { value, .. } => *value,
        }
    }

    /// The account the action sends value or a call to, if any.
    pub fn recipient(&self) -> Option<&Address> {
        match self {
            Action::Transfer { to, .. } | Action::Call { to, .. } => Some(to),
            Action::Create { .. } => None,
        }
    }

    /// The gas a contract action buys (`None`: a transfer, which pays a
    /// flat fee).
    pub fn gas_limit(&self) -> Option<u64> {
        match self {
            Action::Transfer { .. } => None,
            Action::Create { gas_limit, .. } | Action::Call { gas_limit, .. } => Some(*gas_limit),
        }
    }
}

/// The body of a transaction: everything the sender signs.
#[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub struct Transaction {
    /// The chain this transaction is for.
    pub chain_id: ChainId,
    /// The sender's public key; the sender's address derives from it.
    pub sender: PublicKey,
    /// Must equal the sender account's nonce when the transaction executes.
    pub nonce: u64,
    /// A transfer's flat fee, paid (and burnt) whenever it passes its
    /// nonce check; a contract action's price per unit of gas.
    pub fee: u128,
    /// What the transaction does.
    pub action: Action,
}

impl Transaction {
    /// The most this transaction can take from its sender's balance: the
    /// action's value plus the fee, or plus the gas it buys for a contract
    /// action (saturating; such a balance cannot exist, so the check it
    /// feeds fails as it should).
    pub fn max_cost(&self) -> u128 {
        self.action.value().saturating_add(self.max_fee())
    }

    /// The most the transaction pays for running: its fee, or for a
    /// contract action its gas limit times its price (saturating).
    pub fn max_fee(&self) -> u128 {
        match self.action.gas_limit() {
            None => self.fee,
            Some(gas) => self.fee.saturating_mul(u128::from(gas)),
        }
    }

    /// The domain-separated hash of the canonical encoding of the body: the
    /// transaction's identity, and the message its signature covers.
    pub fn hash(&self) -> Hash {
        Hash::domain(&domain::TRANSACTION, &[&codec::encode(self)])
    }

    /// Signs the body with `key` (which should be the sender's key).
    pub fn sign(self, key: &KeyPair) -> SignedTransaction {
        let signature = key.sign(self.hash().as_bytes());
        SignedTransaction {
            tx: self,
            signature,
        }
    }
}

/// A transaction body with the sender's signature over its hash.
#[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub struct SignedTransaction {
    /// The signed body.
    pub tx: Transaction,
    /// ed25519 signature over [`Transaction::hash`].
    pub signature: Signature,
}

impl SignedTransaction {
    /// The transaction hash (the hash of the body).
    pub fn hash(&self) -> Hash {
        self.tx.hash()
    }

    /// The sender's address.
    pub fn sender(&self) -> Address {
        self.tx.sender.address()
    }

    /// Checks the signature against the sender's key.
    pub fn verify(&self) -> Result<(), CryptoError> {
        self.tx
            .sender
            .verify(self.hash().as_bytes(), &self.signature)
    }

    /// Decodes a signed transaction from untrusted bytes.
    pub fn decode(bytes: &[u8]) -> Result<SignedTransaction, DecodeError> {
        codec::decode("signed transaction", bytes, MAX_TRANSACTION_BYTES)
    }

    /// The canonical encoding.
    pub fn encode(&self) -> Vec<u8> {
        codec::encode(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> SignedTransaction {
        let key = KeyPair::from_seed([5; 32]);
        Transaction {
            chain_id: ChainId(1),
            sender: key.public(),
            nonce: 3,
            fee: 2,
            action: Action::Transfer {
                to: Address([7; 20]),
                amount: 100,
            },
        }
        .sign(&key)
    }

    #[test]
    fn signature_covers_every_field() {
        let tx = sample();
        assert!(tx.verify().is_ok());
        let mut other = tx.clone();
        other.tx.chain_id = ChainId(2);
        assert_eq!(other.verify(), Err(CryptoError::BadSignature));
        let mut other = tx.clone();
        other.tx.nonce += 1;
        assert_eq!(other.verify(), Err(CryptoError::BadSignature));
        let mut other = tx;
        other.tx.fee += 1;
        assert_eq!(other.verify(), Err(CryptoError::BadSignature));
    }

    #[test]
    fn a_transfer_costs_its_amount_plus_its_fee_at_most() {
        let mut tx = sample().tx;
        let Action::Transfer { to, amount } = tx.action.clone() else {
            unreachable!("the sample is a transfer")
        };
        assert_eq!(tx.action.value(), amount);
        assert_eq!(tx.action.recipient(), Some(&to));
        assert_eq!(tx.max_cost(), amount + tx.fee);
        tx.fee = u128::MAX;
        assert_eq!(tx.max_cost(), u128::MAX, "saturates instead of overflowing");
    }

    #[test]
    fn transfer_encoding_is_stable() {
        // Variant index 0, then the recipient and the amount: adding actions
        // after `Transfer` must not change this.
        let action = Action::Transfer {
            to: Address([7; 20]),
            amount: 1,
        };
        let bytes = codec::encode(&action);
        assert_eq!(bytes.len(), 1 + 20 + 16);
        assert_eq!(bytes[0], 0);
    }

    #[test]
    fn a_contract_action_buys_its_gas_at_the_fee_per_unit() {
        let mut tx = sample().tx;
        tx.action = Action::Call {
            to: Address([9; 20]),
            value: 5,
            input: vec![1, 2],
            gas_limit: 100,
        };
        assert_eq!(tx.max_fee(), 200);
        assert_eq!(tx.max_cost(), 205);
        tx.fee = u128::MAX;
        assert_eq!(tx.max_cost(), u128::MAX);
        tx.action = Action::Create {
            value: 0,
            init_code: vec![],
            gas_limit: 7,
        };
        assert_eq!(tx.action.recipient(), None);
        assert_eq!(tx.action.gas_limit(), Some(7));
        assert_eq!(codec::encode(&tx.action)[0], 1, "appended after Transfer");
    }

    #[test]
    fn decode_round_trip_and_trailing_bytes() {
        let tx = sample();
        let mut bytes = tx.encode();
        assert_eq!(SignedTransaction::decode(&bytes), Ok(tx));
        bytes.push(0);
        assert!(SignedTransaction::decode(&bytes).is_err());
    }
}
