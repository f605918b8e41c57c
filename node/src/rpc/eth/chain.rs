//! Blocks, transactions and receipts in the shapes geth gives them.
//!
//! What an atoll block cannot have is filled as geth fills it for a
//! proof-of-stake block: no uncles, zero difficulty, nonce and mix hash,
//! the zero address as miner, empty extra data. The roots are atoll's own:
//! `transactionsRoot` is the Merkle root (RFC 9162, blake3) of the block's
//! transaction hashes, `receiptsRoot` that of its shard blocks' outcome
//! roots, `stateRoot` that of its shard blocks' state roots; no Ethereum
//! trie proves against them. A native transaction is shown as type 0 with
//! a zero signature (`v`, `r`, `s`: it is signed with ed25519, which these
//! fields cannot hold); a native transfer pays a flat fee, not gas, so its
//! `gas` and receipt `gasUsed` are 0 and its `gasPrice` is that fee.

use super::super::server::Rpc;
use super::super::types::hex_hash;
use super::format::{data, parse_hash, quantity};
use crate::query::{BlockLog, EthBlock, EthBlockTx, EthTxAt, ShownTx, TxAt};
use alloy_primitives::{Bloom, BloomInput, U256};
use atoll_primitives::ethereum::EthTxType;
use atoll_primitives::{merkle, Action, Address, ContractStatus, Hash, Log, TxOutcome};
use jsonrpsee::core::RpcResult;
use serde_json::{json, Map, Value};

/// Keccak-256 of the RLP of an empty list: the uncle hash of a block
/// without uncles.
const EMPTY_UNCLES: &str = "0x1dcc4de8dec75d7aab85b567b6ccd41ad312451b948a7413f0a142fd40d49347";

impl Rpc {
    /// `eth_getTransactionByHash`.
    pub(super) fn eth_transaction(&self, text: &str) -> RpcResult<Option<Value>> {
        let wanted = parse_hash("hash", text)?;
        Ok(match self.node.eth_transaction(&wanted)? {
            EthTxAt::Unknown => None,
            EthTxAt::Pending(shown) => Some(self.transaction_object(&shown, None)),
            EthTxAt::InBlock { block, index } => Some(
                self.transaction_object(&block.transactions[index].shown, Some((&block, index))),
            ),
        })
    }

    /// `eth_getTransactionReceipt`: `null` until the transaction is final;
    /// for a call to a contract on another shard, until the call ran there
    /// and its refund is final back on the sender's shard, and then with
    /// the call's status, gas used and logs.
    pub(super) fn eth_receipt(&self, text: &str) -> RpcResult<Option<Value>> {
        let wanted = parse_hash("hash", text)?;
        let EthTxAt::InBlock { block, index } = self.node.eth_transaction(&wanted)? else {
            return Ok(None);
        };
        let sent = matches!(&block.transactions[index].outcome,
            TxOutcome::Contract(run) if matches!(run.status, ContractStatus::Sent { .. }));
        if !sent {
            return Ok(Some(self.receipt_object(&block, index, None)));
        }
        let TxAt::Included(included) = self.node.transaction(&wanted)? else {
            return Ok(None);
        };
        let Some((record, _)) = included.settled_call() else {
            return Ok(None);
        };
        // The call's logs are in the block that recorded the shard block
        // that ran it.
        let ran_at = included
            .receipts
            .iter()
            .find(|r| r.call.is_some())
            .and_then(|r| Some((r.stored.receipt.destination, r.applied_height?)));
        let call_block = match ran_at {
            Some((shard, height)) => self.node.eth_block_recording(shard, height)?,
            None => None,
        };
        let logs: Vec<(BlockLog<'_>, &EthBlock)> = match (&call_block, ran_at) {
            (Some(call_block), Some((shard, height))) => {
                let position = call_block.calls.iter().position(|c| {
                    c.origin == wanted && c.shard == shard && c.shard_height == height
                });
                let first = call_block.transactions.len();
                call_block
                    .logs()
                    .filter(|l| Some(l.tx_index) == position.map(|p| first + p))
                    .map(|l| (l, &**call_block))
                    .collect()
            }
            _ => Vec::new(),
        };
        let shown = Shown {
            gas_used: record.outcome.gas_used,
            success: record.outcome.status == ContractStatus::Success,
            logs,
        };
        Ok(Some(self.receipt_object(&block, index, Some(shown))))
    }

    /// `eth_getBlockByNumber` and `eth_getBlockByHash`.
    pub(super) fn eth_block(&self, number: u64, full: bool) -> RpcResult<Option<Value>> {
        let Some(block) = self.node.eth_block(number)? else {
            return Ok(None);
        };
        let transactions: Vec<Value> = block
            .transactions
            .iter()
            .enumerate()
            .map(|(index, tx)| match full {
                true => self.transaction_object(&tx.shown, Some((&block, index))),
                false => Value::String(hex_hash(&tx.shown.tx.hash)),
            })
            .collect();
        let gas = self.node.gas();
        let shards = self.node.shard_count() as u64;
        let root = |pick: fn(&atoll_primitives::ShardBlockHeader) -> Hash| {
            hex_hash(&merkle::root(
                &block.headers.iter().map(pick).collect::<Vec<_>>(),
            ))
        };
        let tx_hashes: Vec<Hash> = block.transactions.iter().map(|t| t.shown.tx.hash).collect();
        let logs: Vec<&Log> = block.logs().map(|l| l.log).collect();
        Ok(Some(json!({
            "number": quantity(block.number),
            "hash": hex_hash(&block.hash),
            "parentHash": hex_hash(&block.parent_hash),
            "nonce": "0x0000000000000000",
            "sha3Uncles": EMPTY_UNCLES,
            "logsBloom": data(&bloom(logs.iter().copied())),
            "transactionsRoot": hex_hash(&merkle::root(&tx_hashes)),
            "stateRoot": root(|h| h.state_root),
            "receiptsRoot": root(|h| h.outcome_root),
            "miner": Address([0; 20]).to_string(),
            "difficulty": "0x0",
            "totalDifficulty": "0x0",
            "extraData": "0x",
            "size": quantity(block.size as u64),
            "gasLimit": quantity(gas.block_gas_limit.saturating_mul(shards)),
            "gasUsed": quantity(block.transactions.iter().map(EthBlockTx::gas_used).sum::<u64>()),
            "timestamp": quantity(block.timestamp_ms / 1000),
            "baseFeePerGas": quantity(gas.base_fee),
            "mixHash": hex_hash(&Hash::ZERO),
            "transactions": transactions,
            "uncles": [],
        })))
    }

    /// A transaction object; `at`: its block and position, once final.
    fn transaction_object(&self, shown: &ShownTx, at: Option<(&EthBlock, usize)>) -> Value {
        let tx = &shown.tx;
        let terms = &tx.terms;
        let (to, value, input, gas) = match &terms.action {
            Action::Transfer { to, amount } => (Some(*to), *amount, &[][..], 0),
            Action::Call {
                to,
                value,
                input,
                gas_limit,
            } => (Some(*to), *value, &input[..], *gas_limit),
            Action::Create {
                value,
                init_code,
                gas_limit,
            } => (None, *value, &init_code[..], *gas_limit),
        };
        let mut object = Map::new();
        let mut put = |key: &str, value: Value| {
            object.insert(key.to_string(), value);
        };
        put("hash", hex_hash(&tx.hash).into());
        put("from", tx.sender.to_string().into());
        put("to", to.map_or(Value::Null, |to| to.to_string().into()));
        put("nonce", quantity(terms.nonce).into());
        put("value", quantity(value).into());
        put("input", data(input).into());
        put("gas", quantity(gas).into());
        put("chainId", quantity(terms.chain_id.0).into());
        put(
            "gasPrice",
            quantity(terms.price(self.node.gas().base_fee)).into(),
        );
        match &shown.decoded {
            Some(decoded) => {
                put("type", quantity(decoded.kind.number()).into());
                put("r", format!("{:#x}", U256::from_be_bytes(decoded.r)).into());
                put("s", format!("{:#x}", U256::from_be_bytes(decoded.s)).into());
                let parity = u64::from(decoded.y_parity);
                let v = match decoded.kind {
                    EthTxType::Legacy => 35 + 2 * decoded.chain_id.0 + parity,
                    _ => parity,
                };
                put("v", quantity(v).into());
                if decoded.kind != EthTxType::Legacy {
                    put("yParity", quantity(parity).into());
                    let list: Vec<Value> = decoded
                        .access_list
                        .iter()
                        .map(|(account, slots)| {
                            json!({
                                "address": account.to_string(),
                                "storageKeys": slots.iter().map(|s| data(s)).collect::<Vec<_>>(),
                            })
                        })
                        .collect();
                    put("accessList", list.into());
                }
                if decoded.kind == EthTxType::Eip1559 {
                    put("maxFeePerGas", quantity(decoded.max_fee_per_gas).into());
                    put(
                        "maxPriorityFeePerGas",
                        quantity(decoded.max_priority_fee_per_gas).into(),
                    );
                }
            }
            None => {
                put("type", "0x0".into());
                for field in ["v", "r", "s"] {
                    put(field, "0x0".into());
                }
            }
        }
        match at {
            Some((block, index)) => {
                put("blockHash", hex_hash(&block.hash).into());
                put("blockNumber", quantity(block.number).into());
                put("transactionIndex", quantity(index as u64).into());
            }
            None => {
                for field in ["blockHash", "blockNumber", "transactionIndex"] {
                    put(field, Value::Null);
                }
            }
        }
        Value::Object(object)
    }

    /// The receipt of transaction `index` of `block`; `call`: what its
    /// call did on another shard (its gas, status and logs, which are in
    /// the block where it ran, are the receipt's).
    fn receipt_object(&self, block: &EthBlock, index: usize, call: Option<Shown<'_>>) -> Value {
        let entry = &block.transactions[index];
        let tx = &entry.shown.tx;
        let before = &block.transactions[..index];
        let shown = call.unwrap_or_else(|| Shown {
            gas_used: entry.gas_used(),
            success: entry.outcome.is_success(),
            logs: block
                .logs()
                .filter(|l| l.tx_index == index)
                .map(|l| (l, block))
                .collect(),
        });
        let cumulative = before.iter().map(EthBlockTx::gas_used).sum::<u64>() + shown.gas_used;
        let logs: Vec<Value> = shown.logs.iter().map(|(l, at)| log_object(l, at)).collect();
        let created = match &entry.outcome {
            TxOutcome::Contract(outcome) => outcome.created,
            _ => None,
        };
        let (gas_used, success) = (shown.gas_used, shown.success);
        let to = tx.terms.action.recipient();
        let kind = entry.shown.decoded.as_ref().map_or(0, |d| d.kind.number());
        json!({
            "transactionHash": hex_hash(&tx.hash),
            "transactionIndex": quantity(index as u64),
            "blockHash": hex_hash(&block.hash),
            "blockNumber": quantity(block.number),
            "from": tx.sender.to_string(),
            "to": to.map_or(Value::Null, |to| to.to_string().into()),
            "cumulativeGasUsed": quantity(cumulative),
            "gasUsed": quantity(gas_used),
            "effectiveGasPrice": quantity(tx.terms.price(self.node.gas().base_fee)),
            "contractAddress": created.map_or(Value::Null, |a| a.to_string().into()),
            "logs": logs,
            "logsBloom": data(&bloom(shown.logs.iter().map(|(l, _)| l.log))),
            "type": quantity(kind),
            "status": quantity(u8::from(success)),
        })
    }
}

/// What a receipt shows: gas used, status, and its logs with the block
/// each is in.
struct Shown<'a> {
    gas_used: u64,
    success: bool,
    logs: Vec<(BlockLog<'a>, &'a EthBlock)>,
}

/// A log of `block` as geth shows it (`logIndex` counts across the block).
pub(super) fn log_object(at: &BlockLog<'_>, block: &EthBlock) -> Value {
    let BlockLog {
        log,
        tx_hash,
        tx_index,
        log_index,
    } = *at;
    json!({
        "address": log.address.to_string(),
        "topics": log.topics.iter().map(|t| data(t)).collect::<Vec<_>>(),
        "data": data(&log.data),
        "blockNumber": quantity(block.number),
        "blockHash": hex_hash(&block.hash),
        "transactionHash": hex_hash(&tx_hash),
        "transactionIndex": quantity(tx_index as u64),
        "logIndex": quantity(log_index as u64),
        "removed": false,
    })
}

/// The bloom filter of `logs` (Ethereum's 2048 bits), by alloy.
pub(super) fn bloom<'a>(logs: impl Iterator<Item = &'a Log>) -> [u8; 256] {
    let mut bloom = Bloom::default();
    for log in logs {
        bloom.accrue(BloomInput::Raw(&log.address.0));
        for topic in &log.topics {
            bloom.accrue(BloomInput::Raw(topic));
        }
    }
    bloom.0 .0
}
