//! `atoll_sendTransaction`: decode, route to the sender's shard, admit,
//! and wait for inclusion or finality when asked.

use super::error::{self, error, invalid_params};
use super::server::Rpc;
use super::types::{hex_hash, WaitUntil};
use crate::service::common::waiters::Stage;
use atoll_primitives::codec::{self, MAX_TRANSACTION_BYTES};
use atoll_primitives::SignedTransaction;
use atoll_shard::execution::rules::wrong_chain;
use atoll_shard::execution::PreparedTx;
use jsonrpsee::core::RpcResult;
use std::time::Duration;

/// Longest a `wait_until` call waits before it answers with WAIT_TIMEOUT.
pub const WAIT_TIMEOUT: Duration = Duration::from_secs(60);

impl Rpc {
    pub(super) async fn send(
        &self,
        tx_hex: String,
        wait_until: Option<WaitUntil>,
    ) -> RpcResult<String> {
        if self.node.is_stopping() {
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
        let chain_id = self.node.chain_id();
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
        let hash = tx.hash;
        let until = match wait_until.unwrap_or_default() {
            WaitUntil::None => None,
            WaitUntil::Included => Some(Stage::Included),
            WaitUntil::Final => Some(Stage::Final),
        };
        self.node.submit(tx, until, WAIT_TIMEOUT).await?;
        Ok(hex_hash(&hash))
    }
}
