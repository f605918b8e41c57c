//! Real swarms on loopback: gossip is forwarded only once the receiving
//! node accepts it, a peer that keeps sending invalid messages is banned,
//! and requests get answers within the size limit.
#![allow(clippy::unwrap_used, missing_docs)]

use atoll_p2p::{start, Events, Handle, Multiaddr, NetworkEvent, P2pConfig, Topic, Verdict};
use std::time::Duration;
use tokio::time::timeout;

const CHAIN: u64 = 31;

async fn node(seed: u8, bootnode: Option<Multiaddr>, limit: usize) -> (Handle, Events, Multiaddr) {
    let mut config = P2pConfig::new(CHAIN, [seed; 32], "/ip4/127.0.0.1/tcp/0".parse().unwrap());
    config.bootnodes = bootnode.into_iter().collect();
    config.max_message_bytes = limit;
    let (handle, events) = start(config).unwrap();
    handle.subscribe(Topic::Votes).await.unwrap();
    let address = loop {
        if let Some(address) = handle.listening().await.unwrap().into_iter().next() {
            break address;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let address: Multiaddr = format!("{address}/p2p/{}", handle.peer_id())
        .parse()
        .unwrap();
    (handle, events, address)
}

/// Publishes until a peer is subscribed (gossipsub refuses a message no one
/// would get).
async fn publish(handle: &Handle, data: &[u8]) {
    for _ in 0..200 {
        if handle.publish(Topic::Votes, data.to_vec()).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("never published");
}

/// The next gossip message, answering requests and skipping other events.
async fn next_gossip(
    events: &mut Events,
    wait: Duration,
) -> Option<(Vec<u8>, atoll_p2p::MessageId, atoll_p2p::PeerId)> {
    timeout(wait, async {
        loop {
            match events.recv().await? {
                NetworkEvent::Gossip {
                    data, id, source, ..
                } => return Some((data, id, source)),
                _ => continue,
            }
        }
    })
    .await
    .ok()
    .flatten()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gossip_is_forwarded_only_when_accepted_and_bad_senders_are_banned() {
    let (a, mut a_events, a_address) = node(1, None, 64 * 1024).await;
    let (b, mut b_events, _) = node(2, Some(a_address.clone()), 64 * 1024).await;
    let (c, _c_events, _) = node(3, Some(a_address), 64 * 1024).await;
    // Give the meshes a heartbeat or two to form.
    tokio::time::sleep(Duration::from_secs(2)).await;

    // A valid message from C reaches A, which accepts it and forwards it to B.
    publish(&c, b"good").await;
    let (data, id, source) = next_gossip(&mut a_events, Duration::from_secs(10))
        .await
        .expect("A got it");
    assert_eq!(data, b"good");
    assert_eq!(source, c.peer_id());
    a.report(id, source, Verdict::Accept).await;
    let (data, id, source) = next_gossip(&mut b_events, Duration::from_secs(10))
        .await
        .expect("B got it through A");
    assert_eq!(data, b"good");
    b.report(id, source, Verdict::Accept).await;

    // An invalid one is rejected by A and never reaches B.
    publish(&c, b"bad 0").await;
    let (data, id, source) = next_gossip(&mut a_events, Duration::from_secs(10))
        .await
        .expect("A got it");
    assert_eq!(data, b"bad 0");
    a.report(id, source, Verdict::Reject).await;
    assert!(
        next_gossip(&mut b_events, Duration::from_secs(2))
            .await
            .is_none(),
        "B must not get a message A rejected"
    );

    // C keeps sending invalid messages: A scores it down and bans it.
    for i in 1..10 {
        if !a.peers().await.unwrap().contains(&c.peer_id()) {
            break;
        }
        let _ = c
            .publish(Topic::Votes, format!("bad {i}").into_bytes())
            .await;
        if let Some((_, id, source)) = next_gossip(&mut a_events, Duration::from_secs(5)).await {
            a.report(id, source, Verdict::Reject).await;
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !a.peers().await.unwrap().contains(&c.peer_id()),
        "C was not banned"
    );
    assert!(a.peers().await.unwrap().contains(&b.peer_id()), "B stays");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_are_answered_within_the_size_limit() {
    let (a, mut a_events, a_address) = node(4, None, 1024).await;
    let (b, _b_events, _) = node(5, Some(a_address), 1024).await;
    // A answers every request with its length.
    tokio::spawn(async move {
        while let Some(event) = a_events.recv().await {
            if let NetworkEvent::Request { id, data, .. } = event {
                a.respond(id, data.len().to_string().into_bytes()).await;
            }
        }
    });
    let peer = loop {
        if let Some(peer) = b.peers().await.unwrap().into_iter().next() {
            break peer;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let answer = b.request(peer, vec![7; 100]).await.unwrap();
    assert_eq!(answer, b"100");
    // Over the limit: refused before it is sent, and A never sees it.
    assert!(b.request(peer, vec![7; 2000]).await.is_err());
    // The connection survives for the next one.
    assert_eq!(b.request(peer, vec![7; 10]).await.unwrap(), b"10");
}

async fn connected(handle: &Handle, peer: atoll_p2p::PeerId) -> bool {
    handle.peers().await.unwrap().contains(&peer)
}

async fn wait_for(what: &str, mut check: impl AsyncFnMut() -> bool) {
    for _ in 0..200 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out: {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocked_peers_are_cut_off_and_bootnodes_are_redialed_when_unblocked() {
    let (a, _a_events, a_address) = node(6, None, 1024).await;
    let (b, _b_events, _) = node(7, Some(a_address), 1024).await;
    wait_for("B connects to A", async || connected(&b, a.peer_id()).await).await;

    // A blocks B: the connection closes, and B's redials are refused.
    a.block(vec![b.peer_id()]).await.unwrap();
    wait_for("A drops B", async || !connected(&a, b.peer_id()).await).await;
    tokio::time::sleep(atoll_p2p::service::REDIAL_INTERVAL * 2).await;
    assert!(
        !connected(&a, b.peer_id()).await,
        "a blocked peer got back in"
    );
    let info = a.info().await.unwrap();
    assert_eq!(info.blocked, vec![b.peer_id()]);
    assert_eq!(info.banned, 0);

    // Unblocked: B dials its bootnode again by itself.
    a.block(Vec::new()).await.unwrap();
    wait_for("B reconnects", async || connected(&a, b.peer_id()).await).await;
    assert!(a.info().await.unwrap().blocked.is_empty());

    // Too long a list is refused and changes nothing.
    let many = (0..=atoll_p2p::service::MAX_BLOCKED)
        .map(|_| atoll_p2p::PeerId::random())
        .collect();
    assert!(a.block(many).await.is_err());
    assert!(connected(&a, b.peer_id()).await);
}

/// Regression (hostile peers): strangers filling every connection slot kept
/// validators out. Reserved peers now always get in, and strangers are held
/// to `max_connections`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strangers_filling_the_slots_do_not_keep_a_validator_out() {
    let validator_seed = 90;
    let mut config = P2pConfig::new(CHAIN, [80; 32], "/ip4/127.0.0.1/tcp/0".parse().unwrap());
    config.max_connections = 2;
    config.reserved = vec![atoll_p2p::peer_id_of([validator_seed; 32])];
    let (a, _a_events) = start(config).unwrap();
    let a_address: Multiaddr = loop {
        if let Some(address) = a.listening().await.unwrap().into_iter().next() {
            break format!("{address}/p2p/{}", a.peer_id()).parse().unwrap();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let mut strangers = Vec::new();
    for seed in 81..85 {
        strangers.push(node(seed, Some(a_address.clone()), 64 * 1024).await);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let connected = a.info().await.unwrap().connected;
    assert!(connected.len() <= 2, "{} strangers got in", connected.len());
    let (validator, _v_events, _) = node(validator_seed, Some(a_address), 64 * 1024).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let connected = a.info().await.unwrap().connected;
        if connected.contains(&validator.peer_id()) {
            assert!(connected.len() <= 3);
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the validator never got a connection: {connected:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
