//! The server side of the API.

use super::api::AtollApiServer;
use super::contracts::Contracts;
use super::error::{self, code_name, error, internal, invalid_params};
use super::types::{
    hex_hash, parse_hash, AccountInfo, BeaconStatus, BlockInfo, BlockRef, CallArgs,
    ConsensusStatusInfo, ContractResult, IncomingInfo, LogEntry, MempoolInfo, MoveInfo, Outcome,
    ReceiptInfo, ReceiptState, ShardStatus, Status, TxState, TxStatus, ValidatorInfo, WaitUntil,
};
use crate::service::common::admission::{Admission, Rejection};
use crate::service::common::committed::head_info;
use crate::service::common::shard::Shared;
use crate::service::common::waiters::WaitEnd;
use crate::service::NodeView;
use atoll_primitives::codec::{self, MAX_TRANSACTION_BYTES};
use atoll_primitives::{
    Account, Address, Hash, ReceiptAction, ShardId, SignedTransaction, StateKey, StateValue,
    TxFailure, TxOutcome,
};
use atoll_shard::execution::PreparedTx;
use atoll_shard::mempool::AdmitError;
use jsonrpsee::core::{async_trait, RpcResult, SubscriptionResult};
use jsonrpsee::types::ErrorObjectOwned;
use jsonrpsee::PendingSubscriptionSink;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, oneshot};

/// Longest a `wait_until` call waits before it answers with WAIT_TIMEOUT.
pub const WAIT_TIMEOUT: Duration = Duration::from_secs(60);

/// Most receipts `atoll_getTransactionStatus` lists for one transaction: its
/// own and the ones that carried it on after its account moved.
const MAX_FORWARDS: usize = 8;

/// How long `atoll_getAccount` at `"final"` waits for the head it read to
/// become final (the coordinator makes a block final right after its commit).
const FINAL_WAIT: Duration = Duration::from_secs(2);

/// The API over the node's shared state.
pub struct Rpc {
    node: NodeView,
    /// Whether the operator's methods are served.
    admin: bool,
    /// Calls, gas estimates, code and storage reads.
    contracts: Contracts,
}

impl Rpc {
    /// The API for `node`; `admin` turns the operator's methods on.
    pub fn new(node: NodeView, admin: bool) -> Rpc {
        Rpc {
            contracts: Contracts::new(node.clone()),
            node,
            admin,
        }
    }

    /// Counts the request in the metrics and passes the result on.
    fn observe<T>(&self, method: &'static str, result: RpcResult<T>) -> RpcResult<T> {
        let label = match &result {
            Ok(_) => "ok",
            Err(e) => code_name(e.code()),
        };
        self.node.any().metrics.rpc(method, label);
        result
    }

    async fn send(&self, tx_hex: String, wait_until: Option<WaitUntil>) -> RpcResult<String> {
        if self.node.any().is_stopping() {
            return Err(error(error::SHUTTING_DOWN, "the node is shutting down"));
        }
        let digits = tx_hex.strip_prefix("0x").unwrap_or(&tx_hex);
        if digits.len() > 2 * MAX_TRANSACTION_BYTES {
            return Err(invalid_params(format!(
                "the transaction is more than {MAX_TRANSACTION_BYTES} bytes"
            )));
        }
        let bytes =
            hex::decode(digits).map_err(|e| invalid_params(format!("tx_hex is not hex: {e}")))?;
        let signed: SignedTransaction =
            codec::decode("signed transaction", &bytes, MAX_TRANSACTION_BYTES)
                .map_err(|e| invalid_params(e.to_string()))?;
        let chain_id = self.node.any().chain_id;
        if signed.tx.chain_id != chain_id {
            return Err(error(
                error::WRONG_CHAIN_ID,
                format!(
                    "the transaction is for chain {}, this is chain {}",
                    signed.tx.chain_id, chain_id
                ),
            ));
        }
        let tx = PreparedTx::new(signed);
        // The sender's shard takes it, if this validator tracks it.
        let shard = Arc::clone(self.node.shard_of(&tx.sender));
        tracked(&shard)?;
        let hash = tx.hash;
        let until = wait_until.unwrap_or_default();
        // Register before admission, so a block that includes the
        // transaction right after admission cannot be missed.
        let waiter = match until {
            WaitUntil::None => None,
            _ => Some(shard.waiters.register(hash, until).map_err(|_| {
                error(
                    error::BUSY,
                    "too many clients are waiting; retry or poll atoll_getTransactionStatus",
                )
            })?),
        };
        let admitted = admit(&shard, tx).await;
        if let Err(e) = admitted {
            if waiter.is_some() {
                drop(waiter);
                shard.waiters.forget_abandoned(&hash);
            }
            return Err(e);
        }
        if let Some(waiter) = waiter {
            let result = tokio::time::timeout(WAIT_TIMEOUT, waiter).await;
            if result.is_err() {
                shard.waiters.forget_abandoned(&hash);
                return Err(error(
                    error::WAIT_TIMEOUT,
                    format!(
                        "{} was admitted but is not {} after {}s; it is still pending",
                        hex_hash(&hash),
                        if until == WaitUntil::Final {
                            "final"
                        } else {
                            "included"
                        },
                        WAIT_TIMEOUT.as_secs()
                    ),
                ));
            }
            match result {
                Ok(Ok(WaitEnd::Reached)) | Err(_) => {}
                Ok(Ok(WaitEnd::Dropped)) => {
                    return Err(error(
                        error::DROPPED,
                        format!(
                            "{} left the mempool without being included: replaced by a higher fee, evicted, its nonce was used, or its sender moved to another shard (send it again)",
                            hex_hash(&hash)
                        ),
                    ))
                }
                Ok(Err(_)) => return Err(error(error::SHUTTING_DOWN, "the node is shutting down")),
            }
        }
        Ok(hex_hash(&hash))
    }

    fn tx_status(&self, hash: &str) -> RpcResult<TxStatus> {
        let hash = parse_hash(hash).map_err(invalid_params)?;
        let mut status = TxStatus {
            hash: hex_hash(&hash),
            status: TxState::Unknown,
            shard: None,
            height: None,
            index: None,
            block_hash: None,
            outcome: None,
            receipts: Vec::new(),
        };
        // The pools first: a producer commits a block before it removes the
        // block's transactions from its pool, so a transaction not found in
        // a pool is, if anywhere, already in a store.
        if let Some(shard) = self
            .node
            .shards
            .iter()
            .find(|s| s.mempool.lock().contains(&hash))
        {
            status.status = TxState::Pending;
            status.shard = Some(shard.shard.0);
            return Ok(status);
        }
        // A transaction refused by a block without being charged (its
        // sender had just moved to another shard) may be included again on
        // the sender's new shard: the shard where it took effect (it was
        // charged) wins.
        let mut found = None;
        for shard in &self.node.shards {
            // Read the final height before the index, so a block committed
            // in between is reported as included, never wrongly as final.
            let final_height = shard.heads.borrow().final_height;
            if let Some(location) = shard.store.transaction(&hash).map_err(internal)? {
                let took_effect = matches!(
                    location.outcome,
                    TxOutcome::Success
                        | TxOutcome::Failure(
                            TxFailure::InsufficientBalance { .. } | TxFailure::BalanceOverflow
                        )
                );
                if found.is_none() || took_effect {
                    found = Some((shard, final_height, location));
                }
                if took_effect {
                    break;
                }
            }
        }
        let Some((shard, final_height, location)) = found else {
            return Ok(status);
        };
        status.status = if location.height <= final_height {
            TxState::Final
        } else {
            TxState::Included
        };
        status.shard = Some(shard.shard.0);
        status.height = Some(location.height);
        status.index = Some(location.index);
        status.block_hash = shard
            .store
            .header(location.height)
            .map_err(internal)?
            .map(|h| hex_hash(&h.hash()));
        status.outcome = Some(outcome(&location.outcome));
        // The receipt, and the receipts that carried it on if its account
        // had moved (a move takes at most a few hops to catch up with).
        let mut next = location.receipt.map(|(d, s)| (shard.shard, d, s));
        while let Some((source, destination, sequence)) = next {
            if status.receipts.len() >= MAX_FORWARDS {
                break;
            }
            let receipt = self.receipt(source, destination, sequence, false)?;
            next = self.forwarded(destination, source, sequence)?;
            status.receipts.push(receipt);
        }
        Ok(status)
    }

    /// The receipt (source, destination, sequence) with which `at`
    /// forwarded receipt `sequence` from `source`, if it did.
    fn forwarded(
        &self,
        at: ShardId,
        source: ShardId,
        sequence: u64,
    ) -> RpcResult<Option<(ShardId, ShardId, u64)>> {
        let Some(shard) = self.node.shards.get(usize::from(at.0)) else {
            return Ok(None);
        };
        Ok(shard
            .store
            .forwarded(source, sequence)
            .map_err(internal)?
            .map(|(destination, onward)| (at, destination, onward)))
    }

    /// Receipt `sequence` from `source` to `destination`; with `detail`,
    /// also what it credits and where it came from.
    fn receipt(
        &self,
        source: ShardId,
        destination: ShardId,
        sequence: u64,
        detail: bool,
    ) -> RpcResult<ReceiptInfo> {
        let shard = |id: ShardId| {
            self.node.shards.get(usize::from(id.0)).ok_or_else(|| {
                error(
                    error::WRONG_SHARD,
                    format!(
                        "there is no shard {id}; the chain has {}",
                        self.node.shards.len()
                    ),
                )
            })
        };
        let (source_shard, destination_shard) = (shard(source)?, shard(destination)?);
        let stored = source_shard
            .store
            .outgoing_receipt_at(destination, sequence)
            .map_err(internal)?
            .ok_or_else(|| {
                error(
                    error::NOT_FOUND,
                    format!("shard {source} sent no receipt {sequence} to shard {destination}"),
                )
            })?;
        let final_height = destination_shard.heads.borrow().final_height;
        let applied_height = destination_shard
            .store
            .incoming_applied(source, sequence)
            .map_err(internal)?;
        let status = match applied_height {
            None => ReceiptState::InFlight,
            Some(height) if height <= final_height => ReceiptState::Final,
            Some(_) => ReceiptState::Applied,
        };
        let forwarded_to = self
            .forwarded(destination, source, sequence)?
            .map(|(s, d, n)| format!("{}:{}:{n}", s.0, d.0));
        let (kind, to, amount, nonce) = match stored.receipt.action {
            ReceiptAction::Transfer { to, amount } => ("transfer", to, amount, None),
            ReceiptAction::Move {
                account,
                balance,
                nonce,
            } => ("move", account, balance, Some(nonce)),
            ReceiptAction::Placed { account, .. } => ("placement", account, 0, None),
        };
        Ok(ReceiptInfo {
            id: format!("{}:{}:{sequence}", source.0, destination.0),
            source: source.0,
            destination: destination.0,
            sequence,
            status,
            applied_height,
            forwarded_to,
            origin: detail.then(|| hex_hash(&stored.receipt.origin)),
            source_height: detail.then_some(stored.height),
            kind: detail.then(|| kind.to_string()),
            to: detail.then(|| to.to_string()),
            amount: detail.then(|| amount.to_string()),
            nonce: nonce.filter(|_| detail),
        })
    }

    async fn account(&self, address: &str, at: Option<BlockRef>) -> RpcResult<AccountInfo> {
        let address: Address = address.parse().map_err(invalid_params)?;
        let shard = self.node.holder_of(&address);
        tracked(shard)?;
        let (height, value) = shard
            .store
            .state_at_head(&StateKey::Account(address))
            .map_err(internal)?;
        let account: Option<Account> = value.as_ref().and_then(StateValue::account).copied();
        let height = height.unwrap_or(0);
        // Arriving: its shard marked it so, or has not made its first block
        // under the map that moved it there (its state is on its way).
        let placed_here = !Arc::ptr_eq(shard, self.node.shard_of(&address));
        let arriving = account.is_some_and(|a| a.is_arriving())
            || (!placed_here && shard.head_map.read().shard_of(&address) != shard.shard);
        let mut final_height = shard.heads.borrow().final_height;
        let at = at.unwrap_or(BlockRef::Latest);
        if at == BlockRef::Final && final_height < height {
            // The value read is the head's; it answers "final" once the head
            // is final, which the coordinator makes it right after its commit.
            let mut heads = shard.heads.subscribe();
            let waited =
                tokio::time::timeout(FINAL_WAIT, heads.wait_for(|h| h.final_height >= height))
                    .await;
            final_height = match waited {
                Ok(Ok(heads)) => heads.final_height,
                _ => {
                    return Err(error(
                        error::WAIT_TIMEOUT,
                        format!(
                            "the head (height {height}) did not become final within {}s; this node keeps only the head's state",
                            FINAL_WAIT.as_secs()
                        ),
                    ))
                }
            };
        }
        let wanted = match at {
            BlockRef::Latest | BlockRef::Final => height,
            BlockRef::Height(h) => h,
            BlockRef::Hash(_) => {
                return Err(invalid_params(
                    "an account is read at \"latest\", \"final\" or a height, not a block hash",
                ))
            }
        };
        if wanted > height {
            return Err(error(
                error::NOT_FOUND,
                format!("height {wanted} is beyond the head (height {height})"),
            ));
        }
        if wanted != height {
            return Err(error(
                error::STATE_NOT_KEPT,
                format!("this node keeps only the state at its head (height {height}); height {wanted} is not kept"),
            ));
        }
        let account = account.unwrap_or_default();
        Ok(AccountInfo {
            address: address.to_string(),
            balance: account.balance.to_string(),
            nonce: if arriving { 0 } else { account.nonce },
            shard: shard.shard.0,
            arriving,
            height,
            is_final: height <= final_height,
        })
    }

    fn block(&self, shard: u16, at: BlockRef) -> RpcResult<BlockInfo> {
        let Some(shared) = self.node.shards.get(usize::from(shard)) else {
            return Err(error(
                error::WRONG_SHARD,
                format!(
                    "there is no shard {shard}; the chain has {}",
                    self.node.shards.len()
                ),
            ));
        };
        tracked(shared)?;
        let heads = shared.heads.borrow().clone();
        let height = match at {
            BlockRef::Latest => heads.head.height,
            BlockRef::Final => heads.final_height,
            BlockRef::Height(h) => h,
            BlockRef::Hash(hash) => shared
                .store
                .height_of(&Hash(hash))
                .map_err(internal)?
                .ok_or_else(|| error(error::NOT_FOUND, "no block has that hash"))?,
        };
        let Some(block) = shared.store.block(height).map_err(internal)? else {
            let from = shared.store.history_from().map_err(internal)?;
            if height <= from && height <= heads.head.height {
                return Err(error(
                    error::HISTORY_NOT_HELD,
                    format!(
                        "this validator synced shard {shard}'s state from a snapshot at height \
                         {from} and holds only its genesis block and the blocks above it; ask a \
                         validator that executed height {height}"
                    ),
                ));
            }
            return Err(error(
                error::NOT_FOUND,
                format!("no block at height {height}"),
            ));
        };
        let is_final = height <= heads.final_height;
        Ok(BlockInfo {
            header: head_info(&block.header, is_final),
            transactions: block
                .body
                .transactions
                .iter()
                .map(|tx| hex_hash(&tx.hash()))
                .collect(),
            incoming: block
                .body
                .incoming
                .iter()
                .map(|p| IncomingInfo {
                    source: p.receipt.source.0,
                    sequence: p.receipt.sequence,
                    origin: hex_hash(&p.receipt.origin),
                })
                .collect(),
        })
    }

    /// What the network knows of its peers (None: no network, or it did not
    /// answer within a second).
    async fn peer_info(&self) -> Option<atoll_p2p::PeerInfo> {
        let handle = self.node.any().consensus.as_ref()?.network.get()?.clone();
        tokio::time::timeout(Duration::from_secs(1), handle.info())
            .await
            .ok()?
            .ok()
    }

    fn node_status(&self, peers: Option<atoll_p2p::PeerInfo>) -> Status {
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

    /// Refuses an operator's `method` unless `rpc.admin` is on.
    fn check_admin(&self, method: &str) -> RpcResult<()> {
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

    async fn block_peers(&self, peers: Vec<String>) -> RpcResult<Vec<String>> {
        self.check_admin("setBlockedPeers")?;
        let Some(handle) = self
            .node
            .any()
            .consensus
            .as_ref()
            .and_then(|c| c.network.get())
            .cloned()
        else {
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
        tracing::info!(peers = ?info.blocked, "operator set the blocked peers");
        Ok(info.blocked.iter().map(|p| p.to_string()).collect())
    }

    /// Whether a contract lives at `address` (on its home shard or, placed,
    /// on its creator's).
    fn is_contract(&self, address: &Address) -> RpcResult<bool> {
        use atoll_shard::state::StateView;
        let holder = self.node.holder_of(address);
        let placed = !Arc::ptr_eq(holder, self.node.shard_of(address));
        let code = holder
            .state
            .get(&StateKey::CodeHash(*address))
            .map_err(internal)?;
        Ok(placed || code.is_some())
    }

    fn move_account(&self, address: &str, to: u16) -> RpcResult<MoveInfo> {
        self.check_admin("moveAccount")?;
        if self.node.any().consensus.is_some() {
            return Err(error(
                error::MOVE_REFUSED,
                "moving accounts is not yet agreed through consensus, so a node with other \
                 validators refuses it (it works on a lone validator)",
            ));
        }
        let address: Address = address.parse().map_err(invalid_params)?;
        if self.is_contract(&address)? {
            return Err(error(
                error::MOVE_REFUSED,
                format!(
                    "{address} is a contract: moving it would leave its code and storage \
                     behind, so contract accounts do not move yet"
                ),
            ));
        }
        let keeper = Arc::clone(&self.node.any().keeper);
        let scheduled = keeper.schedule_move(address, ShardId(to)).map_err(|e| {
            match e.downcast_ref::<crate::service::common::keeper::MoveError>() {
                Some(refused) => error(error::MOVE_REFUSED, refused.to_string()),
                None => internal(format!("{e:#}")),
            }
        })?;
        tracing::info!(
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

#[async_trait]
impl AtollApiServer for Rpc {
    async fn send_transaction(
        &self,
        tx_hex: String,
        wait_until: Option<WaitUntil>,
    ) -> RpcResult<String> {
        let result = self.send(tx_hex, wait_until).await;
        self.observe("sendTransaction", result)
    }

    async fn get_transaction_status(&self, hash: String) -> RpcResult<TxStatus> {
        let result = self.tx_status(&hash);
        self.observe("getTransactionStatus", result)
    }

    async fn get_receipt(&self, id: String) -> RpcResult<ReceiptInfo> {
        let result = parse_receipt_id(&id).and_then(|(source, destination, sequence)| {
            self.receipt(source, destination, sequence, true)
        });
        self.observe("getReceipt", result)
    }

    async fn get_account(&self, address: String, at: Option<BlockRef>) -> RpcResult<AccountInfo> {
        let result = self.account(&address, at).await;
        self.observe("getAccount", result)
    }

    async fn call(&self, args: CallArgs) -> RpcResult<Outcome> {
        let result = self.contracts.call(args).await;
        self.observe("call", result)
    }

    async fn estimate_gas(&self, args: CallArgs) -> RpcResult<u64> {
        let result = self.contracts.estimate_gas(args).await;
        self.observe("estimateGas", result)
    }

    async fn get_code(&self, address: String) -> RpcResult<String> {
        let result = self.contracts.code(&address);
        self.observe("getCode", result)
    }

    async fn get_storage_at(&self, address: String, slot: String) -> RpcResult<String> {
        let result = self.contracts.storage(&address, &slot);
        self.observe("getStorageAt", result)
    }

    async fn get_block(&self, shard: u16, at: BlockRef) -> RpcResult<BlockInfo> {
        let result = self.block(shard, at);
        self.observe("getBlock", result)
    }

    async fn status(&self) -> RpcResult<Status> {
        let peers = self.peer_info().await;
        let result = Ok(self.node_status(peers));
        self.observe("status", result)
    }

    async fn move_account(&self, address: String, to: u16) -> RpcResult<MoveInfo> {
        let result = self.move_account(&address, to);
        self.observe("moveAccount", result)
    }

    async fn set_blocked_peers(&self, peers: Vec<String>) -> RpcResult<Vec<String>> {
        let result = self.block_peers(peers).await;
        self.observe("setBlockedPeers", result)
    }

    async fn subscribe_heads(
        &self,
        pending: PendingSubscriptionSink,
        kind: String,
    ) -> SubscriptionResult {
        if kind != "newHeads" {
            self.node.any().metrics.rpc("subscribe", "invalid_params");
            pending
                .reject(invalid_params(format!(
                    "unknown subscription {kind:?}; the one offered is \"newHeads\""
                )))
                .await;
            return Ok(());
        }
        let mut heads = self.node.new_heads.subscribe();
        let mut sink = pending.accept().await?;
        self.node.any().metrics.rpc("subscribe", "ok");
        loop {
            tokio::select! {
                _ = sink.closed() => return Ok(()),
                head = heads.recv() => match head {
                    Ok(head) => {
                        let message = serde_json::value::to_raw_value(&*head)?;
                        // A client that does not read fills its connection's
                        // bounded buffer; it is dropped rather than buffered.
                        if sink.try_send(message).is_err() {
                            return Err("the subscriber does not keep up; subscription closed".into());
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        return Err("the subscriber fell behind; subscription closed".into());
                    }
                    Err(broadcast::error::RecvError::Closed) => return Ok(()),
                },
            }
        }
    }
}

/// Parses `"<source>:<destination>:<sequence>"`.
/// Refuses a request about a shard this validator does not track now,
/// naming the validators that do.
pub(super) fn tracked(shard: &Shared) -> RpcResult<()> {
    if shard.tracked.load(Ordering::Acquire) {
        return Ok(());
    }
    let members = shard
        .committee
        .as_ref()
        .map(|view| {
            let epoch = shard.beacon.read().epoch();
            view.committees.members(epoch, shard.shard)
        })
        .unwrap_or_default();
    Err(error(
        error::SHARD_NOT_TRACKED,
        format!(
            "this validator does not track shard {} in this epoch; its committee is validators              {members:?} (indices in genesis.json)",
            shard.shard
        ),
    ))
}

fn parse_receipt_id(id: &str) -> RpcResult<(ShardId, ShardId, u64)> {
    let bad = || {
        invalid_params(format!(
            "{id:?} is not a receipt id \"<source>:<destination>:<sequence>\""
        ))
    };
    let mut parts = id.split(':');
    let (Some(source), Some(destination), Some(sequence), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad());
    };
    Ok((
        ShardId(source.parse().map_err(|_| bad())?),
        ShardId(destination.parse().map_err(|_| bad())?),
        sequence.parse().map_err(|_| bad())?,
    ))
}

/// Hands `tx` to `shard`'s admission stage and waits for the verdict.
async fn admit(shard: &Shared, tx: PreparedTx) -> RpcResult<()> {
    let (reply, verdict) = oneshot::channel();
    shard
        .admission
        .try_send(Admission::Submit { tx, reply })
        .map_err(|_| error(error::BUSY, "the admission queue is full; retry shortly"))?;
    match verdict.await {
        Err(_) => Err(error(error::SHUTTING_DOWN, "the node is shutting down")),
        Ok(Ok(())) => Ok(()),
        Ok(Err(rejection)) => Err(rejection_error(rejection)),
    }
}

/// The API's view of an outcome.
fn outcome(outcome: &TxOutcome) -> Outcome {
    match outcome {
        TxOutcome::Success => Outcome {
            success: true,
            failure: None,
            message: None,
            contract: None,
        },
        TxOutcome::Failure(failure) => Outcome {
            success: false,
            failure: Some(failure_name(failure).into()),
            message: Some(failure_message(failure)),
            contract: None,
        },
        TxOutcome::Contract(run) => contract_outcome(run),
    }
}

/// The API's view of what a transaction's code did.
pub(super) fn contract_outcome(run: &atoll_primitives::ContractOutcome) -> Outcome {
    use atoll_primitives::ContractStatus;
    let hex = |bytes: &[u8]| format!("0x{}", hex::encode(bytes));
    let (status, message) = match &run.status {
        ContractStatus::Success => ("success", None),
        ContractStatus::Revert => (
            "revert",
            Some(match revert_reason(&run.output) {
                Some(reason) => format!("reverted: {reason}; the gas used was charged"),
                None => "reverted; the gas used was charged".to_string(),
            }),
        ),
        ContractStatus::OutOfGas => (
            "out_of_gas",
            Some("ran out of gas; all of it was charged".to_string()),
        ),
        ContractStatus::Halted { reason } => (
            "halted",
            Some(format!("halted ({reason}); all its gas was charged")),
        ),
        ContractStatus::OtherShard { address, shard } => (
            "other_shard",
            Some(format!(
                "it would change {address}, which lives on shard {shard}: cross-shard contract calls are not supported yet; the gas used was charged"
            )),
        ),
    };
    Outcome {
        success: run.status == ContractStatus::Success,
        failure: message.is_some().then(|| status.to_string()),
        message,
        contract: Some(ContractResult {
            status: status.into(),
            gas_used: run.gas_used,
            logs: run
                .logs
                .iter()
                .map(|log| LogEntry {
                    address: log.address.to_string(),
                    topics: log.topics.iter().map(|t| hex(t)).collect(),
                    data: hex(&log.data),
                })
                .collect(),
            output: hex(&run.output),
            created: run.created.map(|a| a.to_string()),
        }),
    }
}

/// The message of a Solidity `Error(string)` revert, if `output` is one.
pub(crate) fn revert_reason(output: &[u8]) -> Option<String> {
    let body = output.strip_prefix(&[0x08, 0xc3, 0x79, 0xa0])?;
    let word = |at: usize| -> Option<usize> {
        let bytes = body.get(at..at + 32)?;
        if bytes[..24].iter().any(|b| *b != 0) {
            return None;
        }
        Some(u64::from_be_bytes(bytes[24..].try_into().ok()?) as usize)
    };
    let offset = word(0)?;
    let len = word(offset)?;
    let start = offset.checked_add(32)?;
    let text = body.get(start..start.checked_add(len)?)?;
    Some(String::from_utf8_lossy(text).into_owned())
}

fn failure_name(failure: &atoll_primitives::TxFailure) -> &'static str {
    use atoll_primitives::TxFailure::*;
    match failure {
        WrongChainId { .. } => "wrong_chain_id",
        BadNonce { .. } => "bad_nonce",
        CannotPayFee { .. } => "cannot_pay_fee",
        InsufficientBalance { .. } => "insufficient_balance",
        BalanceOverflow => "balance_overflow",
        SenderOnOtherShard { .. } => "sender_on_other_shard",
        NonceExhausted => "nonce_exhausted",
        SenderArriving => "sender_arriving",
        Invalid { .. } => "invalid",
    }
}

fn failure_message(failure: &atoll_primitives::TxFailure) -> String {
    use atoll_primitives::TxFailure::*;
    match failure {
        WrongChainId { expected, got } => {
            format!("signed for chain {got}, this is chain {expected}; nothing was charged")
        }
        BadNonce { expected, got } => {
            format!("nonce {got} is not the account's next nonce {expected}; nothing was charged")
        }
        CannotPayFee { balance, fee } => {
            format!("the balance {balance} cannot pay the fee {fee}; nothing was charged")
        }
        InsufficientBalance { balance, needed } => format!(
            "the balance {balance} does not cover amount plus fee ({needed}); the fee was charged"
        ),
        BalanceOverflow => "the recipient's balance would overflow; the fee was charged".into(),
        SenderOnOtherShard { shard } => {
            format!("the sender lives on shard {shard}; nothing was charged")
        }
        NonceExhausted => "the sender's nonce cannot advance further; nothing was charged".into(),
        SenderArriving => "the sender's account is moving to this shard and its state has not arrived yet; nothing was charged: send it again shortly".into(),
        Invalid { reason } => format!("{reason}; nothing was charged"),
    }
}

fn rejection_error(rejection: Rejection) -> ErrorObjectOwned {
    let code = match &rejection {
        Rejection::BadSignature => error::BAD_SIGNATURE,
        Rejection::AlreadyIncluded { .. } => error::ALREADY_KNOWN,
        Rejection::InsufficientBalance { .. } => error::INSUFFICIENT_BALANCE,
        Rejection::Storage(message) => return internal(message),
        Rejection::Invalid(_) => error::INVALID_TRANSACTION,
        Rejection::Moved { .. } => error::WRONG_SHARD,
        Rejection::Arriving { .. } => error::ACCOUNT_ARRIVING,
        Rejection::Pool(pool) => match pool {
            AdmitError::Duplicate(_) => error::ALREADY_KNOWN,
            AdmitError::NonceTooLow { .. } => error::NONCE_TOO_LOW,
            AdmitError::NonceGapTooLarge { .. } => error::NONCE_GAP_TOO_LARGE,
            AdmitError::NonceTaken { .. } => error::REPLACEMENT_UNDERPRICED,
            AdmitError::SenderFull { .. } => error::SENDER_LIMIT,
            AdmitError::PoolFull { .. }
            | AdmitError::TooLarge { .. }
            | AdmitError::TooManyQueued { .. } => error::MEMPOOL_FULL,
        },
    };
    error(code, rejection.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use atoll_primitives::{ContractOutcome, ContractStatus};

    /// An `Error(string)` revert as Solidity encodes it.
    fn error_string(message: &str) -> Vec<u8> {
        let mut data = vec![0x08, 0xc3, 0x79, 0xa0];
        let mut word = |n: usize| {
            let mut w = [0u8; 32];
            w[24..].copy_from_slice(&(n as u64).to_be_bytes());
            data.extend_from_slice(&w);
        };
        word(32);
        word(message.len());
        data.extend_from_slice(message.as_bytes());
        data.resize(4 + 64 + message.len().div_ceil(32) * 32, 0);
        data
    }

    #[test]
    fn a_revert_shows_its_reason_and_what_was_charged() {
        let output = error_string("Token: balance too low");
        assert_eq!(
            revert_reason(&output).as_deref(),
            Some("Token: balance too low")
        );
        assert_eq!(revert_reason(&output[..40]), None, "truncated data");
        assert_eq!(revert_reason(b"\x08\xc3\x79\xa0"), None);
        let shown = outcome(&TxOutcome::Contract(ContractOutcome {
            status: ContractStatus::Revert,
            gas_used: 24_000,
            logs: Vec::new(),
            output,
            created: None,
        }));
        assert!(!shown.success);
        assert_eq!(shown.failure.as_deref(), Some("revert"));
        assert_eq!(
            shown.message.as_deref(),
            Some("reverted: Token: balance too low; the gas used was charged")
        );
        let contract = shown.contract.expect("a contract outcome");
        assert_eq!(contract.status, "revert");
        assert_eq!(contract.gas_used, 24_000);
        assert!(contract.output.starts_with("0x08c379a0"));
    }

    #[test]
    fn a_success_has_no_failure_and_shows_logs_and_the_created_address() {
        let created = atoll_primitives::Address([7; 20]);
        let shown = outcome(&TxOutcome::Contract(ContractOutcome {
            status: ContractStatus::Success,
            gas_used: 50_000,
            logs: vec![atoll_primitives::Log {
                address: created,
                topics: vec![[1; 32]],
                data: vec![2, 3],
            }],
            output: Vec::new(),
            created: Some(created),
        }));
        assert!(shown.success && shown.failure.is_none() && shown.message.is_none());
        let contract = shown.contract.expect("a contract outcome");
        assert_eq!(contract.created, Some(created.to_string()));
        assert_eq!(contract.logs[0].data, "0x0203");
        assert_eq!(contract.logs[0].topics[0], format!("0x{}", "01".repeat(32)));
    }
}
