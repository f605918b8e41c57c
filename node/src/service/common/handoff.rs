//! The messages one shard's threads hand each other through the queues in
//! [`super::shared::Shared`]: transactions to the admission stage
//! ([`Admission`], answered with a [`Rejection`] or nothing), and committed
//! blocks to the coordinator ([`Committed`]).

use atoll_p2p::Verdict;
use atoll_primitives::{Hash, Receipt, ShardBlockHeader, ShardId, SignedTransaction};
use atoll_shard::execution::PreparedTx;
use atoll_shard::mempool::AdmitError;
use thiserror::Error;
use tokio::sync::oneshot;

/// A message to the admission stage.
// Nearly every message is a `Submit`; boxing it would add an allocation
// per transaction to spare the rare `Stop` some bytes.
#[allow(clippy::large_enum_variant)]
pub enum Admission {
    /// Check and admit `tx`; the verdict goes to `reply`.
    Submit {
        /// The transaction.
        tx: PreparedTx,
        /// Where the verdict goes.
        reply: oneshot::Sender<Result<(), Rejection>>,
    },
    /// Transactions gossiped by a peer: admitted where they pass, and
    /// `verdict` hears what becomes of the gossip (see [`peer_verdict`]).
    Peer {
        /// The transactions, not yet prepared (an Ethereum one's sender
        /// is recovered on the shard's pool, not on the network's thread).
        txs: Vec<SignedTransaction>,
        /// Forward it, drop it, or drop it and score the sender down.
        verdict: oneshot::Sender<Verdict>,
    },
    /// Wakes the stage so it sees that the node is stopping.
    Stop,
}

/// Why a transaction was not admitted.
#[derive(Debug, Error)]
pub enum Rejection {
    /// The signature does not verify.
    #[error("the signature does not verify")]
    BadSignature,
    /// A committed block already includes the transaction.
    #[error("the transaction is already in shard {shard}'s block {height}")]
    AlreadyIncluded {
        /// The shard.
        shard: u16,
        /// That block's height.
        height: u64,
    },
    /// A block below the snapshot this validator's state was installed
    /// from already includes the transaction.
    #[error("the transaction is already in a block at or below height {height}")]
    IncludedBeforeSnapshot {
        /// The snapshot's height.
        height: u64,
    },
    /// The sender cannot pay amount plus fee.
    #[error("the sender's balance {balance} does not cover amount plus fee ({needed})")]
    InsufficientBalance {
        /// The sender's committed balance.
        balance: u128,
        /// Amount plus fee.
        needed: u128,
    },
    /// The pool refused it.
    #[error("{}", pool_message(.0))]
    Pool(#[from] AdmitError),
    /// The sender's account is on another shard now (it moved at an epoch
    /// boundary after the RPC routed the transaction here).
    #[error("the sender's account is on shard {shard} now; send the transaction again")]
    Moved {
        /// Its shard.
        shard: u16,
    },
    /// The sender's account moved to this shard and its state has not
    /// arrived yet.
    #[error("the sender's account is moving to shard {shard} and its state has not arrived yet; send the transaction again in a moment")]
    Arriving {
        /// This shard.
        shard: u16,
    },
    /// No block could run it as it stands (a contract transaction's gas
    /// price, gas limit or creation code).
    #[error("invalid transaction: {0}")]
    Invalid(String),
    /// Reading the state failed.
    #[error("storage error: {0}")]
    Storage(String),
}

/// A block a shard committed.
pub struct Committed {
    /// The shard.
    pub shard: ShardId,
    /// Its header.
    pub header: ShardBlockHeader,
    /// Its transactions' hashes.
    pub hashes: Vec<Hash>,
    /// The receipts it emitted to other shards.
    pub receipts: Vec<Receipt>,
}

/// The pool's reason, with hashes in the API's `0x` form.
fn pool_message(error: &AdmitError) -> String {
    match error {
        AdmitError::Duplicate(hash) => format!("transaction 0x{hash} is already in the mempool"),
        other => other.to_string(),
    }
}
