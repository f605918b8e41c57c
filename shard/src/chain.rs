//! One shard's chain on one node: its store, its state tree and its executor,
//! and the life of a block from transactions to an atomic commit.

use crate::error::ShardError;
use crate::execution::evm::{block_hash_key, CodeCache};
use crate::execution::rules::wrong_chain;
use crate::execution::{BlockContext, BlockOutput, ExecutionStats, Executor, PreparedTx};
use crate::inbox::Inbox;
use crate::opening;
use crate::seal::{genesis_block, seal_block, Inbound};
use crate::signatures::{find_bad_signatures, prepare_all, VerifiedTx};
use crate::state::{cache, CachedState, StateProof, StateTree, StateView};
use ahash::RandomState;
use atoll_primitives::{
    GasRules, Hash, ProvenReceipt, ReceiptAction, ShardBlock, ShardBlockHeader, ShardId,
    ShardLayout, ShardMap, SignedTransaction, StateChange, StateKey, StateValue,
};
use atoll_storage::{BlockCommit, ShardStore, SnapshotInstall, StoreIdentity};
use std::collections::{BTreeMap, HashSet};
use std::num::NonZeroUsize;
use std::path::Path;
use std::sync::Arc;

impl StateView for ShardStore {
    fn get(&self, key: &StateKey) -> Result<Option<StateValue>, ShardError> {
        Ok(self.state(key)?)
    }
}

/// The most call data of cross-shard calls one block takes in (half the
/// largest block: the receipts are in its body).
pub const MAX_INCOMING_CALL_BYTES: usize = atoll_primitives::codec::MAX_BLOCK_BYTES / 2;

/// What producing a block did.
#[derive(Debug)]
pub struct ProducedBlock {
    /// The committed block.
    pub block: ShardBlock,
    /// Its transactions' hashes, in block order.
    pub hashes: Vec<atoll_primitives::Hash>,
    /// Its execution result.
    pub output: BlockOutput,
    /// Executor counters.
    pub stats: ExecutionStats,
    /// Transactions left out: bad signature, repeated, already in the chain,
    /// or past the block gas limit.
    pub rejected: usize,
}

/// A shard's store, state tree and executor.
pub struct ShardChain {
    store: Arc<ShardStore>,
    state: Arc<CachedState>,
    tree: StateTree,
    head: ShardBlockHeader,
    /// The shard map the head executed under.
    map: Arc<ShardMap>,
    /// The epoch and map the next block executes under.
    /// The epoch, map and map hash the next block executes under (the hash
    /// is computed when the map changes, not per block).
    next_epoch: (u64, Arc<ShardMap>, atoll_primitives::Hash),
    executor: Executor,
    inbox: Inbox,
    /// What the next block reports as its congestion.
    congested: bool,
    /// The chain's gas rules (from its genesis).
    gas: GasRules,
    /// Contract code read by earlier blocks.
    codes: CodeCache,
}

impl ShardChain {
    /// Opens the shard at `path`. A new store gets the genesis block with
    /// `genesis` accounts; an existing one is reopened at its head, and its
    /// state tree is rebuilt from the stored state and checked against the
    /// head's state root.
    pub fn open(
        path: &Path,
        identity: StoreIdentity,
        layout: ShardLayout,
        genesis: &[(StateKey, StateValue)],
        threads: NonZeroUsize,
    ) -> Result<ShardChain, ShardError> {
        let store = Arc::new(ShardStore::open(path, identity)?);
        let executor = Executor::new(threads)?;
        let (tree, head) = match store.head()? {
            Some(head) => {
                let entries = store.state_entries().collect::<Result<Vec<_>, _>>()?;
                let tree = StateTree::from_entries(entries);
                if tree.root() != head.state_root {
                    return Err(ShardError::StateRootMismatch {
                        height: head.height,
                        header: head.state_root,
                        stored: tree.root(),
                    });
                }
                (tree, head)
            }
            None => {
                let tree = StateTree::from_entries(genesis.iter().cloned());
                let genesis: Vec<StateChange> = genesis
                    .iter()
                    .map(|(key, value)| (*key, Some(value.clone())))
                    .collect();
                let block = genesis_block(
                    identity.chain_id,
                    identity.shard,
                    tree.root(),
                    ShardMap::new(layout).hash(),
                );
                store.commit_block(&BlockCommit {
                    block: &block,
                    outcomes: &[],
                    state_changes: &genesis,
                    receipts: &[],
                    shard_map: None,
                    forwarded: &[],
                    calls: &[],
                })?;
                (tree, block.header)
            }
        };
        let inbox = Inbox::new(head.shard, head.inbox_cursors.iter().copied().collect());
        let map = Arc::new(store.shard_map()?.unwrap_or_else(|| ShardMap::new(layout)));
        Ok(ShardChain {
            next_epoch: (head.epoch, Arc::clone(&map), map.hash()),
            map,
            inbox,
            congested: false,
            gas: GasRules::default(),
            codes: CodeCache::default(),
            state: Arc::new(CachedState::new(
                Arc::clone(&store),
                cache::DEFAULT_CAPACITY,
            )),
            store,
            tree,
            head,
            executor,
        })
    }

    /// The newest committed header.
    pub fn head(&self) -> &ShardBlockHeader {
        &self.head
    }

    /// The shard's store.
    pub fn store(&self) -> &ShardStore {
        &self.store
    }

    /// A handle on the store for readers on other threads (RPC queries);
    /// commits still go through this chain only.
    pub fn shared_store(&self) -> Arc<ShardStore> {
        Arc::clone(&self.store)
    }

    /// The committed state with its read cache, for readers on other
    /// threads (mempool admission); it is updated after every commit.
    pub fn state(&self) -> Arc<CachedState> {
        Arc::clone(&self.state)
    }

    /// The shard layout (the map's ranges).
    pub fn layout(&self) -> ShardLayout {
        self.map.layout()
    }

    /// The shard map the head executed under.
    pub fn shard_map(&self) -> &Arc<ShardMap> {
        &self.map
    }

    /// The next blocks execute under `epoch` and its shard `map` (the
    /// beacon's current ones). The first block of an epoch whose map differs
    /// from the head's moves the accounts the change concerns
    /// ([`crate::opening`]). An epoch below the head's is ignored: epochs
    /// never go back.
    pub fn set_epoch(&mut self, epoch: u64, map: Arc<ShardMap>) {
        if epoch >= self.head.epoch {
            let hash = if Arc::ptr_eq(&map, &self.next_epoch.1) {
                self.next_epoch.2
            } else {
                map.hash()
            };
            self.next_epoch = (epoch, map, hash);
        }
    }

    /// Sets the chain's gas rules (every validator of a chain must use the
    /// same: they come from its genesis).
    pub fn set_gas_rules(&mut self, gas: GasRules) {
        self.gas = gas;
    }

    /// The chain's gas rules.
    pub fn gas_rules(&self) -> GasRules {
        self.gas
    }

    /// `txs` without the contract transactions that would take the block
    /// past its gas limit (by their gas limits, in order; a transaction
    /// that does not fit is skipped and later smaller ones may still fit).
    /// The result depends only on `txs` and the rules. (The cross-shard
    /// calls a block runs before its transactions have a budget of their
    /// own, the same limit: [`ShardChain::incoming_within_limits`].)
    fn within_gas_limit(&self, txs: Vec<PreparedTx>) -> Vec<PreparedTx> {
        let mut left = self.gas.block_gas_limit;
        txs.into_iter()
            .filter(|tx| match tx.terms.action.gas_limit() {
                None => true,
                Some(gas) if gas <= left => {
                    left -= gas;
                    true
                }
                Some(_) => false,
            })
            .collect()
    }

    /// The longest start of `incoming` whose cross-shard calls' gas limits
    /// fit within the block gas limit, and whose calls' data fit within
    /// half the largest block ([`MAX_INCOMING_CALL_BYTES`]): what a block
    /// takes; the rest wait for the next block, in order (the first always
    /// fits). Every path takes receipts through this, so it depends only on
    /// `incoming` and the rules.
    pub fn incoming_within_limits(&self, mut incoming: Vec<ProvenReceipt>) -> Vec<ProvenReceipt> {
        let (mut gas_left, mut bytes_left) = (self.gas.block_gas_limit, MAX_INCOMING_CALL_BYTES);
        let fits = incoming
            .iter()
            .take_while(|proven| {
                let (gas, bytes) = match &proven.receipt.action {
                    ReceiptAction::Call {
                        gas_limit, input, ..
                    } => (*gas_limit, input.len()),
                    _ => (0, 0),
                };
                let fits = gas <= gas_left && bytes <= bytes_left;
                gas_left = gas_left.saturating_sub(gas);
                bytes_left = bytes_left.saturating_sub(bytes);
                fits
            })
            .count();
        incoming.truncate(fits.max(1).min(incoming.len()));
        incoming
    }

    /// The executor (and its thread pool).
    pub fn executor(&self) -> &Executor {
        &self.executor
    }

    /// Blocks with fewer transactions than `min` run sequentially.
    pub fn set_min_parallel_block(&mut self, min: usize) {
        self.executor = self.executor.clone().with_min_parallel_block(min);
    }

    /// Replaces this shard's store with a snapshot of its state (synced
    /// from peers) and goes on from its head. `tree` is the state tree of
    /// the snapshot's entries; its root must be the head's state root, or
    /// nothing changes.
    pub fn install_snapshot(
        &mut self,
        install: &SnapshotInstall<'_>,
        tree: StateTree,
        layout: ShardLayout,
    ) -> Result<(), ShardError> {
        if tree.root() != install.head.state_root {
            return Err(ShardError::StateRootMismatch {
                height: install.head.height,
                header: install.head.state_root,
                stored: tree.root(),
            });
        }
        self.store.install_snapshot(install)?;
        self.state.clear();
        let map = Arc::new(
            install
                .shard_map
                .cloned()
                .unwrap_or_else(|| ShardMap::new(layout)),
        );
        self.next_epoch = (install.head.epoch, Arc::clone(&map), map.hash());
        self.map = map;
        self.inbox = Inbox::new(
            install.head.shard,
            install.head.inbox_cursors.iter().copied().collect(),
        );
        self.tree = tree;
        self.head = install.head.clone();
        Ok(())
    }

    /// The current state of `key` with a proof against the head's state root.
    pub fn prove(&self, key: &StateKey) -> Result<(Option<StateValue>, StateProof), ShardError> {
        Ok((self.store.state(key)?, self.tree.prove(key)))
    }

    /// Drops repeats within `txs`, transactions already in the chain and
    /// transactions with a bad signature, executes the rest on top of the
    /// head, and commits the resulting block atomically.
    pub fn produce_block(
        &mut self,
        txs: Vec<PreparedTx>,
        timestamp_ms: u64,
    ) -> Result<ProducedBlock, ShardError> {
        let offered = txs.len();
        let kept = self.drop_known(txs)?;
        let kept = self.drop_bad_signatures(kept, &[]);
        let rejected = offered - kept.len();
        self.execute_and_commit(kept, Vec::new(), rejected, timestamp_ms)
    }

    /// `txs` without those whose signatures fail, checking only those
    /// `vouched` does not mark (it lists, in order, which this validator
    /// already checked; missing entries are unchecked). A signature's
    /// verdict does not depend on its batch mates (`signatures`), so one pass
    /// suffices, skipping some changes no other verdict, and the sealed body
    /// passes the check every validator runs on it. Block order is kept.
    fn drop_bad_signatures(&self, txs: Vec<PreparedTx>, vouched: &[bool]) -> Vec<PreparedTx> {
        let is_vouched = |i: usize| vouched.get(i).copied().unwrap_or(false);
        // Set the vouched for in place, check the rest, then fill in those
        // of the rest that pass.
        let mut slots: Vec<Option<PreparedTx>> = Vec::with_capacity(txs.len());
        let (mut origin, mut rest) = (Vec::new(), Vec::new());
        for (i, tx) in txs.into_iter().enumerate() {
            if is_vouched(i) {
                slots.push(Some(tx));
            } else {
                origin.push(i);
                rest.push(tx);
                slots.push(None);
            }
        }
        let mut bad = find_bad_signatures(&rest, self.executor.pool())
            .into_iter()
            .peekable();
        for (j, tx) in rest.into_iter().enumerate() {
            if bad.next_if_eq(&j).is_none() {
                slots[origin[j]] = Some(tx);
            }
        }
        slots.into_iter().flatten().collect()
    }

    /// Executes a block whose contents consensus fixed: `incoming` receipts
    /// (checked as in [`ShardChain::produce_block_with_receipts`]), then
    /// `txs` without Ethereum transactions from which no sender is
    /// recovered, then without those of another chain's id, repeats,
    /// transactions already in the chain, and those with a bad signature.
    /// Every validator that runs it on the same head gets the same block.
    ///
    /// `checked` answers, for the block's transactions in order, which this
    /// validator already checked, byte for byte, signature included (those
    /// it admitted to its mempool); their signatures are not checked again.
    /// Verdicts do not depend on batches (`signatures`), so skipping them
    /// changes no other transaction's verdict.
    pub fn execute_agreed_block(
        &mut self,
        txs: Vec<SignedTransaction>,
        incoming: Vec<ProvenReceipt>,
        final_header: impl Fn(ShardId, u64) -> Option<ShardBlockHeader>,
        checked: impl FnOnce(&[PreparedTx]) -> Vec<bool>,
        timestamp_ms: u64,
    ) -> Result<ProducedBlock, ShardError> {
        let incoming = self.incoming_within_limits(incoming);
        self.check_incoming(&incoming, final_header)?;
        let offered = txs.len();
        let chain_id = self.head.chain_id;
        let txs = prepare_all(txs, self.executor.pool())
            .into_iter()
            .filter_map(Result::ok)
            .filter(|tx| wrong_chain(tx.terms.chain_id, chain_id).is_none())
            .collect();
        let kept = self.drop_known(txs)?;
        let vouched = checked(&kept);
        let kept = self.drop_bad_signatures(kept, &vouched);
        let rejected = offered - kept.len();
        self.execute_and_commit(kept, incoming, rejected, timestamp_ms)
    }

    /// As [`ShardChain::produce_block`] for transactions whose signatures
    /// were already checked (at mempool admission): they are not checked
    /// again. Repeats and transactions already in the chain are still dropped.
    pub fn produce_verified_block(
        &mut self,
        txs: Vec<VerifiedTx>,
        timestamp_ms: u64,
    ) -> Result<ProducedBlock, ShardError> {
        self.produce_block_with_receipts(txs, Vec::new(), |_, _| None, timestamp_ms)
    }

    /// As [`ShardChain::produce_verified_block`], first crediting `incoming`
    /// receipts from other shards (the longest start of them whose calls fit
    /// the gas limit: [`ShardChain::incoming_within_limits`]; the block's
    /// body lists those it took). They are checked all or nothing
    /// ([`Inbox::check`]) against `final_header`, which must answer only with
    /// source headers the beacon finalized; a bad one refuses the block and
    /// changes nothing. The credits, the inbox cursors and the transactions
    /// commit together.
    pub fn produce_block_with_receipts(
        &mut self,
        txs: Vec<VerifiedTx>,
        incoming: Vec<ProvenReceipt>,
        final_header: impl Fn(ShardId, u64) -> Option<ShardBlockHeader>,
        timestamp_ms: u64,
    ) -> Result<ProducedBlock, ShardError> {
        let incoming = self.incoming_within_limits(incoming);
        self.check_incoming(&incoming, final_header)?;
        let offered = txs.len();
        let kept = self.drop_known(txs.into_iter().map(VerifiedTx::into_inner).collect())?;
        let rejected = offered - kept.len();
        self.execute_and_commit(kept, incoming, rejected, timestamp_ms)
    }

    /// Checks `incoming` receipts all or nothing ([`Inbox::check_at`], at
    /// the next block's epoch) against `final_header`.
    fn check_incoming(
        &self,
        incoming: &[ProvenReceipt],
        final_header: impl Fn(ShardId, u64) -> Option<ShardBlockHeader>,
    ) -> Result<(), ShardError> {
        self.inbox
            .check_at(incoming, self.next_epoch.0, final_header)
            .map(|_| ())
            .map_err(|(index, error)| ShardError::Receipt { index, error })
    }

    /// Whether the next blocks report this shard congested (its backlog of
    /// incoming receipts passed its bound); they do until told otherwise.
    pub fn set_congested(&mut self, congested: bool) {
        self.congested = congested;
    }

    /// The next receipt sequence number this shard expects from each source.
    pub fn inbox_cursors(&self) -> BTreeMap<ShardId, u64> {
        self.head.inbox_cursors.iter().copied().collect()
    }

    /// The next receipt sequence number this shard expects from `source`.
    pub fn inbox_cursor(&self, source: ShardId) -> u64 {
        self.inbox.cursor(source)
    }

    /// `txs` without repeats and without transactions already in the chain.
    fn drop_known(&self, txs: Vec<PreparedTx>) -> Result<Vec<PreparedTx>, ShardError> {
        let mut seen = HashSet::with_capacity_and_hasher(txs.len(), RandomState::new());
        let unique: Vec<PreparedTx> = txs.into_iter().filter(|tx| seen.insert(tx.hash)).collect();
        let hashes: Vec<Hash> = unique.iter().map(|tx| tx.hash).collect();
        // One batched read for the block rather than one read per transaction.
        let known = self.store.known_transactions(&hashes)?;
        Ok(unique
            .into_iter()
            .zip(known)
            .filter_map(|(tx, known)| (!known).then_some(tx))
            .collect())
    }

    /// Executes `txs` on top of the head and commits the block. A block's
    /// timestamp never goes below its parent's.
    fn execute_and_commit(
        &mut self,
        txs: Vec<PreparedTx>,
        incoming: Vec<ProvenReceipt>,
        rejected: usize,
        timestamp_ms: u64,
    ) -> Result<ProducedBlock, ShardError> {
        // Every path (produced, agreed, replayed) keeps the block within
        // its gas limit the same way, after the other filters.
        let offered = txs.len();
        let txs = self.within_gas_limit(txs);
        let rejected = rejected + (offered - txs.len());
        let timestamp_ms = timestamp_ms.max(self.head.timestamp_ms);
        let (epoch, map, map_hash) = self.next_epoch.clone();
        let mut ctx = BlockContext {
            chain_id: self.head.chain_id,
            shard: self.head.shard,
            height: self.head.height + 1,
            timestamp_ms,
            map: Arc::clone(&map),
            outbox: self.outbox()?,
            gas: self.gas,
            parent_hash: self.head.hash(),
            codes: self.codes.clone(),
        };
        let mut opening = opening::run(&ctx, (&self.map, epoch), &incoming, &*self.state)?;
        ctx.outbox = std::mem::take(&mut opening.outbox);
        let credits = opening.changes;
        let forwarded = opening.forwarded;
        let (mut output, stats) = if credits.is_empty() {
            self.executor.execute(&ctx, &txs, &*self.state)?
        } else {
            let view = Credited {
                base: &*self.state,
                credits: &credits,
            };
            self.executor.execute(&ctx, &txs, &view)?
        };
        if !credits.is_empty() {
            output.state_changes =
                merge_changes(credits, std::mem::take(&mut output.state_changes));
        }
        output.calls = opening.calls;
        output.burnt_fees = output
            .burnt_fees
            .checked_add(opening.burnt)
            .expect("burnt fees are bounded by the total supply, which fits in u128");
        // This block records its parent's hash for `BLOCKHASH` (no
        // transaction writes that system slot).
        let parent = (
            block_hash_key(self.head.height),
            Some(StateValue::Slot(ctx.parent_hash.0)),
        );
        match output
            .state_changes
            .binary_search_by_key(&parent.0, |(key, _)| *key)
        {
            Ok(at) => output.state_changes[at] = parent,
            Err(at) => output.state_changes.insert(at, parent),
        }
        if !opening.receipts.is_empty() {
            let mut receipts = opening.receipts;
            receipts.append(&mut output.receipts);
            output.receipts = receipts;
        }
        // Pointer equality first: the map is shared, and unchanged almost always.
        let map_changed = !Arc::ptr_eq(&map, &self.map) && *map != *self.map;
        let mut cursors: BTreeMap<ShardId, u64> = self.head.inbox_cursors.iter().copied().collect();
        for proven in &incoming {
            cursors.insert(proven.receipt.source, proven.receipt.sequence + 1);
        }
        let mut tree = self.tree.clone();
        self.executor
            .pool()
            .install(|| tree.update_parallel(&output.state_changes));
        let inbound = Inbound {
            incoming,
            inbox_cursors: cursors.iter().map(|(s, c)| (*s, *c)).collect(),
            congested: self.congested,
            epoch,
            map_hash,
        };
        let block = seal_block(
            &self.head,
            inbound,
            &txs,
            &output,
            tree.root(),
            timestamp_ms,
        );
        self.store.commit_block(&BlockCommit {
            block: &block,
            outcomes: &output.outcomes,
            state_changes: &output.state_changes,
            receipts: &output.receipts,
            shard_map: map_changed.then_some(&*map),
            forwarded: &forwarded,
            calls: &output.calls,
        })?;
        self.state.apply(&output.state_changes);
        self.map = map;
        self.inbox.advance(cursors);
        self.tree = tree;
        self.head = block.header.clone();
        let hashes = txs.iter().map(|tx| tx.hash).collect();
        Ok(ProducedBlock {
            hashes,
            block,
            output,
            stats,
            rejected,
        })
    }

    /// The next receipt sequence number to each other shard.
    fn outbox(&self) -> Result<BTreeMap<ShardId, u64>, ShardError> {
        let mut outbox = BTreeMap::new();
        for shard in 0..self.map.shard_count() {
            let shard = ShardId(shard);
            if shard != self.head.shard {
                outbox.insert(shard, self.store.outbox_cursor(shard)?);
            }
        }
        Ok(outbox)
    }
}

/// The committed state with a block's opening (credits, calls) on top, for
/// its transactions.
struct Credited<'a> {
    base: &'a dyn StateView,
    credits: &'a BTreeMap<StateKey, Option<StateValue>>,
}

impl StateView for Credited<'_> {
    fn get(&self, key: &StateKey) -> Result<Option<StateValue>, ShardError> {
        match self.credits.get(key) {
            Some(value) => Ok(value.clone()),
            None => self.base.get(key),
        }
    }
}

/// The block's final write set: the credited accounts, overwritten by what
/// the transactions then wrote (both sorted by key).
fn merge_changes(
    credits: BTreeMap<StateKey, Option<StateValue>>,
    written: Vec<StateChange>,
) -> Vec<StateChange> {
    let mut merged = Vec::with_capacity(credits.len() + written.len());
    let mut written = written.into_iter().peekable();
    for (key, credited) in credits {
        while let Some(entry) = written.next_if(|(k, _)| *k < key) {
            merged.push(entry);
        }
        match written.next_if(|(k, _)| *k == key) {
            Some(entry) => merged.push(entry),
            None => merged.push((key, credited)),
        }
    }
    merged.extend(written);
    merged
}
