//! Crash consistency: a writer killed with SIGKILL at an arbitrary point
//! restarts at its last committed block, with no block half written.
//!
//! The test re-runs this test binary as a child that commits blocks in a loop
//! (the `crash_child_writer` test, which does nothing unless `CHILD_DIR_VAR` is
//! set), kills it after it reported some commits, and checks the store.

use crate::common::*;
use atoll_primitives::{ShardBlockHeader, ShardId};
use atoll_storage::{BlockCommit, ShardStore, TxLocation};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

const CHILD_DIR_VAR: &str = "ATOLL_STORAGE_CRASH_CHILD_DIR";
/// Block `h` writes state key `10 + h % ROTATING_KEYS`.
const ROTATING_KEYS: u64 = 4;

fn rotating_key(height: u64) -> atoll_primitives::StateKey {
    key(10 + (height % ROTATING_KEYS) as u8)
}

/// The child process: commits block after block on the store's head, printing
/// each committed height, until it is killed.
#[test]
fn crash_child_writer() {
    let Ok(dir) = std::env::var(CHILD_DIR_VAR) else {
        return;
    };
    let store = ShardStore::open(Path::new(&dir), identity()).unwrap();
    let mut parent = match store.head().unwrap() {
        Some(head) => head,
        None => commit_genesis(&store),
    };
    loop {
        let height = parent.height + 1;
        let block = block(Some(&parent), vec![transfer(1, height)]);
        let origin = block.body.transactions[0].hash();
        store
            .commit_block(&BlockCommit {
                block: &block,
                outcomes: &outcomes(1),
                state_changes: &[(rotating_key(height), Some(account(height.into(), height)))],
                receipts: &[receipt(ShardId(0), height - 1, origin)],
                shard_map: None,
                forwarded: &[],
                calls: &[],
            })
            .unwrap();
        println!("committed {height}");
        parent = block.header;
    }
}

#[test]
fn killed_writer_restarts_at_its_last_committed_block() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    // The kill lands after a different delay each round, so at different
    // points of a commit (the delays vary where, they are not asserted).
    for (round, delay_us) in [0u64, 300, 1_000, 2_000, 3_500, 6_000]
        .into_iter()
        .enumerate()
    {
        let mut child = Command::new(&exe)
            .args(["--exact", "crash::crash_child_writer", "--nocapture"])
            .args(["--test-threads", "1"])
            .env(CHILD_DIR_VAR, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let wanted = 3 + round;
        let mut reported = Vec::new();
        for line in BufReader::new(stdout).lines() {
            if let Some(height) = line.unwrap().strip_prefix("committed ") {
                reported.push(height.parse::<u64>().unwrap());
                if reported.len() == wanted {
                    break;
                }
            }
        }
        std::thread::sleep(std::time::Duration::from_micros(delay_us));
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(
            reported.len(),
            wanted,
            "round {round}: the child stopped early"
        );

        let store = ShardStore::open(dir.path(), identity()).unwrap();
        let head = store.head().unwrap().unwrap();
        let last_reported = *reported.last().unwrap();
        assert!(
            head.height >= last_reported,
            "round {round}: head {} is below the reported commit {last_reported}",
            head.height
        );
        check_consistent(&store, &head);
    }
}

/// Everything up to `head` is present and linked, nothing after it is.
fn check_consistent(store: &ShardStore, head: &ShardBlockHeader) {
    let mut parent_hash = atoll_primitives::Hash::ZERO;
    for height in 0..=head.height {
        let block = store.block(height).unwrap().unwrap();
        assert_eq!(block.header.parent, parent_hash, "height {height}");
        assert_eq!(store.height_of(&block.hash()).unwrap(), Some(height));
        parent_hash = block.hash();
        if height > 0 {
            let location = store.transaction(&transfer(1, height).hash()).unwrap();
            let expected = TxLocation {
                height,
                index: 0,
                outcome: outcomes(1)[0].clone(),
                receipt: Some((ShardId(0), height - 1)),
            };
            assert_eq!(location, Some(expected), "height {height}");
            let receipt = store.outgoing_receipt(ShardId(0), height - 1).unwrap();
            assert_eq!(receipt.map(|r| r.origin), Some(transfer(1, height).hash()));
        }
    }
    assert_eq!(parent_hash, head.hash());
    let next = head.height + 1;
    assert_eq!(store.header(next).unwrap(), None);
    assert_eq!(store.transaction(&transfer(1, next).hash()).unwrap(), None);
    assert_eq!(
        store.outgoing_receipt(ShardId(0), head.height).unwrap(),
        None
    );
    assert_eq!(store.outbox_cursor(ShardId(0)).unwrap(), head.height);
    for slot in 0..ROTATING_KEYS {
        // The newest block at or below the head that wrote this key.
        let last_write = (1..=head.height).rev().find(|h| h % ROTATING_KEYS == slot);
        let expected = last_write.map(|h| account(h.into(), h));
        assert_eq!(
            store.state(&rotating_key(slot)).unwrap(),
            expected,
            "slot {slot}"
        );
    }
}
