//! How the Ethereum methods write and read values: quantities, data, and
//! the errors geth answers with.

use super::super::contracts::uncharged;
use super::super::error::invalid_params;
use super::super::outcomes::revert_reason;
use super::super::types;
use atoll_primitives::{ContractOutcome, Hash};
use jsonrpsee::core::RpcResult;
use jsonrpsee::types::ErrorObjectOwned;

/// Ethereum's code for a call that reverted.
pub const EXECUTION_REVERTED: i32 = 3;
/// Ethereum's generic server error.
pub const SERVER_ERROR: i32 = -32000;
/// A request past a limit (Infura's and geth's code for it).
pub const LIMIT_EXCEEDED: i32 = -32005;

/// `n` as an Ethereum quantity: `0x`, hex digits, no leading zeros.
pub fn quantity(n: impl Into<u128>) -> String {
    format!("0x{:x}", n.into())
}

/// `bytes` as Ethereum data.
pub fn data(bytes: &[u8]) -> String {
    format!("0x{}", hex::encode(bytes))
}

/// A 32-byte hash named `field` from `0x` hex.
pub fn parse_hash(field: &str, text: &str) -> RpcResult<Hash> {
    types::parse_hash(text).map_err(|e| invalid_params(format!("{field}: {e}")))
}

/// A quantity (`0x` hex; decimal is accepted too).
pub fn parse_quantity(field: &str, text: &str) -> RpcResult<u128> {
    let parsed = match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some("") => Err(()),
        Some(digits) => u128::from_str_radix(digits, 16).map_err(|_| ()),
        None => text.parse().map_err(|_| ()),
    };
    parsed.map_err(|()| {
        invalid_params(format!(
            "{field}: {text:?} is not a 0x quantity below 2^128"
        ))
    })
}

/// Error 3 with the revert data, as Ethereum tools decode it; the message
/// names the reason when the data is `Error(string)`, as geth's does.
pub fn reverted(output: &[u8]) -> ErrorObjectOwned {
    let message = match revert_reason(output) {
        Some(reason) => format!("execution reverted: {reason}"),
        None => "execution reverted".into(),
    };
    ErrorObjectOwned::owned(EXECUTION_REVERTED, message, Some(data(output)))
}

/// Error -32000 for a call that halted, ran out of gas or reached another
/// shard, in the words `atoll_call` uses.
pub fn failed(outcome: &ContractOutcome) -> ErrorObjectOwned {
    let why = uncharged(outcome).message.unwrap_or_default();
    server_error(format!("the call failed: {why}"))
}

/// Ethereum's generic server error.
pub fn server_error(message: impl Into<String>) -> ErrorObjectOwned {
    ErrorObjectOwned::owned(SERVER_ERROR, message.into(), None::<()>)
}

/// A read at a block whose state this node no longer keeps.
pub fn not_kept(block: &str) -> ErrorObjectOwned {
    server_error(format!(
        "the state at block {block} is not kept: this node keeps each shard's latest state \
         (ask at \"latest\", \"pending\", \"safe\" or \"finalized\")"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_read_and_print_as_ethereum_tools_expect() {
        assert_eq!(quantity(0u8), "0x0");
        assert_eq!(quantity(1_337u64), "0x539");
        assert_eq!(parse_quantity("n", "0x539").expect("hex"), 1_337);
        assert_eq!(parse_quantity("n", "1337").expect("decimal"), 1_337);
        assert!(parse_quantity("n", "0x").is_err());
        assert!(parse_quantity("n", "0xzz").is_err());
        let error = reverted(&[0x08, 0xc3]);
        assert_eq!(error.code(), EXECUTION_REVERTED);
        assert_eq!(error.message(), "execution reverted");
        assert_eq!(
            error.data().map(|d| d.get().to_string()),
            Some("\"0x08c3\"".into())
        );
        // Error("no") as Solidity encodes it.
        let mut output = vec![0x08, 0xc3, 0x79, 0xa0];
        output.extend([0u8; 31].iter().chain(&[0x20]));
        output.extend([0u8; 31].iter().chain(&[2]));
        output.extend(b"no".iter().chain(&[0u8; 30]));
        assert_eq!(reverted(&output).message(), "execution reverted: no");
        // A length past the data: no reason, no panic.
        output[4 + 63] = 200;
        assert_eq!(reverted(&output).message(), "execution reverted");
    }
}
