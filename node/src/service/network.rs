//! With several validators: the libp2p network, the consensus engine and
//! the node's side of it ([`NodeHost`]).
//!
//! - Votes and proposals are appended to the vote log (a synced file beside
//!   the key, outside the data directory) before they leave
//!   ([`NodeHost::persist`]); a restarted validator rebuilds its machine
//!   from them and never signs anything that conflicts, even when its data
//!   directory was restored from an older copy.
//! - Final consensus blocks are stored with their certificates, then
//!   handed to the [`super::replica::Replica`], which executes them; the
//!   stored blocks also serve validators that catch up.
//! - Transactions a client sends to this validator are gossiped on their
//!   shard's topic (in batches); transactions from peers are checked by the
//!   shard's admission stage (signatures in batches) before they are
//!   forwarded, and a batch with a bad signature scores its sender down.

use super::admission::Admission;
use super::beacon::BeaconKeeper;
use super::bft::{ConsensusStatus, Engine, Host, PayloadTask};
use super::builder::Builder;
use super::committee::{CommitteeView, VoteFault};
use super::push::PushedReceipts;
use super::receipts::ReceiptsRequest;
use super::snapshot::{Served, SnapshotPart, SnapshotRequest};
use super::sync_serve::Archive;
use crate::metrics::Metrics;
use anyhow::Context;
use atoll_consensus::simplex::{
    machine::KEEP_BEHIND, Config, FinalBlock, Record, Simplex, ValidatorSet,
};
use atoll_p2p::{Handle, MessageId, PeerId, Topic, Verdict};
use atoll_primitives::{codec, ChainId, Hash, KeyPair, SignedTransaction};
use atoll_shard::execution::PreparedTx;
use atoll_storage::vote_log::MAX_RECORD;
use atoll_storage::{BeaconStore, VoteLog};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Most transactions in one gossip message.
pub const MAX_GOSSIP_TXS: usize = 2048;
/// Transaction batches waiting to be gossiped; past this a batch is only
/// in this validator's pool (it proposes it when it leads).
pub const GOSSIP_QUEUE: usize = 1024;

/// Where a shard's admission stage and the network meet.
pub struct ShardLink {
    /// The shard's admission queue.
    pub admission: mpsc::Sender<Admission>,
    /// The shard (whether this validator tracks it).
    pub shared: Arc<super::Shared>,
}

impl ShardLink {
    fn tracked(&self) -> bool {
        self.shared
            .tracked
            .load(std::sync::atomic::Ordering::Acquire)
    }
}

/// The node's side of the consensus engine.
pub struct NodeHost {
    /// The beacon and its store (vote records, final blocks).
    pub keeper: Arc<BeaconKeeper>,
    /// Final blocks, to the replica.
    pub blocks: std::sync::mpsc::SyncSender<FinalBlock>,
    /// Builds this validator's payloads.
    pub builder: Arc<Builder>,
    /// Each shard's admission, by shard number.
    pub shards: Vec<ShardLink>,
    /// The network, to report verdicts on transaction gossip.
    pub network: Handle,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Largest message.
    pub limit: usize,
    /// Every vote and proposal this validator signed.
    pub votes: VoteLog,
    /// Vote records below this height were pruned.
    pub pruned_below: u64,
    /// The committees (header votes are checked against them).
    pub committee: Arc<CommitteeView>,
    /// Every shard's store, to answer receipt and snapshot requests.
    pub stores: Vec<Arc<atoll_storage::ShardStore>>,
    /// The state snapshots served to syncing validators.
    pub served: Arc<Served>,
    /// Receipt and snapshot requests being answered (each reads the store
    /// on a blocking thread): at most [`MAX_SERVING`] at once.
    pub serving: Arc<tokio::sync::Semaphore>,
}

/// Most receipt and snapshot requests answered at once; past it a request
/// is answered at once with "not held" (the asker tries another peer or
/// comes back), so peers cannot pile up blocking reads of the store.
pub const MAX_SERVING: usize = 16;

/// The height of a vote record.
fn record_height(record: &Record) -> u64 {
    match record {
        Record::Voted { height, .. }
        | Record::Finalized { height }
        | Record::Proposed { height, .. } => *height,
    }
}

/// Opens the vote log at `path` and returns it with its records. Records
/// an older atoll kept in the beacon store are moved into the log first.
pub fn open_votes(
    path: &std::path::Path,
    store: &BeaconStore,
) -> anyhow::Result<(VoteLog, Vec<Vec<u8>>)> {
    let (mut log, records) = VoteLog::open(path)?;
    let mut records: Vec<Vec<u8>> = records.into_iter().map(|(_, r)| r).collect();
    let legacy = store.vote_records(0)?;
    for bytes in &legacy {
        let record = codec::decode::<Record>("vote record", bytes, MAX_RECORD)
            .context("the beacon store's vote records are damaged")?;
        log.append(record_height(&record), bytes)?;
    }
    if !legacy.is_empty() {
        store.prune_vote_records(u64::MAX)?;
        tracing::info!(
            records = legacy.len(),
            "vote records moved from the beacon store to the vote log"
        );
        records.extend(legacy);
    }
    Ok((log, records))
}

/// The final blocks in the beacon store, for validators that catch up.
pub struct StoredBlocks {
    /// The beacon and its store.
    pub keeper: Arc<BeaconKeeper>,
    /// Largest message.
    pub limit: usize,
}

impl Archive for StoredBlocks {
    fn stored(&self, from: u64, max: usize, max_bytes: usize) -> Vec<FinalBlock> {
        let Ok(found) = self.keeper.store.final_blocks(from, max) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let mut bytes = 0;
        for (_, encoded) in found {
            bytes += encoded.len();
            if bytes > max_bytes && !out.is_empty() {
                break;
            }
            match codec::decode::<FinalBlock>("stored final block", &encoded, self.limit) {
                Ok(block) => out.push(block),
                Err(_) => break,
            }
        }
        out
    }
}

impl Host for NodeHost {
    fn persist(&mut self, record: Record) -> anyhow::Result<()> {
        self.votes
            .append(record_height(&record), &codec::encode(&record))
            .context("cannot store a vote record; this validator stops signing")
    }

    fn payload(&mut self, _height: u64, parent: Hash) -> PayloadTask {
        Box::pin(Arc::clone(&self.builder).build(parent))
    }

    fn finalized(&mut self, blocks: Vec<FinalBlock>) -> anyhow::Result<()> {
        let Some(last) = blocks.last() else {
            return Ok(());
        };
        let newest = (last.proposal.block.height, last.proposal.block.hash());
        let encoded: Vec<(u64, Vec<u8>)> = blocks
            .iter()
            .map(|b| (b.proposal.block.height, codec::encode(b)))
            .collect();
        self.keeper
            .store
            .put_final_blocks(&encoded, newest)
            .context("cannot store final blocks")?;
        let below = newest.0.saturating_sub(KEEP_BEHIND);
        if below >= self.pruned_below + KEEP_BEHIND {
            self.votes
                .prune(below)
                .context("cannot prune the vote log")?;
            self.pruned_below = below;
        }
        for block in blocks {
            // Waits while the replica is far behind (a validator catching
            // up): consensus must not outrun execution without bound.
            let sent = tokio::task::block_in_place(|| self.blocks.send(block).is_ok());
            if !sent {
                anyhow::bail!("the replica stopped");
            }
        }
        Ok(())
    }

    fn header_vote(&mut self, source: PeerId, id: MessageId, data: Vec<u8>) {
        let (network, metrics) = (self.network.clone(), Arc::clone(&self.metrics));
        let (view, keeper) = (Arc::clone(&self.committee), Arc::clone(&self.keeper));
        tokio::spawn(async move {
            // Two signature checks: off the engine's task.
            let verdict = tokio::task::spawn_blocking(move || {
                let recorded = |shard| {
                    keeper
                        .state
                        .read()
                        .shard_head(shard)
                        .map_or(0, |h| h.height)
                };
                let epoch = keeper.state.read().epoch();
                match view.check_vote(&data, &recorded, epoch) {
                    Err(VoteFault::Bad) => Verdict::Reject,
                    Err(VoteFault::Unwanted) => Verdict::Ignore,
                    Ok(vote) => {
                        let recorded = recorded(vote.header.shard);
                        if view.certifier.lock().add(vote, Some(recorded)) {
                            Verdict::Accept
                        } else {
                            Verdict::Ignore
                        }
                    }
                }
            })
            .await
            .unwrap_or(Verdict::Ignore);
            if verdict != Verdict::Ignore {
                metrics.gossip(verdict == Verdict::Accept);
            }
            network.report(id, source, verdict).await;
        });
    }

    fn receipts(&mut self, _peer: PeerId, id: u64, request: ReceiptsRequest) {
        let (network, stores, limit) = (self.network.clone(), self.stores.clone(), self.limit);
        let Ok(permit) = Arc::clone(&self.serving).try_acquire_owned() else {
            let not_held = codec::encode(&super::receipts::ReceiptsResponse::default());
            tokio::spawn(async move { network.respond(id, not_held).await });
            return;
        };
        tokio::spawn(async move {
            let answer = tokio::task::spawn_blocking(move || {
                let _permit = permit;
                super::receipts::serve(&stores, &request, limit)
            })
            .await
            .unwrap_or_default();
            network.respond(id, answer).await;
        });
    }

    fn pushed(&mut self, peer: PeerId, id: u64, pushed: PushedReceipts) {
        let network = self.network.clone();
        tokio::spawn(async move { network.respond(id, Vec::new()).await });
        // Only from a validator that can be in the source's committee,
        // for shards this validator tracks, from another shard; the rest
        // is checked when taken (the source header may not be recorded
        // yet).
        let epoch = self.keeper.state.read().epoch();
        let mut may_push = std::collections::BTreeMap::new();
        let receipts: Vec<_> = pushed
            .receipts
            .into_iter()
            .filter(|p| {
                let (source, destination) = (p.receipt.source, p.receipt.destination);
                source != destination
                    && self.shards.get(usize::from(source.0)).is_some()
                    && self
                        .shards
                        .get(usize::from(destination.0))
                        .is_some_and(ShardLink::tracked)
                    && *may_push
                        .entry(source)
                        .or_insert_with(|| self.committee.may_push(&peer, source, epoch))
            })
            .collect();
        if !receipts.is_empty() {
            self.committee.pushed.add(peer, receipts);
        }
    }

    fn snapshot(&mut self, _peer: PeerId, id: u64, request: SnapshotRequest) {
        let network = self.network.clone();
        let shard = usize::from(request.shard.0);
        // Only a shard this validator executes: another's store is stale.
        let store = self
            .shards
            .get(shard)
            .filter(|link| link.tracked())
            .and_then(|_| self.stores.get(shard).cloned());
        let served = Arc::clone(&self.served);
        let permit = Arc::clone(&self.serving).try_acquire_owned().ok();
        tokio::spawn(async move {
            let answer = match (store, permit) {
                (Some(store), Some(permit)) => tokio::task::spawn_blocking(move || {
                    let _permit = permit;
                    served.serve(&store, &request)
                })
                .await
                .unwrap_or_default(),
                _ => codec::encode(&SnapshotPart::default()),
            };
            network.respond(id, answer).await;
        });
    }

    fn transactions(&mut self, shard: u16, source: PeerId, id: MessageId, data: Vec<u8>) {
        let network = self.network.clone();
        let metrics = Arc::clone(&self.metrics);
        let Some(link) = self.shards.get(usize::from(shard)) else {
            return;
        };
        if !link.tracked() {
            // Not this validator's shard: no state to check them against.
            tokio::spawn(async move { network.report(id, source, Verdict::Ignore).await });
            return;
        }
        let txs = match codec::decode::<Vec<SignedTransaction>>(
            "transaction gossip",
            &data,
            data.len(),
        ) {
            Ok(txs) if !txs.is_empty() && txs.len() <= MAX_GOSSIP_TXS => txs,
            _ => {
                metrics.gossip(false);
                tokio::spawn(async move { network.report(id, source, Verdict::Reject).await });
                return;
            }
        };
        let (verdict, answer) = oneshot::channel();
        let message = Admission::Peer {
            txs: txs.into_iter().map(PreparedTx::new).collect(),
            verdict,
        };
        if link.admission.try_send(message).is_err() {
            // Busy: dropped here, not held against the peer.
            tokio::spawn(async move { network.report(id, source, Verdict::Ignore).await });
            return;
        }
        tokio::spawn(async move {
            let verdict = answer.await.unwrap_or(Verdict::Ignore);
            if verdict != Verdict::Ignore {
                metrics.gossip(verdict == Verdict::Accept);
            }
            network.report(id, source, verdict).await;
        });
    }
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

/// What the consensus machine of this validator starts from.
pub struct MachineStart {
    /// The chain.
    pub chain: ChainId,
    /// The validators.
    pub validators: ValidatorSet,
    /// This validator's key and index, if it is one.
    pub key: Option<(u16, KeyPair)>,
    /// The hash the first block extends (the genesis file's).
    pub genesis: Hash,
    /// The timeout.
    pub timeout: Duration,
}

/// The machine, rebuilt from the newest final block in the store and the
/// vote log's `records` (which may be ahead of the store: then the machine
/// starts above the heights this validator already voted at).
pub fn machine(
    start: MachineStart,
    store: &BeaconStore,
    records: &[Vec<u8>],
    limit: usize,
) -> anyhow::Result<Simplex> {
    let (final_height, final_hash) = store.final_head()?.unwrap_or((0, start.genesis));
    let records = records
        .iter()
        .map(|bytes| codec::decode::<Record>("vote record", bytes, limit))
        .collect::<Result<Vec<_>, _>>()
        .context("the vote log's records do not decode")?;
    Ok(Simplex::new(
        Config {
            chain: start.chain,
            validators: start.validators,
            key: start.key,
            genesis: start.genesis,
            timeout: start.timeout,
        },
        &records,
        final_height,
        final_hash,
    ))
}

/// Starts the engine on `network` (already started) with `host`.
pub fn spawn_engine(
    machine: Simplex,
    network: Handle,
    events: atoll_p2p::Events,
    host: NodeHost,
    status: Arc<ConsensusStatus>,
    metrics: Arc<Metrics>,
    stopping: Arc<std::sync::atomic::AtomicBool>,
) -> tokio::task::JoinHandle<()> {
    let limit = host.limit;
    let topics: Vec<Topic> = (0..host.shards.len() as u16)
        .map(Topic::Transactions)
        .collect();
    let archive = Arc::new(StoredBlocks {
        keeper: Arc::clone(&host.keeper),
        limit,
    });
    let (engine, woken) = Engine::new(machine, network, host, archive, limit, status, metrics);
    tokio::spawn(async move {
        if let Err(err) = engine.run(events, woken, topics).await {
            tracing::error!(
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
