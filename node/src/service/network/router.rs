//! The peer traffic that is not consensus, sorted out before the engine
//! sees anything: transaction gossip goes to the shard's admission stage
//! (checked before it is forwarded; a batch with a bad signature scores its
//! sender down), header votes to the committees, and the requests of the
//! receipt, push and snapshot protocols to their servers. Consensus gossip
//! and `Sync`/`Fetch` requests go on to the engine ([`ConsensusEvent`]).

use super::committee_view::{CommitteeView, VoteFault};
use super::engine::ConsensusEvent;
use super::snapshot_serve::Served;
use super::sync_serve::encode_within;
use super::wire::{
    PushedReceipts, ReceiptsRequest, ReceiptsResponse, Request, SnapshotPart, SnapshotRequest,
    MAX_GOSSIP_TXS,
};
use crate::metrics::Metrics;
use crate::service::common::handoff::Admission;
use crate::service::common::keeper::BeaconKeeper;
use crate::service::common::shared::Shared;
use atoll_p2p::{Handle, MessageId, NetworkEvent, PeerId, Topic, Verdict};
use atoll_primitives::{codec, SignedTransaction};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// Consensus events waiting for the engine; past this the router waits
/// (and with it the network's event queue).
pub const CONSENSUS_QUEUE: usize = 1024;

/// Most receipt and snapshot requests answered at once; past it a request
/// is answered at once with "not held" (the asker tries another peer or
/// comes back), so peers cannot pile up blocking reads of the store.
pub const MAX_SERVING: usize = 16;

/// What the router hands each kind of peer traffic to.
pub trait PeerHandler: Send {
    /// Gossip on a shard's transaction topic; the handler reports its verdict.
    fn transactions(&mut self, shard: u16, source: PeerId, id: MessageId, data: Vec<u8>);
    /// Gossip on the header-vote topic; the handler reports its verdict.
    fn header_vote(&mut self, source: PeerId, id: MessageId, data: Vec<u8>);
    /// A peer asks for receipts; the handler answers request `id`.
    fn receipts(&mut self, peer: PeerId, id: u64, request: ReceiptsRequest);
    /// A peer pushes receipts; the handler acknowledges request `id`.
    fn pushed(&mut self, peer: PeerId, id: u64, pushed: PushedReceipts);
    /// A peer asks for a part of a shard's state snapshot; the handler
    /// answers request `id`.
    fn snapshot(&mut self, peer: PeerId, id: u64, request: SnapshotRequest);
}

/// Routes the network's `events` until they end: what is not consensus to
/// `handler`, the rest to the engine through `consensus`. A request that
/// does not decode scores its sender down and is answered with nothing.
pub async fn run(
    mut events: atoll_p2p::Events,
    mut handler: impl PeerHandler,
    network: Handle,
    limit: usize,
    consensus: mpsc::Sender<ConsensusEvent>,
) {
    while let Some(event) = events.recv().await {
        let for_consensus = match event {
            NetworkEvent::Gossip {
                topic: Topic::Transactions(shard),
                source,
                id,
                data,
            } => {
                handler.transactions(shard, source, id, data);
                None
            }
            NetworkEvent::Gossip {
                topic: Topic::HeaderVotes,
                source,
                id,
                data,
            } => {
                handler.header_vote(source, id, data);
                None
            }
            NetworkEvent::Gossip {
                source, id, data, ..
            } => Some(ConsensusEvent::Gossip { source, id, data }),
            NetworkEvent::Request { peer, id, data } => {
                match codec::decode::<Request>("request", &data, limit) {
                    Ok(Request::Receipts(request)) => {
                        handler.receipts(peer, id, request);
                        None
                    }
                    Ok(Request::Push(pushed)) => {
                        handler.pushed(peer, id, pushed);
                        None
                    }
                    Ok(Request::Snapshot(request)) => {
                        handler.snapshot(peer, id, request);
                        None
                    }
                    Ok(Request::Consensus(message)) => {
                        Some(ConsensusEvent::Request { peer, id, message })
                    }
                    Err(_) => {
                        network.penalize(peer).await;
                        network.respond(id, encode_within(Vec::new(), limit)).await;
                        None
                    }
                }
            }
            NetworkEvent::Connected(_) => Some(ConsensusEvent::Connected),
            NetworkEvent::Disconnected(_) => Some(ConsensusEvent::Disconnected),
        };
        if let Some(event) = for_consensus {
            if consensus.send(event).await.is_err() {
                return;
            }
        }
    }
}

/// Where a shard's admission stage and the network meet.
pub struct ShardLink {
    /// The shard's admission queue.
    pub admission: mpsc::Sender<Admission>,
    /// The shard (whether this validator tracks it).
    pub shared: Arc<Shared>,
}

impl ShardLink {
    fn tracked(&self) -> bool {
        self.shared
            .tracked
            .load(std::sync::atomic::Ordering::Acquire)
    }
}

/// The node's [`PeerHandler`]: each shard's admission, the committees, and
/// the stores that answer receipt and snapshot requests.
pub struct PeerRouter {
    /// The beacon (the epoch pushed receipts are judged in, the recorded
    /// heads header votes are judged against).
    pub keeper: Arc<BeaconKeeper>,
    /// Each shard's admission, by shard number.
    pub shards: Vec<ShardLink>,
    /// The network, to report verdicts and answer requests.
    pub network: Handle,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Largest message.
    pub limit: usize,
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

impl PeerHandler for PeerRouter {
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
            let not_held = codec::encode(&ReceiptsResponse::default());
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
        let message = Admission::Peer { txs, verdict };
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
