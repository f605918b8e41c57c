//! Runs the Simplex machine over the libp2p network: proposals and votes
//! travel as gossip (checked before they are forwarded), `Sync` and `Fetch`
//! as requests to every connected peer, timeouts on tokio's clock, and
//! every record is persisted before the messages after it leave.
//!
//! A validator that is behind asks its peers for what was decided
//! (`Sync`); a peer answers from its machine and, below what the machine
//! still holds, from the final blocks its host stored, so a validator that
//! was away for any time catches up block by block. It keeps asking the
//! peer that answered until it is level.

use super::sync_serve::{encode_within, Archive, SyncServer};
use super::wire::Request;
use crate::metrics::Metrics;
use crate::service::common::shared::ConsensusStatus;
use atoll_consensus::simplex::{Block, Effect, FinalBlock, Input, Message, Record, Simplex};
use atoll_p2p::{Handle, MessageId, PeerId, Topic, Verdict};
use atoll_primitives::{codec, Hash};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::mpsc;

/// A payload being built.
pub type PayloadTask = Pin<Box<dyn Future<Output = Vec<u8>> + Send>>;

/// What the engine needs from the node.
pub trait Host: Send {
    /// Stores `record` durably; the engine sends nothing after it until
    /// this returns.
    fn persist(&mut self, record: Record) -> anyhow::Result<()>;
    /// Builds the payload of a block this validator proposes at `height`
    /// on `parent` (it may wait, e.g. for the parent to be executed).
    fn payload(&mut self, height: u64, parent: Hash) -> PayloadTask;
    /// Blocks became final, in height order, with their proofs.
    fn finalized(&mut self, blocks: Vec<FinalBlock>) -> anyhow::Result<()>;
}

/// Consensus traffic, sorted out of the network's events by the router
/// (`super::router`).
pub enum ConsensusEvent {
    /// A proposal, vote or certificate gossiped by `source`.
    Gossip {
        /// The peer that forwarded it.
        source: PeerId,
        /// Its gossip id, for the verdict.
        id: MessageId,
        /// The encoded message.
        data: Vec<u8>,
    },
    /// A consensus message asked by `peer` as request `id` (`Sync` and
    /// `Fetch` are answered; anything else scores the peer down).
    Request {
        /// The asker.
        peer: PeerId,
        /// The request, to answer.
        id: u64,
        /// What it asked.
        message: Message,
    },
    /// A peer connected.
    Connected,
    /// A peer disconnected.
    Disconnected,
}

/// The engine: the machine, the network and the host.
pub struct Engine<H: Host> {
    machine: Simplex,
    network: Handle,
    host: H,
    limit: usize,
    /// Timeouts, payloads and answers to `Sync`/`Fetch`, from the tasks
    /// that wait for them (the engine itself never waits on a timer, a
    /// payload or a peer).
    wake: mpsc::Sender<Wake>,
    status: Arc<ConsensusStatus>,
    metrics: Arc<Metrics>,
    peers: usize,
    last_final: Option<Instant>,
    /// Final blocks below the machine's, served by the [`SyncServer`]
    /// that `run` starts.
    archive: Arc<dyn Archive>,
    sync: Option<SyncServer>,
}

/// What a waiting task hands back to the engine.
pub enum Wake {
    /// The timeout of this height fired.
    Timeout(u64),
    /// The payload of this height is ready.
    Payload(u64, Vec<u8>),
    /// A peer answered a `Sync` or `Fetch`.
    Replies(PeerId, Vec<Message>),
}

impl<H: Host> Engine<H> {
    /// An engine for `machine` over `network`; messages over `limit` bytes
    /// are refused; `Sync` requests below the machine's final height are
    /// answered from `archive`, off the engine's task.
    pub fn new(
        machine: Simplex,
        network: Handle,
        host: H,
        archive: Arc<dyn Archive>,
        limit: usize,
        status: Arc<ConsensusStatus>,
        metrics: Arc<Metrics>,
    ) -> (Engine<H>, mpsc::Receiver<Wake>) {
        let (wake, woken) = mpsc::channel(1024);
        // What the machine restored, shown before the first message (and
        // the base of the first finalization's round count).
        let height = machine.height();
        status.height.store(height, Ordering::Relaxed);
        status
            .leader
            .store(u64::from(machine.leader(height)), Ordering::Relaxed);
        status
            .final_height
            .store(machine.final_block().0, Ordering::Relaxed);
        (
            Engine {
                machine,
                network,
                host,
                limit,
                wake,
                status,
                metrics,
                peers: 0,
                last_final: None,
                archive,
                sync: None,
            },
            woken,
        )
    }

    /// Runs until the router's events end; subscribes to `topics` besides
    /// the consensus ones.
    pub async fn run(
        mut self,
        mut events: mpsc::Receiver<ConsensusEvent>,
        mut woken: mpsc::Receiver<Wake>,
        topics: Vec<Topic>,
    ) -> anyhow::Result<()> {
        self.sync = Some(SyncServer::start(
            Arc::clone(&self.archive),
            self.network.clone(),
            self.limit,
        ));
        self.network.subscribe(Topic::Proposals).await?;
        self.network.subscribe(Topic::Votes).await?;
        self.network.subscribe(Topic::HeaderVotes).await?;
        for topic in topics {
            self.network.subscribe(topic).await?;
        }
        self.input(Input::Start, None).await?;
        loop {
            tokio::select! {
                event = events.recv() => {
                    let Some(event) = event else { return Ok(()) };
                    self.network_event(event).await?;
                }
                Some(wake) = woken.recv() => match wake {
                    Wake::Timeout(height) => {
                        if height == self.machine.height() {
                            if let Some(missing) = self.machine.missing_notarization() {
                                tracing::info!(
                                    target: "consensus",
                                    height,
                                    missing,
                                    final_height = self.machine.final_block().0,
                                    "height timed out; no notarization known at a height below, asking peers"
                                );
                            }
                        }
                        self.input(Input::Timeout { height }, None).await?;
                    }
                    Wake::Payload(height, payload) => {
                        self.input(Input::Payload { height, payload }, None).await?;
                    }
                    Wake::Replies(peer, messages) => self.replies(peer, messages).await?,
                },
            }
        }
    }

    fn decode(&self, bytes: &[u8]) -> Option<Message> {
        codec::decode("consensus message", bytes, self.limit).ok()
    }

    /// Answers to a `Sync` or `Fetch`: each must be signed as it must be
    /// (anything else scores the peer down). While this validator is still
    /// behind and the answer moved it on, it asks the same peer for more.
    async fn replies(&mut self, peer: PeerId, messages: Vec<Message>) -> anyhow::Result<()> {
        let before = self.machine.final_block().0;
        for message in messages {
            // What the machine would drop anyway is not verified.
            if !self.machine.wants(&message) {
                continue;
            }
            if !self.machine.is_signed(&message) {
                self.network.penalize(peer).await;
                return Ok(());
            }
            self.input(Input::Message(message), None).await?;
        }
        let after = self.machine.final_block().0;
        if after > before && self.machine.height() > after + 1 {
            self.ask(peer, Message::Sync(after + 1));
        }
        Ok(())
    }

    async fn network_event(&mut self, event: ConsensusEvent) -> anyhow::Result<()> {
        match event {
            ConsensusEvent::Gossip { source, id, data } => {
                // Forwarded only if it decodes and is signed as it must be;
                // anything else scores its sender down. What the machine
                // would drop anyway (a replayed old vote or certificate,
                // a copy already held) is ignored before any signature
                // is checked, so replays cost a lookup each.
                match self.decode(&data) {
                    Some(message) if !self.machine.wants(&message) => {
                        self.network.report(id, source, Verdict::Ignore).await;
                    }
                    Some(
                        message
                        @ (Message::Propose(_) | Message::Vote(_) | Message::Certificate(_)),
                    ) if self.machine.is_signed(&message) => {
                        self.metrics.gossip(true);
                        self.network.report(id, source, Verdict::Accept).await;
                        self.input(Input::Message(message), None).await?;
                    }
                    _ => {
                        self.metrics.gossip(false);
                        self.network.report(id, source, Verdict::Reject).await;
                    }
                }
            }
            ConsensusEvent::Request { peer, id, message } => {
                let mut replies = Vec::new();
                match message {
                    Message::Sync(from) if from <= self.machine.final_block().0 => {
                        // Below what the machine holds: from the store, on
                        // the sync server's task (the asker comes back for
                        // the rest); nothing when it is busy.
                        let queued = self
                            .sync
                            .as_ref()
                            .is_some_and(|sync| sync.try_serve(peer, id, from));
                        if !queued {
                            let nothing = encode_within(Vec::new(), self.limit);
                            self.network.respond(id, nothing).await;
                        }
                        return Ok(());
                    }
                    message @ (Message::Sync(_) | Message::Fetch(_)) => {
                        self.input(Input::Message(message), Some(&mut replies))
                            .await?;
                    }
                    _ => self.network.penalize(peer).await,
                }
                self.network
                    .respond(id, encode_within(replies, self.limit))
                    .await;
            }
            ConsensusEvent::Connected => self.set_peers(self.peers + 1),
            ConsensusEvent::Disconnected => self.set_peers(self.peers.saturating_sub(1)),
        }
        Ok(())
    }

    fn set_peers(&mut self, peers: usize) {
        self.peers = peers;
        self.status.peers.store(peers as u64, Ordering::Relaxed);
        self.metrics.peers.set(peers as i64);
    }

    /// Hands `input` to the machine and carries out its effects; replies go
    /// to `replies` when the input is a request.
    async fn input(
        &mut self,
        input: Input,
        mut replies: Option<&mut Vec<Message>>,
    ) -> anyhow::Result<()> {
        for effect in self.machine.handle(input) {
            match effect {
                Effect::Persist(record) => self.host.persist(record)?,
                Effect::Broadcast(message) => self.broadcast(message).await,
                Effect::Reply(message) => {
                    if let Some(replies) = replies.as_deref_mut() {
                        replies.push(message);
                    }
                }
                Effect::ScheduleTimeout { height, after } => {
                    let wake = self.wake.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(after).await;
                        let _ = wake.send(Wake::Timeout(height)).await;
                    });
                }
                Effect::NeedPayload { height, parent } => {
                    let (task, wake) = (self.host.payload(height, parent), self.wake.clone());
                    tokio::spawn(async move {
                        let payload = task.await;
                        let _ = wake.send(Wake::Payload(height, payload)).await;
                    });
                }
                Effect::Finalized(blocks) => self.finalized(blocks)?,
                Effect::Evidence(evidence) => {
                    tracing::warn!(target: "consensus", offender = evidence.offender(), "equivocation evidence");
                    self.status.equivocations.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        let height = self.machine.height();
        self.status.height.store(height, Ordering::Relaxed);
        self.status
            .leader
            .store(u64::from(self.machine.leader(height)), Ordering::Relaxed);
        self.metrics.consensus_height.set(height as i64);
        Ok(())
    }

    fn finalized(&mut self, blocks: Vec<Block>) -> anyhow::Result<()> {
        let mut previous = self.status.final_height.load(Ordering::Relaxed);
        let first = previous + 1;
        let mut skipped = 0;
        let mut proven = Vec::with_capacity(blocks.len());
        for block in &blocks {
            let Some(proof) = self.machine.final_proof(block) else {
                anyhow::bail!(
                    "the machine finalized block {} without holding it",
                    block.height
                );
            };
            let rounds = block.height.saturating_sub(previous);
            self.metrics
                .consensus_rounds_per_block
                .observe(rounds as f64);
            self.metrics
                .consensus_empty_heights
                .inc_by(rounds.saturating_sub(1));
            // One line per gap while following the chain live; a catch-up
            // of many blocks at once is summed up after the loop.
            if rounds > 1 && blocks.len() == 1 {
                let leaders: Vec<u16> = (previous + 1..block.height)
                    .map(|h| self.machine.leader(h))
                    .collect();
                tracing::info!(
                    target: "consensus",
                    from = previous + 1,
                    to = block.height - 1,
                    ?leaders,
                    "heights ended with the empty block (their leaders were slow, down or unheard)"
                );
            }
            skipped += rounds.saturating_sub(1);
            previous = block.height;
            proven.push(proof);
        }
        if skipped > 0 && blocks.len() > 1 {
            tracing::info!(
                target: "consensus",
                from = first,
                to = previous,
                skipped,
                "finalized several blocks at once; some heights between ended with the empty block"
            );
        }
        let now = Instant::now();
        if let Some(last) = self.last_final.replace(now) {
            self.metrics
                .consensus_block_interval
                .observe(now.duration_since(last).as_secs_f64());
        }
        self.status.final_height.store(previous, Ordering::Relaxed);
        self.metrics.consensus_final_height.set(previous as i64);
        self.host.finalized(proven)
    }

    /// Sends `message` (a request) to `peer` in its own task; the answer
    /// comes back as a wake.
    fn ask(&self, peer: PeerId, message: Message) {
        let (network, wake, bytes, limit) = (
            self.network.clone(),
            self.wake.clone(),
            codec::encode(&Request::Consensus(message)),
            self.limit,
        );
        tokio::spawn(async move {
            let Ok(answer) = network.request(peer, bytes).await else {
                return;
            };
            match codec::decode::<Vec<Message>>("consensus replies", &answer, limit) {
                Ok(messages) => {
                    let _ = wake.send(Wake::Replies(peer, messages)).await;
                }
                Err(_) => network.penalize(peer).await,
            }
        });
    }

    async fn broadcast(&mut self, message: Message) {
        let topic = match &message {
            Message::Propose(_) => Topic::Proposals,
            Message::Vote(_) | Message::Certificate(_) => Topic::Votes,
            Message::Fetch(_) | Message::Sync(_) => {
                // Asked of every peer, each in its own task: a slow or
                // silent peer delays nothing; answers come back as wakes.
                for peer in self.network.peers().await.unwrap_or_default() {
                    self.ask(peer, message.clone());
                }
                return;
            }
        };
        // No peer subscribed yet is not an error: the timeouts send again.
        let _ = self.network.publish(topic, codec::encode(&message)).await;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::super::router::{self, PeerHandler};
    use super::super::wire::{PushedReceipts, ReceiptsRequest, SnapshotRequest};
    use super::*;
    use atoll_consensus::simplex::{Config, ValidatorSet};
    use atoll_p2p::{start, P2pConfig};
    use atoll_primitives::{ChainId, KeyPair};
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    /// Each node's final blocks: (height, hash) in order.
    type Finals = Arc<Mutex<BTreeMap<usize, Vec<(u64, Hash)>>>>;

    /// A host that keeps its records and final blocks in memory.
    struct Memory {
        node: usize,
        records: Vec<Record>,
        finals: Finals,
    }

    /// Nothing stored: a validator behind catches up from the machines.
    struct NoArchive;

    impl Archive for NoArchive {
        fn stored(&self, _: u64, _: usize, _: usize) -> Vec<FinalBlock> {
            Vec::new()
        }
    }

    impl Host for Memory {
        fn persist(&mut self, record: Record) -> anyhow::Result<()> {
            self.records.push(record);
            Ok(())
        }
        fn payload(&mut self, height: u64, _: Hash) -> PayloadTask {
            let bytes = format!("block {height} from {}", self.node).into_bytes();
            Box::pin(async move { bytes })
        }
        fn finalized(&mut self, blocks: Vec<FinalBlock>) -> anyhow::Result<()> {
            let mut finals = self.finals.lock().unwrap();
            let list = finals.entry(self.node).or_default();
            list.extend(
                blocks
                    .iter()
                    .map(|b| (b.proposal.block.height, b.proposal.block.hash())),
            );
            Ok(())
        }
    }

    /// No peer traffic besides consensus.
    struct ConsensusOnly;

    impl PeerHandler for ConsensusOnly {
        fn transactions(&mut self, _: u16, _: PeerId, _: MessageId, _: Vec<u8>) {}
        fn header_vote(&mut self, _: PeerId, _: MessageId, _: Vec<u8>) {}
        fn receipts(&mut self, _: PeerId, _: u64, _: ReceiptsRequest) {}
        fn pushed(&mut self, _: PeerId, _: u64, _: PushedReceipts) {}
        fn snapshot(&mut self, _: PeerId, _: u64, _: SnapshotRequest) {}
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn four_validators_agree_over_libp2p() {
        let keys: Vec<KeyPair> = (1..=4u8).map(|i| KeyPair::from_seed([i; 32])).collect();
        let validators =
            ValidatorSet::new(&keys.iter().map(|k| (k.public(), 1)).collect::<Vec<_>>()).unwrap();
        let finals = Arc::new(Mutex::new(BTreeMap::new()));
        let limit = 1024 * 1024;
        let mut first: Option<atoll_p2p::Multiaddr> = None;
        for (i, key) in keys.iter().enumerate() {
            let mut config = P2pConfig::new(
                9,
                [40 + i as u8; 32],
                "/ip4/127.0.0.1/tcp/0".parse().unwrap(),
            );
            config.bootnodes = first.iter().cloned().collect();
            config.max_message_bytes = limit;
            let (network, events) = start(config).unwrap();
            if first.is_none() {
                let address = loop {
                    if let Some(a) = network.listening().await.unwrap().into_iter().next() {
                        break a;
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                };
                first = Some(
                    format!("{address}/p2p/{}", network.peer_id())
                        .parse()
                        .unwrap(),
                );
            }
            let machine = Simplex::new(
                Config {
                    chain: ChainId(9),
                    validators: validators.clone(),
                    key: Some((i as u16, key.clone())),
                    genesis: Hash::ZERO,
                    timeout: Duration::from_millis(300),
                },
                &[],
                0,
                Hash::ZERO,
            );
            let host = Memory {
                node: i,
                records: Vec::new(),
                finals: Arc::clone(&finals),
            };
            let (consensus, consensus_events) = mpsc::channel(router::CONSENSUS_QUEUE);
            tokio::spawn(router::run(
                events,
                ConsensusOnly,
                network.clone(),
                limit,
                consensus,
            ));
            let (engine, woken) = Engine::new(
                machine,
                network,
                host,
                Arc::new(NoArchive),
                limit,
                Arc::default(),
                Arc::new(Metrics::new()),
            );
            tokio::spawn(engine.run(consensus_events, woken, Vec::new()));
        }
        // Every validator finalizes at least 5 blocks, the same ones.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            {
                let finals = finals.lock().unwrap();
                let done = (0..4).all(|i| finals.get(&i).is_some_and(|l| l.len() >= 5));
                if done {
                    let reference: BTreeMap<u64, Hash> = finals[&0].iter().copied().collect();
                    for list in finals.values() {
                        for (height, hash) in list {
                            if let Some(expected) = reference.get(height) {
                                assert_eq!(expected, hash, "height {height}");
                            }
                        }
                    }
                    return;
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no agreement within 60 s: {:?}",
                finals.lock().unwrap()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
