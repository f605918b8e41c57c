//! How the client reaches a node: the `--rpc` option, the HTTP client,
//! errors as one readable line, and what sending a transaction needs.

use crate::rpc::api::AtollApiClient;
use crate::rpc::types::{BlockRef, WaitUntil};
use anyhow::Context;
use atoll_primitives::{ChainId, SignedTransaction};
use clap::Args;
use jsonrpsee::http_client::{HttpClient, HttpClientBuilder};
use std::time::Duration;

/// The node the client talks to by default.
pub const DEFAULT_RPC: &str = "http://127.0.0.1:8545";

/// The node to talk to.
#[derive(Args, Clone)]
pub struct RpcArgs {
    /// The node's JSON-RPC URL.
    #[arg(long, default_value = DEFAULT_RPC)]
    pub rpc: String,
}

/// A client for `url`.
pub fn connect(url: &str) -> anyhow::Result<HttpClient> {
    HttpClientBuilder::default()
        .request_timeout(Duration::from_secs(90))
        .build(url)
        .with_context(|| format!("bad RPC URL {url:?}"))
}

/// A client error as one readable line: the node's code and message for a
/// refused call (jsonrpsee's own text repeats the error object).
pub fn call_error(err: jsonrpsee::core::ClientError) -> anyhow::Error {
    match err {
        jsonrpsee::core::ClientError::Call(call) => anyhow::anyhow!(
            "error {} ({}): {}",
            call.code(),
            crate::rpc::error::code_name(call.code()),
            call.message()
        ),
        other => anyhow::anyhow!("{other}"),
    }
}

/// What sending a transaction from `key` needs from the node: a client,
/// the chain id, and the nonce to use (`nonce`, or the account's next).
pub async fn sending(
    rpc: &RpcArgs,
    key: &atoll_primitives::KeyPair,
    nonce: Option<u64>,
) -> anyhow::Result<(HttpClient, ChainId, u64)> {
    let client = connect(&rpc.rpc)?;
    let status = client
        .status()
        .await
        .map_err(call_error)
        .with_context(|| format!("cannot reach the node at {}", rpc.rpc))?;
    let nonce = match nonce {
        Some(nonce) => nonce,
        None => {
            client
                .get_account(key.address().to_string(), Some(BlockRef::Latest))
                .await
                .map_err(call_error)?
                .nonce
        }
    };
    Ok((client, ChainId(status.chain_id), nonce))
}

/// Sends `signed` and returns its hash; with `wait`, once it is final.
pub async fn submit(
    client: &HttpClient,
    signed: &SignedTransaction,
    wait: bool,
) -> anyhow::Result<String> {
    let until = if wait {
        WaitUntil::Final
    } else {
        WaitUntil::None
    };
    client
        .send_transaction(hex::encode(signed.encode()), Some(until))
        .await
        .map_err(call_error)
        .context("the node refused the transaction")
}
