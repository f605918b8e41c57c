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
        let handle = self.node.network()?;
        tokio::time::timeout(Duration::from_secs(1), handle.info())
            .await
            .ok()?
            .ok()
    }

    pub(super) fn node_status(&self, peers: Option<atoll_p2p::PeerInfo>) -> Status {
        let (transactions, bytes) = self.node.mempool_size();
        let shards = self
            .node
            .shards()
            .into_iter()
            .map(|shard| ShardStatus {
                shard: shard.shard.0,
                head_height: shard.head.height,
                head_hash: hex_hash(&shard.head.hash()),
                final_height: shard.final_height,
                tracked: shard.tracked,
                recorded_height: shard.recorded_height,
            })
            .collect();
        let beacon = self.node.beacon();
        Status {
            chain_id: self.node.chain_id().0,
            version: env!("CARGO_PKG_VERSION").into(),
            finality: self.node.finality().into(),
            shards,
            validators: self
                .node
                .validators()
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
            beacon: BeaconStatus {
                height: beacon.height,
                epoch: beacon.epoch,
                epoch_length: beacon.epoch_length,
                map_version: beacon.map_version,
                moved_accounts: beacon.moved_accounts,
            },
            consensus: self.node.consensus().map(|c| {
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
