//! The coordinator: it turns committed shard blocks into beacon blocks and
//! what follows from them.
//!
//! Each producer hands over every block it commits. The coordinator drains
//! what has arrived, makes one beacon block that records those headers and
//! stores it (with one validator a beacon block is final when it is
//! stored), and then, for
//! each recorded block: marks it final for its shard, answers the clients
//! waiting for it to be final, announces it to `newHeads` subscribers, and
//! publishes its receipts to the relay. Receipts the relay refuses (a
//! congested destination) wait, in order, per destination, and are offered
//! again first; other destinations' receipts do not wait behind them.

use crate::service::common::committed::{block_span, mark_final};
use crate::service::common::handoff::Committed;
use crate::service::common::keeper::BeaconKeeper;
use crate::service::common::shared::Shared;
use atoll_primitives::{Receipt, ShardBlockHeader, ShardId};
use atoll_shard::relay::{InProcessRelay, ReceiptRelay};
use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;

/// Runs until the node stops and every producer has finished.
pub fn run(
    shards: &[Arc<Shared>],
    keeper: &BeaconKeeper,
    relay: &InProcessRelay,
    committed: Receiver<Committed>,
    new_heads: &broadcast::Sender<Arc<ShardBlockHeader>>,
    stopping: &AtomicBool,
) {
    // Per destination, so a congested shard holds back only the receipts
    // for it; in order within each (a source's receipts to a destination
    // are published in sequence).
    let mut unpublished: BTreeMap<ShardId, VecDeque<(u64, Vec<Receipt>)>> = BTreeMap::new();
    loop {
        let first = match committed.recv_timeout(Duration::from_millis(100)) {
            Ok(block) => Some(block),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => return,
        };
        let mut batch: Vec<Committed> = first.into_iter().collect();
        batch.extend(committed.try_iter());
        for queue in unpublished.values_mut() {
            while let Some((height, receipts)) = queue.front() {
                if relay.publish(*height, receipts).is_err() {
                    break;
                }
                wake_destinations(shards, receipts);
                queue.pop_front();
            }
        }
        if batch.is_empty() {
            if stopping.load(Ordering::Acquire) {
                return;
            }
            continue;
        }
        let headers = batch.iter().map(|b| b.header.clone()).collect();
        let block = match keeper.record(headers) {
            Ok(block) => block,
            Err(err) => {
                tracing::error!(
                    target: "coordinator",
                    err = format!("{err:#}"),
                    "the beacon could not record the shards' headers; the node stops"
                );
                stopping.store(true, Ordering::Release);
                return;
            }
        };
        if block.height % keeper.state.read().epoch_length() == 0 {
            tracing::info!(
                target: "coordinator",
                height = block.height,
                epoch = block.epoch,
                map_version = block.map_version,
                "a new epoch began"
            );
        }
        tracing::debug!(
            target: "coordinator",
            height = block.height,
            headers = block.shard_headers.len(),
            "beacon block"
        );
        for done in batch {
            let Some(shard) = shards.get(usize::from(done.shard.0)) else {
                continue;
            };
            let height = done.header.height;
            let _span = block_span(done.shard, height).entered();
            mark_final(shard, &done, new_heads);
            let mut by_destination: BTreeMap<ShardId, Vec<Receipt>> = BTreeMap::new();
            for receipt in done.receipts {
                by_destination
                    .entry(receipt.destination)
                    .or_default()
                    .push(receipt);
            }
            for (destination, receipts) in by_destination {
                let queue = unpublished.entry(destination).or_default();
                if queue.is_empty() && relay.publish(height, &receipts).is_ok() {
                    wake_destinations(shards, &receipts);
                    continue;
                }
                queue.push_back((height, receipts));
            }
        }
    }
}

/// Tells the producers of the shards `receipts` go to that receipts wait
/// for them (each may then make a block before its interval is up).
pub(crate) fn wake_destinations(shards: &[Arc<Shared>], receipts: &[Receipt]) {
    let mut woken: Vec<ShardId> = Vec::new();
    for receipt in receipts {
        if woken.contains(&receipt.destination) {
            continue;
        }
        woken.push(receipt.destination);
        if let Some(shard) = shards.get(usize::from(receipt.destination.0)) {
            // Under the pool's lock, so a producer between its check and
            // its wait cannot miss the wake-up.
            let _pool = shard.mempool.lock();
            shard.wake.notify_one();
        }
    }
}
