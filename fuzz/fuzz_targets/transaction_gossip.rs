//! Transactions gossiped on a shard's topic (`service::network`): decoded
//! as the node does (its limit is the message's own length, the network
//! bounds it), re-encoded to the same bytes, then, for a batch the node
//! would take (1 to `MAX_GOSSIP_TXS`), prepared and their signatures
//! checked as the admission stage does (on a pool, ed25519 in batches):
//! each verdict must be that of checking the transaction alone.
#![no_main]

use atoll_node::service::network::wire::MAX_GOSSIP_TXS;
use atoll_primitives::{codec, SignedTransaction};
use atoll_shard::signatures::{prepare_all, verify_all};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn pool() -> &'static rayon::ThreadPool {
    static POOL: OnceLock<rayon::ThreadPool> = OnceLock::new();
    POOL.get_or_init(|| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .expect("a one-thread pool")
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(txs) = codec::decode::<Vec<SignedTransaction>>("transaction gossip", data, data.len())
    else {
        return;
    };
    assert_eq!(
        codec::encode(&txs),
        data,
        "a non-canonical encoding decoded"
    );
    if txs.is_empty() || txs.len() > MAX_GOSSIP_TXS {
        return;
    }
    let alone: Vec<bool> = txs.iter().map(|tx| tx.verify().is_ok()).collect();
    // As admission does: prepared on the pool (an Ethereum transaction's
    // sender recovered, or refused), then the ed25519 batches.
    let prepared = prepare_all(txs, pool());
    let mut batched = verify_all(
        prepared.iter().filter_map(|tx| tx.clone().ok()).collect(),
        pool(),
    )
    .into_iter();
    let batched: Vec<bool> = prepared
        .iter()
        .map(|tx| tx.is_ok() && batched.next().is_some_and(|v| v.is_some()))
        .collect();
    assert_eq!(
        batched, alone,
        "batched and single signature checks disagree"
    );
});
