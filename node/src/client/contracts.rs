//! The contract commands of the client: `atoll tx deploy`, `atoll tx call`
//! and the read-only `atoll call`.

use super::connection::{call_error, connect, sending, submit, RpcArgs};
use crate::keyfile;
use crate::rpc::api::AtollApiClient;
use crate::rpc::types::CallArgs;
use anyhow::Context;
use atoll_primitives::gas::DEFAULT_BASE_FEE;
use atoll_primitives::{Action, Address, Transaction};
use clap::Args;
use std::path::PathBuf;

/// What a contract transaction carries besides its action.
#[derive(Args)]
pub struct SendArgs {
    /// Key file of the sender.
    #[arg(long)]
    pub key: PathBuf,
    /// Value sent, in the smallest unit.
    #[arg(long, default_value_t = 0)]
    pub value: u128,
    /// Gas limit (default: the node's estimate plus a quarter).
    #[arg(long)]
    pub gas: Option<u64>,
    /// Price per gas (at least the chain's base fee).
    #[arg(long, default_value_t = u128::from(DEFAULT_BASE_FEE))]
    pub gas_price: u128,
    /// Nonce (default: the account's next nonce, asked from the node).
    #[arg(long)]
    pub nonce: Option<u64>,
    /// Return once admitted instead of waiting until it is final.
    #[arg(long)]
    pub no_wait: bool,
    /// The node to ask.
    #[command(flatten)]
    pub rpc: RpcArgs,
}

/// `atoll tx deploy`.
#[derive(Args)]
pub struct DeployArgs {
    /// File holding the creation code as hex (`0x` optional), such as
    /// `contracts/out/Token.bin`.
    #[arg(long)]
    pub code: PathBuf,
    /// ABI-encoded constructor arguments, as hex, appended to the code.
    #[arg(long, default_value = "")]
    pub args: String,
    #[command(flatten)]
    /// Key, value, gas and node.
    pub send: SendArgs,
}

/// `atoll tx call`.
#[derive(Args)]
pub struct CallTxArgs {
    /// The contract.
    #[arg(long)]
    pub to: Address,
    /// Call data (ABI-encoded function selector and arguments) as hex.
    #[arg(long, default_value = "")]
    pub data: String,
    #[command(flatten)]
    /// Key, value, gas and node.
    pub send: SendArgs,
}

/// `atoll call`.
#[derive(Args)]
pub struct ReadArgs {
    /// The contract.
    #[arg(long)]
    pub to: Address,
    /// Call data (ABI-encoded function selector and arguments) as hex.
    #[arg(long, default_value = "")]
    pub data: String,
    /// The caller the contract sees (default: the zero address).
    #[arg(long)]
    pub from: Option<Address>,
    /// Value sent with the call.
    #[arg(long, default_value_t = 0)]
    pub value: u128,
    /// The node to ask.
    #[command(flatten)]
    pub rpc: RpcArgs,
}

fn hex_arg(what: &str, text: &str) -> anyhow::Result<Vec<u8>> {
    let text = text.trim();
    hex::decode(text.strip_prefix("0x").unwrap_or(text))
        .with_context(|| format!("{what} is not hex"))
}

/// Runs `atoll tx deploy`.
pub async fn deploy(args: DeployArgs) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&args.code)
        .with_context(|| format!("cannot read {}", args.code.display()))?;
    let mut init_code = hex_arg(&format!("the code in {}", args.code.display()), &text)?;
    init_code.extend(hex_arg("--args", &args.args)?);
    anyhow::ensure!(!init_code.is_empty(), "the creation code is empty");
    send(args.send, None, init_code).await
}

/// Runs `atoll tx call`.
pub async fn call_tx(args: CallTxArgs) -> anyhow::Result<()> {
    let input = hex_arg("--data", &args.data)?;
    send(args.send, Some(args.to), input).await
}

/// Signs and sends a creation (`to` absent) or call, waiting until final
/// unless told not to, and prints its status with the outcome.
async fn send(args: SendArgs, to: Option<Address>, input: Vec<u8>) -> anyhow::Result<()> {
    let key = keyfile::read(&args.key)?;
    let (client, chain_id, nonce) = sending(&args.rpc, &key, args.nonce).await?;
    let gas_limit = match args.gas {
        Some(gas) => gas,
        None => {
            let estimate = client
                .estimate_gas(CallArgs {
                    from: Some(key.address().to_string()),
                    to: to.map(|a| a.to_string()),
                    value: Some(args.value.to_string()),
                    data: Some(hex::encode(&input)),
                    gas: None,
                })
                .await
                .map_err(call_error)
                .context("estimating its gas (give --gas to send it anyway)")?;
            estimate.saturating_add(estimate / 4)
        }
    };
    let action = match to {
        Some(to) => Action::Call {
            to,
            value: args.value,
            input,
            gas_limit,
        },
        None => Action::Create {
            value: args.value,
            init_code: input,
            gas_limit,
        },
    };
    let signed = Transaction {
        chain_id,
        sender: key.public(),
        nonce,
        fee: args.gas_price,
        action,
    }
    .sign(&key);
    let hash = submit(&client, &signed.into(), !args.no_wait).await?;
    println!("transaction {hash}");
    println!(
        "  from {} nonce {nonce} gas limit {gas_limit} at {} per gas",
        key.address(),
        args.gas_price
    );
    if args.no_wait {
        println!("  admitted; follow it with `atoll tx status {hash}`");
        return Ok(());
    }
    let status = client
        .get_transaction_status(hash)
        .await
        .map_err(call_error)?;
    println!("{}", serde_json::to_string_pretty(&status)?);
    Ok(())
}

/// Runs `atoll call`: a read-only call at the head; prints the outcome
/// (return data, logs, gas used, or the revert reason).
pub async fn read(args: ReadArgs) -> anyhow::Result<()> {
    let client = connect(&args.rpc.rpc)?;
    let outcome = client
        .call(CallArgs {
            from: args.from.map(|a| a.to_string()),
            to: Some(args.to.to_string()),
            value: Some(args.value.to_string()),
            data: Some(hex::encode(hex_arg("--data", &args.data)?)),
            gas: None,
        })
        .await
        .map_err(call_error)
        .with_context(|| format!("calling {} through {}", args.to, args.rpc.rpc))?;
    println!("{}", serde_json::to_string_pretty(&outcome)?);
    Ok(())
}
