//! Committing a block: validation, then one atomic, synced write batch.

use crate::error::StorageError;
use crate::keys::{self, cf};
use crate::shard_store::{
    sync_write, ShardStore, StoredReceipt, TxLocation, MAX_SMALL_VALUE_BYTES,
};
use atoll_primitives::{
    codec, merkle, CallRecord, Hash, ProvenReceipt, Receipt, SequenceBreak, ShardBlock,
    ShardBlockHeader, ShardId, ShardMap, StateChange, StreamCursors, TxOutcome,
};
use rocksdb::WriteBatch;
use std::collections::HashSet;
use std::sync::PoisonError;

/// A receipt named by its stream and place in it: (source or destination
/// shard, sequence).
pub type ReceiptRef = (ShardId, u64);

/// Everything one block changes in the store, committed atomically by
/// [`ShardStore::commit_block`].
#[derive(Clone, Copy, Debug)]
pub struct BlockCommit<'a> {
    /// The block; its height must be the head's plus one (0 for genesis).
    pub block: &'a ShardBlock,
    /// One outcome per transaction, in the same order.
    pub outcomes: &'a [TxOutcome],
    /// Final values of every key the block wrote (genesis: the genesis accounts).
    pub state_changes: &'a [StateChange],
    /// Outgoing receipts emitted by this block, numbered on from each
    /// destination's outbox cursor.
    pub receipts: &'a [Receipt],
    /// The shard map this block executed under, when it differs from its
    /// parent's (the block entered an epoch with a new map).
    pub shard_map: Option<&'a ShardMap>,
    /// Incoming receipts this block forwarded instead of applying (their
    /// account had moved to another shard), each (source, sequence) with the
    /// (destination, sequence) of the receipt that carries it on.
    pub forwarded: &'a [(ReceiptRef, ReceiptRef)],
    /// What the cross-shard calls among the incoming receipts did here, in
    /// order.
    pub calls: &'a [CallRecord],
}

impl ShardStore {
    /// Writes everything a block changes in one atomic, synced RocksDB write
    /// batch: header (by height, and hash to height), body, state changes,
    /// outgoing receipts (keyed by destination and sequence), the outbox cursor
    /// per destination (last receipt sequence + 1), the transaction index and
    /// the head pointer.
    ///
    /// The commit is checked first and a rejected commit writes nothing: the
    /// block must be for this store's chain and shard, extend the head by one
    /// height with the head's hash as parent, have a header that matches its
    /// body and one outcome per transaction, emit receipts only from this
    /// shard and numbered without gaps, and include no transaction already
    /// in the chain.
    pub fn commit_block(&self, commit: &BlockCommit<'_>) -> Result<(), StorageError> {
        // The lock guards no data (that lives in RocksDB), so a poisoned lock is still usable.
        let _guard = self
            .commit_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let header = &commit.block.header;
        self.check_identity(header)?;
        self.check_extends_head(header)?;
        let tx_hashes: Vec<Hash> = commit
            .block
            .body
            .transactions
            .iter()
            .map(|tx| tx.hash())
            .collect();
        check_body(commit, &tx_hashes)?;
        self.check_incoming(&commit.block.header, &commit.block.body.incoming)?;
        let cursors = self.check_receipts(commit.receipts)?;
        self.check_transactions_are_new(header.height, &tx_hashes)?;
        let batch = self.commit_batch(commit, &tx_hashes, &cursors);
        self.db.write_opt(batch, &sync_write())?;
        Ok(())
    }

    /// The header is of this store's chain and shard.
    pub(crate) fn check_identity(&self, header: &ShardBlockHeader) -> Result<(), StorageError> {
        let identity = self.identity();
        if header.chain_id != identity.chain_id {
            return Err(StorageError::WrongChain {
                height: header.height,
                expected: identity.chain_id,
                found: header.chain_id,
            });
        }
        if header.shard != identity.shard {
            return Err(StorageError::WrongShard {
                height: header.height,
                expected: identity.shard,
                found: header.shard,
            });
        }
        Ok(())
    }

    /// The incoming receipts continue the parent's inbox cursors, one
    /// sequence number at a time, and the header records where they end.
    fn check_incoming(
        &self,
        header: &ShardBlockHeader,
        incoming: &[ProvenReceipt],
    ) -> Result<(), StorageError> {
        let invalid = |reason: String| StorageError::IncomingReceipt {
            height: header.height,
            reason,
        };
        let shard = self.identity().shard;
        let mut cursors = StreamCursors::new(match self.head()? {
            Some(parent) => parent.inbox_cursors,
            None => Vec::new(),
        });
        for (i, proven) in incoming.iter().enumerate() {
            let receipt = &proven.receipt;
            if receipt.destination != shard || receipt.source == shard {
                return Err(invalid(format!(
                    "incoming receipt {i} goes from shard {} to shard {}, but this is shard {shard}",
                    receipt.source, receipt.destination
                )));
            }
            cursors
                .take(receipt.source, receipt.sequence)
                .map_err(|broken| {
                    invalid(format!(
                        "incoming receipt {i} from shard {}: {broken}",
                        receipt.source
                    ))
                })?;
        }
        let cursors: Vec<(ShardId, u64)> = cursors.iter().collect();
        if cursors != header.inbox_cursors {
            return Err(invalid(format!(
                "the header's inbox cursors {:?} are not where the receipts end, {cursors:?}",
                header.inbox_cursors
            )));
        }
        let hashes: Vec<Hash> = incoming.iter().map(|p| p.receipt.hash()).collect();
        if merkle::root(&hashes) != header.incoming_root {
            return Err(invalid(
                "the header's incoming_root is not the root of the body's receipts".into(),
            ));
        }
        Ok(())
    }

    fn check_extends_head(&self, header: &ShardBlockHeader) -> Result<(), StorageError> {
        let (expected_height, expected_parent, parent_epoch) = match self.head()? {
            None => (0, Hash::ZERO, 0),
            Some(head) => {
                let next = head
                    .height
                    .checked_add(1)
                    .ok_or_else(|| StorageError::Corrupt {
                        what: "head height",
                        key: hex::encode(keys::META_HEAD),
                        reason: "the head is at height u64::MAX, which no chain reaches".into(),
                    })?;
                (next, head.hash(), head.epoch)
            }
        };
        if header.epoch < parent_epoch {
            return Err(StorageError::BodyMismatch {
                height: header.height,
                reason: format!(
                    "the block is in epoch {}, before its parent's epoch {parent_epoch}",
                    header.epoch
                ),
            });
        }
        if header.height != expected_height {
            return Err(StorageError::UnexpectedHeight {
                expected: expected_height,
                found: header.height,
            });
        }
        if header.parent != expected_parent {
            return Err(StorageError::ParentMismatch {
                height: header.height,
                expected: expected_parent,
                found: header.parent,
            });
        }
        Ok(())
    }

    /// Checks the receipts' sources and sequence numbers and returns, for each
    /// destination they go to, the outbox cursor after them.
    fn check_receipts(&self, receipts: &[Receipt]) -> Result<StreamCursors, StorageError> {
        let shard = self.identity().shard;
        let mut cursors = StreamCursors::default();
        for (index, receipt) in receipts.iter().enumerate() {
            if receipt.source != shard {
                return Err(StorageError::ReceiptSource {
                    index,
                    expected: shard,
                    found: receipt.source,
                });
            }
            let destination = receipt.destination;
            if !cursors.has(destination) {
                cursors.set(destination, self.outbox_cursor(destination)?);
            }
            cursors
                .take(destination, receipt.sequence)
                .map_err(|broken| match broken {
                    SequenceBreak::Replayed { expected, got }
                    | SequenceBreak::Skipped { expected, got } => StorageError::ReceiptSequence {
                        destination,
                        expected,
                        found: got,
                    },
                    SequenceBreak::Exhausted => StorageError::Corrupt {
                        what: "outbox cursor",
                        key: hex::encode(keys::outbox_cursor(destination)),
                        reason: broken.to_string(),
                    },
                })?;
        }
        Ok(cursors)
    }

    /// Rejects a transaction that is already indexed, or that appears twice in the block.
    fn check_transactions_are_new(
        &self,
        height: u64,
        tx_hashes: &[Hash],
    ) -> Result<(), StorageError> {
        let mut seen = HashSet::with_capacity(tx_hashes.len());
        if let Some(hash) = tx_hashes.iter().find(|hash| !seen.insert(**hash)) {
            return Err(StorageError::DuplicateTransaction {
                hash: *hash,
                height,
            });
        }
        let known = self.known_transactions(tx_hashes)?;
        if let Some(hash) = tx_hashes
            .iter()
            .zip(known)
            .find_map(|(hash, known)| known.then_some(hash))
        {
            return Err(StorageError::DuplicateTransaction {
                hash: *hash,
                height: self.included_height(hash)?,
            });
        }
        Ok(())
    }

    /// The height at which `hash`, known to the store, was included: from
    /// its location, or, below an installed snapshot, the height the
    /// snapshot recorded for it.
    fn included_height(&self, hash: &Hash) -> Result<u64, StorageError> {
        if let Some(location) = self.transaction(hash)? {
            return Ok(location.height);
        }
        let key = keys::synced_transaction(hash);
        self.get(
            cf::TX_INDEX,
            "synced transaction",
            &key,
            MAX_SMALL_VALUE_BYTES,
        )?
        .ok_or_else(|| StorageError::Corrupt {
            what: "synced transaction",
            key: hex::encode(key),
            reason: "found by the batched read, then missing".into(),
        })
    }

    /// Puts `block`'s header, its hash index and its body into `batch`.
    pub(crate) fn put_block(&self, batch: &mut WriteBatch, block: &ShardBlock) {
        let height = block.header.height;
        let headers = self.cf(cf::HEADERS);
        batch.put_cf(headers, keys::header(height), codec::encode(&block.header));
        batch.put_cf(
            headers,
            keys::height_by_hash(&block.hash()),
            codec::encode(&height),
        );
        batch.put_cf(
            self.cf(cf::BLOCKS),
            keys::body(height),
            codec::encode(&block.body),
        );
    }

    /// The write batch of a validated commit.
    fn commit_batch(
        &self,
        commit: &BlockCommit<'_>,
        tx_hashes: &[Hash],
        cursors: &StreamCursors,
    ) -> WriteBatch {
        let block = commit.block;
        let height = block.header.height;
        let mut batch = WriteBatch::default();

        self.put_block(&mut batch, block);

        let state = self.cf(cf::STATE);
        for (key, value) in commit.state_changes {
            match value {
                Some(value) => batch.put_cf(state, keys::state(key), value.to_bytes()),
                None => batch.delete_cf(state, keys::state(key)),
            }
        }

        let receipts = self.cf(cf::RECEIPTS);
        for receipt in commit.receipts {
            let key = keys::receipt(receipt.destination, receipt.sequence);
            let stored = StoredReceipt {
                height: commit.block.header.height,
                receipt: receipt.clone(),
            };
            batch.put_cf(receipts, key, codec::encode(&stored));
        }
        let meta = self.cf(cf::META);
        for (destination, cursor) in cursors.iter() {
            batch.put_cf(
                meta,
                keys::outbox_cursor(destination),
                codec::encode(&cursor),
            );
        }

        let meta_cf = self.cf(cf::META);
        for proven in &commit.block.body.incoming {
            let receipt = &proven.receipt;
            batch.put_cf(
                meta_cf,
                keys::incoming(receipt.source, receipt.sequence),
                codec::encode(&height),
            );
        }

        let tx_index = self.cf(cf::TX_INDEX);
        let emitted: std::collections::HashMap<Hash, (ShardId, u64)> = commit
            .receipts
            .iter()
            .map(|r| (r.origin, (r.destination, r.sequence)))
            .collect();
        for (index, (hash, outcome)) in tx_hashes.iter().zip(commit.outcomes).enumerate() {
            let location = TxLocation {
                height,
                index: u32::try_from(index)
                    .expect("check_body: the transaction count equals the u32 tx_count"),
                outcome: outcome.clone(),
                receipt: emitted.get(hash).copied(),
            };
            batch.put_cf(tx_index, keys::transaction(hash), codec::encode(&location));
        }

        for ((source, sequence), onward) in commit.forwarded {
            batch.put_cf(
                meta,
                keys::forwarded(*source, *sequence),
                codec::encode(onward),
            );
        }
        for record in commit.calls {
            batch.put_cf(
                meta,
                keys::call(record.source, record.sequence),
                codec::encode(record),
            );
        }
        if let Some(map) = commit.shard_map {
            batch.put_cf(meta, keys::META_SHARD_MAP, codec::encode(map));
        }
        batch.put_cf(meta, keys::META_HEAD, codec::encode(&height));
        batch
    }
}

/// Checks that the header describes the body and that there is one outcome per transaction.
fn check_body(commit: &BlockCommit<'_>, tx_hashes: &[Hash]) -> Result<(), StorageError> {
    let header = &commit.block.header;
    let transactions = tx_hashes.len();
    if commit.outcomes.len() != transactions {
        return Err(StorageError::OutcomeCount {
            transactions,
            outcomes: commit.outcomes.len(),
        });
    }
    if usize::try_from(header.tx_count).ok() != Some(transactions) {
        return Err(StorageError::BodyMismatch {
            height: header.height,
            reason: format!(
                "the header says {} transactions, the body has {transactions}",
                header.tx_count
            ),
        });
    }
    if merkle::root(tx_hashes) != header.tx_root {
        return Err(StorageError::BodyMismatch {
            height: header.height,
            reason: "the header's tx_root is not the root of the body's transactions".into(),
        });
    }
    Ok(())
}
