//! The mempool: nonce order, gaps, duplicates, replacement, limits, eviction.

use atoll_primitives::{Action, Address, ChainId, KeyPair, Transaction};
use atoll_shard::execution::PreparedTx;
use atoll_shard::mempool::{AdmitError, Mempool, MempoolLimits};
use atoll_shard::signatures::VerifiedTx;
use atoll_shard::workload::dev_keys;
use proptest::prelude::*;
use std::collections::HashMap;
use std::num::NonZeroUsize;

fn limits(max_transactions: usize, max_per_sender: usize) -> MempoolLimits {
    MempoolLimits {
        max_transactions: NonZeroUsize::new(max_transactions).unwrap(),
        max_per_sender: NonZeroUsize::new(max_per_sender).unwrap(),
        max_nonce_gap: 4,
        max_queued: NonZeroUsize::new(max_transactions).unwrap(),
        max_bytes: NonZeroUsize::new(1 << 20).unwrap(),
    }
}

fn tx(key: &KeyPair, nonce: u64, fee: u128) -> VerifiedTx {
    let body = Transaction {
        chain_id: ChainId(1),
        sender: key.public(),
        nonce,
        fee,
        action: Action::Transfer {
            to: Address([9; 20]),
            amount: 1,
        },
    };
    verified(body.sign(key))
}

fn verified(signed: atoll_primitives::NativeTransaction) -> VerifiedTx {
    VerifiedTx::verify(PreparedTx::new(signed)).expect("a valid signature")
}

fn nonces(txs: &[VerifiedTx]) -> Vec<u64> {
    txs.iter().map(|t| t.terms.nonce).collect()
}

#[test]
fn transactions_come_out_in_nonce_order_and_wait_for_gaps() {
    let keys = dev_keys(1, 1);
    let mut pool = Mempool::new(limits(100, 10));
    for nonce in [2, 0, 3] {
        pool.admit(tx(&keys[0], nonce, 1), 0).unwrap();
    }
    assert_eq!(nonces(&pool.ready(10, usize::MAX, |_| 0)), vec![0]);
    pool.admit(tx(&keys[0], 1, 1), 0).unwrap();
    assert_eq!(nonces(&pool.ready(10, usize::MAX, |_| 0)), vec![0, 1, 2, 3]);
    assert_eq!(nonces(&pool.ready(2, usize::MAX, |_| 0)), vec![0, 1]);
    // After a block took nonces 0 and 1.
    pool.prune(keys[0].address(), 2);
    assert_eq!(pool.len(), 2);
    assert_eq!(nonces(&pool.ready(10, usize::MAX, |_| 2)), vec![2, 3]);
}

#[test]
fn bad_admissions_are_refused_and_change_nothing() {
    let keys = dev_keys(2, 1);
    let mut pool = Mempool::new(limits(100, 3));
    let first = tx(&keys[0], 5, 3);
    pool.admit(first.clone(), 5).unwrap();
    let (len, bytes) = (pool.len(), pool.bytes());
    assert_eq!(
        pool.admit(first.clone(), 5),
        Err(AdmitError::Duplicate(first.hash))
    );
    assert_eq!(
        pool.admit(tx(&keys[0], 4, 1), 5),
        Err(AdmitError::NonceTooLow {
            expected: 5,
            got: 4
        })
    );
    assert_eq!(
        pool.admit(tx(&keys[0], 10, 1), 5),
        Err(AdmitError::NonceGapTooLarge {
            expected: 5,
            got: 10,
            max_gap: 4
        })
    );
    // Same sender, nonce and fee, another body: not a replacement.
    let mut other = first.signed.native().unwrap().tx.clone();
    other.action = Action::Transfer {
        to: Address([8; 20]),
        amount: 2,
    };
    let other = verified(other.sign(&keys[0]));
    assert_eq!(
        pool.admit(other, 5),
        Err(AdmitError::NonceTaken {
            nonce: 5,
            held_fee: 3
        })
    );
    pool.admit(tx(&keys[0], 6, 1), 5).unwrap();
    pool.admit(tx(&keys[0], 7, 1), 5).unwrap();
    assert_eq!(
        pool.admit(tx(&keys[0], 8, 1), 5),
        Err(AdmitError::SenderFull { limit: 3 })
    );
    assert_eq!(pool.len(), len + 2);
    assert!(pool.bytes() > bytes);
}

#[test]
fn a_higher_fee_replaces_the_same_nonce() {
    let keys = dev_keys(3, 1);
    let mut pool = Mempool::new(limits(100, 10));
    let cheap = tx(&keys[0], 0, 1);
    pool.admit(cheap.clone(), 0).unwrap();
    let dear = tx(&keys[0], 0, 2);
    assert_eq!(pool.admit(dear.clone(), 0), Ok(vec![cheap.hash]));
    assert_eq!(pool.len(), 1);
    assert!(!pool.contains(&cheap.hash) && pool.contains(&dear.hash));
}

#[test]
fn a_full_pool_evicts_the_cheapest_tail_and_never_opens_a_gap() {
    let keys = dev_keys(4, 4);
    let mut pool = Mempool::new(limits(3, 10));
    // Sender 0 holds nonces 0 and 1 at fee 1; sender 1 holds nonce 0 at fee 2.
    let a0 = tx(&keys[0], 0, 1);
    let a1 = tx(&keys[0], 1, 1);
    pool.admit(a0.clone(), 0).unwrap();
    pool.admit(a1.clone(), 0).unwrap();
    pool.admit(tx(&keys[1], 0, 2), 0).unwrap();
    // Too cheap to enter.
    assert_eq!(
        pool.admit(tx(&keys[2], 0, 1), 0),
        Err(AdmitError::PoolFull { min_fee: 1 })
    );
    // Pays more: evicts sender 0's last transaction, not the one before it.
    assert_eq!(pool.admit(tx(&keys[2], 0, 5), 0), Ok(vec![a1.hash]));
    assert!(pool.contains(&a0.hash));
    assert_eq!(pool.len(), 3);
    // Next: sender 0's nonce 0 (fee 1) is now the cheapest tail.
    assert_eq!(pool.admit(tx(&keys[3], 0, 5), 0), Ok(vec![a0.hash]));
    assert_eq!(pool.len(), 3);
}

#[test]
fn the_byte_limit_is_kept() {
    let keys = dev_keys(5, 8);
    let size = tx(&keys[0], 0, 1).signed.encode().len();
    let mut pool = Mempool::new(MempoolLimits {
        max_bytes: NonZeroUsize::new(size * 3).unwrap(),
        ..limits(100, 10)
    });
    for (i, key) in keys.iter().enumerate().take(3) {
        pool.admit(tx(key, 0, i as u128 + 1), 0).unwrap();
    }
    assert!(matches!(
        pool.admit(tx(&keys[3], 0, 1), 0),
        Err(AdmitError::PoolFull { .. })
    ));
    assert_eq!(pool.admit(tx(&keys[4], 0, 9), 0).map(|v| v.len()), Ok(1));
    assert_eq!(pool.bytes(), size * 3);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Whatever arrives, the bounds hold and every sender's ready run is
    /// consecutive from its account nonce.
    #[test]
    fn bounds_hold_under_any_sequence(ops in proptest::collection::vec((0usize..6, 0u64..8, 0u128..10), 1..200)) {
        let keys = dev_keys(6, 6);
        let lim = MempoolLimits { max_queued: NonZeroUsize::new(4).unwrap(), ..limits(7, 3) };
        let mut pool = Mempool::new(lim);
        let account: HashMap<Address, u64> = keys.iter().map(|k| (k.address(), 1)).collect();
        for (sender, nonce, fee) in ops {
            let _ = pool.admit(tx(&keys[sender], nonce, fee), 1);
            prop_assert!(pool.len() <= 7);
            prop_assert!(pool.bytes() <= lim.max_bytes.get());
            prop_assert!(pool.queued() <= 4);
        }
        let ready = pool.ready(usize::MAX, usize::MAX, |a| account[a]);
        // What is not in a ready run is exactly what the pool counts as queued.
        prop_assert_eq!(pool.queued(), pool.len() - ready.len());
        let mut next: HashMap<Address, u64> = account.clone();
        for t in &ready {
            let expected = next.get_mut(&t.sender).unwrap();
            prop_assert_eq!(t.terms.nonce, *expected);
            *expected += 1;
        }
        let per_sender = ready.iter().fold(HashMap::new(), |mut m: HashMap<Address, usize>, t| { *m.entry(t.sender).or_default() += 1; m });
        prop_assert!(per_sender.values().all(|&n| n <= 3));
    }
}

#[test]
fn ready_keeps_the_byte_budget_and_committed_transactions_leave() {
    let keys = dev_keys(5, 2);
    let mut pool = Mempool::new(limits(10, 10));
    let a = tx(&keys[0], 0, 1);
    let b = tx(&keys[1], 0, 1);
    let size = a.signed.encode().len();
    pool.admit(a.clone(), 0).unwrap();
    pool.admit(b.clone(), 0).unwrap();
    assert_eq!(pool.ready(10, size, |_| 0).len(), 1);
    assert_eq!(pool.ready(10, 2 * size, |_| 0).len(), 2);
    assert_eq!(pool.ready(10, size - 1, |_| 0).len(), 0);
    assert!(pool.remove_hash(&a.hash));
    assert!(!pool.remove_hash(&a.hash));
    assert_eq!(pool.len(), 1);
    assert_eq!(pool.bytes(), size);
}

#[test]
fn a_full_sender_can_still_send_the_nonce_that_fills_its_gap() {
    let keys = dev_keys(6, 1);
    let mut pool = Mempool::new(MempoolLimits {
        max_transactions: NonZeroUsize::new(100).unwrap(),
        max_per_sender: NonZeroUsize::new(3).unwrap(),
        max_nonce_gap: 10,
        max_bytes: NonZeroUsize::new(1 << 20).unwrap(),
        max_queued: NonZeroUsize::new(100).unwrap(),
    });
    let far = tx(&keys[0], 9, 1);
    for nonce in [1, 2] {
        pool.admit(tx(&keys[0], nonce, 1), 0).unwrap();
    }
    pool.admit(far.clone(), 0).unwrap();
    // Full, and nothing is ready: nonce 0 takes the furthest one's slot.
    assert_eq!(
        pool.admit(tx(&keys[0], 10, 1), 0),
        Err(AdmitError::SenderFull { limit: 3 })
    );
    assert_eq!(pool.admit(tx(&keys[0], 0, 1), 0), Ok(vec![far.hash]));
    assert_eq!(pool.len(), 3);
    assert_eq!(nonces(&pool.ready(10, usize::MAX, |_| 0)), vec![0, 1, 2]);
}

#[test]
fn transactions_behind_gaps_never_crowd_out_ready_ones() {
    let keys = dev_keys(7, 4);
    let mut pool = Mempool::new(MempoolLimits {
        max_queued: NonZeroUsize::new(2).unwrap(),
        ..limits(10, 5)
    });
    pool.admit(tx(&keys[0], 2, 1), 0).unwrap();
    pool.admit(tx(&keys[1], 3, 1), 0).unwrap();
    assert_eq!(pool.queued(), 2);
    assert_eq!(
        pool.admit(tx(&keys[2], 1, 9), 0),
        Err(AdmitError::TooManyQueued { limit: 2 })
    );
    // Ready ones still enter, and filling a gap turns queued into ready.
    pool.admit(tx(&keys[2], 0, 1), 0).unwrap();
    pool.admit(tx(&keys[0], 0, 1), 0).unwrap();
    pool.admit(tx(&keys[0], 1, 1), 0).unwrap();
    assert_eq!(pool.queued(), 1);
    pool.admit(tx(&keys[3], 4, 1), 0).unwrap();
    assert_eq!(pool.queued(), 2);
    // A block moves keys[1]'s account to nonce 3: its transaction is ready.
    assert!(pool.prune(keys[1].address(), 3).is_empty());
    assert_eq!(pool.queued(), 1);
}

#[test]
fn a_cleared_pool_hands_back_every_transaction_in_each_senders_nonce_order() {
    let keys = dev_keys(2, 3);
    let mut pool = Mempool::new(limits(100, 10));
    for (key, nonce) in [(0, 2), (1, 0), (0, 0), (2, 1), (0, 1), (1, 1)] {
        pool.admit(tx(&keys[key], nonce, 1), 0).unwrap();
    }
    let handed = pool.clear();
    assert_eq!(pool.len(), 0);
    assert_eq!(handed.len(), 6);
    let mut by_sender: HashMap<Address, Vec<u64>> = HashMap::new();
    for tx in &handed {
        by_sender.entry(tx.sender).or_default().push(tx.terms.nonce);
    }
    assert_eq!(by_sender[&keys[0].address()], vec![0, 1, 2]);
    assert_eq!(by_sender[&keys[1].address()], vec![0, 1]);
    assert_eq!(by_sender[&keys[2].address()], vec![1]);
    // Each sender's run is together, senders by address.
    let senders: Vec<Address> = handed.iter().map(|t| t.sender).collect();
    let mut runs = senders.clone();
    runs.dedup();
    let mut sorted = runs.clone();
    sorted.sort();
    assert_eq!(runs, sorted);
}
