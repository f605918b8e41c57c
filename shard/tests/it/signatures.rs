//! The signature stage finds exactly the bad signatures.

use atoll_primitives::{ChainId, PublicKey, Signature, SignedTransaction};
use atoll_shard::execution::PreparedTx;
use atoll_shard::signatures::{find_bad_signatures, find_bad_signatures_one_by_one, BATCH_SIZE};
use atoll_shard::workload::{dev_keys, transfer_block};
use proptest::prelude::*;

fn pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap()
}

fn block(n: usize) -> Vec<PreparedTx> {
    let keys = dev_keys(3, 16);
    let mut nonces = vec![0; keys.len()];
    transfer_block(ChainId(1), &keys, &mut nonces, n, 11)
}

/// Corrupts transaction `i` in one of several ways.
fn corrupt(txs: &mut [PreparedTx], i: usize, how: u8) {
    let SignedTransaction::Native(signed) = &mut txs[i].signed else {
        unreachable!("native transfers")
    };
    match how % 4 {
        0 => signed.signature.0[5] = signed.signature.0[5].wrapping_add(1),
        1 => signed.signature = Signature([0; 64]),
        // Another valid key, so the signature does not match.
        2 => signed.tx.sender = dev_keys(99, 1)[0].public(),
        // Not a curve point.
        _ => {
            signed.tx.sender = PublicKey({
                let mut b = [0u8; 32];
                b[0] = 2;
                b
            })
        }
    }
    // Keep the precomputed hash consistent with the (possibly changed) body.
    let changed = signed.clone();
    txs[i] = PreparedTx::new(changed);
}

#[test]
fn a_valid_block_has_no_bad_signatures() {
    let txs = block(3 * BATCH_SIZE + 17);
    assert!(find_bad_signatures(&txs, &pool(2)).is_empty());
    assert!(find_bad_signatures_one_by_one(&txs).is_empty());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn batches_find_exactly_the_bad_signatures(
        n in 1usize..(2 * BATCH_SIZE + 40),
        bad in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..12),
        threads in 1usize..4,
    ) {
        let mut txs = block(n);
        let mut expected: Vec<usize> = Vec::new();
        for (index, how) in bad {
            let i = index.index(n);
            corrupt(&mut txs, i, how);
            expected.push(i);
        }
        expected.sort_unstable();
        expected.dedup();
        prop_assert_eq!(find_bad_signatures_one_by_one(&txs), expected.clone());
        prop_assert_eq!(find_bad_signatures(&txs, &pool(threads)), expected);
    }
}
