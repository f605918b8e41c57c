//! Every rejected commit returns its own error and changes nothing.

use crate::common::*;
use atoll_primitives::{ChainId, Hash, Receipt, ShardBlock, ShardId, TxOutcome};
use atoll_storage::{BlockCommit, ShardStore, StorageError};

/// A store with genesis and block 1 (one receipt to shard 0, sequence 0).
fn store_with_two_blocks() -> (tempfile::TempDir, ShardStore, ShardBlock) {
    let (dir, store) = fresh_store();
    let genesis = commit_genesis(&store);
    let first = block(Some(&genesis), vec![transfer(1, 0)]);
    store
        .commit_block(&BlockCommit {
            block: &first,
            outcomes: &outcomes(1),
            state_changes: &[(key(1), Some(account(989, 1)))],
            receipts: &[receipt(ShardId(0), 0, Hash([1; 32]))],
            shard_map: None,
            forwarded: &[],
            calls: &[],
        })
        .unwrap();
    (dir, store, first)
}

/// Commits `commit`, expects it refused, and checks that nothing changed.
fn assert_rejected(store: &ShardStore, commit: BlockCommit<'_>) -> StorageError {
    let before = snapshot(store);
    let err = store
        .commit_block(&commit)
        .expect_err("the commit must be refused");
    assert_eq!(
        snapshot(store),
        before,
        "a refused commit changed the store: {err}"
    );
    let height = commit.block.header.height;
    if before.head.as_ref().map(|h| h.height) != Some(height) {
        assert_eq!(store.header(height).unwrap(), None);
    }
    for tx in &commit.block.body.transactions {
        if let Some(location) = store.transaction(&tx.hash()).unwrap() {
            assert_ne!(location.height, height);
        }
    }
    err
}

/// A valid next block on `parent` with one fresh transaction.
fn next(parent: &ShardBlock, nonce: u64) -> ShardBlock {
    block(Some(&parent.header), vec![transfer(2, nonce)])
}

fn commit<'a>(block: &'a ShardBlock, outcomes: &'a [TxOutcome]) -> BlockCommit<'a> {
    BlockCommit {
        block,
        outcomes,
        state_changes: &[],
        receipts: &[],
        shard_map: None,
        forwarded: &[],
        calls: &[],
    }
}

fn with_receipts<'a>(
    block: &'a ShardBlock,
    outcomes: &'a [TxOutcome],
    receipts: &'a [Receipt],
) -> BlockCommit<'a> {
    BlockCommit {
        block,
        outcomes,
        state_changes: &[],
        receipts,
        shard_map: None,
        forwarded: &[],
        calls: &[],
    }
}

#[test]
fn wrong_chain_and_shard_are_refused() {
    let (_dir, store, first) = store_with_two_blocks();
    let ok = outcomes(1);
    let mut other_chain = next(&first, 0);
    other_chain.header.chain_id = ChainId(8);
    let err = assert_rejected(&store, commit(&other_chain, &ok));
    assert!(
        matches!(
            err,
            StorageError::WrongChain {
                found: ChainId(8),
                ..
            }
        ),
        "{err}"
    );

    let mut other_shard = next(&first, 0);
    other_shard.header.shard = ShardId(0);
    let err = assert_rejected(&store, commit(&other_shard, &ok));
    assert!(
        matches!(
            err,
            StorageError::WrongShard {
                found: ShardId(0),
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn heights_and_parents_must_extend_the_head() {
    let (_dir, store, first) = store_with_two_blocks();
    let ok = outcomes(1);
    let mut skip = next(&first, 0);
    skip.header.height = 3;
    let err = assert_rejected(&store, commit(&skip, &ok));
    assert!(
        matches!(
            err,
            StorageError::UnexpectedHeight {
                expected: 2,
                found: 3
            }
        ),
        "{err}"
    );

    let mut repeat = next(&first, 0);
    repeat.header.height = 1;
    let err = assert_rejected(&store, commit(&repeat, &ok));
    assert!(
        matches!(err, StorageError::UnexpectedHeight { found: 1, .. }),
        "{err}"
    );

    let mut fork = next(&first, 0);
    fork.header.parent = Hash([5; 32]);
    let err = assert_rejected(&store, commit(&fork, &ok));
    assert!(
        matches!(err, StorageError::ParentMismatch { height: 2, .. }),
        "{err}"
    );
}

#[test]
fn empty_store_takes_only_genesis() {
    let (_dir, store) = fresh_store();
    let genesis = block(None, Vec::new());
    let mut late = genesis.clone();
    late.header.height = 1;
    let err = assert_rejected(&store, commit(&late, &[]));
    assert!(
        matches!(
            err,
            StorageError::UnexpectedHeight {
                expected: 0,
                found: 1
            }
        ),
        "{err}"
    );

    let mut orphan = genesis;
    orphan.header.parent = Hash([1; 32]);
    let err = assert_rejected(&store, commit(&orphan, &[]));
    assert!(
        matches!(err, StorageError::ParentMismatch { height: 0, .. }),
        "{err}"
    );
    assert_eq!(store.head().unwrap(), None);
}

#[test]
fn outcomes_must_match_transactions() {
    let (_dir, store, first) = store_with_two_blocks();
    let block = next(&first, 0);
    let err = assert_rejected(&store, commit(&block, &outcomes(2)));
    assert!(
        matches!(
            err,
            StorageError::OutcomeCount {
                transactions: 1,
                outcomes: 2
            }
        ),
        "{err}"
    );
    let err = assert_rejected(&store, commit(&block, &[]));
    assert!(
        matches!(err, StorageError::OutcomeCount { outcomes: 0, .. }),
        "{err}"
    );
}

#[test]
fn header_must_describe_the_body() {
    let (_dir, store, first) = store_with_two_blocks();
    let ok = outcomes(1);
    let mut count = next(&first, 0);
    count.header.tx_count = 2;
    let err = assert_rejected(&store, commit(&count, &ok));
    assert!(matches!(err, StorageError::BodyMismatch { .. }), "{err}");

    let mut root = next(&first, 0);
    root.header.tx_root = Hash([9; 32]);
    let err = assert_rejected(&store, commit(&root, &ok));
    assert!(matches!(err, StorageError::BodyMismatch { .. }), "{err}");
}

#[test]
fn receipts_must_come_from_this_shard_without_gaps() {
    let (_dir, store, first) = store_with_two_blocks();
    let block = next(&first, 0);
    let ok = outcomes(1);
    let origin = block.body.transactions[0].hash();

    let mut foreign = receipt(ShardId(0), 1, origin);
    foreign.source = ShardId(3);
    let err = assert_rejected(&store, with_receipts(&block, &ok, &[foreign]));
    assert!(
        matches!(
            err,
            StorageError::ReceiptSource {
                index: 0,
                found: ShardId(3),
                ..
            }
        ),
        "{err}"
    );

    // Shard 0's cursor is 1: sequence 0 again is a replay, 2 is a gap.
    for bad in [0, 2] {
        let err = assert_rejected(
            &store,
            with_receipts(&block, &ok, &[receipt(ShardId(0), bad, origin)]),
        );
        assert!(
            matches!(err, StorageError::ReceiptSequence { expected: 1, found, .. } if found == bad),
            "{err}"
        );
    }
    // A gap within the commit: 1 then 3 (the receipt of 1 must not be written).
    let err = assert_rejected(
        &store,
        with_receipts(
            &block,
            &ok,
            &[
                receipt(ShardId(0), 1, origin),
                receipt(ShardId(0), 3, origin),
            ],
        ),
    );
    assert!(
        matches!(
            err,
            StorageError::ReceiptSequence {
                expected: 2,
                found: 3,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(store.outgoing_receipt(ShardId(0), 1).unwrap(), None);
    // A new destination starts at 0.
    let err = assert_rejected(
        &store,
        with_receipts(&block, &ok, &[receipt(ShardId(2), 1, origin)]),
    );
    assert!(
        matches!(
            err,
            StorageError::ReceiptSequence {
                expected: 0,
                found: 1,
                ..
            }
        ),
        "{err}"
    );

    // And the valid numbering is accepted.
    store
        .commit_block(&with_receipts(
            &block,
            &ok,
            &[
                receipt(ShardId(0), 1, origin),
                receipt(ShardId(2), 0, origin),
                receipt(ShardId(0), 2, origin),
            ],
        ))
        .unwrap();
    assert_eq!(store.outbox_cursor(ShardId(0)).unwrap(), 3);
    assert_eq!(store.outbox_cursor(ShardId(2)).unwrap(), 1);
}

#[test]
fn a_transaction_is_included_at_most_once() {
    let (_dir, store, first) = store_with_two_blocks();
    let included = first.body.transactions[0].clone();
    // The producer's batched question gives the same answers.
    let fresh = transfer(2, 0);
    assert_eq!(
        store
            .known_transactions(&[fresh.hash(), included.hash()])
            .unwrap(),
        vec![false, true]
    );
    let again = block(Some(&first.header), vec![fresh, included.clone()]);
    let err = assert_rejected(&store, commit(&again, &outcomes(2)));
    match err {
        StorageError::DuplicateTransaction { hash, height } => {
            assert_eq!((hash, height), (included.hash(), 1));
        }
        other => panic!("expected DuplicateTransaction, got {other}"),
    }
    // The state key written by the refused block is untouched too.
    assert_eq!(store.state(&key(1)).unwrap(), Some(account(989, 1)));

    let twice = block(Some(&first.header), vec![transfer(2, 5), transfer(2, 5)]);
    let err = assert_rejected(&store, commit(&twice, &outcomes(2)));
    assert!(
        matches!(err, StorageError::DuplicateTransaction { height: 2, .. }),
        "{err}"
    );
}

#[test]
fn refused_commit_with_state_changes_writes_no_state() {
    let (_dir, store, first) = store_with_two_blocks();
    let mut bad = next(&first, 0);
    bad.header.height = 9;
    let changes = [
        (key(1), Some(account(1, 1))),
        (key(50), Some(account(5, 0))),
    ];
    let err = assert_rejected(
        &store,
        BlockCommit {
            block: &bad,
            outcomes: &outcomes(1),
            state_changes: &changes,
            receipts: &[],
            shard_map: None,
            forwarded: &[],
            calls: &[],
        },
    );
    assert!(
        matches!(err, StorageError::UnexpectedHeight { .. }),
        "{err}"
    );
    assert_eq!(store.state(&key(50)).unwrap(), None);
}

#[test]
fn incoming_receipts_must_continue_the_inbox() {
    use atoll_primitives::merkle::MerkleProof;
    use atoll_primitives::{ProvenReceipt, ReceiptAction};
    let (_dir, store, first) = store_with_two_blocks();
    // SHARD (1) receives from shard 0; proofs are the inbox's business,
    // the store checks order, destination, cursors and root.
    let incoming = |source: u16, destination: u16, sequence: u64| ProvenReceipt {
        receipt: Receipt {
            source: ShardId(source),
            destination: ShardId(destination),
            sequence,
            origin: Hash([9; 32]),
            action: ReceiptAction::Transfer {
                to: atoll_primitives::Address([5; 20]),
                amount: 3,
            },
        },
        source_height: 1,
        proof: MerkleProof::new(&[Hash([1; 32])], 0).unwrap(),
    };
    let with_incoming = |list: Vec<ProvenReceipt>, cursors: Vec<(ShardId, u64)>| {
        let mut block = next(&first, 0);
        block.body.incoming = list;
        block.header.incoming_root = block.body.incoming_root();
        block.header.inbox_cursors = cursors;
        block
    };
    let outcomes = outcomes(1);
    let cases = [
        // A gap: the stream from shard 0 starts at 0.
        with_incoming(vec![incoming(0, 1, 1)], vec![(ShardId(0), 2)]),
        // Addressed to another shard, or from this one.
        with_incoming(vec![incoming(0, 2, 0)], vec![(ShardId(0), 1)]),
        with_incoming(vec![incoming(1, 1, 0)], vec![(ShardId(1), 1)]),
        // Cursors that do not match the receipts.
        with_incoming(vec![incoming(0, 1, 0)], vec![(ShardId(0), 5)]),
        with_incoming(
            vec![incoming(0, 1, 0), incoming(0, 1, 0)],
            vec![(ShardId(0), 1)],
        ),
    ];
    for block in &cases {
        let err = assert_rejected(&store, commit(block, &outcomes));
        assert!(matches!(err, StorageError::IncomingReceipt { .. }), "{err}");
    }
    // A wrong root.
    let mut block = with_incoming(vec![incoming(0, 1, 0)], vec![(ShardId(0), 1)]);
    block.header.incoming_root = Hash([7; 32]);
    let err = assert_rejected(&store, commit(&block, &outcomes));
    assert!(matches!(err, StorageError::IncomingReceipt { .. }), "{err}");
    // The right one commits, and the same receipt again is then refused.
    let good = with_incoming(vec![incoming(0, 1, 0)], vec![(ShardId(0), 1)]);
    store.commit_block(&commit(&good, &outcomes)).unwrap();
    let mut again = block_after(&good, vec![incoming(0, 1, 0)], vec![(ShardId(0), 2)]);
    again.header.incoming_root = again.body.incoming_root();
    let err = assert_rejected(&store, commit(&again, &outcomes));
    assert!(matches!(err, StorageError::IncomingReceipt { .. }), "{err}");
}

fn block_after(
    parent: &ShardBlock,
    incoming: Vec<atoll_primitives::ProvenReceipt>,
    cursors: Vec<(ShardId, u64)>,
) -> ShardBlock {
    let mut block = block(Some(&parent.header), vec![transfer(3, 0)]);
    block.body.incoming = incoming;
    block.header.inbox_cursors = cursors;
    block
}
