//! The collaborative scheduler of Block-STM (Gelashvili et al., PPoPP 2023,
//! Algorithms 4 and 5): threads take execution and validation tasks in block
//! order, a transaction that reads an unfinished write waits on a dependency
//! list, and the block is done when both indices pass its end with no task in
//! flight.

use super::mvmemory::{Incarnation, TxnIndex};
use crossbeam_utils::CachePadded;
use parking_lot::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Status {
    ReadyToExecute,
    Executing,
    Executed,
    Aborting,
}

/// A unit of work for a thread.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Task {
    /// Run this incarnation of the transaction.
    Execute(TxnIndex, Incarnation),
    /// Check this incarnation's reads.
    Validate(TxnIndex, Incarnation),
}

/// The counters every thread updates for every transaction each sit on a
/// cache line of their own: on one line, an update of one by a thread made
/// the other threads' next read of another wait for the line to move.
pub(crate) struct Scheduler {
    block_size: usize,
    execution_idx: CachePadded<AtomicUsize>,
    validation_idx: CachePadded<AtomicUsize>,
    decrease_cnt: CachePadded<AtomicUsize>,
    num_active_tasks: CachePadded<AtomicUsize>,
    done_marker: CachePadded<AtomicBool>,
    status: Vec<Mutex<(Incarnation, Status)>>,
    dependencies: Vec<Mutex<Vec<TxnIndex>>>,
}

impl Scheduler {
    pub(crate) fn new(block_size: usize) -> Scheduler {
        Scheduler {
            block_size,
            execution_idx: CachePadded::new(AtomicUsize::new(0)),
            validation_idx: CachePadded::new(AtomicUsize::new(0)),
            decrease_cnt: CachePadded::new(AtomicUsize::new(0)),
            num_active_tasks: CachePadded::new(AtomicUsize::new(0)),
            done_marker: CachePadded::new(AtomicBool::new(false)),
            status: (0..block_size)
                .map(|_| Mutex::new((0, Status::ReadyToExecute)))
                .collect(),
            dependencies: (0..block_size).map(|_| Mutex::new(Vec::new())).collect(),
        }
    }

    /// Whether every transaction is executed and validated.
    pub(crate) fn done(&self) -> bool {
        self.done_marker.load(Ordering::Acquire)
    }

    /// Whether every execution and validation task has been handed out
    /// (threads that find no task then wait for the others to finish).
    pub(crate) fn handed_out(&self) -> bool {
        self.execution_idx.load(Ordering::Relaxed) >= self.block_size
            && self.validation_idx.load(Ordering::Relaxed) >= self.block_size
    }

    /// Stops all threads early (on a storage error).
    pub(crate) fn halt(&self) {
        self.done_marker.store(true, Ordering::Release);
    }

    /// The flag `halt` sets, for a guard that halts when a thread panics.
    pub(crate) fn done_flag(&self) -> &AtomicBool {
        &self.done_marker
    }

    fn decrease_execution_idx(&self, target: usize) {
        self.execution_idx.fetch_min(target, Ordering::SeqCst);
        self.decrease_cnt.fetch_add(1, Ordering::SeqCst);
    }

    fn decrease_validation_idx(&self, target: usize) {
        self.validation_idx.fetch_min(target, Ordering::SeqCst);
        self.decrease_cnt.fetch_add(1, Ordering::SeqCst);
    }

    fn check_done(&self) {
        let observed = self.decrease_cnt.load(Ordering::SeqCst);
        let execution = self.execution_idx.load(Ordering::SeqCst);
        let validation = self.validation_idx.load(Ordering::SeqCst);
        if execution.min(validation) >= self.block_size
            && self.num_active_tasks.load(Ordering::SeqCst) == 0
            && observed == self.decrease_cnt.load(Ordering::SeqCst)
        {
            self.done_marker.store(true, Ordering::Release);
        }
    }

    fn try_incarnate(&self, txn: usize) -> Option<Task> {
        if txn < self.block_size {
            let mut status = self.status[txn].lock();
            if status.1 == Status::ReadyToExecute {
                status.1 = Status::Executing;
                return Some(Task::Execute(txn as TxnIndex, status.0));
            }
        }
        self.num_active_tasks.fetch_sub(1, Ordering::SeqCst);
        None
    }

    fn next_version_to_execute(&self) -> Option<Task> {
        if self.execution_idx.load(Ordering::SeqCst) >= self.block_size {
            self.check_done();
            return None;
        }
        self.num_active_tasks.fetch_add(1, Ordering::SeqCst);
        let txn = self.execution_idx.fetch_add(1, Ordering::SeqCst);
        self.try_incarnate(txn)
    }

    fn next_version_to_validate(&self) -> Option<Task> {
        if self.validation_idx.load(Ordering::SeqCst) >= self.block_size {
            self.check_done();
            return None;
        }
        self.num_active_tasks.fetch_add(1, Ordering::SeqCst);
        let txn = self.validation_idx.fetch_add(1, Ordering::SeqCst);
        if txn < self.block_size {
            let status = *self.status[txn].lock();
            if status.1 == Status::Executed {
                return Some(Task::Validate(txn as TxnIndex, status.0));
            }
        }
        self.num_active_tasks.fetch_sub(1, Ordering::SeqCst);
        None
    }

    /// The next task for an idle thread, if any is available now.
    pub(crate) fn next_task(&self) -> Option<Task> {
        if self.validation_idx.load(Ordering::SeqCst) < self.execution_idx.load(Ordering::SeqCst) {
            self.next_version_to_validate()
        } else {
            self.next_version_to_execute()
        }
    }

    /// Makes `txn` wait for `blocking`. Returns false if `blocking` finished in
    /// the meantime (then `txn` should simply be executed again at once).
    pub(crate) fn add_dependency(&self, txn: TxnIndex, blocking: TxnIndex) -> bool {
        let mut waiting = self.dependencies[blocking as usize].lock();
        if self.status[blocking as usize].lock().1 == Status::Executed {
            return false;
        }
        self.status[txn as usize].lock().1 = Status::Aborting;
        waiting.push(txn);
        drop(waiting);
        self.num_active_tasks.fetch_sub(1, Ordering::SeqCst);
        true
    }

    fn set_ready_status(&self, txn: TxnIndex) {
        let mut status = self.status[txn as usize].lock();
        debug_assert_eq!(status.1, Status::Aborting);
        *status = (status.0 + 1, Status::ReadyToExecute);
    }

    /// Records that an incarnation finished; may hand back its validation.
    pub(crate) fn finish_execution(
        &self,
        txn: TxnIndex,
        incarnation: Incarnation,
        wrote_new_key: bool,
    ) -> Option<Task> {
        self.status[txn as usize].lock().1 = Status::Executed;
        let waiting = std::mem::take(&mut *self.dependencies[txn as usize].lock());
        if let Some(&lowest) = waiting.iter().min() {
            for &dependent in &waiting {
                self.set_ready_status(dependent);
            }
            self.decrease_execution_idx(lowest as usize);
        }
        if self.validation_idx.load(Ordering::SeqCst) > txn as usize {
            if wrote_new_key {
                self.decrease_validation_idx(txn as usize);
            } else {
                return Some(Task::Validate(txn, incarnation));
            }
        }
        self.num_active_tasks.fetch_sub(1, Ordering::SeqCst);
        None
    }

    /// Marks a validated incarnation as aborted, unless another thread already
    /// did (only one abort per incarnation).
    pub(crate) fn try_validation_abort(&self, txn: TxnIndex, incarnation: Incarnation) -> bool {
        let mut status = self.status[txn as usize].lock();
        if *status == (incarnation, Status::Executed) {
            status.1 = Status::Aborting;
            return true;
        }
        false
    }

    /// Records a validation result; after an abort, may hand back the re-execution.
    pub(crate) fn finish_validation(&self, txn: TxnIndex, aborted: bool) -> Option<Task> {
        if aborted {
            self.set_ready_status(txn);
            self.decrease_validation_idx(txn as usize + 1);
            if self.execution_idx.load(Ordering::SeqCst) > txn as usize {
                return self.try_incarnate(txn as usize);
            }
        }
        self.num_active_tasks.fetch_sub(1, Ordering::SeqCst);
        None
    }
}
