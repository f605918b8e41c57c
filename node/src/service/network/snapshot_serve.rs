//! Serving a shard's state to a validator that syncs it (the other side is
//! `state_sync`).
//!
//! A validator that tracks a shard answers [`SnapshotRequest`]s with the
//! state at its head, in parts of [`PART_ENTRIES`] entries in key order.
//! The first request (`height` 0) takes a snapshot of the store: head,
//! every entry and the outbox cursors, read in one RocksDB snapshot. It is
//! kept in memory and served to every requester of that shard for
//! [`REUSE`]; later parts name its height, and a request for a snapshot
//! no longer kept gets an answer of height 0, so the client starts over.
//! One snapshot per shard is kept, so the memory is bounded by the
//! validator's own state.
//!
//! Part 0 also carries the outbox cursors, each with its last receipt and
//! the receipt's Merkle proof, so the client can check them against the
//! recorded headers (nothing in a snapshot is taken on trust).

use super::wire::{SnapshotPart, SnapshotRequest};
use atoll_primitives::{codec, ProvenReceipt, ShardId, StateKey, StateValue};
use atoll_shard::relay::proven_from_store;
use atoll_storage::ShardStore;
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Entries in every part but the last (a rule both sides keep: about
/// 500 KB a part).
pub const PART_ENTRIES: usize = 8_192;
/// Most parts a snapshot may have: 4,194,304 entries at most, so a peer
/// cannot make a syncing validator hold more than about 256 MB. A shard
/// with more accounts is synced by executing its blocks.
pub const MAX_PARTS: u32 = 512;
/// How long a snapshot is handed to new requesters before a fresh one is
/// taken (its parts are served for [`KEEP`]).
pub const REUSE: Duration = Duration::from_secs(20);
/// How long a snapshot's parts stay available.
pub const KEEP: Duration = Duration::from_secs(120);

/// A snapshot being served.
struct Kept {
    taken: Instant,
    height: u64,
    entries: Vec<(StateKey, StateValue)>,
    outbox: Vec<(ShardId, u64)>,
    last_receipts: Vec<ProvenReceipt>,
}

impl Kept {
    fn parts(&self) -> u32 {
        u32::try_from(self.entries.len().div_ceil(PART_ENTRIES).max(1)).unwrap_or(u32::MAX)
    }

    fn part(&self, part: u32) -> SnapshotPart {
        let from = (part as usize).saturating_mul(PART_ENTRIES);
        let to = from.saturating_add(PART_ENTRIES).min(self.entries.len());
        let first = part == 0;
        SnapshotPart {
            height: self.height,
            parts: self.parts(),
            entries: self.entries.get(from..to).unwrap_or_default().to_vec(),
            outbox: if first {
                self.outbox.clone()
            } else {
                Vec::new()
            },
            last_receipts: if first {
                self.last_receipts.clone()
            } else {
                Vec::new()
            },
        }
    }
}

/// The snapshots this validator serves, one per shard at most.
#[derive(Default)]
pub struct Served {
    kept: Mutex<BTreeMap<ShardId, Arc<Kept>>>,
}

impl Served {
    /// Answers `request` from `store` (a shard this validator tracks), as
    /// encoded [`SnapshotPart`] bytes. Reading a new snapshot blocks: call
    /// it off the async threads.
    pub fn serve(&self, store: &ShardStore, request: &SnapshotRequest) -> Vec<u8> {
        let part = match self.kept(store, request) {
            Ok(Some(kept)) if request.part < kept.parts() => kept.part(request.part),
            Ok(_) => SnapshotPart::default(),
            Err(err) => {
                tracing::warn!(
                    target: "state_sync",
                    shard = %request.shard,
                    err = format!("{err:#}"),
                    "cannot take a state snapshot to serve"
                );
                SnapshotPart::default()
            }
        };
        codec::encode(&part)
    }

    /// The snapshot `request` names: a fresh one (or one taken within
    /// [`REUSE`]) for height 0, else the one kept at that height.
    fn kept(
        &self,
        store: &ShardStore,
        request: &SnapshotRequest,
    ) -> anyhow::Result<Option<Arc<Kept>>> {
        let mut kept = self.kept.lock();
        kept.retain(|_, k| k.taken.elapsed() < KEEP);
        let current = kept.get(&request.shard).cloned();
        if request.height != 0 {
            return Ok(current.filter(|k| k.height == request.height));
        }
        if let Some(current) = current.filter(|k| k.taken.elapsed() < REUSE) {
            return Ok(Some(current));
        }
        // Taken under the lock, so that many requests take one snapshot.
        let Some(fresh) = take(store)? else {
            return Ok(None);
        };
        let fresh = Arc::new(fresh);
        kept.insert(request.shard, Arc::clone(&fresh));
        Ok(Some(fresh))
    }
}

/// A snapshot of `store` with the proofs of its outbox cursors; None when
/// one of them cannot be proven (a store synced from a snapshot that has
/// not sent to that destination since and did not keep its proof).
fn take(store: &ShardStore) -> anyhow::Result<Option<Kept>> {
    let Some(snapshot) = store.state_snapshot()? else {
        return Ok(None);
    };
    let mut last_receipts = Vec::with_capacity(snapshot.outbox.len());
    for (destination, cursor) in &snapshot.outbox {
        let Some(last) = cursor.checked_sub(1) else {
            continue;
        };
        let proven = proven_from_store(store, *destination, last, 1)?
            .into_iter()
            .find(|p| p.receipt.sequence == last)
            .or(store
                .synced_receipt(*destination)?
                .filter(|p| p.receipt.sequence == last));
        match proven {
            Some(proven) => last_receipts.push(proven),
            None => return Ok(None),
        }
    }
    if snapshot.entries.len() > MAX_PARTS as usize * PART_ENTRIES {
        return Ok(None);
    }
    Ok(Some(Kept {
        taken: Instant::now(),
        height: snapshot.head.height,
        entries: snapshot.entries,
        outbox: snapshot.outbox,
        last_receipts,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use atoll_primitives::{Address, ChainId, ShardLayout};
    use atoll_shard::state::StateTree;
    use atoll_shard::ShardChain;
    use atoll_storage::StoreIdentity;
    use std::num::NonZeroUsize;

    /// A shard of `accounts` accounts at height 1.
    fn chain(dir: &std::path::Path, accounts: u32) -> ShardChain {
        let genesis: Vec<(StateKey, StateValue)> = (0..accounts)
            .map(|i| {
                let mut address = [0u8; 20];
                address[..4].copy_from_slice(&i.to_be_bytes());
                let account = atoll_primitives::Account {
                    balance: u128::from(i) + 1,
                    nonce: 0,
                };
                (StateKey::Account(Address(address)), account.into())
            })
            .collect();
        let identity = StoreIdentity {
            chain_id: ChainId(1),
            shard: ShardId(0),
        };
        let threads = NonZeroUsize::new(1).expect("one");
        let mut chain = ShardChain::open(dir, identity, ShardLayout::single(), &genesis, threads)
            .expect("open");
        chain.produce_block(Vec::new(), 1).expect("block 1");
        chain
    }

    fn ask(served: &Served, store: &ShardStore, height: u64, part: u32) -> SnapshotPart {
        let request = SnapshotRequest {
            shard: ShardId(0),
            height,
            part,
        };
        codec::decode("part", &served.serve(store, &request), usize::MAX).expect("a part")
    }

    #[test]
    fn a_snapshot_is_served_in_parts_of_the_same_height() {
        let dir = tempfile::tempdir().expect("temp dir");
        let total = PART_ENTRIES as u32 + 5;
        let chain = chain(dir.path(), total);
        let served = Served::default();
        let first = ask(&served, chain.store(), 0, 0);
        assert_eq!((first.height, first.parts), (1, 2));
        assert_eq!(first.entries.len(), PART_ENTRIES);
        let second = ask(&served, chain.store(), 1, 1);
        assert_eq!((second.height, second.parts), (1, 2));
        // The accounts, and the slot where block 1 recorded its parent's hash.
        assert_eq!(second.entries.len(), 5 + 1);
        let mut all = first.entries;
        all.extend(second.entries);
        assert!(all.windows(2).all(|w| w[0].0 < w[1].0));
        let tree = StateTree::from_entries(all.iter().cloned());
        assert_eq!(tree.root(), chain.head().state_root);
        // Past the last part, or of a height not kept: nothing.
        assert_eq!(ask(&served, chain.store(), 1, 2), SnapshotPart::default());
        assert_eq!(ask(&served, chain.store(), 7, 0), SnapshotPart::default());
    }

    #[test]
    fn a_new_requester_gets_the_kept_snapshot_while_the_chain_moves_on() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut chain = chain(dir.path(), 3);
        let served = Served::default();
        assert_eq!(ask(&served, chain.store(), 0, 0).height, 1);
        chain.produce_block(Vec::new(), 2).expect("block 2");
        // Within REUSE: the same snapshot, so its parts stay consistent.
        assert_eq!(ask(&served, chain.store(), 0, 0).height, 1);
        // Three accounts and the block-hash slot block 1 wrote.
        assert_eq!(ask(&served, chain.store(), 1, 0).entries.len(), 3 + 1);
    }
}
