//! The running node: its shards (each with its chain, mempool, admission
//! stage and block producer), the beacon coordinator, the receipt relay,
//! and the state they share with the RPC server.
//!
//! ```text
//!  RPC handlers ──(bounded queue per shard)──▶ admission ──▶ mempool
//!       ▲        routed by the sender's shard   (batched      │
//!       │                                        signatures)  ▼
//!   heads, newHeads,  ◀── coordinator ◀─ committed ─ producer (per shard): every
//!   waiters (final)       (beacon block:   headers    block.interval or a full pool,
//!                          records headers,           credits receipts from the
//!                          publishes receipts) ─────▶ relay, executes, commits
//! ```
//!
//! That is the lone validator ([`solo`]). With several validators the
//! producer and coordinator are replaced by the replica, which executes
//! what consensus finalized ([`network`]); what both pipelines share is in
//! [`common`].
//!
//! Threads, not tasks, run admission, production and the coordinator: they
//! are CPU-bound or block on the stores. The RPC server runs on tokio.

pub mod common;
pub mod network;
pub mod solo;

use crate::metrics::Metrics;
use atoll_config::{GenesisValidator, NodeConfig};
use atoll_primitives::{ShardBlockHeader, SignedTransaction};
use atoll_shard::mempool::{Mempool, MempoolLimits};
use atoll_shard::relay::{refill, InProcessRelay};
use atoll_shard::ShardChain;
use atoll_storage::BeaconStore;
use common::admission;
use common::finality::FinalityRule;
use common::handoff::{Admission, Committed};
use common::keeper::BeaconKeeper;
use common::pipeline::Pipeline;
use common::shared::{ConsensusInfo, Heads, Shared};
use common::waiters::Waiters;
use network::committee_view::CommitteeView;
use parking_lot::{Condvar, Mutex, RwLock};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use tokio::sync::{broadcast, mpsc, watch};

/// Transactions that may wait in the admission queue; past this, clients
/// get a "busy" error.
pub const ADMISSION_QUEUE: usize = 65_536;
/// Most clients waiting on `wait_until` at once, per shard.
pub const MAX_WAITERS: usize = 100_000;
/// `newHeads` notifications buffered for slow subscribers before they lag.
pub const HEADS_BUFFER: usize = 256;

/// What the genesis fixes for the node's services.
#[derive(Clone, Debug)]
pub struct ChainParams {
    /// The validator set.
    pub validators: Vec<GenesisValidator>,
    /// Beacon blocks per epoch.
    pub epoch_length: u64,
}

/// How a node finalizes.
pub enum Mode {
    /// Alone: it is the only validator.
    Solo,
    /// With other validators: blocks are final through consensus.
    Network {
        /// The genesis file's hash (the first consensus block's parent).
        genesis: atoll_primitives::Hash,
        /// This validator's index in the genesis's list.
        index: Option<u16>,
        /// The shard committees.
        committee: Arc<CommitteeView>,
    },
}

/// The node's shards and threads, started.
pub struct Service {
    /// Each shard's shared state, by shard number.
    pub shards: Vec<Arc<Shared>>,
    /// One message per final block of any shard, for `newHeads` subscribers.
    pub new_heads: broadcast::Sender<Arc<ShardBlockHeader>>,
    stopping: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    coordinator: Option<JoinHandle<()>>,
    /// With several validators, until the network side takes it.
    pub network: Option<network::NetworkParts>,
}

/// What every shard's [`Shared`] is built from, besides its chain.
struct ShardSetup<'a> {
    chain_id: atoll_primitives::ChainId,
    layout: atoll_primitives::ShardLayout,
    validators: &'a [GenesisValidator],
    finality: FinalityRule,
    keeper: &'a Arc<BeaconKeeper>,
    relay: &'a Arc<InProcessRelay>,
    committed: &'a std::sync::mpsc::SyncSender<Committed>,
    metrics: &'a Arc<Metrics>,
    stopping: &'a Arc<AtomicBool>,
    limits: MempoolLimits,
    config: &'a NodeConfig,
    gossip: Option<&'a mpsc::Sender<(u16, Vec<SignedTransaction>)>>,
    consensus: Option<&'a Arc<ConsensusInfo>>,
}

impl ShardSetup<'_> {
    /// The shared state of `chain`'s shard, whose admission queue is `admission`.
    fn shared(&self, chain: &ShardChain, admission: mpsc::Sender<Admission>) -> Arc<Shared> {
        let head = chain.head().clone();
        Arc::new(Shared {
            chain_id: self.chain_id,
            shard: head.shard,
            layout: self.layout,
            validators: self.validators.to_vec(),
            finality: self.finality,
            store: chain.shared_store(),
            state: chain.state(),
            mempool: Mutex::new(Mempool::new(self.limits)),
            wake: Condvar::new(),
            heads: watch::Sender::new(Heads {
                final_height: head.height,
                head: Arc::new(head),
            }),
            beacon: Arc::clone(&self.keeper.state),
            keeper: Arc::clone(self.keeper),
            head_map: RwLock::new(Arc::clone(chain.shard_map())),
            relay: Arc::clone(self.relay),
            committed: self.committed.clone(),
            admission,
            waiters: Waiters::new(MAX_WAITERS),
            displaced: Mutex::new(Vec::new()),
            metrics: Arc::clone(self.metrics),
            stopping: Arc::clone(self.stopping),
            max_block_transactions: self.config.block.max_transactions.get(),
            gas: chain.gas_rules(),
            max_incoming: self.config.receipts.max_per_block.get(),
            gossip: self.gossip.cloned(),
            consensus: self.consensus.cloned(),
            tracked: AtomicBool::new(true),
            carried_ms: AtomicU64::new(0),
        })
    }
}

impl Service {
    /// Starts admission for every shard of `chains` (in shard order), then
    /// the pipeline `mode` asks for: a producer per shard and the
    /// coordinator ([`solo::start`]), or the replica ([`network::start`]).
    /// The beacon is restored from
    /// `beacon_store` and the shards' stores ([`BeaconKeeper::restore`]),
    /// and the relay is refilled with the receipts that sources emitted and
    /// destinations have not applied yet.
    pub fn start(
        chains: Vec<ShardChain>,
        beacon_store: BeaconStore,
        chain: &ChainParams,
        config: &NodeConfig,
        metrics: Arc<Metrics>,
        mode: Mode,
    ) -> anyhow::Result<Service> {
        let first = chains.first().ok_or_else(|| anyhow::anyhow!("no shards"))?;
        let (chain_id, layout) = (first.head().chain_id, first.layout());
        let solo = matches!(mode, Mode::Solo);
        let keeper = Arc::new(BeaconKeeper::restore(
            &chains,
            beacon_store,
            chain_id,
            layout,
            chain.epoch_length,
            solo,
        )?);
        let validators = chain.validators.clone();
        // With several validators every one must hold the same receipts:
        // the relay has no bound (backpressure comes from the leaders,
        // which hold back transfers to congested shards).
        let backlog = if solo {
            config.receipts.backlog.get()
        } else {
            usize::MAX / 4
        };
        let relay = Arc::new(InProcessRelay::new(backlog));
        if solo {
            refill(&relay, &chains)?;
        }
        // With several validators the replica gathers each shard's
        // receipts before each block (from its stores or from peers).
        let (gossip_tx, gossip_rx) = mpsc::channel(network::GOSSIP_QUEUE);
        let consensus = match &mode {
            Mode::Solo => None,
            Mode::Network {
                index, committee, ..
            } => Some(Arc::new(ConsensusInfo {
                status: Arc::default(),
                committees: Arc::clone(&committee.committees),
                validators: validators.iter().map(|v| v.public_key).collect(),
                index: *index,
                peer_id: std::sync::OnceLock::new(),
                network: std::sync::OnceLock::new(),
            })),
        };
        let stopping = Arc::new(AtomicBool::new(false));
        let (new_heads, _) = broadcast::channel(HEADS_BUFFER);
        let (committed_tx, committed_rx) = std::sync::mpsc::sync_channel(1024);
        let limits = MempoolLimits {
            max_transactions: config.mempool.max_transactions,
            max_per_sender: config.mempool.max_per_sender,
            max_nonce_gap: config.mempool.max_nonce_gap,
            max_bytes: config.mempool.max_bytes,
            max_queued: config.mempool.max_queued(),
        };
        let setup = ShardSetup {
            chain_id,
            layout,
            validators: &validators,
            finality: if solo {
                FinalityRule::Beacon
            } else {
                FinalityRule::Consensus
            },
            keeper: &keeper,
            relay: &relay,
            committed: &committed_tx,
            metrics: &metrics,
            stopping: &stopping,
            limits,
            config,
            gossip: (!solo).then_some(&gossip_tx),
            consensus: consensus.as_ref(),
        };
        let mut shards = Vec::new();
        let mut threads = Vec::new();
        for chain in &chains {
            let (admission_tx, admission_rx) = mpsc::channel(ADMISSION_QUEUE);
            let shared = setup.shared(chain, admission_tx);
            let pool = chain.executor().pool_handle();
            threads.push({
                let shared = Arc::clone(&shared);
                std::thread::Builder::new()
                    .name(format!("admission-{}", shared.shard))
                    .spawn(move || admission::run(&shared, admission_rx, &pool))?
            });
            shards.push(shared);
        }
        let pipeline = Pipeline {
            shards: shards.clone(),
            chains,
            keeper,
            relay,
            new_heads: new_heads.clone(),
            stopping: Arc::clone(&stopping),
        };
        let (coordinator, network) = match (mode, consensus) {
            (
                Mode::Network {
                    genesis, committee, ..
                },
                Some(consensus),
            ) => {
                drop(committed_rx);
                let (replica, parts) =
                    network::start(pipeline, genesis, committee, consensus, gossip_rx, config)?;
                threads.push(replica);
                (None, Some(parts))
            }
            _ => {
                drop(gossip_rx);
                let solo = solo::start(pipeline, committed_rx, &config.block)?;
                threads.extend(solo.producers);
                (Some(solo.coordinator), None)
            }
        };
        Ok(Service {
            shards,
            new_heads,
            stopping,
            threads,
            coordinator,
            network,
        })
    }

    /// The flag that stops the node (set by a thread that fails).
    pub fn stopping(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.stopping)
    }

    /// Whether the node is stopping (a signal, or a thread failed).
    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    /// Stops taking transactions, lets the blocks in progress finish (each
    /// commit is atomic, so a block is fully in the store or not at all),
    /// and joins the threads.
    pub fn stop(mut self) {
        self.stopping.store(true, Ordering::Release);
        for shared in &self.shards {
            {
                let _pool = shared.mempool.lock();
                shared.wake.notify_all();
            }
            // Clients waiting on `wait_until` get "shutting down" now.
            shared.waiters.close_all();
            // Wake the admission thread, which may be waiting for work.
            let _ = shared.admission.try_send(Admission::Stop);
        }
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
        if let Some(coordinator) = self.coordinator.take() {
            let _ = coordinator.join();
        }
    }
}
