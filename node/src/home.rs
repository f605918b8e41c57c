//! The node's home directory and `atoll init`.
//!
//! ```text
//! <home>/config.toml        node settings (see atoll_config::NodeConfig)
//! <home>/genesis.json       chain id, shards, accounts, validators
//! <home>/validator.json     this validator's key (mode 0600)
//! <home>/validator-votes.log every vote it signed (with several validators)
//! <home>/dev-keys.txt       every dev account: index, address, secret key
//! <home>/keys/dev-<i>.json  key files of the first dev accounts
//! <home>/<data_dir>/genesis.hash       the genesis the stores were made from
//! <home>/<data_dir>/shards/<id>/       one RocksDB store per shard
//! ```

use crate::eth_accounts::{self, EthDevAccount};
use crate::keyfile;
use anyhow::{bail, Context};
use atoll_config::{Genesis, GenesisValidator, NodeConfig};
use atoll_primitives::{ChainId, KeyPair, ShardLayout};
use atoll_shard::workload::dev_key;
use rayon::prelude::*;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The seed of the dev accounts' keys: the same on every dev chain, like
/// anvil's well-known accounts, so tools can derive them.
pub const DEV_SEED: u64 = 0;
/// Dev accounts that also get a key file under `keys/`.
pub const DEV_KEY_FILES: usize = 10;
/// Dev accounts `init` prints.
pub const DEV_PRINTED: usize = 5;

/// The paths of a home directory.
#[derive(Clone, Debug)]
pub struct Home {
    root: PathBuf,
}

impl Home {
    /// The home of validator `i` of a local testnet in `dir`.
    pub fn of_validator(dir: &Path, i: usize) -> Home {
        Home::new(dir.join(format!("validator-{i}")))
    }

    /// The home at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Home {
        Home { root: root.into() }
    }

    /// The directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `config.toml`.
    pub fn config(&self) -> PathBuf {
        self.root.join("config.toml")
    }

    /// `genesis.json`.
    pub fn genesis(&self) -> PathBuf {
        self.root.join("genesis.json")
    }

    /// The validator's key file.
    pub fn validator_key(&self) -> PathBuf {
        self.root.join("validator.json")
    }

    /// The list of dev keys.
    pub fn dev_keys(&self) -> PathBuf {
        self.root.join("dev-keys.txt")
    }

    /// The key file of dev account `index` (the first few only).
    pub fn dev_key_file(&self, index: usize) -> PathBuf {
        self.root.join("keys").join(format!("dev-{index}.json"))
    }

    /// The vote log: every vote this validator signed (see
    /// `atoll_storage::VoteLog`); beside the key, outside the data
    /// directory, and never to be restored from a backup.
    pub fn vote_log(&self) -> PathBuf {
        self.root.join("validator-votes.log")
    }

    /// The data directory named by `config`.
    pub fn data_dir(&self, config: &NodeConfig) -> PathBuf {
        self.root.join(&config.data_dir)
    }

    /// Whether `init` has run here.
    pub fn is_initialised(&self) -> bool {
        self.config().exists()
    }
}

/// What `atoll init` is asked for.
#[derive(Clone, Debug)]
pub struct InitOptions {
    /// The chain id.
    pub chain_id: u64,
    /// The number of shards.
    pub shards: u16,
    /// Dev accounts to fund.
    pub dev_accounts: usize,
    /// Balance of each dev account.
    pub dev_balance: u128,
    /// Accounts of the standard test mnemonic to fund too (with the same
    /// balance; see `eth_accounts`).
    pub eth_dev_accounts: usize,
    /// The RPC address.
    pub rpc_addr: SocketAddr,
    /// The metrics address, None for no metrics.
    pub metrics_addr: Option<SocketAddr>,
    /// Beacon blocks per epoch.
    pub epoch_length: u64,
    /// Whether the RPC serves the operator's methods.
    pub admin_rpc: bool,
    /// Validators per shard committee (None: every validator).
    pub committee_size: Option<u16>,
}

/// Writes config, genesis, validator key and dev keys into `home`, which
/// must not hold a node yet. Prints what it made.
pub fn init(home: &Home, options: &InitOptions) -> anyhow::Result<()> {
    let validator = keyfile::generate();
    init_with(
        home,
        options,
        &validator,
        &[validator.public()],
        &atoll_config::NetworkConfig::default(),
        true,
    )
}

/// As [`init`], with this validator's `key`, the genesis's `validators`
/// (stake 1 each) and the `network` section of the config; prints what it
/// made when `verbose`.
pub fn init_with(
    home: &Home,
    options: &InitOptions,
    key: &KeyPair,
    validators: &[atoll_primitives::PublicKey],
    network: &atoll_config::NetworkConfig,
    verbose: bool,
) -> anyhow::Result<()> {
    if home.is_initialised() {
        bail!(
            "{} already holds a node (config.toml exists); choose another --home or remove it",
            home.root().display()
        );
    }
    if options.chain_id == 0 || ChainId(options.chain_id) == ChainId::RESERVED {
        bail!(
            "--chain-id must not be 0 or {} (reserved: it marks Ethereum transactions)",
            u64::MAX
        );
    }
    let layout = match ShardLayout::uniform(options.shards) {
        Some(layout) if options.shards <= atoll_config::genesis::MAX_SHARDS => layout,
        _ => bail!(
            "--shards must be between 1 and {}",
            atoll_config::genesis::MAX_SHARDS
        ),
    };
    if options.epoch_length == 0 || options.epoch_length > atoll_config::genesis::MAX_EPOCH_LENGTH {
        bail!(
            "--epoch-length must be between 1 and {} beacon blocks",
            atoll_config::genesis::MAX_EPOCH_LENGTH
        );
    }
    std::fs::create_dir_all(home.root().join("keys"))
        .with_context(|| format!("cannot create {}", home.root().display()))?;
    let validator = key;
    keyfile::write(&home.validator_key(), validator)?;

    let started = std::time::Instant::now();
    let keys: Vec<KeyPair> = (0..options.dev_accounts as u64)
        .into_par_iter()
        .map(|i| dev_key(DEV_SEED, i))
        .collect();
    if options.eth_dev_accounts > eth_accounts::MAX_ETH_DEV_ACCOUNTS {
        bail!(
            "--eth-dev-accounts must be at most {}",
            eth_accounts::MAX_ETH_DEV_ACCOUNTS
        );
    }
    let eth_keys = eth_accounts::derive(options.eth_dev_accounts)?;
    let genesis = Genesis {
        chain_id: ChainId(options.chain_id),
        layout,
        epoch_length: options.epoch_length,
        accounts: keys
            .iter()
            .map(KeyPair::address)
            .chain(eth_keys.iter().map(EthDevAccount::address))
            .map(|address| (address, options.dev_balance))
            .collect(),
        validators: validators
            .iter()
            .map(|public_key| GenesisValidator {
                public_key: *public_key,
                stake: 1,
            })
            .collect(),
        committee_size: options
            .committee_size
            .unwrap_or(u16::try_from(validators.len()).unwrap_or(u16::MAX)),
        gas: atoll_primitives::GasRules::default(),
    };
    write_dev_keys(home, &keys)?;
    for (i, key) in keys.iter().enumerate().take(DEV_KEY_FILES) {
        keyfile::write(&home.dev_key_file(i), key)?;
    }
    std::fs::write(home.genesis(), genesis.to_json() + "\n")
        .with_context(|| format!("cannot write {}", home.genesis().display()))?;
    // The config goes last: its presence marks a finished init.
    let config = atoll_config::node::template(
        options.rpc_addr,
        options.metrics_addr,
        options.admin_rpc,
        network,
    );
    std::fs::write(home.config(), config)
        .with_context(|| format!("cannot write {}", home.config().display()))?;
    if !verbose {
        return Ok(());
    }
    println!(
        "Initialised {} in {:.1?}",
        home.root().display(),
        started.elapsed()
    );
    println!(
        "  chain id   {} ({} shard{})",
        options.chain_id,
        options.shards,
        if options.shards == 1 { "" } else { "s" }
    );
    println!(
        "  validator  {} (key in {})",
        validator.address(),
        home.validator_key().display()
    );
    println!("  config     {}", home.config().display());
    println!(
        "  genesis    {} ({} funded accounts)",
        home.genesis().display(),
        keys.len()
    );
    if !keys.is_empty() {
        print_dev_accounts(home, &keys, keys.len(), options.dev_balance, layout);
    }
    if !eth_keys.is_empty() {
        println!();
        println!(
            "{}",
            eth_accounts::anvil_listing(&eth_keys, options.dev_balance)
        );
    }
    Ok(())
}

/// Prints the first dev accounts with their key files.
pub fn print_dev_accounts(
    home: &Home,
    keys: &[KeyPair],
    total: usize,
    balance: u128,
    layout: ShardLayout,
) {
    println!(
        "Dev accounts (every key is listed in {}):",
        home.dev_keys().display()
    );
    for (i, key) in keys.iter().enumerate().take(DEV_PRINTED) {
        println!(
            "  ({i}) {}  shard {}  balance {balance}  key {}",
            key.address(),
            layout.shard_of(&key.address()),
            home.dev_key_file(i).display()
        );
    }
    let shown = keys.len().min(DEV_PRINTED);
    if total > shown {
        println!("  … and {} more", total - shown);
    }
}

fn write_dev_keys(home: &Home, keys: &[KeyPair]) -> anyhow::Result<()> {
    let mut text = Vec::with_capacity(keys.len() * 120 + 200);
    writeln!(
        text,
        "# atoll dev accounts: index, address, secret key. Dev keys are well known:\n# never fund them on a real chain."
    )?;
    for (i, key) in keys.iter().enumerate() {
        writeln!(text, "{i} {} 0x{}", key.address(), hex::encode(key.seed()))?;
    }
    keyfile::write_private(&home.dev_keys(), &text)
}

/// Ties the data directory to one genesis: the first start records the
/// genesis file's hash, and a later start with a different genesis file is
/// refused (its stores were built from the other one).
pub fn check_genesis_binding(data_dir: &Path, genesis_bytes: &[u8]) -> anyhow::Result<()> {
    let hash = blake3::hash(genesis_bytes).to_hex().to_string();
    let path = data_dir.join("genesis.hash");
    match std::fs::read_to_string(&path) {
        Ok(recorded) if recorded.trim() == hash => Ok(()),
        Ok(recorded) => bail!(
            "{} was created from another genesis file (hash {}, this one is {hash}); \
             restore that genesis.json or use a fresh data directory",
            data_dir.display(),
            recorded.trim()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let shards = data_dir.join("shards");
            if shards.exists() && std::fs::read_dir(&shards)?.next().is_some() {
                bail!(
                    "{} holds stores but no genesis.hash; it was not made by this node version",
                    data_dir.display()
                );
            }
            std::fs::create_dir_all(data_dir)
                .with_context(|| format!("cannot create {}", data_dir.display()))?;
            keyfile::write_private(&path, format!("{hash}\n").as_bytes())
        }
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
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
    /// Balance of each dev account, in the smallest unit (shown to
    /// Ethereum tools as wei).
    #[arg(long, default_value_t = 1_000_000_000_000_000_000_000)]
    dev_balance: u128,
    /// Accounts of the standard test mnemonic ("test test … junk",
    /// m/44'/60'/0'/0/i, as anvil and Hardhat fund them) to fund too, for
    /// Ethereum wallets and libraries.
    #[arg(long, default_value_t = eth_accounts::DEFAULT_ETH_DEV_ACCOUNTS)]
    eth_dev_accounts: usize,
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
    pub fn epoch_length(&self) -> Option<u64> {
        self.epoch_length
    }

    /// The options of `atoll init` these arguments give.
    pub fn options(&self) -> InitOptions {
        InitOptions {
            chain_id: self.chain_id,
            shards: self.shards,
            dev_accounts: self.dev_accounts,
            dev_balance: self.dev_balance,
            eth_dev_accounts: self.eth_dev_accounts,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_data_directory_stays_bound_to_its_genesis() {
        let dir = tempfile::tempdir().expect("temp dir");
        let data = dir.path().join("data");
        check_genesis_binding(&data, b"one").expect("first start records it");
        check_genesis_binding(&data, b"one").expect("same genesis");
        let err = check_genesis_binding(&data, b"two").expect_err("other genesis");
        assert!(err.to_string().contains("another genesis"), "{err}");
    }

    #[test]
    fn init_writes_a_home_a_node_can_load_and_refuses_to_overwrite_it() {
        let dir = tempfile::tempdir().expect("temp dir");
        let home = Home::new(dir.path().join("h"));
        let options = InitOptions {
            chain_id: 7,
            shards: 1,
            dev_accounts: 12,
            dev_balance: 1_000,
            eth_dev_accounts: 2,
            rpc_addr: "127.0.0.1:0".parse().expect("addr"),
            metrics_addr: None,
            epoch_length: 50,
            admin_rpc: false,
            committee_size: None,
        };
        init(&home, &options).expect("init");
        let genesis = Genesis::load(&home.genesis()).expect("genesis loads");
        assert_eq!(genesis.chain_id, ChainId(7));
        assert_eq!(genesis.accounts.len(), 12 + 2);
        assert_eq!(genesis.epoch_length, 50);
        assert_eq!(genesis.accounts[3].0, dev_key(DEV_SEED, 3).address());
        let eth = eth_accounts::derive(2).expect("derives");
        assert_eq!(genesis.accounts[12], (eth[0].address(), 1_000));
        assert_eq!(genesis.accounts[13], (eth[1].address(), 1_000));
        NodeConfig::load(&home.config()).expect("config loads");
        let key = keyfile::read(&home.dev_key_file(0)).expect("dev key file");
        assert_eq!(key.address(), genesis.accounts[0].0);
        assert!(!home.dev_key_file(DEV_KEY_FILES).exists());
        let listed = std::fs::read_to_string(home.dev_keys()).expect("dev keys");
        assert_eq!(listed.lines().filter(|l| !l.starts_with('#')).count(), 12);
        assert!(init(&home, &options).is_err());
    }
}
