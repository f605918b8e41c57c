//! Tracing a transaction: its status, its outcome, and the receipts that
//! carried its value between shards (`atoll_getTransactionStatus`,
//! `atoll_getReceipt`).

use super::error::invalid_params;
use super::outcomes::{contract_outcome, outcome};
use super::server::Rpc;
use super::types::{hex_hash, parse_hash, ReceiptInfo, ReceiptState, TxState, TxStatus};
use crate::query::{ReceiptAt, ReceiptStage, TxAt};
use atoll_primitives::{ReceiptAction, ShardId};
use jsonrpsee::core::RpcResult;

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
        match self.node.transaction(&hash)? {
            TxAt::Unknown => {}
            TxAt::Pending { shard } => {
                status.status = TxState::Pending;
                status.shard = Some(shard.0);
            }
            TxAt::Included(included) => {
                status.status = if included.is_final {
                    TxState::Final
                } else {
                    TxState::Included
                };
                status.shard = Some(included.shard.0);
                status.height = Some(included.location.height);
                status.index = Some(included.location.index);
                status.block_hash = included.block_hash.as_ref().map(hex_hash);
                status.outcome = Some(outcome(&included.location.outcome));
                status.receipts = included
                    .receipts
                    .iter()
                    .map(|receipt| receipt_info(receipt, false))
                    .collect();
            }
        }
        Ok(status)
    }

    /// The receipt named `"<source>:<destination>:<sequence>"` (`atoll_getReceipt`).
    pub(super) fn receipt_by_id(&self, id: &str) -> RpcResult<ReceiptInfo> {
        let (source, destination, sequence) = parse_receipt_id(id)?;
        let receipt = self.node.receipt(source, destination, sequence)?;
        Ok(receipt_info(&receipt, true))
    }
}

/// The API's view of a receipt; with `detail`, also what it credits and
/// where it came from.
fn receipt_info(found: &ReceiptAt, detail: bool) -> ReceiptInfo {
    let receipt = &found.stored.receipt;
    let (source, destination, sequence) = (receipt.source, receipt.destination, receipt.sequence);
    let amount = receipt.value();
    let (kind, to, nonce) = match receipt.action {
        ReceiptAction::Transfer { to, .. } => ("transfer", to, None),
        ReceiptAction::Move { account, nonce, .. } => ("move", account, Some(nonce)),
        ReceiptAction::Placed { account, .. } => ("placement", account, None),
        ReceiptAction::Call { to, .. } => ("call", to, None),
        ReceiptAction::Refund { to, .. } => ("refund", to, None),
        ReceiptAction::MoveState { account, .. } => ("contract_state", account, None),
    };
    ReceiptInfo {
        id: format!("{}:{}:{sequence}", source.0, destination.0),
        source: source.0,
        destination: destination.0,
        sequence,
        status: match found.stage {
            ReceiptStage::InFlight => ReceiptState::InFlight,
            ReceiptStage::Applied => ReceiptState::Applied,
            ReceiptStage::Final => ReceiptState::Final,
        },
        applied_height: found.applied_height,
        forwarded_to: found
            .forwarded_to
            .map(|(s, d, n)| format!("{}:{}:{n}", s.0, d.0)),
        origin: detail.then(|| hex_hash(&receipt.origin)),
        source_height: detail.then_some(found.stored.height),
        kind: detail.then(|| kind.to_string()),
        to: detail.then(|| to.to_string()),
        amount: detail.then(|| amount.to_string()),
        nonce: nonce.filter(|_| detail),
        call: found
            .call
            .as_ref()
            .map(|record| contract_outcome(&record.outcome)),
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
