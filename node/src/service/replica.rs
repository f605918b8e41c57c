//! With several validators: the shards execute what consensus finalized.
//!
//! A consensus block's payload ([`Payload`]) fixes, for every shard, the
//! transactions of its next block, the block's timestamp and how many
//! waiting receipts it credits. Every validator executes a final payload
//! the same way ([`Replica`]): each shard's block applies the receipts the
//! relay holds for it (published after the previous step, so the same on
//! every validator), then the payload's transactions
//! ([`ShardChain::execute_agreed_block`]: repeats, known transactions, bad
//! signatures and other chains' transactions are dropped by rule). The
//! beacon block that records the shard headers then carries the payload's
//! timestamp, so it too is the same everywhere, and the shard blocks are
//! final at once: their contents were final before they were executed.
//!
//! Each payload also names the newest block its leader had executed, with
//! the hash of the beacon block it made: a validator whose own hash differs
//! says so loudly (its state diverged; that is a bug, not a fault of the
//! network).
//!
//! A leader builds its payload ([`Builder`]) once it has executed the
//! parent (so its mempool no longer holds the parent's transactions) and a
//! block interval has passed, or a full block is waiting. If the parent is
//! not executed in time (it may be notarized but not yet final), the
//! payload is empty: an empty payload extends the chain and lets its
//! finalization finalize the parent.

use super::beacon::BeaconKeeper;
use super::coordinator::{mark_final, Committed};
use super::producer::{finish, hold_back};
use super::Shared;
use crate::rpc::types::HeadInfo;
use anyhow::{bail, Context};
use atoll_consensus::simplex::{Block, FinalBlock};
use atoll_primitives::{codec, Hash, ShardId, SignedTransaction, StateKey};
use atoll_shard::execution::PreparedTx;
use atoll_shard::relay::{InProcessRelay, ReceiptRelay};
use atoll_shard::ShardChain;
use borsh::{BorshDeserialize, BorshSerialize};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::{broadcast, watch};

/// Most transactions a payload may give one shard (a rule of the chain,
/// not a setting: every validator must judge a payload the same way).
pub const MAX_SHARD_TRANSACTIONS: usize = 65_536;

/// What a consensus block carries.
#[derive(Clone, Debug, Default, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Payload {
    /// The leader's clock when it built the payload (a shard block's
    /// timestamp never goes below its parent's).
    pub timestamp_ms: u64,
    /// Each shard's transactions, in shard order.
    pub shards: Vec<Vec<SignedTransaction>>,
    /// Most receipts each shard's block credits.
    pub max_receipts: u32,
    /// The newest consensus block the leader had executed, and the hash of
    /// the beacon block it made of it.
    pub executed: Option<(u64, Hash)>,
}

impl Payload {
    /// Decodes `bytes` for a chain of `shards` shards; anything else (bytes
    /// that do not decode, the wrong number of shards, more than
    /// [`MAX_SHARD_TRANSACTIONS`] for a shard) is an empty payload,
    /// so every validator treats a malformed payload the same way.
    pub fn decode_or_empty(bytes: &[u8], shards: usize, limit: usize) -> Payload {
        match codec::decode::<Payload>("payload", bytes, limit) {
            Ok(payload)
                if payload.shards.len() == shards
                    && payload
                        .shards
                        .iter()
                        .all(|t| t.len() <= MAX_SHARD_TRANSACTIONS) =>
            {
                payload
            }
            _ => Payload {
                shards: vec![Vec::new(); shards],
                ..Payload::default()
            },
        }
    }
}

/// The newest executed consensus block: its height and hash, the hash of
/// the beacon block made of it, and when it was executed.
#[derive(Clone, Copy, Debug)]
pub struct Executed {
    /// Its consensus height.
    pub height: u64,
    /// Its hash.
    pub hash: Hash,
    /// The beacon block made of it (zero before the first).
    pub beacon: Hash,
    /// When this validator executed it.
    pub at: Instant,
}

/// Executes final consensus blocks, in order, on every shard.
pub struct Replica {
    shards: Vec<Arc<Shared>>,
    chains: Vec<ShardChain>,
    keeper: Arc<BeaconKeeper>,
    relay: Arc<InProcessRelay>,
    new_heads: broadcast::Sender<Arc<HeadInfo>>,
    progress: watch::Sender<Executed>,
    /// Beacon block hashes of recent consensus heights, to compare with
    /// what leaders say they made.
    made: BTreeMap<u64, Hash>,
    limit: usize,
}

/// Consensus heights whose beacon hashes are kept for the comparison.
const KEEP_MADE: usize = 1024;

impl Replica {
    /// A replica over `chains` (in shard order) that has executed up to
    /// `executed`.
    pub fn new(
        shards: Vec<Arc<Shared>>,
        chains: Vec<ShardChain>,
        keeper: Arc<BeaconKeeper>,
        relay: Arc<InProcessRelay>,
        new_heads: broadcast::Sender<Arc<HeadInfo>>,
        progress: watch::Sender<Executed>,
        limit: usize,
    ) -> Replica {
        Replica {
            shards,
            chains,
            keeper,
            relay,
            new_heads,
            progress,
            made: BTreeMap::new(),
            limit,
        }
    }

    /// Executes the blocks that arrive until the node stops. A failure
    /// (a store error) stops the node: it cannot go on without its state.
    pub fn run(mut self, blocks: Receiver<FinalBlock>, stopping: &AtomicBool) {
        if let Err(err) = self.replay() {
            tracing::error!(
                err = format!("{err:#}"),
                "cannot execute the stored final blocks; the node stops"
            );
            stopping.store(true, Ordering::Release);
            return;
        }
        loop {
            let block = match blocks.recv_timeout(Duration::from_millis(100)) {
                Ok(block) => block,
                Err(RecvTimeoutError::Timeout) => {
                    if stopping.load(Ordering::Acquire) {
                        return;
                    }
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => return,
            };
            if stopping.load(Ordering::Acquire) {
                return;
            }
            if let Err(err) = self.execute(&block.proposal.block) {
                tracing::error!(
                    err = format!("{err:#}"),
                    height = block.proposal.block.height,
                    "cannot execute a final block; the node stops"
                );
                stopping.store(true, Ordering::Release);
                return;
            }
        }
    }

    /// Executes the final blocks stored before a restart and not executed
    /// yet (the store keeps a block before the replica gets it).
    fn replay(&mut self) -> anyhow::Result<()> {
        let mut replayed = 0u64;
        loop {
            let from = self.progress.borrow().height + 1;
            let stored = self.keeper.store.final_blocks(from, 64)?;
            if stored.is_empty() {
                break;
            }
            for (height, bytes) in stored {
                let block: FinalBlock = codec::decode("stored final block", &bytes, self.limit)
                    .with_context(|| format!("the stored final block {height} is damaged"))?;
                self.execute(&block.proposal.block)?;
                replayed += 1;
            }
        }
        if replayed > 0 {
            tracing::info!(
                blocks = replayed,
                "executed the final blocks stored before the restart"
            );
        }
        Ok(())
    }

    /// Executes one final block (nothing if it was executed before).
    pub fn execute(&mut self, block: &Block) -> anyhow::Result<()> {
        let done = *self.progress.borrow();
        if block.height <= done.height {
            return Ok(());
        }
        let payload = Payload::decode_or_empty(&block.payload, self.chains.len(), self.limit);
        self.compare(&payload);
        let (epoch, map, recorded) = {
            let beacon = self.keeper.state.read();
            (beacon.epoch(), Arc::clone(beacon.map()), beacon.recorded())
        };
        let recorded: BTreeMap<ShardId, u64> = recorded.into_iter().collect();
        // Read before any shard runs: the same on every validator.
        let congested: Vec<bool> = self
            .shards
            .iter()
            .map(|s| self.relay.congested(s.shard))
            .collect();
        let max_receipts = (payload.max_receipts as usize).max(1);
        let timestamp = payload.timestamp_ms;
        let (keeper, relay, shards) = (&self.keeper, &self.relay, &self.shards);
        let mut resumed = false;
        let results: Vec<anyhow::Result<Option<Committed>>> = std::thread::scope(|scope| {
            let handles: Vec<_> = self
                .chains
                .iter_mut()
                .zip(payload.shards)
                .zip(shards)
                .zip(&congested)
                .map(|(((chain, txs), shared), congested)| {
                    let last = recorded.get(&shared.shard).copied().unwrap_or(0);
                    let map = Arc::clone(&map);
                    scope.spawn(move || -> anyhow::Result<Option<Committed>> {
                        if chain.head().height > last {
                            // Executed before a crash cut the step short.
                            return Ok(None);
                        }
                        let started = Instant::now();
                        let moved_away = leaving(shared, chain, &map);
                        chain.set_epoch(epoch, map);
                        chain.set_congested(*congested);
                        let incoming =
                            relay.pending(shared.shard, &chain.inbox_cursors(), max_receipts);
                        let credited = incoming.len();
                        let txs = txs.into_iter().map(PreparedTx::new).collect();
                        let produced = chain.execute_agreed_block(
                            txs,
                            incoming,
                            |source, height| {
                                keeper.state.read().final_header(source, height).cloned()
                            },
                            timestamp,
                        )?;
                        finish(shared, chain, &produced, credited, &moved_away, started);
                        Ok(Some(Committed::from(produced)))
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(anyhow::anyhow!("a shard's executor panicked")))
                })
                .collect()
        });
        let mut committed = Vec::new();
        for (result, chain) in results.into_iter().zip(&self.chains) {
            match result? {
                Some(done) => committed.push(done),
                None => {
                    resumed = true;
                    let header = chain.head().clone();
                    committed.push(Committed {
                        shard: header.shard,
                        header,
                        hashes: Vec::new(),
                        receipts: Vec::new(),
                    });
                }
            }
        }
        let headers = committed.iter().map(|c| c.header.clone()).collect();
        let beacon = self
            .keeper
            .record_at(headers, timestamp, Some((block.height, block.hash())))
            .with_context(|| format!("cannot record consensus block {}", block.height))?;
        let beacon_hash = beacon.hash();
        for done in &committed {
            let shared = &self.shards[usize::from(done.shard.0)];
            mark_final(shared, done, &self.new_heads);
            if !done.receipts.is_empty() {
                // The relay of a validator has no bound (every validator
                // must hold the same receipts); it never refuses.
                if self
                    .relay
                    .publish(done.header.height, &done.receipts)
                    .is_err()
                {
                    bail!("the relay refused receipts of shard {}", done.shard);
                }
            }
        }
        if resumed {
            // The receipts of the blocks executed before the crash.
            let recorded: BTreeMap<ShardId, u64> =
                self.keeper.state.read().recorded().into_iter().collect();
            atoll_shard::relay::refill_up_to(&self.relay, &self.chains, &recorded)?;
        }
        for done in &committed {
            super::coordinator::wake_destinations(&self.shards, &done.receipts);
        }
        self.made.insert(block.height, beacon_hash);
        while self.made.len() > KEEP_MADE {
            self.made.pop_first();
        }
        self.progress.send_replace(Executed {
            height: block.height,
            hash: block.hash(),
            beacon: beacon_hash,
            at: Instant::now(),
        });
        Ok(())
    }

    /// Compares what the payload's leader says it made with what this
    /// validator made.
    fn compare(&self, payload: &Payload) {
        let Some((height, theirs)) = payload.executed else {
            return;
        };
        if let Some(ours) = self.made.get(&height) {
            if *ours != theirs {
                tracing::error!(
                    height,
                    ours = %ours,
                    theirs = %theirs,
                    "this validator's state diverges from the leader's at this consensus height"
                );
            }
        }
    }
}

/// When the step enters an epoch with a new map: drops the mempool's
/// transactions of the accounts leaving this shard (as the producer does).
fn leaving(
    shared: &Shared,
    chain: &ShardChain,
    map: &Arc<atoll_primitives::ShardMap>,
) -> Vec<Hash> {
    let mut moved_away = Vec::new();
    if !Arc::ptr_eq(map, chain.shard_map()) && **map != **chain.shard_map() {
        let mut pool = shared.mempool.lock();
        for (address, from, _) in chain.shard_map().moves(map) {
            if from == shared.shard {
                moved_away.extend(pool.prune(address, u64::MAX));
            }
        }
    }
    moved_away
}

/// Builds the payloads this validator proposes.
pub struct Builder {
    /// Every shard.
    pub shards: Vec<Arc<Shared>>,
    /// What the replica executed.
    pub progress: watch::Receiver<Executed>,
    /// Time between blocks when no full block waits.
    pub interval: Duration,
    /// How long to wait for the parent to be executed before proposing
    /// an empty payload.
    pub patience: Duration,
    /// Most transactions per shard.
    pub max_transactions: usize,
    /// Largest payload, in bytes.
    pub max_bytes: usize,
    /// Most receipts a block credits.
    pub max_receipts: u32,
}

impl Builder {
    /// The payload of a block on `parent`.
    pub async fn build(self: Arc<Self>, parent: Hash) -> Vec<u8> {
        let started = tokio::time::Instant::now();
        let mut progress = self.progress.clone();
        loop {
            if progress.borrow().hash == parent {
                break;
            }
            let left =
                (started + self.patience).saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return codec::encode(&self.empty());
            }
            let _ = tokio::time::timeout(left, progress.changed()).await;
        }
        let executed = *progress.borrow();
        // A block interval after the parent, or sooner once a full block
        // is waiting on some shard.
        let due = tokio::time::Instant::from_std(executed.at + self.interval);
        while tokio::time::Instant::now() < due && !self.full_block_waiting() {
            tokio::time::sleep(Duration::from_millis(10).min(due - tokio::time::Instant::now()))
                .await;
        }
        let builder = Arc::clone(&self);
        tokio::task::spawn_blocking(move || builder.take(executed))
            .await
            .unwrap_or_else(|_| codec::encode(&self.empty()))
    }

    fn full_block_waiting(&self) -> bool {
        self.shards
            .iter()
            .any(|s| s.mempool.lock().len() >= self.max_transactions)
    }

    fn empty(&self) -> Payload {
        Payload {
            timestamp_ms: now_ms(),
            shards: vec![Vec::new(); self.shards.len()],
            max_receipts: self.max_receipts,
            executed: None,
        }
    }

    /// Takes each shard's ready transactions (transfers to congested
    /// shards wait), within the payload's byte bound.
    fn take(&self, executed: Executed) -> Vec<u8> {
        let per_shard = self.max_bytes / self.shards.len().max(1);
        let map = Arc::clone(self.shards[0].beacon.read().map());
        let blocked: BTreeSet<ShardId> = {
            let beacon = self.shards[0].beacon.read();
            self.shards
                .iter()
                .map(|s| s.shard)
                .filter(|s| beacon.shard_head(*s).is_some_and(|h| h.congested))
                .collect()
        };
        let shards = self
            .shards
            .iter()
            .map(|shared| {
                let ready = shared.mempool.lock().ready(
                    self.max_transactions.min(MAX_SHARD_TRANSACTIONS),
                    per_shard,
                    |sender| {
                        shared
                            .state
                            .account(&StateKey::Account(*sender))
                            .ok()
                            .flatten()
                            .map_or(0, |account| account.nonce)
                    },
                );
                let ready = if blocked.is_empty() {
                    ready
                } else {
                    hold_back(ready, &map, &blocked)
                };
                ready.into_iter().map(|tx| tx.tx().signed.clone()).collect()
            })
            .collect();
        codec::encode(&Payload {
            timestamp_ms: now_ms(),
            shards,
            max_receipts: self.max_receipts,
            executed: (executed.height > 0).then_some((executed.height, executed.beacon)),
        })
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
