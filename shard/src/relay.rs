//! Carrying receipts from source shards to destination shards.
//!
//! [`ReceiptRelay`] is the interface: a source shard hands over the receipts
//! of each block once the beacon has finalized it, with their proofs; a
//! destination asks for the receipts that follow its inbox cursors, applies
//! them, and acknowledges its new cursors. Nothing is dropped before it is
//! acknowledged, so a destination that fails before its commit asks again
//! and gets the same receipts. [`InProcessRelay`] is the implementation
//! for shards in one process; the network issue adds one over libp2p.
//!
//! Backpressure: each destination's backlog is bounded, and the relay says
//! when it is congested, half way to the bound
//! ([`ReceiptRelay::congested`]): the destination then reports it in its
//! header, and sources hold new transfers to it back in their mempools
//! while the rest of the bound absorbs what is already on its way. A source
//! announces its receipts when it commits them ([`ReceiptRelay::announce`]),
//! before the beacon makes them final and they are published, so receipts
//! between commit and publication count towards congestion too: sources
//! stop within a block of the signal, and what waits to be published stays
//! bounded (half the bound plus one block per source).

use crate::error::ShardError;
use crate::inbox::prove_receipts;
use atoll_primitives::{ProvenReceipt, Receipt, ShardId};
use atoll_storage::ShardStore;
use parking_lot::Mutex;
use std::collections::{BTreeMap, VecDeque};
use thiserror::Error;

/// The relay refused receipts: the destination's backlog is full.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("shard {destination} has {backlog} receipts waiting, its limit; hold cross-shard transfers to it back")]
pub struct Congested {
    /// The destination.
    pub destination: ShardId,
    /// Its backlog.
    pub backlog: usize,
}

/// Moves proven receipts from sources to destinations.
pub trait ReceiptRelay: Send + Sync {
    /// Hands over the receipts a final source block emitted (all
    /// destinations), proving each against that block's header. All or
    /// nothing: refused if any destination is congested.
    fn publish(&self, source_height: u64, receipts: &[Receipt]) -> Result<(), Congested>;

    /// Up to `max` receipts for `destination` that follow `cursors` (next
    /// sequence expected per source), in (source, sequence) order.
    fn pending(
        &self,
        destination: ShardId,
        cursors: &BTreeMap<ShardId, u64>,
        max: usize,
    ) -> Vec<ProvenReceipt>;

    /// `destination` applied everything below `cursors`: forget it.
    fn acknowledge(&self, destination: ShardId, cursors: &BTreeMap<ShardId, u64>);

    /// A source committed `receipts`; they will be published once final.
    /// Until then they count towards their destinations' congestion.
    fn announce(&self, receipts: &[Receipt]);

    /// Whether `destination`'s backlog, with the receipts announced for it
    /// and not yet published, has reached half its bound.
    fn congested(&self, destination: ShardId) -> bool;
}

/// A relay between shards of one process.
pub struct InProcessRelay {
    /// Per destination, per source: receipts not yet acknowledged, in order.
    queues: Mutex<BTreeMap<ShardId, BTreeMap<ShardId, VecDeque<ProvenReceipt>>>>,
    /// Per destination: receipts announced (committed) and not yet published.
    announced: Mutex<BTreeMap<ShardId, usize>>,
    max_backlog: usize,
}

impl InProcessRelay {
    /// A relay holding at most `max_backlog` receipts per destination (or
    /// one block's receipts, if a block sends it more).
    pub fn new(max_backlog: usize) -> InProcessRelay {
        InProcessRelay {
            queues: Mutex::new(BTreeMap::new()),
            announced: Mutex::new(BTreeMap::new()),
            max_backlog,
        }
    }

    /// The value carried by every receipt handed over and not yet
    /// acknowledged (counted in the supply as in flight).
    pub fn in_flight_value(&self) -> u128 {
        self.queues
            .lock()
            .values()
            .flat_map(|sources| sources.values())
            .flat_map(|queue| queue.iter())
            .map(|p| p.receipt.value())
            .sum()
    }

    /// Puts back receipts read from the source stores after a restart
    /// ([`proven_from_store`]); receipts already queued are not doubled.
    pub fn restore(&self, proven: Vec<ProvenReceipt>) {
        let mut queues = self.queues.lock();
        for receipt in proven {
            let queue = queues
                .entry(receipt.receipt.destination)
                .or_default()
                .entry(receipt.receipt.source)
                .or_default();
            if queue
                .back()
                .is_none_or(|last| last.receipt.sequence < receipt.receipt.sequence)
            {
                queue.push_back(receipt);
            }
        }
    }

    /// Receipts waiting for `destination`.
    pub fn backlog(&self, destination: ShardId) -> usize {
        self.queues
            .lock()
            .get(&destination)
            .map_or(0, |sources| sources.values().map(VecDeque::len).sum())
    }
}

impl ReceiptRelay for InProcessRelay {
    fn publish(&self, source_height: u64, receipts: &[Receipt]) -> Result<(), Congested> {
        let mut by_destination: BTreeMap<ShardId, usize> = BTreeMap::new();
        for receipt in receipts {
            *by_destination.entry(receipt.destination).or_default() += 1;
        }
        let mut queues = self.queues.lock();
        for (destination, count) in &by_destination {
            let backlog: usize = queues
                .get(destination)
                .map_or(0, |sources| sources.values().map(VecDeque::len).sum());
            // An empty backlog takes a block whatever its size: a block
            // larger than the bound would otherwise wait forever. The bound
            // is thus the larger of `max_backlog` and one block's receipts.
            if backlog > 0 && backlog + count > self.max_backlog {
                return Err(Congested {
                    destination: *destination,
                    backlog,
                });
            }
        }
        {
            let mut announced = self.announced.lock();
            for (destination, count) in &by_destination {
                if let Some(waiting) = announced.get_mut(destination) {
                    *waiting = waiting.saturating_sub(*count);
                }
            }
        }
        for destination in by_destination.keys() {
            for proven in prove_receipts(source_height, receipts, *destination) {
                queues
                    .entry(*destination)
                    .or_default()
                    .entry(proven.receipt.source)
                    .or_default()
                    .push_back(proven);
            }
        }
        Ok(())
    }

    fn pending(
        &self,
        destination: ShardId,
        cursors: &BTreeMap<ShardId, u64>,
        max: usize,
    ) -> Vec<ProvenReceipt> {
        let queues = self.queues.lock();
        let Some(sources) = queues.get(&destination) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (source, queue) in sources {
            let next = cursors.get(source).copied().unwrap_or(0);
            out.extend(
                queue
                    .iter()
                    .skip_while(|p| p.receipt.sequence < next)
                    .take(max - out.len())
                    .cloned(),
            );
            if out.len() >= max {
                break;
            }
        }
        out
    }

    fn acknowledge(&self, destination: ShardId, cursors: &BTreeMap<ShardId, u64>) {
        let mut queues = self.queues.lock();
        if let Some(sources) = queues.get_mut(&destination) {
            for (source, queue) in sources.iter_mut() {
                let next = cursors.get(source).copied().unwrap_or(0);
                while queue.front().is_some_and(|p| p.receipt.sequence < next) {
                    queue.pop_front();
                }
            }
        }
    }

    fn announce(&self, receipts: &[Receipt]) {
        let mut announced = self.announced.lock();
        for receipt in receipts {
            *announced.entry(receipt.destination).or_default() += 1;
        }
    }

    fn congested(&self, destination: ShardId) -> bool {
        let announced = self
            .announced
            .lock()
            .get(&destination)
            .copied()
            .unwrap_or(0);
        self.backlog(destination) + announced >= self.max_backlog / 2
    }
}

/// The receipts `store`'s shard sent to `destination` from sequence `from`
/// on, with their proofs, read back from the store: what a relay that lost
/// its memory (a restart) hands over again. Proofs need every receipt of the
/// emitting block to that destination, so whole blocks are read; reading
/// stops at the first block boundary past `max` receipts.
pub fn proven_from_store(
    store: &ShardStore,
    destination: ShardId,
    from: u64,
    max: usize,
) -> Result<Vec<ProvenReceipt>, ShardError> {
    let Some(first) = store.outgoing_receipt_at(destination, from)? else {
        return Ok(Vec::new());
    };
    // Back to the first receipt of `from`'s block.
    let mut start = from;
    while start > 0 {
        match store.outgoing_receipt_at(destination, start - 1)? {
            Some(earlier) if earlier.height == first.height => start -= 1,
            _ => break,
        }
    }
    let mut out = Vec::new();
    let mut sequence = start;
    let mut height = first.height;
    let mut block: Vec<Receipt> = Vec::new();
    loop {
        match store.outgoing_receipt_at(destination, sequence)? {
            Some(stored) if stored.height == height => block.push(stored.receipt),
            next => {
                // `block` is whole: prove it, keep what is at or after `from`.
                out.extend(
                    prove_receipts(height, &block, destination)
                        .into_iter()
                        .filter(|p| p.receipt.sequence >= from),
                );
                block.clear();
                match next {
                    Some(stored) if out.len() < max => {
                        height = stored.height;
                        block.push(stored.receipt);
                    }
                    _ => break,
                }
            }
        }
        sequence += 1;
    }
    Ok(out)
}

/// Hands `relay`, again, every receipt one of `chains` emitted that its
/// destination among `chains` has not applied (an in-process relay keeps
/// nothing across a restart).
pub fn refill(relay: &InProcessRelay, chains: &[crate::ShardChain]) -> Result<(), ShardError> {
    for destination in chains {
        let cursors = destination.inbox_cursors();
        for source in chains {
            let (from, to) = (source.head().shard, destination.head().shard);
            if from != to {
                let next = cursors.get(&from).copied().unwrap_or(0);
                relay.restore(proven_from_store(source.store(), to, next, usize::MAX)?);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use atoll_primitives::{Address, Hash, ReceiptAction};

    fn receipts(destination: u16, from: u64, count: u64) -> Vec<Receipt> {
        (from..from + count)
            .map(|sequence| Receipt {
                source: ShardId(0),
                destination: ShardId(destination),
                sequence,
                origin: Hash([sequence as u8; 32]),
                action: ReceiptAction::Transfer {
                    to: Address([1; 20]),
                    amount: 5,
                },
            })
            .collect()
    }

    #[test]
    fn the_backlog_is_bounded_congested_at_half_and_kept_until_acknowledged() {
        let relay = InProcessRelay::new(4);
        relay.publish(1, &receipts(1, 0, 1)).unwrap();
        assert!(!relay.congested(ShardId(1)));
        relay.publish(2, &receipts(1, 1, 1)).unwrap();
        assert!(relay.congested(ShardId(1)));
        assert!(!relay.congested(ShardId(2)));
        // Over the bound: refused whole, nothing queued.
        let err = relay.publish(3, &receipts(1, 2, 3)).unwrap_err();
        assert_eq!(err.destination, ShardId(1));
        assert_eq!(relay.backlog(ShardId(1)), 2);
        // Pending from the cursor; dropped only once acknowledged.
        let cursors = BTreeMap::from([(ShardId(0), 1)]);
        let pending = relay.pending(ShardId(1), &cursors, 10);
        assert_eq!(
            pending
                .iter()
                .map(|p| p.receipt.sequence)
                .collect::<Vec<_>>(),
            vec![1]
        );
        assert_eq!(relay.backlog(ShardId(1)), 2);
        relay.acknowledge(ShardId(1), &cursors);
        assert_eq!(relay.backlog(ShardId(1)), 1);
        assert_eq!(relay.in_flight_value(), 5);
        assert!(!relay.congested(ShardId(1)));
    }

    #[test]
    fn announced_receipts_count_towards_congestion_until_published() {
        let relay = InProcessRelay::new(4);
        relay.announce(&receipts(1, 0, 2));
        assert!(relay.congested(ShardId(1)), "committed, not yet final");
        assert_eq!(relay.backlog(ShardId(1)), 0);
        relay.publish(1, &receipts(1, 0, 2)).unwrap();
        assert!(relay.congested(ShardId(1)), "now in the backlog");
        relay.acknowledge(ShardId(1), &BTreeMap::from([(ShardId(0), 2)]));
        assert!(!relay.congested(ShardId(1)), "published and applied");
    }

    #[test]
    fn a_block_larger_than_the_bound_passes_an_empty_backlog() {
        let relay = InProcessRelay::new(4);
        relay.publish(1, &receipts(1, 0, 6)).unwrap();
        assert_eq!(relay.backlog(ShardId(1)), 6);
        assert!(relay.publish(2, &receipts(1, 6, 1)).is_err());
    }
}
