//! Receipts pushed on finality, so a destination committee usually holds
//! them before it needs them.
//!
//! When a committee member executes a block of its shard (final: its
//! contents were agreed before it ran), it sends the block's receipts for
//! each destination, with their proofs, to the members of that
//! destination's committees (this epoch's, and near its end the next's)
//! that do not track the source themselves ([`push`], request `Request::Push`). The
//! receiver keeps them in a bounded buffer ([`super::pushed::Pushed`]) without checking
//! anything: the source header they are proven against is not recorded
//! yet. When the destination needs them ([`super::receipts::Gatherer`]), it
//! takes the run that continues its cursor and checks it exactly as a
//! pulled answer (proofs against the recorded headers, sequence, whole
//! blocks); a receipt that fails scores its pusher down, and whatever is
//! missing is pulled. A push is an optimization: nothing waits for one.

use super::committee_view::CommitteeView;
use super::wire::{PushedReceipts, Request};
use atoll_primitives::{codec, ProvenReceipt, Receipt, ShardBlockHeader, ShardId};
use atoll_shard::inbox::prove_receipts;
use std::time::Duration;

/// How long a push may take to be acknowledged.
const PUSH_TIMEOUT: Duration = Duration::from_secs(2);

/// Sends the receipts of the block of `header` (`receipts`: all it
/// emitted) to the trackers of each destination, in the block's epoch
/// (and the next's when `next_epoch`: the block is within
/// [`super::committee_view::NEXT_EPOCH_LEAD`] of it), that do not track
/// its shard, in messages of at most `limit` bytes. Returns at once: the
/// sends run on `runtime`.
pub fn push(
    view: &CommitteeView,
    runtime: &tokio::runtime::Handle,
    header: &ShardBlockHeader,
    receipts: &[Receipt],
    limit: usize,
    next_epoch: bool,
) {
    let (source, height, epoch) = (header.shard, header.height, header.epoch);
    let Some(network) = view.network.get() else {
        return;
    };
    let Some((me, _)) = view.key else {
        return;
    };
    let committees = &view.committees;
    if committees.everyone() || receipts.is_empty() {
        return;
    }
    let tracks = |validator, shard| {
        committees.is_member(epoch, shard, validator)
            || (next_epoch && committees.is_member(epoch + 1, shard, validator))
    };
    let peers = view.peers.lock().clone();
    let mut destinations: Vec<ShardId> = receipts.iter().map(|r| r.destination).collect();
    destinations.sort();
    destinations.dedup();
    for destination in destinations {
        let mut targets: Vec<_> = committees.members(epoch, destination);
        if next_epoch {
            targets.extend(committees.members(epoch + 1, destination));
        }
        targets.sort_unstable();
        targets.dedup();
        let targets: Vec<_> = targets
            .into_iter()
            .filter(|&v| v != me && !tracks(v, source))
            .filter_map(|v| peers.get(&v).copied())
            .collect();
        if targets.is_empty() {
            continue;
        }
        let proven = prove_receipts(height, receipts, destination);
        for chunk in chunks(proven, limit) {
            let bytes = codec::encode(&Request::Push(PushedReceipts { receipts: chunk }));
            for &peer in &targets {
                let (network, bytes) = (network.clone(), bytes.clone());
                runtime.spawn(async move {
                    let _ = tokio::time::timeout(PUSH_TIMEOUT, network.request(peer, bytes)).await;
                });
            }
        }
    }
}

/// `receipts` cut into runs whose encoding stays under half of `limit`.
fn chunks(receipts: Vec<ProvenReceipt>, limit: usize) -> Vec<Vec<ProvenReceipt>> {
    let budget = limit / 2;
    let mut out = Vec::new();
    let mut chunk = Vec::new();
    let mut bytes = 0;
    for proven in receipts {
        let size = codec::encode(&proven).len();
        if !chunk.is_empty() && bytes + size > budget {
            out.push(std::mem::take(&mut chunk));
            bytes = 0;
        }
        bytes += size;
        chunk.push(proven);
    }
    if !chunk.is_empty() {
        out.push(chunk);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::pushed::tests::proven;
    use super::*;

    #[test]
    fn chunks_stay_under_half_the_limit() {
        let receipts: Vec<_> = (0..100).map(|i| proven(1, i, 1)).collect();
        let size = codec::encode(&receipts[0]).len();
        let parts = chunks(receipts, size * 20);
        assert_eq!(parts.len(), 10);
        assert!(parts.iter().all(|p| p.len() == 10));
    }
}
