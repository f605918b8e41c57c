//! A shard's block producer: every `block.interval` (or as soon as a full
//! block is waiting) it takes the ready transactions out of the mempool and
//! the receipts that wait for this shard in the relay, credits the receipts
//! and executes the transactions, commits them as one block, and tells the
//! head watchers, the clients waiting for inclusion, the metrics, the log
//! (one line) and the coordinator, which makes the block final.

use crate::service::common::clock::now_ms;
use crate::service::common::committed::{block_span, finish};
use crate::service::common::handoff::Committed;
use crate::service::common::selection::hold_back;
use crate::service::common::shared::Shared;
use atoll_config::BlockConfig;
use atoll_primitives::ShardId;
use atoll_shard::relay::ReceiptRelay;
use atoll_shard::ShardChain;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A block for waiting receipts comes at most this many times per
/// `block.interval`.
pub const RECEIPT_BLOCKS_PER_INTERVAL: u32 = 4;

/// Produces blocks until the node stops. A storage error stops production
/// (the node cannot go on without its store) and is logged; the node then
/// shuts down.
pub fn run(shared: &Shared, mut chain: ShardChain, config: &BlockConfig) {
    let max = shared.max_block_transactions;
    let mut next_block = Instant::now() + config.interval;
    // A block goes out before the interval is up when a full block is
    // waiting: right after a full block, or once a block's worth of new
    // transactions arrived since the last one. (Counting new arrivals, not
    // the pool's size, keeps a pool full of not-yet-ready transactions from
    // spinning out empty blocks.)
    // How many transactions the last block took if it was full.
    let mut last_full: Option<usize> = None;
    let mut pool_after_last: usize = 0;
    // Receipts from other shards get a block sooner than the interval, but
    // not sooner than this after the last block: a credit then lands about
    // as soon as its source block is final, and a busy stream of receipts
    // makes at most a few blocks per interval. Only while blocks are cheap
    // (the last one took less than the gap): near the node's limit the
    // extra blocks' fixed costs (two synced writes each) would cut
    // throughput, and blocks come back-to-back anyway.
    let receipt_gap = config.interval / RECEIPT_BLOCKS_PER_INTERVAL;
    let mut last_started = Instant::now();
    let mut last_took = Duration::ZERO;
    loop {
        {
            let mut pool = shared.mempool.lock();
            let early = |len: usize| {
                last_full.is_some_and(|taken| len >= taken.clamp(1, max))
                    || len >= pool_after_last.saturating_add(max)
            };
            loop {
                let now = Instant::now();
                if shared.is_stopping() || early(pool.len()) || now >= next_block {
                    break;
                }
                let receipts_due = last_started + receipt_gap;
                let receipts_waiting =
                    last_took < receipt_gap && shared.relay.backlog(shared.shard) > 0;
                if receipts_waiting && now >= receipts_due {
                    break;
                }
                let until = if receipts_waiting {
                    receipts_due.min(next_block)
                } else {
                    next_block
                };
                // Woken by admission (a full block's worth), the
                // coordinator (receipts published for this shard) or the
                // deadline; the conditions are checked again either way.
                let _ = shared.wake.wait_until(&mut pool, until);
            }
        }
        if shared.is_stopping() {
            tracing::info!(target: "producer", height = chain.head().height, "block production stopped");
            return;
        }
        let started = Instant::now();
        last_started = started;
        match produce(shared, &mut chain, config) {
            Ok(full) => {
                last_took = started.elapsed();
                last_full = full;
                pool_after_last = shared.mempool.lock().len();
                next_block = started + config.interval;
            }
            Err(err) => {
                tracing::error!(target: "producer", %err, "block production failed; the node stops");
                shared
                    .stopping
                    .store(true, std::sync::atomic::Ordering::Release);
                return;
            }
        }
    }
}

/// Builds, commits and announces one block. Returns how many transactions
/// it took if it was full (by count or by gas).
fn produce(
    shared: &Shared,
    chain: &mut ShardChain,
    config: &BlockConfig,
) -> anyhow::Result<Option<usize>> {
    let _span = block_span(shared.shard, chain.head().height + 1).entered();
    let started = Instant::now();
    let max_txs = config.max_transactions.get();
    // Receipts first, then the epoch: the relay holds only receipts of
    // blocks the beacon recorded, so the epoch read after them is at least
    // the epoch of every source block (a block applies nothing sent under a
    // newer map than its own).
    let incoming = shared
        .relay
        .pending(shared.shard, &chain.inbox_cursors(), shared.max_incoming);
    let (epoch, map) = {
        let beacon = shared.beacon.read();
        (beacon.epoch(), Arc::clone(beacon.map()))
    };
    let mut moved_away = Vec::new();
    if !Arc::ptr_eq(&map, chain.shard_map()) && *map != **chain.shard_map() {
        // The block enters an epoch with a new map: the accounts leaving
        // this shard can no longer send here. Their waiting transactions
        // are dropped (their clients hear so and send again; the RPC routes
        // them to the new shard once their state has arrived there).
        let mut pool = shared.mempool.lock();
        for (address, from, to) in chain.shard_map().moves(&map) {
            if from == shared.shard {
                tracing::info!(target: "producer", %address, to = to.0, epoch, "account leaves this shard");
                moved_away.extend(pool.prune(address, u64::MAX));
            }
        }
    }
    chain.set_epoch(epoch, Arc::clone(&map));
    let txs = {
        let pool = shared.mempool.lock();
        let state = &shared.state;
        let max_gas = chain.gas_rules().block_gas_limit;
        pool.ready_within_gas(max_txs, config.max_bytes.get(), max_gas, |sender| {
            // A storage error here reads as nonce 0: nothing of the sender's
            // is ready, and the commit below reports the error.
            state.account(sender).map_or(0, |account| account.nonce)
        })
    };
    // Backpressure: this block says whether this shard is congested, and
    // transfers to shards whose newest recorded block says they are wait in
    // the mempool.
    chain.set_congested(shared.relay.congested(shared.shard));
    let blocked: BTreeSet<ShardId> = {
        // A shard's recorded header says whether it is congested; this
        // node's relay knows sooner (it counts what was committed for it and
        // not yet published).
        let beacon = shared.beacon.read();
        (0..shared.layout.shard_count())
            .map(ShardId)
            .filter(|s| {
                *s != shared.shard
                    && (beacon.shard_head(*s).is_some_and(|h| h.congested)
                        || shared.relay.congested(*s))
            })
            .collect()
    };
    // Full by count, or by gas: a block of contract transactions is full
    // once the gas limits left no room for another (within a tenth).
    let gas: u64 = txs
        .iter()
        .filter_map(|tx| tx.tx().terms.action.gas_limit())
        .sum();
    let gas_limit = chain.gas_rules().block_gas_limit;
    let full = txs.len() >= max_txs || gas >= gas_limit - gas_limit / 10;
    let count = txs.len();
    let txs = if blocked.is_empty() {
        txs
    } else {
        hold_back(txs, &map, &blocked)
    };
    // The beacon is locked per lookup, never across the block: the
    // coordinator must be able to record other shards' blocks meanwhile.
    let produced = chain.produce_block_with_receipts(
        txs,
        incoming,
        |source, height| shared.beacon.read().final_header(source, height).cloned(),
        now_ms(),
    )?;
    finish(
        shared,
        chain,
        &produced,
        produced.block.body.incoming.len(),
        &moved_away,
        started,
    );
    // The coordinator makes it final. If it is gone the node is stopping.
    let _ = shared.committed.send(Committed::from(produced));
    Ok(full.then_some(count))
}
