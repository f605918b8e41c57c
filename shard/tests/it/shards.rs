//! Helpers shared by the multi-shard tests: keys on a given shard, and a
//! shard chain whose genesis funds some of them.

use atoll_primitives::{ChainId, KeyPair, ShardId, ShardLayout};
use atoll_shard::workload::{dev_keys, genesis_accounts};
use atoll_shard::ShardChain;
use atoll_storage::StoreIdentity;
use std::num::NonZeroUsize;
use std::path::Path;

/// The first `count` of 400 dev keys (from `seed`) on `shard` of `layout`.
pub fn keys_on(seed: u64, layout: ShardLayout, shard: u16, count: usize) -> Vec<KeyPair> {
    dev_keys(seed, 400)
        .into_iter()
        .filter(|k| layout.shard_of(&k.address()) == ShardId(shard))
        .take(count)
        .collect()
}

/// Shard `shard` of `layout` on chain `chain`, stored in `dir`, whose
/// genesis gives each of `funded` `balance`; two executor threads.
pub fn open_shard(
    dir: &Path,
    chain: ChainId,
    layout: ShardLayout,
    shard: u16,
    funded: &[KeyPair],
    balance: u128,
) -> ShardChain {
    let identity = StoreIdentity {
        chain_id: chain,
        shard: ShardId(shard),
    };
    let genesis = genesis_accounts(funded, balance);
    ShardChain::open(
        dir,
        identity,
        layout,
        &genesis,
        NonZeroUsize::new(2).unwrap(),
    )
    .unwrap()
}
