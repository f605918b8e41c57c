//! `atoll_sendTransaction` (and the steps `eth_sendRawTransaction` shares):
//! decode, prepare (an Ethereum transaction's sender is recovered here),
//! route to the sender's shard, admit, and wait for inclusion or finality
//! when asked.

use super::error::{self, error, invalid_params};
use super::server::Rpc;
use super::types::{hex_hash, WaitUntil};
use crate::service::common::waiters::Stage;
use atoll_primitives::codec::{self, MAX_TRANSACTION_BYTES};
use atoll_primitives::ethereum::{self, EthTxError};
use atoll_primitives::SignedTransaction;
use atoll_shard::execution::rules::wrong_chain;
use atoll_shard::execution::PreparedTx;
use jsonrpsee::core::RpcResult;
use jsonrpsee::types::ErrorObjectOwned;
use std::time::Duration;

/// Longest a `wait_until` call waits before it answers with WAIT_TIMEOUT.
pub const WAIT_TIMEOUT: Duration = Duration::from_secs(60);

impl Rpc {
    pub(super) async fn send(
        &self,
        tx_hex: String,
        wait_until: Option<WaitUntil>,
    ) -> RpcResult<String> {
        let bytes = self.transaction_bytes(&tx_hex)?;
        let signed: SignedTransaction =
            codec::decode("signed transaction", &bytes, MAX_TRANSACTION_BYTES)
                .map_err(|e| invalid_params(e.to_string()))?;
        let tx = self.prepare(signed)?;
        let until = match wait_until.unwrap_or_default() {
            WaitUntil::None => None,
            WaitUntil::Included => Some(Stage::Included),
            WaitUntil::Final => Some(Stage::Final),
        };
        self.submit(tx, until).await
    }

    /// A client's transaction as bytes, from hex, within the size limit.
    pub(super) fn transaction_bytes(&self, tx_hex: &str) -> RpcResult<Vec<u8>> {
        if self.node.is_stopping() {
            return Err(error(error::SHUTTING_DOWN, "the node is shutting down"));
        }
        let digits = tx_hex.strip_prefix("0x").unwrap_or(tx_hex);
        if digits.len() > 2 * MAX_TRANSACTION_BYTES {
            return Err(invalid_params(format!(
                "the transaction is more than {MAX_TRANSACTION_BYTES} bytes"
            )));
        }
        // const-hex: the hot path of every submission.
        const_hex::decode(digits)
            .map_err(|e| invalid_params(format!("the transaction is not hex: {e}")))
    }

    /// Prepares a client's transaction for this chain: another chain's is
    /// refused here, with a clear error; an Ethereum one is decoded and
    /// its sender recovered here, on the RPC's threads, since the sender
    /// says which shard takes it.
    pub(super) fn prepare(&self, signed: SignedTransaction) -> RpcResult<PreparedTx> {
        let chain_id = self.node.chain_id();
        match signed {
            SignedTransaction::Native(native) => {
                if wrong_chain(native.tx.chain_id, chain_id).is_some() {
                    return Err(error(
                        error::WRONG_CHAIN_ID,
                        format!(
                            "the transaction is for chain {}, this is chain {}",
                            native.tx.chain_id, chain_id
                        ),
                    ));
                }
                Ok(PreparedTx::new(native))
            }
            SignedTransaction::Ethereum(raw) => {
                let decoded = ethereum::decode(&raw, chain_id).map_err(refused)?;
                Ok(PreparedTx::ethereum(raw, &decoded))
            }
        }
    }

    /// Admits `tx` and, when asked, waits for it; answers its hash.
    pub(super) async fn submit(&self, tx: PreparedTx, until: Option<Stage>) -> RpcResult<String> {
        let hash = tx.hash;
        self.node.submit(tx, until, WAIT_TIMEOUT).await?;
        Ok(hex_hash(&hash))
    }
}

/// Why Ethereum transaction bytes were refused, as an error object.
fn refused(failure: EthTxError) -> ErrorObjectOwned {
    let code = match failure {
        EthTxError::WrongChain { .. } | EthTxError::NoChainId => error::WRONG_CHAIN_ID,
        EthTxError::BadSignature => error::BAD_SIGNATURE,
        EthTxError::TooLarge { .. }
        | EthTxError::Malformed(_)
        | EthTxError::Unsupported { .. }
        | EthTxError::ValueTooLarge(_) => error::INVALID_PARAMS,
    };
    error(code, failure.to_string())
}
