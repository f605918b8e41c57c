//! Tracing a transaction: where it is, its outcome, and the receipts that
//! carried its value between shards: a transfer's credit, or a cross-shard
//! call and its refund, each with the receipts that carried it on after its
//! account moved.

use super::error::QueryError;
use super::view::NodeView;
use atoll_primitives::{
    CallRecord, ContractStatus, Hash, ReceiptAction, ShardId, TxFailure, TxOutcome,
};
use atoll_storage::{StoredReceipt, TxLocation};

/// Most receipts a transaction's trace follows: its own, the refund of a
/// call, and the ones that carried either on after its account moved.
pub const MAX_FORWARDS: usize = 8;

/// Where a transaction is.
#[derive(Clone, Debug)]
pub enum TxAt {
    /// No shard knows it.
    Unknown,
    /// In the mempool of `shard`.
    Pending {
        /// The shard.
        shard: ShardId,
    },
    /// In a committed block.
    Included(Box<Included>),
}

/// A transaction in a committed block.
#[derive(Clone, Debug)]
pub struct Included {
    /// The shard.
    pub shard: ShardId,
    /// Its block, position and outcome.
    pub location: TxLocation,
    /// The hash of its block.
    pub block_hash: Option<Hash>,
    /// Whether its block is final.
    pub is_final: bool,
    /// The receipt it emitted and those that carried it on, then for a
    /// call its refund and those that carried that on, in order (at most
    /// [`MAX_FORWARDS`]).
    pub receipts: Vec<ReceiptAt>,
}

impl Included {
    /// For a transaction that called a contract on another shard: the
    /// call's record at its destination and the refund receipt, once the
    /// refund is final at the caller's shard (`None` before, or for any
    /// other transaction).
    pub fn settled_call(&self) -> Option<(&CallRecord, &ReceiptAt)> {
        if !matches!(&self.location.outcome, TxOutcome::Contract(run)
            if matches!(run.status, ContractStatus::Sent { .. }))
        {
            return None;
        }
        let call = self.receipts.iter().find_map(|r| r.call.as_ref())?;
        let refund = self.receipts.last()?;
        let settled = matches!(refund.stored.receipt.action, ReceiptAction::Refund { .. })
            && refund.stage == ReceiptStage::Final
            && refund.forwarded_to.is_none();
        settled.then_some((call, refund))
    }
}

/// Where a receipt stands at its destination.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReceiptStage {
    /// Emitted by its source shard, not yet credited.
    InFlight,
    /// Credited by a destination block that is not final yet.
    Applied,
    /// Credited by a final destination block.
    Final,
}

/// A cross-shard receipt and where it stands.
#[derive(Clone, Debug)]
pub struct ReceiptAt {
    /// The receipt as its source stored it, with its source block height.
    pub stored: StoredReceipt,
    /// Where it stands at its destination.
    pub stage: ReceiptStage,
    /// The destination block that credited it.
    pub applied_height: Option<u64>,
    /// The receipt (source, destination, sequence) with which the
    /// destination carried it on, its account having moved.
    pub forwarded_to: Option<(ShardId, ShardId, u64)>,
    /// For a cross-shard call that its destination ran: what it did there
    /// (its refund receipt goes from the destination back to the source);
    /// for a refund that brought a callback: what the callback did.
    pub call: Option<CallRecord>,
}

impl NodeView {
    /// Where the transaction `hash` is.
    pub fn transaction(&self, hash: &Hash) -> Result<TxAt, QueryError> {
        // The pools first: a producer commits a block before it removes the
        // block's transactions from its pool, so a transaction not found in
        // a pool is, if anywhere, already in a store.
        if let Some(shard) = self.shards.iter().find(|s| s.mempool.lock().contains(hash)) {
            return Ok(TxAt::Pending { shard: shard.shard });
        }
        // A transaction refused by a block without being charged (its
        // sender had just moved to another shard) may be included again on
        // the sender's new shard: the shard where it took effect (it was
        // charged) wins.
        let mut found = None;
        for shard in &self.shards {
            // Read the final height before the index, so a block committed
            // in between is reported as included, never wrongly as final.
            let final_height = shard.heads.borrow().final_height;
            if let Some(location) = shard
                .store
                .transaction(hash)
                .map_err(QueryError::internal)?
            {
                let took_effect = matches!(
                    location.outcome,
                    TxOutcome::Success
                        | TxOutcome::Failure(
                            TxFailure::InsufficientBalance { .. } | TxFailure::BalanceOverflow
                        )
                );
                if found.is_none() || took_effect {
                    found = Some((shard, final_height, location));
                }
                if took_effect {
                    break;
                }
            }
        }
        let Some((shard, final_height, location)) = found else {
            return Ok(TxAt::Unknown);
        };
        let block_hash = shard
            .store
            .header(location.height)
            .map_err(QueryError::internal)?
            .map(|h| h.hash());
        // The receipt, and the receipts that carried it on if its account
        // had moved (a move takes at most a few hops to catch up with).
        let mut receipts = Vec::new();
        let mut next = location.receipt.map(|(d, s)| (shard.shard, d, s));
        while let Some((source, destination, sequence)) = next {
            if receipts.len() >= MAX_FORWARDS {
                break;
            }
            let receipt = self.receipt(source, destination, sequence)?;
            let refund = receipt
                .call
                .as_ref()
                .and_then(|call| call.refund)
                .map(|refund| (destination, source, refund));
            next = receipt.forwarded_to.or(refund);
            receipts.push(receipt);
        }
        Ok(TxAt::Included(Box::new(Included {
            shard: shard.shard,
            is_final: location.height <= final_height,
            location,
            block_hash,
            receipts,
        })))
    }

    /// Receipt `sequence` from `source` to `destination`.
    pub fn receipt(
        &self,
        source: ShardId,
        destination: ShardId,
        sequence: u64,
    ) -> Result<ReceiptAt, QueryError> {
        let (source_shard, destination_shard) = (self.shard(source)?, self.shard(destination)?);
        let stored = source_shard
            .store
            .outgoing_receipt_at(destination, sequence)
            .map_err(QueryError::internal)?
            .ok_or(QueryError::NoReceipt {
                source_shard: source,
                destination,
                sequence,
            })?;
        let final_height = destination_shard.heads.borrow().final_height;
        let applied_height = destination_shard
            .store
            .incoming_applied(source, sequence)
            .map_err(QueryError::internal)?;
        let stage = match applied_height {
            None => ReceiptStage::InFlight,
            Some(height) if height <= final_height => ReceiptStage::Final,
            Some(_) => ReceiptStage::Applied,
        };
        let forwarded_to = destination_shard
            .store
            .forwarded(source, sequence)
            .map_err(QueryError::internal)?
            .map(|(onward_to, onward)| (destination, onward_to, onward));
        let ran = matches!(
            &stored.receipt.action,
            ReceiptAction::Call { .. } | ReceiptAction::Refund { reply: Some(_), .. }
        );
        let call = match (ran, applied_height) {
            (true, Some(_)) => destination_shard
                .store
                .call_record(source, sequence)
                .map_err(QueryError::internal)?,
            _ => None,
        };
        Ok(ReceiptAt {
            stored,
            stage,
            applied_height,
            forwarded_to,
            call,
        })
    }
}
