//! The network of atoll validators, on rust-libp2p.
//!
//! One task owns the libp2p `Swarm` ([`start`]); the node talks to it through
//! a cloneable [`Handle`] over one bounded queue, and hears from it through a
//! stream of [`NetworkEvent`]s ([`Events`]) bounded by count and by bytes
//! (the task never waits on the node: when the node falls behind, gossip is
//! dropped as ignored).
//!
//! - **Transport**: TCP with noise and yamux; identify and ping.
//! - **Gossip** (gossipsub, signed messages): topics named
//!   `/atoll/<chain-id>/<beacon|shard-N>/<kind>/<version>` ([`Topic`]).
//!   Every message is held until the node validates it and reports a
//!   [`Verdict`]: accepted messages are forwarded, rejected ones are dropped
//!   and score their sender down (gossipsub's own score too), ignored ones
//!   are dropped.
//! - **Requests** (request-response): length-prefixed bytes, for sync and
//!   receipts with proofs.
//! - **Bounds**: every message, request and response has a size limit (fit
//!   for the largest valid block), connections are limited in total and per
//!   peer, inbound requests waiting for an answer are bounded, and so are
//!   the bytes of the events waiting for the node (256 MiB by default).
//! - **Scoring**: a peer loses [`service::PENALTY`] for each invalid message
//!   or response; at [`service::BAN_SCORE`] it is disconnected and refused
//!   at connection time (as are the peers the operator blocks).
//! - **Redial**: bootnodes that are not connected are dialed again every
//!   [`service::REDIAL_INTERVAL`], so a restart or a healed partition
//!   reconnects by itself.

pub mod events;
pub mod framing;
pub mod service;
pub mod topics;

pub use events::Events;
pub use libp2p::gossipsub::MessageId;
pub use libp2p::{Multiaddr, PeerId};
pub use service::{
    peer_id_of, start, Handle, NetworkError, NetworkEvent, P2pConfig, PeerInfo, Verdict,
};
pub use topics::Topic;
