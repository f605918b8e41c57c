//! The path every committed shard block takes, whoever made it (the lone
//! producer, or the replica executing a final consensus block): what
//! follows its commit ([`finish`]) and what follows its finality
//! ([`mark_final`]).

use super::handoff::Committed;
use super::shared::Shared;
use super::waiters::Stage;
use crate::metrics::Metrics;
use atoll_primitives::{ShardBlockHeader, ShardId, StateKey, StateValue};
use atoll_shard::relay::ReceiptRelay;
use atoll_shard::{ProducedBlock, ShardChain};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::broadcast;

/// What follows a block's commit, wherever its contents came from: the
/// relay hears what it credited and sent, the mempool drops what it
/// included or made stale, and the heads, waiters (included), metrics and
/// log hear of it.
pub fn finish(
    shared: &Shared,
    chain: &ShardChain,
    produced: &ProducedBlock,
    credited: usize,
    moved_away: &[atoll_primitives::Hash],
    started: Instant,
) {
    shared
        .relay
        .acknowledge(shared.shard, &chain.inbox_cursors());
    shared.relay.announce(&produced.output.receipts);
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
        for (key, value) in &produced.output.state_changes {
            if let (StateKey::Account(address), Some(StateValue::Account(account))) = (key, value) {
                pruned.extend(pool.prune(*address, account.nonce));
            }
        }
        let shard = shared.shard.0;
        Metrics::shard(&shared.metrics.mempool_transactions, shard).set(pool.len() as i64);
        Metrics::shard(&shared.metrics.mempool_bytes, shard).set(pool.bytes() as i64);
    }

    *shared.head_map.write() = Arc::clone(chain.shard_map());
    shared
        .heads
        .send_modify(|heads| heads.head = Arc::new(header.clone()));
    shared.waiters.reached(hashes, Stage::Included);
    // After the block's own waiters were answered: a displaced transaction
    // that this block included has no waiter left to tell it was dropped.
    shared
        .waiters
        .dropped(displaced.iter().chain(&pruned).chain(moved_away));
    record(shared, produced, started.elapsed(), credited);
}

impl From<ProducedBlock> for Committed {
    fn from(produced: ProducedBlock) -> Committed {
        Committed {
            shard: produced.block.header.shard,
            header: produced.block.header,
            hashes: produced.hashes,
            receipts: produced.output.receipts,
        }
    }
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
        target: "block",
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

/// The span of shard `shard`'s block `height`: the lines logged while the
/// block is built, executed, committed and made final carry it, so a
/// filter such as `RUST_LOG='info,[block{shard=1}]=debug'` follows one
/// shard's blocks through every component.
pub fn block_span(shard: ShardId, height: u64) -> tracing::Span {
    tracing::info_span!(target: "block", "block", shard = shard.0, height)
}

/// Tells the shard's heads, waiters, metrics and `newHeads` subscribers
/// that `done` is final.
pub fn mark_final(
    shard: &Shared,
    done: &Committed,
    new_heads: &broadcast::Sender<Arc<ShardBlockHeader>>,
) {
    let height = done.header.height;
    shard.heads.send_modify(|heads| {
        heads.final_height = heads.final_height.max(height);
    });
    shard.waiters.reached(&done.hashes, Stage::Final);
    Metrics::shard(&shard.metrics.final_height, done.shard.0).set(height as i64);
    let _ = new_heads.send(Arc::new(done.header.clone()));
}
