//! The chain as Ethereum tools see it: blocks, and where a transaction is
//! in one.
//!
//! An Ethereum block is one beacon height: block `n` is beacon block `n`,
//! its hash the beacon block's hash and its parent the beacon block's
//! parent (block 0 is the empty block before the first beacon block, with
//! the zero hash, which is beacon block 1's parent). Its transactions are
//! those of the shard blocks beacon block `n` recorded, in the order the
//! beacon lists them (by shard, then height), each block's in its own
//! order. Every such shard block is final, so a transaction is in an
//! Ethereum block exactly when it is final, its receipt's `blockNumber`
//! is never above `eth_blockNumber`, and confirmations count beacon
//! blocks. A validator lists only the transactions of the shards it
//! tracks, and of the shard blocks it holds (not those below a state
//! snapshot it synced).
//!
//! A cross-shard call runs in a later block than its transaction, on the
//! contract's shard: its logs (and a callback's) belong to the Ethereum
//! block that recorded the shard block that ran it, after the logs of
//! that block's own transactions, with the calling transaction's hash
//! ([`EthBlock::logs`]).

use super::error::QueryError;
use super::view::NodeView;
use crate::service::common::keeper::stored_block;
use atoll_primitives::ethereum::EthTransaction;
use atoll_primitives::{
    ContractOutcome, Hash, Log, ReceiptAction, ShardBlockHeader, ShardId, SignedTransaction,
    TxOutcome,
};
use atoll_shard::execution::PreparedTx;
use std::collections::VecDeque;
use std::sync::Arc;

/// How many recent Ethereum blocks a node keeps assembled (each holds its
/// transactions: a few MiB at most for a full block of every shard).
pub const CACHED_ETH_BLOCKS: usize = 16;

/// One beacon height as an Ethereum block.
#[derive(Clone, Debug)]
pub struct EthBlock {
    /// Its number: the beacon height.
    pub number: u64,
    /// The beacon block's hash.
    pub hash: Hash,
    /// The parent beacon block's hash.
    pub parent_hash: Hash,
    /// Milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
    /// The encoded beacon block's size in bytes.
    pub size: usize,
    /// The headers of the shard blocks it recorded, in its order.
    pub headers: Vec<ShardBlockHeader>,
    /// Its transactions, in order.
    pub transactions: Vec<EthBlockTx>,
    /// The cross-shard calls (and callbacks) its shard blocks ran, in the
    /// same order.
    pub calls: Vec<EthBlockCall>,
}

/// A cross-shard call (or a callback) one of a block's shard blocks ran.
#[derive(Clone, Debug)]
pub struct EthBlockCall {
    /// The hash of the transaction that sent it.
    pub origin: Hash,
    /// The shard that ran it.
    pub shard: ShardId,
    /// The height of the shard block that ran it.
    pub shard_height: u64,
    /// What it did.
    pub outcome: ContractOutcome,
}

/// One log of a block, where it stands in the block.
#[derive(Clone, Copy, Debug)]
pub struct BlockLog<'a> {
    /// The log.
    pub log: &'a Log,
    /// The transaction it belongs to (for a cross-shard call's, the
    /// calling transaction, which is in an earlier block).
    pub tx_hash: Hash,
    /// That transaction's position in this block (for a cross-shard call's
    /// log: past the block's transactions, the call's position among the
    /// block's calls).
    pub tx_index: usize,
    /// The log's position among all the block's logs.
    pub log_index: usize,
}

impl EthBlock {
    /// Every log of the block in order: its transactions' logs, then its
    /// cross-shard calls'.
    pub fn logs(&self) -> impl Iterator<Item = BlockLog<'_>> {
        let own = self.transactions.iter().enumerate().flat_map(|(i, tx)| {
            let logs = match &tx.outcome {
                TxOutcome::Contract(outcome) => &outcome.logs[..],
                TxOutcome::Success | TxOutcome::Failure(_) => &[],
            };
            logs.iter().map(move |log| (log, tx.shown.tx.hash, i))
        });
        let first_call = self.transactions.len();
        let calls = self.calls.iter().enumerate().flat_map(move |(i, call)| {
            let origin = call.origin;
            call.outcome
                .logs
                .iter()
                .map(move |log| (log, origin, first_call + i))
        });
        own.chain(calls)
            .enumerate()
            .map(|(log_index, (log, tx_hash, tx_index))| BlockLog {
                log,
                tx_hash,
                tx_index,
                log_index,
            })
    }
}

/// A transaction as Ethereum tools are shown it: prepared (its sender and
/// terms) and, for an Ethereum transaction, decoded (its type, prices and
/// signature).
#[derive(Clone, Debug)]
pub struct ShownTx {
    /// The transaction, its hash, sender and terms.
    pub tx: PreparedTx,
    /// An Ethereum transaction's fields.
    pub decoded: Option<Box<EthTransaction>>,
}

impl ShownTx {
    /// Prepares `signed`, which a block or a pool held (so it decodes).
    fn of(signed: SignedTransaction) -> Result<ShownTx, QueryError> {
        let (tx, decoded) = PreparedTx::prepare_decoded(signed).map_err(QueryError::internal)?;
        Ok(ShownTx {
            tx,
            decoded: decoded.map(Box::new),
        })
    }
}

/// A transaction in an Ethereum block.
#[derive(Clone, Debug)]
pub struct EthBlockTx {
    /// The transaction.
    pub shown: ShownTx,
    /// The shard that ran it.
    pub shard: ShardId,
    /// The height of its shard block.
    pub shard_height: u64,
    /// Its outcome.
    pub outcome: TxOutcome,
}

impl EthBlockTx {
    /// The gas it used: a contract transaction's; a native transfer pays a
    /// flat fee, not gas.
    pub fn gas_used(&self) -> u64 {
        match &self.outcome {
            TxOutcome::Contract(outcome) => outcome.gas_used,
            TxOutcome::Success | TxOutcome::Failure(_) => 0,
        }
    }

    /// How many logs it emitted.
    pub fn log_count(&self) -> usize {
        match &self.outcome {
            TxOutcome::Contract(outcome) => outcome.logs.len(),
            TxOutcome::Success | TxOutcome::Failure(_) => 0,
        }
    }
}

/// Where a transaction is, for Ethereum tools.
#[derive(Clone, Debug)]
pub enum EthTxAt {
    /// No shard knows it.
    Unknown,
    /// In a mempool or in a block that is not final yet: not in an
    /// Ethereum block.
    Pending(Box<ShownTx>),
    /// In Ethereum block `block`, at `index`.
    InBlock {
        /// The block.
        block: Arc<EthBlock>,
        /// Its position in the block's transactions.
        index: usize,
    },
}

/// The assembled recent blocks, newest last.
#[derive(Default)]
pub(super) struct EthBlockCache {
    blocks: parking_lot::Mutex<VecDeque<Arc<EthBlock>>>,
}

impl NodeView {
    /// The newest Ethereum block's number: the newest beacon block in the
    /// beacon store (the beacon's memory moves on a moment before its
    /// block is stored, and a block is read from the store).
    pub fn eth_head(&self) -> Result<u64, QueryError> {
        let store = &self.any().keeper.store;
        Ok(store.head().map_err(QueryError::internal)?.unwrap_or(0))
    }

    /// Ethereum block `number` (None: above [`NodeView::eth_head`]).
    pub fn eth_block(&self, number: u64) -> Result<Option<Arc<EthBlock>>, QueryError> {
        if number > self.eth_head()? {
            return Ok(None);
        }
        if let Some(block) = self
            .eth_blocks
            .blocks
            .lock()
            .iter()
            .find(|b| b.number == number)
        {
            return Ok(Some(Arc::clone(block)));
        }
        let block = Arc::new(self.assemble(number)?);
        let mut cache = self.eth_blocks.blocks.lock();
        if cache.len() >= CACHED_ETH_BLOCKS {
            cache.pop_front();
        }
        cache.push_back(Arc::clone(&block));
        Ok(Some(block))
    }

    /// The number of the Ethereum block whose hash is `hash`.
    pub fn eth_block_number(&self, hash: &Hash) -> Result<Option<u64>, QueryError> {
        if *hash == Hash::ZERO {
            return Ok(Some(0));
        }
        let store = &self.any().keeper.store;
        let number = store.height_of(hash).map_err(QueryError::internal)?;
        let head = self.eth_head()?;
        Ok(number.filter(|n| *n <= head))
    }

    /// The Ethereum block that recorded `shard`'s block at `height`, if
    /// one did and it is not above [`NodeView::eth_head`].
    pub fn eth_block_recording(
        &self,
        shard: ShardId,
        height: u64,
    ) -> Result<Option<Arc<EthBlock>>, QueryError> {
        let store = &self.any().keeper.store;
        match store
            .recorded_in(shard, height)
            .map_err(QueryError::internal)?
        {
            Some(number) => self.eth_block(number),
            None => Ok(None),
        }
    }

    /// Where the transaction `hash` is, for Ethereum tools.
    pub fn eth_transaction(&self, hash: &Hash) -> Result<EthTxAt, QueryError> {
        for shard in &self.shards {
            let held = shard.mempool.lock().get(hash).map(|tx| tx.signed.clone());
            if let Some(signed) = held {
                return Ok(EthTxAt::Pending(Box::new(ShownTx::of(signed)?)));
            }
        }
        for shard in &self.shards {
            let Some(location) = shard
                .store
                .transaction(hash)
                .map_err(QueryError::internal)?
            else {
                continue;
            };
            let store = &self.any().keeper.store;
            let recorded = store
                .recorded_in(shard.shard, location.height)
                .map_err(QueryError::internal)?;
            let block = match recorded {
                Some(number) => self.eth_block(number)?,
                None => None,
            };
            let found = block.and_then(|block| {
                let index = block.transactions.iter().position(|tx| {
                    tx.shown.tx.hash == *hash
                        && tx.shard == shard.shard
                        && tx.shard_height == location.height
                })?;
                Some(EthTxAt::InBlock { block, index })
            });
            if let Some(found) = found {
                return Ok(found);
            }
            // Committed, not yet final (or its beacon block is not counted
            // yet): pending, as Ethereum tools see it.
            let body = shard
                .store
                .block(location.height)
                .map_err(QueryError::internal)?;
            if let Some(signed) =
                body.and_then(|b| b.body.transactions.into_iter().nth(location.index as usize))
            {
                return Ok(EthTxAt::Pending(Box::new(ShownTx::of(signed)?)));
            }
        }
        Ok(EthTxAt::Unknown)
    }

    /// Reads beacon block `number` and the shard blocks it recorded.
    fn assemble(&self, number: u64) -> Result<EthBlock, QueryError> {
        if number == 0 {
            return Ok(EthBlock {
                number: 0,
                hash: Hash::ZERO,
                parent_hash: Hash::ZERO,
                timestamp_ms: 0,
                size: 0,
                headers: Vec::new(),
                transactions: Vec::new(),
                calls: Vec::new(),
            });
        }
        let store = &self.any().keeper.store;
        let size = store
            .block(number)
            .map_err(QueryError::internal)?
            .map_or(0, |bytes| bytes.len());
        let beacon = stored_block(store, number).map_err(QueryError::internal)?;
        let mut transactions = Vec::new();
        let mut calls = Vec::new();
        for header in &beacon.shard_headers {
            let Ok(shard) = self.tracked(header.shard) else {
                continue;
            };
            let Some(block) = shard
                .store
                .block(header.height)
                .map_err(QueryError::internal)?
            else {
                continue;
            };
            for proven in &block.body.incoming {
                let receipt = &proven.receipt;
                let ran = matches!(
                    receipt.action,
                    ReceiptAction::Call { .. } | ReceiptAction::Refund { reply: Some(_), .. }
                );
                if !ran {
                    continue;
                }
                let record = shard
                    .store
                    .call_record(receipt.source, receipt.sequence)
                    .map_err(QueryError::internal)?;
                // Forwarded on (its contract lives elsewhere): not run here.
                if let Some(record) = record {
                    calls.push(EthBlockCall {
                        origin: receipt.origin,
                        shard: header.shard,
                        shard_height: header.height,
                        outcome: record.outcome,
                    });
                }
            }
            for signed in block.body.transactions {
                let shown = ShownTx::of(signed)?;
                let hash = shown.tx.hash;
                let outcome = shard
                    .store
                    .transaction(&hash)
                    .map_err(QueryError::internal)?
                    .filter(|location| location.height == header.height)
                    .map(|location| location.outcome)
                    .ok_or_else(|| {
                        QueryError::internal(format!(
                            "transaction {hash} of shard {} block {} is not in its index",
                            header.shard, header.height
                        ))
                    })?;
                transactions.push(EthBlockTx {
                    shown,
                    shard: header.shard,
                    shard_height: header.height,
                    outcome,
                });
            }
        }
        Ok(EthBlock {
            number,
            hash: beacon.hash(),
            parent_hash: beacon.parent,
            timestamp_ms: beacon.timestamp_ms,
            size,
            headers: beacon.shard_headers,
            transactions,
            calls,
        })
    }
}
