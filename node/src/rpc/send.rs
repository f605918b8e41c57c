//! `atoll_sendTransaction`: decode, route to the sender's shard, admit,
//! and wait for inclusion or finality when asked.

use super::error::tracked;
use super::error::{self, error, internal, invalid_params};
use super::server::Rpc;
use super::types::{hex_hash, WaitUntil};
use crate::service::common::handoff::{Admission, Rejection};
use crate::service::common::shard::Shared;
use crate::service::common::waiters::{Stage, WaitEnd};
use atoll_primitives::codec::{self, MAX_TRANSACTION_BYTES};
use atoll_primitives::SignedTransaction;
use atoll_shard::execution::transaction::wrong_chain;
use atoll_shard::execution::PreparedTx;
use atoll_shard::mempool::AdmitError;
use jsonrpsee::core::RpcResult;
use jsonrpsee::types::ErrorObjectOwned;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;

/// Longest a `wait_until` call waits before it answers with WAIT_TIMEOUT.
pub const WAIT_TIMEOUT: Duration = Duration::from_secs(60);

impl Rpc {
    pub(super) async fn send(
        &self,
        tx_hex: String,
        wait_until: Option<WaitUntil>,
    ) -> RpcResult<String> {
        if self.node.any().is_stopping() {
            return Err(error(error::SHUTTING_DOWN, "the node is shutting down"));
        }
        let digits = tx_hex.strip_prefix("0x").unwrap_or(&tx_hex);
        if digits.len() > 2 * MAX_TRANSACTION_BYTES {
            return Err(invalid_params(format!(
                "the transaction is more than {MAX_TRANSACTION_BYTES} bytes"
            )));
        }
        let bytes =
            hex::decode(digits).map_err(|e| invalid_params(format!("tx_hex is not hex: {e}")))?;
        let signed: SignedTransaction =
            codec::decode("signed transaction", &bytes, MAX_TRANSACTION_BYTES)
                .map_err(|e| invalid_params(e.to_string()))?;
        let chain_id = self.node.any().chain_id;
        if wrong_chain(&signed.tx, chain_id).is_some() {
            return Err(error(
                error::WRONG_CHAIN_ID,
                format!(
                    "the transaction is for chain {}, this is chain {}",
                    signed.tx.chain_id, chain_id
                ),
            ));
        }
        let tx = PreparedTx::new(signed);
        // The sender's shard takes it, if this validator tracks it.
        let shard = Arc::clone(self.node.shard_of(&tx.sender));
        tracked(&shard)?;
        let hash = tx.hash;
        let until = wait_until.unwrap_or_default();
        // Register before admission, so a block that includes the
        // transaction right after admission cannot be missed.
        let stage = match until {
            WaitUntil::None => None,
            WaitUntil::Included => Some(Stage::Included),
            WaitUntil::Final => Some(Stage::Final),
        };
        let waiter = match stage {
            None => None,
            Some(stage) => Some(shard.waiters.register(hash, stage).map_err(|_| {
                error(
                    error::BUSY,
                    "too many clients are waiting; retry or poll atoll_getTransactionStatus",
                )
            })?),
        };
        let admitted = admit(&shard, tx).await;
        if let Err(e) = admitted {
            if waiter.is_some() {
                drop(waiter);
                shard.waiters.forget_abandoned(&hash);
            }
            return Err(e);
        }
        if let Some(waiter) = waiter {
            let result = tokio::time::timeout(WAIT_TIMEOUT, waiter).await;
            if result.is_err() {
                shard.waiters.forget_abandoned(&hash);
                return Err(error(
                    error::WAIT_TIMEOUT,
                    format!(
                        "{} was admitted but is not {} after {}s; it is still pending",
                        hex_hash(&hash),
                        if until == WaitUntil::Final {
                            "final"
                        } else {
                            "included"
                        },
                        WAIT_TIMEOUT.as_secs()
                    ),
                ));
            }
            match result {
                Ok(Ok(WaitEnd::Reached)) | Err(_) => {}
                Ok(Ok(WaitEnd::Dropped)) => {
                    return Err(error(
                        error::DROPPED,
                        format!(
                            "{} left the mempool without being included: replaced by a higher fee, evicted, its nonce was used, or its sender moved to another shard (send it again)",
                            hex_hash(&hash)
                        ),
                    ))
                }
                Ok(Err(_)) => return Err(error(error::SHUTTING_DOWN, "the node is shutting down")),
            }
        }
        Ok(hex_hash(&hash))
    }
}

/// Hands `tx` to `shard`'s admission stage and waits for the verdict.
pub(super) async fn admit(shard: &Shared, tx: PreparedTx) -> RpcResult<()> {
    let (reply, verdict) = oneshot::channel();
    shard
        .admission
        .try_send(Admission::Submit { tx, reply })
        .map_err(|_| error(error::BUSY, "the admission queue is full; retry shortly"))?;
    match verdict.await {
        Err(_) => Err(error(error::SHUTTING_DOWN, "the node is shutting down")),
        Ok(Ok(())) => Ok(()),
        Ok(Err(rejection)) => Err(rejection_error(rejection)),
    }
}

pub(super) fn rejection_error(rejection: Rejection) -> ErrorObjectOwned {
    let code = match &rejection {
        Rejection::BadSignature => error::BAD_SIGNATURE,
        Rejection::AlreadyIncluded { .. } | Rejection::IncludedBeforeSnapshot { .. } => {
            error::ALREADY_KNOWN
        }
        Rejection::InsufficientBalance { .. } => error::INSUFFICIENT_BALANCE,
        Rejection::Storage(message) => return internal(message),
        Rejection::Invalid(_) => error::INVALID_TRANSACTION,
        Rejection::Moved { .. } => error::WRONG_SHARD,
        Rejection::Arriving { .. } => error::ACCOUNT_ARRIVING,
        Rejection::Pool(pool) => match pool {
            AdmitError::Duplicate(_) => error::ALREADY_KNOWN,
            AdmitError::NonceTooLow { .. } => error::NONCE_TOO_LOW,
            AdmitError::NonceGapTooLarge { .. } => error::NONCE_GAP_TOO_LARGE,
            AdmitError::NonceTaken { .. } => error::REPLACEMENT_UNDERPRICED,
            AdmitError::SenderFull { .. } => error::SENDER_LIMIT,
            AdmitError::PoolFull { .. }
            | AdmitError::TooLarge { .. }
            | AdmitError::TooManyQueued { .. } => error::MEMPOOL_FULL,
        },
    };
    error(code, rejection.to_string())
}
