//! The running node: one shard's chain, its mempool, the admission stage,
//! the block producer, and the state they share with the RPC server.
//!
//! ```text
//!  RPC handlers ──(bounded queue)──▶ admission thread ──▶ mempool
//!       ▲                          (batched signatures,        │
//!       │                           nonce/balance checks)      ▼
//!   heads / blocks ◀──────────────── producer thread ◀── every block.interval
//!   (watch, broadcast, waiters)      (execute, commit, finality)  or a full pool
//! ```
//!
//! Threads, not tasks, run admission and production: both are CPU-bound and
//! run on the shard's rayon pool. The RPC server runs on tokio.

pub mod admission;
pub mod finality;
pub mod producer;
pub mod waiters;

use crate::metrics::Metrics;
use crate::rpc::types::HeadInfo;
use admission::Admission;
use atoll_config::{GenesisValidator, NodeConfig};
use atoll_primitives::{ChainId, ShardBlockHeader, ShardId, ShardLayout};
use atoll_shard::mempool::{Mempool, MempoolLimits};
use atoll_shard::state::CachedState;
use atoll_shard::ShardChain;
use atoll_storage::ShardStore;
use finality::FinalityRule;
use parking_lot::{Condvar, Mutex};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use tokio::sync::{broadcast, mpsc, watch};
use waiters::Waiters;

/// Transactions that may wait in the admission queue; past this, clients
/// get a "busy" error.
pub const ADMISSION_QUEUE: usize = 65_536;
/// Most clients waiting on `wait_until` at once.
pub const MAX_WAITERS: usize = 100_000;
/// `newHeads` notifications buffered for slow subscribers before they lag.
pub const HEADS_BUFFER: usize = 256;

/// The newest committed and final heights.
#[derive(Clone, Debug)]
pub struct Heads {
    /// The newest committed header.
    pub head: Arc<ShardBlockHeader>,
    /// The newest final height.
    pub final_height: u64,
}

/// What the RPC server, the admission stage and the producer share.
pub struct Shared {
    /// The chain id.
    pub chain_id: ChainId,
    /// The shard this node runs.
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
    /// One message per committed block, for `newHeads` subscribers.
    pub new_heads: broadcast::Sender<Arc<HeadInfo>>,
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
    /// Set once shutdown began.
    pub stopping: AtomicBool,
    /// Most transactions in one block.
    pub max_block_transactions: usize,
}

impl Shared {
    /// Whether shutdown began.
    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }
}

/// The node's threads, started.
pub struct Service {
    /// The shared state.
    pub shared: Arc<Shared>,
    producer: Option<JoinHandle<()>>,
    admission: Option<JoinHandle<()>>,
}

impl Service {
    /// Starts admission and production over `chain`.
    pub fn start(
        chain: ShardChain,
        config: &NodeConfig,
        validators: Vec<GenesisValidator>,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<Service> {
        let head = chain.head().clone();
        let finality = FinalityRule::SingleValidator;
        let limits = MempoolLimits {
            max_transactions: config.mempool.max_transactions,
            max_per_sender: config.mempool.max_per_sender,
            max_nonce_gap: config.mempool.max_nonce_gap,
            max_bytes: config.mempool.max_bytes,
            max_queued: config.mempool.max_queued(),
        };
        let (admission_tx, admission_rx) = mpsc::channel(ADMISSION_QUEUE);
        let (new_heads, _) = broadcast::channel(HEADS_BUFFER);
        let final_height = finality.final_height(head.height);
        metrics.block_height.set(head.height as i64);
        metrics.final_height.set(final_height as i64);
        let shared = Arc::new(Shared {
            chain_id: head.chain_id,
            shard: head.shard,
            layout: chain.layout(),
            validators,
            finality,
            store: chain.shared_store(),
            state: chain.state(),
            mempool: Mutex::new(Mempool::new(limits)),
            wake: Condvar::new(),
            heads: watch::Sender::new(Heads {
                head: Arc::new(head),
                final_height,
            }),
            new_heads,
            admission: admission_tx,
            waiters: Waiters::new(MAX_WAITERS),
            displaced: Mutex::new(Vec::new()),
            metrics,
            stopping: AtomicBool::new(false),
            max_block_transactions: config.block.max_transactions.get(),
        });
        let pool = chain.executor().pool_handle();
        let admission = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("admission".into())
                .spawn(move || admission::run(&shared, admission_rx, &pool))?
        };
        let producer = {
            let shared = Arc::clone(&shared);
            let block = config.block.clone();
            std::thread::Builder::new()
                .name("producer".into())
                .spawn(move || producer::run(&shared, chain, &block))?
        };
        Ok(Service {
            shared,
            producer: Some(producer),
            admission: Some(admission),
        })
    }

    /// Stops taking transactions, lets the block in progress finish (its
    /// commit is atomic, so it is either fully in the store or not at all),
    /// and joins the threads.
    pub fn stop(mut self) {
        self.shared.stopping.store(true, Ordering::Release);
        {
            let _pool = self.shared.mempool.lock();
            self.shared.wake.notify_all();
        }
        // Clients waiting on `wait_until` get "shutting down" now.
        self.shared.waiters.close_all();
        // Wake the admission thread, which may be waiting for work.
        let _ = self.shared.admission.try_send(Admission::Stop);
        if let Some(producer) = self.producer.take() {
            let _ = producer.join();
        }
        if let Some(admission) = self.admission.take() {
            let _ = admission.join();
        }
    }
}
