//! Incoming receipts: the checks a destination shard runs before it credits
//! a receipt from another shard.
//!
//! A receipt is accepted only if
//! - it is addressed to this shard, from another shard;
//! - the source block it names is one the beacon finalized (the caller's
//!   `final_header` lookup answers only for finalized headers);
//! - its Merkle proof places its hash in that header's receipt root for this
//!   shard; and
//! - its sequence number is exactly the next one expected from its source
//!   (the inbox cursor), so each receipt is applied once, in order.
//!
//! [`Inbox::check`] checks a list all or nothing and returns the cursors the
//! list would leave; the caller advances them in the same atomic commit as
//! the credits (the store refuses a commit whose receipts do not continue
//! its stored cursors, a second guard against replays).

use atoll_primitives::merkle::MerkleProof;
use atoll_primitives::stream::follows;
pub use atoll_primitives::ProvenReceipt;
use atoll_primitives::{Receipt, SequenceBreak, ShardBlockHeader, ShardId, StreamCursors};
use std::collections::BTreeMap;
use thiserror::Error;

/// Why a receipt was refused. Nothing was applied.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum ReceiptError {
    /// Addressed to another shard.
    #[error("receipt {sequence} from shard {from} is for shard {destination}, not shard {shard}")]
    WrongDestination {
        /// Its source shard.
        from: ShardId,
        /// Its sequence number.
        sequence: u64,
        /// Where it is addressed.
        destination: ShardId,
        /// This shard.
        shard: ShardId,
    },
    /// A shard never sends receipts to itself.
    #[error("receipt {sequence} claims to come from this shard {shard}")]
    FromSelf {
        /// Its sequence number.
        sequence: u64,
        /// This shard.
        shard: ShardId,
    },
    /// The source block is not (known to be) final.
    #[error("shard {from} block {height} is not a finalized block this node knows")]
    SourceNotFinal {
        /// The source shard.
        from: ShardId,
        /// The block height named.
        height: u64,
    },
    /// The proof does not lead to the source block's receipt root.
    #[error("the proof of receipt {sequence} does not match the receipts shard {from} block {height} sent to shard {destination}")]
    BadProof {
        /// The source shard.
        from: ShardId,
        /// The receipt's sequence number.
        sequence: u64,
        /// The source block height.
        height: u64,
        /// This shard.
        destination: ShardId,
    },
    /// The source block executed in a later epoch than the block that
    /// would apply it; it must wait until this shard reaches that epoch.
    #[error("receipt {sequence} from shard {from} was sent in epoch {source_epoch}, after this block's epoch {epoch}")]
    LaterEpoch {
        /// The source shard.
        from: ShardId,
        /// The receipt's sequence number.
        sequence: u64,
        /// The source block's epoch.
        source_epoch: u64,
        /// The epoch of the block that would apply it.
        epoch: u64,
    },
    /// Already applied.
    #[error(
        "receipt {got} from shard {from} was already applied; the next one expected is {expected}"
    )]
    Replayed {
        /// The source shard.
        from: ShardId,
        /// The next sequence number expected.
        expected: u64,
        /// The receipt's.
        got: u64,
    },
    /// An earlier receipt of the stream is missing.
    #[error("receipt {got} from shard {from} skips ahead; the next one expected is {expected}")]
    Skipped {
        /// The source shard.
        from: ShardId,
        /// The next sequence number expected.
        expected: u64,
        /// The receipt's.
        got: u64,
    },
    /// The stream from this source reached its last sequence number.
    #[error("the stream of receipts from shard {from} reached sequence u64::MAX")]
    Exhausted {
        /// The source shard.
        from: ShardId,
    },
}

impl ReceiptError {
    fn sequence(from: ShardId, broken: SequenceBreak) -> ReceiptError {
        match broken {
            SequenceBreak::Replayed { expected, got } => ReceiptError::Replayed {
                from,
                expected,
                got,
            },
            SequenceBreak::Skipped { expected, got } => ReceiptError::Skipped {
                from,
                expected,
                got,
            },
            SequenceBreak::Exhausted => ReceiptError::Exhausted { from },
        }
    }
}

/// The inbox of one shard: the next sequence number expected from each
/// source shard.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inbox {
    shard: ShardId,
    cursors: StreamCursors,
}

impl Inbox {
    /// The inbox of `shard` with `cursors` (missing sources: 0).
    pub fn new(shard: ShardId, cursors: BTreeMap<ShardId, u64>) -> Inbox {
        Inbox {
            shard,
            cursors: StreamCursors::new(cursors),
        }
    }

    /// The next sequence number expected from `source`.
    pub fn cursor(&self, source: ShardId) -> u64 {
        self.cursors.next(source)
    }

    /// Checks `incoming`, in order, all or nothing. `final_header(source,
    /// height)` must answer only with headers the beacon finalized. Returns
    /// the cursors after the whole list, or the index of the first bad
    /// receipt and why; the inbox itself does not change.
    pub fn check(
        &self,
        incoming: &[ProvenReceipt],
        final_header: impl Fn(ShardId, u64) -> Option<ShardBlockHeader>,
    ) -> Result<BTreeMap<ShardId, u64>, (usize, ReceiptError)> {
        self.check_at(incoming, u64::MAX, final_header)
    }

    /// As [`Inbox::check`] for a block of `epoch`, which may apply only
    /// receipts sent in that epoch or before: the shard map a receipt was
    /// routed by must not be newer than the one the block executes under.
    pub fn check_at(
        &self,
        incoming: &[ProvenReceipt],
        epoch: u64,
        final_header: impl Fn(ShardId, u64) -> Option<ShardBlockHeader>,
    ) -> Result<BTreeMap<ShardId, u64>, (usize, ReceiptError)> {
        let mut cursors = self.cursors.clone();
        for (i, proven) in incoming.iter().enumerate() {
            self.check_one(proven, &mut cursors, epoch, &final_header)
                .map_err(|e| (i, e))?;
        }
        Ok(cursors.into_map())
    }

    /// Moves the cursors to `cursors` (after the commit that applied them).
    pub fn advance(&mut self, cursors: BTreeMap<ShardId, u64>) {
        self.cursors = StreamCursors::new(cursors);
    }

    fn check_one(
        &self,
        proven: &ProvenReceipt,
        cursors: &mut StreamCursors,
        epoch: u64,
        final_header: &impl Fn(ShardId, u64) -> Option<ShardBlockHeader>,
    ) -> Result<(), ReceiptError> {
        let receipt = &proven.receipt;
        let (source, sequence) = (receipt.source, receipt.sequence);
        if receipt.destination != self.shard {
            return Err(ReceiptError::WrongDestination {
                from: source,
                sequence,
                destination: receipt.destination,
                shard: self.shard,
            });
        }
        if source == self.shard {
            return Err(ReceiptError::FromSelf {
                sequence,
                shard: self.shard,
            });
        }
        // The number is checked first; the cursor moves only once the
        // proof and the epoch are good too.
        let after = follows(cursors.next(source), sequence)
            .map_err(|broken| ReceiptError::sequence(source, broken))?;
        let header =
            final_header(source, proven.source_height).ok_or(ReceiptError::SourceNotFinal {
                from: source,
                height: proven.source_height,
            })?;
        let proven_ok = proven.is_proven_by(&header);
        if !proven_ok {
            return Err(ReceiptError::BadProof {
                from: source,
                sequence,
                height: proven.source_height,
                destination: self.shard,
            });
        }
        if header.epoch > epoch {
            return Err(ReceiptError::LaterEpoch {
                from: source,
                sequence,
                source_epoch: header.epoch,
                epoch,
            });
        }
        cursors.set(source, after);
        Ok(())
    }
}

/// The receipts a source block sent to `destination`, each with its proof
/// against that block's receipt root (what the source side hands to a relay).
pub fn prove_receipts(
    source_height: u64,
    block_receipts: &[Receipt],
    destination: ShardId,
) -> Vec<ProvenReceipt> {
    let to_destination: Vec<&Receipt> = block_receipts
        .iter()
        .filter(|r| r.destination == destination)
        .collect();
    let hashes: Vec<_> = to_destination.iter().map(|r| r.hash()).collect();
    to_destination
        .into_iter()
        .zip(MerkleProof::all(&hashes))
        .map(|(receipt, proof)| ProvenReceipt {
            receipt: receipt.clone(),
            source_height,
            proof,
        })
        .collect()
}
