//! `atoll localnet`: a local multi-validator testnet. `init` makes the
//! homes; `start`, `stop`, `status` and `logs` ([`control`]) run them as
//! background processes; `perturb` ([`perturb`]) puts them under load and
//! faults and checks what must hold.
//!
//! ```text
//! <dir>/validator-<i>/   one home per validator (see `home`): the same
//!                        genesis.json (every validator, stake 1 each,
//!                        the funded dev accounts), its own key, and a
//!                        config.toml with its own loopback ports (its
//!                        operator's RPC methods on: the port is loopback)
//! ```
//!
//! Validator `i` listens on `127.0.0.1` (or the `i`th of `--hosts`): RPC
//! on `base + 10 i`, metrics on `base + 10 i + 1`, libp2p on
//! `base + 10 i + 2`; every validator's bootnodes are all the others (peer
//! ids follow from the keys).

use crate::home::{self, Home, InitOptions, DEV_SEED};
use crate::keyfile;
use crate::service::network::peer_id;
use anyhow::bail;
use atoll_shard::workload::dev_key;
use clap::{Args, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

pub mod control;
pub mod delay;
pub mod netns;
pub mod perturb;

/// Most validators a localnet has.
pub const MAX_VALIDATORS: usize = 64;

/// `atoll localnet`.
#[derive(Subcommand)]
pub enum LocalnetCommand {
    /// Create the homes of a local testnet: one per validator, one genesis.
    Init(LocalnetInit),
    /// Start every validator of the localnet that is not running, in the
    /// background (one process and one log file each), and wait until each
    /// serves RPC.
    Start {
        /// The localnet.
        #[command(flatten)]
        dir: DirArg,
    },
    /// Stop the running validators cleanly (SIGTERM) and wait for them.
    Stop {
        /// The localnet.
        #[command(flatten)]
        dir: DirArg,
        /// Seconds to wait for them to exit.
        #[arg(long, default_value_t = 60)]
        timeout: u64,
    },
    /// Show each validator: running or not, consensus and shard heights,
    /// peers, RPC URL.
    Status {
        /// The localnet.
        #[command(flatten)]
        dir: DirArg,
        /// One JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Run a load while validators are killed, paused and disconnected on
    /// a seeded schedule (never a third of the stake at once), then check
    /// that nothing final was lost or changed, all validators agree, the
    /// supply is conserved, finality never stalled and every validator
    /// caught up; print a report and fail on a broken criterion.
    Perturb(perturb::PerturbArgs),
    /// Print the end of the validators' logs (each line prefixed with its
    /// validator).
    Logs {
        /// The localnet.
        #[command(flatten)]
        dir: DirArg,
        /// Only this validator.
        #[arg(long)]
        validator: Option<usize>,
        /// Lines from the end of each log.
        #[arg(long, default_value_t = 20)]
        lines: usize,
        /// Keep printing what they write (until Ctrl-C).
        #[arg(long, short)]
        follow: bool,
    },
    /// Delay the packets a netfilter queue holds, as a link with latency
    /// and jitter would: what `scripts/netns.sh up --latency` runs in each
    /// validator's namespace when the kernel has no netem.
    Delay(delay::DelayArgs),
}

/// The localnet directory.
#[derive(Args)]
pub struct DirArg {
    /// The directory `atoll localnet init` made.
    #[arg(long, default_value = "localnet")]
    dir: PathBuf,
}

/// `atoll localnet init`.
#[derive(Args)]
pub struct LocalnetInit {
    /// Validators (each runs as its own `atoll run --home <dir>/validator-<i>`).
    #[arg(long, default_value_t = 4)]
    validators: usize,
    /// Shards.
    #[arg(long, default_value_t = 2)]
    shards: u16,
    /// Where the homes go; must not exist yet.
    #[arg(long, default_value = "localnet")]
    dir: PathBuf,
    /// The first port: validator i uses base + 10 i, + 1 and + 2.
    #[arg(long, default_value_t = 20_000)]
    base_port: u16,
    /// The chain id.
    #[arg(long, default_value_t = 1)]
    chain_id: u64,
    /// Dev accounts to fund.
    #[arg(long, default_value_t = 100)]
    dev_accounts: usize,
    /// Balance of each dev account.
    #[arg(long, default_value_t = 1_000_000_000_000_000_000_000)]
    dev_balance: u128,
    /// Accounts of the standard test mnemonic ("test test … junk",
    /// m/44'/60'/0'/0/i) to fund too, for Ethereum wallets and libraries.
    #[arg(long, default_value_t = crate::eth_accounts::DEFAULT_ETH_DEV_ACCOUNTS)]
    eth_dev_accounts: usize,
    /// Beacon blocks per epoch; shard committees change at each epoch.
    #[arg(long, default_value_t = atoll_config::genesis::DEFAULT_EPOCH_LENGTH)]
    epoch_length: u64,
    /// Validators in each shard's committee (default: every validator, so
    /// each executes every shard). With fewer, a validator stores and
    /// executes only the shards it is assigned to in the current and the
    /// next epoch.
    #[arg(long)]
    committee_size: Option<u16>,
    /// The IPv4 address each validator listens on (RPC, metrics, p2p), one
    /// per validator, comma-separated: for validators on separate hosts or
    /// network namespaces (`scripts/netns.sh`). Default: 127.0.0.1 for all.
    #[arg(long, value_delimiter = ',', conflicts_with = "netns")]
    hosts: Vec<std::net::Ipv4Addr>,
    /// Put validator i in network namespace atoll-v<i> at 10.77.0.(10 + i),
    /// as `scripts/netns.sh up N` makes them (prefix: ATOLL_NETNS_PREFIX):
    /// `localnet start` and `perturb` then start each validator in its
    /// namespace, and whatever talks to their RPC runs in the clients'
    /// (`scripts/netns.sh exec client atoll …`).
    #[arg(long)]
    netns: bool,
}

/// Runs a `localnet` command.
pub fn run(command: LocalnetCommand) -> anyhow::Result<()> {
    match command {
        LocalnetCommand::Init(args) => init(&args),
        LocalnetCommand::Start { dir } => control::start(&dir.dir),
        LocalnetCommand::Stop { dir, timeout } => {
            control::stop(&dir.dir, Duration::from_secs(timeout))
        }
        LocalnetCommand::Status { dir, json } => control::show(&dir.dir, json),
        LocalnetCommand::Perturb(args) => perturb::run(args),
        LocalnetCommand::Logs {
            dir,
            validator,
            lines,
            follow,
        } => control::logs(&dir.dir, validator, lines, follow),
        LocalnetCommand::Delay(args) => delay::run(args),
    }
}

fn init(args: &LocalnetInit) -> anyhow::Result<()> {
    if args.validators < 2 || args.validators > MAX_VALIDATORS {
        bail!(
            "--validators must be between 2 and {MAX_VALIDATORS} (one validator: use `atoll dev`)"
        );
    }
    let last = u32::from(args.base_port) + 10 * args.validators as u32;
    if args.base_port < 1024 || last > u32::from(u16::MAX) {
        bail!(
            "--base-port {} leaves no room for {} validators (each takes 10 ports, all below 65536, from 1024 up)",
            args.base_port,
            args.validators
        );
    }
    if let Some(size) = args.committee_size {
        if size == 0 || usize::from(size) > args.validators {
            bail!(
                "--committee-size {size} must be between 1 and the {} validators",
                args.validators
            );
        }
    }
    if !args.hosts.is_empty() && args.hosts.len() != args.validators {
        bail!(
            "--hosts lists {} addresses for {} validators; give one per validator",
            args.hosts.len(),
            args.validators
        );
    }
    if args.dir.exists() {
        bail!(
            "{} exists; choose another --dir or remove it",
            args.dir.display()
        );
    }
    let keys: Vec<_> = (0..args.validators).map(|_| keyfile::generate()).collect();
    let publics: Vec<_> = keys.iter().map(|k| k.public()).collect();
    let port = |i: usize, offset: u16| args.base_port + 10 * i as u16 + offset;
    let netns = args.netns.then(netns::Netns::from_env).transpose()?;
    let host = |i: usize| match (&netns, args.hosts.get(i)) {
        (Some(_), _) => netns::validator_addr(i),
        (None, Some(host)) => *host,
        (None, None) => std::net::Ipv4Addr::LOCALHOST,
    };
    let p2p = |i: usize| format!("/ip4/{}/tcp/{}", host(i), port(i, 2));
    for (i, key) in keys.iter().enumerate() {
        let network = atoll_config::NetworkConfig {
            listen: p2p(i),
            bootnodes: keys
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(j, other)| format!("{}/p2p/{}", p2p(j), peer_id(other)))
                .collect(),
            ..atoll_config::NetworkConfig::default()
        };
        let options = InitOptions {
            chain_id: args.chain_id,
            shards: args.shards,
            dev_accounts: args.dev_accounts,
            dev_balance: args.dev_balance,
            eth_dev_accounts: args.eth_dev_accounts,
            rpc_addr: SocketAddr::from((host(i), port(i, 0))),
            metrics_addr: Some(SocketAddr::from((host(i), port(i, 1)))),
            epoch_length: args.epoch_length,
            admin_rpc: true,
            committee_size: args.committee_size,
        };
        home::init_with(
            &Home::of_validator(&args.dir, i),
            &options,
            key,
            &publics,
            &network,
            false,
        )?;
    }
    if let Some(netns) = &netns {
        netns.record(&args.dir)?;
    }
    println!(
        "Initialised a localnet of {} validators and {} shard{} in {}",
        args.validators,
        args.shards,
        if args.shards == 1 { "" } else { "s" },
        args.dir.display()
    );
    for (i, key) in keys.iter().enumerate() {
        println!(
            "  validator {i}  {}  RPC http://{}:{}  p2p {}  home {}",
            key.address(),
            host(i),
            port(i, 0),
            p2p(i),
            Home::of_validator(&args.dir, i).root().display()
        );
    }
    println!(
        "Start them all with `atoll localnet start --dir {}` (or each with `atoll run --home <home>`)",
        args.dir.display()
    );
    if args.eth_dev_accounts > 0 {
        let eth = crate::eth_accounts::derive(args.eth_dev_accounts)?;
        println!(
            "{}",
            crate::eth_accounts::anvil_listing(&eth, args.dev_balance)
        );
    }
    if args.dev_accounts > 0 {
        let first = dev_key(DEV_SEED, 0);
        println!(
            "Dev accounts: {} funded (keys in each home's dev-keys.txt), e.g. {} with key {}",
            args.dev_accounts,
            first.address(),
            Home::of_validator(&args.dir, 0).dev_key_file(0).display()
        );
    }
    Ok(())
}
