//! The Block-STM parallel executor (Gelashvili et al., "Block-STM: Scaling
//! Blockchain Execution by Turning Ordering Curse to a Performance Blessing",
//! PPoPP 2023).
//!
//! Transactions run optimistically, in the block's order, on several threads
//! over a multi-version memory ([`mvmemory`]); each run records what it read,
//! validation re-reads and aborts an incarnation whose reads changed, and the
//! collaborative [`scheduler`] hands out execution and validation tasks. The
//! result is the state the transactions produce one after another, which the
//! differential tests check against [`super::sequential`].
//!
//! Native transfers declare their keys, which are entered as ESTIMATE markers
//! before the threads start, so a transfer waits for the earlier transfer it
//! depends on instead of being executed, aborted and executed again.
//! Transactions that declare nothing would take the purely optimistic path of
//! the paper through the same code.

mod mvmemory;
mod scheduler;

use super::declared::HaltOnPanic;
use super::rules::{declared_keys, execute_transaction, TxEffect, TxReader};
use super::{BlockContext, BlockOutput, ExecutionPath, ExecutionStats, PreparedTx};
use crate::error::ShardError;
use crate::state::StateView;
use ahash::RandomState;
use atoll_primitives::{StateKey, StateValue};
use mvmemory::{Incarnation, MvMemory, MvRead, ReadOrigin, ReadSet, TxnIndex};
use parking_lot::Mutex;
use rayon::prelude::*;
use scheduler::{Scheduler, Task};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// How many leading transactions [`mostly_serial`] looks at.
const SERIAL_SAMPLE: usize = 512;

/// Whether the block's leading transactions form mostly one chain of
/// dependencies (e.g. everyone pays the same account), judged from their
/// declared keys. Block-STM could only run such a block one transaction at a
/// time, with its bookkeeping on top, so it goes to the sequential executor.
pub(crate) fn mostly_serial(ctx: &BlockContext, txs: &[PreparedTx]) -> bool {
    let sample = &txs[..txs.len().min(SERIAL_SAMPLE)];
    let mut depth_of: HashMap<StateKey, usize, RandomState> =
        HashMap::with_capacity_and_hasher(sample.len() * 2, RandomState::new());
    let mut longest_chain = 0;
    for tx in sample {
        let keys = declared_keys(ctx, tx);
        let depth = 1 + keys
            .iter()
            .map(|k| depth_of.get(k).copied().unwrap_or(0))
            .max()
            .unwrap_or(0);
        for key in keys {
            depth_of.insert(key, depth);
        }
        longest_chain = longest_chain.max(depth);
    }
    // Fewer than two transactions could run at once on average.
    longest_chain * 2 > sample.len()
}

/// Executions a thread has seen before contention may stop Block-STM.
const CONTENTION_SAMPLE: u64 = 128;

/// Why a transaction stopped before finishing.
enum Stop {
    /// It read an ESTIMATE of this lower transaction.
    Dependency(TxnIndex),
    /// The committed state could not be read.
    Storage(ShardError),
}

struct MvReader<'a> {
    memory: &'a MvMemory,
    state: &'a dyn StateView,
    txn: TxnIndex,
    reads: ReadSet,
}

impl TxReader for MvReader<'_> {
    type Stop = Stop;

    fn read(&mut self, key: &StateKey) -> Result<Option<StateValue>, Stop> {
        match self.memory.read(key, self.txn) {
            MvRead::Value(writer, incarnation, value) => {
                self.reads
                    .push((*key, ReadOrigin::Version(writer, incarnation)));
                Ok(value)
            }
            MvRead::NotFound => {
                self.reads.push((*key, ReadOrigin::Storage));
                self.state.get(key).map_err(Stop::Storage)
            }
            MvRead::Dependency(blocking) => Err(Stop::Dependency(blocking)),
        }
    }
}

struct Worker<'a> {
    ctx: &'a BlockContext,
    txs: &'a [PreparedTx],
    state: &'a dyn StateView,
    memory: MvMemory,
    scheduler: Scheduler,
    effects: Vec<Mutex<Option<TxEffect>>>,
    error: Mutex<Option<ShardError>>,
    /// Executions and aborts of all threads, added once each thread is done.
    executions: AtomicU64,
    aborts: AtomicU64,
    /// Whether to stop when conflicts show the block is mostly serial.
    give_up_on_contention: bool,
    /// Set when it stopped for that reason.
    gave_up: AtomicBool,
}

/// One thread's counters, added up when the thread is done: a counter
/// shared by all threads and bumped on every execution made each wait for
/// the other's cache line (a fifth of the task loop's own time in a profile
/// of ERC-20 transfers on 2 cores).
#[derive(Default)]
struct Tally {
    executions: u64,
    aborts: u64,
    /// Aborts plus waits on a lower transaction's ESTIMATE.
    conflicts: u64,
}

impl Worker<'_> {
    /// The thread loop of the paper's Algorithm 1.
    fn run(&self) {
        // A panicking thread would leave its task counted as active forever.
        let _halt_on_panic = HaltOnPanic(self.scheduler.done_flag());
        let mut tally = Tally::default();
        let mut task = None;
        while !self.scheduler.done() {
            task = match task {
                Some(Task::Execute(txn, incarnation)) => {
                    self.try_execute(txn, incarnation, &mut tally)
                }
                Some(Task::Validate(txn, incarnation)) => {
                    self.needs_reexecution(txn, incarnation, &mut tally)
                }
                None => {
                    let next = self.scheduler.next_task();
                    if next.is_none() {
                        if self.scheduler.handed_out() {
                            // Only the other threads' last tasks are left.
                            std::thread::yield_now();
                        } else {
                            // The index passed a transaction another thread is
                            // still executing: the next one is likely ready.
                            std::hint::spin_loop();
                        }
                    }
                    next
                }
            };
        }
        self.executions
            .fetch_add(tally.executions, Ordering::Relaxed);
        self.aborts.fetch_add(tally.aborts, Ordering::Relaxed);
    }

    /// Algorithm 3, `try_execute`.
    fn try_execute(
        &self,
        txn: TxnIndex,
        incarnation: Incarnation,
        tally: &mut Tally,
    ) -> Option<Task> {
        loop {
            let mut reader = MvReader {
                memory: &self.memory,
                state: self.state,
                txn,
                reads: ReadSet::new(),
            };
            match execute_transaction(self.ctx, &self.txs[txn as usize], &mut reader) {
                Ok(mut effect) => {
                    // The memory keeps the writes; the effect keeps what the
                    // block's output needs.
                    let writes = std::mem::take(&mut effect.writes);
                    let wrote_new_key = self.memory.record(txn, incarnation, reader.reads, writes);
                    *self.effects[txn as usize].lock() = Some(effect);
                    tally.executions += 1;
                    return self
                        .scheduler
                        .finish_execution(txn, incarnation, wrote_new_key);
                }
                Err(Stop::Dependency(blocking)) => {
                    self.note_conflict(tally);
                    if self.scheduler.add_dependency(txn, blocking) {
                        return None;
                    }
                    // The blocking transaction finished meanwhile: run again now.
                }
                Err(Stop::Storage(error)) => {
                    self.error.lock().get_or_insert(error);
                    self.scheduler.halt();
                    return None;
                }
            }
        }
    }

    /// Algorithm 3, `needs_reexecution`.
    fn needs_reexecution(
        &self,
        txn: TxnIndex,
        incarnation: Incarnation,
        tally: &mut Tally,
    ) -> Option<Task> {
        let valid = self.memory.validate_read_set(txn);
        let aborted = !valid && self.scheduler.try_validation_abort(txn, incarnation);
        if aborted {
            self.memory.convert_writes_to_estimates(txn);
            tally.aborts += 1;
            self.note_conflict(tally);
        }
        self.scheduler.finish_validation(txn, aborted)
    }

    /// Counts a conflict; with `give_up_on_contention`, halts the block once
    /// this thread's conflicts pass a third of its executions (after a first
    /// sample):
    /// such a block (every swap on one pool) runs faster sequentially than
    /// through aborts and waits, and the transactions' declared keys could
    /// not tell (a contract call declares only its sender).
    fn note_conflict(&self, tally: &mut Tally) {
        tally.conflicts += 1;
        if self.give_up_on_contention
            && tally.executions >= CONTENTION_SAMPLE
            && tally.conflicts * 3 > tally.executions
        {
            self.gave_up.store(true, Ordering::Relaxed);
            self.scheduler.halt();
        }
    }
}

/// Executes `txs` with Block-STM on the threads of `pool`.
pub(crate) fn execute(
    ctx: &BlockContext,
    txs: &[PreparedTx],
    state: &dyn StateView,
    pool: &rayon::ThreadPool,
    use_declared_keys: bool,
    give_up_on_contention: bool,
) -> Result<(BlockOutput, ExecutionStats), ShardError> {
    let declared = if use_declared_keys {
        pool.install(|| txs.par_iter().map(|tx| declared_keys(ctx, tx)).collect())
    } else {
        vec![Default::default(); txs.len()]
    };
    let worker = Worker {
        ctx,
        txs,
        state,
        memory: MvMemory::with_estimates(declared, pool),
        scheduler: Scheduler::new(txs.len()),
        effects: (0..txs.len()).map(|_| Mutex::new(None)).collect(),
        error: Mutex::new(None),
        executions: AtomicU64::new(0),
        aborts: AtomicU64::new(0),
        give_up_on_contention,
        gave_up: AtomicBool::new(false),
    };
    pool.broadcast(|_| worker.run());
    if let Some(error) = worker.error.into_inner() {
        return Err(error);
    }
    if worker.gave_up.into_inner() {
        // Mostly serial after all: what ran is dropped and the block runs
        // on one thread, which is never much slower than sequential.
        let output = super::sequential::execute(ctx, txs, state)?;
        let stats = ExecutionStats {
            path: ExecutionPath::Sequential,
            executions: worker.executions.into_inner() + txs.len() as u64,
            aborts: worker.aborts.into_inner(),
        };
        return Ok((output, stats));
    }
    let stats = ExecutionStats {
        path: ExecutionPath::Parallel,
        executions: worker.executions.into_inner(),
        aborts: worker.aborts.into_inner(),
    };
    let (memory, effects) = (worker.memory, worker.effects);
    // The final writes are gathered on one thread while the outcomes are
    // assembled on the other.
    let (state_changes, mut output) = pool.join(
        || {
            let mut changes = memory.final_writes();
            super::sort::sort_changes(&mut changes, Some(pool));
            changes
        },
        || {
            let effects = effects.into_iter().map(|e| {
                e.into_inner()
                    .expect("every transaction has executed once the scheduler is done")
            });
            BlockOutput::assemble(ctx, txs, effects, Vec::new(), None)
        },
    );
    output.state_changes = state_changes;
    // Freeing the memory takes a few milliseconds: it is done in the
    // background, by a thread of the pool.
    pool.spawn(move || drop(memory));
    Ok((output, stats))
}
