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
use atoll_primitives::{Address, ShardBlockHeader, ShardId, ShardMap, StateKey, StateValue};
use atoll_shard::relay::ReceiptRelay;
use atoll_shard::signatures::VerifiedTx;
use atoll_shard::{ProducedBlock, ShardChain};
use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

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
            tracing::info!(height = chain.head().height, "block production stopped");
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
                tracing::error!(%err, "block production failed; the node stops");
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
                tracing::info!(%address, to = to.0, epoch, "account leaves this shard");
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
        .filter_map(|tx| tx.tx().signed.tx.action.gas_limit())
        .sum();
    let gas_limit = chain.gas_rules().block_gas_limit;
    let full = txs.len() >= max_txs || gas >= gas_limit - gas_limit / 10;
    let count = txs.len();
    let txs = if blocked.is_empty() {
        txs
    } else {
        hold_back(txs, &map, &blocked)
    };
    let credited = incoming.len();
    // The beacon is locked per lookup, never across the block: the
    // coordinator must be able to record other shards' blocks meanwhile.
    let produced = chain.produce_block_with_receipts(
        txs,
        incoming,
        |source, height| shared.beacon.read().final_header(source, height).cloned(),
        now_ms(),
    )?;
    finish(shared, chain, &produced, credited, &moved_away, started);
    // The coordinator makes it final. If it is gone the node is stopping.
    let _ = shared.committed.send(Committed::from(produced));
    Ok(full.then_some(count))
}

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
    shared.waiters.reached(hashes, WaitUntil::Included);
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

/// `txs` without the transfers to a `blocked` shard, and without every later
/// transaction of a sender that had one held back (its nonces must stay in
/// order). What is left out stays in the mempool for a later block.
pub fn hold_back(
    txs: Vec<VerifiedTx>,
    map: &ShardMap,
    blocked: &BTreeSet<ShardId>,
) -> Vec<VerifiedTx> {
    let mut held: HashSet<Address> = HashSet::new();
    txs.into_iter()
        .filter(|tx| {
            let to_blocked = tx
                .signed
                .tx
                .action
                .recipient()
                .is_some_and(|to| blocked.contains(&map.shard_of(to)));
            if held.contains(&tx.sender) || to_blocked {
                held.insert(tx.sender);
                false
            } else {
                true
            }
        })
        .collect()
}

/// The API's view of a header.
pub fn head_info(header: &ShardBlockHeader, is_final: bool) -> HeadInfo {
    HeadInfo {
        shard: header.shard.0,
        height: header.height,
        hash: hex_hash(&header.hash()),
        parent: hex_hash(&header.parent),
        timestamp_ms: header.timestamp_ms,
        epoch: header.epoch,
        congested: header.congested,
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

#[cfg(test)]
mod tests {
    use super::*;
    use atoll_primitives::{Action, ChainId, ShardLayout, Transaction};
    use atoll_shard::execution::PreparedTx;
    use atoll_shard::workload::dev_keys;

    #[test]
    fn transfers_to_a_congested_shard_and_what_follows_them_are_held_back() {
        let layout = ShardLayout::uniform(2).expect("2 shards");
        let keys = dev_keys(3, 40);
        let on = |shard: u16| {
            keys.iter()
                .filter(|k| layout.shard_of(&k.address()) == ShardId(shard))
                .collect::<Vec<_>>()
        };
        let (home, away) = (on(0), on(1));
        let tx = |from: &atoll_primitives::KeyPair, nonce: u64, to: Address| {
            let body = Transaction {
                chain_id: ChainId(1),
                sender: from.public(),
                nonce,
                fee: 1,
                action: Action::Transfer { to, amount: 1 },
            };
            VerifiedTx::verify(PreparedTx::new(body.sign(from))).expect("valid")
        };
        let txs = vec![
            tx(home[0], 0, home[1].address()),
            tx(home[0], 1, away[0].address()), // held: to congested shard 1
            tx(home[0], 2, home[1].address()), // held: behind a held nonce
            tx(home[1], 0, home[0].address()),
        ];
        let blocked = BTreeSet::from([ShardId(1)]);
        let kept: Vec<(Address, u64)> = hold_back(txs.clone(), &ShardMap::new(layout), &blocked)
            .iter()
            .map(|t| (t.sender, t.signed.tx.nonce))
            .collect();
        assert_eq!(kept, vec![(home[0].address(), 0), (home[1].address(), 0)]);
        assert_eq!(
            hold_back(txs, &ShardMap::new(layout), &BTreeSet::new()).len(),
            4
        );
    }
}
