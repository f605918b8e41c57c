//! `open` refuses what is not this shard's store, and leaves it untouched.

use crate::common::*;
use atoll_primitives::{codec, ChainId, ShardId};
use atoll_storage::{ShardStore, StorageError, StoreIdentity};
use rocksdb::{DBWithThreadMode, Options, SingleThreaded};
use std::path::Path;

type RawDb = DBWithThreadMode<SingleThreaded>;

/// Every file under `dir` with its contents, to check that a refused open wrote nothing.
fn directory_contents(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| {
            let entry = entry.unwrap();
            let name = entry.file_name().to_string_lossy().into_owned();
            (name, std::fs::read(entry.path()).unwrap())
        })
        .collect();
    files.sort();
    files
}

/// Opens `dir` as a store, expects a refusal, and checks the directory is unchanged.
fn refuse(dir: &Path, identity: StoreIdentity) -> StorageError {
    let before = directory_contents(dir);
    let err = ShardStore::open(dir, identity).expect_err("the open must be refused");
    assert_eq!(
        directory_contents(dir),
        before,
        "a refused open changed {dir:?}"
    );
    err
}

fn create_raw(dir: &Path, families: &[&str]) -> RawDb {
    let mut options = Options::default();
    options.create_if_missing(true);
    options.create_missing_column_families(true);
    RawDb::open_cf(&options, dir, families).unwrap()
}

#[test]
fn foreign_rocksdb_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = create_raw(dir.path(), &["default", "things"]);
        db.put_cf(db.cf_handle("things").unwrap(), b"k", b"v")
            .unwrap();
    }
    let err = refuse(dir.path(), identity());
    let message = err.to_string();
    match err {
        StorageError::ForeignDatabase {
            column_families, ..
        } => {
            assert!(column_families.contains(&"things".to_string()));
        }
        other => panic!("expected ForeignDatabase, got {other}"),
    }
    assert!(
        message.contains(&format!(
            "{} holds a RocksDB database that is not an atoll shard store",
            dir.path().display()
        )),
        "{message}"
    );
    assert!(message.contains("\"things\""), "{message}");
    assert!(
        message.contains("point --home at an empty directory"),
        "{message}"
    );
}

#[test]
fn rocksdb_with_a_meta_family_but_no_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = create_raw(dir.path(), &["default", "meta"]);
        db.put_cf(db.cf_handle("meta").unwrap(), b"other", b"v")
            .unwrap();
    }
    let err = refuse(dir.path(), identity());
    assert!(matches!(err, StorageError::ForeignDatabase { .. }), "{err}");
}

#[test]
fn non_empty_directory_without_rocksdb_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("notes.txt"), b"my files").unwrap();
    let err = refuse(dir.path(), identity());
    assert!(
        matches!(err, StorageError::NotADataDirectory { .. }),
        "{err}"
    );
    let message = err.to_string();
    assert!(
        message.contains(&dir.path().display().to_string()),
        "{message}"
    );
    assert!(message.contains("not an atoll data directory"), "{message}");
}

#[test]
fn other_schema_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = ShardStore::open(dir.path(), identity()).unwrap();
        commit_genesis(&store);
    }
    {
        let families = RawDb::list_cf(&Options::default(), dir.path()).unwrap();
        let db = RawDb::open_cf(&Options::default(), dir.path(), &families).unwrap();
        let meta = db.cf_handle("meta").unwrap();
        db.put_cf(meta, b"schema_version", codec::encode(&1u32))
            .unwrap();
    }
    let err = refuse(dir.path(), identity());
    assert!(
        matches!(err, StorageError::SchemaVersion { found: 1, .. }),
        "{err}"
    );
    let message = err.to_string();
    assert!(
        message.contains("was written with store schema version 1; this atoll reads version 3"),
        "{message}"
    );
}

#[test]
fn other_chain_or_shard_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = ShardStore::open(dir.path(), identity()).unwrap();
        commit_genesis(&store);
    }
    let other_shard = StoreIdentity {
        chain_id: CHAIN,
        shard: ShardId(2),
    };
    let err = refuse(dir.path(), other_shard);
    let message = err.to_string();
    assert!(
        matches!(err, StorageError::IdentityMismatch { found, expected, .. }
            if found == identity() && expected == other_shard),
        "{message}"
    );
    assert!(
        message.contains("holds the store of chain id 7, shard 1"),
        "{message}"
    );
    assert!(message.contains("expects chain id 7, shard 2"), "{message}");

    let other_chain = StoreIdentity {
        chain_id: ChainId(8),
        shard: SHARD,
    };
    let err = refuse(dir.path(), other_chain);
    assert!(
        matches!(err, StorageError::IdentityMismatch { .. }),
        "{err}"
    );
    // The right identity still opens.
    let store = ShardStore::open(dir.path(), identity()).unwrap();
    assert_eq!(store.head().unwrap().map(|h| h.height), Some(0));
}

#[test]
fn store_in_use_is_refused() {
    let (dir, _store) = fresh_store();
    let err = ShardStore::open(dir.path(), identity()).expect_err("the store is locked");
    assert!(matches!(err, StorageError::Open { .. }), "{err}");
}

#[test]
fn missing_directory_is_created() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data").join("shard-1");
    let store = ShardStore::open(&path, identity()).unwrap();
    commit_genesis(&store);
    drop(store);
    let store = ShardStore::open(&path, identity()).unwrap();
    assert_eq!(store.state(&key(2)).unwrap(), Some(account(2_000, 0)));
}

#[test]
fn creation_cut_off_before_meta_is_finished_on_open() {
    // What a crash between creating the column families and writing the
    // schema leaves behind: atoll's families, all empty.
    let dir = tempfile::tempdir().unwrap();
    drop(create_raw(
        dir.path(),
        &[
            "default", "headers", "blocks", "state", "receipts", "tx_index", "meta",
        ],
    ));
    let store = ShardStore::open(dir.path(), identity()).unwrap();
    commit_genesis(&store);
    drop(store);
    let other = StoreIdentity {
        chain_id: ChainId(1),
        shard: SHARD,
    };
    let err = refuse(dir.path(), other);
    assert!(
        matches!(err, StorageError::IdentityMismatch { .. }),
        "{err}"
    );
}
