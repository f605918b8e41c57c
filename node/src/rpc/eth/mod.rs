//! The Ethereum JSON-RPC methods (`eth_`, `net_`, `web3_`), on the same
//! port as `atoll_`: Ethereum tools (ethers, viem, web3.py) read balances,
//! nonces, code and storage, run calls, estimate gas, send signed
//! transactions, wait for their receipts and read blocks and logs without
//! learning anything new. One file per family: `format` (quantities, data,
//! errors), `chain` (blocks, transactions, receipts), `logs` (`eth_getLogs`
//! and `eth_feeHistory`), `send` (`eth_sendRawTransaction`), `subscribe`
//! (`eth_subscribe`), `unserved` (the methods that do not apply, answered
//! -32601 with the reason).
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
//! - An Ethereum block is a beacon height (`crate::query::EthBlock`): its
//!   transactions are final, so a receipt exists once its transaction is
//!   final, and `null` before.

mod chain;
mod format;
mod logs;
mod send;
mod subscribe;
pub mod unserved;

use format::{data, failed, not_kept, parse_quantity, quantity, reverted, server_error};
pub use format::{EXECUTION_REVERTED, LIMIT_EXCEEDED, SERVER_ERROR};
pub use logs::{LogFilter, MAX_LOGS, MAX_LOG_BLOCKS};

use super::contracts::{word, Call};
use super::error::invalid_params;
use super::server::Rpc;
use super::types::{parse_address, parse_data};
use crate::query::At;
use crate::query::CallSite;
use atoll_primitives::{Address, ContractStatus};
use atoll_shard::execution::evm::CallRequest;
use jsonrpsee::core::{async_trait, RpcResult, SubscriptionResult};
use jsonrpsee::proc_macros::rpc;
use jsonrpsee::PendingSubscriptionSink;
use serde::Deserialize;
use serde_json::Value;

/// The Ethereum methods.
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

    /// Admits an Ethereum-signed transaction (raw EIP-2718 bytes); answers
    /// its hash.
    #[method(name = "eth_sendRawTransaction")]
    async fn send_raw_transaction(&self, raw: String) -> RpcResult<String>;

    /// A transaction by hash (`null`: unknown).
    #[method(name = "eth_getTransactionByHash")]
    async fn transaction_by_hash(&self, hash: String) -> RpcResult<Option<Value>>;

    /// A transaction's receipt (`null`: unknown, or not final yet).
    #[method(name = "eth_getTransactionReceipt")]
    async fn transaction_receipt(&self, hash: String) -> RpcResult<Option<Value>>;

    /// A block by number or tag, with its transactions' hashes or, with
    /// `full`, the transactions.
    #[method(name = "eth_getBlockByNumber")]
    async fn block_by_number(&self, block: String, full: Option<bool>) -> RpcResult<Option<Value>>;

    /// A block by hash.
    #[method(name = "eth_getBlockByHash")]
    async fn block_by_hash(&self, hash: String, full: Option<bool>) -> RpcResult<Option<Value>>;

    /// The logs that match a filter, within bounded blocks and results.
    #[method(name = "eth_getLogs")]
    async fn logs(&self, filter: LogFilter) -> RpcResult<Vec<Value>>;

    /// Base fees, gas used ratios and tips of recent blocks.
    #[method(name = "eth_feeHistory")]
    async fn fee_history(
        &self,
        count: Value,
        newest: String,
        percentiles: Option<Vec<f64>>,
    ) -> RpcResult<Value>;

    /// Whether the node is syncing: a node answers once it serves its
    /// shards, so never.
    #[method(name = "eth_syncing")]
    async fn syncing(&self) -> RpcResult<bool>;

    /// The accounts the node signs for: none (it holds no client keys).
    #[method(name = "eth_accounts")]
    async fn accounts(&self) -> RpcResult<Vec<String>>;

    /// A stream of new blocks' headers (`newHeads`) or of the logs of new
    /// blocks that match a filter (`logs`), over WebSocket.
    #[subscription(name = "eth_subscribe" => "eth_subscription", unsubscribe = "eth_unsubscribe", item = Value)]
    async fn subscribe(&self, kind: String, filter: Option<LogFilter>) -> SubscriptionResult;
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
        let result = self.node.eth_head().map(quantity).map_err(Into::into);
        self.observe("eth_blockNumber", result)
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

    async fn send_raw_transaction(&self, raw: String) -> RpcResult<String> {
        let result = self.send_raw(&raw).await;
        self.observe("eth_sendRawTransaction", result)
    }

    async fn transaction_by_hash(&self, hash: String) -> RpcResult<Option<Value>> {
        let result = self.eth_transaction(&hash);
        self.observe("eth_getTransactionByHash", result)
    }

    async fn transaction_receipt(&self, hash: String) -> RpcResult<Option<Value>> {
        let result = self.eth_receipt(&hash);
        self.observe("eth_getTransactionReceipt", result)
    }

    async fn block_by_number(&self, block: String, full: Option<bool>) -> RpcResult<Option<Value>> {
        let result = self
            .block_number_of(&block)
            .and_then(|number| self.eth_block(number, full.unwrap_or(false)));
        self.observe("eth_getBlockByNumber", result)
    }

    async fn block_by_hash(&self, hash: String, full: Option<bool>) -> RpcResult<Option<Value>> {
        let result = (|| {
            let hash = format::parse_hash("hash", &hash)?;
            match self.node.eth_block_number(&hash)? {
                Some(number) => self.eth_block(number, full.unwrap_or(false)),
                None => Ok(None),
            }
        })();
        self.observe("eth_getBlockByHash", result)
    }

    async fn logs(&self, filter: LogFilter) -> RpcResult<Vec<Value>> {
        let result = self.eth_logs(&filter);
        self.observe("eth_getLogs", result)
    }

    async fn fee_history(
        &self,
        count: Value,
        newest: String,
        percentiles: Option<Vec<f64>>,
    ) -> RpcResult<Value> {
        let result = self.eth_fee_history(&count, &newest, percentiles.as_deref());
        self.observe("eth_feeHistory", result)
    }

    async fn syncing(&self) -> RpcResult<bool> {
        self.observe("eth_syncing", Ok(false))
    }

    async fn accounts(&self) -> RpcResult<Vec<String>> {
        self.observe("eth_accounts", Ok(Vec::new()))
    }

    async fn subscribe(
        &self,
        pending: PendingSubscriptionSink,
        kind: String,
        filter: Option<LogFilter>,
    ) -> SubscriptionResult {
        self.eth_subscribe(pending, kind, filter).await
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
                let current = u128::from(self.node.eth_head()?);
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

    /// The block number a tag or number names (`pending` and `latest`:
    /// the newest; `safe` and `finalized` too, every block being final).
    fn block_number_of(&self, tag: &str) -> RpcResult<u64> {
        match tag {
            "latest" | "pending" | "safe" | "finalized" => Ok(self.node.eth_head()?),
            "earliest" => Ok(0),
            number => u64::try_from(parse_quantity("block", number)?)
                .map_err(|_| invalid_params(format!("block: {number} is too large"))),
        }
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
