//! `eth_sendRawTransaction`: the raw bytes of an Ethereum-signed
//! transaction, admitted as `atoll_sendTransaction` admits a native one.
//! Refusals carry geth's words where tools look for them ("nonce too
//! low", "insufficient funds", "already known", "replacement transaction
//! underpriced"), under geth's code -32000, followed by atoll's reason.

use super::super::error;
use super::super::server::Rpc;
use super::format::SERVER_ERROR;
use atoll_primitives::SignedTransaction;
use jsonrpsee::core::RpcResult;
use jsonrpsee::types::ErrorObjectOwned;

impl Rpc {
    /// Decodes, prepares and admits `raw`; its keccak-256 hash.
    pub(super) async fn send_raw(&self, raw: &str) -> RpcResult<String> {
        let bytes = self.transaction_bytes(raw).map_err(as_geth)?;
        let tx = self
            .prepare(SignedTransaction::Ethereum(bytes))
            .map_err(as_geth)?;
        self.submit(tx, None).await.map_err(as_geth)
    }
}

/// An atoll refusal in geth's terms: code -32000 (bad parameters keep
/// -32602, and a busy or stopping node its own code, so that a client
/// knows to retry), and geth's phrase first where tools match on it.
fn as_geth(refusal: ErrorObjectOwned) -> ErrorObjectOwned {
    let phrase = match refusal.code() {
        error::NONCE_TOO_LOW => Some("nonce too low"),
        error::INSUFFICIENT_BALANCE => Some("insufficient funds for gas * price + value"),
        error::ALREADY_KNOWN => Some("already known"),
        error::REPLACEMENT_UNDERPRICED => Some("replacement transaction underpriced"),
        error::WRONG_CHAIN_ID => Some("invalid chain id"),
        error::BAD_SIGNATURE => Some("invalid sender"),
        error::INVALID_PARAMS | error::BUSY | error::SHUTTING_DOWN | error::INTERNAL => {
            return refusal
        }
        _ => None,
    };
    let message = match phrase {
        Some(phrase) => format!("{phrase}: {}", refusal.message()),
        None => refusal.message().to_string(),
    };
    ErrorObjectOwned::owned(SERVER_ERROR, message, None::<()>)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_start_with_the_words_tools_match() {
        let low = as_geth(error::error(error::NONCE_TOO_LOW, "expected 3, got 2"));
        assert_eq!(low.code(), SERVER_ERROR);
        assert_eq!(low.message(), "nonce too low: expected 3, got 2");
        let funds = as_geth(error::error(error::INSUFFICIENT_BALANCE, "balance 0"));
        assert!(funds.message().starts_with("insufficient funds"));
        let busy = as_geth(error::error(error::BUSY, "busy"));
        assert_eq!(busy.code(), error::BUSY, "a client retries a busy node");
        let other = as_geth(error::error(
            error::INVALID_TRANSACTION,
            "gas limit too low",
        ));
        assert_eq!(
            (other.code(), other.message()),
            (SERVER_ERROR, "gas limit too low")
        );
    }
}
