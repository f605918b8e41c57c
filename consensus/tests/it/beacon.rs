//! The beacon records unbroken chains of shard headers, answers which are
//! final, and switches shard maps only at epoch boundaries.

use atoll_consensus::beacon::RETAINED_HEADERS;
use atoll_consensus::{Beacon, BeaconError};
use atoll_primitives::{Address, ChainId, Hash, ShardBlockHeader, ShardId, ShardLayout, ShardMap};

const CHAIN: ChainId = ChainId(5);

/// A check on the error a refused proposal gives.
type Expect = fn(&BeaconError) -> bool;

fn header(shard: u16, height: u64, parent: Hash) -> ShardBlockHeader {
    ShardBlockHeader {
        chain_id: CHAIN,
        shard: ShardId(shard),
        height,
        parent,
        timestamp_ms: height,
        epoch: 0,
        map_hash: ShardMap::new(ShardLayout::uniform(2).unwrap()).hash(),
        state_root: Hash([height as u8; 32]),
        tx_root: Hash::ZERO,
        outcome_root: Hash::ZERO,
        receipt_roots: Vec::new(),
        incoming_root: Hash::ZERO,
        inbox_cursors: Vec::new(),
        congested: false,
        tx_count: 0,
        burnt_fees: 0,
    }
}

fn child(parent: &ShardBlockHeader) -> ShardBlockHeader {
    header(parent.shard.0, parent.height + 1, parent.hash())
}

fn beacon(epoch_length: u64) -> (Beacon, Vec<ShardBlockHeader>) {
    let genesis: Vec<_> = (0..2).map(|s| header(s, 0, Hash::ZERO)).collect();
    let beacon = Beacon::new(
        CHAIN,
        ShardLayout::uniform(2).unwrap(),
        epoch_length,
        genesis.clone(),
    );
    (beacon, genesis)
}

#[test]
fn headers_must_extend_their_shard_and_a_refusal_changes_nothing() {
    let (mut beacon, genesis) = beacon(10);
    let a1 = child(&genesis[0]);
    let a2 = child(&a1);
    let b1 = child(&genesis[1]);
    // Two of shard 0 and one of shard 1, given out of order.
    let first = beacon
        .propose(vec![a2.clone(), b1.clone(), a1.clone()], 1)
        .unwrap();
    let block = first.clone();
    assert_eq!(block.height, 1);
    assert_eq!(
        block.shard_headers,
        vec![a1.clone(), a2.clone(), b1.clone()]
    );
    assert_eq!(beacon.final_header(ShardId(0), 2), Some(&a2));
    assert_eq!(beacon.final_header(ShardId(1), 1), Some(&b1));
    assert_eq!(beacon.final_header(ShardId(1), 2), None);

    let a3 = child(&a2);
    let a4 = child(&a3);
    let mut fork = child(&a2);
    fork.state_root = Hash([99; 32]);
    let fork_child = child(&fork);
    let mut other_chain = child(&a2);
    other_chain.chain_id = ChainId(6);
    let cases: Vec<(Vec<ShardBlockHeader>, Expect)> = vec![
        (vec![a4.clone()], |e| {
            matches!(e, BeaconError::Broken { .. })
        }),
        (vec![a2.clone()], |e| {
            matches!(e, BeaconError::Broken { .. })
        }),
        (vec![a3.clone(), fork_child], |e| {
            matches!(e, BeaconError::Broken { .. })
        }),
        (vec![other_chain], |e| {
            matches!(e, BeaconError::WrongChain { .. })
        }),
        (vec![header(7, 1, Hash::ZERO)], |e| {
            matches!(e, BeaconError::NoSuchShard { .. })
        }),
    ];
    for (headers, expected) in cases {
        let err = beacon.propose(headers, 2).unwrap_err();
        assert!(expected(&err), "{err}");
        assert_eq!(beacon.height(), 1);
        assert_eq!(beacon.shard_head(ShardId(0)), Some(&a2));
    }
    let block = beacon.propose(vec![a3.clone()], 2).unwrap();
    assert_eq!(block.height, 2);
    assert_eq!(block.parent, first.hash(), "beacon blocks chain by hash");
    assert_eq!(beacon.shard_head(ShardId(0)), Some(&a3));
}

#[test]
fn a_move_takes_effect_at_the_next_epoch_boundary() {
    let (mut beacon, _) = beacon(3);
    let address = Address([0x00; 20]);
    assert_eq!(beacon.shard_of(&address), ShardId(0));
    assert_eq!(beacon.epoch(), 0);
    let effective = beacon.schedule_move(address, ShardId(1)).unwrap();
    assert_eq!(effective, 1);
    // Heights 1 and 2 are epoch 0: the map does not change under them.
    for height in 1..=2 {
        let block = beacon.propose(Vec::new(), height).unwrap();
        assert_eq!((block.epoch, block.map_version), (0, 0));
        let expected = if height == 2 { ShardId(1) } else { ShardId(0) };
        // After block 2 the next block (3) is epoch 1.
        assert_eq!(beacon.shard_of(&address), expected, "after block {height}");
    }
    let block = beacon.propose(Vec::new(), 3).unwrap();
    assert_eq!((block.epoch, block.map_version), (1, 1));
    assert!(matches!(
        beacon.schedule_move(address, ShardId(5)),
        Err(atoll_primitives::shard_map::MapError::NoSuchShard { .. })
    ));
}

#[test]
fn only_the_newest_headers_are_kept() {
    let (mut beacon, genesis) = beacon(10);
    let mut last = genesis[0].clone();
    for _ in 0..RETAINED_HEADERS + 5 {
        let next = child(&last);
        beacon.propose(vec![next.clone()], 0).unwrap();
        last = next;
    }
    assert_eq!(beacon.final_header(ShardId(0), 1), None);
    assert_eq!(beacon.final_header(ShardId(0), last.height), Some(&last));
    let oldest = last.height - RETAINED_HEADERS as u64 + 1;
    assert!(beacon.final_header(ShardId(0), oldest).is_some());
    assert!(beacon.final_header(ShardId(0), oldest - 1).is_none());
}

#[test]
fn a_header_must_record_the_map_of_its_epoch() {
    let (mut beacon, genesis) = beacon(10);
    let mut wrong = child(&genesis[0]);
    wrong.map_hash = Hash([1; 32]);
    assert!(matches!(
        beacon.propose(vec![wrong], 1),
        Err(BeaconError::WrongMap { .. })
    ));
    // After a move, the next epoch's headers must name the new map, and a
    // lagging shard's header of the old epoch still checks against the old.
    let mover = Address([0; 20]);
    let effective = beacon.schedule_move(mover, ShardId(1)).unwrap();
    let old = child(&genesis[0]);
    beacon.propose(vec![old.clone()], 1).unwrap();
    while beacon.epoch() < effective {
        beacon.propose(Vec::new(), 2).unwrap();
    }
    let mut stale = child(&old);
    stale.epoch = effective;
    assert!(matches!(
        beacon.propose(vec![stale.clone()], 3),
        Err(BeaconError::WrongMap { .. })
    ));
    stale.map_hash = beacon.map().hash();
    beacon.propose(vec![stale], 3).unwrap();
    let lagging = child(&genesis[1]);
    assert_eq!(lagging.epoch, 0);
    beacon.propose(vec![lagging], 4).unwrap();
}
