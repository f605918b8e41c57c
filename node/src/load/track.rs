//! When each generated transaction was sent, seen final and, across
//! shards, seen credited: the tracker and the task that follows the
//! node's final blocks.

use super::routes::Routes;
use crate::rpc::api::AtollApiClient;
use crate::rpc::types::{parse_hash, BlockRef};
use ahash::RandomState;
use atoll_primitives::Hash;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often the generator asks the node for new final blocks.
pub const POLL: Duration = Duration::from_millis(20);

/// Send times and finality times of the generated transactions.
pub struct Tracker {
    /// Where each hash is in the other fields (a million or more entries in
    /// a long run: hashed with ahash, not SipHash).
    pub index: HashMap<Hash, usize, RandomState>,
    pub sent: Vec<Option<Instant>>,
    pub finalized: Vec<Option<Instant>>,
    pub cross: Vec<bool>,
    /// Receipts of each transaction still to be seen in a final block
    /// before it counts as settled.
    pub legs: Vec<u8>,
    pub settled: Vec<Option<Instant>>,
    /// The beacon height when each was seen final, and when credited.
    pub final_beacon: Vec<u64>,
    pub settled_beacon: Vec<u64>,
}

/// Follows every shard's final blocks from `from[shard] + 1` and records
/// when each generated transaction is first seen final, and when each
/// cross-shard one settled: its last receipt (a transfer's credit, a
/// call's refund) seen applied in a final block. Shards are followed at
/// once, so that on a network with real delays one shard's round trips do
/// not add to another's times.
pub async fn watch_finality(
    routes: Arc<Routes>,
    from: Vec<u64>,
    tracker: Arc<Mutex<Tracker>>,
    final_count: Arc<AtomicU64>,
    settled_count: Arc<AtomicU64>,
) {
    let counts = (&*final_count, &*settled_count);
    let shards = from
        .into_iter()
        .enumerate()
        .map(|(index, from)| watch_shard(&routes, index, from, &tracker, counts));
    futures::future::join_all(shards).await;
}

async fn watch_shard(
    routes: &Routes,
    index: usize,
    mut next: u64,
    tracker: &Mutex<Tracker>,
    (final_count, settled_count): (&AtomicU64, &AtomicU64),
) {
    loop {
        tokio::time::sleep(POLL).await;
        let route = routes.route(index);
        let client = routes.client(index);
        let Ok(status) = client.status().await else {
            continue;
        };
        let Some(shard) = status.shards.get(index) else {
            continue;
        };
        if !shard.tracked {
            routes.moved(index, route);
            continue;
        }
        while next < shard.final_height {
            let Ok(block) = client
                .get_block(shard.shard, BlockRef::Height(next + 1))
                .await
            else {
                break;
            };
            let seen = Instant::now();
            let mut tracker = tracker.lock();
            let (mut finals, mut settled) = (0, 0);
            for hash in &block.transactions {
                let Ok(hash) = parse_hash(hash) else { continue };
                if let Some(&i) = tracker.index.get(&hash) {
                    if tracker.finalized[i].is_none() {
                        tracker.finalized[i] = Some(seen);
                        tracker.final_beacon[i] = status.beacon.height;
                        finals += 1;
                    }
                }
            }
            for incoming in &block.incoming {
                let Ok(hash) = parse_hash(&incoming.origin) else {
                    continue;
                };
                if let Some(&i) = tracker.index.get(&hash) {
                    tracker.legs[i] = tracker.legs[i].saturating_sub(1);
                    if tracker.settled[i].is_none() && tracker.legs[i] == 0 {
                        tracker.settled[i] = Some(seen);
                        tracker.settled_beacon[i] = status.beacon.height;
                        settled += 1;
                    }
                }
            }
            final_count.fetch_add(finals, Ordering::Relaxed);
            settled_count.fetch_add(settled, Ordering::Relaxed);
            next += 1;
        }
    }
}
