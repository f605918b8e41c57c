//! What one shard's threads and the RPC server share about that shard
//! ([`Shared`]), and what consensus shows them ([`ConsensusInfo`]).

use super::finality::FinalityRule;
use super::handoff::{Admission, Committed};
use super::keeper::BeaconKeeper;
use super::waiters::Waiters;
use crate::metrics::Metrics;
use atoll_config::GenesisValidator;
use atoll_consensus::Beacon;
use atoll_primitives::{
    ChainId, ShardBlockHeader, ShardId, ShardLayout, ShardMap, SignedTransaction,
};
use atoll_shard::mempool::Mempool;
use atoll_shard::relay::InProcessRelay;
use atoll_shard::state::CachedState;
use atoll_storage::ShardStore;
use parking_lot::{Condvar, Mutex, RwLock};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::{mpsc, watch};

/// The newest committed and final heights.
#[derive(Clone, Debug)]
pub struct Heads {
    /// The newest committed header.
    pub head: Arc<ShardBlockHeader>,
    /// The newest final height.
    pub final_height: u64,
}

/// What the RPC server, one shard's admission stage and producer, and the
/// coordinator share about that shard.
pub struct Shared {
    /// The chain id.
    pub chain_id: ChainId,
    /// The shard.
    pub shard: ShardId,
    /// The shard layout.
    pub layout: ShardLayout,
    /// The validator set.
    pub validators: Vec<GenesisValidator>,
    /// How blocks become final.
    pub finality: FinalityRule,
    /// The shard's store, for reads; the producer alone commits.
    pub store: Arc<ShardStore>,
    /// The committed accounts, cached; admission and block building read
    /// accounts here.
    pub state: Arc<CachedState>,
    /// The mempool.
    pub mempool: Mutex<Mempool>,
    /// Wakes the producer early (a full block is waiting, or shutdown).
    pub wake: Condvar,
    /// The newest heads.
    pub heads: watch::Sender<Heads>,
    /// The beacon: which shard headers are final, the epoch and shard map.
    pub beacon: Arc<RwLock<Beacon>>,
    /// The beacon with its store, for changes that must be stored.
    pub keeper: Arc<BeaconKeeper>,
    /// The shard map this shard's head executed under (the beacon's may be
    /// newer until the shard's first block of the new epoch).
    pub head_map: RwLock<Arc<ShardMap>>,
    /// The receipt relay between the shards.
    pub relay: Arc<InProcessRelay>,
    /// Committed blocks, to the coordinator.
    pub committed: std::sync::mpsc::SyncSender<Committed>,
    /// The admission queue.
    pub admission: mpsc::Sender<Admission>,
    /// Clients waiting for inclusion or finality.
    pub waiters: Waiters,
    /// Transactions the mempool displaced (replaced or evicted) since the
    /// last block. Their waiters hear `dropped` only after the next block
    /// is committed: the block being built may include one of them, taken
    /// from the pool just before it was displaced.
    pub displaced: Mutex<Vec<atoll_primitives::Hash>>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Set once shutdown began (shared by every shard).
    pub stopping: Arc<AtomicBool>,
    /// Most transactions in one block.
    pub max_block_transactions: usize,
    /// The chain's gas rules (from the genesis): block gas limit, base fee.
    pub gas: atoll_primitives::GasRules,
    /// Most receipts one block credits.
    pub max_incoming: usize,
    /// With several validators: where admitted client transactions go to
    /// be gossiped.
    pub gossip: Option<mpsc::Sender<(u16, Vec<SignedTransaction>)>>,
    /// With several validators: what consensus shows.
    pub consensus: Option<Arc<ConsensusInfo>>,
    /// Whether this node stores and executes this shard now (always with
    /// one validator; with several, when it is in the shard's committee
    /// of this epoch or, near its end, the next).
    pub tracked: AtomicBool,
    /// With several validators: the payload timestamp (Unix ms, its
    /// leader's clock) of the newest executed consensus block that carried
    /// transactions of this shard; 0 before one. Leaders pace their
    /// blocks by it (`network::builder`).
    pub carried_ms: AtomicU64,
}

/// What the RPC shows of consensus.
#[derive(Debug)]
pub struct ConsensusInfo {
    /// Heights, leader and peers, updated by the engine.
    pub status: Arc<ConsensusStatus>,
    /// The validators' public keys, by index.
    pub validators: Vec<atoll_primitives::PublicKey>,
    /// This validator's index.
    pub index: Option<u16>,
    /// Every shard's committee, per epoch.
    pub committees: Arc<atoll_consensus::Committees>,
    /// This node's libp2p peer id, once the network started.
    pub peer_id: std::sync::OnceLock<String>,
    /// The network, once started (the operator's peer block list).
    pub network: std::sync::OnceLock<atoll_p2p::Handle>,
}

impl Shared {
    /// Whether shutdown began.
    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }
}

/// What the engine shows of consensus (RPC `atoll_status`).
#[derive(Debug, Default)]
pub struct ConsensusStatus {
    /// The height being decided.
    pub height: AtomicU64,
    /// The newest final height.
    pub final_height: AtomicU64,
    /// The leader of the height being decided.
    pub leader: AtomicU64,
    /// Connected peers.
    pub peers: AtomicU64,
    /// Equivocations seen (two conflicting votes or proposals signed by
    /// one validator), since start.
    pub equivocations: AtomicU64,
}
