//! Tracing a transaction: its status, its outcome, and the receipts that
//! carried its value between shards (`atoll_getTransactionStatus`,
//! `atoll_getReceipt`).

use super::error::{self, error, internal, invalid_params};
use super::outcomes::outcome;
use super::server::Rpc;
use super::types::{hex_hash, parse_hash, ReceiptInfo, ReceiptState, TxState, TxStatus};
use atoll_primitives::{ReceiptAction, ShardId, TxFailure, TxOutcome};
use jsonrpsee::core::RpcResult;

/// Most receipts `atoll_getTransactionStatus` lists for one transaction: its
/// own and the ones that carried it on after its account moved.
const MAX_FORWARDS: usize = 8;

impl Rpc {
    pub(super) fn tx_status(&self, hash: &str) -> RpcResult<TxStatus> {
        let hash = parse_hash(hash).map_err(invalid_params)?;
        let mut status = TxStatus {
            hash: hex_hash(&hash),
            status: TxState::Unknown,
            shard: None,
            height: None,
            index: None,
            block_hash: None,
            outcome: None,
            receipts: Vec::new(),
        };
        // The pools first: a producer commits a block before it removes the
        // block's transactions from its pool, so a transaction not found in
        // a pool is, if anywhere, already in a store.
        if let Some(shard) = self
            .node
            .shards
            .iter()
            .find(|s| s.mempool.lock().contains(&hash))
        {
            status.status = TxState::Pending;
            status.shard = Some(shard.shard.0);
            return Ok(status);
        }
        // A transaction refused by a block without being charged (its
        // sender had just moved to another shard) may be included again on
        // the sender's new shard: the shard where it took effect (it was
        // charged) wins.
        let mut found = None;
        for shard in &self.node.shards {
            // Read the final height before the index, so a block committed
            // in between is reported as included, never wrongly as final.
            let final_height = shard.heads.borrow().final_height;
            if let Some(location) = shard.store.transaction(&hash).map_err(internal)? {
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
            return Ok(status);
        };
        status.status = if location.height <= final_height {
            TxState::Final
        } else {
            TxState::Included
        };
        status.shard = Some(shard.shard.0);
        status.height = Some(location.height);
        status.index = Some(location.index);
        status.block_hash = shard
            .store
            .header(location.height)
            .map_err(internal)?
            .map(|h| hex_hash(&h.hash()));
        status.outcome = Some(outcome(&location.outcome));
        // The receipt, and the receipts that carried it on if its account
        // had moved (a move takes at most a few hops to catch up with).
        let mut next = location.receipt.map(|(d, s)| (shard.shard, d, s));
        while let Some((source, destination, sequence)) = next {
            if status.receipts.len() >= MAX_FORWARDS {
                break;
            }
            let receipt = self.receipt(source, destination, sequence, false)?;
            next = self.forwarded(destination, source, sequence)?;
            status.receipts.push(receipt);
        }
        Ok(status)
    }

    /// The receipt (source, destination, sequence) with which `at`
    /// forwarded receipt `sequence` from `source`, if it did.
    pub(super) fn forwarded(
        &self,
        at: ShardId,
        source: ShardId,
        sequence: u64,
    ) -> RpcResult<Option<(ShardId, ShardId, u64)>> {
        let Some(shard) = self.node.shards.get(usize::from(at.0)) else {
            return Ok(None);
        };
        Ok(shard
            .store
            .forwarded(source, sequence)
            .map_err(internal)?
            .map(|(destination, onward)| (at, destination, onward)))
    }

    /// Receipt `sequence` from `source` to `destination`; with `detail`,
    /// also what it credits and where it came from.
    pub(super) fn receipt(
        &self,
        source: ShardId,
        destination: ShardId,
        sequence: u64,
        detail: bool,
    ) -> RpcResult<ReceiptInfo> {
        let shard = |id: ShardId| {
            self.node.shards.get(usize::from(id.0)).ok_or_else(|| {
                error(
                    error::WRONG_SHARD,
                    format!(
                        "there is no shard {id}; the chain has {}",
                        self.node.shards.len()
                    ),
                )
            })
        };
        let (source_shard, destination_shard) = (shard(source)?, shard(destination)?);
        let stored = source_shard
            .store
            .outgoing_receipt_at(destination, sequence)
            .map_err(internal)?
            .ok_or_else(|| {
                error(
                    error::NOT_FOUND,
                    format!("shard {source} sent no receipt {sequence} to shard {destination}"),
                )
            })?;
        let final_height = destination_shard.heads.borrow().final_height;
        let applied_height = destination_shard
            .store
            .incoming_applied(source, sequence)
            .map_err(internal)?;
        let status = match applied_height {
            None => ReceiptState::InFlight,
            Some(height) if height <= final_height => ReceiptState::Final,
            Some(_) => ReceiptState::Applied,
        };
        let forwarded_to = self
            .forwarded(destination, source, sequence)?
            .map(|(s, d, n)| format!("{}:{}:{n}", s.0, d.0));
        let (kind, to, amount, nonce) = match stored.receipt.action {
            ReceiptAction::Transfer { to, amount } => ("transfer", to, amount, None),
            ReceiptAction::Move {
                account,
                balance,
                nonce,
            } => ("move", account, balance, Some(nonce)),
            ReceiptAction::Placed { account, .. } => ("placement", account, 0, None),
        };
        Ok(ReceiptInfo {
            id: format!("{}:{}:{sequence}", source.0, destination.0),
            source: source.0,
            destination: destination.0,
            sequence,
            status,
            applied_height,
            forwarded_to,
            origin: detail.then(|| hex_hash(&stored.receipt.origin)),
            source_height: detail.then_some(stored.height),
            kind: detail.then(|| kind.to_string()),
            to: detail.then(|| to.to_string()),
            amount: detail.then(|| amount.to_string()),
            nonce: nonce.filter(|_| detail),
        })
    }
}

/// The receipt named `"<source>:<destination>:<sequence>"` (`atoll_getReceipt`).
impl Rpc {
    pub(super) fn receipt_by_id(&self, id: &str) -> RpcResult<ReceiptInfo> {
        let (source, destination, sequence) = parse_receipt_id(id)?;
        self.receipt(source, destination, sequence, true)
    }
}

/// Parses `"<source>:<destination>:<sequence>"`.
fn parse_receipt_id(id: &str) -> RpcResult<(ShardId, ShardId, u64)> {
    let bad = || {
        invalid_params(format!(
            "{id:?} is not a receipt id \"<source>:<destination>:<sequence>\""
        ))
    };
    let mut parts = id.split(':');
    let (Some(source), Some(destination), Some(sequence), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad());
    };
    Ok((
        ShardId(source.parse().map_err(|_| bad())?),
        ShardId(destination.parse().map_err(|_| bad())?),
        sequence.parse().map_err(|_| bad())?,
    ))
}
