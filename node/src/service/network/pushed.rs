//! Receipts other validators pushed to this one ([`super::push`]), held
//! until the destination shard needs them: a bounded buffer that checks
//! nothing (the source header they are proven against may not be recorded
//! yet); the receipt stage checks a run it takes exactly as a pulled
//! answer.

use atoll_primitives::{codec, ProvenReceipt, Receipt, ShardId};
use parking_lot::Mutex;
use std::collections::BTreeMap;

/// Most pushed receipts held, over every (source, destination) pair.
pub const MAX_PUSHED: usize = 65_536;
/// Most bytes of pushed receipts held (their encodings, proofs included):
/// a receipt's proof is bounded by the tree's depth, so this bound and
/// [`MAX_PUSHED`] meet at receipts of about a kilobyte each.
pub const MAX_PUSHED_BYTES: usize = 64 * 1024 * 1024;

/// One held receipt and who pushed it.
type Held = (ProvenReceipt, atoll_p2p::PeerId);

/// Pushed receipts not yet taken, per (source, destination), by sequence.
#[derive(Default)]
pub struct Pushed {
    inner: Mutex<PushedInner>,
}

#[derive(Default)]
struct PushedInner {
    pairs: BTreeMap<(ShardId, ShardId), PairHeld>,
    count: usize,
    bytes: usize,
}

/// What one (source, destination) pair holds: receipts by sequence, each
/// with its encoded size, and their total.
#[derive(Default)]
struct PairHeld {
    by_sequence: BTreeMap<u64, (Held, usize)>,
    bytes: usize,
}

impl PushedInner {
    /// Drops `size` bytes and `count` receipts from the totals.
    fn release(&mut self, count: usize, size: usize) {
        self.count -= count;
        self.bytes -= size;
    }
}

impl Pushed {
    /// Holds `receipts` from `peer`; returns how many were kept. A
    /// sequence already held keeps its first copy. When full (by count or
    /// by bytes), the pair holding the most bytes gives up its highest
    /// sequences (the next needed are the lowest, and no peer can crowd
    /// out other pairs by filling one), unless that is the new receipt's
    /// own pair and the new one is higher still: then it is dropped.
    pub fn add(&self, peer: atoll_p2p::PeerId, receipts: Vec<ProvenReceipt>) -> usize {
        let mut inner = self.inner.lock();
        let inner = &mut *inner;
        let mut kept = 0;
        for proven in receipts {
            let Receipt {
                source,
                destination,
                sequence,
                ..
            } = proven.receipt;
            let pair = (source, destination);
            if inner
                .pairs
                .get(&pair)
                .is_some_and(|h| h.by_sequence.contains_key(&sequence))
            {
                continue;
            }
            let size = codec::encode(&proven).len();
            if size > MAX_PUSHED_BYTES {
                continue;
            }
            let mut room = true;
            while inner.count >= MAX_PUSHED || inner.bytes + size > MAX_PUSHED_BYTES {
                let Some((&largest, held)) = inner.pairs.iter_mut().max_by_key(|(_, h)| h.bytes)
                else {
                    room = false;
                    break;
                };
                let Some(highest) = held.by_sequence.last_entry() else {
                    room = false;
                    break;
                };
                if largest == pair && *highest.key() < sequence {
                    room = false;
                    break;
                }
                let (_, freed) = highest.remove();
                held.bytes -= freed;
                if held.by_sequence.is_empty() {
                    inner.pairs.remove(&largest);
                }
                inner.release(1, freed);
            }
            if !room {
                continue;
            }
            let held = inner.pairs.entry(pair).or_default();
            held.by_sequence.insert(sequence, ((proven, peer), size));
            held.bytes += size;
            inner.count += 1;
            inner.bytes += size;
            kept += 1;
        }
        kept
    }

    /// Drops everything held for `destination` (no longer tracked: its
    /// receipts will be fetched if it is tracked again).
    pub fn forget(&self, destination: ShardId) {
        let mut inner = self.inner.lock();
        let gone: Vec<_> = inner
            .pairs
            .keys()
            .filter(|(_, d)| *d == destination)
            .copied()
            .collect();
        for pair in gone {
            if let Some(held) = inner.pairs.remove(&pair) {
                inner.release(held.by_sequence.len(), held.bytes);
            }
        }
    }

    /// Takes the held run of `source`'s receipts to `destination` that
    /// starts at sequence `from` and comes from source blocks at or below
    /// `up_to`, and forgets everything below `from` (already credited).
    pub fn take(&self, source: ShardId, destination: ShardId, from: u64, up_to: u64) -> Vec<Held> {
        let mut inner = self.inner.lock();
        let inner = &mut *inner;
        let Some(held) = inner.pairs.get_mut(&(source, destination)) else {
            return Vec::new();
        };
        let rest = held.by_sequence.split_off(&from);
        let below = std::mem::replace(&mut held.by_sequence, rest);
        let mut freed: usize = below.values().map(|(_, size)| size).sum();
        let mut count = below.len();
        let mut run = Vec::new();
        let mut next = Some(from);
        while let Some(entry) = held.by_sequence.first_entry() {
            if Some(*entry.key()) != next || entry.get().0 .0.source_height > up_to {
                break;
            }
            let (receipt, size) = entry.remove();
            freed += size;
            count += 1;
            run.push(receipt);
            next = next.and_then(|n| n.checked_add(1));
        }
        held.bytes -= freed;
        if held.by_sequence.is_empty() {
            inner.pairs.remove(&(source, destination));
        }
        inner.release(count, freed);
        run
    }

    /// Receipts held.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.inner.lock().count
    }

    /// Bytes of the receipts held.
    #[cfg(test)]
    pub fn bytes(&self) -> usize {
        self.inner.lock().bytes
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use atoll_primitives::{Address, Hash, Receipt, ReceiptAction};
    use atoll_shard::inbox::prove_receipts;

    /// A proven transfer receipt from `source` to shard 9.
    pub(crate) fn proven(source: u16, sequence: u64, height: u64) -> ProvenReceipt {
        let receipt = Receipt {
            source: ShardId(source),
            destination: ShardId(9),
            sequence,
            origin: Hash([sequence as u8; 32]),
            action: ReceiptAction::Transfer {
                to: Address([1; 20]),
                amount: 1,
            },
        };
        prove_receipts(height, &[receipt], ShardId(9)).remove(0)
    }

    #[test]
    fn a_run_is_taken_from_the_cursor_while_it_continues() {
        let pushed = Pushed::default();
        let peer = atoll_p2p::PeerId::random();
        let receipts = [(0, 1), (1, 1), (2, 2), (4, 3), (5, 3)];
        let kept = pushed.add(
            peer,
            receipts.iter().map(|&(s, h)| proven(1, s, h)).collect(),
        );
        assert_eq!(kept, 5);
        // A repeat is not held twice.
        assert_eq!(pushed.add(peer, vec![proven(1, 2, 2)]), 0);
        // Nothing from another source, nothing above the height.
        assert!(pushed.take(ShardId(2), ShardId(9), 0, 9).is_empty());
        let run = pushed.take(ShardId(1), ShardId(9), 1, 1);
        assert_eq!(run.len(), 1, "sequence 2 is of block 2, above 1");
        assert_eq!(run[0].0.receipt.sequence, 1);
        // Sequence 0 was below the cursor and is gone; the run stops at
        // the gap before 4.
        let run = pushed.take(ShardId(1), ShardId(9), 2, 9);
        assert_eq!(run.len(), 1);
        assert_eq!(pushed.len(), 2);
        assert!(pushed.take(ShardId(1), ShardId(9), 3, 9).is_empty());
        assert_eq!(pushed.take(ShardId(1), ShardId(9), 4, 9).len(), 2);
        assert_eq!(pushed.len(), 0);
    }

    #[test]
    fn a_full_buffer_keeps_the_lowest_sequences() {
        let pushed = Pushed::default();
        let peer = atoll_p2p::PeerId::random();
        let far: Vec<_> = (0..MAX_PUSHED as u64)
            .map(|i| proven(1, 1_000 + i, 1))
            .collect();
        assert_eq!(pushed.add(peer, far), MAX_PUSHED);
        // Full: a lower sequence replaces the highest, a higher one is
        // dropped.
        assert_eq!(pushed.add(peer, vec![proven(1, 0, 1)]), 1);
        assert_eq!(pushed.add(peer, vec![proven(1, 1_000_000, 1)]), 0);
        assert_eq!(pushed.len(), MAX_PUSHED);
        // Another pair is not crowded out: the full pair gives way.
        assert_eq!(pushed.add(peer, vec![proven(2, 0, 1)]), 1);
        assert_eq!(pushed.len(), MAX_PUSHED);
        assert_eq!(pushed.take(ShardId(1), ShardId(9), 0, 9).len(), 1);
        assert_eq!(pushed.take(ShardId(2), ShardId(9), 0, 9).len(), 1);
        pushed.forget(ShardId(9));
        assert_eq!(pushed.len(), 0);
    }

    /// Regression (hostile peers): the buffer was bounded by count only,
    /// so receipts with the fattest proofs held far more than their share
    /// of memory. Now the bytes held stay under [`MAX_PUSHED_BYTES`], and a
    /// full buffer still takes a lower sequence of another pair.
    #[test]
    fn a_buffer_of_fat_receipts_stays_under_its_byte_bound() {
        let pushed = Pushed::default();
        let peer = atoll_p2p::PeerId::random();
        let fat = |source, sequence| {
            let mut proven = proven(source, sequence, 1);
            proven.proof.siblings = vec![Hash([7; 32]); atoll_primitives::merkle::MAX_PROOF_DEPTH];
            proven
        };
        let size = codec::encode(&fat(1, 0)).len();
        let fits = MAX_PUSHED_BYTES / size;
        assert!(fits < MAX_PUSHED, "the byte bound is the one that binds");
        let kept = pushed.add(peer, (0..fits as u64 + 100).map(|i| fat(1, i)).collect());
        assert_eq!(kept, fits);
        assert!(pushed.bytes() <= MAX_PUSHED_BYTES);
        assert_eq!(pushed.len(), fits);
        assert_eq!(pushed.add(peer, vec![fat(2, 0)]), 1);
        assert!(pushed.bytes() <= MAX_PUSHED_BYTES);
        assert_eq!(pushed.take(ShardId(2), ShardId(9), 0, 9).len(), 1);
        assert_eq!(pushed.take(ShardId(1), ShardId(9), 0, 9).len(), fits - 1);
        assert_eq!((pushed.len(), pushed.bytes()), (0, 0));
    }
}
