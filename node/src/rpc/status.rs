//! `atoll_status`: heads, finality, mempools, consensus and peers.

use super::server::Rpc;
use super::types::{
    hex_hash, BeaconStatus, ConsensusStatusInfo, MempoolInfo, ShardStatus, Status, ValidatorInfo,
};
use std::sync::atomic::Ordering;
use std::time::Duration;

impl Rpc {
    /// What the network knows of its peers (None: no network, or it did not
    /// answer within a second).
    pub(super) async fn peer_info(&self) -> Option<atoll_p2p::PeerInfo> {
        let handle = self.node.any().consensus.as_ref()?.network.get()?.clone();
        tokio::time::timeout(Duration::from_secs(1), handle.info())
            .await
            .ok()?
            .ok()
    }

    pub(super) fn node_status(&self, peers: Option<atoll_p2p::PeerInfo>) -> Status {
        let any = self.node.any();
        let (mut transactions, mut bytes) = (0, 0);
        let mut shards = Vec::new();
        for shard in &self.node.shards {
            let heads = shard.heads.borrow().clone();
            {
                let pool = shard.mempool.lock();
                transactions += pool.len();
                bytes += pool.bytes();
            }
            shards.push(ShardStatus {
                shard: shard.shard.0,
                head_height: heads.head.height,
                head_hash: hex_hash(&heads.head.hash()),
                final_height: heads.final_height,
                tracked: shard.tracked.load(Ordering::Acquire),
                recorded_height: shard
                    .beacon
                    .read()
                    .shard_head(shard.shard)
                    .map_or(0, |h| h.height),
            });
        }
        Status {
            chain_id: any.chain_id.0,
            version: env!("CARGO_PKG_VERSION").into(),
            finality: any.finality.describe().into(),
            shards,
            validators: any
                .validators
                .iter()
                .map(|v| ValidatorInfo {
                    public_key: format!("0x{}", hex::encode(v.public_key.0)),
                    stake: v.stake,
                })
                .collect(),
            mempool: MempoolInfo {
                transactions,
                bytes,
            },
            beacon: {
                let beacon = any.beacon.read();
                BeaconStatus {
                    height: beacon.height(),
                    epoch: beacon.epoch(),
                    epoch_length: beacon.epoch_length(),
                    map_version: beacon.map().version,
                    moved_accounts: beacon.map().overrides().len(),
                }
            },
            consensus: any.consensus.as_ref().map(|c| {
                let leader = c.status.leader.load(Ordering::Relaxed);
                ConsensusStatusInfo {
                    protocol: "simplex (Chan and Pass, TCC 2023)".into(),
                    validator_index: c.index,
                    peer_id: c.peer_id.get().cloned().unwrap_or_default(),
                    peers: c.status.peers.load(Ordering::Relaxed),
                    height: c.status.height.load(Ordering::Relaxed),
                    leader,
                    leader_key: c
                        .validators
                        .get(leader as usize)
                        .map(|k| format!("0x{}", hex::encode(k.0)))
                        .unwrap_or_default(),
                    final_height: c.status.final_height.load(Ordering::Relaxed),
                    banned_peers: peers.as_ref().map_or(0, |p| p.banned),
                    blocked_peers: peers
                        .as_ref()
                        .map(|p| p.blocked.iter().map(|b| b.to_string()).collect())
                        .unwrap_or_default(),
                    equivocations: c.status.equivocations.load(Ordering::Relaxed),
                }
            }),
        }
    }
}
