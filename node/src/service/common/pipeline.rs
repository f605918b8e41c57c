//! What either pipeline, the lone validator's or the network's, is
//! started from.

use crate::service::common::keeper::BeaconKeeper;
use crate::service::common::shared::Shared;
use atoll_primitives::ShardBlockHeader;
use atoll_shard::relay::InProcessRelay;
use atoll_shard::ShardChain;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use tokio::sync::broadcast;

/// What either pipeline starts from: every shard with its admission
/// running, their chains (by shard number) and what the shards share.
pub struct Pipeline {
    /// Each shard's shared state, by shard number.
    pub shards: Vec<Arc<Shared>>,
    /// Each shard's chain, by shard number.
    pub chains: Vec<ShardChain>,
    /// The beacon and its store.
    pub keeper: Arc<BeaconKeeper>,
    /// Receipts on their way between shards.
    pub relay: Arc<InProcessRelay>,
    /// Final heads, to `newHeads` subscribers.
    pub new_heads: broadcast::Sender<Arc<ShardBlockHeader>>,
    /// Set when the node stops.
    pub stopping: Arc<AtomicBool>,
}
