//! A validator in a network of validators: the libp2p network, the
//! consensus engine and what it needs from the node.
//!
//! ```text
//!  p2p events ─▶ router ─(consensus gossip, Sync/Fetch)─▶ engine ─▶ host
//!                  │                                        (vote log,
//!                  ├─ transaction gossip ─▶ admission        payloads,
//!                  ├─ header votes ─▶ committee              final blocks)
//!                  └─ receipts / push / snapshot requests        │
//!                        ─▶ their servers                          ▼
//!      replica ◀───────────────────────── final consensus blocks ─┘
//!   (executes each shard block, signs headers, gathers receipts,
//!    syncs state when far behind)
//! ```
//!
//! Transactions a client sends to this validator are gossiped on their
//! shard's topic (in batches, [`gossip_out`]). Everything peers send each
//! other besides consensus messages is defined in [`wire`].

pub mod builder;
pub mod committee_view;
pub mod engine;
pub mod host;
pub mod push;
pub mod pushed;
pub mod receipts;
pub mod replica;
pub mod revote;
pub mod router;
pub mod snapshot_serve;
pub mod state_sync;
pub mod sync_serve;
pub mod wire;

use crate::service::common::keeper::BeaconKeeper;
use crate::service::common::pipeline::Pipeline;
use crate::service::common::shared::{ConsensusInfo, ConsensusStatus};
use atoll_config::NodeConfig;
use atoll_consensus::simplex::Simplex;
use atoll_p2p::{Handle, PeerId, Topic};
use atoll_primitives::{codec, Hash, KeyPair, SignedTransaction};
use committee_view::CommitteeView;
use engine::Engine;
use host::{NodeHost, StoredBlocks};
use router::PeerRouter;
use std::sync::Arc;
use std::thread::JoinHandle;
use tokio::sync::{mpsc, watch};
use wire::MAX_GOSSIP_TXS;

/// Transaction batches waiting to be gossiped; past this a batch is only
/// in this validator's pool (it proposes it when it leads).
pub const GOSSIP_QUEUE: usize = 1024;

/// Final consensus blocks waiting for the replica; past this the engine
/// waits (a validator catching up must not hold unbounded blocks).
pub const REPLICA_QUEUE: usize = 64;

/// With several validators: what the network side needs from the service.
pub struct NetworkParts {
    /// Final blocks, to the replica.
    pub blocks: std::sync::mpsc::SyncSender<atoll_consensus::simplex::FinalBlock>,
    /// What the replica executed.
    pub progress: watch::Receiver<replica::Executed>,
    /// The beacon and its store.
    pub keeper: Arc<BeaconKeeper>,
    /// Admitted client transactions to gossip.
    pub gossip: mpsc::Receiver<(u16, Vec<SignedTransaction>)>,
    /// What consensus shows.
    pub consensus: Arc<ConsensusInfo>,
    /// The shard committees and what the validator keeps about them.
    pub committee: Arc<CommitteeView>,
}

/// Starts the replica on `pipeline`'s shards, from the last consensus
/// block it executed (`genesis`'s hash before the first), and returns its
/// thread and what the network side needs: the queue of final blocks to
/// it, its progress, and the admitted transactions to gossip.
pub fn start(
    pipeline: Pipeline,
    genesis: Hash,
    committee: Arc<CommitteeView>,
    consensus: Arc<ConsensusInfo>,
    gossip: mpsc::Receiver<(u16, Vec<SignedTransaction>)>,
    config: &NodeConfig,
) -> anyhow::Result<(JoinHandle<()>, NetworkParts)> {
    let Pipeline {
        shards,
        chains,
        keeper,
        relay,
        new_heads,
        stopping,
    } = pipeline;
    let executed = keeper.store.executed()?.unwrap_or((0, genesis));
    let (progress_tx, progress_rx) = watch::channel(replica::Executed {
        height: executed.0,
        hash: executed.1,
        at: std::time::Instant::now(),
        proposed_ms: 0,
    });
    let (blocks_tx, blocks_rx) = std::sync::mpsc::sync_channel(REPLICA_QUEUE);
    let sync = state_sync::StateSync::new(config.network.state_sync_gap, shards.len());
    let replica = replica::Replica {
        shards,
        chains,
        keeper: Arc::clone(&keeper),
        relay,
        new_heads,
        progress: progress_tx,
        limit: config.network.max_message_bytes.get(),
        committee: Arc::clone(&committee),
        runtime: tokio::runtime::Handle::current(),
        backlog: config.receipts.backlog.get(),
        stopping,
        revoter: Default::default(),
        sync,
    };
    let thread = std::thread::Builder::new()
        .name("replica".into())
        .spawn(move || replica.run(blocks_rx))?;
    let parts = NetworkParts {
        blocks: blocks_tx,
        progress: progress_rx,
        keeper,
        gossip,
        consensus,
        committee,
    };
    Ok((thread, parts))
}

/// Publishes the transactions clients sent to this validator, in batches
/// per shard, until the queue closes.
pub async fn gossip_out(network: Handle, mut queue: mpsc::Receiver<(u16, Vec<SignedTransaction>)>) {
    while let Some((shard, txs)) = queue.recv().await {
        let mut by_shard: std::collections::BTreeMap<u16, Vec<SignedTransaction>> =
            std::collections::BTreeMap::new();
        by_shard.entry(shard).or_default().extend(txs);
        while let Ok((shard, txs)) = queue.try_recv() {
            by_shard.entry(shard).or_default().extend(txs);
        }
        for (shard, txs) in by_shard {
            for chunk in txs.chunks(MAX_GOSSIP_TXS) {
                // No peer yet: the transactions wait in this pool.
                let _ = network
                    .publish(Topic::Transactions(shard), codec::encode(&chunk.to_vec()))
                    .await;
            }
        }
    }
}

/// Starts the router and the engine on `network` (already started): the
/// router takes the network's `events` and hands consensus to the engine,
/// which drives `host` (with the router's metrics). When the engine
/// stops, `stopping` is set.
pub fn spawn(
    machine: Simplex,
    network: Handle,
    events: atoll_p2p::Events,
    host: NodeHost,
    router: PeerRouter,
    status: Arc<ConsensusStatus>,
    stopping: Arc<std::sync::atomic::AtomicBool>,
) -> tokio::task::JoinHandle<()> {
    let (limit, metrics) = (router.limit, Arc::clone(&router.metrics));
    let topics: Vec<Topic> = (0..router.shards.len() as u16)
        .map(Topic::Transactions)
        .collect();
    let archive = Arc::new(StoredBlocks {
        keeper: Arc::clone(&host.keeper),
        limit,
    });
    let (consensus, consensus_events) = mpsc::channel(router::CONSENSUS_QUEUE);
    tokio::spawn(router::run(
        events,
        router,
        network.clone(),
        limit,
        consensus,
    ));
    let (engine, woken) = Engine::new(machine, network, host, archive, limit, status, metrics);
    tokio::spawn(async move {
        if let Err(err) = engine.run(consensus_events, woken, topics).await {
            tracing::error!(
                target: "consensus",
                err = format!("{err:#}"),
                "consensus stopped; the node stops"
            );
        }
        stopping.store(true, std::sync::atomic::Ordering::Release);
    })
}

/// The libp2p identity secret of the validator with `key`.
pub fn p2p_secret(key: &KeyPair) -> [u8; 32] {
    Hash::domain(
        &atoll_primitives::hash::domain::P2P_IDENTITY,
        &[&key.seed()],
    )
    .0
}

/// The libp2p peer id of the validator with `key`.
pub fn peer_id(key: &KeyPair) -> PeerId {
    atoll_p2p::peer_id_of(p2p_secret(key))
}
