//! The small client: `atoll keys`, `atoll account`, `atoll tx transfer`,
//! `atoll status` (contracts: [`contracts`]). Everything but `keys` talks to a node over JSON-RPC.

pub mod connection;
pub mod contracts;

pub use connection::{call_error, connect, sending, submit, RpcArgs, DEFAULT_RPC};

use crate::keyfile;
use crate::rpc::api::AtollApiClient;
use crate::rpc::types::BlockRef;
use anyhow::Context;
use atoll_primitives::{Action, Address, Transaction};
use clap::{Args, Subcommand};
use std::path::PathBuf;
use std::time::Duration;

/// `atoll keys`.
#[derive(Subcommand)]
pub enum KeysCommand {
    /// Make a new key and write it to a key file (mode 0600).
    New {
        /// Where to write the key file.
        #[arg(long, default_value = "key.json")]
        out: PathBuf,
    },
    /// Show the address and public key of a key file.
    Show {
        /// The key file.
        file: PathBuf,
    },
}

/// `atoll tx`.
#[derive(Subcommand)]
pub enum TxCommand {
    /// Sign and send a transfer.
    Transfer(TransferArgs),
    /// Deploy a contract: sign and send its creation code (a file of hex,
    /// such as `contracts/out/Token.bin`) with ABI-encoded constructor
    /// arguments; waits until final and prints the outcome, gas used, logs
    /// and the created address.
    Deploy(contracts::DeployArgs),
    /// Call a contract with hex call data in a transaction; waits until
    /// final and prints the outcome, return data, gas used and logs.
    Call(contracts::CallTxArgs),
    /// Show where a transaction is: unknown, pending, included or final.
    Status {
        /// The transaction hash.
        hash: String,
        /// The node to ask.
        #[command(flatten)]
        rpc: RpcArgs,
    },
}

/// `atoll tx transfer`.
#[derive(Args)]
pub struct TransferArgs {
    /// Key file of the sender.
    #[arg(long)]
    pub key: PathBuf,
    /// The recipient's address (0x and 40 hex digits).
    #[arg(long)]
    pub to: Address,
    /// Amount, in the smallest unit.
    #[arg(long)]
    pub amount: u128,
    /// Fee, burnt when the transaction executes.
    #[arg(long, default_value_t = 1)]
    pub fee: u128,
    /// Nonce (default: the account's next nonce, asked from the node).
    #[arg(long)]
    pub nonce: Option<u64>,
    /// Wait until the transfer is final and print its outcome; for a
    /// recipient on another shard, also until the credit there is final.
    #[arg(long)]
    pub wait: bool,
    /// The node to ask.
    #[command(flatten)]
    pub rpc: RpcArgs,
}

/// Runs `atoll keys …`.
pub fn keys(command: KeysCommand) -> anyhow::Result<()> {
    match command {
        KeysCommand::New { out } => {
            let key = keyfile::generate();
            keyfile::write(&out, &key)?;
            println!("address     {}", key.address());
            println!("public key  0x{}", hex::encode(key.public().0));
            println!("written to  {}", out.display());
        }
        KeysCommand::Show { file } => {
            let key = keyfile::read(&file)?;
            println!("address     {}", key.address());
            println!("public key  0x{}", hex::encode(key.public().0));
        }
    }
    Ok(())
}

/// Runs `atoll account ADDRESS`.
pub async fn account(address: Address, at: BlockRef, rpc: &RpcArgs) -> anyhow::Result<()> {
    let client = connect(&rpc.rpc)?;
    let info = client
        .get_account(address.to_string(), Some(at))
        .await
        .map_err(call_error)
        .with_context(|| format!("asking {} for the account", rpc.rpc))?;
    println!("{}", serde_json::to_string_pretty(&info)?);
    Ok(())
}

/// Runs `atoll status`.
pub async fn status(rpc: &RpcArgs) -> anyhow::Result<()> {
    let client = connect(&rpc.rpc)?;
    let status = client
        .status()
        .await
        .map_err(call_error)
        .with_context(|| format!("asking {} for its status", rpc.rpc))?;
    println!("{}", serde_json::to_string_pretty(&status)?);
    Ok(())
}

/// `atoll admin`.
#[derive(Subcommand)]
pub enum AdminCommand {
    /// Move an account to another shard from the next epoch on; its
    /// balance and nonce move with it, and a contract's code and storage.
    /// Needs `rpc.admin = true` on the node (`atoll dev` and `atoll
    /// localnet` have it). With several validators the move is agreed
    /// through consensus first: the answer comes once it is final (at
    /// most 30 s).
    MoveAccount {
        /// The account (0x and 40 hex digits).
        address: Address,
        /// The shard it moves to.
        #[arg(long)]
        to: u16,
        /// The node to ask.
        #[command(flatten)]
        rpc: RpcArgs,
    },
}

/// Runs `atoll admin move-account`.
pub async fn admin(command: AdminCommand) -> anyhow::Result<()> {
    let AdminCommand::MoveAccount { address, to, rpc } = command;
    let client = connect(&rpc.rpc)?;
    let moved = client
        .move_account(address.to_string(), to)
        .await
        .map_err(call_error)
        .with_context(|| format!("asking {} to move {address}", rpc.rpc))?;
    println!("{}", serde_json::to_string_pretty(&moved)?);
    eprintln!(
        "{address} moves from shard {} to shard {} at epoch {} (beacon height {}); \
         `atoll account {address}` shows its shard",
        moved.from, moved.to, moved.effective_epoch, moved.effective_beacon_height
    );
    Ok(())
}

/// Runs `atoll tx status HASH`.
pub async fn tx_status(hash: String, rpc: &RpcArgs) -> anyhow::Result<()> {
    let client = connect(&rpc.rpc)?;
    let status = client
        .get_transaction_status(hash)
        .await
        .map_err(call_error)
        .with_context(|| format!("asking {} for the transaction", rpc.rpc))?;
    println!("{}", serde_json::to_string_pretty(&status)?);
    Ok(())
}

/// Runs `atoll tx transfer`.
pub async fn transfer(args: TransferArgs) -> anyhow::Result<()> {
    let key = keyfile::read(&args.key)?;
    let (client, chain_id, nonce) = sending(&args.rpc, &key, args.nonce).await?;
    let body = Transaction {
        chain_id,
        sender: key.public(),
        nonce,
        fee: args.fee,
        action: Action::Transfer {
            to: args.to,
            amount: args.amount,
        },
    };
    let signed = body.sign(&key);
    let hash = submit(&client, &signed.into(), args.wait).await?;
    println!("transaction {hash}");
    println!(
        "  from {} nonce {nonce} to {} amount {} fee {}",
        key.address(),
        args.to,
        args.amount,
        args.fee
    );
    if args.wait {
        let mut status = client
            .get_transaction_status(hash.clone())
            .await
            .map_err(call_error)?;
        // A transfer to another shard is paid when its receipt is credited
        // in a final block of the recipient's shard: wait for that too.
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while status
            .receipts
            .iter()
            .any(|r| r.status != crate::rpc::types::ReceiptState::Final)
            && std::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
            status = client
                .get_transaction_status(hash.clone())
                .await
                .map_err(call_error)?;
        }
        println!("{}", serde_json::to_string_pretty(&status)?);
    } else {
        println!("  admitted; follow it with `atoll tx status {hash}`");
    }
    Ok(())
}
