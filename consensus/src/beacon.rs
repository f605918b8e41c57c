//! The beacon chain's record of the shards.
//!
//! A [`BeaconBlock`] carries every shard header committed since the parent
//! beacon block, each extending the last one recorded for its shard, so the
//! beacon holds an unbroken chain of headers per shard. A shard block is
//! final when the beacon block that carries its header is final; the
//! destination of a receipt proves it against such a header
//! ([`Beacon::final_header`]). Epochs are `epoch_length` beacon blocks long,
//! and the shard map of each epoch comes from the [`ShardSchedule`].
//!
//! This is the beacon's state machine with no I/O; the node stores every
//! beacon block and the schedule in the beacon's own RocksDB store
//! (`atoll_storage::BeaconStore`) and rebuilds this state from it on start
//! ([`Beacon::restore`]). Today a beacon block is final as soon as it is made
//! (one validator); the network issue puts the BFT decision in between.

use crate::schedule::ShardSchedule;
use atoll_primitives::hash::domain;
use atoll_primitives::shard_map::{MapError, ShardMap};
use atoll_primitives::{
    codec, Address, ChainId, DecodeError, Hash, ShardBlockHeader, ShardId, ShardLayout,
};
use borsh::{BorshDeserialize, BorshSerialize};
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use thiserror::Error;

/// Shard headers kept per shard for receipt proofs. Older ones are dropped:
/// a destination that lags further must fetch the header from the source.
pub const RETAINED_HEADERS: usize = 4096;

/// A beacon block.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct BeaconBlock {
    /// The chain.
    pub chain_id: ChainId,
    /// Height; the first beacon block is 1.
    pub height: u64,
    /// Hash of the parent ([`Hash::ZERO`] for the first).
    pub parent: Hash,
    /// The epoch this block belongs to.
    pub epoch: u64,
    /// Milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
    /// Version of the shard map in force in this epoch.
    pub map_version: u64,
    /// The shard headers committed since the parent, sorted by shard, then
    /// height; each extends the previous header of its shard.
    pub shard_headers: Vec<ShardBlockHeader>,
}

/// The largest encoded beacon block accepted from the store (or, later, a
/// peer): a block carries at most the headers of one coordinator batch.
pub const MAX_BEACON_BLOCK_BYTES: usize = 16 * 1024 * 1024;

impl BeaconBlock {
    /// The block hash.
    pub fn hash(&self) -> Hash {
        Hash::domain(&domain::BEACON_HEADER, &[&codec::encode(self)])
    }

    /// Decodes untrusted bytes.
    pub fn decode(bytes: &[u8]) -> Result<BeaconBlock, DecodeError> {
        codec::decode("beacon block", bytes, MAX_BEACON_BLOCK_BYTES)
    }
}

/// Why a beacon block could not be made. Nothing changed.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum BeaconError {
    /// A header of another chain.
    #[error("shard {shard} header {height} is for chain {got}, not {expected}")]
    WrongChain {
        /// Its shard.
        shard: ShardId,
        /// Its height.
        height: u64,
        /// This chain.
        expected: ChainId,
        /// The header's.
        got: ChainId,
    },
    /// A shard the map does not have.
    #[error("there is no shard {shard}; the chain has {count}")]
    NoSuchShard {
        /// The shard named.
        shard: ShardId,
        /// The number of shards.
        count: u16,
    },
    /// A header from an epoch the beacon has not reached, or before the
    /// epoch of its shard's previous header.
    #[error("shard {shard} header {height} is in epoch {epoch}, outside epochs {low} to {high}")]
    Epoch {
        /// Its shard.
        shard: ShardId,
        /// Its height.
        height: u64,
        /// Its epoch.
        epoch: u64,
        /// The epoch of the shard's previous header.
        low: u64,
        /// The beacon's current epoch.
        high: u64,
    },
    /// A header whose map is not the one of its epoch.
    #[error("shard {shard} header {height} executed under map {got}, not epoch {epoch}'s")]
    WrongMap {
        /// Its shard.
        shard: ShardId,
        /// Its height.
        height: u64,
        /// Its epoch.
        epoch: u64,
        /// The map hash it records.
        got: Hash,
    },
    /// A header that does not extend the last one recorded for its shard.
    #[error("shard {shard} header {height} does not extend the last recorded header (height {last}): {reason}")]
    Broken {
        /// Its shard.
        shard: ShardId,
        /// Its height.
        height: u64,
        /// The last recorded height of the shard.
        last: u64,
        /// What is wrong.
        reason: &'static str,
    },
}

/// The beacon's state: the chain of beacon blocks so far (by its head), the
/// recorded shard headers and the shard schedule.
#[derive(Clone, Debug)]
pub struct Beacon {
    chain_id: ChainId,
    epoch_length: u64,
    height: u64,
    head_hash: Hash,
    schedule: ShardSchedule,
    /// Per shard, the most recent recorded headers, oldest first.
    headers: BTreeMap<ShardId, VecDeque<ShardBlockHeader>>,
}

impl Beacon {
    /// The beacon of a new chain: shards in `layout`, whose genesis headers
    /// (height 0) are `genesis`, and epochs of `epoch_length` blocks.
    pub fn new(
        chain_id: ChainId,
        layout: ShardLayout,
        epoch_length: u64,
        genesis: Vec<ShardBlockHeader>,
    ) -> Beacon {
        let mut headers: BTreeMap<ShardId, VecDeque<ShardBlockHeader>> = BTreeMap::new();
        for header in genesis {
            headers.entry(header.shard).or_default().push_back(header);
        }
        Beacon {
            chain_id,
            epoch_length: epoch_length.max(1),
            height: 0,
            head_hash: Hash::ZERO,
            schedule: ShardSchedule::new(ShardMap::new(layout)),
            headers,
        }
    }

    /// The beacon of a node that restarts: its newest stored beacon block
    /// (`head`, None if there is none yet), its stored `schedule` (None: the
    /// genesis map), and for each shard its headers up to the newest one
    /// the beacon recorded (oldest first, chained; only the newest
    /// [`RETAINED_HEADERS`] are kept).
    pub fn restore(
        chain_id: ChainId,
        layout: ShardLayout,
        epoch_length: u64,
        head: Option<&BeaconBlock>,
        schedule: Option<ShardSchedule>,
        recorded: Vec<Vec<ShardBlockHeader>>,
    ) -> Beacon {
        let mut beacon = Beacon::new(chain_id, layout, epoch_length, Vec::new());
        if let Some(head) = head {
            beacon.height = head.height;
            beacon.head_hash = head.hash();
        }
        if let Some(schedule) = schedule {
            beacon.schedule = schedule;
        }
        for headers in recorded {
            let Some(first) = headers.first() else {
                continue;
            };
            let shard = first.shard;
            let list: VecDeque<ShardBlockHeader> = headers
                .into_iter()
                .rev()
                .take(RETAINED_HEADERS)
                .rev()
                .collect();
            beacon.headers.insert(shard, list);
        }
        beacon
    }

    /// The height of the newest beacon block (0 before the first).
    pub fn height(&self) -> u64 {
        self.height
    }

    /// The epoch of beacon height `height`.
    pub fn epoch_of(&self, height: u64) -> u64 {
        height / self.epoch_length
    }

    /// The current epoch: that of the next beacon block.
    pub fn epoch(&self) -> u64 {
        self.epoch_of(self.height + 1)
    }

    /// The shard of `address` in the current epoch.
    pub fn shard_of(&self, address: &Address) -> ShardId {
        self.schedule.shard_of(address, self.epoch())
    }

    /// The shard schedule.
    pub fn schedule(&self) -> &ShardSchedule {
        &self.schedule
    }

    /// The shard map of the current epoch.
    pub fn map(&self) -> &Arc<ShardMap> {
        self.schedule.map_at(self.epoch())
    }

    /// The epoch length, in beacon blocks.
    pub fn epoch_length(&self) -> u64 {
        self.epoch_length
    }

    /// The newest recorded height of each shard.
    pub fn recorded(&self) -> Vec<(ShardId, u64)> {
        self.headers
            .iter()
            .filter_map(|(shard, list)| Some((*shard, list.back()?.height)))
            .collect()
    }

    /// Moves `address` to shard `to` from the next epoch on; returns that
    /// epoch.
    pub fn schedule_move(&mut self, address: Address, to: ShardId) -> Result<u64, MapError> {
        let (epoch, schedule) = self.planned_move(address, to)?;
        self.schedule = schedule;
        Ok(epoch)
    }

    /// The schedule [`Beacon::schedule_move`] would leave, and the epoch the
    /// move takes effect, without changing anything: a caller can store it
    /// first and then [`Beacon::adopt_schedule`] it.
    pub fn planned_move(
        &self,
        address: Address,
        to: ShardId,
    ) -> Result<(u64, ShardSchedule), MapError> {
        let current = self.epoch();
        let mut schedule = self.schedule.clone();
        schedule.schedule_move(address, to, current, current + 1)?;
        Ok((current + 1, schedule))
    }

    /// Takes `schedule`, made by [`Beacon::planned_move`] since the last
    /// beacon block, as the schedule.
    pub fn adopt_schedule(&mut self, schedule: ShardSchedule) {
        self.schedule = schedule;
    }

    /// The newest recorded header of `shard`.
    pub fn shard_head(&self, shard: ShardId) -> Option<&ShardBlockHeader> {
        self.headers.get(&shard).and_then(|list| list.back())
    }

    /// The recorded (so final) header of `shard` at `height`, if still kept.
    pub fn final_header(&self, shard: ShardId, height: u64) -> Option<&ShardBlockHeader> {
        let list = self.headers.get(&shard)?;
        let first = list.front()?.height;
        let index = usize::try_from(height.checked_sub(first)?).ok()?;
        list.get(index)
    }

    /// Makes the next beacon block from the shard headers committed since
    /// the last one (any order), records them, and returns the block.
    pub fn propose(
        &mut self,
        mut shard_headers: Vec<ShardBlockHeader>,
        timestamp_ms: u64,
    ) -> Result<BeaconBlock, BeaconError> {
        shard_headers.sort_by_key(|h| (h.shard, h.height));
        let count = self.schedule.map_at(self.epoch()).shard_count();
        let epoch = self.epoch();
        // Check everything before recording anything.
        let mut last: BTreeMap<ShardId, (u64, Hash, u64)> = BTreeMap::new();
        let mut map_hashes: Vec<(u64, Option<Hash>)> = Vec::new();
        for header in &shard_headers {
            let shard = header.shard;
            if header.chain_id != self.chain_id {
                return Err(BeaconError::WrongChain {
                    shard,
                    height: header.height,
                    expected: self.chain_id,
                    got: header.chain_id,
                });
            }
            if shard.0 >= count {
                return Err(BeaconError::NoSuchShard { shard, count });
            }
            let (last_height, last_hash, last_epoch) = match last.get(&shard) {
                Some(previous) => *previous,
                None => match self.shard_head(shard) {
                    Some(head) => (head.height, head.hash(), head.epoch),
                    None => {
                        return Err(BeaconError::Broken {
                            shard,
                            height: header.height,
                            last: 0,
                            reason: "the shard's genesis header was never recorded",
                        })
                    }
                },
            };
            let broken = |reason| BeaconError::Broken {
                shard,
                height: header.height,
                last: last_height,
                reason,
            };
            if header.height != last_height + 1 {
                return Err(broken("heights must follow one another"));
            }
            if header.parent != last_hash {
                return Err(broken("its parent is not the last recorded header"));
            }
            if header.epoch < last_epoch || header.epoch > epoch {
                return Err(BeaconError::Epoch {
                    shard,
                    height: header.height,
                    epoch: header.epoch,
                    low: last_epoch,
                    high: epoch,
                });
            }
            // One hash per epoch in the block, not one per header.
            let map_hash = match map_hashes.iter().find(|(e, _)| *e == header.epoch) {
                Some((_, hash)) => *hash,
                None => {
                    let hash = self.schedule.get(header.epoch).map(|map| map.hash());
                    map_hashes.push((header.epoch, hash));
                    hash
                }
            };
            let map_ok = map_hash == Some(header.map_hash);
            if !map_ok {
                return Err(BeaconError::WrongMap {
                    shard,
                    height: header.height,
                    epoch: header.epoch,
                    got: header.map_hash,
                });
            }
            last.insert(shard, (header.height, header.hash(), header.epoch));
        }
        let block = BeaconBlock {
            chain_id: self.chain_id,
            height: self.height + 1,
            parent: self.head_hash,
            epoch: self.epoch(),
            timestamp_ms,
            map_version: self.schedule.map_at(self.epoch()).version,
            shard_headers,
        };
        for header in &block.shard_headers {
            let list = self.headers.entry(header.shard).or_default();
            list.push_back(header.clone());
            while list.len() > RETAINED_HEADERS {
                list.pop_front();
            }
        }
        self.height = block.height;
        self.head_hash = block.hash();
        // Keep the maps any shard may still execute under: from the oldest
        // epoch among the shards' newest recorded headers.
        let oldest = self
            .headers
            .values()
            .filter_map(|list| list.back())
            .map(|h| h.epoch)
            .min()
            .unwrap_or(0)
            .min(self.epoch());
        self.schedule.prune(oldest);
        Ok(block)
    }
}
