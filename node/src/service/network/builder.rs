//! What a consensus block carries ([`Payload`]) and how a leader builds it
//! ([`Builder`]).
//!
//! A leader builds its payload once it has executed the parent (so its
//! mempool no longer holds the parent's transactions) and a block interval
//! has passed since a block last carried transactions of the shards it
//! would order now, or a full block is waiting. With every validator in
//! every committee that is the parent's payload; with smaller committees a
//! leader orders only its own shards, so when the parent's leader was of
//! another committee it proposes at once (no sooner than a quarter
//! interval after the parent): each shard then gets a block every
//! interval whichever committee leads, instead of waiting a random number
//! of intervals for one of its members. If the parent is not executed in
//! time (it may be notarized but not yet final), the payload is empty: an
//! empty payload extends the chain and lets its finalization finalize the
//! parent. It carries the account moves this validator's operator asked
//! for (`atoll_moveAccount`), which every validator schedules once the
//! block is final.

use super::committee_view::CommitteeView;
use super::replica::Executed;
use super::wire::{
    CertifiedHeader, MoveRequest, Payload, MAX_PAYLOAD_MOVES, MAX_SHARD_TRANSACTIONS,
};
use crate::service::common::clock::now_ms;
use crate::service::common::keeper::BeaconKeeper;
use crate::service::common::selection::hold_back;
use crate::service::common::shared::Shared;
use atoll_primitives::{codec, Hash, ShardId};
use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

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
    /// The committees, with the certified headers collected.
    pub committee: Arc<CommitteeView>,
    /// The beacon, with the account moves this validator's operator asked
    /// for.
    pub keeper: Arc<BeaconKeeper>,
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
                tracing::info!(
                    target: "consensus",
                    patience = ?self.patience,
                    "the parent is not executed yet: proposing an empty payload"
                );
                return codec::encode(&self.empty());
            }
            let _ = tokio::time::timeout(left, progress.changed()).await;
        }
        let executed = *progress.borrow();
        let carried_ms = self.oldest_waiting().unwrap_or(executed.proposed_ms);
        let due =
            tokio::time::Instant::from_std(due(executed, carried_ms, self.interval, now_ms()));
        while tokio::time::Instant::now() < due && !self.full_block_waiting() {
            tokio::time::sleep(Duration::from_millis(10).min(due - tokio::time::Instant::now()))
                .await;
        }
        let builder = Arc::clone(&self);
        tokio::task::spawn_blocking(move || builder.take())
            .await
            .unwrap_or_else(|_| codec::encode(&self.empty()))
    }

    /// When a block last carried transactions of the tracked shard that
    /// has waited longest among those with transactions ready to order
    /// (Unix ms); None when no tracked shard has any.
    fn oldest_waiting(&self) -> Option<u64> {
        self.shards
            .iter()
            .filter(|s| s.tracked.load(Ordering::Acquire))
            .filter(|s| {
                let pool = s.mempool.lock();
                pool.len() > pool.queued()
            })
            .map(|s| s.carried_ms.load(Ordering::Acquire))
            .min()
    }

    fn full_block_waiting(&self) -> bool {
        self.shards
            .iter()
            .any(|s| s.mempool.lock().len() >= self.max_transactions)
    }

    fn certified(&self) -> Vec<CertifiedHeader> {
        let beacon = self.shards[0].beacon.read();
        self.committee
            .certifier
            .lock()
            .certified(&self.committee, &beacon)
    }

    fn empty(&self) -> Payload {
        Payload {
            timestamp_ms: now_ms(),
            shards: vec![Vec::new(); self.shards.len()],
            max_receipts: self.max_receipts,
            certified: self.certified(),
            moves: Vec::new(),
        }
    }

    /// Takes each tracked shard's ready transactions (transfers to
    /// congested shards wait), within the payload's byte bound, and the
    /// certified headers.
    fn take(&self) -> Vec<u8> {
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
                if !shared.tracked.load(Ordering::Acquire) {
                    // Its state is not here to order transactions by.
                    return Vec::new();
                }
                let ready = shared.mempool.lock().ready_within_gas(
                    self.max_transactions.min(MAX_SHARD_TRANSACTIONS),
                    per_shard,
                    shared.gas.block_gas_limit,
                    |sender| {
                        shared
                            .state
                            .account(sender)
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
        let moves = self
            .keeper
            .moves_to_propose(MAX_PAYLOAD_MOVES)
            .into_iter()
            .map(|(address, to)| MoveRequest { address, to })
            .collect();
        codec::encode(&Payload {
            timestamp_ms: now_ms(),
            shards,
            max_receipts: self.max_receipts,
            certified: self.certified(),
            moves,
        })
    }
}

/// When a leader proposes on `parent` (executed): a block interval after
/// `carried_ms`, the payload timestamp of the block that last carried the
/// waiting transactions' shard (the parent's, when every leader orders
/// every shard), so that the parent's consensus and execution overlap the
/// interval instead of adding to it; never sooner than a quarter interval
/// after the parent's payload was built; never later than an interval
/// after the parent was executed (a clock ahead of this one costs no more
/// than that), never before now. The caller proposes sooner once a full
/// block is waiting on some shard.
fn due(parent: Executed, carried_ms: u64, interval: Duration, now_ms: u64) -> std::time::Instant {
    let now = std::time::Instant::now();
    let since = |ms: u64| Duration::from_millis(now_ms.saturating_sub(ms));
    let after_carried = now + interval.saturating_sub(since(carried_ms));
    let floor = now + (interval / 4).saturating_sub(since(parent.proposed_ms));
    (parent.at + interval)
        .min(after_carried)
        .max(floor)
        .max(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parent(at: std::time::Instant, proposed_ms: u64) -> Executed {
        Executed {
            height: 1,
            hash: Hash::ZERO,
            at,
            proposed_ms,
        }
    }

    #[test]
    fn the_interval_runs_from_the_parents_proposal() {
        let interval = Duration::from_millis(500);
        let now = std::time::Instant::now();
        let clock = 1_000_000;
        let due =
            |parent: Executed, interval, clock| due(parent, parent.proposed_ms, interval, clock);
        // Proposed 300 ms ago and executed just now: 200 ms to go.
        let wait = due(parent(now, clock - 300), interval, clock).saturating_duration_since(now);
        assert!(
            wait > Duration::from_millis(150) && wait < Duration::from_millis(250),
            "{wait:?}"
        );
        // Its consensus and execution took longer than the interval: now.
        let late = due(parent(now, clock - 2_000), interval, clock);
        assert!(late.saturating_duration_since(now) < Duration::from_millis(50));
        // Unknown (at start): now.
        let start = due(parent(now, 0), interval, clock);
        assert!(start.saturating_duration_since(now) < Duration::from_millis(50));
        // A leader's clock far ahead: no later than an interval after the
        // parent was executed.
        let executed = now - Duration::from_millis(100);
        let ahead = due(parent(executed, clock + 10_000), interval, clock);
        assert!(ahead <= executed + interval);
    }

    #[test]
    fn a_shard_last_carried_long_ago_does_not_wait_for_the_interval() {
        let interval = Duration::from_millis(500);
        let now = std::time::Instant::now();
        let clock = 1_000_000;
        let wait = |parent: Executed, carried| {
            due(parent, carried, interval, clock).saturating_duration_since(now)
        };
        // The parent (of another committee) was proposed 300 ms ago; this
        // leader's shard was last carried 600 ms ago: at once.
        let other = parent(now, clock - 300);
        assert!(wait(other, clock - 600) < Duration::from_millis(50));
        // Never carried: at once too.
        assert!(wait(other, 0) < Duration::from_millis(50));
        // Carried 200 ms ago (by the block before the parent): 300 ms on.
        let rest = wait(other, clock - 200);
        assert!(
            rest > Duration::from_millis(250) && rest < Duration::from_millis(350),
            "{rest:?}"
        );
        // The parent was proposed 50 ms ago: no sooner than a quarter
        // interval after it, however long the shard has waited.
        let fresh = wait(parent(now, clock - 50), 0);
        assert!(
            fresh > Duration::from_millis(50) && fresh < Duration::from_millis(100),
            "{fresh:?}"
        );
    }
}
