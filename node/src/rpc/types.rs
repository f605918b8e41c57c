//! The JSON shapes of the RPC API. 128-bit amounts travel as decimal
//! strings (JSON numbers cannot carry them exactly); hashes, keys and
//! addresses as `0x`-prefixed hex.

use atoll_primitives::{Address, Hash, ShardBlockHeader};
use serde::{Deserialize, Serialize};
use std::fmt;

/// `0x` and the 64 hex digits of `hash`.
pub fn hex_hash(hash: &Hash) -> String {
    // Every submission answers with one: const-hex, in one allocation.
    const_hex::encode_prefixed(hash.as_bytes())
}

/// Parses a 32-byte hash, with or without `0x`.
pub fn parse_hash(text: &str) -> Result<Hash, String> {
    let digits = text.strip_prefix("0x").unwrap_or(text);
    let mut bytes = [0u8; 32];
    const_hex::decode_to_slice(digits, &mut bytes)
        .map_err(|e| format!("{text:?} is not a 32-byte hex hash: {e}"))?;
    Ok(Hash(bytes))
}

/// A 20-byte address named `field` (`0x` optional).
pub fn parse_address(field: &str, text: &str) -> Result<Address, String> {
    text.parse().map_err(|e: String| format!("{field}: {e}"))
}

/// Bytes named `field`, as hex (`0x` optional).
pub fn parse_data(field: &str, text: &str) -> Result<Vec<u8>, String> {
    hex::decode(text.strip_prefix("0x").unwrap_or(text)).map_err(|e| format!("{field}: {e}"))
}

/// How long `atoll_sendTransaction` waits before it answers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WaitUntil {
    /// Answer once the transaction is admitted to the mempool.
    #[default]
    None,
    /// Answer once a committed block includes it.
    Included,
    /// Answer once that block is final.
    Final,
}

/// A block or state height: `"latest"`, `"final"`, a height, or (for
/// blocks) a `0x`-prefixed block hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockRef {
    /// The newest committed block.
    Latest,
    /// The newest final block.
    Final,
    /// The block at this height.
    Height(u64),
    /// The block with this hash.
    Hash([u8; 32]),
}

impl Serialize for BlockRef {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            BlockRef::Latest => s.serialize_str("latest"),
            BlockRef::Final => s.serialize_str("final"),
            BlockRef::Height(h) => s.serialize_u64(*h),
            BlockRef::Hash(h) => s.serialize_str(&format!("0x{}", hex::encode(h))),
        }
    }
}

impl<'de> Deserialize<'de> for BlockRef {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<BlockRef, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = BlockRef;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("\"latest\", \"final\", a height, or a 0x-prefixed block hash")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<BlockRef, E> {
                Ok(BlockRef::Height(v))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<BlockRef, E> {
                match v {
                    "latest" => Ok(BlockRef::Latest),
                    "final" => Ok(BlockRef::Final),
                    _ => {
                        if let Ok(height) = v.parse::<u64>() {
                            return Ok(BlockRef::Height(height));
                        }
                        let digits = v.strip_prefix("0x").ok_or_else(|| {
                            E::custom(format!("{v:?} is not \"latest\", \"final\", a height or a 0x-prefixed hash"))
                        })?;
                        let mut hash = [0u8; 32];
                        const_hex::decode_to_slice(digits, &mut hash).map_err(|e| {
                            E::custom(format!("{v:?} is not a 32-byte hex hash: {e}"))
                        })?;
                        Ok(BlockRef::Hash(hash))
                    }
                }
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// Where a transaction is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TxState {
    /// The node does not know it.
    Unknown,
    /// In the mempool.
    Pending,
    /// In a committed block that is not final yet.
    Included,
    /// In a final block.
    Final,
}

/// What a transaction did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    /// Whether it succeeded.
    pub success: bool,
    /// The failure's kind in snake case (`insufficient_balance`, …), absent on success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
    /// A readable description of the failure, absent on success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// What its code did, for a transaction that ran code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contract: Option<ContractResult>,
}

/// What a transaction's code did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContractResult {
    /// `success`, `revert`, `out_of_gas`, `halted` or `other_shard`.
    pub status: String,
    /// Gas used (what the sender paid for, at its price).
    pub gas_used: u64,
    /// The logs emitted (none unless it succeeded).
    pub logs: Vec<LogEntry>,
    /// Returned data, or revert data, as 0x-prefixed hex.
    pub output: String,
    /// The contract created, if it created one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
}

/// An event a contract emitted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntry {
    /// The contract that emitted it.
    pub address: String,
    /// Its topics, as 0x-prefixed hex.
    pub topics: Vec<String>,
    /// Its data, as 0x-prefixed hex.
    pub data: String,
}

/// Where a cross-shard receipt is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReceiptState {
    /// Emitted by its source shard, not yet credited.
    InFlight,
    /// Credited by a destination block that is not final yet.
    Applied,
    /// Credited by a final destination block.
    Final,
}

/// A cross-shard receipt a transaction emitted (`atoll_getTransactionStatus`),
/// or in full (`atoll_getReceipt`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiptInfo {
    /// `"<source>:<destination>:<sequence>"`, for `atoll_getReceipt`.
    pub id: String,
    /// The shard that emitted it.
    pub source: u16,
    /// The shard it credits.
    pub destination: u16,
    /// Its sequence number on the (source, destination) pair.
    pub sequence: u64,
    /// Where it is.
    pub status: ReceiptState,
    /// Height of the destination block that credited it (or forwarded it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_height: Option<u64>,
    /// When the account had moved to another shard: the id of the receipt
    /// the destination sent it on with, instead of crediting it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forwarded_to: Option<String>,
    /// Hash of the transaction that emitted it (`atoll_getReceipt` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
    /// Height of the source block that emitted it (`atoll_getReceipt` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_height: Option<u64>,
    /// `"transfer"` (the credit of a cross-shard transfer), `"move"` (the
    /// state of an account that moved shard), `"placement"` (a contract
    /// created on another shard than its address range's, sent to that
    /// range's shard; `to` is the contract), `"call"` (a cross-shard
    /// contract call; `to` is the contract) or `"refund"` (what returns to
    /// a call's caller) (`atoll_getReceipt` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The credited (or moving) address (`atoll_getReceipt` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// The amount credited (for a move: the balance it carries; for a
    /// call: its value plus the gas its caller bought), decimal
    /// (`atoll_getReceipt` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<String>,
    /// A move's nonce (`atoll_getReceipt` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<u64>,
    /// For a cross-shard call its destination ran: what the call did there
    /// (status, gas used, logs, output).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call: Option<Outcome>,
}

/// The answer of `atoll_getTransactionStatus`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxStatus {
    /// The transaction hash.
    pub hash: String,
    /// Where it is.
    pub status: TxState,
    /// The shard of its sender (absent when unknown).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<u16>,
    /// Height of the including block (included and final only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<u64>,
    /// Position in that block.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<u32>,
    /// Hash of that block.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block_hash: Option<String>,
    /// What it did (included and final only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
    /// Receipts it emitted to other shards.
    #[serde(default)]
    pub receipts: Vec<ReceiptInfo>,
}

/// The answer of `atoll_getAccount`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountInfo {
    /// The address.
    pub address: String,
    /// Balance in the smallest unit, as a decimal string.
    pub balance: String,
    /// The nonce the account's next transaction must carry.
    pub nonce: u64,
    /// The shard that holds the account.
    pub shard: u16,
    /// Whether the account moved to this shard and its state has not
    /// arrived yet: `nonce` then reads 0 and its transactions wait.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub arriving: bool,
    /// The height the state was read at.
    pub height: u64,
    /// Whether that height is final.
    #[serde(rename = "final")]
    pub is_final: bool,
}

/// A block header as the API shows it (also the `newHeads` notification).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeadInfo {
    /// The shard.
    pub shard: u16,
    /// The height.
    pub height: u64,
    /// The block hash.
    pub hash: String,
    /// The parent's hash.
    pub parent: String,
    /// Milliseconds since the Unix epoch, set by the producer.
    pub timestamp_ms: u64,
    /// The beacon epoch whose shard map the block executed under.
    #[serde(default)]
    pub epoch: u64,
    /// Whether the shard's backlog of incoming receipts had passed its
    /// bound: other shards hold transfers to it back until it clears.
    #[serde(default)]
    pub congested: bool,
    /// The state root after the block.
    pub state_root: String,
    /// Merkle root of the transactions.
    pub tx_root: String,
    /// Merkle root of the outcomes.
    pub outcome_root: String,
    /// Number of transactions.
    pub tx_count: u32,
    /// Fees burnt, as a decimal string.
    pub burnt_fees: String,
    /// Whether the block is final.
    #[serde(rename = "final")]
    pub is_final: bool,
}

impl HeadInfo {
    /// The API's view of `header`.
    pub fn of(header: &ShardBlockHeader, is_final: bool) -> HeadInfo {
        HeadInfo {
            shard: header.shard.0,
            height: header.height,
            hash: hex_hash(&header.hash()),
            parent: hex_hash(&header.parent),
            timestamp_ms: header.timestamp_ms,
            epoch: header.epoch,
            congested: header.congested,
            state_root: hex_hash(&header.state_root),
            tx_root: hex_hash(&header.tx_root),
            outcome_root: hex_hash(&header.outcome_root),
            tx_count: header.tx_count,
            burnt_fees: header.burnt_fees.to_string(),
            is_final,
        }
    }
}

/// A receipt from another shard that a block credited.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncomingInfo {
    /// The shard that sent it.
    pub source: u16,
    /// Its sequence number from that shard.
    pub sequence: u64,
    /// The hash of the transaction that emitted it.
    pub origin: String,
}

/// The answer of `atoll_getBlock`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockInfo {
    /// The header.
    #[serde(flatten)]
    pub header: HeadInfo,
    /// The transaction hashes, in block order.
    pub transactions: Vec<String>,
    /// The receipts from other shards it credited, in order.
    #[serde(default)]
    pub incoming: Vec<IncomingInfo>,
}

/// One shard's heights in `atoll_status`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardStatus {
    /// The shard.
    pub shard: u16,
    /// Height of the newest committed block.
    pub head_height: u64,
    /// Its hash.
    pub head_hash: String,
    /// Height of the newest final block.
    pub final_height: u64,
    /// Whether this node stores and executes the shard now (with shard
    /// committees, only its committees' shards; heights of another shard
    /// are where this node last executed it).
    pub tracked: bool,
    /// Height of the newest header of the shard the beacon recorded (with
    /// several validators: certified by the shard's committee). Receipts
    /// of later blocks wait for it; a gap to `final_height` that keeps
    /// growing means the committee does not certify.
    #[serde(default)]
    pub recorded_height: u64,
}

/// A validator in `atoll_status`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidatorInfo {
    /// Its public key.
    pub public_key: String,
    /// Its stake.
    pub stake: u64,
}

/// The mempool in `atoll_status`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MempoolInfo {
    /// Transactions held.
    pub transactions: usize,
    /// Bytes held.
    pub bytes: usize,
}

/// The answer of `atoll_status`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// The chain id.
    pub chain_id: u64,
    /// The node's version.
    pub version: String,
    /// How blocks become final on this node.
    pub finality: String,
    /// Per-shard heights.
    pub shards: Vec<ShardStatus>,
    /// The validator set.
    pub validators: Vec<ValidatorInfo>,
    /// The mempool.
    pub mempool: MempoolInfo,
    /// The beacon chain.
    pub beacon: BeaconStatus,
    /// Consensus, when the genesis lists several validators.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consensus: Option<ConsensusStatusInfo>,
}

/// Consensus in `atoll_status`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsensusStatusInfo {
    /// The protocol.
    pub protocol: String,
    /// This node's index among the validators (absent: it only follows).
    pub validator_index: Option<u16>,
    /// This node's libp2p peer id.
    pub peer_id: String,
    /// Connected peers.
    pub peers: u64,
    /// The height being decided (one round per height).
    pub height: u64,
    /// The leader of that height: its index.
    pub leader: u64,
    /// The leader's public key.
    pub leader_key: String,
    /// The newest final consensus height.
    pub final_height: u64,
    /// Peers banned for sending invalid data.
    pub banned_peers: usize,
    /// Peers the operator blocks (`atoll_setBlockedPeers`).
    pub blocked_peers: Vec<String>,
    /// Equivocations seen since the node started (a validator signed two
    /// conflicting votes or proposals; logged with the offender).
    pub equivocations: u64,
}

/// The beacon in `atoll_status`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BeaconStatus {
    /// Height of the newest beacon block.
    pub height: u64,
    /// The current epoch (that of the next beacon block).
    pub epoch: u64,
    /// Beacon blocks per epoch.
    pub epoch_length: u64,
    /// Version of the shard map in force.
    pub map_version: u64,
    /// Accounts the map places outside their address range's shard.
    pub moved_accounts: usize,
}

/// The answer of `atoll_moveAccount`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MoveInfo {
    /// The account.
    pub address: String,
    /// Its shard now.
    pub from: u16,
    /// Its shard from `effective_epoch` on.
    pub to: u16,
    /// The current epoch.
    pub current_epoch: u64,
    /// The epoch from which the account is on `to`: its state moves in
    /// `from`'s first block of that epoch.
    pub effective_epoch: u64,
    /// The beacon height at which that epoch starts.
    pub effective_beacon_height: u64,
    /// Version of the shard map that holds the move.
    pub map_version: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_refs_parse_every_documented_form() {
        let parse = |s: &str| serde_json::from_str::<BlockRef>(s);
        assert_eq!(parse("\"latest\"").ok(), Some(BlockRef::Latest));
        assert_eq!(parse("\"final\"").ok(), Some(BlockRef::Final));
        assert_eq!(parse("7").ok(), Some(BlockRef::Height(7)));
        assert_eq!(parse("\"7\"").ok(), Some(BlockRef::Height(7)));
        let hash = format!("\"0x{}\"", "ab".repeat(32));
        assert_eq!(parse(&hash).ok(), Some(BlockRef::Hash([0xab; 32])));
        for bad in ["\"soon\"", "-1", "\"0x12\"", "1.5", "null"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        for r in [
            BlockRef::Latest,
            BlockRef::Final,
            BlockRef::Height(3),
            BlockRef::Hash([1; 32]),
        ] {
            let text = serde_json::to_string(&r).expect("serialises");
            assert_eq!(parse(&text).ok(), Some(r));
        }
    }
}

/// A read-only call or creation (`atoll_call`, `atoll_estimateGas`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallArgs {
    /// The caller (default: the zero address).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// The callee; absent: `data` is creation code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// Value sent, in the smallest unit, as a decimal string (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Call data or creation code, as hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    /// Gas it may use (default and most: the transaction gas cap).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gas: Option<u64>,
}
