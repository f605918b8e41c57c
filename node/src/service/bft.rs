//! Runs the Simplex machine over the libp2p network: proposals and votes
//! travel as gossip (checked before they are forwarded), `Sync` and `Fetch`
//! as requests to every connected peer, timeouts on tokio's clock, and
//! every record is persisted before the messages after it leave.
//!
//! This is the engine only: the node does not run it yet (it finalizes
//! alone). Its test runs four validators in one process over real libp2p
//! on loopback.

use atoll_consensus::simplex::{Block, Effect, Input, Message, Record, Simplex};
use atoll_p2p::{Handle, NetworkEvent, Topic, Verdict};
use atoll_primitives::{codec, Hash};

use tokio::sync::mpsc;

/// What the engine needs from the node.
pub trait Host: Send {
    /// Stores `record` durably; the engine sends nothing after it until
    /// this returns.
    fn persist(&mut self, record: Record) -> anyhow::Result<()>;
    /// The payload of a block this validator proposes at `height`.
    fn payload(&mut self, height: u64, parent: Hash) -> Vec<u8>;
    /// Blocks became final, in height order.
    fn finalized(&mut self, blocks: Vec<Block>);
}

/// The engine: the machine, the network and the host.
pub struct Engine<H: Host> {
    machine: Simplex,
    network: Handle,
    host: H,
    limit: usize,
    /// Timeouts and answers to `Sync`/`Fetch`, from the tasks that wait
    /// for them (the engine itself never waits on a timer or a peer).
    wake: mpsc::Sender<Wake>,
}

/// What a waiting task hands back to the engine.
pub enum Wake {
    /// The timeout of this height fired.
    Timeout(u64),
    /// A peer answered a `Sync` or `Fetch`.
    Replies(Vec<Message>),
}

impl<H: Host> Engine<H> {
    /// An engine for `machine` over `network`; messages over `limit` bytes
    /// are refused.
    pub fn new(
        machine: Simplex,
        network: Handle,
        host: H,
        limit: usize,
    ) -> (Engine<H>, mpsc::Receiver<Wake>) {
        let (wake, woken) = mpsc::channel(1024);
        (
            Engine {
                machine,
                network,
                host,
                limit,
                wake,
            },
            woken,
        )
    }

    /// Runs until the network's events end.
    pub async fn run(
        mut self,
        mut events: mpsc::Receiver<NetworkEvent>,
        mut woken: mpsc::Receiver<Wake>,
    ) -> anyhow::Result<()> {
        self.network.subscribe(Topic::Proposals).await?;
        self.network.subscribe(Topic::Votes).await?;
        self.input(Input::Start, None).await?;
        loop {
            tokio::select! {
                event = events.recv() => {
                    let Some(event) = event else { return Ok(()) };
                    self.network_event(event).await?;
                }
                Some(wake) = woken.recv() => match wake {
                    Wake::Timeout(height) => self.input(Input::Timeout { height }, None).await?,
                    Wake::Replies(messages) => {
                        for message in messages {
                            self.input(Input::Message(message), None).await?;
                        }
                    }
                },
            }
        }
    }

    fn decode(&self, bytes: &[u8]) -> Option<Message> {
        codec::decode("consensus message", bytes, self.limit).ok()
    }

    async fn network_event(&mut self, event: NetworkEvent) -> anyhow::Result<()> {
        match event {
            NetworkEvent::Gossip {
                source, id, data, ..
            } => {
                // Forwarded only if it decodes and is signed as it must be;
                // anything else scores its sender down.
                match self.decode(&data) {
                    Some(
                        message
                        @ (Message::Propose(_) | Message::Vote(_) | Message::Certificate(_)),
                    ) if self.machine.is_signed(&message) => {
                        self.network.report(id, source, Verdict::Accept).await;
                        self.input(Input::Message(message), None).await?;
                    }
                    _ => self.network.report(id, source, Verdict::Reject).await,
                }
            }
            NetworkEvent::Request { peer, id, data } => {
                let mut replies = Vec::new();
                match self.decode(&data) {
                    Some(message @ (Message::Fetch(_) | Message::Sync(_))) => {
                        self.input(Input::Message(message), Some(&mut replies))
                            .await?;
                    }
                    _ => self.network.penalize(peer).await,
                }
                self.network.respond(id, codec::encode(&replies)).await;
            }
            NetworkEvent::Connected(_) | NetworkEvent::Disconnected(_) => {}
        }
        Ok(())
    }

    /// Hands `input` to the machine and carries out its effects; replies go
    /// to `replies` when the input is a request.
    async fn input(
        &mut self,
        input: Input,
        mut replies: Option<&mut Vec<Message>>,
    ) -> anyhow::Result<()> {
        let mut pending = vec![input];
        while let Some(input) = pending.pop() {
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
                        let payload = self.host.payload(height, parent);
                        pending.push(Input::Payload { height, payload });
                    }
                    Effect::Finalized(blocks) => self.host.finalized(blocks),
                    Effect::Evidence(evidence) => {
                        tracing::warn!(offender = evidence.offender(), "equivocation evidence");
                    }
                }
            }
        }
        Ok(())
    }

    async fn broadcast(&mut self, message: Message) {
        let topic = match &message {
            Message::Propose(_) => Topic::Proposals,
            Message::Vote(_) | Message::Certificate(_) => Topic::Votes,
            Message::Fetch(_) | Message::Sync(_) => {
                // Asked of every peer, each in its own task: a slow or
                // silent peer delays nothing; answers come back as wakes.
                let bytes = codec::encode(&message);
                for peer in self.network.peers().await.unwrap_or_default() {
                    let (network, wake, bytes, limit) = (
                        self.network.clone(),
                        self.wake.clone(),
                        bytes.clone(),
                        self.limit,
                    );
                    tokio::spawn(async move {
                        let Ok(answer) = network.request(peer, bytes).await else {
                            return;
                        };
                        match codec::decode::<Vec<Message>>("consensus replies", &answer, limit) {
                            Ok(messages) => {
                                let _ = wake.send(Wake::Replies(messages)).await;
                            }
                            Err(_) => network.penalize(peer).await,
                        }
                    });
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
    use super::*;
    use atoll_consensus::simplex::{Config, ValidatorSet};
    use atoll_p2p::{start, NetworkConfig};
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

    impl Host for Memory {
        fn persist(&mut self, record: Record) -> anyhow::Result<()> {
            self.records.push(record);
            Ok(())
        }
        fn payload(&mut self, height: u64, _: Hash) -> Vec<u8> {
            format!("block {height} from {}", self.node).into_bytes()
        }
        fn finalized(&mut self, blocks: Vec<Block>) {
            let mut finals = self.finals.lock().unwrap();
            let list = finals.entry(self.node).or_default();
            list.extend(blocks.iter().map(|b| (b.height, b.hash())));
        }
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
            let mut config = NetworkConfig::new(
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
            let (engine, woken) = Engine::new(machine, network, host, limit);
            tokio::spawn(engine.run(events, woken));
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
