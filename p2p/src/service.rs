//! The task that owns the libp2p swarm, and the bounded handle the rest of
//! the node talks to it through.

use crate::events::{self, EventSender, Events};
use crate::framing::BytesCodec;
use crate::topics::Topic;
use futures::StreamExt;
use libp2p::gossipsub::{self, IdentTopic, MessageAcceptance, MessageAuthenticity, MessageId};
use libp2p::multiaddr::Protocol;
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{
    allow_block_list, connection_limits, identify, identity, noise, ping, tcp, yamux, Multiaddr,
    PeerId, StreamProtocol, Swarm, SwarmBuilder,
};
use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Duration;
use thiserror::Error;
use tokio::sync::{mpsc, oneshot};

/// The request-response protocol name.
pub const REQUEST_PROTOCOL: &str = "/atoll/request/1";
/// Most inbound requests waiting for the node's answer; more are refused.
pub const MAX_PENDING_RESPONSES: usize = 1024;
/// Most of those from one peer.
pub const MAX_PENDING_PER_PEER: usize = 32;
/// A peer's score falls by this much for each invalid message or response.
pub const PENALTY: i32 = 10;
/// At or below this score a peer is disconnected and not let back.
pub const BAN_SCORE: i32 = -50;
/// Most peers remembered as banned (the oldest is forgotten first).
pub const MAX_BANNED: usize = 4096;
/// Most peers the operator may block.
pub const MAX_BLOCKED: usize = 1024;
/// How often bootnodes that are not connected are dialed again, at the
/// least: each node adds up to a second of its own (see [`redial_interval`]).
pub const REDIAL_INTERVAL: Duration = Duration::from_secs(3);
/// How often each connection is pinged.
pub const PING_INTERVAL: Duration = Duration::from_secs(5);
/// A ping unanswered for this long closes its connection: a link that
/// drops everything without an error is noticed within interval + timeout.
pub const PING_TIMEOUT: Duration = Duration::from_secs(10);

/// How the node's network is set up.
#[derive(Clone, Debug)]
pub struct P2pConfig {
    /// The chain (part of every topic name).
    pub chain: u64,
    /// The ed25519 secret of this node's network identity.
    pub secret: [u8; 32],
    /// Where to listen (e.g. `/ip4/127.0.0.1/tcp/0`).
    pub listen: Multiaddr,
    /// Peers to dial at start, and again whenever they are not connected
    /// (every [`REDIAL_INTERVAL`]).
    pub bootnodes: Vec<Multiaddr>,
    /// The largest gossip message, request or response (fit for the largest
    /// valid block).
    pub max_message_bytes: usize,
    /// Most connections of peers that are not reserved (strangers); past
    /// it a stranger's new connection is closed at once.
    pub max_connections: u32,
    /// Peers that always get a connection, whatever strangers hold
    /// (validators). Bootnodes named with `/p2p/<id>` are reserved too, and
    /// the node adds validators it learns of ([`Handle::reserve`]).
    ///
    /// They are gossipsub's explicit peers too: every message goes to them
    /// directly, outside the mesh. A mesh would put a peer that reconnects
    /// after a cut in a minute's graft backoff (and score it down for
    /// grafting too early), so a validator back from a broken link would
    /// hear nothing for that long; between validators that costs liveness.
    pub reserved: Vec<PeerId>,
    /// Most connections to one peer.
    pub max_per_peer: u32,
    /// Commands and events waiting between the node and the swarm task.
    pub queue: usize,
    /// Most bytes of messages in the events waiting for the node (one
    /// event always fits an empty queue, however large).
    pub queue_bytes: usize,
}

impl P2pConfig {
    /// Defaults for `chain`, identity `secret`, listening on `listen`.
    pub fn new(chain: u64, secret: [u8; 32], listen: Multiaddr) -> P2pConfig {
        P2pConfig {
            chain,
            secret,
            listen,
            bootnodes: Vec::new(),
            max_message_bytes: 40 * 1024 * 1024,
            max_connections: 128,
            reserved: Vec::new(),
            max_per_peer: 2,
            queue: 4096,
            queue_bytes: 256 * 1024 * 1024,
        }
    }
}

/// The peer id of the node whose identity secret is `secret`.
pub fn peer_id_of(secret: [u8; 32]) -> PeerId {
    match identity::Keypair::ed25519_from_bytes(secret) {
        Ok(key) => key.public().to_peer_id(),
        // Any 32 bytes are an ed25519 secret key.
        Err(_) => unreachable!("32 bytes are always an ed25519 secret"),
    }
}

/// Why a network operation failed.
#[derive(Debug, Error)]
pub enum NetworkError {
    /// The swarm task is gone (the node is stopping).
    #[error("the network task has stopped")]
    Stopped,
    /// The swarm could not be built or could not listen.
    #[error("cannot start the network: {0}")]
    Start(String),
    /// A gossip message was not published.
    #[error("cannot publish: {0}")]
    Publish(String),
    /// The node asked for something the network refuses.
    #[error("{0}")]
    Invalid(String),
    /// A request got no answer.
    #[error("request to {peer} failed: {reason}")]
    Request {
        /// The peer asked.
        peer: PeerId,
        /// Why.
        reason: String,
    },
}

/// The node's verdict on a gossip message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Valid: forward it.
    Accept,
    /// Invalid: drop it and score its sender down.
    Reject,
    /// Not useful (e.g. old), but not the sender's fault: drop it.
    Ignore,
}

/// What the network tells the node.
#[derive(Debug)]
pub enum NetworkEvent {
    /// A gossip message, held until the node reports a [`Verdict`] on it.
    Gossip {
        /// Its topic.
        topic: Topic,
        /// The peer that forwarded it.
        source: PeerId,
        /// Its id, for [`Handle::report`].
        id: MessageId,
        /// Its bytes.
        data: Vec<u8>,
    },
    /// A peer asks something; answer with [`Handle::respond`].
    Request {
        /// The peer.
        peer: PeerId,
        /// The id to answer.
        id: u64,
        /// The request's bytes.
        data: Vec<u8>,
    },
    /// A connection to a peer opened.
    Connected(PeerId),
    /// The last connection to a peer closed.
    Disconnected(PeerId),
}

enum Command {
    Subscribe(Topic, oneshot::Sender<Result<(), NetworkError>>),
    Publish(Topic, Vec<u8>, oneshot::Sender<Result<(), NetworkError>>),
    Report(MessageId, PeerId, Verdict),
    Request(
        PeerId,
        Vec<u8>,
        oneshot::Sender<Result<Vec<u8>, NetworkError>>,
    ),
    Respond(u64, Vec<u8>),
    Penalize(PeerId),
    Dial(Multiaddr),
    Listening(oneshot::Sender<Vec<Multiaddr>>),
    Block(Vec<PeerId>, oneshot::Sender<Result<(), NetworkError>>),
    Info(oneshot::Sender<PeerInfo>),
    Reserve(Vec<PeerId>),
}

/// Most reserved peers (connections beyond [`P2pConfig::max_connections`]
/// are kept for them: up to this many, times the per-peer limit).
pub const MAX_RESERVED: usize = 1024;

/// What the network knows of its peers.
#[derive(Clone, Debug, Default)]
pub struct PeerInfo {
    /// Connected now.
    pub connected: Vec<PeerId>,
    /// Banned for sending invalid data (refused until forgotten).
    pub banned: usize,
    /// Blocked by the operator ([`Handle::block`]).
    pub blocked: Vec<PeerId>,
}

/// The node's handle on the network. Cheap to clone; every call goes
/// through one bounded queue to the swarm task.
#[derive(Clone, Debug)]
pub struct Handle {
    commands: mpsc::Sender<Command>,
    peer_id: PeerId,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Command")
    }
}

impl Handle {
    /// This node's peer id.
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    async fn send(&self, command: Command) -> Result<(), NetworkError> {
        self.commands
            .send(command)
            .await
            .map_err(|_| NetworkError::Stopped)
    }

    /// Subscribes to `topic`.
    pub async fn subscribe(&self, topic: Topic) -> Result<(), NetworkError> {
        let (reply, answer) = oneshot::channel();
        self.send(Command::Subscribe(topic, reply)).await?;
        answer.await.map_err(|_| NetworkError::Stopped)?
    }

    /// Publishes `data` on `topic`.
    pub async fn publish(&self, topic: Topic, data: Vec<u8>) -> Result<(), NetworkError> {
        let (reply, answer) = oneshot::channel();
        self.send(Command::Publish(topic, data, reply)).await?;
        answer.await.map_err(|_| NetworkError::Stopped)?
    }

    /// Reports the node's verdict on gossip message `id` from `source`.
    pub async fn report(&self, id: MessageId, source: PeerId, verdict: Verdict) {
        let _ = self.send(Command::Report(id, source, verdict)).await;
    }

    /// Sends `data` to `peer` and waits for its answer.
    pub async fn request(&self, peer: PeerId, data: Vec<u8>) -> Result<Vec<u8>, NetworkError> {
        let (reply, answer) = oneshot::channel();
        self.send(Command::Request(peer, data, reply)).await?;
        answer.await.map_err(|_| NetworkError::Stopped)?
    }

    /// Answers request `id`.
    pub async fn respond(&self, id: u64, data: Vec<u8>) {
        let _ = self.send(Command::Respond(id, data)).await;
    }

    /// Scores `peer` down (it sent something invalid outside gossip, e.g.
    /// a bad response).
    pub async fn penalize(&self, peer: PeerId) {
        let _ = self.send(Command::Penalize(peer)).await;
    }

    /// Dials `address`.
    pub async fn dial(&self, address: Multiaddr) -> Result<(), NetworkError> {
        self.send(Command::Dial(address)).await
    }

    /// The peers connected now.
    pub async fn peers(&self) -> Result<Vec<PeerId>, NetworkError> {
        Ok(self.info().await?.connected)
    }

    /// Replaces the peers the operator blocks: their connections close,
    /// they are not dialed and their connections are refused until they
    /// are left out of a later list. At most [`MAX_BLOCKED`].
    pub async fn block(&self, peers: Vec<PeerId>) -> Result<(), NetworkError> {
        let (reply, answer) = oneshot::channel();
        self.send(Command::Block(peers, reply)).await?;
        answer.await.map_err(|_| NetworkError::Stopped)?
    }

    /// Reserves connection slots for `peers` (validators): strangers
    /// filling [`P2pConfig::max_connections`] never keep them out.
    /// Returns at once (false if the command queue is full).
    pub fn reserve(&self, peers: Vec<PeerId>) -> bool {
        self.commands.try_send(Command::Reserve(peers)).is_ok()
    }

    /// Connected, banned and blocked peers.
    pub async fn info(&self) -> Result<PeerInfo, NetworkError> {
        let (reply, answer) = oneshot::channel();
        self.send(Command::Info(reply)).await?;
        answer.await.map_err(|_| NetworkError::Stopped)
    }

    /// The addresses this node listens on.
    pub async fn listening(&self) -> Result<Vec<Multiaddr>, NetworkError> {
        let (reply, answer) = oneshot::channel();
        self.send(Command::Listening(reply)).await?;
        answer.await.map_err(|_| NetworkError::Stopped)
    }
}

#[derive(NetworkBehaviour)]
struct Behaviour {
    /// Banned and operator-blocked peers: refused at connection time.
    blocked: allow_block_list::Behaviour<allow_block_list::BlockedPeers>,
    limits: connection_limits::Behaviour,
    gossipsub: gossipsub::Behaviour,
    requests: request_response::Behaviour<BytesCodec>,
    identify: identify::Behaviour,
    ping: ping::Behaviour,
}

/// A gossip message's id: a hash of its claimed author, sequence number,
/// topic and data (collision-resistant, since a peer chooses all four).
fn message_id(message: &gossipsub::Message) -> MessageId {
    let mut hasher = blake3::Hasher::new();
    hasher.update(b"atoll gossip message id");
    let source = message.source.map(|p| p.to_bytes()).unwrap_or_default();
    for part in [
        source.as_slice(),
        &message.sequence_number.unwrap_or(0).to_be_bytes(),
        message.topic.as_str().as_bytes(),
        &message.data,
    ] {
        hasher.update(&(part.len() as u64).to_be_bytes());
        hasher.update(part);
    }
    MessageId::new(hasher.finalize().as_bytes())
}

/// Starts the swarm task (on the current tokio runtime), listening and
/// dialing the bootnodes. Returns the handle and the node's event stream.
pub fn start(config: P2pConfig) -> Result<(Handle, Events), NetworkError> {
    let start = |e: String| NetworkError::Start(e);
    let key =
        identity::Keypair::ed25519_from_bytes(config.secret).map_err(|e| start(e.to_string()))?;
    let peer_id = key.public().to_peer_id();
    // Gossip is not signed by libp2p: everything atoll gossips carries its
    // own signatures (transactions, votes, proposals, header votes), the
    // connection is authenticated by noise, and no one acts on a message's
    // claimed author, so a second ed25519 signature per message (signed by
    // the publisher, checked by every receiver: about 7% of a validator's
    // CPU under load) bought nothing. Messages still carry their author and
    // a sequence number, so a vote published again is a new message; the
    // id hashes them with the data, so a forged message under another's
    // author and number cannot make its receivers drop the real one as
    // seen (`message_id`).
    let gossip_config = gossipsub::ConfigBuilder::default()
        .validation_mode(gossipsub::ValidationMode::Permissive)
        .message_id_fn(message_id)
        .validate_messages()
        .max_transmit_size(config.max_message_bytes)
        // Validator sets are small: a mesh of a few peers each.
        .mesh_n(4)
        .mesh_n_low(2)
        .mesh_n_high(8)
        .mesh_outbound_min(1)
        .heartbeat_interval(Duration::from_millis(500))
        .build()
        .map_err(|e| start(e.to_string()))?;
    let limit = config.max_message_bytes;
    // libp2p's own limit leaves room for the reserved peers; the task
    // holds strangers to `max_connections` itself.
    let reserved_room = u32::try_from(MAX_RESERVED)
        .unwrap_or(u32::MAX)
        .saturating_mul(config.max_per_peer);
    let limits = connection_limits::ConnectionLimits::default()
        .with_max_established(Some(config.max_connections.saturating_add(reserved_room)))
        .with_max_established_per_peer(Some(config.max_per_peer))
        .with_max_pending_incoming(Some(config.max_connections));
    let mut swarm = SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .map_err(|e| start(e.to_string()))?
        .with_behaviour(|key| {
            let mut gossipsub = gossipsub::Behaviour::new(
                MessageAuthenticity::Author(key.public().to_peer_id()),
                gossip_config,
            )?;
            gossipsub.with_peer_score(
                gossipsub::PeerScoreParams::default(),
                gossipsub::PeerScoreThresholds::default(),
            )?;
            Ok(Behaviour {
                blocked: allow_block_list::Behaviour::default(),
                limits: connection_limits::Behaviour::new(limits),
                gossipsub,
                requests: request_response::Behaviour::with_codec(
                    BytesCodec { limit },
                    [(StreamProtocol::new(REQUEST_PROTOCOL), ProtocolSupport::Full)],
                    request_response::Config::default()
                        .with_request_timeout(Duration::from_secs(10))
                        .with_max_concurrent_streams(64),
                ),
                identify: identify::Behaviour::new(identify::Config::new(
                    format!("/atoll/{}/1", config.chain),
                    key.public(),
                )),
                ping: ping::Behaviour::new(
                    ping::Config::new()
                        .with_interval(PING_INTERVAL)
                        .with_timeout(PING_TIMEOUT),
                ),
            })
        })
        .map_err(|e| start(e.to_string()))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .build();
    swarm
        .listen_on(config.listen.clone())
        .map_err(|e| start(format!("cannot listen on {}: {e}", config.listen)))?;
    for address in &config.bootnodes {
        if let Err(e) = swarm.dial(dial_from_new_port(address)) {
            tracing::warn!(%address, %e, "cannot dial bootnode");
        }
    }
    let (commands, command_rx) = mpsc::channel(config.queue);
    let (event_tx, events) = events::channel(config.queue, config.queue_bytes);
    let reserved: HashSet<PeerId> = config
        .reserved
        .iter()
        .copied()
        .chain(config.bootnodes.iter().filter_map(peer_of))
        .take(MAX_RESERVED)
        .collect();
    for peer in &reserved {
        swarm.behaviour_mut().gossipsub.add_explicit_peer(peer);
    }
    let task = Task {
        swarm,
        chain: config.chain,
        events: event_tx,
        topics: HashMap::new(),
        requests: HashMap::new(),
        responses: HashMap::new(),
        inbound: HashMap::new(),
        next_response: 0,
        scores: HashMap::new(),
        banned: HashSet::new(),
        banned_order: VecDeque::new(),
        operator_blocked: HashSet::new(),
        bootnodes: config.bootnodes.clone(),
        listening: Vec::new(),
        reserved,
        strangers: HashSet::new(),
        refused: HashSet::new(),
        max_strangers: config.max_connections as usize,
        accepted: HashMap::new(),
    };
    tokio::spawn(task.run(command_rx));
    Ok((Handle { commands, peer_id }, events))
}

struct Task {
    swarm: Swarm<Behaviour>,
    chain: u64,
    events: EventSender,
    topics: HashMap<gossipsub::TopicHash, Topic>,
    requests: HashMap<
        request_response::OutboundRequestId,
        oneshot::Sender<Result<Vec<u8>, NetworkError>>,
    >,
    /// Inbound requests waiting for the node's answer: the channel, the
    /// peer, and the protocol's id (to drop the entry when the request
    /// fails before the node answers).
    responses: HashMap<u64, (request_response::ResponseChannel<Vec<u8>>, PeerId)>,
    inbound: HashMap<request_response::InboundRequestId, u64>,
    next_response: u64,
    scores: HashMap<PeerId, i32>,
    banned: HashSet<PeerId>,
    banned_order: VecDeque<PeerId>,
    operator_blocked: HashSet<PeerId>,
    bootnodes: Vec<Multiaddr>,
    listening: Vec<Multiaddr>,
    /// Peers whose connections do not count against `max_strangers`.
    reserved: HashSet<PeerId>,
    /// Open connections of peers that are not reserved.
    strangers: HashSet<libp2p::swarm::ConnectionId>,
    /// Connections closed for want of a stranger's slot (their close is
    /// not reported to the node, which never heard of them).
    refused: HashSet<libp2p::swarm::ConnectionId>,
    max_strangers: usize,
    /// Open accepted connections per peer (the node hears of a peer's
    /// first and last).
    accepted: HashMap<PeerId, usize>,
}

/// A dial of `address` from a port of its own. By default libp2p dials
/// from the listening port, and two nodes that dial each other within one
/// round trip (started together, or redialing together after a partition)
/// then make one TCP connection by simultaneous open, on which both start
/// the handshake as its initiator and fail (`InvalidData`), every time.
/// Seen between network namespaces 50 ms apart: the validators never
/// connected. From new ports, the two dials are two connections.
fn dial_from_new_port(address: &Multiaddr) -> DialOpts {
    match peer_of(address) {
        Some(peer) => DialOpts::peer_id(peer)
            .addresses(vec![address.clone()])
            .allocate_new_port()
            .build(),
        None => DialOpts::unknown_peer_id()
            .address(address.clone())
            .allocate_new_port()
            .build(),
    }
}

/// This node's redial period: [`REDIAL_INTERVAL`] plus up to a second
/// taken from its peer id, so that nodes started together do not redial
/// in step.
fn redial_interval(local: &PeerId) -> Duration {
    let bytes = local.to_bytes();
    let spread = bytes
        .iter()
        .rev()
        .take(2)
        .fold(0u64, |acc, b| acc * 256 + u64::from(*b));
    REDIAL_INTERVAL + Duration::from_millis(spread % 1000)
}

/// The peer id a multiaddr ends with (`/p2p/<id>`), if any.
fn peer_of(address: &Multiaddr) -> Option<PeerId> {
    address.iter().find_map(|protocol| match protocol {
        libp2p::multiaddr::Protocol::P2p(peer) => Some(peer),
        _ => None,
    })
}

impl Task {
    async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        let mut redial = tokio::time::interval(redial_interval(self.swarm.local_peer_id()));
        redial.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        redial.tick().await;
        loop {
            tokio::select! {
                command = commands.recv() => match command {
                    Some(command) => self.command(command),
                    None => return,
                },
                event = self.swarm.select_next_some() => self.swarm_event(event),
                _ = redial.tick() => self.redial(),
            }
        }
    }

    /// Dials the bootnodes that are not connected (a peer that restarted,
    /// a link that broke, a partition that healed), unless blocked.
    fn redial(&mut self) {
        for address in self.bootnodes.clone() {
            let Some(Protocol::P2p(peer)) = address.iter().last() else {
                continue;
            };
            if self.swarm.is_connected(&peer) || self.is_blocked(&peer) {
                continue;
            }
            let dial = DialOpts::peer_id(peer)
                .addresses(vec![address])
                .condition(PeerCondition::DisconnectedAndNotDialing)
                .allocate_new_port()
                .build();
            let _ = self.swarm.dial(dial);
        }
    }

    fn is_blocked(&self, peer: &PeerId) -> bool {
        self.banned.contains(peer) || self.operator_blocked.contains(peer)
    }

    /// Makes the operator's block list `peers`.
    fn block(&mut self, peers: Vec<PeerId>) -> Result<(), NetworkError> {
        if peers.len() > MAX_BLOCKED {
            return Err(NetworkError::Invalid(format!(
                "at most {MAX_BLOCKED} peers can be blocked"
            )));
        }
        let wanted: HashSet<PeerId> = peers.into_iter().collect();
        let list = &mut self.swarm.behaviour_mut().blocked;
        for peer in self.operator_blocked.difference(&wanted) {
            if !self.banned.contains(peer) {
                list.unblock_peer(*peer);
            }
        }
        for peer in &wanted {
            list.block_peer(*peer);
        }
        if wanted != self.operator_blocked {
            tracing::info!(
                blocked = wanted.len(),
                "the operator's peer block list changed"
            );
        }
        self.operator_blocked = wanted;
        Ok(())
    }

    fn command(&mut self, command: Command) {
        match command {
            Command::Subscribe(topic, reply) => {
                let ident = IdentTopic::new(topic.name(self.chain));
                self.topics.insert(ident.hash(), topic);
                let result = self
                    .swarm
                    .behaviour_mut()
                    .gossipsub
                    .subscribe(&ident)
                    .map(|_| ())
                    .map_err(|e| NetworkError::Publish(e.to_string()));
                let _ = reply.send(result);
            }
            Command::Publish(topic, data, reply) => {
                let ident = IdentTopic::new(topic.name(self.chain));
                let result = self
                    .swarm
                    .behaviour_mut()
                    .gossipsub
                    .publish(ident, data)
                    .map(|_| ())
                    .map_err(|e| NetworkError::Publish(e.to_string()));
                let _ = reply.send(result);
            }
            Command::Report(id, source, verdict) => {
                let acceptance = match verdict {
                    Verdict::Accept => MessageAcceptance::Accept,
                    Verdict::Reject => MessageAcceptance::Reject,
                    Verdict::Ignore => MessageAcceptance::Ignore,
                };
                self.swarm
                    .behaviour_mut()
                    .gossipsub
                    .report_message_validation_result(&id, &source, acceptance);
                if verdict == Verdict::Reject {
                    self.penalize(source);
                }
            }
            Command::Request(peer, data, reply) => {
                let id = self
                    .swarm
                    .behaviour_mut()
                    .requests
                    .send_request(&peer, data);
                self.requests.insert(id, reply);
            }
            Command::Respond(id, data) => {
                if let Some((channel, _)) = self.responses.remove(&id) {
                    let _ = self
                        .swarm
                        .behaviour_mut()
                        .requests
                        .send_response(channel, data);
                }
                self.inbound.retain(|_, pending| *pending != id);
            }
            Command::Penalize(peer) => self.penalize(peer),
            Command::Dial(address) => {
                if let Err(e) = self.swarm.dial(dial_from_new_port(&address)) {
                    tracing::warn!(%address, %e, "cannot dial");
                }
            }
            Command::Listening(reply) => {
                let _ = reply.send(self.listening.clone());
            }
            Command::Block(peers, reply) => {
                let _ = reply.send(self.block(peers));
            }
            Command::Reserve(peers) => {
                for peer in peers {
                    if self.reserved.len() >= MAX_RESERVED {
                        break;
                    }
                    if self.reserved.insert(peer) {
                        self.swarm
                            .behaviour_mut()
                            .gossipsub
                            .add_explicit_peer(&peer);
                    }
                }
            }
            Command::Info(reply) => {
                let _ = reply.send(PeerInfo {
                    connected: self.accepted.keys().copied().collect(),
                    banned: self.banned.len(),
                    blocked: self.operator_blocked.iter().copied().collect(),
                });
            }
        }
    }

    /// Scores `peer` down; at [`BAN_SCORE`] it is disconnected and banned.
    fn penalize(&mut self, peer: PeerId) {
        if self.scores.len() >= MAX_BANNED && !self.scores.contains_key(&peer) {
            // Bounded: forget the scores of peers no longer connected (a
            // peer that reconnects after that starts again from 0).
            let connected: HashSet<PeerId> = self.swarm.connected_peers().copied().collect();
            self.scores.retain(|p, _| connected.contains(p));
        }
        let score = self.scores.entry(peer).or_insert(0);
        *score -= PENALTY;
        if *score <= BAN_SCORE && self.banned.insert(peer) {
            tracing::warn!(%peer, "peer banned: it sent invalid data");
            self.banned_order.push_back(peer);
            if self.banned_order.len() > MAX_BANNED {
                if let Some(oldest) = self.banned_order.pop_front() {
                    self.banned.remove(&oldest);
                    if !self.operator_blocked.contains(&oldest) {
                        self.swarm.behaviour_mut().blocked.unblock_peer(oldest);
                    }
                }
            }
            self.scores.remove(&peer);
            // Closes its connections and refuses new ones at once.
            self.swarm.behaviour_mut().blocked.block_peer(peer);
        }
    }

    /// Hands `event` to the node without ever waiting: when the node is
    /// behind (the queue is full by count or by bytes), the event is
    /// dropped (gossip is then ignored).
    fn emit(&mut self, event: NetworkEvent) -> bool {
        self.events.try_send(event)
    }

    fn swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::NewListenAddr { address, .. } => self.listening.push(address),
            // Blocked and banned peers never get here: the block list
            // refuses their connections.
            SwarmEvent::ConnectionEstablished {
                peer_id,
                connection_id,
                ..
            } => {
                if !self.reserved.contains(&peer_id) {
                    if self.strangers.len() >= self.max_strangers {
                        // The strangers' slots are full: the reserved
                        // room is for validators only.
                        tracing::debug!(peer = %peer_id, "connection refused: no slot for strangers");
                        self.refused.insert(connection_id);
                        self.swarm.close_connection(connection_id);
                        return;
                    }
                    self.strangers.insert(connection_id);
                }
                let open = self.accepted.entry(peer_id).or_insert(0);
                *open += 1;
                if *open == 1 {
                    self.emit(NetworkEvent::Connected(peer_id));
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                connection_id,
                ..
            } => {
                self.strangers.remove(&connection_id);
                if self.refused.remove(&connection_id) {
                    return;
                }
                let last = match self.accepted.get_mut(&peer_id) {
                    Some(open) => {
                        *open -= 1;
                        *open == 0
                    }
                    None => false,
                };
                if last {
                    self.accepted.remove(&peer_id);
                    self.emit(NetworkEvent::Disconnected(peer_id));
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            })) => {
                let topic = self.topics.get(&message.topic).copied();
                let accepted = match topic {
                    Some(topic) => self.emit(NetworkEvent::Gossip {
                        topic,
                        source: propagation_source,
                        id: message_id.clone(),
                        data: message.data,
                    }),
                    None => false,
                };
                if !accepted {
                    self.swarm
                        .behaviour_mut()
                        .gossipsub
                        .report_message_validation_result(
                            &message_id,
                            &propagation_source,
                            MessageAcceptance::Ignore,
                        );
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Requests(event)) => self.request_event(event),
            // A peer whose gossip queue overflowed has read nothing for a
            // long while (a broken link that never errored, or a stuck
            // stream): its connections are closed, so that both sides dial
            // a fresh one (bootnodes every REDIAL_INTERVAL) instead of
            // sending into a stream that never drains.
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(gossipsub::Event::SlowPeer {
                peer_id,
                failed_messages,
            })) => {
                tracing::warn!(
                    peer = %peer_id,
                    dropped = failed_messages.priority + failed_messages.non_priority,
                    "peer reads no gossip (its queue is full): closing its connections to start afresh"
                );
                let _ = self.swarm.disconnect_peer_id(peer_id);
            }
            // A connection whose pings time out carries nothing: close it
            // (libp2p does not), and the peer is dialed again.
            SwarmEvent::Behaviour(BehaviourEvent::Ping(ping::Event {
                peer,
                connection,
                result: Err(error),
            })) => {
                tracing::warn!(%peer, %error, "ping failed: closing the connection");
                self.swarm.close_connection(connection);
            }
            _ => {}
        }
    }

    fn request_event(&mut self, event: request_response::Event<Vec<u8>, Vec<u8>>) {
        match event {
            request_response::Event::Message { peer, message, .. } => match message {
                request_response::Message::Request {
                    request,
                    channel,
                    request_id,
                } => {
                    let from_peer = self.responses.values().filter(|(_, p)| *p == peer).count();
                    if self.banned.contains(&peer)
                        || self.responses.len() >= MAX_PENDING_RESPONSES
                        || from_peer >= MAX_PENDING_PER_PEER
                    {
                        return;
                    }
                    let id = self.next_response;
                    self.next_response += 1;
                    if self.emit(NetworkEvent::Request {
                        peer,
                        id,
                        data: request,
                    }) {
                        self.responses.insert(id, (channel, peer));
                        self.inbound.insert(request_id, id);
                    }
                }
                request_response::Message::Response {
                    request_id,
                    response,
                } => {
                    if let Some(reply) = self.requests.remove(&request_id) {
                        let _ = reply.send(Ok(response));
                    }
                }
            },
            request_response::Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                if let Some(reply) = self.requests.remove(&request_id) {
                    let _ = reply.send(Err(NetworkError::Request {
                        peer,
                        reason: error.to_string(),
                    }));
                }
            }
            request_response::Event::InboundFailure {
                peer,
                error,
                request_id,
                ..
            } => {
                // The requester gave up (or the stream broke) before the
                // node answered: free its slot.
                if let Some(id) = self.inbound.remove(&request_id) {
                    self.responses.remove(&id);
                }
                tracing::debug!(%peer, %error, "inbound request failed");
            }
            request_response::Event::ResponseSent { request_id, .. } => {
                self.inbound.remove(&request_id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(source: Option<PeerId>, sequence: u64, data: &[u8]) -> gossipsub::Message {
        gossipsub::Message {
            source,
            data: data.to_vec(),
            sequence_number: Some(sequence),
            topic: gossipsub::TopicHash::from_raw("t"),
        }
    }

    #[test]
    fn a_message_id_binds_author_number_topic_and_data() {
        let (a, b) = (PeerId::random(), PeerId::random());
        let id = message_id(&message(Some(a), 7, b"vote"));
        assert_eq!(id, message_id(&message(Some(a), 7, b"vote")));
        // Published again (a new number): a new message.
        assert_ne!(id, message_id(&message(Some(a), 8, b"vote")));
        // A forgery under the same author and number: another id, so the
        // real message is not taken for one already seen.
        assert_ne!(id, message_id(&message(Some(a), 7, b"fake")));
        assert_ne!(id, message_id(&message(Some(b), 7, b"vote")));
        assert_ne!(id, message_id(&message(None, 7, b"vote")));
        let mut other_topic = message(Some(a), 7, b"vote");
        other_topic.topic = gossipsub::TopicHash::from_raw("u");
        assert_ne!(id, message_id(&other_topic));
    }
}
