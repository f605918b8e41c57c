//! [`NodeView`] itself: the shards it reads, where an address lives, and
//! the client's one write, submitting a transaction.

use super::error::QueryError;
use super::ethereum::EthBlockCache;
use crate::metrics::Metrics;
use crate::service::common::handoff::{Admission, Rejection};
use crate::service::common::keeper::ScheduledMove;
use crate::service::common::shared::{ConsensusInfo, Shared};
use crate::service::common::waiters::{Stage, TooManyWaiters, WaitEnd};
use atoll_primitives::{Address, ChainId, Hash, ShardBlockHeader, ShardId, StateKey};
use atoll_shard::execution::PreparedTx;
use atoll_shard::state::StateView;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::sync::{broadcast, oneshot};

/// Where in a shard's chain a read looks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum At {
    /// The newest committed block.
    Latest,
    /// The newest final block.
    Final,
    /// The block at this height.
    Height(u64),
    /// The block with this hash.
    Hash(Hash),
}

/// The node as its clients see it: every shard, and the stream of final
/// headers.
#[derive(Clone)]
pub struct NodeView {
    pub(super) shards: Vec<Arc<Shared>>,
    new_heads: broadcast::Sender<Arc<ShardBlockHeader>>,
    pub(super) eth_blocks: Arc<EthBlockCache>,
}

impl NodeView {
    /// The view of `shards` (by shard number, at least one), whose final
    /// headers `new_heads` announces.
    pub fn new(
        shards: Vec<Arc<Shared>>,
        new_heads: broadcast::Sender<Arc<ShardBlockHeader>>,
    ) -> NodeView {
        assert!(!shards.is_empty(), "a node has at least one shard");
        NodeView {
            shards,
            new_heads,
            eth_blocks: Arc::default(),
        }
    }

    /// Any shard's state, for what all shards share.
    pub(super) fn any(&self) -> &Shared {
        &self.shards[0]
    }

    /// How many shards the chain has.
    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// The chain id.
    pub fn chain_id(&self) -> ChainId {
        self.any().chain_id
    }

    /// The node's metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.any().metrics
    }

    /// Whether the node is shutting down.
    pub fn is_stopping(&self) -> bool {
        self.any().is_stopping()
    }

    /// What consensus shows, with several validators.
    pub fn consensus(&self) -> Option<&ConsensusInfo> {
        self.any().consensus.as_deref()
    }

    /// The peer network, with several validators once it started.
    pub fn network(&self) -> Option<atoll_p2p::Handle> {
        self.consensus()?.network.get().cloned()
    }

    /// The operator's account move: `address` goes to shard `to` from the
    /// next epoch on (`BeaconKeeper::schedule_move`).
    pub fn schedule_move(&self, address: Address, to: ShardId) -> anyhow::Result<ScheduledMove> {
        self.any().keeper.schedule_move(address, to)
    }

    /// With several validators, the operator's account move: queued for
    /// this validator's proposals (`BeaconKeeper::ask_move`); it is agreed
    /// once a block carrying it is final.
    pub fn ask_move(&self, address: Address, to: ShardId) -> anyhow::Result<()> {
        self.any().keeper.ask_move(address, to)
    }

    /// The move of `address` (then on `from`) to `to`, once the schedule
    /// holds it from an epoch after `since` (`BeaconKeeper::agreed_move`).
    pub fn agreed_move(
        &self,
        (address, from, to): (Address, ShardId, ShardId),
        since: u64,
    ) -> Option<ScheduledMove> {
        self.any().keeper.agreed_move((address, from, to), since)
    }

    /// The beacon's current epoch.
    pub fn epoch(&self) -> u64 {
        self.any().keeper.state.read().epoch()
    }

    /// One message per final block of any shard: its header.
    pub fn subscribe_final_heads(&self) -> broadcast::Receiver<Arc<ShardBlockHeader>> {
        self.new_heads.subscribe()
    }

    /// The shard `id`, if the chain has it.
    pub(super) fn shard(&self, id: ShardId) -> Result<&Arc<Shared>, QueryError> {
        self.shards
            .get(usize::from(id.0))
            .ok_or(QueryError::NoShard {
                shard: id.0,
                count: self.shards.len(),
            })
    }

    /// The shard `id`, if this validator tracks it in this epoch.
    pub(super) fn tracked(&self, id: ShardId) -> Result<&Arc<Shared>, QueryError> {
        let shard = self.shard(id)?;
        if shard.tracked.load(Ordering::Acquire) {
            return Ok(shard);
        }
        let members = shard
            .consensus
            .as_ref()
            .map(|consensus| {
                let epoch = shard.beacon.read().epoch();
                consensus.committees.members(epoch, id)
            })
            .unwrap_or_default();
        Err(QueryError::NotTracked {
            shard: id,
            members: members.into_iter().map(usize::from).collect(),
        })
    }

    /// The shard that holds `address` in the current epoch by the shard
    /// map (a contract placed elsewhere: see [`NodeView::holder_of`]).
    pub fn shard_of(&self, address: &Address) -> ShardId {
        self.any().beacon.read().shard_of(address)
    }

    /// The shard that holds `address`: the one the current map gives,
    /// unless a contract at `address` was placed on another (its
    /// creator's; see `atoll_shard::opening`). The creator's shard records
    /// the placement in the block that creates the contract, the home
    /// shard once the placement receipt reaches it, so both are asked. A
    /// shard this validator does not track may not know a recent
    /// placement: asking it then answers that it is not tracked.
    pub fn holder_of(&self, address: &Address) -> ShardId {
        let key = StateKey::Placement(*address);
        let placement = |shard: &Shared| match shard.state.get(&key) {
            Ok(value) => value.and_then(|v| v.placement()),
            Err(_) => None,
        };
        let home = self.shard_of(address);
        let Ok(home_shard) = self.shard(home) else {
            return home;
        };
        if let Some(placed) = placement(home_shard) {
            return if self.shard(placed).is_ok() {
                placed
            } else {
                home
            };
        }
        self.shards
            .iter()
            .find(|shard| placement(shard) == Some(shard.shard))
            .map_or(home, |shard| shard.shard)
    }

    /// Hands `tx` to its sender's shard's admission stage and, with
    /// `until`, waits (at most `wait`) for it to reach that stage. The
    /// waiter is registered before admission, so a block that includes the
    /// transaction right after admission cannot be missed.
    pub async fn submit(
        &self,
        tx: PreparedTx,
        until: Option<Stage>,
        wait: std::time::Duration,
    ) -> Result<(), SubmitError> {
        let shard = Arc::clone(self.tracked(self.shard_of(&tx.sender))?);
        let hash = tx.hash;
        let waiter = match until {
            None => None,
            Some(stage) => Some((
                stage,
                shard
                    .waiters
                    .register(hash, stage)
                    .map_err(|TooManyWaiters| SubmitError::TooManyWaiters)?,
            )),
        };
        if let Err(e) = admit(&shard, tx).await {
            if waiter.is_some() {
                drop(waiter);
                shard.waiters.forget_abandoned(&hash);
            }
            return Err(e);
        }
        let Some((stage, waiter)) = waiter else {
            return Ok(());
        };
        match tokio::time::timeout(wait, waiter).await {
            Err(_) => {
                shard.waiters.forget_abandoned(&hash);
                Err(SubmitError::WaitTimeout {
                    hash,
                    stage,
                    seconds: wait.as_secs(),
                })
            }
            Ok(Ok(WaitEnd::Reached)) => Ok(()),
            Ok(Ok(WaitEnd::Dropped)) => Err(SubmitError::Dropped { hash }),
            Ok(Err(_)) => Err(SubmitError::ShuttingDown),
        }
    }
}

/// Why a submitted transaction was not taken, or its wait ended early.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// The shard is not tracked here, or the node cannot read.
    #[error(transparent)]
    Query(#[from] QueryError),
    /// The admission stage refused it.
    #[error(transparent)]
    Rejected(#[from] Rejection),
    /// The admission queue is full.
    #[error("the admission queue is full; retry shortly")]
    Busy,
    /// Too many clients are waiting already.
    #[error("too many clients are waiting; retry or poll atoll_getTransactionStatus")]
    TooManyWaiters,
    /// Admitted, but it did not reach the stage waited for in time.
    #[error(
        "0x{hash} was admitted but is not {} after {seconds}s; it is still pending",
        match stage { Stage::Included => "included", Stage::Final => "final" }
    )]
    WaitTimeout {
        /// The transaction.
        hash: Hash,
        /// The stage waited for.
        stage: Stage,
        /// How long the wait was.
        seconds: u64,
    },
    /// Admitted, then it left the mempool without being included.
    #[error(
        "0x{hash} left the mempool without being included: replaced by a higher fee, evicted, \
         its nonce was used, or its sender moved to another shard (send it again)"
    )]
    Dropped {
        /// The transaction.
        hash: Hash,
    },
    /// The node is shutting down.
    #[error("the node is shutting down")]
    ShuttingDown,
}

/// Hands `tx` to `shard`'s admission stage and waits for the verdict.
async fn admit(shard: &Shared, tx: PreparedTx) -> Result<(), SubmitError> {
    let (reply, verdict) = oneshot::channel();
    shard
        .admission
        .try_send(Admission::Submit { tx, reply })
        .map_err(|_| SubmitError::Busy)?;
    match verdict.await {
        Err(_) => Err(SubmitError::ShuttingDown),
        Ok(verdict) => Ok(verdict?),
    }
}
