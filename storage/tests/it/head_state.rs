//! `HeadState`: a reader's view of one head stays that head's while blocks
//! commit after it.

use crate::common::*;
use atoll_primitives::ShardMap;
use atoll_storage::BlockCommit;

#[test]
fn a_head_state_keeps_its_head_while_blocks_commit() {
    let (_dir, store) = fresh_store();
    assert!(store.head_state().unwrap().is_none());
    let genesis = commit_genesis(&store);
    let view = store.head_state().unwrap().unwrap();

    let next = block(Some(&genesis), vec![transfer(1, 0)]);
    let map = ShardMap::new(atoll_primitives::ShardLayout::uniform(2).unwrap());
    store
        .commit_block(&BlockCommit {
            block: &next,
            outcomes: &outcomes(1),
            state_changes: &[(key(1), Some(account(5, 1))), (key(2), None)],
            receipts: &[],
            shard_map: Some(&map),
            forwarded: &[],
            calls: &[],
        })
        .unwrap();

    // The view taken before the commit: genesis, whole.
    assert_eq!(view.head(), &genesis);
    assert_eq!(view.shard_map().expect("read"), None);
    assert_eq!(view.state(&key(1)).unwrap(), Some(account(1_000, 0)));
    assert_eq!(view.state(&key(2)).unwrap(), Some(account(2_000, 0)));
    // A view taken after it: the new block, whole.
    let after = store.head_state().unwrap().unwrap();
    assert_eq!(after.head(), &next.header);
    assert_eq!(after.shard_map().expect("read"), Some(map));
    assert_eq!(after.state(&key(1)).unwrap(), Some(account(5, 1)));
    assert_eq!(after.state(&key(2)).unwrap(), None);
    assert_eq!(after.state(&key(3)).unwrap(), Some(account(3_000, 0)));
}
