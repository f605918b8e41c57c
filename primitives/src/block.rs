//! Shard blocks and transaction outcomes.

use crate::codec::{self, MAX_BLOCK_BYTES, MAX_BLOCK_TRANSACTIONS};
use crate::crypto::Address;
use crate::error::DecodeError;
use crate::hash::{domain, Hash};
use crate::merkle;
use crate::receipt::ProvenReceipt;
use crate::shard::ShardId;
use crate::transaction::{ChainId, SignedTransaction};
use borsh::{BorshDeserialize, BorshSerialize};

/// The header of a shard block: what the beacon chain records and what
/// receipts are proven against.
#[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub struct ShardBlockHeader {
    /// The chain.
    pub chain_id: ChainId,
    /// The shard this block belongs to.
    pub shard: ShardId,
    /// Height; the genesis state is height 0 and the first block is height 1.
    pub height: u64,
    /// Hash of the parent header ([`Hash::ZERO`] for the first block).
    pub parent: Hash,
    /// Milliseconds since the Unix epoch, set by the producer.
    pub timestamp_ms: u64,
    /// The beacon epoch whose shard map this block executed under; never
    /// below the parent's.
    pub epoch: u64,
    /// The hash of that shard map ([`crate::ShardMap::hash`]): the beacon
    /// refuses a header whose map is not the epoch's.
    pub map_hash: Hash,
    /// Root of the shard's state tree after this block.
    pub state_root: Hash,
    /// Merkle root over the hashes of the block's transactions, in order.
    pub tx_root: Hash,
    /// Merkle root over the hashes of the transactions' outcomes, in order.
    pub outcome_root: Hash,
    /// For each destination shard this block sent receipts to (sorted by
    /// shard, no duplicates), the Merkle root over those receipts' hashes.
    pub receipt_roots: Vec<(ShardId, Hash)>,
    /// Merkle root over the hashes of the receipts from other shards this
    /// block applied, in order.
    pub incoming_root: Hash,
    /// After this block, the next receipt sequence number expected from
    /// each source shard it ever received from (sorted by shard).
    pub inbox_cursors: Vec<(ShardId, u64)>,
    /// Whether this shard's backlog of incoming receipts had passed its
    /// bound when the block was made: other shards then hold back new
    /// transfers to it until a later block says otherwise.
    pub congested: bool,
    /// Number of transactions in the body.
    pub tx_count: u32,
    /// Fees burnt by this block's transactions.
    pub burnt_fees: u128,
}

impl ShardBlockHeader {
    /// The block hash: the domain-separated hash of the header's encoding.
    pub fn hash(&self) -> Hash {
        Hash::domain(&domain::SHARD_HEADER, &[&codec::encode(self)])
    }

    /// The root of the receipts this block sent to `destination`, if it
    /// sent any.
    pub fn receipt_root(&self, destination: ShardId) -> Option<Hash> {
        self.receipt_roots
            .iter()
            .find(|(d, _)| *d == destination)
            .map(|(_, root)| *root)
    }
}

/// The body of a shard block: the receipts it applies, then its
/// transactions, in execution order.
#[derive(Clone, PartialEq, Eq, Debug, Default, BorshSerialize, BorshDeserialize)]
pub struct ShardBlockBody {
    /// Receipts from other shards, credited before the transactions run, in
    /// order of (source shard, sequence).
    pub incoming: Vec<ProvenReceipt>,
    /// The transactions, executed in this order.
    pub transactions: Vec<SignedTransaction>,
}

impl ShardBlockBody {
    /// The Merkle root over the transaction hashes.
    pub fn tx_root(&self) -> Hash {
        let hashes: Vec<Hash> = self
            .transactions
            .iter()
            .map(SignedTransaction::hash)
            .collect();
        merkle::root(&hashes)
    }

    /// The Merkle root over the incoming receipts' hashes.
    pub fn incoming_root(&self) -> Hash {
        let hashes: Vec<Hash> = self.incoming.iter().map(|p| p.receipt.hash()).collect();
        merkle::root(&hashes)
    }
}

/// A shard block: header and body.
#[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub struct ShardBlock {
    /// The header.
    pub header: ShardBlockHeader,
    /// The body.
    pub body: ShardBlockBody,
}

impl ShardBlock {
    /// The block hash (the header's hash).
    pub fn hash(&self) -> Hash {
        self.header.hash()
    }

    /// Decodes a block from untrusted bytes and checks that the body matches
    /// the header (transaction count and root) and is within limits.
    pub fn decode(bytes: &[u8]) -> Result<ShardBlock, DecodeError> {
        let block: ShardBlock = codec::decode("shard block", bytes, MAX_BLOCK_BYTES)?;
        let invalid = |reason: String| DecodeError::Invalid {
            what: "shard block",
            reason,
        };
        let n = block.body.transactions.len();
        if n > MAX_BLOCK_TRANSACTIONS {
            return Err(invalid(format!(
                "{n} transactions, more than the limit of {MAX_BLOCK_TRANSACTIONS}"
            )));
        }
        if block.header.tx_count as usize != n {
            return Err(invalid(format!(
                "header says {} transactions, body has {n}",
                block.header.tx_count
            )));
        }
        if !block
            .header
            .receipt_roots
            .windows(2)
            .all(|w| w[0].0 < w[1].0)
        {
            return Err(invalid(
                "receipt roots are not sorted by destination shard".into(),
            ));
        }
        if block.body.tx_root() != block.header.tx_root {
            return Err(invalid("transaction root does not match the body".into()));
        }
        let m = block.body.incoming.len();
        if m > MAX_BLOCK_TRANSACTIONS {
            return Err(invalid(format!(
                "{m} incoming receipts, more than the limit of {MAX_BLOCK_TRANSACTIONS}"
            )));
        }
        if block.body.incoming_root() != block.header.incoming_root {
            return Err(invalid(
                "incoming receipt root does not match the body".into(),
            ));
        }
        if !block
            .header
            .inbox_cursors
            .windows(2)
            .all(|w| w[0].0 < w[1].0)
        {
            return Err(invalid(
                "inbox cursors are not sorted by source shard".into(),
            ));
        }
        Ok(block)
    }

    /// The canonical encoding.
    pub fn encode(&self) -> Vec<u8> {
        codec::encode(self)
    }
}

/// Why a transaction failed. A failed transaction is still part of its block.
#[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub enum TxFailure {
    /// Signed for another chain. Nothing was charged.
    WrongChainId {
        /// This chain's id.
        expected: u64,
        /// The transaction's chain id.
        got: u64,
    },
    /// The nonce is not the sender's next nonce. Nothing was charged.
    BadNonce {
        /// The sender account's nonce.
        expected: u64,
        /// The transaction's nonce.
        got: u64,
    },
    /// The sender cannot pay the fee. Nothing was charged.
    CannotPayFee {
        /// The sender's balance.
        balance: u128,
        /// The fee.
        fee: u128,
    },
    /// The sender can pay the fee but not the amount: the fee was charged and
    /// the nonce advanced, nothing else changed.
    InsufficientBalance {
        /// The sender's balance before the fee.
        balance: u128,
        /// Amount plus fee.
        needed: u128,
    },
    /// The recipient's balance would overflow. The fee was charged.
    BalanceOverflow,
    /// The sender's account lives on another shard. Nothing was charged.
    SenderOnOtherShard {
        /// The shard that holds the sender.
        shard: u16,
    },
    /// The sender's nonce is at its maximum (u64::MAX - 1: u64::MAX marks an
    /// arriving account) and cannot advance. Nothing was
    /// charged.
    NonceExhausted,
    /// The sender's account moved to this shard and its state has not
    /// arrived yet. Nothing was charged.
    SenderArriving,
    /// A contract action that no block may run as it stands (gas limit
    /// below its intrinsic cost or above the block's, price below the base
    /// fee, creation code too long). Nothing was charged.
    Invalid {
        /// What is wrong with it.
        reason: String,
    },
}

/// The result of executing one transaction.
#[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub enum TxOutcome {
    /// The action took effect.
    Success,
    /// The action failed; see [`TxFailure`] for what was charged.
    Failure(TxFailure),
    /// The transaction ran code (a contract action, or a transfer to an
    /// account with code): whatever its status, it paid for the gas it
    /// used and its nonce advanced.
    Contract(ContractOutcome),
}

impl TxOutcome {
    /// Whether the transaction did what it asked (a contract transaction:
    /// its code returned without reverting).
    pub fn is_success(&self) -> bool {
        match self {
            TxOutcome::Success => true,
            TxOutcome::Failure(_) => false,
            TxOutcome::Contract(outcome) => outcome.status == ContractStatus::Success,
        }
    }
}

/// What running a contract transaction did.
#[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub struct ContractOutcome {
    /// How the code ended.
    pub status: ContractStatus,
    /// Gas used (after refunds): what the sender paid for, at its price.
    pub gas_used: u64,
    /// The logs emitted, in order (none unless it succeeded).
    pub logs: Vec<Log>,
    /// Returned data, or revert data when it reverted.
    pub output: Vec<u8>,
    /// The address of the contract created, if it created one and succeeded.
    pub created: Option<Address>,
}

/// How a contract transaction's code ended. Anything but `Success` undid
/// all its state changes (value included) except the gas payment and the
/// nonce.
#[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub enum ContractStatus {
    /// It returned.
    Success,
    /// It reverted (`REVERT`): the output holds the revert data.
    Revert,
    /// It ran out of gas and used all of it.
    OutOfGas,
    /// It stopped on an exceptional halt other than running out of gas
    /// (invalid opcode, stack error, …) and used all its gas.
    Halted {
        /// The halt, as the EVM names it.
        reason: String,
    },
    /// It would have changed an account that lives on another shard
    /// (sending it value by `SELFDESTRUCT`). A synchronous call into
    /// another shard reverts inside the EVM instead (see `atoll_shard`'s
    /// EVM module).
    OtherShard {
        /// The account.
        address: Address,
        /// The shard it lives on.
        shard: u16,
    },
    /// The transaction called a contract on another shard: its value and
    /// gas travel there in a call receipt, whose outcome at the
    /// destination is the call's (a refund receipt brings back what it did
    /// not use). Nothing ran here.
    Sent {
        /// The shard the call receipt went to.
        shard: u16,
    },
}

/// An event a contract emitted.
#[derive(Clone, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub struct Log {
    /// The contract that emitted it.
    pub address: Address,
    /// Its topics (at most four).
    pub topics: Vec<[u8; 32]>,
    /// Its data.
    pub data: Vec<u8>,
}

impl TxOutcome {
    /// The domain-separated hash of the outcome of transaction `tx`.
    pub fn hash(&self, tx: &Hash) -> Hash {
        Hash::domain(&domain::OUTCOME, &[&tx.0, &codec::encode(self)])
    }
}
