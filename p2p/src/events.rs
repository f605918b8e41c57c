//! The queues of [`NetworkEvent`]s from the swarm task to the node, each
//! bounded by count and by the bytes its messages hold: a peer sending the
//! largest messages while the node is behind fills one to `queue_bytes`,
//! not to `queue` times the largest message. Consensus gossip has a lane
//! of its own that the node drains first, so bulk traffic (requests,
//! transaction gossip) can neither crowd it out nor delay it.

use crate::service::NetworkEvent;
use crate::topics::Topic;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::mpsc;

/// Which of the two queues an event waits in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Lane {
    /// Consensus gossip (proposals, votes, certificates, header votes) and
    /// connection changes: small in number, and what keeps the chain
    /// moving.
    Consensus,
    /// Everything else: transaction gossip and requests (sync, receipts,
    /// snapshots, pushes), which any peer can send in bulk.
    Bulk,
}

impl Lane {
    fn of(event: &NetworkEvent) -> Lane {
        match event {
            NetworkEvent::Gossip {
                topic: Topic::Proposals | Topic::Votes | Topic::HeaderVotes,
                ..
            }
            | NetworkEvent::Connected(_)
            | NetworkEvent::Disconnected(_) => Lane::Consensus,
            NetworkEvent::Gossip { .. } | NetworkEvent::Request { .. } => Lane::Bulk,
        }
    }
}

/// The node's end of the queues.
#[derive(Debug)]
pub struct Events {
    consensus: mpsc::Receiver<(NetworkEvent, usize)>,
    bulk: mpsc::Receiver<(NetworkEvent, usize)>,
    queued: Arc<[AtomicUsize; 2]>,
}

impl Events {
    /// The next event, consensus events first: a flood of requests or
    /// transaction gossip never holds a vote back. None once the network
    /// has stopped.
    pub async fn recv(&mut self) -> Option<NetworkEvent> {
        let (event, bytes) = tokio::select! {
            biased;
            Some(got) = self.consensus.recv() => got,
            Some(got) = self.bulk.recv() => got,
            else => return None,
        };
        self.queued[lane_index(Lane::of(&event))].fetch_sub(bytes, Ordering::AcqRel);
        Some(event)
    }

    /// Bytes of the messages waiting in both queues.
    pub fn queued_bytes(&self) -> usize {
        self.queued.iter().map(|q| q.load(Ordering::Acquire)).sum()
    }
}

fn lane_index(lane: Lane) -> usize {
    match lane {
        Lane::Consensus => 0,
        Lane::Bulk => 1,
    }
}

/// The swarm task's end of the queues.
pub(crate) struct EventSender {
    consensus: mpsc::Sender<(NetworkEvent, usize)>,
    bulk: mpsc::Sender<(NetworkEvent, usize)>,
    queued: Arc<[AtomicUsize; 2]>,
    max_bytes: usize,
}

impl EventSender {
    /// Queues `event` in its lane without waiting; false (and the event
    /// dropped) when that lane holds `count` events, or its bytes would
    /// pass `max_bytes` (an event reaching an empty lane always fits).
    /// A full bulk lane never drops a consensus event.
    pub(crate) fn try_send(&self, event: NetworkEvent) -> bool {
        let bytes = match &event {
            NetworkEvent::Gossip { data, .. } | NetworkEvent::Request { data, .. } => data.len(),
            NetworkEvent::Connected(_) | NetworkEvent::Disconnected(_) => 0,
        };
        let lane = Lane::of(&event);
        let (sender, queued) = match lane {
            Lane::Consensus => (&self.consensus, &self.queued[0]),
            Lane::Bulk => (&self.bulk, &self.queued[1]),
        };
        // Only this task adds, so the check and the add cannot race with
        // another send; the node only takes away.
        let held = queued.load(Ordering::Acquire);
        if held > 0 && held.saturating_add(bytes) > self.max_bytes {
            return false;
        }
        queued.fetch_add(bytes, Ordering::AcqRel);
        if sender.try_send((event, bytes)).is_err() {
            queued.fetch_sub(bytes, Ordering::AcqRel);
            return false;
        }
        true
    }
}

/// Two queues (consensus and bulk) of at most `count` events holding at
/// most `max_bytes` of messages each.
pub(crate) fn channel(count: usize, max_bytes: usize) -> (EventSender, Events) {
    let (consensus, consensus_rx) = mpsc::channel(count);
    let (bulk, bulk_rx) = mpsc::channel(count);
    let queued = Arc::new([AtomicUsize::new(0), AtomicUsize::new(0)]);
    (
        EventSender {
            consensus,
            bulk,
            queued: Arc::clone(&queued),
            max_bytes,
        },
        Events {
            consensus: consensus_rx,
            bulk: bulk_rx,
            queued,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use libp2p::PeerId;

    fn request(bytes: usize) -> NetworkEvent {
        NetworkEvent::Request {
            peer: PeerId::random(),
            id: 0,
            data: vec![0; bytes],
        }
    }

    fn vote(bytes: usize) -> NetworkEvent {
        NetworkEvent::Gossip {
            topic: Topic::Votes,
            source: PeerId::random(),
            id: libp2p::gossipsub::MessageId::new(b"vote"),
            data: vec![1; bytes],
        }
    }

    #[tokio::test]
    async fn the_queue_is_bounded_by_bytes_and_by_count() {
        let (sender, mut events) = channel(4, 100);
        // The first event fits an empty queue whatever its size.
        assert!(sender.try_send(request(150)));
        assert!(!sender.try_send(request(1)));
        assert_eq!(events.queued_bytes(), 150);
        assert!(events.recv().await.is_some());
        assert_eq!(events.queued_bytes(), 0);
        assert!(sender.try_send(request(60)));
        assert!(sender.try_send(request(40)));
        assert!(!sender.try_send(request(1)), "past the byte bound");
        assert!(sender.try_send(request(0)));
        assert!(sender.try_send(request(0)));
        assert!(!sender.try_send(request(0)), "past the count bound");
        assert_eq!(events.queued_bytes(), 100);
        while events.queued_bytes() > 0 {
            events.recv().await.expect("an event");
        }
        assert!(sender.try_send(request(100)));
    }

    /// Regression (hostile peers): with one queue, a peer flooding
    /// requests filled it and votes were dropped behind them. Votes now
    /// have a lane of their own, and come out first.
    #[tokio::test]
    async fn a_flood_of_requests_neither_drops_nor_delays_a_vote() {
        let (sender, mut events) = channel(4, 100);
        while sender.try_send(request(10)) {}
        assert!(sender.try_send(NetworkEvent::Connected(PeerId::random())));
        assert!(sender.try_send(vote(50)), "the consensus lane has room");
        assert!(matches!(
            events.recv().await,
            Some(NetworkEvent::Connected(_))
        ));
        assert!(matches!(
            events.recv().await,
            Some(NetworkEvent::Gossip {
                topic: Topic::Votes,
                ..
            })
        ));
        assert!(matches!(
            events.recv().await,
            Some(NetworkEvent::Request { .. })
        ));
        // The consensus lane has its own bounds.
        while sender.try_send(vote(40)) {}
        assert!(events.queued_bytes() <= 200);
    }
}
