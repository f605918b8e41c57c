//! A store written block by block reads back the same after a reopen.

use crate::common::*;
use atoll_primitives::{ShardBlock, ShardId};
use atoll_storage::{BlockCommit, ShardStore, TxLocation};

#[test]
fn committed_chain_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut blocks: Vec<ShardBlock> = Vec::new();
    let mut receipts_sent = Vec::new();
    {
        let store = ShardStore::open(dir.path(), identity()).unwrap();
        let genesis = commit_genesis(&store);
        blocks.push(store.block(0).unwrap().unwrap());
        let mut parent = genesis;
        for height in 1..=3u64 {
            let txs = vec![transfer(1, height), transfer(2, height)];
            let block = block(Some(&parent), txs);
            let origin = block.body.transactions[0].hash();
            // Two receipts to shard 0 and one to shard 2 per block.
            let first = (height - 1) * 2;
            let receipts = vec![
                receipt(ShardId(0), first, origin),
                receipt(ShardId(2), height - 1, origin),
                receipt(ShardId(0), first + 1, origin),
            ];
            let state = [
                (key(1), Some(account(1_000 - height as u128, height))),
                (key(9), Some(account(height as u128, 0))),
            ];
            store
                .commit_block(&BlockCommit {
                    block: &block,
                    outcomes: &outcomes(2),
                    state_changes: &state,
                    receipts: &receipts,
                    shard_map: None,
                    forwarded: &[],
                    calls: &[],
                })
                .unwrap();
            parent = block.header.clone();
            receipts_sent.extend(receipts);
            blocks.push(block);
        }
    }

    let store = ShardStore::open(dir.path(), identity()).unwrap();
    let head = store.head().unwrap().unwrap();
    assert_eq!(head, blocks[3].header);
    for block in &blocks {
        let height = block.header.height;
        assert_eq!(store.header(height).unwrap().as_ref(), Some(&block.header));
        assert_eq!(store.block(height).unwrap().as_ref(), Some(block));
        assert_eq!(store.height_of(&block.hash()).unwrap(), Some(height));
        for (index, tx) in block.body.transactions.iter().enumerate() {
            let expected = TxLocation {
                height,
                index: index as u32,
                outcome: outcomes(2)[index].clone(),
                // The first transaction is the origin of the block's receipts
                // (the index keeps the last one it emitted).
                receipt: (index == 0 && height > 0).then_some((ShardId(0), (height - 1) * 2 + 1)),
            };
            assert_eq!(store.transaction(&tx.hash()).unwrap(), Some(expected));
        }
    }
    assert_eq!(store.header(4).unwrap(), None);
    assert_eq!(store.block(4).unwrap(), None);
    assert_eq!(store.transaction(&transfer(1, 99).hash()).unwrap(), None);

    let state: Vec<_> = store.state_entries().map(Result::unwrap).collect();
    assert_eq!(
        state,
        vec![
            (key(1), account(997, 3)),
            (key(2), account(2_000, 0)),
            (key(3), account(3_000, 0)),
            (key(9), account(3, 0)),
        ]
    );
    assert_eq!(store.state(&key(1)).unwrap(), Some(account(997, 3)));
    assert_eq!(store.state(&key(4)).unwrap(), None);

    assert_eq!(store.outbox_cursor(ShardId(0)).unwrap(), 6);
    assert_eq!(store.outbox_cursor(ShardId(2)).unwrap(), 3);
    assert_eq!(store.outbox_cursor(ShardId(3)).unwrap(), 0);
    for sent in &receipts_sent {
        let stored = store
            .outgoing_receipt(sent.destination, sent.sequence)
            .unwrap();
        assert_eq!(stored.as_ref(), Some(sent));
    }
    assert_eq!(store.outgoing_receipt(ShardId(0), 6).unwrap(), None);
}

#[test]
fn commits_continue_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let genesis = {
        let store = ShardStore::open(dir.path(), identity()).unwrap();
        commit_genesis(&store)
    };
    let store = ShardStore::open(dir.path(), identity()).unwrap();
    let next = block(Some(&genesis), vec![transfer(1, 0)]);
    store
        .commit_block(&BlockCommit {
            block: &next,
            outcomes: &outcomes(1),
            state_changes: &[],
            receipts: &[receipt(ShardId(0), 0, next.body.transactions[0].hash())],
            shard_map: None,
            forwarded: &[],
            calls: &[],
        })
        .unwrap();
    assert_eq!(store.head().unwrap(), Some(next.header));
    assert_eq!(store.outbox_cursor(ShardId(0)).unwrap(), 1);
}

/// Code, code hashes and storage slots are state like accounts: written in
/// the block's one commit, read back after a reopen, and a change without a
/// value deletes its key (an emptied slot is not kept as zero).
#[test]
fn every_kind_of_state_value_is_committed_and_deletions_remove_keys() {
    use atoll_primitives::{Address, Hash, StateKey, StateValue};
    let dir = tempfile::tempdir().unwrap();
    let contract = Address([0xc0; 20]);
    let code_hash = Hash([0xcd; 32]);
    let slot = StateKey::Slot(contract, [1; 32]);
    let genesis = {
        let store = ShardStore::open(dir.path(), identity()).unwrap();
        let genesis = commit_genesis(&store);
        let next = block(Some(&genesis), Vec::new());
        let changes = [
            (
                StateKey::CodeHash(contract),
                Some(StateValue::CodeHash(code_hash)),
            ),
            (
                StateKey::Code(code_hash),
                Some(StateValue::Code(vec![0x60, 0x01, 0x00])),
            ),
            (slot, Some(StateValue::Slot([7; 32]))),
        ];
        store
            .commit_block(&BlockCommit {
                block: &next,
                outcomes: &[],
                state_changes: &changes,
                receipts: &[],
                shard_map: None,
                forwarded: &[],
                calls: &[],
            })
            .unwrap();
        next.header
    };
    let store = ShardStore::open(dir.path(), identity()).unwrap();
    assert_eq!(
        store.state(&StateKey::Code(code_hash)).unwrap(),
        Some(StateValue::Code(vec![0x60, 0x01, 0x00]))
    );
    assert_eq!(store.state(&slot).unwrap(), Some(StateValue::Slot([7; 32])));
    assert_eq!(
        store.state_entries().count(),
        6,
        "three accounts, code hash, code, slot"
    );
    let next = block(Some(&genesis), Vec::new());
    store
        .commit_block(&BlockCommit {
            block: &next,
            outcomes: &[],
            state_changes: &[(slot, None)],
            receipts: &[],
            shard_map: None,
            forwarded: &[],
            calls: &[],
        })
        .unwrap();
    assert_eq!(store.state(&slot).unwrap(), None);
    assert_eq!(store.state_entries().count(), 5);
}
