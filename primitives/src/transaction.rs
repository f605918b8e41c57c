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

impl ChainId {
    /// The one chain id no chain may have: in a signed transaction's
    /// encoding it marks an Ethereum transaction (see
    /// [`SignedTransaction`]).
    pub const RESERVED: ChainId = ChainId(u64::MAX);
}

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

/// The body of a native transaction: everything the sender signs.
#[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub struct Transaction {
    /// The chain this transaction is for (never [`ChainId::RESERVED`]).
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
    /// What the transaction asks of the chain.
    pub fn terms(&self) -> Terms {
        Terms {
            chain_id: self.chain_id,
            nonce: self.nonce,
            fee: self.fee,
            priority_fee: None,
            action: self.action.clone(),
            access_list: Vec::new(),
        }
    }

    /// The domain-separated hash of the canonical encoding of the body: the
    /// transaction's identity, and the message its signature covers.
    pub fn hash(&self) -> Hash {
        Hash::domain(&domain::TRANSACTION, &[&codec::encode(self)])
    }

    /// Signs the body with `key` (which should be the sender's key).
    pub fn sign(self, key: &KeyPair) -> NativeTransaction {
        let signature = key.sign(self.hash().as_bytes());
        NativeTransaction {
            tx: self,
            signature,
        }
    }
}

/// What a signed transaction asks of the chain, whatever its kind: the
/// terms execution, the mempool and admission apply. A native
/// transaction's are its body's; an Ethereum transaction's are mapped from
/// its fields (see [`crate::ethereum::EthTransaction::terms`]).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Terms {
    /// The chain it is for.
    pub chain_id: ChainId,
    /// The sender's nonce it uses.
    pub nonce: u64,
    /// A transfer's flat fee; a contract action's price per gas (an
    /// EIP-1559 transaction: its maximum fee per gas).
    pub fee: u128,
    /// An EIP-1559 transaction's maximum priority fee per gas: it then
    /// pays the base fee plus this, at most `fee` ([`Terms::price`]).
    pub priority_fee: Option<u128>,
    /// What it does.
    pub action: Action,
    /// The accounts and slots it declares warm (EIP-2930; empty for a
    /// native transaction).
    pub access_list: Vec<(Address, Vec<[u8; 32]>)>,
}

impl Terms {
    /// The most this transaction can take from its sender's balance: the
    /// action's value plus the fee, or plus the gas it buys at its highest
    /// price for a contract action (saturating; such a balance cannot
    /// exist, so the check it feeds fails as it should).
    pub fn max_cost(&self) -> u128 {
        self.action.value().saturating_add(self.max_fee())
    }

    /// The most the transaction pays for running: its fee, or for a
    /// contract action its gas limit times its highest price (saturating).
    pub fn max_fee(&self) -> u128 {
        match self.action.gas_limit() {
            None => self.fee,
            Some(gas) => self.fee.saturating_mul(u128::from(gas)),
        }
    }

    /// The price per gas a contract action pays under `base_fee`: its
    /// `fee`, or for an EIP-1559 transaction the base fee plus its
    /// priority fee, at most its maximum fee (Ethereum's effective gas
    /// price).
    pub fn price(&self, base_fee: u64) -> u128 {
        match self.priority_fee {
            None => self.fee,
            Some(priority) => self.fee.min(u128::from(base_fee).saturating_add(priority)),
        }
    }
}

/// A native transaction: a body with the sender's ed25519 signature over
/// its hash.
#[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub struct NativeTransaction {
    /// The signed body.
    pub tx: Transaction,
    /// ed25519 signature over [`Transaction::hash`].
    pub signature: Signature,
}

impl NativeTransaction {
    /// The transaction hash (the hash of the body).
    pub fn hash(&self) -> Hash {
        self.tx.hash()
    }

    /// The sender's address.
    pub fn sender(&self) -> Address {
        self.tx.sender.address()
    }

    /// Checks the signature against the sender's key, under the
    /// transaction signature rule ([`crate::cofactored`]).
    pub fn verify(&self) -> Result<(), CryptoError> {
        let key = &self.tx.sender.0;
        let point = crate::cofactored::public_point(key)
            .ok_or_else(|| CryptoError::BadPublicKey(hex::encode(key)))?;
        crate::cofactored::Claim::new(key, point, self.hash().as_bytes(), &self.signature.0)
            .is_some_and(|claim| claim.check())
            .then_some(())
            .ok_or(CryptoError::BadSignature)
    }

    /// The canonical encoding (the same bytes as the
    /// [`SignedTransaction`] that holds it).
    pub fn encode(&self) -> Vec<u8> {
        codec::encode(self)
    }
}

/// A signed transaction of either kind: what blocks, the mempool, gossip
/// and clients carry.
///
/// The encoding keeps a native transaction's bytes exactly as they were
/// before the Ethereum kind existed (its body, then its signature), as
/// EIP-2718 kept legacy Ethereum transactions: a native body begins with
/// its chain id, and the one chain id no chain may have,
/// [`ChainId::RESERVED`], marks an Ethereum transaction instead, followed
/// by its raw EIP-2718 bytes (a borsh byte vector).
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum SignedTransaction {
    /// Signed with ed25519 by an atoll key.
    Native(NativeTransaction),
    /// The raw EIP-2718 bytes of an Ethereum transaction (legacy with
    /// EIP-155, EIP-2930 or EIP-1559), signed with secp256k1; decoded by
    /// [`crate::ethereum::recover`].
    Ethereum(Vec<u8>),
}

impl From<NativeTransaction> for SignedTransaction {
    fn from(native: NativeTransaction) -> SignedTransaction {
        SignedTransaction::Native(native)
    }
}

impl SignedTransaction {
    /// The transaction hash: a native body's hash, or keccak-256 of an
    /// Ethereum transaction's raw bytes (the hash Ethereum tools show).
    pub fn hash(&self) -> Hash {
        match self {
            SignedTransaction::Native(native) => native.hash(),
            SignedTransaction::Ethereum(raw) => Hash(alloy_primitives::keccak256(raw).0),
        }
    }

    /// The native transaction, if it is one.
    pub fn native(&self) -> Option<&NativeTransaction> {
        match self {
            SignedTransaction::Native(native) => Some(native),
            SignedTransaction::Ethereum(_) => None,
        }
    }

    /// Checks the signature: ed25519 against a native sender's key, or
    /// that an Ethereum transaction decodes and a sender is recovered.
    pub fn verify(&self) -> Result<(), CryptoError> {
        match self {
            SignedTransaction::Native(native) => native.verify(),
            SignedTransaction::Ethereum(raw) => crate::ethereum::recover(raw)
                .map(|_| ())
                .map_err(|_| CryptoError::BadSignature),
        }
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

impl BorshSerialize for SignedTransaction {
    fn serialize<W: std::io::Write>(&self, writer: &mut W) -> std::io::Result<()> {
        match self {
            SignedTransaction::Native(native) => BorshSerialize::serialize(native, writer),
            SignedTransaction::Ethereum(raw) => {
                BorshSerialize::serialize(&ChainId::RESERVED, writer)?;
                BorshSerialize::serialize(raw, writer)
            }
        }
    }
}

impl BorshDeserialize for SignedTransaction {
    fn deserialize_reader<R: std::io::Read>(reader: &mut R) -> std::io::Result<Self> {
        let chain_id = ChainId::deserialize_reader(reader)?;
        if chain_id == ChainId::RESERVED {
            return Ok(SignedTransaction::Ethereum(Vec::deserialize_reader(
                reader,
            )?));
        }
        let tx = Transaction {
            chain_id,
            sender: PublicKey::deserialize_reader(reader)?,
            nonce: u64::deserialize_reader(reader)?,
            fee: u128::deserialize_reader(reader)?,
            action: Action::deserialize_reader(reader)?,
        };
        let signature = Signature::deserialize_reader(reader)?;
        Ok(SignedTransaction::Native(NativeTransaction {
            tx,
            signature,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> NativeTransaction {
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
        assert_eq!(tx.terms().max_cost(), amount + tx.fee);
        tx.fee = u128::MAX;
        assert_eq!(
            tx.terms().max_cost(),
            u128::MAX,
            "saturates instead of overflowing"
        );
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
        assert_eq!(tx.terms().max_fee(), 200);
        assert_eq!(tx.terms().max_cost(), 205);
        assert_eq!(tx.terms().price(1), 2, "a native price is its fee");
        tx.fee = u128::MAX;
        assert_eq!(tx.terms().max_cost(), u128::MAX);
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
        let tx = SignedTransaction::from(sample());
        let mut bytes = tx.encode();
        assert_eq!(SignedTransaction::decode(&bytes), Ok(tx));
        bytes.push(0);
        assert!(SignedTransaction::decode(&bytes).is_err());
    }

    #[test]
    fn a_native_encoding_is_its_body_then_its_signature() {
        // As before the Ethereum kind existed: no tag in front.
        let native = sample();
        let signed = SignedTransaction::from(native.clone());
        assert_eq!(signed.encode(), codec::encode(&native));
        assert_eq!(signed.hash(), native.tx.hash());
    }

    #[test]
    fn an_ethereum_transaction_follows_the_reserved_chain_id() {
        let raw = hex::decode(crate::ethereum::samples::EIP1559.0).expect("hex");
        let signed = SignedTransaction::Ethereum(raw.clone());
        let bytes = signed.encode();
        assert_eq!(bytes[..8], u64::MAX.to_le_bytes());
        assert_eq!(bytes[8..12], (raw.len() as u32).to_le_bytes());
        assert_eq!(bytes[12..], raw[..]);
        assert_eq!(SignedTransaction::decode(&bytes), Ok(signed.clone()));
        assert_eq!(
            hex::encode(signed.hash().0),
            crate::ethereum::samples::EIP1559.1,
            "keccak-256 of the raw bytes"
        );
        assert_eq!(signed.verify(), Ok(()));
        // Any signature recovers some sender; bytes that do not decode
        // have none.
        let cut = raw[..raw.len() - 1].to_vec();
        assert_eq!(
            SignedTransaction::Ethereum(cut).verify(),
            Err(CryptoError::BadSignature)
        );
        // A length past the bytes is refused, not allocated.
        let mut short = u64::MAX.to_le_bytes().to_vec();
        short.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(SignedTransaction::decode(&short).is_err());
    }

    #[test]
    fn an_eip1559_price_is_the_base_fee_plus_the_tip_at_most_the_cap() {
        let mut terms = sample().tx.terms();
        terms.fee = 10;
        terms.priority_fee = Some(2);
        assert_eq!(terms.price(3), 5);
        assert_eq!(terms.price(9), 10, "capped by the maximum fee");
        terms.priority_fee = Some(u128::MAX);
        assert_eq!(terms.price(3), 10);
    }
}
