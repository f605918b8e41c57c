//! `atoll dev`: a local node with funded dev accounts in one command.

use crate::home::{self, Home, InitArgs, DEV_SEED};
use crate::run::{self, Endpoints};

/// Beacon blocks per epoch on a dev node unless `--epoch-length` says
/// otherwise: a few seconds.
const DEV_EPOCH_LENGTH: u64 = 100;
use atoll_config::Genesis;
use atoll_shard::workload::dev_key;
use clap::Args;
use std::io::Write;
use std::path::PathBuf;

/// `atoll dev`.
#[derive(Args)]
pub struct DevArgs {
    /// The home directory: reused if it holds a node, initialised if not.
    /// Default: `atoll-dev` in the system's temporary directory.
    #[arg(long)]
    home: Option<PathBuf>,
    /// Delete the home directory first and start a fresh chain.
    #[arg(long)]
    fresh: bool,
    #[command(flatten)]
    init: InitArgs,
}

/// Prints where the node listens (on stdout, which scripts read).
pub fn print_endpoints(endpoints: Endpoints) {
    println!(
        "RPC listening on http://{} (WebSocket: ws://{})",
        endpoints.rpc, endpoints.rpc
    );
    match endpoints.metrics {
        Some(addr) => println!("Metrics on http://{addr}/metrics"),
        None => println!("Metrics off"),
    }
    let _ = std::io::stdout().flush();
}

/// Runs `atoll dev`.
pub fn dev(args: DevArgs) -> anyhow::Result<()> {
    let root = args
        .home
        .unwrap_or_else(|| std::env::temp_dir().join("atoll-dev"));
    let home = Home::new(&root);
    if args.fresh && root.exists() {
        std::fs::remove_dir_all(&root)?;
    }
    if home.is_initialised() {
        println!(
            "Reusing the dev home {} (its chain and settings are kept, init options are ignored; pass --fresh to start over)",
            root.display()
        );
    } else {
        let options = home::InitOptions {
            // A local dev node is the operator's own: its admin methods are
            // on, and its epochs short, so a move shows within seconds.
            admin_rpc: true,
            committee_size: None,
            epoch_length: args.init.epoch_length().unwrap_or(DEV_EPOCH_LENGTH),
            ..args.init.options()
        };
        home::init(&home, &options)?;
    }
    let config = run::load_config(&home)?;
    run::init_logging(&config);
    let genesis = Genesis::load(&home.genesis())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run::run(&home, config, |endpoints| {
        println!();
        print_endpoints(endpoints);
        let dev_keys: Vec<_> = (0..home::DEV_PRINTED as u64)
            .map(|i| dev_key(DEV_SEED, i))
            .take_while(|k| genesis.accounts.iter().any(|(a, _)| *a == k.address()))
            .collect();
        if let Some(first) = dev_keys.first() {
            let balance = genesis
                .accounts
                .iter()
                .find(|(a, _)| *a == first.address())
                .map_or(0, |(_, b)| *b);
            home::print_dev_accounts(
                &home,
                &dev_keys,
                genesis.accounts.len(),
                balance,
                genesis.layout,
            );
            let eth: Vec<_> =
                crate::eth_accounts::derive(crate::eth_accounts::DEFAULT_ETH_DEV_ACCOUNTS)
                    .unwrap_or_default()
                    .into_iter()
                    .take_while(|a| genesis.accounts.iter().any(|(g, _)| *g == a.address()))
                    .collect();
            if !eth.is_empty() {
                println!();
                println!("{}", crate::eth_accounts::anvil_listing(&eth, balance));
            }
            println!();
            println!("Try:");
            println!(
                "  atoll tx transfer --rpc http://{} --key {} --to {} --amount 1000 --wait",
                endpoints.rpc,
                home.dev_key_file(0).display(),
                dev_key(DEV_SEED, 1).address()
            );
            if genesis.layout.shard_count() > 1 {
                println!(
                    "  atoll admin move-account {} --to {} --rpc http://{}   (next epoch)",
                    dev_key(DEV_SEED, 0).address(),
                    (genesis.layout.shard_of(&dev_key(DEV_SEED, 0).address()).0 + 1)
                        % genesis.layout.shard_count(),
                    endpoints.rpc,
                );
            }
        }
        println!("Stop with Ctrl-C; the chain is kept in {}.", root.display());
        let _ = std::io::stdout().flush();
    }))
}
