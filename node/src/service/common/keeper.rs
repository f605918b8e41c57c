//! The beacon in the node: restored from its store when the node starts,
//! and every beacon block and shard-map change stored before anything acts
//! on it.
//!
//! The beacon store (`<data_dir>/beacon`) holds each beacon block, the
//! newest height it recorded for each shard, and the shard schedule. Shard
//! stores and the beacon store are separate RocksDB instances, so a crash
//! can leave shard blocks committed that no stored beacon block records:
//! on start they are recorded in a catch-up beacon block (with one
//! validator every committed shard block is final).
//!
//! The beacon keeps the newest recorded headers of each shard in memory;
//! [`Recorded`] finds older ones in the store, so a shard that catches up
//! after a long time still proves the receipts of old source blocks.

use super::clock::now_ms;
use anyhow::{bail, Context};
use atoll_consensus::{Beacon, BeaconBlock, ShardSchedule};
use atoll_primitives::shard_map::MapError;
use atoll_primitives::{codec, Address, ChainId, ShardBlockHeader, ShardId, ShardLayout};
use atoll_shard::ShardChain;
use atoll_storage::BeaconStore;
use parking_lot::{Mutex, RwLock};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Shard headers per catch-up beacon block (a few hundred bytes each, far
/// below [`atoll_consensus::beacon::MAX_BEACON_BLOCK_BYTES`]).
const CATCH_UP_HEADERS: usize = 4_096;

/// The beacon's state, shared with producers and the RPC, and its store.
pub struct BeaconKeeper {
    /// The beacon's state. Locked briefly; never across a store write.
    pub state: Arc<RwLock<Beacon>>,
    /// The store (the consensus log lives here too).
    pub store: BeaconStore,
    /// Held from taking a snapshot of the state to writing it, so stored
    /// snapshots are written in the order they were taken.
    persist: Mutex<()>,
    /// With several validators: the moves this validator's operator asked
    /// for, waiting to be carried by a payload it proposes (at most
    /// [`MAX_ASKED_MOVES`]; kept in memory only: a move asked for and not
    /// yet final is asked for again after a restart).
    asked: Mutex<Vec<(Address, ShardId)>>,
}

/// Most moves an operator may have waiting for a payload at once.
pub const MAX_ASKED_MOVES: usize = 64;

/// A move that was scheduled.
#[derive(Clone, Copy, Debug)]
pub struct ScheduledMove {
    /// The account's shard now.
    pub from: ShardId,
    /// The epoch from which it is on its new shard.
    pub effective_epoch: u64,
    /// The current epoch.
    pub current_epoch: u64,
    /// The beacon height at which that epoch starts.
    pub effective_height: u64,
    /// The version of the map that holds the move.
    pub map_version: u64,
}

impl BeaconKeeper {
    /// Restores the beacon from `store` and the shards' stores and, with
    /// `catch_up` (one validator), records the shard blocks committed after
    /// the newest stored beacon block. With several validators a shard
    /// block is final only through its consensus block: the replica
    /// finishes the interrupted step instead.
    pub fn restore(
        chains: &[ShardChain],
        store: BeaconStore,
        chain_id: ChainId,
        layout: ShardLayout,
        epoch_length: u64,
        catch_up: bool,
    ) -> anyhow::Result<BeaconKeeper> {
        let head = match store.head()? {
            Some(height) => {
                let bytes = store.block(height)?.with_context(|| {
                    format!("the beacon store has no block at its head {height}")
                })?;
                Some(BeaconBlock::decode(&bytes).context("the beacon store's head block")?)
            }
            None => None,
        };
        let schedule = match store.schedule()? {
            Some(bytes) => {
                Some(ShardSchedule::decode(&bytes).context("the beacon store's shard schedule")?)
            }
            None => None,
        };
        index_recorded_headers(&store)?;
        let recorded: BTreeMap<ShardId, u64> = store.recorded()?.into_iter().collect();
        let mut kept = Vec::new();
        let mut unrecorded = Vec::new();
        if !catch_up {
            // With several validators a shard's store may be behind what the
            // beacon recorded (the shard is another committee's): the
            // recorded headers come from the beacon blocks themselves.
            kept = recorded_headers(&store, chains, &recorded)?;
        }
        for chain in chains.iter().filter(|_| catch_up) {
            let shard = chain.head().shard;
            let head_height = chain.head().height;
            let last = recorded.get(&shard).copied().unwrap_or(0);
            if last > head_height {
                bail!(
                    "the beacon store records shard {shard} up to height {last}, but the shard's \
                     store ends at height {head_height}: the data directory is inconsistent; \
                     restore it from a backup or start from a fresh one"
                );
            }
            let from = last.saturating_sub(atoll_consensus::beacon::RETAINED_HEADERS as u64 - 1);
            kept.push(headers(chain, from, last)?);
            unrecorded.extend(headers(chain, last + 1, head_height)?);
        }
        let beacon = Beacon::restore(
            chain_id,
            layout,
            epoch_length,
            head.as_ref(),
            schedule,
            kept,
        );
        if beacon.schedule().first_epoch() > beacon.epoch() {
            bail!(
                "the beacon store's shard schedule starts at epoch {}, after the current epoch {}: \
                 the store is damaged",
                beacon.schedule().first_epoch(),
                beacon.epoch()
            );
        }
        let keeper = BeaconKeeper {
            state: Arc::new(RwLock::new(beacon)),
            store,
            persist: Mutex::new(()),
            asked: Mutex::new(Vec::new()),
        };
        if catch_up && !unrecorded.is_empty() {
            // A beacon block lost in the crash may have moved the epoch on,
            // and shard blocks made after it carry the new epoch: let the
            // beacon reach it first.
            let newest = unrecorded.iter().map(|h| h.epoch).max().unwrap_or(0);
            while keeper.state.read().epoch() < newest {
                keeper.record(Vec::new())?;
            }
            // In chunks, so no beacon block outgrows what a restart reads
            // back. Sorted by (shard, height), every chunk continues each
            // shard's chain where the one before stopped.
            unrecorded.sort_by_key(|h| (h.shard, h.height));
            let count = unrecorded.len();
            let mut height = 0;
            for chunk in unrecorded.chunks(CATCH_UP_HEADERS) {
                height = keeper.record(chunk.to_vec())?.height;
            }
            tracing::info!(
                target: "beacon",
                height,
                headers = count,
                "recorded the shard blocks committed after the last stored beacon block"
            );
        }
        Ok(keeper)
    }

    /// The recorded header of `shard` at `height`, from memory or the
    /// store.
    pub fn final_header(&self, shard: ShardId, height: u64) -> Option<ShardBlockHeader> {
        let beacon = self.state.read();
        Recorded {
            beacon: &beacon,
            store: &self.store,
        }
        .final_header(shard, height)
        .map(Cow::into_owned)
    }

    /// Makes the next beacon block from `headers` and stores it. Only then
    /// may anything treat those shard blocks as final.
    pub fn record(&self, headers: Vec<ShardBlockHeader>) -> anyhow::Result<BeaconBlock> {
        self.record_at(headers, now_ms(), None, &[])
    }

    /// As [`BeaconKeeper::record`], at `timestamp_ms`, for the consensus
    /// block `executed` whose payload the shards executed (with several
    /// validators: every validator makes the same beacon block from it),
    /// then schedules the payload's `moves` in order, each from the epoch
    /// after the new block's. A move the schedule refuses is skipped; the
    /// schedule depends only on the final blocks, so every validator
    /// skips the same. The schedule is stored with the block.
    pub fn record_at(
        &self,
        headers: Vec<ShardBlockHeader>,
        timestamp_ms: u64,
        executed: Option<(u64, atoll_primitives::Hash)>,
        moves: &[(Address, ShardId)],
    ) -> anyhow::Result<BeaconBlock> {
        let _order = self.persist.lock();
        let (block, recorded, schedule) = {
            let mut beacon = self.state.write();
            let block = beacon.propose(headers, timestamp_ms)?;
            for (address, to) in moves {
                let from = beacon.shard_of(address);
                match beacon.schedule_move(*address, *to) {
                    Ok(epoch) => tracing::info!(
                        target: "beacon",
                        %address,
                        from = from.0,
                        to = to.0,
                        epoch,
                        height = block.height,
                        "account move agreed"
                    ),
                    Err(refused) => tracing::warn!(
                        target: "beacon",
                        %address,
                        to = to.0,
                        height = block.height,
                        %refused,
                        "a final block asked for a move the schedule refuses; skipped"
                    ),
                }
            }
            (block, beacon.recorded(), beacon.schedule().encode())
        };
        let bytes = codec::encode(&block);
        if bytes.len() > atoll_consensus::beacon::MAX_BEACON_BLOCK_BYTES {
            bail!(
                "beacon block {} is {} bytes, more than a restart would read back ({})",
                block.height,
                bytes.len(),
                atoll_consensus::beacon::MAX_BEACON_BLOCK_BYTES
            );
        }
        self.store
            .append(
                block.height,
                &block.hash(),
                &bytes,
                &block.shard_headers,
                &recorded,
                &schedule,
                executed,
            )
            .context("cannot store the beacon block")?;
        if !moves.is_empty() {
            self.asked.lock().retain(|asked| !moves.contains(asked));
        }
        Ok(block)
    }

    /// With several validators: queues the move of `address` to shard `to`
    /// for the payloads this validator proposes. It takes effect from the
    /// epoch after the one in which a block carrying it is final. Refused
    /// now if the schedule would refuse it now, if a move of `address` is
    /// already waiting, or if [`MAX_ASKED_MOVES`] are.
    pub fn ask_move(&self, address: Address, to: ShardId) -> anyhow::Result<()> {
        self.state
            .read()
            .planned_move(address, to)
            .map_err(MoveError::Map)?;
        let mut asked = self.asked.lock();
        if asked.iter().any(|(waiting, _)| *waiting == address) {
            bail!(MoveError::Waiting(format!(
                "a move of {address} is already waiting for this validator's next proposal"
            )));
        }
        if asked.len() >= MAX_ASKED_MOVES {
            bail!(MoveError::Waiting(format!(
                "{MAX_ASKED_MOVES} moves are already waiting for this validator's next \
                 proposals; ask again once they are final"
            )));
        }
        asked.push((address, to));
        Ok(())
    }

    /// The move of `address` (then on shard `from`) to shard `to`, if the
    /// schedule now holds it from an epoch after `since`: what an operator
    /// who asked for it in epoch `since` waits for.
    pub fn agreed_move(
        &self,
        (address, from, to): (Address, ShardId, ShardId),
        since: u64,
    ) -> Option<ScheduledMove> {
        let beacon = self.state.read();
        let schedule = beacon.schedule();
        (since + 1..=beacon.epoch() + 1).find_map(|epoch| {
            let map = schedule.map_at(epoch);
            (map.shard_of(&address) == to).then(|| ScheduledMove {
                from,
                effective_epoch: epoch,
                current_epoch: beacon.epoch(),
                effective_height: epoch * beacon.epoch_length(),
                map_version: map.version,
            })
        })
    }

    /// The asked moves for a payload this validator proposes, at most
    /// `max`, oldest first. Those the schedule now refuses (another move of
    /// the account became final first) are dropped.
    pub fn moves_to_propose(&self, max: usize) -> Vec<(Address, ShardId)> {
        let beacon = self.state.read();
        let mut asked = self.asked.lock();
        asked.retain(|(address, to)| match beacon.planned_move(*address, *to) {
            Ok(_) => true,
            Err(refused) => {
                tracing::warn!(target: "beacon", %address, to = to.0, %refused, "an asked move is no longer possible; dropped");
                false
            }
        });
        asked.iter().take(max).copied().collect()
    }

    /// Moves `address` to shard `to` from the next epoch on. The new
    /// schedule is stored first and only then taken: a move that could not
    /// be stored changes nothing.
    pub fn schedule_move(&self, address: Address, to: ShardId) -> anyhow::Result<ScheduledMove> {
        // Held until the schedule is taken: no beacon block (which could
        // change the epoch) comes in between.
        let _order = self.persist.lock();
        let (scheduled, schedule) = {
            let beacon = self.state.read();
            let (effective_epoch, schedule) =
                beacon.planned_move(address, to).map_err(MoveError::Map)?;
            let scheduled = ScheduledMove {
                from: beacon.shard_of(&address),
                effective_epoch,
                current_epoch: beacon.epoch(),
                effective_height: effective_epoch * beacon.epoch_length(),
                map_version: schedule.map_at(effective_epoch).version,
            };
            (scheduled, schedule)
        };
        self.store
            .put_schedule(&schedule.encode())
            .context("cannot store the shard schedule")?;
        self.state.write().adopt_schedule(schedule);
        Ok(scheduled)
    }
}

/// Where recorded (so final) shard headers are found.
pub trait FinalHeaders {
    /// The recorded header of `shard` at `height`, if recorded.
    fn final_header(&self, shard: ShardId, height: u64) -> Option<Cow<'_, ShardBlockHeader>>;
}

impl FinalHeaders for Beacon {
    /// Only the newest headers the beacon keeps in memory.
    fn final_header(&self, shard: ShardId, height: u64) -> Option<Cow<'_, ShardBlockHeader>> {
        Beacon::final_header(self, shard, height).map(Cow::Borrowed)
    }
}

/// Every recorded header: the beacon's newest, older ones from its store.
pub struct Recorded<'a> {
    /// The beacon.
    pub beacon: &'a Beacon,
    /// Its store.
    pub store: &'a BeaconStore,
}

impl FinalHeaders for Recorded<'_> {
    fn final_header(&self, shard: ShardId, height: u64) -> Option<Cow<'_, ShardBlockHeader>> {
        if let Some(header) = self.beacon.final_header(shard, height) {
            return Some(Cow::Borrowed(header));
        }
        // Only below what the beacon recorded: the store may be a block
        // ahead of the state while a beacon block is being made.
        if height > self.beacon.shard_head(shard)?.height {
            return None;
        }
        match self.store.recorded_header(shard, height) {
            Ok(header) => header.map(Cow::Owned),
            Err(err) => {
                tracing::error!(target: "beacon", %err, shard = %shard, height, "cannot read a recorded header");
                None
            }
        }
    }
}

/// Indexes the recorded headers of beacon blocks stored before the store
/// kept an index (a store from an older atoll), once.
fn index_recorded_headers(store: &BeaconStore) -> anyhow::Result<()> {
    let head = store.head()?.unwrap_or(0);
    let from = store.indexed_to()? + 1;
    if from > head {
        return Ok(());
    }
    tracing::info!(
        target: "beacon",
        from,
        to = head,
        "indexing the recorded shard headers of the beacon store"
    );
    for height in from..=head {
        let block = stored_block(store, height)?;
        store.index_headers(height, &block.hash(), &block.shard_headers)?;
    }
    Ok(())
}

/// Beacon block `height`, from `store`.
pub fn stored_block(store: &BeaconStore, height: u64) -> anyhow::Result<BeaconBlock> {
    let bytes = store
        .block(height)?
        .with_context(|| format!("the beacon store has no block {height}"))?;
    BeaconBlock::decode(&bytes)
        .with_context(|| format!("the stored beacon block {height} is damaged"))
}

/// A move refused.
#[derive(Debug, thiserror::Error)]
pub enum MoveError {
    /// The schedule refused it.
    #[error(transparent)]
    Map(#[from] MapError),
    /// This validator holds too many, or one of the account's, already.
    #[error("{0}")]
    Waiting(String),
}

/// The newest recorded headers of every shard (up to
/// [`RETAINED_HEADERS`](atoll_consensus::beacon::RETAINED_HEADERS) each),
/// read from the beacon blocks back from the head, oldest first; a shard
/// recorded back to its first block starts with its genesis header.
fn recorded_headers(
    store: &BeaconStore,
    chains: &[ShardChain],
    recorded: &BTreeMap<ShardId, u64>,
) -> anyhow::Result<Vec<Vec<ShardBlockHeader>>> {
    let keep = atoll_consensus::beacon::RETAINED_HEADERS;
    let mut lists: Vec<Vec<ShardBlockHeader>> = vec![Vec::new(); chains.len()];
    let mut height = store.head()?.unwrap_or(0);
    let full = |lists: &[Vec<ShardBlockHeader>]| lists.iter().all(|l| l.len() >= keep);
    while height > 0 && !full(&lists) {
        let block = stored_block(store, height)?;
        for header in block.shard_headers.into_iter().rev() {
            if let Some(list) = lists.get_mut(usize::from(header.shard.0)) {
                if list.len() < keep {
                    list.push(header);
                }
            }
        }
        height -= 1;
    }
    for (list, chain) in lists.iter_mut().zip(chains) {
        list.reverse();
        let shard = chain.head().shard;
        let first = list.first().map_or(1, |h| h.height);
        if first <= 1 && list.len() < keep {
            list.insert(0, headers(chain, 0, 0)?.remove(0));
        }
        let newest = list.last().map_or(0, |h| h.height);
        if newest != recorded.get(&shard).copied().unwrap_or(0) {
            bail!(
                "the beacon store records shard {shard} up to height {}, but its blocks end at \
                 {newest}: the store is damaged",
                recorded.get(&shard).copied().unwrap_or(0)
            );
        }
    }
    Ok(lists)
}

fn headers(chain: &ShardChain, from: u64, to: u64) -> anyhow::Result<Vec<ShardBlockHeader>> {
    let mut headers = Vec::new();
    for height in from..=to {
        let header = chain.store().header(height)?.with_context(|| {
            format!(
                "shard {} has no header at height {height}",
                chain.head().shard
            )
        })?;
        headers.push(header);
    }
    Ok(headers)
}
