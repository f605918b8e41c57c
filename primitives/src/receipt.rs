//! Receipts: the messages a shard sends to another shard.

use crate::block::ShardBlockHeader;
use crate::codec::{self, MAX_RECEIPT_BYTES};
use crate::crypto::Address;
use crate::error::DecodeError;
use crate::hash::{domain, Hash};
use crate::merkle::MerkleProof;
use crate::shard::ShardId;
use borsh::{BorshDeserialize, BorshSerialize};

/// What a receipt does on its destination shard.
#[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub enum ReceiptAction {
    /// Credit `amount` to `to` (the second half of a cross-shard transfer).
    Transfer {
        /// The recipient on the destination shard.
        to: Address,
        /// The amount credited.
        amount: u128,
    },
    /// The state of an account that moved to the destination shard at an
    /// epoch boundary: the source removed it in the same block.
    Move {
        /// The account.
        account: Address,
        /// Its balance when it left.
        balance: u128,
        /// Its nonce when it left ([`crate::Account::ARRIVING_NONCE`] if its
        /// state had not reached the source yet either).
        nonce: u64,
    },
    /// A contract was created at `account` on `shard` (its creator's),
    /// which is not the shard `account`'s address range gives: sent to that
    /// shard, which from then on routes `account` to `shard` and sends on
    /// what it already held for it (value sent there before the contract
    /// existed).
    Placed {
        /// The contract's address.
        account: Address,
        /// The shard it lives on.
        shard: ShardId,
    },
    /// A contract call from an account of the source shard to a contract
    /// of the destination (a cross-shard call). The source debited the
    /// caller `value + gas_limit × price`, which the receipt carries; the
    /// destination runs the call with the caller shown holding `value`,
    /// burns the gas used and sends the rest back in a
    /// [`ReceiptAction::Refund`].
    Call {
        /// Who calls (the contract's `msg.sender`).
        caller: Address,
        /// The contract called.
        to: Address,
        /// The value sent with the call.
        value: u128,
        /// The call data.
        input: Vec<u8>,
        /// The gas the call may use, intrinsic cost included.
        gas_limit: u64,
        /// The price per gas the caller paid.
        price: u128,
        /// The caller (a contract) asked to be called back with the result;
        /// the receipt also carries that call's gas, at `price`.
        callback: Option<Callback>,
    },
    /// What returns to a cross-shard call's caller once the call ran: the
    /// unused gas at the call's price, the value when the call failed, and
    /// whatever the call sent back to the caller (and the gas of a
    /// callback, which runs on the caller's shard when this is applied).
    Refund {
        /// The caller.
        to: Address,
        /// The amount credited (a callback's gas included, before it runs).
        amount: u128,
        /// Whether the call succeeded.
        success: bool,
        /// The gas the call used at its destination.
        gas_used: u64,
        /// The callback the caller asked for, with the call's output.
        reply: Option<Reply>,
    },
    /// Part of the state of a contract that moves to the destination shard
    /// at an epoch boundary: its code (in the first part) and storage
    /// slots. The source sends every part, then the [`ReceiptAction::Move`]
    /// with the account's balance and nonce, in one block and so in order;
    /// the contract stays arriving at the destination until that last one.
    MoveState {
        /// The contract.
        account: Address,
        /// Its code, in the first part only.
        code: Option<Vec<u8>>,
        /// Storage slots (key, value), none of them zero, at most
        /// [`MOVE_SLOTS_PER_RECEIPT`].
        slots: Vec<crate::Slot>,
    },
}

/// The most storage slots one [`ReceiptAction::MoveState`] carries: 1,024
/// slots are 64 KiB, which with the largest code (24 KiB, EIP-170) fits a
/// receipt ([`MAX_RECEIPT_BYTES`]).
pub const MOVE_SLOTS_PER_RECEIPT: usize = 1024;

/// A cross-shard call's request to call its caller back with the result.
#[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub struct Callback {
    /// The function of the caller to call: `selector(bool success, bytes
    /// output)`.
    pub selector: [u8; 4],
    /// The gas the callback may use.
    pub gas_limit: u64,
}

/// The callback a refund brings back: what to call, and the result.
#[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub struct Reply {
    /// What the call asked for.
    pub callback: Callback,
    /// The price per gas the call paid (the callback's).
    pub price: u128,
    /// The call's return data, or revert data when it failed.
    pub output: Vec<u8>,
}

impl ReceiptAction {
    /// The account the destination changes.
    pub fn account(&self) -> Address {
        match self {
            ReceiptAction::Transfer { to, .. } => *to,
            ReceiptAction::Move { account, .. } => *account,
            ReceiptAction::Placed { account, .. } => *account,
            ReceiptAction::Call { to, .. } => *to,
            ReceiptAction::Refund { to, .. } => *to,
            ReceiptAction::MoveState { account, .. } => *account,
        }
    }

    /// The value the action carries: a call carries its value and all the
    /// gas its caller bought (which fits: the caller held it).
    pub fn value(&self) -> u128 {
        match self {
            ReceiptAction::Transfer { amount, .. } => *amount,
            ReceiptAction::Move { balance, .. } => *balance,
            ReceiptAction::Placed { .. } => 0,
            ReceiptAction::Call {
                value,
                gas_limit,
                price,
                callback,
                ..
            } => {
                let callback = callback.as_ref().map_or(0, |c| c.gas_limit);
                let gas = u128::from(*gas_limit) + u128::from(callback);
                value.saturating_add(price.saturating_mul(gas))
            }
            ReceiptAction::Refund { amount, .. } => *amount,
            ReceiptAction::MoveState { .. } => 0,
        }
    }
}

/// A message from one shard to another, emitted by a transaction.
#[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub struct Receipt {
    /// The shard that emitted the receipt.
    pub source: ShardId,
    /// The shard that must apply it.
    pub destination: ShardId,
    /// Position in the stream of receipts from `source` to `destination`,
    /// starting at 0 and without gaps; the destination applies them in order.
    pub sequence: u64,
    /// The hash of the transaction that emitted the receipt.
    pub origin: Hash,
    /// What the destination does.
    pub action: ReceiptAction,
}

impl Receipt {
    /// The domain-separated hash of the receipt's encoding.
    pub fn hash(&self) -> Hash {
        Hash::domain(&domain::RECEIPT, &[&codec::encode(self)])
    }

    /// The value the receipt carries (counted as "in flight" until applied).
    pub fn value(&self) -> u128 {
        self.action.value()
    }

    /// Decodes a receipt from untrusted bytes.
    pub fn decode(bytes: &[u8]) -> Result<Receipt, DecodeError> {
        codec::decode("receipt", bytes, MAX_RECEIPT_BYTES)
    }
}

/// A receipt with the evidence that its source shard emitted it: what a
/// destination shard's block carries for each receipt it applies.
#[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub struct ProvenReceipt {
    /// The receipt.
    pub receipt: Receipt,
    /// Height of the source shard's block that emitted it.
    pub source_height: u64,
    /// Proof of the receipt's hash in that block's receipt root for the
    /// receipt's destination.
    pub proof: MerkleProof,
}

impl ProvenReceipt {
    /// Whether `header` is the source block this receipt names and its
    /// receipt root for the receipt's destination holds the receipt: the
    /// one check of a receipt's proof, for every path that applies it.
    pub fn is_proven_by(&self, header: &ShardBlockHeader) -> bool {
        let receipt = &self.receipt;
        header.shard == receipt.source
            && header.height == self.source_height
            && header
                .receipt_root(receipt.destination)
                .is_some_and(|root| self.proof.verify(&root, &receipt.hash()))
    }
}

/// What a cross-shard call did at its destination (or a callback where its
/// refund arrived), stored there with the block that ran it (by its
/// receipt's source and sequence) and committed to by that block's outcome
/// root.
#[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub struct CallRecord {
    /// The shard the call receipt came from.
    pub source: ShardId,
    /// Its sequence number from that shard.
    pub sequence: u64,
    /// What the call did.
    pub outcome: crate::block::ContractOutcome,
    /// The sequence number of the refund receipt sent back to `source`
    /// (`None`: this was a callback, run where its refund arrived).
    pub refund: Option<u64>,
}

impl CallRecord {
    /// Its leaf in the outcome root of the block that ran the call.
    pub fn hash(&self) -> Hash {
        Hash::domain(&domain::CALL_OUTCOME, &[&codec::encode(self)])
    }
}
