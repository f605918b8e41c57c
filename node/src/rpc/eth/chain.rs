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
use super::format::{address, data, hash, parse_hash, quantity};
use crate::query::{EthBlock, EthBlockTx, EthTxAt, ShownTx};
use atoll_primitives::ethereum::EthTxType;
use atoll_primitives::{merkle, Action, Address, Hash, Log, TxOutcome};
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

    /// `eth_getTransactionReceipt`: `null` until the transaction is final.
    pub(super) fn eth_receipt(&self, text: &str) -> RpcResult<Option<Value>> {
        let wanted = parse_hash("hash", text)?;
        let EthTxAt::InBlock { block, index } = self.node.eth_transaction(&wanted)? else {
            return Ok(None);
        };
        Ok(Some(self.receipt_object(&block, index)))
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
                false => Value::String(hash(&tx.shown.tx.hash)),
            })
            .collect();
        let gas = self.node.gas();
        let shards = self.node.shard_count() as u64;
        let root = |pick: fn(&atoll_primitives::ShardBlockHeader) -> Hash| {
            hash(&merkle::root(
                &block.headers.iter().map(pick).collect::<Vec<_>>(),
            ))
        };
        let tx_hashes: Vec<Hash> = block.transactions.iter().map(|t| t.shown.tx.hash).collect();
        let logs: Vec<&Log> = block.transactions.iter().flat_map(tx_logs).collect();
        Ok(Some(json!({
            "number": quantity(block.number),
            "hash": hash(&block.hash),
            "parentHash": hash(&block.parent_hash),
            "nonce": "0x0000000000000000",
            "sha3Uncles": EMPTY_UNCLES,
            "logsBloom": data(&bloom(logs.iter().copied())),
            "transactionsRoot": hash(&merkle::root(&tx_hashes)),
            "stateRoot": root(|h| h.state_root),
            "receiptsRoot": root(|h| h.outcome_root),
            "miner": address(&Address([0; 20])),
            "difficulty": "0x0",
            "totalDifficulty": "0x0",
            "extraData": "0x",
            "size": quantity(block.size as u64),
            "gasLimit": quantity(gas.block_gas_limit.saturating_mul(shards)),
            "gasUsed": quantity(block.transactions.iter().map(EthBlockTx::gas_used).sum::<u64>()),
            "timestamp": quantity(block.timestamp_ms / 1000),
            "baseFeePerGas": quantity(gas.base_fee),
            "mixHash": hash(&Hash::ZERO),
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
        put("hash", hash(&tx.hash).into());
        put("from", address(&tx.sender).into());
        put("to", to.map_or(Value::Null, |to| address(&to).into()));
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
                let kind = match decoded.kind {
                    EthTxType::Legacy => 0u8,
                    EthTxType::Eip2930 => 1,
                    EthTxType::Eip1559 => 2,
                };
                put("type", quantity(kind).into());
                put("r", quantity_of(&decoded.r).into());
                put("s", quantity_of(&decoded.s).into());
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
                                "address": address(account),
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
                put("blockHash", hash(&block.hash).into());
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

    /// The receipt of transaction `index` of `block`.
    fn receipt_object(&self, block: &EthBlock, index: usize) -> Value {
        let entry = &block.transactions[index];
        let tx = &entry.shown.tx;
        let before = &block.transactions[..index];
        let cumulative: u64 = before.iter().chain([entry]).map(EthBlockTx::gas_used).sum();
        let first_log = before.iter().map(EthBlockTx::log_count).sum::<usize>();
        let logs: Vec<Value> = tx_logs(entry)
            .enumerate()
            .map(|(i, log)| log_object(log, block, index, first_log + i))
            .collect();
        let created = match &entry.outcome {
            TxOutcome::Contract(outcome) => outcome.created,
            _ => None,
        };
        let to = match &tx.terms.action {
            Action::Transfer { to, .. } | Action::Call { to, .. } => Some(*to),
            Action::Create { .. } => None,
        };
        let kind = entry.shown.decoded.as_ref().map_or(0u8, |d| match d.kind {
            EthTxType::Legacy => 0,
            EthTxType::Eip2930 => 1,
            EthTxType::Eip1559 => 2,
        });
        json!({
            "transactionHash": hash(&tx.hash),
            "transactionIndex": quantity(index as u64),
            "blockHash": hash(&block.hash),
            "blockNumber": quantity(block.number),
            "from": address(&tx.sender),
            "to": to.map_or(Value::Null, |to| address(&to).into()),
            "cumulativeGasUsed": quantity(cumulative),
            "gasUsed": quantity(entry.gas_used()),
            "effectiveGasPrice": quantity(tx.terms.price(self.node.gas().base_fee)),
            "contractAddress": created.map_or(Value::Null, |a| address(&a).into()),
            "logs": logs,
            "logsBloom": data(&bloom(tx_logs(entry))),
            "type": quantity(kind),
            "status": quantity(u8::from(entry.outcome.is_success())),
        })
    }
}

/// The logs a transaction emitted.
pub(super) fn tx_logs(tx: &EthBlockTx) -> impl Iterator<Item = &Log> {
    let logs = match &tx.outcome {
        TxOutcome::Contract(outcome) => &outcome.logs[..],
        TxOutcome::Success | TxOutcome::Failure(_) => &[],
    };
    logs.iter()
}

/// A log as geth shows it: `log_index` counts across the whole block.
pub(super) fn log_object(log: &Log, block: &EthBlock, tx_index: usize, log_index: usize) -> Value {
    json!({
        "address": address(&log.address),
        "topics": log.topics.iter().map(|t| data(t)).collect::<Vec<_>>(),
        "data": data(&log.data),
        "blockNumber": quantity(block.number),
        "blockHash": hash(&block.hash),
        "transactionHash": hash(&block.transactions[tx_index].shown.tx.hash),
        "transactionIndex": quantity(tx_index as u64),
        "logIndex": quantity(log_index as u64),
        "removed": false,
    })
}

/// A 32-byte big-endian number as a quantity.
fn quantity_of(word: &[u8; 32]) -> String {
    let digits = hex::encode(word);
    let trimmed = digits.trim_start_matches('0');
    format!("0x{}", if trimmed.is_empty() { "0" } else { trimmed })
}

/// The 2048-bit bloom filter of `logs` (Ethereum's: three bits per address
/// and topic, from its keccak-256).
pub(super) fn bloom<'a>(logs: impl Iterator<Item = &'a Log>) -> [u8; 256] {
    let mut bits = [0u8; 256];
    let mut accrue = |input: &[u8]| {
        let digest = alloy_primitives::keccak256(input);
        for pair in digest[..6].chunks(2) {
            let bit = (usize::from(pair[0]) << 8 | usize::from(pair[1])) & 2047;
            bits[255 - bit / 8] |= 1 << (bit % 8);
        }
    };
    for log in logs {
        accrue(&log.address.0);
        for topic in &log.topics {
            accrue(topic);
        }
    }
    bits
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bloom_matches_alloys() {
        let log = Log {
            address: Address([0x11; 20]),
            topics: vec![[0x22; 32], [0x33; 32]],
            data: vec![1, 2, 3],
        };
        let mut expected = alloy_primitives::Bloom::default();
        expected.accrue(alloy_primitives::BloomInput::Raw(&log.address.0));
        for topic in &log.topics {
            expected.accrue(alloy_primitives::BloomInput::Raw(topic));
        }
        assert_eq!(bloom([&log].into_iter()), expected.0 .0);
        assert_eq!(bloom(std::iter::empty()), [0; 256]);
    }

    #[test]
    fn words_print_as_quantities() {
        let mut word = [0u8; 32];
        assert_eq!(quantity_of(&word), "0x0");
        word[31] = 0x1b;
        word[30] = 0x02;
        assert_eq!(quantity_of(&word), "0x21b");
    }
}
