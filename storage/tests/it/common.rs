//! Builders for blocks, transactions and receipts, and a store in a temp dir.

use atoll_primitives::{
    Account, Action, Address, ChainId, Hash, KeyPair, Receipt, ReceiptAction, ShardBlock,
    ShardBlockBody, ShardBlockHeader, ShardId, SignedTransaction, StateKey, StateValue,
    Transaction, TxFailure, TxOutcome,
};
use atoll_storage::{BlockCommit, ShardStore, StoreIdentity};
use tempfile::TempDir;

pub const CHAIN: ChainId = ChainId(7);
pub const SHARD: ShardId = ShardId(1);

pub fn identity() -> StoreIdentity {
    StoreIdentity {
        chain_id: CHAIN,
        shard: SHARD,
    }
}

/// A fresh store in a temp dir (the dir lives as long as the returned guard).
pub fn fresh_store() -> (TempDir, ShardStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = ShardStore::open(dir.path(), identity()).unwrap();
    (dir, store)
}

pub fn key(seed: u8) -> StateKey {
    StateKey::Account(Address([seed; 20]))
}

pub fn account(balance: u128, nonce: u64) -> StateValue {
    StateValue::Account(Account { balance, nonce })
}

/// A signed transfer from the key of `seed`; `nonce` makes each one unique.
pub fn transfer(seed: u8, nonce: u64) -> SignedTransaction {
    let sender = KeyPair::from_seed([seed; 32]);
    Transaction {
        chain_id: CHAIN,
        sender: sender.public(),
        nonce,
        fee: 1,
        action: Action::Transfer {
            to: Address([0xee; 20]),
            amount: 10,
        },
    }
    .sign(&sender)
    .into()
}

/// A block on `parent` (genesis when None) holding `transactions`.
pub fn block(
    parent: Option<&ShardBlockHeader>,
    transactions: Vec<SignedTransaction>,
) -> ShardBlock {
    let body = ShardBlockBody {
        incoming: Vec::new(),
        transactions,
    };
    let header = ShardBlockHeader {
        chain_id: CHAIN,
        shard: SHARD,
        height: parent.map_or(0, |p| p.height + 1),
        parent: parent.map_or(Hash::ZERO, ShardBlockHeader::hash),
        timestamp_ms: 1_000,
        epoch: 0,
        map_hash: Hash::ZERO,
        state_root: Hash([3; 32]),
        tx_root: body.tx_root(),
        outcome_root: Hash::ZERO,
        receipt_roots: Vec::new(),
        incoming_root: body.incoming_root(),
        inbox_cursors: Vec::new(),
        congested: false,
        tx_count: body.transactions.len() as u32,
        burnt_fees: 0,
    };
    ShardBlock { header, body }
}

pub fn receipt(destination: ShardId, sequence: u64, origin: Hash) -> Receipt {
    Receipt {
        source: SHARD,
        destination,
        sequence,
        origin,
        action: ReceiptAction::Transfer {
            to: Address([0xee; 20]),
            amount: 10,
        },
    }
}

/// Alternating outcomes, so that both kinds are stored.
pub fn outcomes(n: usize) -> Vec<TxOutcome> {
    (0..n)
        .map(|i| {
            if i % 2 == 0 {
                TxOutcome::Success
            } else {
                TxOutcome::Failure(TxFailure::BadNonce {
                    expected: 1,
                    got: 2,
                })
            }
        })
        .collect()
}

/// Commits a genesis block that creates accounts 1, 2 and 3; returns its header.
pub fn commit_genesis(store: &ShardStore) -> ShardBlockHeader {
    let genesis = block(None, Vec::new());
    let state = [
        (key(1), Some(account(1_000, 0))),
        (key(2), Some(account(2_000, 0))),
        (key(3), Some(account(3_000, 0))),
    ];
    store
        .commit_block(&BlockCommit {
            block: &genesis,
            outcomes: &[],
            state_changes: &state,
            receipts: &[],
            shard_map: None,
            forwarded: &[],
            calls: &[],
        })
        .unwrap();
    genesis.header
}

/// Everything observable that a rejected commit must leave unchanged.
#[derive(Debug, PartialEq)]
pub struct Snapshot {
    pub head: Option<ShardBlockHeader>,
    pub state: Vec<(StateKey, StateValue)>,
    pub cursors: Vec<u64>,
}

pub fn snapshot(store: &ShardStore) -> Snapshot {
    Snapshot {
        head: store.head().unwrap(),
        state: store.state_entries().map(Result::unwrap).collect(),
        cursors: (0..4)
            .map(|d| store.outbox_cursor(ShardId(d)).unwrap())
            .collect(),
    }
}
