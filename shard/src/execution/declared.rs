//! The dependency-ordered executor, for blocks in which every transaction
//! declares the keys it may touch (native transfers do).
//!
//! With the keys known in advance there is nothing to speculate about: each
//! transaction runs once, after the earlier transactions that declared any of
//! its keys, and reads their results straight from their slots. There is no
//! multi-version map, no validation and no re-execution — the work Block-STM
//! would spend discovering dependencies the transactions already state.
//!
//! One worker works out the dependencies chunk by chunk (a map from key to
//! its latest declarer) and publishes each chunk; the other workers start
//! executing as soon as the first chunk is out, and the first joins them when
//! the map is done, so this serial step overlaps execution.
//! Workers claim short runs of transactions in block order from a shared
//! counter; a worker whose transaction must wait spins (then yields) on the
//! earlier one, which another worker has already claimed and is running, so
//! the block always makes progress.
//!
//! Placements are read but never declared: only contract actions write
//! them, and a block with one goes to Block-STM.
//!
//! A declared key a transaction did not write after all (a failed transfer
//! does not touch its recipient) is read from the last transaction that did
//! write it, which each finished transaction records for its keys, so a read
//! costs one lookup however many failed declarers lie in between.

use super::rules::{declared_keys, execute_transaction, TxEffect, TxReader};
use super::{BlockContext, BlockOutput, PreparedTx};
use crate::error::ShardError;
use crate::state::StateView;
use ahash::RandomState;
use atoll_primitives::{StateChange, StateKey, StateValue};
use parking_lot::Mutex;
use rayon::prelude::*;
use smallvec::SmallVec;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::OnceLock;

/// For one transaction: each declared key with the previous transaction that
/// declared it (`None`: no earlier transaction in the block did).
type Dependencies = SmallVec<[(StateKey, Option<u32>); 3]>;

/// Transactions per published chunk of dependencies.
const CHUNK: usize = 256;
/// Transactions a worker claims at a time.
const CLAIM: usize = 16;

/// Why a transaction stopped.
enum Stop {
    /// It read a key it did not declare: this path cannot run the block.
    Undeclared,
    /// The committed state could not be read.
    Storage(ShardError),
}

/// A transaction that has run.
struct Finished {
    effect: TxEffect,
    /// For each declared key, the last transaction up to and including this
    /// one that actually wrote it (`None`: none in this block).
    last_writers: SmallVec<[(StateKey, Option<u32>); 2]>,
}

struct Block<'a> {
    ctx: &'a BlockContext,
    txs: &'a [PreparedTx],
    state: &'a dyn StateView,
    /// Dependencies of transactions `c * CHUNK ..`, published chunk by chunk.
    dependencies: Vec<OnceLock<Vec<Dependencies>>>,
    /// One slot per transaction, filled when it has run.
    slots: Vec<OnceLock<Finished>>,
    next: AtomicUsize,
    halted: AtomicBool,
    stop: Mutex<Option<Stop>>,
}

impl Block<'_> {
    /// The dependencies of `txn`, once its chunk is published.
    fn dependencies(&self, txn: usize) -> Option<&Dependencies> {
        self.dependencies[txn / CHUNK]
            .get()
            .map(|chunk| &chunk[txn % CHUNK])
    }

    /// Works out and publishes every chunk of dependencies; returns the map
    /// from each declared key to its last declarer.
    fn publish_dependencies(&self) -> HashMap<StateKey, u32, RandomState> {
        let mut last_declarer: HashMap<StateKey, u32, RandomState> =
            HashMap::with_capacity_and_hasher(self.txs.len() * 2, RandomState::new());
        for (c, chunk) in self.txs.chunks(CHUNK).enumerate() {
            let deps = chunk
                .iter()
                .enumerate()
                .map(|(i, tx)| {
                    let txn = (c * CHUNK + i) as u32;
                    declared_keys(self.ctx, tx)
                        .into_iter()
                        .map(|key| (key, last_declarer.insert(key, txn)))
                        .collect()
                })
                .collect();
            if self.dependencies[c].set(deps).is_err() {
                unreachable!("only worker 0 publishes dependencies");
            }
        }
        last_declarer
    }

    /// Spins, then yields, until `ready` holds; false if the block halted.
    fn spin_until(&self, ready: impl Fn() -> bool) -> bool {
        let mut spins = 0u32;
        while !ready() {
            if self.halted.load(Ordering::Acquire) {
                return false;
            }
            spins += 1;
            if spins < 64 {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
        true
    }
    /// The value of `key` after transaction `declarer` (which declared it)
    /// and everything before it; `None` means the committed state. The
    /// declarer has finished (see `wait_for`), and its slot names the last
    /// transaction that actually wrote the key, so this is one lookup however
    /// many declarers in between failed without writing.
    /// `Some(None)`: a transaction deleted it.
    fn written_before(&self, key: &StateKey, declarer: Option<u32>) -> Option<Option<StateValue>> {
        let writer = self.last_writer(key, declarer)?;
        let written = self.slots[writer as usize]
            .get()
            .expect("a recorded writer has finished");
        written
            .effect
            .writes
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, value)| value.clone())
    }

    /// The last transaction up to `declarer` (which declared `key`) that
    /// wrote `key`.
    fn last_writer(&self, key: &StateKey, declarer: Option<u32>) -> Option<u32> {
        let slot = self.slots[declarer? as usize]
            .get()
            .expect("a transaction runs after its dependencies finish");
        slot.last_writers
            .iter()
            .find(|(k, _)| k == key)
            .and_then(|(_, w)| *w)
    }

    /// Waits until `txn`'s dependencies are published and every earlier
    /// declarer of its keys has finished. Their own dependencies finished
    /// before them, so the whole chain has.
    fn wait_for(&self, txn: usize) -> Option<&Dependencies> {
        if !self.spin_until(|| self.dependencies(txn).is_some()) {
            return None;
        }
        let deps = self.dependencies(txn)?;
        for (_, prev) in deps {
            if let Some(j) = *prev {
                if !self.spin_until(|| self.slots[j as usize].get().is_some()) {
                    return None;
                }
            }
        }
        Some(deps)
    }

    fn halt(&self, stop: Stop) {
        self.stop.lock().get_or_insert(stop);
        self.halted.store(true, Ordering::Release);
    }

    fn run(&self) {
        let _halt_on_panic = HaltOnPanic(&self.halted);
        loop {
            // Claim a run of transactions: one contended counter update per
            // run instead of per transaction. Dependencies point backwards,
            // to transactions a running worker has already claimed, so
            // claiming ahead cannot deadlock.
            let first = self.next.fetch_add(CLAIM, Ordering::Relaxed);
            if first >= self.txs.len() {
                return;
            }
            for txn in first..(first + CLAIM).min(self.txs.len()) {
                let Some(dependencies) = self.wait_for(txn) else {
                    return;
                };
                let mut reader = Reader {
                    block: self,
                    dependencies,
                };
                match execute_transaction(self.ctx, &self.txs[txn], &mut reader) {
                    Ok(effect) => {
                        let last_writers = dependencies
                            .iter()
                            .map(|(key, prev)| {
                                let wrote = effect.writes.iter().any(|(k, _)| k == key);
                                (
                                    *key,
                                    if wrote {
                                        Some(txn as u32)
                                    } else {
                                        self.last_writer(key, *prev)
                                    },
                                )
                            })
                            .collect();
                        if self.slots[txn]
                            .set(Finished {
                                effect,
                                last_writers,
                            })
                            .is_err()
                        {
                            unreachable!("each transaction index is claimed by exactly one worker");
                        }
                    }
                    Err(stop) => return self.halt(stop),
                }
            }
        }
    }
}

/// Stops the other workers if this one panics, so they do not wait forever
/// on a transaction that will never finish; rayon re-raises the panic once
/// every worker has returned.
pub(crate) struct HaltOnPanic<'a>(pub(crate) &'a AtomicBool);

impl Drop for HaltOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.store(true, Ordering::Release);
        }
    }
}

struct Reader<'a, 'b> {
    block: &'a Block<'b>,
    dependencies: &'a Dependencies,
}

impl TxReader for Reader<'_, '_> {
    type Stop = Stop;

    fn read(&mut self, key: &StateKey) -> Result<Option<StateValue>, Stop> {
        let Some((_, prev)) = self.dependencies.iter().find(|(k, _)| k == key) else {
            // No transfer writes a placement (the code a transfer may run
            // has too little gas to create), so the block's own state
            // holds every placement its transactions can see.
            if let StateKey::Placement(_) = key {
                return self.block.state.get(key).map_err(Stop::Storage);
            }
            return Err(Stop::Undeclared);
        };
        match self.block.written_before(key, *prev) {
            Some(value) => Ok(value),
            None => self.block.state.get(key).map_err(Stop::Storage),
        }
    }
}

/// Runs `txs` in dependency order on the threads of `pool`. Returns `Ok(None)` if
/// a transaction read a key it had not declared (the caller then uses
/// Block-STM).
pub(crate) fn execute(
    ctx: &BlockContext,
    txs: &[PreparedTx],
    state: &dyn StateView,
    pool: &rayon::ThreadPool,
) -> Result<Option<BlockOutput>, ShardError> {
    let block = Block {
        ctx,
        txs,
        state,
        dependencies: (0..txs.len().div_ceil(CHUNK))
            .map(|_| OnceLock::new())
            .collect(),
        slots: (0..txs.len()).map(|_| OnceLock::new()).collect(),
        next: AtomicUsize::new(0),
        halted: AtomicBool::new(false),
        stop: Mutex::new(None),
    };
    // Every worker of the pool runs the block; the first also publishes the
    // dependencies, which the others wait for chunk by chunk.
    let last_declarer = pool
        .broadcast(|worker| {
            let published = (worker.index() == 0).then(|| block.publish_dependencies());
            block.run();
            published
        })
        .into_iter()
        .flatten()
        .next()
        .expect("worker 0 of the pool publishes the dependencies");
    match block.stop.lock().take() {
        Some(Stop::Storage(error)) => return Err(error),
        Some(Stop::Undeclared) => return Ok(None),
        None => {}
    }
    // The final value of each declared key: its last declarer's write, or an
    // earlier one's when the last did not write it after all.
    let last_declarers: Vec<(StateKey, u32)> = last_declarer.into_iter().collect();
    let writes: Vec<StateChange> = pool.install(|| {
        last_declarers
            .par_iter()
            .filter_map(|(key, last)| {
                block
                    .written_before(key, Some(*last))
                    .map(|value| (*key, value))
            })
            .collect()
    });
    let effects = block.slots.into_iter().map(|slot| {
        slot.into_inner()
            .expect("every transaction ran once the threads are done")
            .effect
    });
    Ok(Some(BlockOutput::assemble(
        ctx,
        txs,
        effects,
        writes,
        Some(pool),
    )))
}
