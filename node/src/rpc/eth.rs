//! The Ethereum JSON-RPC methods that read the chain (`eth_`, `net_`,
//! `web3_`), on the same port as `atoll_`: Ethereum tools (ethers, viem,
//! web3.py) read balances, nonces, code and storage, run calls and
//! estimate gas without learning anything new. Sending Ethereum-signed
//! transactions and the block, receipt and log methods are not served yet
//! (issue 19).
//!
//! Rules, as `docs/rpc.md` states them:
//! - Numbers are `0x` quantities, bytes `0x` data; an address is 20 bytes
//!   (one address space with native accounts). A balance's unit is the
//!   chain's smallest unit, shown as wei.
//! - A block number is a beacon height (`eth_blockNumber`). This node keeps
//!   the state at each shard's head only: state is read at `latest` and
//!   `pending` (the head), `safe` and `finalized` (the head once final),
//!   or the current block number; an older number is refused.
//! - A call that reverts answers error 3, `execution reverted`, with the
//!   revert data in `error.data`, as tools expect to decode it.

use super::contracts::{uncharged, word, Call};
use super::error::invalid_params;
use super::outcomes::revert_reason;
use super::server::Rpc;
use super::types::{parse_address, parse_data};
use crate::query::At;
use crate::query::CallSite;
use atoll_primitives::{Address, ContractOutcome, ContractStatus};
use atoll_shard::execution::evm::CallRequest;
use jsonrpsee::core::{async_trait, RpcResult};
use jsonrpsee::proc_macros::rpc;
use jsonrpsee::types::ErrorObjectOwned;
use serde::Deserialize;

/// Ethereum's code for a call that reverted.
pub const EXECUTION_REVERTED: i32 = 3;
/// Ethereum's generic server error.
pub const SERVER_ERROR: i32 = -32000;

/// The Ethereum methods that read the chain.
#[rpc(server)]
pub trait EthApi {
    /// The chain id.
    #[method(name = "eth_chainId")]
    async fn chain_id(&self) -> RpcResult<String>;

    /// The chain id, in decimal.
    #[method(name = "net_version")]
    async fn net_version(&self) -> RpcResult<String>;

    /// `atoll/<version>`.
    #[method(name = "web3_clientVersion")]
    async fn client_version(&self) -> RpcResult<String>;

    /// The beacon height.
    #[method(name = "eth_blockNumber")]
    async fn block_number(&self) -> RpcResult<String>;

    /// An account's balance.
    #[method(name = "eth_getBalance")]
    async fn balance(&self, address: String, block: Option<String>) -> RpcResult<String>;

    /// An account's nonce; at `pending`, past its transactions in the
    /// mempool.
    #[method(name = "eth_getTransactionCount")]
    async fn transaction_count(&self, address: String, block: Option<String>) -> RpcResult<String>;

    /// The code at an address.
    #[method(name = "eth_getCode")]
    async fn code(&self, address: String, block: Option<String>) -> RpcResult<String>;

    /// One storage word of a contract.
    #[method(name = "eth_getStorageAt")]
    async fn storage_at(
        &self,
        address: String,
        slot: String,
        block: Option<String>,
    ) -> RpcResult<String>;

    /// Runs a call at the head without committing anything: its return data.
    #[method(name = "eth_call")]
    async fn call(&self, call: EthCall, block: Option<String>) -> RpcResult<String>;

    /// The least gas with which a call succeeds at the head.
    #[method(name = "eth_estimateGas")]
    async fn estimate_gas(&self, call: EthCall, block: Option<String>) -> RpcResult<String>;

    /// The price per gas a transaction pays: the base fee.
    #[method(name = "eth_gasPrice")]
    async fn gas_price(&self) -> RpcResult<String>;

    /// The tip over the base fee a transaction needs: none (every gas unit
    /// is burnt at the price paid).
    #[method(name = "eth_maxPriorityFeePerGas")]
    async fn max_priority_fee(&self) -> RpcResult<String>;
}

/// A call as Ethereum tools send it. Fields a call does not use (nonce,
/// prices, access list, type) are accepted and ignored.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EthCall {
    /// The caller (default: the zero address).
    pub from: Option<String>,
    /// The callee; absent: `data` is creation code.
    pub to: Option<String>,
    /// The gas limit (default: the most a transaction may use).
    pub gas: Option<String>,
    /// The value sent.
    pub value: Option<String>,
    /// Call data or creation code.
    pub data: Option<String>,
    /// The same as `data`, as newer tools name it.
    pub input: Option<String>,
}

#[async_trait]
impl EthApiServer for Rpc {
    async fn chain_id(&self) -> RpcResult<String> {
        self.observe("eth_chainId", Ok(quantity(self.node.chain_id().0)))
    }

    async fn net_version(&self) -> RpcResult<String> {
        self.observe("net_version", Ok(self.node.chain_id().0.to_string()))
    }

    async fn client_version(&self) -> RpcResult<String> {
        let version = format!("atoll/{}", env!("CARGO_PKG_VERSION"));
        self.observe("web3_clientVersion", Ok(version))
    }

    async fn block_number(&self) -> RpcResult<String> {
        self.observe("eth_blockNumber", Ok(quantity(self.node.beacon().height)))
    }

    async fn balance(&self, address: String, block: Option<String>) -> RpcResult<String> {
        let result = async {
            let address = parse_address("address", &address).map_err(invalid_params)?;
            let found = self.node.account(&address, self.state_at(block)?).await?;
            Ok(quantity(found.account.balance))
        }
        .await;
        self.observe("eth_getBalance", result)
    }

    async fn transaction_count(&self, address: String, block: Option<String>) -> RpcResult<String> {
        let result = async {
            let address = parse_address("address", &address).map_err(invalid_params)?;
            if block.as_deref() == Some("pending") {
                return Ok(quantity(self.node.pending_nonce(&address).await?));
            }
            let found = self.node.account(&address, self.state_at(block)?).await?;
            let nonce = if found.arriving {
                0
            } else {
                found.account.nonce
            };
            Ok(quantity(nonce))
        }
        .await;
        self.observe("eth_getTransactionCount", result)
    }

    async fn code(&self, address: String, block: Option<String>) -> RpcResult<String> {
        let result = (|| {
            let address = parse_address("address", &address).map_err(invalid_params)?;
            self.head_only(block)?;
            Ok(data(&self.node.code(&address)?.unwrap_or_default()))
        })();
        self.observe("eth_getCode", result)
    }

    async fn storage_at(
        &self,
        address: String,
        slot: String,
        block: Option<String>,
    ) -> RpcResult<String> {
        let result = (|| {
            let address = parse_address("address", &address).map_err(invalid_params)?;
            let slot = word(&slot).map_err(invalid_params)?;
            self.head_only(block)?;
            Ok(data(&self.node.storage_at(&address, slot)?))
        })();
        self.observe("eth_getStorageAt", result)
    }

    async fn call(&self, call: EthCall, block: Option<String>) -> RpcResult<String> {
        let result = async {
            let (site, request) = self.call_site(&call, block)?;
            match self.contracts.run_call(site, request).await? {
                Ok(outcome) => match outcome.status {
                    ContractStatus::Success => Ok(data(&outcome.output)),
                    ContractStatus::Revert => Err(reverted(&outcome.output)),
                    _ => Err(failed(&outcome)),
                },
                Err(reason) => Err(server_error(format!("invalid call: {reason}"))),
            }
        }
        .await;
        self.observe("eth_call", result)
    }

    async fn estimate_gas(&self, call: EthCall, block: Option<String>) -> RpcResult<String> {
        let result = async {
            let (site, request) = self.call_site(&call, block)?;
            match self.contracts.run_estimate(site, request).await? {
                Ok(gas) => Ok(quantity(gas)),
                Err(Ok(outcome)) if outcome.status == ContractStatus::Revert => {
                    Err(reverted(&outcome.output))
                }
                Err(Ok(outcome)) => Err(failed(&outcome)),
                Err(Err(reason)) => Err(server_error(format!("invalid call: {reason}"))),
            }
        }
        .await;
        self.observe("eth_estimateGas", result)
    }

    async fn gas_price(&self) -> RpcResult<String> {
        self.observe("eth_gasPrice", Ok(quantity(self.node.gas().base_fee)))
    }

    async fn max_priority_fee(&self) -> RpcResult<String> {
        self.observe("eth_maxPriorityFeePerGas", Ok(quantity(0u8)))
    }
}

impl Rpc {
    /// Where a state read at Ethereum block `tag` looks (see the module
    /// docs).
    fn state_at(&self, tag: Option<String>) -> RpcResult<At> {
        match tag.as_deref().unwrap_or("latest") {
            "latest" | "pending" => Ok(At::Latest),
            "safe" | "finalized" => Ok(At::Final),
            "earliest" => Err(not_kept("earliest")),
            number => {
                let wanted = parse_quantity("block", number)?;
                let current = u128::from(self.node.beacon().height);
                if wanted == current {
                    Ok(At::Latest)
                } else {
                    Err(not_kept(number))
                }
            }
        }
    }

    /// Where `call`, read at `block` (the head only), runs, and the
    /// request, checked as `atoll_call` checks it.
    fn call_site(
        &self,
        call: &EthCall,
        block: Option<String>,
    ) -> RpcResult<(CallSite, CallRequest)> {
        self.head_only(block)?;
        let address = |field, text: &str| parse_address(field, text).map_err(invalid_params);
        let gas = call
            .gas
            .as_deref()
            .map(|gas| {
                let gas = parse_quantity("gas", gas)?;
                u64::try_from(gas).map_err(|_| invalid_params(format!("gas: {gas} is too large")))
            })
            .transpose()?;
        self.contracts.checked(Call {
            from: match &call.from {
                Some(from) => address("from", from)?,
                None => Address([0; 20]),
            },
            to: call.to.as_deref().map(|to| address("to", to)).transpose()?,
            value: match &call.value {
                Some(value) => parse_quantity("value", value)?,
                None => 0,
            },
            input: match call.input.as_ref().or(call.data.as_ref()) {
                Some(bytes) => parse_data("data", bytes).map_err(invalid_params)?,
                None => Vec::new(),
            },
            gas,
        })
    }

    /// Refuses a read at any block but the head.
    fn head_only(&self, tag: Option<String>) -> RpcResult<()> {
        match self.state_at(tag)? {
            At::Latest => Ok(()),
            _ => Err(server_error(
                "code, storage and calls are read at the head only (\"latest\")",
            )),
        }
    }
}

/// `n` as an Ethereum quantity: `0x`, hex digits, no leading zeros.
fn quantity(n: impl Into<u128>) -> String {
    format!("0x{:x}", n.into())
}

/// `bytes` as Ethereum data.
fn data(bytes: &[u8]) -> String {
    format!("0x{}", hex::encode(bytes))
}

/// A quantity (`0x` hex; decimal is accepted too).
fn parse_quantity(field: &str, text: &str) -> RpcResult<u128> {
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
fn reverted(output: &[u8]) -> ErrorObjectOwned {
    let message = match revert_reason(output) {
        Some(reason) => format!("execution reverted: {reason}"),
        None => "execution reverted".into(),
    };
    ErrorObjectOwned::owned(EXECUTION_REVERTED, message, Some(data(output)))
}

/// Error -32000 for a call that halted, ran out of gas or reached another
/// shard, in the words `atoll_call` uses.
fn failed(outcome: &ContractOutcome) -> ErrorObjectOwned {
    let why = uncharged(outcome).message.unwrap_or_default();
    server_error(format!("the call failed: {why}"))
}

/// Ethereum's generic server error.
fn server_error(message: impl Into<String>) -> ErrorObjectOwned {
    ErrorObjectOwned::owned(SERVER_ERROR, message.into(), None::<()>)
}

/// A read at a block whose state this node no longer keeps.
fn not_kept(block: &str) -> ErrorObjectOwned {
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
