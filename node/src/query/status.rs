//! What `status` shows: each shard's heads, the mempools, the beacon, the
//! validators and consensus.

use super::view::NodeView;
use atoll_config::GenesisValidator;
use atoll_primitives::{ShardBlockHeader, ShardId};
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// One shard as this validator sees it.
#[derive(Clone, Debug)]
pub struct ShardSummary {
    /// The shard.
    pub shard: ShardId,
    /// Its newest committed header.
    pub head: Arc<ShardBlockHeader>,
    /// Its newest final height.
    pub final_height: u64,
    /// Whether this validator stores and executes it now.
    pub tracked: bool,
    /// The height of its newest header the beacon recorded.
    pub recorded_height: u64,
}

/// The beacon: its height, epoch and shard map.
#[derive(Clone, Copy, Debug)]
pub struct BeaconSummary {
    /// Its height.
    pub height: u64,
    /// The current epoch.
    pub epoch: u64,
    /// Beacon heights per epoch.
    pub epoch_length: u64,
    /// The shard map's version.
    pub map_version: u64,
    /// Accounts the map moved off their address range's shard.
    pub moved_accounts: usize,
}

impl NodeView {
    /// Every shard, by number.
    pub fn shards(&self) -> Vec<ShardSummary> {
        self.shards
            .iter()
            .map(|shard| {
                let heads = shard.heads.borrow().clone();
                ShardSummary {
                    shard: shard.shard,
                    head: heads.head,
                    final_height: heads.final_height,
                    tracked: shard.tracked.load(Ordering::Acquire),
                    recorded_height: shard
                        .beacon
                        .read()
                        .shard_head(shard.shard)
                        .map_or(0, |h| h.height),
                }
            })
            .collect()
    }

    /// Transactions and bytes in every shard's mempool.
    pub fn mempool_size(&self) -> (usize, usize) {
        self.shards.iter().fold((0, 0), |(txs, bytes), shard| {
            let pool = shard.mempool.lock();
            (txs + pool.len(), bytes + pool.bytes())
        })
    }

    /// The beacon.
    pub fn beacon(&self) -> BeaconSummary {
        let beacon = self.any().beacon.read();
        BeaconSummary {
            height: beacon.height(),
            epoch: beacon.epoch(),
            epoch_length: beacon.epoch_length(),
            map_version: beacon.map().version,
            moved_accounts: beacon.map().overrides().len(),
        }
    }

    /// The chain's gas rules (block gas limit, base fee).
    pub fn gas(&self) -> atoll_primitives::GasRules {
        self.any().gas
    }

    /// The genesis validators.
    pub fn validators(&self) -> &[GenesisValidator] {
        &self.any().validators
    }

    /// How blocks become final, in words.
    pub fn finality(&self) -> &'static str {
        self.any().finality.describe()
    }
}
