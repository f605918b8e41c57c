//! Building a shard block (header and body) from an executed batch.

use crate::execution::{BlockOutput, PreparedTx};
use atoll_primitives::{
    merkle, CallRecord, ChainId, Hash, ProvenReceipt, Receipt, ShardBlock, ShardBlockBody,
    ShardBlockHeader, ShardId, TxOutcome,
};
use std::collections::BTreeMap;

/// The block at height 0: no transactions, the genesis state root.
pub fn genesis_block(
    chain_id: ChainId,
    shard: ShardId,
    state_root: Hash,
    map_hash: Hash,
) -> ShardBlock {
    ShardBlock {
        header: ShardBlockHeader {
            chain_id,
            shard,
            height: 0,
            parent: Hash::ZERO,
            timestamp_ms: 0,
            epoch: 0,
            map_hash,
            state_root,
            tx_root: merkle::empty_root(),
            outcome_root: merkle::empty_root(),
            receipt_roots: Vec::new(),
            incoming_root: merkle::empty_root(),
            inbox_cursors: Vec::new(),
            congested: false,
            tx_count: 0,
            burnt_fees: 0,
        },
        body: ShardBlockBody::default(),
    }
}

/// The Merkle root over the outcomes of `txs`, in order, then over what
/// the cross-shard `calls` the block ran did, in order.
pub fn outcome_root(txs: &[PreparedTx], outcomes: &[TxOutcome], calls: &[CallRecord]) -> Hash {
    let leaves: Vec<Hash> = txs
        .iter()
        .zip(outcomes)
        .map(|(tx, outcome)| outcome.hash(&tx.hash))
        .chain(calls.iter().map(CallRecord::hash))
        .collect();
    merkle::root(&leaves)
}

/// For each destination shard (sorted), the Merkle root over the hashes of
/// the receipts sent to it, in order.
pub fn receipt_roots(receipts: &[Receipt]) -> Vec<(ShardId, Hash)> {
    let mut by_destination: BTreeMap<ShardId, Vec<Hash>> = BTreeMap::new();
    for receipt in receipts {
        by_destination
            .entry(receipt.destination)
            .or_default()
            .push(receipt.hash());
    }
    by_destination
        .into_iter()
        .map(|(shard, hashes)| (shard, merkle::root(&hashes)))
        .collect()
}

/// What a block says about receipts from other shards.
#[derive(Clone, Debug, Default)]
pub struct Inbound {
    /// The receipts it credits, in order.
    pub incoming: Vec<ProvenReceipt>,
    /// Where they leave the inbox (next sequence per source).
    pub inbox_cursors: Vec<(ShardId, u64)>,
    /// Whether the shard's backlog of incoming receipts passed its bound.
    pub congested: bool,
    /// The epoch whose shard map the block executed under.
    pub epoch: u64,
    /// That map's hash.
    pub map_hash: Hash,
}

/// The child of `parent` taking in `inbound` and holding `txs`, whose
/// execution gave `output` and left the state with root `state_root`.
pub fn seal_block(
    parent: &ShardBlockHeader,
    inbound: Inbound,
    txs: &[PreparedTx],
    output: &BlockOutput,
    state_root: Hash,
    timestamp_ms: u64,
) -> ShardBlock {
    let Inbound {
        incoming,
        inbox_cursors,
        congested,
        epoch,
        map_hash,
    } = inbound;
    let body = ShardBlockBody {
        incoming,
        transactions: txs.iter().map(|tx| tx.signed.clone()).collect(),
    };
    let tx_hashes: Vec<Hash> = txs.iter().map(|tx| tx.hash).collect();
    let header = ShardBlockHeader {
        chain_id: parent.chain_id,
        shard: parent.shard,
        height: parent.height + 1,
        parent: parent.hash(),
        timestamp_ms,
        epoch,
        map_hash,
        state_root,
        tx_root: merkle::root(&tx_hashes),
        outcome_root: outcome_root(txs, &output.outcomes, &output.calls),
        receipt_roots: receipt_roots(&output.receipts),
        incoming_root: body.incoming_root(),
        inbox_cursors,
        congested,
        tx_count: u32::try_from(txs.len()).expect("a block holds far fewer than 2^32 transactions"),
        burnt_fees: output.burnt_fees,
    };
    ShardBlock { header, body }
}
