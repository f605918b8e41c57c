//! Clients waiting for a transaction to be included or final
//! (`atoll_sendTransaction` with `wait_until`). The table is bounded: past
//! `limit` waiters a new one is refused (the client can poll instead).

use atoll_primitives::Hash;
use parking_lot::Mutex;
use std::collections::HashMap;
use tokio::sync::oneshot;

/// A stage of a transaction's life a client can wait for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stage {
    /// A committed block includes it.
    Included,
    /// That block is final.
    Final,
}

/// How a wait ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitEnd {
    /// The transaction reached the stage waited for.
    Reached,
    /// The transaction left the mempool without being included: replaced by
    /// a higher fee, evicted, or its nonce was used by another transaction.
    Dropped,
}

struct Waiter {
    until: Stage,
    done: oneshot::Sender<WaitEnd>,
}

/// The waiter table.
pub struct Waiters {
    table: Mutex<(HashMap<Hash, Vec<Waiter>>, usize)>,
    limit: usize,
}

/// The table is full.
#[derive(Debug)]
pub struct TooManyWaiters;

impl Waiters {
    /// An empty table holding at most `limit` waiters.
    pub fn new(limit: usize) -> Waiters {
        Waiters {
            table: Mutex::new((HashMap::new(), 0)),
            limit,
        }
    }

    /// Registers a wait for `hash` to reach `until`; the receiver fires then.
    pub fn register(
        &self,
        hash: Hash,
        until: Stage,
    ) -> Result<oneshot::Receiver<WaitEnd>, TooManyWaiters> {
        let mut table = self.table.lock();
        if table.1 >= self.limit {
            return Err(TooManyWaiters);
        }
        let (done, receiver) = oneshot::channel();
        table
            .0
            .entry(hash)
            .or_default()
            .push(Waiter { until, done });
        table.1 += 1;
        Ok(receiver)
    }

    /// Drops the waits on `hash` whose client went away (timed out or
    /// disconnected).
    pub fn forget_abandoned(&self, hash: &Hash) {
        let mut table = self.table.lock();
        let (map, count) = &mut *table;
        if let Some(list) = map.get_mut(hash) {
            let before = list.len();
            list.retain(|w| !w.done.is_closed());
            *count -= before - list.len();
            if list.is_empty() {
                map.remove(hash);
            }
        }
    }

    /// The transactions `hashes` reached `reached`: wakes every wait on them
    /// for that stage or an earlier one.
    pub fn reached<'a>(&self, hashes: impl IntoIterator<Item = &'a Hash>, reached: Stage) {
        let mut table = self.table.lock();
        let (map, count) = &mut *table;
        if map.is_empty() {
            return;
        }
        for hash in hashes {
            let Some(list) = map.get_mut(hash) else {
                continue;
            };
            let before = list.len();
            let mut kept = Vec::new();
            for waiter in list.drain(..) {
                if waiter.until <= reached {
                    let _ = waiter.done.send(WaitEnd::Reached);
                } else {
                    kept.push(waiter);
                }
            }
            *count -= before - kept.len();
            if kept.is_empty() {
                map.remove(hash);
            } else {
                *list = kept;
            }
        }
    }
}

impl Waiters {
    /// The transactions `hashes` left the mempool without being included:
    /// every wait on them ends with [`WaitEnd::Dropped`].
    pub fn dropped<'a>(&self, hashes: impl IntoIterator<Item = &'a Hash>) {
        let mut table = self.table.lock();
        let (map, count) = &mut *table;
        if map.is_empty() {
            return;
        }
        for hash in hashes {
            if let Some(list) = map.remove(hash) {
                *count -= list.len();
                for waiter in list {
                    let _ = waiter.done.send(WaitEnd::Dropped);
                }
            }
        }
    }
}

impl Waiters {
    /// Ends every wait (the node is stopping): each waiting client gets an
    /// answer at once instead of holding the shutdown up.
    pub fn close_all(&self) {
        let mut table = self.table.lock();
        table.0.clear();
        table.1 = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_fire_at_their_stage_and_the_table_is_bounded() {
        let waiters = Waiters::new(2);
        let a = Hash([1; 32]);
        let mut included = waiters.register(a, Stage::Included).expect("room");
        let mut fin = waiters.register(a, Stage::Final).expect("room");
        assert!(waiters.register(Hash([2; 32]), Stage::Final).is_err());
        waiters.reached([&a], Stage::Included);
        assert_eq!(included.try_recv().ok(), Some(WaitEnd::Reached));
        assert!(fin.try_recv().is_err());
        waiters.reached([&a], Stage::Final);
        assert_eq!(fin.try_recv().ok(), Some(WaitEnd::Reached));
        assert!(waiters.register(Hash([2; 32]), Stage::Final).is_ok());
        let abandoned = waiters.register(Hash([3; 32]), Stage::Final).expect("room");
        drop(abandoned);
        waiters.forget_abandoned(&Hash([3; 32]));
        let mut replaced = waiters.register(Hash([4; 32]), Stage::Final).expect("room");
        waiters.dropped([&Hash([4; 32])]);
        assert_eq!(replaced.try_recv().ok(), Some(WaitEnd::Dropped));
        assert!(waiters.register(Hash([5; 32]), Stage::Final).is_ok());
    }
}
