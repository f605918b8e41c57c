//! A shard's block producer: every `block.interval` (or as soon as a full
//! block is waiting) it takes the ready transactions out of the mempool and
//! the receipts that wait for this shard in the relay, credits the receipts
//! and executes the transactions, commits them as one block, and tells the
//! head watchers, the clients waiting for inclusion, the metrics, the log
//! (one line) and the coordinator, which makes the block final.

use super::coordinator::Committed;
use super::Shared;
use crate::metrics::Metrics;
use crate::rpc::types::{hex_hash, HeadInfo, WaitUntil};
use atoll_config::BlockConfig;
use atoll_primitives::{ShardBlockHeader, StateKey};
use atoll_shard::relay::ReceiptRelay;
use atoll_shard::{ProducedBlock, ShardChain};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

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
    let mut last_full = false;
    let mut pool_after_last: usize = 0;
    loop {
        {
            let mut pool = shared.mempool.lock();
            let early = |len: usize| {
                (last_full && len >= max) || len >= pool_after_last.saturating_add(max)
            };
            while !shared.is_stopping() && !early(pool.len()) && Instant::now() < next_block {
                if shared.wake.wait_until(&mut pool, next_block).timed_out() {
                    break;
                }
            }
        }
        if shared.is_stopping() {
            tracing::info!(height = chain.head().height, "block production stopped");
            return;
        }
        let started = Instant::now();
        match produce(shared, &mut chain, config) {
            Ok(full) => {
                last_full = full;
                pool_after_last = shared.mempool.lock().len();
                next_block = started + config.interval;
            }
            Err(err) => {
                tracing::error!(%err, "block production failed; the node stops");
                shared
                    .stopping
                    .store(true, std::sync::atomic::Ordering::Release);
                return;
            }
        }
    }
}

/// Builds, commits and announces one block. Returns whether it was full.
fn produce(shared: &Shared, chain: &mut ShardChain, config: &BlockConfig) -> anyhow::Result<bool> {
    let started = Instant::now();
    let max_txs = config.max_transactions.get();
    let txs = {
        let pool = shared.mempool.lock();
        let state = &shared.state;
        pool.ready(max_txs, config.max_bytes.get(), |sender| {
            // A storage error here reads as nonce 0: nothing of the sender's
            // is ready, and the commit below reports the error.
            state
                .account(&StateKey::Account(*sender))
                .ok()
                .flatten()
                .map_or(0, |account| account.nonce)
        })
    };
    let full = txs.len() >= max_txs;
    let incoming = shared
        .relay
        .pending(shared.shard, &chain.inbox_cursors(), super::MAX_INCOMING);
    let credited = incoming.len();
    // The beacon is locked per lookup, never across the block: the
    // coordinator must be able to record other shards' blocks meanwhile.
    let produced = chain.produce_block_with_receipts(
        txs,
        incoming,
        |source, height| shared.beacon.read().final_header(source, height).cloned(),
        now_ms(),
    )?;
    shared
        .relay
        .acknowledge(shared.shard, &chain.inbox_cursors());
    let header = &produced.block.header;
    let hashes = &produced.hashes;
    let mut pruned = Vec::new();
    let displaced;
    {
        let mut pool = shared.mempool.lock();
        displaced = std::mem::take(&mut *shared.displaced.lock());
        for hash in hashes {
            pool.remove_hash(hash);
        }
        // What is left below an account's new nonce can never run: another
        // transaction used its nonce.
        for (key, account) in &produced.output.state_changes {
            let StateKey::Account(address) = key;
            pruned.extend(pool.prune(*address, account.nonce));
        }
        let shard = shared.shard.0;
        Metrics::shard(&shared.metrics.mempool_transactions, shard).set(pool.len() as i64);
        Metrics::shard(&shared.metrics.mempool_bytes, shard).set(pool.bytes() as i64);
    }

    shared
        .heads
        .send_modify(|heads| heads.head = Arc::new(header.clone()));
    shared.waiters.reached(hashes, WaitUntil::Included);
    // After the block's own waiters were answered: a displaced transaction
    // that this block included has no waiter left to tell it was dropped.
    shared.waiters.dropped(displaced.iter().chain(&pruned));
    record(shared, &produced, started.elapsed(), credited);
    // The coordinator makes it final. If it is gone the node is stopping.
    let _ = shared.committed.send(Committed {
        shard: shared.shard,
        header: produced.block.header,
        hashes: produced.hashes,
        receipts: produced.output.receipts,
    });
    Ok(full)
}

fn record(shared: &Shared, produced: &ProducedBlock, took: Duration, credited: usize) {
    let header = &produced.block.header;
    let txs = header.tx_count as u64;
    let metrics = &shared.metrics;
    Metrics::shard(&metrics.block_height, header.shard.0).set(header.height as i64);
    metrics.block_time.observe(took.as_secs_f64());
    metrics.block_transactions.observe(txs as f64);
    metrics.transactions.inc_by(txs);
    metrics
        .reexecutions
        .inc_by(produced.stats.executions.saturating_sub(txs));
    let tps = if took.is_zero() {
        0.0
    } else {
        txs as f64 / took.as_secs_f64()
    };
    tracing::info!(
        shard = header.shard.0,
        height = header.height,
        txs,
        receipts_in = credited,
        receipts_out = produced.output.receipts.len(),
        ms = format!("{:.1}", took.as_secs_f64() * 1e3),
        tps = format!("{tps:.0}"),
        path = ?produced.stats.path,
        "block committed"
    );
}

/// The API's view of a header.
pub fn head_info(header: &ShardBlockHeader, is_final: bool) -> HeadInfo {
    HeadInfo {
        shard: header.shard.0,
        height: header.height,
        hash: hex_hash(&header.hash()),
        parent: hex_hash(&header.parent),
        timestamp_ms: header.timestamp_ms,
        state_root: hex_hash(&header.state_root),
        tx_root: hex_hash(&header.tx_root),
        outcome_root: hex_hash(&header.outcome_root),
        tx_count: header.tx_count,
        burnt_fees: header.burnt_fees.to_string(),
        is_final,
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
