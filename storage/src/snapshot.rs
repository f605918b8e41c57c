//! A shard's state as one consistent snapshot: read from a store to serve a
//! peer ([`ShardStore::state_snapshot`]), and installed into a store in
//! place of everything it held ([`ShardStore::install_snapshot`]).
//!
//! A store installed from a snapshot holds the snapshot's header as its
//! head, with no body, and no block below it but the genesis block
//! ([`ShardStore::history_from`]).
//! It knows the transactions below its history by hash only, which is what
//! the duplicate check of later blocks needs
//! ([`ShardStore::includes_transaction`]).

use crate::error::StorageError;
use crate::keys::{self, cf};
use crate::shard_store::{sync_write, ShardStore, MAX_SMALL_VALUE_BYTES};
use atoll_primitives::codec::{self, MAX_RECEIPT_BYTES};
use atoll_primitives::{
    Hash, ProvenReceipt, ShardBlockHeader, ShardId, ShardMap, StateKey, StateValue,
};
use rocksdb::{Direction, IteratorMode, ReadOptions, WriteBatch};
use std::sync::atomic::Ordering;
use std::sync::PoisonError;

/// Every key of every column family sorts below this one (keys are at
/// most 33 bytes).
const KEY_END: [u8; 64] = [0xff; 64];

/// Largest encoded Merkle proof of a stored receipt (64 siblings and two
/// numbers are far more than any block's receipts need).
const MAX_PROOF_BYTES: usize = 64 * 32 + 32;

/// A shard's state at its head, read from one RocksDB snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateSnapshot {
    /// The head header: the state is the one after this block.
    pub head: ShardBlockHeader,
    /// Every state entry, in key order.
    pub entries: Vec<(StateKey, StateValue)>,
    /// The next outgoing receipt sequence to each destination it ever sent
    /// to, by destination.
    pub outbox: Vec<(ShardId, u64)>,
}

/// What [`ShardStore::install_snapshot`] writes.
#[derive(Clone, Copy, Debug)]
pub struct SnapshotInstall<'a> {
    /// The new head (checked against the state by the caller).
    pub head: &'a ShardBlockHeader,
    /// The state after it, in key order.
    pub entries: &'a [(StateKey, StateValue)],
    /// The next outgoing receipt sequence per destination (those above 0).
    pub outbox: &'a [(ShardId, u64)],
    /// The shard map the head executed under, when it is not the genesis
    /// layout's.
    pub shard_map: Option<&'a ShardMap>,
    /// Every transaction in the chain up to the head, with its height.
    pub transactions: &'a [(Hash, u64)],
    /// The last receipt to each destination, proven (kept so that this
    /// store can prove its outbox cursors when it serves a snapshot).
    pub last_receipts: &'a [ProvenReceipt],
}

impl ShardStore {
    /// The state at the head, its header and outbox cursors, all read from
    /// one snapshot (so a commit running meanwhile is either wholly in it
    /// or not at all); None for a store with no block yet.
    pub fn state_snapshot(&self) -> Result<Option<StateSnapshot>, StorageError> {
        let snapshot = self.db.snapshot();
        let Some(head) = self.head_from(&snapshot)? else {
            return Ok(None);
        };
        let mut entries = Vec::new();
        for entry in snapshot.iterator_cf(self.cf(cf::STATE), IteratorMode::Start) {
            let (key, value) = entry?;
            let state_key = keys::decode("state key", &key, &key, MAX_SMALL_VALUE_BYTES)?;
            let value = keys::state_value(&state_key, &key, &value)?;
            entries.push((state_key, value));
        }
        let prefix = keys::outbox_cursor_prefix();
        let mut outbox = Vec::new();
        let mut options = ReadOptions::default();
        options.set_iterate_lower_bound(prefix.to_vec());
        let from = IteratorMode::From(prefix, Direction::Forward);
        for entry in snapshot.iterator_cf_opt(self.cf(cf::META), options, from) {
            let (key, value) = entry?;
            let Some(destination) = keys::outbox_destination(&key) else {
                if key.starts_with(prefix) {
                    continue;
                }
                break;
            };
            let cursor: u64 = keys::decode("outbox cursor", &key, &value, MAX_SMALL_VALUE_BYTES)?;
            outbox.push((destination, cursor));
        }
        Ok(Some(StateSnapshot {
            head,
            entries,
            outbox,
        }))
    }

    /// The proven last receipt to `destination` this store got with the
    /// snapshot it was installed from, if any.
    pub fn synced_receipt(
        &self,
        destination: ShardId,
    ) -> Result<Option<ProvenReceipt>, StorageError> {
        self.get(
            cf::META,
            "synced receipt",
            &keys::synced_receipt(destination),
            MAX_RECEIPT_BYTES + MAX_PROOF_BYTES,
        )
    }

    /// Replaces everything this store holds with `install`, in one atomic,
    /// synced write: a crash leaves either the old store or the new one.
    /// The head must be this store's chain and shard.
    pub fn install_snapshot(&self, install: &SnapshotInstall<'_>) -> Result<(), StorageError> {
        let _guard = self
            .commit_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let head = install.head;
        self.check_identity(head)?;
        let identity = self.identity();
        // The genesis block stays: it is the same on every validator, and
        // a restarting node rebuilds the beacon's recorded headers of a
        // young shard from it.
        let genesis = self.block(0)?.filter(|_| head.height > 0);
        let mut batch = WriteBatch::default();
        for family in cf::ALL {
            batch.delete_range_cf(self.cf(family), &[][..], &KEY_END[..]);
        }
        let meta = self.cf(cf::META);
        batch.put_cf(
            meta,
            keys::META_SCHEMA_VERSION,
            codec::encode(&crate::SCHEMA_VERSION),
        );
        batch.put_cf(meta, keys::META_IDENTITY, codec::encode(&identity));
        if let Some(genesis) = &genesis {
            self.put_block(&mut batch, genesis);
        }
        let headers = self.cf(cf::HEADERS);
        batch.put_cf(headers, keys::header(head.height), codec::encode(head));
        batch.put_cf(
            headers,
            keys::height_by_hash(&head.hash()),
            codec::encode(&head.height),
        );
        let state = self.cf(cf::STATE);
        for (key, value) in install.entries {
            batch.put_cf(state, keys::state(key), value.to_bytes());
        }
        for (destination, cursor) in install.outbox {
            batch.put_cf(
                meta,
                keys::outbox_cursor(*destination),
                codec::encode(cursor),
            );
        }
        if let Some(map) = install.shard_map {
            batch.put_cf(meta, keys::META_SHARD_MAP, codec::encode(map));
        }
        let tx_index = self.cf(cf::TX_INDEX);
        for (hash, height) in install.transactions {
            batch.put_cf(
                tx_index,
                keys::synced_transaction(hash),
                codec::encode(height),
            );
        }
        for proven in install.last_receipts {
            batch.put_cf(
                meta,
                keys::synced_receipt(proven.receipt.destination),
                codec::encode(proven),
            );
        }
        batch.put_cf(meta, keys::META_HISTORY_FROM, codec::encode(&head.height));
        batch.put_cf(meta, keys::META_HEAD, codec::encode(&head.height));
        self.db.write_opt(batch, &sync_write())?;
        self.synced.store(true, Ordering::Release);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{BlockCommit, StoreIdentity};
    use atoll_primitives::{
        merkle, Action, Address, ChainId, KeyPair, ShardBlock, ShardBlockBody, Transaction,
    };

    fn identity() -> StoreIdentity {
        StoreIdentity {
            chain_id: ChainId(3),
            shard: ShardId(1),
        }
    }

    fn header(height: u64, parent: Hash) -> ShardBlockHeader {
        ShardBlockHeader {
            chain_id: ChainId(3),
            shard: ShardId(1),
            height,
            parent,
            timestamp_ms: height,
            epoch: 0,
            map_hash: Hash::ZERO,
            state_root: Hash([height as u8; 32]),
            tx_root: merkle::root(&[]),
            outcome_root: Hash::ZERO,
            receipt_roots: Vec::new(),
            incoming_root: merkle::root(&[]),
            inbox_cursors: vec![(ShardId(0), 4)],
            congested: false,
            tx_count: 0,
            burnt_fees: 0,
        }
    }

    fn key(i: u8) -> StateKey {
        StateKey::Account(Address([i; 20]))
    }

    fn account(balance: u128) -> StateValue {
        StateValue::Account(atoll_primitives::Account { balance, nonce: 1 })
    }

    fn commit(store: &ShardStore, block: &ShardBlock, changes: &[(StateKey, StateValue)]) {
        let changes: Vec<_> = changes
            .iter()
            .map(|(key, value)| (*key, Some(value.clone())))
            .collect();
        store
            .commit_block(&BlockCommit {
                block,
                outcomes: &[],
                state_changes: &changes,
                receipts: &[],
                shard_map: None,
                forwarded: &[],
                calls: &[],
            })
            .expect("commit");
    }

    /// A store with blocks 0 and 1 and two accounts.
    fn store_with_history(dir: &std::path::Path) -> ShardStore {
        let store = ShardStore::open(dir, identity()).expect("open");
        let genesis = ShardBlock {
            header: ShardBlockHeader {
                inbox_cursors: Vec::new(),
                ..header(0, Hash::ZERO)
            },
            body: ShardBlockBody::default(),
        };
        commit(&store, &genesis, &[(key(1), account(10))]);
        let one = ShardBlock {
            header: ShardBlockHeader {
                inbox_cursors: Vec::new(),
                ..header(1, genesis.hash())
            },
            body: ShardBlockBody::default(),
        };
        commit(&store, &one, &[(key(2), account(20))]);
        store
    }

    #[test]
    fn a_snapshot_holds_the_head_and_every_entry() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = store_with_history(dir.path());
        let snapshot = store.state_snapshot().expect("read").expect("a head");
        assert_eq!(snapshot.head.height, 1);
        assert_eq!(
            snapshot.entries,
            vec![(key(1), account(10)), (key(2), account(20))]
        );
        assert!(snapshot.outbox.is_empty());
        let empty = tempfile::tempdir().expect("temp dir");
        let none = ShardStore::open(empty.path(), identity()).expect("open");
        assert_eq!(none.state_snapshot().expect("read"), None);
    }

    #[test]
    fn an_installed_snapshot_replaces_everything_and_survives_a_reopen() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = store_with_history(dir.path());
        let genesis = store.block(0).expect("read").expect("a genesis block");
        let head = header(40, Hash([9; 32]));
        let tx = Transaction {
            chain_id: ChainId(3),
            sender: KeyPair::from_seed([1; 32]).public(),
            nonce: 0,
            fee: 1,
            action: Action::Transfer {
                to: Address([2; 20]),
                amount: 1,
            },
        }
        .sign(&KeyPair::from_seed([1; 32]));
        let known = tx.hash();
        store
            .install_snapshot(&SnapshotInstall {
                head: &head,
                entries: &[(key(3), account(30))],
                outbox: &[(ShardId(0), 7)],
                shard_map: None,
                transactions: &[(known, 12)],
                last_receipts: &[],
            })
            .expect("install");
        drop(store);
        let store = ShardStore::open(dir.path(), identity()).expect("reopen");
        assert_eq!(store.head().expect("read"), Some(head.clone()));
        assert_eq!(store.history_from().expect("read"), 40);
        assert_eq!(store.header(1).expect("read"), None);
        assert_eq!(store.block(0).expect("read"), Some(genesis));
        // The head's body was not part of the snapshot.
        assert_eq!(store.block(40).expect("read"), None);
        assert_eq!(store.state(&key(1)).expect("read"), None);
        assert_eq!(store.state(&key(3)).expect("read"), Some(account(30)));
        assert_eq!(store.outbox_cursor(ShardId(0)).expect("read"), 7);
        assert!(store.includes_transaction(&known).expect("read"));
        assert!(!store.includes_transaction(&Hash([6; 32])).expect("read"));
        assert_eq!(
            store
                .known_transactions(&[Hash([6; 32]), known, Hash([7; 32])])
                .expect("read"),
            vec![false, true, false]
        );
        // Admission asks the same question and learns where: at or below
        // the snapshot, known by hash only.
        assert_eq!(
            store.inclusion(&known).expect("read"),
            Some(crate::Inclusion::BelowSnapshot { height: 40 })
        );
        assert_eq!(store.inclusion(&Hash([6; 32])).expect("read"), None);
        let snapshot = store.state_snapshot().expect("read").expect("head");
        assert_eq!(snapshot.outbox, vec![(ShardId(0), 7)]);
        // A transaction known from below the snapshot cannot enter the
        // chain again; the next block extends the installed head.
        let repeat = ShardBlock {
            header: ShardBlockHeader {
                tx_root: merkle::root(&[known]),
                tx_count: 1,
                ..header(41, head.hash())
            },
            body: ShardBlockBody {
                incoming: Vec::new(),
                transactions: vec![tx.into()],
            },
        };
        let err = store
            .commit_block(&BlockCommit {
                block: &repeat,
                outcomes: &[atoll_primitives::TxOutcome::Success],
                state_changes: &[],
                receipts: &[],
                shard_map: None,
                forwarded: &[],
                calls: &[],
            })
            .expect_err("a known transaction");
        assert!(matches!(
            err,
            StorageError::DuplicateTransaction { height: 12, .. }
        ));
        let next = ShardBlock {
            header: header(41, head.hash()),
            body: ShardBlockBody::default(),
        };
        commit(&store, &next, &[]);
        assert_eq!(store.head().expect("read").map(|h| h.height), Some(41));
    }

    #[test]
    fn a_snapshot_of_another_shard_is_refused_and_changes_nothing() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = store_with_history(dir.path());
        let head = ShardBlockHeader {
            shard: ShardId(0),
            ..header(40, Hash::ZERO)
        };
        let err = store
            .install_snapshot(&SnapshotInstall {
                head: &head,
                entries: &[],
                outbox: &[],
                shard_map: None,
                transactions: &[],
                last_receipts: &[],
            })
            .expect_err("another shard");
        assert!(matches!(err, StorageError::WrongShard { .. }));
        assert_eq!(store.head().expect("read").map(|h| h.height), Some(1));
        assert_eq!(store.history_from().expect("read"), 0);
    }
}
