//! The server side of the API: [`Rpc`] holds the node's view and answers
//! each method through the file of its family (`send`, `transactions`,
//! `query`, `status`, `admin`, `subscriptions`, and `contracts`).

use super::api::AtollApiServer;
use super::contracts::Contracts;
use super::error::code_name;
use super::types::{
    AccountInfo, BlockInfo, BlockRef, CallArgs, MoveInfo, Outcome, ReceiptInfo, Status, TxStatus,
    WaitUntil,
};
use crate::query::NodeView;
use jsonrpsee::core::{async_trait, RpcResult, SubscriptionResult};
use jsonrpsee::PendingSubscriptionSink;

/// The API over the node's shared state.
#[derive(Clone)]
pub struct Rpc {
    pub(super) node: NodeView,
    /// Whether the operator's methods are served.
    pub(super) admin: bool,
    /// Calls, gas estimates, code and storage reads.
    pub(super) contracts: Contracts,
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
    pub(super) fn observe<T>(&self, method: &'static str, result: RpcResult<T>) -> RpcResult<T> {
        let label = match &result {
            Ok(_) => "ok",
            Err(e) => code_name(e.code()),
        };
        self.node.metrics().rpc(method, label);
        result
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
        let result = self.receipt_by_id(&id);
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
        let result = self.move_account(&address, to).await;
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
        self.heads(pending, kind).await
    }
}
