//! Installing a peer's state snapshot (`ShardChain::install_snapshot`,
//! which writes it with `ShardStore::install_snapshot`) into shard 0's
//! RocksDB store, as state sync does once the snapshot passed its checks.
//!
//! The first two input bytes are what the node knows itself: bit 0 of the
//! first whether the head executed under a moved shard map, its next three
//! bits how many transactions the chain held below the snapshot, the
//! second the head's epoch. The rest is part 0 of the peer's snapshot,
//! decoded with the node's limit; its entries are put in key order, only
//! the cursors whose last receipts could pass `check_outbox` are kept
//! (inputs with cursors out of destination order are refused, as there),
//! and the head's state root is made the entries' root (what the certified
//! header would have to say for the snapshot to pass).
//!
//! After the install the store holds exactly the snapshot (head, every
//! entry, cursors, proven receipts, known transactions, the genesis
//! block), and the chain commits the next block on top of it. The store
//! is kept across inputs: each install replaces everything in it.
#![no_main]

use atoll_fuzz_fixtures::store::{self, Fixture};
use atoll_fuzz_fixtures::{limits, split_local};
use atoll_node::service::network::wire::SnapshotPart;
use atoll_primitives::{codec, ShardBlock, ShardBlockHeader, ShardMap};
use atoll_shard::state::StateTree;
use atoll_storage::SnapshotInstall;
use libfuzzer_sys::fuzz_target;
use std::sync::{Mutex, OnceLock};

/// Certified heights are far below this; the next block's height must fit.
const MAX_HEIGHT: u64 = 1 << 40;

/// Shard 0's chain, kept across inputs, with the header every installed
/// head is made from and the genesis block an install must keep.
struct Target {
    fixture: Fixture,
    template: ShardBlockHeader,
    genesis: Option<ShardBlock>,
}

fn target() -> &'static Mutex<Target> {
    static TARGET: OnceLock<Mutex<Target>> = OnceLock::new();
    TARGET.get_or_init(|| {
        let fixture = store::chain_with_receipts();
        let template = fixture.chain.head().clone();
        let genesis = fixture
            .chain
            .store()
            .block(0)
            .expect("the fixture store reads");
        Mutex::new(Target {
            fixture,
            template,
            genesis,
        })
    })
}

fuzz_target!(|data: &[u8]| {
    let Some(([flags, epoch], peer)) = split_local::<2>(data) else {
        return;
    };
    let Ok(part) =
        codec::decode::<SnapshotPart>("snapshot part", peer, limits::max_message_bytes())
    else {
        return;
    };
    if part.height == 0 || part.height > MAX_HEIGHT {
        return; // No snapshot is installed at genesis, nor above any certified height.
    }
    let mut entries = part.entries;
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    entries.dedup_by(|a, b| a.0 == b.0);
    // The fetch refuses a snapshot with a value of another kind than its
    // key holds, as it does one out of key order.
    if !entries.iter().all(|(key, value)| value.fits(key)) {
        return;
    }
    // Cursors pass `check_outbox` only in destination order, each with its
    // last receipt, proven (so with at most 64 siblings).
    let (outbox, last_receipts): (Vec<_>, Vec<_>) = part
        .outbox
        .into_iter()
        .zip(part.last_receipts)
        .filter(|((destination, cursor), proven)| {
            proven.receipt.destination == *destination
                && cursor.checked_sub(1) == Some(proven.receipt.sequence)
                && proven.proof.index < proven.proof.leaf_count
                && proven.proof.siblings.len() <= 64
        })
        .unzip();
    if !outbox.windows(2).all(|w| w[0].0 < w[1].0) {
        return;
    }
    let moved = (flags & 1 == 1).then(store::moved_map);
    let map_hash = moved
        .as_ref()
        .map_or_else(|| ShardMap::new(store::layout()).hash(), |m| m.hash());
    let transactions: Vec<_> = store::synced_transactions()
        .into_iter()
        .take(usize::from(flags >> 1 & 7))
        .collect();
    let tree = StateTree::from_entries(entries.iter().cloned());

    let mut target = target().lock().unwrap_or_else(|e| e.into_inner());
    let Target {
        fixture,
        template,
        genesis,
    } = &mut *target;
    let head = ShardBlockHeader {
        height: part.height,
        epoch: u64::from(epoch),
        map_hash,
        state_root: tree.root(),
        ..template.clone()
    };
    let install = SnapshotInstall {
        head: &head,
        entries: &entries,
        outbox: &outbox,
        shard_map: moved.as_ref(),
        transactions: &transactions,
        last_receipts: &last_receipts,
    };
    fixture
        .chain
        .install_snapshot(&install, tree, store::layout())
        .expect("a checked snapshot installs");

    let read = fixture.chain.store();
    let snapshot = read
        .state_snapshot()
        .expect("the store reads")
        .expect("a head");
    assert_eq!(snapshot.head, head);
    assert_eq!(snapshot.entries, entries, "the state is not the snapshot's");
    assert_eq!(
        snapshot.outbox, outbox,
        "the outbox cursors are not the snapshot's"
    );
    assert_eq!(read.history_from().expect("the store reads"), head.height);
    assert_eq!(
        &read.block(0).expect("the store reads"),
        genesis,
        "the genesis block is lost"
    );
    for (hash, _) in &transactions {
        assert!(read.includes_transaction(hash).expect("the store reads"));
    }
    for proven in &last_receipts {
        let destination = proven.receipt.destination;
        let stored = read.synced_receipt(destination).expect("the store reads");
        assert_eq!(
            stored.as_ref(),
            Some(proven),
            "a proven last receipt is lost"
        );
    }
    let next = fixture
        .chain
        .produce_block(Vec::new(), head.timestamp_ms + 1)
        .expect("a block commits on an installed snapshot");
    assert_eq!(next.block.header.height, head.height + 1);
    assert_eq!(next.block.header.parent, head.hash());
});
