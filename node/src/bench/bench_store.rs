//! The one-shard store every benchmark runs over.

use anyhow::Context;
use atoll_primitives::{ChainId, ShardId, ShardLayout, StateKey, StateValue};
use atoll_shard::ShardChain;
use atoll_storage::StoreIdentity;
use std::num::NonZeroUsize;
use std::path::Path;

/// Opens (or creates with `genesis`) the one-shard store a benchmark reads
/// in `dir`.
pub fn bench_shard(
    dir: &Path,
    chain_id: ChainId,
    genesis: &[(StateKey, StateValue)],
    threads: NonZeroUsize,
) -> anyhow::Result<ShardChain> {
    let identity = StoreIdentity {
        chain_id,
        shard: ShardId(0),
    };
    ShardChain::open(dir, identity, ShardLayout::single(), genesis, threads)
        .with_context(|| format!("opening the bench shard store in {}", dir.display()))
}
