//! The operator's methods (served with `--rpc-admin` only): the peer
//! block list and account moves.

use super::error::{self, error, internal, invalid_params};
use super::server::Rpc;
use super::types::MoveInfo;
use atoll_primitives::{Address, ShardId};
use jsonrpsee::core::RpcResult;

/// How long `atoll_moveAccount` waits, with several validators, for a
/// block carrying the move to be final.
pub const MOVE_AGREEMENT_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

impl Rpc {
    /// Refuses an operator's `method` unless `rpc.admin` is on.
    pub(super) fn check_admin(&self, method: &str) -> RpcResult<()> {
        if self.admin {
            return Ok(());
        }
        Err(error(
            error::ADMIN_DISABLED,
            format!(
                "atoll_{method} is an operator's method and this node does not serve them: \
                 set rpc.admin = true in config.toml (only where the RPC port is private)"
            ),
        ))
    }

    pub(super) async fn block_peers(&self, peers: Vec<String>) -> RpcResult<Vec<String>> {
        self.check_admin("setBlockedPeers")?;
        let Some(handle) = self.node.network() else {
            return Err(error(
                error::NO_NETWORK,
                "this node runs alone (one validator in genesis): it has no peers to block",
            ));
        };
        let mut parsed = Vec::with_capacity(peers.len());
        for (i, peer) in peers.iter().enumerate() {
            parsed.push(
                peer.parse::<atoll_p2p::PeerId>()
                    .map_err(|e| invalid_params(format!("peers[{i}]: {peer:?}: {e}")))?,
            );
        }
        handle.block(parsed).await.map_err(|e| match e {
            atoll_p2p::NetworkError::Invalid(reason) => invalid_params(reason),
            other => error(error::SHUTTING_DOWN, other.to_string()),
        })?;
        let info = handle
            .info()
            .await
            .map_err(|e| error(error::SHUTTING_DOWN, e.to_string()))?;
        tracing::info!(target: "rpc", peers = ?info.blocked, "operator set the blocked peers");
        Ok(info.blocked.iter().map(|p| p.to_string()).collect())
    }

    /// Moves an account to another shard from the next epoch on. A lone
    /// validator schedules it at once. With several, this validator's next
    /// proposals carry it, every validator schedules it when that block is
    /// final, and the answer waits for that (at most
    /// [`MOVE_AGREEMENT_WAIT`]).
    pub(super) async fn move_account(&self, address: &str, to: u16) -> RpcResult<MoveInfo> {
        self.check_admin("moveAccount")?;
        let address: Address = address.parse().map_err(invalid_params)?;
        if let Some(refused) = self.node.why_not_movable(&address)? {
            return Err(error(error::MOVE_REFUSED, refused));
        }
        let refused = |e: anyhow::Error| match e
            .downcast_ref::<crate::service::common::keeper::MoveError>()
        {
            Some(refused) => error(error::MOVE_REFUSED, refused.to_string()),
            None => internal(format!("{e:#}")),
        };
        let to = ShardId(to);
        let scheduled = match self.node.consensus() {
            None => self.node.schedule_move(address, to).map_err(refused)?,
            Some(_) => {
                let (from, since) = (self.node.shard_of(&address), self.node.epoch());
                self.node.ask_move(address, to).map_err(refused)?;
                let deadline = tokio::time::Instant::now() + MOVE_AGREEMENT_WAIT;
                loop {
                    if let Some(agreed) = self.node.agreed_move((address, from, to), since) {
                        break agreed;
                    }
                    if tokio::time::Instant::now() >= deadline {
                        return Err(error(
                            error::WAIT_TIMEOUT,
                            format!(
                                "the move of {address} to shard {} is not final after {} s: \
                                 it waits for one of this validator's proposals (ask this \
                                 node's status for its consensus progress); `atoll account` \
                                 shows the account's shard once it moved",
                                to.0,
                                MOVE_AGREEMENT_WAIT.as_secs()
                            ),
                        ));
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            }
        };
        let to = to.0;
        tracing::info!(
            target: "rpc",
            %address,
            from = scheduled.from.0,
            to,
            epoch = scheduled.effective_epoch,
            "account move scheduled"
        );
        Ok(MoveInfo {
            address: address.to_string(),
            from: scheduled.from.0,
            to,
            current_epoch: scheduled.current_epoch,
            effective_epoch: scheduled.effective_epoch,
            effective_beacon_height: scheduled.effective_height,
            map_version: scheduled.map_version,
        })
    }
}
