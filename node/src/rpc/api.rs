//! The `atoll_` JSON-RPC API, as a jsonrpsee trait: the server implements
//! it (`server.rs`) and the command-line client and the load generator use
//! the generated client.

use super::types::{
    AccountInfo, BlockInfo, BlockRef, CallArgs, HeadInfo, MoveInfo, Outcome, ReceiptInfo, Status,
    TxStatus, WaitUntil,
};
use jsonrpsee::core::{RpcResult, SubscriptionResult};
use jsonrpsee::proc_macros::rpc;

/// The node's API. See `docs/rpc.md` for examples and error codes.
#[rpc(server, client, namespace = "atoll")]
pub trait AtollApi {
    /// Submits a signed transaction (hex of its borsh encoding) and returns
    /// its hash once it reached `wait_until` (default `"none"`: admitted).
    #[method(name = "sendTransaction")]
    async fn send_transaction(
        &self,
        tx_hex: String,
        wait_until: Option<WaitUntil>,
    ) -> RpcResult<String>;

    /// Where a transaction is: unknown, pending, included or final.
    #[method(name = "getTransactionStatus")]
    async fn get_transaction_status(&self, hash: String) -> RpcResult<TxStatus>;

    /// A cross-shard receipt by id (`"<source>:<destination>:<sequence>"`):
    /// what it credits, and whether it was applied.
    #[method(name = "getReceipt")]
    async fn get_receipt(&self, id: String) -> RpcResult<ReceiptInfo>;

    /// Balance, nonce and shard of an account at `at` (default `"latest"`).
    #[method(name = "getAccount")]
    async fn get_account(&self, address: String, at: Option<BlockRef>) -> RpcResult<AccountInfo>;

    /// Runs a call (or, without `to`, creation code) at the head of the
    /// callee's shard without committing anything: its outcome, return or
    /// revert data, logs and gas used.
    #[method(name = "call")]
    async fn call(&self, args: CallArgs) -> RpcResult<Outcome>;

    /// The least gas limit with which a call (or creation) succeeds at the
    /// head.
    #[method(name = "estimateGas")]
    async fn estimate_gas(&self, args: CallArgs) -> RpcResult<u64>;

    /// The code at an address, as hex (`0x` for an account without code).
    #[method(name = "getCode")]
    async fn get_code(&self, address: String) -> RpcResult<String>;

    /// One 32-byte storage word of a contract at the head, as hex.
    #[method(name = "getStorageAt")]
    async fn get_storage_at(&self, address: String, slot: String) -> RpcResult<String>;

    /// A block's header fields and transaction hashes.
    #[method(name = "getBlock")]
    async fn get_block(&self, shard: u16, at: BlockRef) -> RpcResult<BlockInfo>;

    /// Chain id, version, heights, validators, mempool size and the beacon.
    #[method(name = "status")]
    async fn status(&self) -> RpcResult<Status>;

    /// Operator only (`rpc.admin = true`): moves an account to shard `to`
    /// from the next epoch on, with its state.
    #[method(name = "moveAccount")]
    async fn move_account(&self, address: String, to: u16) -> RpcResult<MoveInfo>;

    /// Operator only (`rpc.admin = true`): the peers (libp2p peer ids) this
    /// node refuses, replacing the previous list (`[]` lets them all back);
    /// returns the list in force.
    #[method(name = "setBlockedPeers")]
    async fn set_blocked_peers(&self, peers: Vec<String>) -> RpcResult<Vec<String>>;

    /// `"newHeads"`: one notification per block of any shard, once it is
    /// final (WebSocket only).
    #[subscription(name = "subscribe" => "subscription", unsubscribe = "unsubscribe", item = HeadInfo)]
    async fn subscribe_heads(&self, kind: String) -> SubscriptionResult;
}
