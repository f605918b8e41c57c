//! `atoll`: the validator daemon and its command-line tools; the command
//! line only, everything it runs is in the `atoll_node` library.
//!
//! - `atoll init` / `atoll run` / `atoll dev`: make a home directory and run
//!   a node from it (see `atoll_node::home`, `run`, `service`).
//! - `atoll keys`, `atoll account`, `atoll tx`, `atoll status`: a small
//!   JSON-RPC client (`atoll_node::client`).
//! - `atoll load`: the load generator (`atoll_node::load`).
//! - `atoll bench execute`: the block pipeline on a generated block
//!   (`atoll_node::bench`).

use atoll_node::home::{Home, InitArgs};
use atoll_node::rpc::types::BlockRef;
use atoll_node::run::runtime;
use atoll_node::{bench, client, dev, home, load, localnet, run};
use atoll_primitives::Address;
use clap::{Parser, Subcommand};
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
    /// Call a contract read-only at the head (nothing is sent or charged):
    /// prints the return data (or revert reason), logs and gas used.
    Call(atoll_node::client::contracts::ReadArgs),
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
        Command::Tx(client::TxCommand::Deploy(args)) => {
            init_cli_logging();
            runtime()?.block_on(atoll_node::client::contracts::deploy(args))
        }
        Command::Tx(client::TxCommand::Call(args)) => {
            init_cli_logging();
            runtime()?.block_on(atoll_node::client::contracts::call_tx(args))
        }
        Command::Call(args) => {
            init_cli_logging();
            runtime()?.block_on(atoll_node::client::contracts::read(args))
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
