//! Serving `Sync` requests from stored final blocks, off the consensus
//! engine's task.
//!
//! Answering a `Sync` below the machine's final height means reading up to
//! [`MAX_SYNC`] blocks from the store and encoding them again: work any
//! peer can ask for. On the engine's task it would hold votes back, so the
//! engine hands such requests to [`SyncServer`], a task of its own with a
//! bounded queue that reads one answer at a time on a blocking thread and
//! gives each peer a rate ([`PER_PEER_PER_SECOND`], bursts of
//! [`PER_PEER_BURST`]). A request over its peer's rate, or one that finds
//! the queue full, is answered with no messages at once: the asker tries
//! again (its machine asks again on its next certificate from ahead), and
//! nothing waits on it.

use atoll_consensus::simplex::{machine::MAX_SYNC, FinalBlock, Message};
use atoll_p2p::{Handle, PeerId};
use atoll_primitives::codec;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::mpsc;

/// Sync requests waiting to be served.
pub const SYNC_QUEUE: usize = 64;
/// Requests a peer may make at once before its rate applies.
pub const PER_PEER_BURST: f64 = 16.0;
/// Requests per second a peer is served after its burst.
pub const PER_PEER_PER_SECOND: f64 = 8.0;
/// Peers whose rate is remembered; past it the one idle longest is forgotten.
const MAX_RATED_PEERS: usize = 1024;

/// Final blocks this validator stored, read off the engine's task.
pub trait Archive: Send + Sync + 'static {
    /// Stored final blocks from `from` on, at most `max` of them and about
    /// `max_bytes` in all.
    fn stored(&self, from: u64, max: usize, max_bytes: usize) -> Vec<FinalBlock>;
}

/// One `Sync` to answer from the store.
struct Ask {
    peer: PeerId,
    id: u64,
    from: u64,
}

/// The engine's handle on the sync server.
pub struct SyncServer {
    queue: mpsc::Sender<Ask>,
}

impl SyncServer {
    /// Starts the server on the current tokio runtime: answers go out on
    /// `network`, at most `limit` bytes each.
    pub fn start(archive: Arc<dyn Archive>, network: Handle, limit: usize) -> SyncServer {
        let (queue, asks) = mpsc::channel(SYNC_QUEUE);
        tokio::spawn(serve(archive, network, limit, asks));
        SyncServer { queue }
    }

    /// Queues `peer`'s request `id` for blocks from `from`; false when the
    /// queue is full (the caller answers with nothing).
    pub fn try_serve(&self, peer: PeerId, id: u64, from: u64) -> bool {
        self.queue.try_send(Ask { peer, id, from }).is_ok()
    }
}

async fn serve(
    archive: Arc<dyn Archive>,
    network: Handle,
    limit: usize,
    mut asks: mpsc::Receiver<Ask>,
) {
    let mut rates = Rates::default();
    while let Some(Ask { peer, id, from }) = asks.recv().await {
        if !rates.allow(peer, Instant::now()) {
            tracing::debug!(target: "consensus", %peer, "sync request over its peer's rate: answered with nothing");
            network.respond(id, encode_within(Vec::new(), limit)).await;
            continue;
        }
        let archive = Arc::clone(&archive);
        let answer = tokio::task::spawn_blocking(move || {
            let stored = archive.stored(from, MAX_SYNC, limit / 2);
            encode_within(
                stored.iter().flat_map(FinalBlock::messages).collect(),
                limit,
            )
        })
        .await
        .unwrap_or_else(|_| encode_within(Vec::new(), limit));
        network.respond(id, answer).await;
    }
}

/// `replies` encoded, cut to what fits in `limit` bytes.
pub fn encode_within(mut replies: Vec<Message>, limit: usize) -> Vec<u8> {
    loop {
        let bytes = codec::encode(&replies);
        if bytes.len() <= limit || replies.is_empty() {
            return bytes;
        }
        replies.truncate(replies.len() / 2);
    }
}

/// A token bucket per peer.
#[derive(Default)]
struct Rates {
    buckets: HashMap<PeerId, (f64, Instant)>,
}

impl Rates {
    /// Whether `peer` may be served at `now` (and takes a token if so).
    fn allow(&mut self, peer: PeerId, now: Instant) -> bool {
        if !self.buckets.contains_key(&peer) && self.buckets.len() >= MAX_RATED_PEERS {
            let idle = self
                .buckets
                .iter()
                .min_by_key(|(_, (_, at))| *at)
                .map(|(p, _)| *p);
            if let Some(idle) = idle {
                self.buckets.remove(&idle);
            }
        }
        let (tokens, at) = self.buckets.entry(peer).or_insert((PER_PEER_BURST, now));
        let refill = now.saturating_duration_since(*at).as_secs_f64() * PER_PEER_PER_SECOND;
        *tokens = (*tokens + refill).min(PER_PEER_BURST);
        *at = now;
        if *tokens < 1.0 {
            return false;
        }
        *tokens -= 1.0;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_peer_gets_its_burst_then_its_rate() {
        let mut rates = Rates::default();
        let (peer, other) = (PeerId::random(), PeerId::random());
        let start = Instant::now();
        let served = (0..100).filter(|_| rates.allow(peer, start)).count();
        assert_eq!(served, PER_PEER_BURST as usize);
        // Another peer is not held back by the first.
        assert!(rates.allow(other, start));
        // One second later: the rate's worth again.
        let later = start + Duration::from_secs(1);
        let served = (0..100).filter(|_| rates.allow(peer, later)).count();
        assert_eq!(served, PER_PEER_PER_SECOND as usize);
    }

    #[test]
    fn rates_are_kept_for_a_bounded_number_of_peers() {
        let mut rates = Rates::default();
        let now = Instant::now();
        for _ in 0..MAX_RATED_PEERS + 10 {
            rates.allow(PeerId::random(), now);
        }
        assert_eq!(rates.buckets.len(), MAX_RATED_PEERS);
    }

    #[test]
    fn answers_are_cut_to_the_limit() {
        let replies = vec![Message::Sync(1); 1000];
        let bytes = encode_within(replies, 100);
        assert!(bytes.len() <= 100);
        let messages: Vec<Message> = codec::decode("replies", &bytes, 100).expect("decodes");
        assert!(!messages.is_empty());
    }
}
