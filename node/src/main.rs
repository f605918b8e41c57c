//! `atoll`: the validator daemon and its command-line tools.
//!
//! - `atoll init` / `atoll run` / `atoll dev`: make a home directory and run
//!   a single-validator node from it (see [`home`], [`run`], [`service`]).
//! - `atoll keys`, `atoll account`, `atoll tx`, `atoll status`: a small
//!   JSON-RPC client ([`client`]).
//! - `atoll load`: the load generator ([`load`]).
//! - `atoll bench execute`: the block pipeline on a generated block ([`bench`]).

mod bench;
mod client;
mod dev;
mod home;
mod keyfile;
mod load;
mod localnet;
mod metrics;
mod rpc;
mod run;
mod service;

use atoll_primitives::Address;
use clap::{Parser, Subcommand};
use home::{Home, InitOptions};
use rpc::types::BlockRef;
use std::net::SocketAddr;
use std::path::PathBuf;

/// mimalloc keeps freed memory for reuse instead of returning it to the OS at
/// once: a block allocates megabytes of short-lived buffers from several
/// threads, and with glibc's allocator each block paid for page faults that
/// serialise on the process's memory map.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// atoll: a sharded blockchain validator with a parallel (Block-STM) executor.
///
/// Start here: `atoll dev` runs a local node with funded dev accounts and
/// prints its RPC URL; `atoll tx transfer --key <file> --to <address>
/// --amount <n> --wait` sends it a transfer.
#[derive(Parser)]
#[command(name = "atoll", version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create a node's home directory: config, genesis, validator key, dev accounts.
    Init {
        /// The home directory to create.
        #[arg(long)]
        home: PathBuf,
        #[command(flatten)]
        init: InitArgs,
    },
    /// Run the node of a home directory until SIGINT or SIGTERM.
    Run {
        /// The home directory (made by `atoll init`).
        #[arg(long)]
        home: PathBuf,
        /// Serve JSON-RPC here instead of config.toml's `rpc.addr`.
        #[arg(long)]
        rpc_addr: Option<SocketAddr>,
        /// Serve metrics here instead of config.toml's `metrics.addr`
        /// (this also turns metrics on).
        #[arg(long)]
        metrics_addr: Option<SocketAddr>,
    },
    /// Local multi-validator testnets.
    #[command(subcommand)]
    Localnet(localnet::LocalnetCommand),
    /// Run a local dev node: initialise a home if needed, then run it,
    /// printing the RPC URL and funded dev keys.
    Dev(dev::DevArgs),
    /// Make or show key files.
    #[command(subcommand)]
    Keys(client::KeysCommand),
    /// Show an account's balance, nonce and shard.
    Account {
        /// The address (0x and 40 hex digits).
        address: Address,
        /// "latest", "final" or a height.
        #[arg(long, default_value = "latest", value_parser = parse_block_ref)]
        at: BlockRef,
        #[command(flatten)]
        rpc: client::RpcArgs,
    },
    /// Send transactions and follow them.
    #[command(subcommand)]
    Tx(client::TxCommand),
    /// Show a node's chain id, heights, validators and mempool.
    Status {
        #[command(flatten)]
        rpc: client::RpcArgs,
    },
    /// Operator commands (need `rpc.admin = true` on the node).
    #[command(subcommand)]
    Admin(client::AdminCommand),
    /// Send signed transfers at a fixed rate and measure finality.
    Load(load::LoadArgs),
    /// Measure parts of the node on generated workloads.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
}

/// The options of a new home directory.
#[derive(clap::Args, Clone)]
pub struct InitArgs {
    /// The chain id transactions must carry.
    #[arg(long, default_value_t = 1)]
    chain_id: u64,
    /// Shards: each has its own store, mempool, producer and executor;
    /// accounts are spread over them by address.
    #[arg(long, default_value_t = 1)]
    shards: u16,
    /// Dev accounts to fund in genesis (deterministic, well-known keys).
    #[arg(long, default_value_t = 10)]
    dev_accounts: usize,
    /// Balance of each dev account, in the smallest unit.
    #[arg(long, default_value_t = 1_000_000_000_000_000_000_000)]
    dev_balance: u128,
    /// The JSON-RPC address (HTTP and WebSocket); port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:8545")]
    rpc_addr: SocketAddr,
    /// The Prometheus metrics address; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:9615")]
    metrics_addr: SocketAddr,
    /// Serve no metrics.
    #[arg(long)]
    no_metrics: bool,
    /// Beacon blocks per epoch: a move of an account to another shard
    /// (`atoll admin move-account`) takes effect at the next epoch.
    /// Default: 1000 (`atoll dev`: 100, a few seconds).
    #[arg(long)]
    epoch_length: Option<u64>,
    /// Serve the operator's RPC methods (moving an account to another
    /// shard); `atoll dev` always does. Only where the RPC port is private.
    #[arg(long)]
    admin_rpc: bool,
}

impl InitArgs {
    /// `--epoch-length`, if given.
    fn epoch_length(&self) -> Option<u64> {
        self.epoch_length
    }

    fn options(&self) -> InitOptions {
        InitOptions {
            chain_id: self.chain_id,
            shards: self.shards,
            dev_accounts: self.dev_accounts,
            dev_balance: self.dev_balance,
            rpc_addr: self.rpc_addr,
            metrics_addr: (!self.no_metrics).then_some(self.metrics_addr),
            epoch_length: self
                .epoch_length
                .unwrap_or(atoll_config::genesis::DEFAULT_EPOCH_LENGTH),
            admin_rpc: self.admin_rpc,
            committee_size: None,
        }
    }
}

fn parse_block_ref(text: &str) -> Result<BlockRef, String> {
    let quoted = if text.parse::<u64>().is_ok() {
        text.to_string()
    } else {
        format!("{text:?}")
    };
    serde_json::from_str(&quoted).map_err(|e| e.to_string())
}

fn main() -> std::process::ExitCode {
    match run_cli(Cli::parse().command) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

fn init_cli_logging() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .try_init();
}

fn run_cli(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Init { home, init } => home::init(&Home::new(home), &init.options()),
        Command::Run {
            home,
            rpc_addr,
            metrics_addr,
        } => {
            let home = Home::new(home);
            let mut config = run::load_config(&home)?;
            if let Some(addr) = rpc_addr {
                config.rpc.addr = addr;
            }
            if let Some(addr) = metrics_addr {
                config.metrics.addr = addr;
                config.metrics.enabled = true;
            }
            run::init_logging(&config);
            runtime()?.block_on(run::run(&home, config, |endpoints| {
                dev::print_endpoints(endpoints);
            }))
        }
        Command::Dev(args) => dev::dev(args),
        Command::Localnet(command) => localnet::run(command),
        Command::Keys(command) => client::keys(command),
        Command::Account { address, at, rpc } => {
            init_cli_logging();
            runtime()?.block_on(client::account(address, at, &rpc))
        }
        Command::Tx(client::TxCommand::Transfer(args)) => {
            init_cli_logging();
            runtime()?.block_on(client::transfer(args))
        }
        Command::Tx(client::TxCommand::Status { hash, rpc }) => {
            init_cli_logging();
            runtime()?.block_on(client::tx_status(hash, &rpc))
        }
        Command::Status { rpc } => {
            init_cli_logging();
            runtime()?.block_on(client::status(&rpc))
        }
        Command::Admin(command) => {
            init_cli_logging();
            runtime()?.block_on(client::admin(command))
        }
        Command::Load(args) => {
            init_cli_logging();
            runtime()?.block_on(load::run(args))
        }
        Command::Bench(command) => {
            init_cli_logging();
            bench::run(command)
        }
    }
}
