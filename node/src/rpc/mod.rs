//! The JSON-RPC server: jsonrpsee, HTTP and WebSocket on one port, JSON-RPC
//! 2.0 batches accepted, their calls run concurrently ([`batch`]). The API
//! is in [`api`], its JSON shapes in [`types`], the error codes in
//! [`error`]; `docs/rpc.md` documents it. The server ([`server`]) answers
//! each method family in a file of its own: sending (`send`), tracing a
//! transaction (`transactions`, with `outcomes`), state and block reads
//! (`query`), contract reads (`contracts`), `status`, the operator's
//! methods (`admin`) and `subscriptions`; and the Ethereum methods
//! (`eth`).

mod admin;
pub mod api;
mod batch;
mod contracts;
pub mod error;
pub mod eth;
mod outcomes;
mod query;
mod send;
mod server;
mod status;
mod subscriptions;
mod transactions;
pub mod types;

use crate::query::NodeView;
use api::AtollApiServer;
use atoll_config::RpcConfig;
use jsonrpsee::server::middleware::rpc::RpcServiceBuilder;
use jsonrpsee::server::{BatchRequestConfig, Server, ServerConfig, ServerHandle};
use std::net::SocketAddr;

/// Most calls in one JSON-RPC batch.
pub const MAX_BATCH: u32 = 10_000;
/// Most `newHeads` subscriptions per connection.
pub const MAX_SUBSCRIPTIONS_PER_CONNECTION: u32 = 16;
/// Messages buffered per WebSocket connection before a subscriber that does
/// not read is dropped.
pub const MESSAGE_BUFFER: u32 = 1024;

/// Starts the server; returns its handle and the address it listens on.
pub async fn start(
    config: &RpcConfig,
    node: NodeView,
) -> anyhow::Result<(ServerHandle, SocketAddr)> {
    let limit = u32::try_from(config.max_request_bytes.get()).unwrap_or(u32::MAX);
    let server_config = ServerConfig::builder()
        .max_request_body_size(limit)
        // A batch answer may be larger than its request (hashes, errors).
        .max_response_body_size(limit.saturating_mul(4))
        .max_connections(u32::try_from(config.max_connections.get()).unwrap_or(u32::MAX))
        .max_subscriptions_per_connection(MAX_SUBSCRIPTIONS_PER_CONNECTION)
        .set_message_buffer_capacity(MESSAGE_BUFFER)
        .set_batch_request_config(BatchRequestConfig::Limit(MAX_BATCH))
        .build();
    let response_limit = limit.saturating_mul(4) as usize;
    let middleware = RpcServiceBuilder::new()
        .layer_fn(move |service| batch::ConcurrentBatches::new(service, response_limit));
    let server = Server::builder()
        .set_config(server_config)
        .set_rpc_middleware(middleware)
        .build(config.addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen for RPC on {}: {e}", config.addr))?;
    let addr = server.local_addr()?;
    let rpc = server::Rpc::new(node, config.admin);
    let mut methods = AtollApiServer::into_rpc(rpc.clone());
    methods
        .merge(eth::EthApiServer::into_rpc(rpc))
        .map_err(|e| anyhow::anyhow!("the eth_ methods clash with the atoll_ ones: {e}"))?;
    eth::unserved::register(&mut methods)?;
    let handle = server.start(methods);
    Ok((handle, addr))
}
