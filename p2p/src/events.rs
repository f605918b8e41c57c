//! The queue of [`NetworkEvent`]s from the swarm task to the node, bounded
//! by count and by the bytes its messages hold: a peer sending the largest
//! messages while the node is behind fills it to `queue_bytes`, not to
//! `queue` times the largest message.

use crate::service::NetworkEvent;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::mpsc;

/// The node's end of the queue.
#[derive(Debug)]
pub struct Events {
    receiver: mpsc::Receiver<(NetworkEvent, usize)>,
    queued: Arc<AtomicUsize>,
}

impl Events {
    /// The next event; None once the network has stopped.
    pub async fn recv(&mut self) -> Option<NetworkEvent> {
        let (event, bytes) = self.receiver.recv().await?;
        self.queued.fetch_sub(bytes, Ordering::AcqRel);
        Some(event)
    }

    /// Bytes of the messages waiting in the queue.
    pub fn queued_bytes(&self) -> usize {
        self.queued.load(Ordering::Acquire)
    }
}

/// The swarm task's end of the queue.
pub(crate) struct EventSender {
    sender: mpsc::Sender<(NetworkEvent, usize)>,
    queued: Arc<AtomicUsize>,
    max_bytes: usize,
}

impl EventSender {
    /// Queues `event` without waiting; false (and the event dropped) when
    /// the queue holds `count` events, or its bytes would pass `max_bytes`
    /// (an event reaching an empty queue always fits).
    pub(crate) fn try_send(&self, event: NetworkEvent) -> bool {
        let bytes = match &event {
            NetworkEvent::Gossip { data, .. } | NetworkEvent::Request { data, .. } => data.len(),
            NetworkEvent::Connected(_) | NetworkEvent::Disconnected(_) => 0,
        };
        // Only this task adds, so the check and the add cannot race with
        // another send; the node only takes away.
        let queued = self.queued.load(Ordering::Acquire);
        if queued > 0 && queued.saturating_add(bytes) > self.max_bytes {
            return false;
        }
        self.queued.fetch_add(bytes, Ordering::AcqRel);
        if self.sender.try_send((event, bytes)).is_err() {
            self.queued.fetch_sub(bytes, Ordering::AcqRel);
            return false;
        }
        true
    }
}

/// A queue of at most `count` events holding at most `max_bytes` of
/// messages.
pub(crate) fn channel(count: usize, max_bytes: usize) -> (EventSender, Events) {
    let (sender, receiver) = mpsc::channel(count);
    let queued = Arc::new(AtomicUsize::new(0));
    (
        EventSender {
            sender,
            queued: Arc::clone(&queued),
            max_bytes,
        },
        Events { receiver, queued },
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
        // Events without a message cost no bytes but count.
        assert!(sender.try_send(NetworkEvent::Connected(PeerId::random())));
        assert!(sender.try_send(NetworkEvent::Connected(PeerId::random())));
        assert!(
            !sender.try_send(NetworkEvent::Connected(PeerId::random())),
            "past the count bound"
        );
        assert_eq!(events.queued_bytes(), 100);
        while events.queued_bytes() > 0 {
            events.recv().await.expect("an event");
        }
        assert!(sender.try_send(request(100)));
    }
}
