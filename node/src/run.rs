//! `atoll run`: load the home, open the shard, start the threads and the
//! servers, and run until SIGINT or SIGTERM.

use crate::home::{check_genesis_binding, Home};
use crate::keyfile;
use crate::metrics::{self, Metrics};
use crate::query::NodeView;
use crate::rpc;
use crate::service::common::shared::ConsensusStatus;
use crate::service::network;
use crate::service::network::builder::Builder;
use crate::service::network::committee_view::{Certifier, CommitteeView};
use crate::service::network::host::{self, MachineStart, NodeHost};
use crate::service::network::router::{self, PeerRouter, ShardLink};
use crate::service::network::NetworkParts;
use crate::service::{ChainParams, Mode, Service};
use anyhow::{bail, Context};
use atoll_config::{Genesis, LogFormat, NodeConfig};
use atoll_primitives::hash::domain;
use atoll_primitives::{Account, Hash, KeyPair, ShardId, StateKey, StateValue};
use atoll_shard::ShardChain;
use atoll_storage::{BeaconStore, StoreIdentity};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What a started node listens on.
#[derive(Clone, Copy, Debug)]
pub struct Endpoints {
    /// The RPC address.
    pub rpc: SocketAddr,
    /// The metrics address, if served.
    pub metrics: Option<SocketAddr>,
}

/// Sets up logging from the node's config (`RUST_LOG` overrides the filter).
pub fn init_logging(config: &NodeConfig) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&config.log.filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        // Colours only for a terminal: a log file gets plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let _ = match config.log.format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// Loads the config of `home` (for logging before the node starts).
pub fn load_config(home: &Home) -> anyhow::Result<NodeConfig> {
    if !home.is_initialised() {
        bail!(
            "{} has no config.toml; run `atoll init --home {}` first",
            home.root().display(),
            home.root().display()
        );
    }
    Ok(NodeConfig::load(&home.config())?)
}

/// Runs the node of `home` until a signal; `on_ready` is called once it
/// serves RPC. Returns Ok after a clean shutdown.
pub async fn run(
    home: &Home,
    config: NodeConfig,
    on_ready: impl FnOnce(Endpoints),
) -> anyhow::Result<()> {
    let started = Instant::now();
    // Listen for signals before anything announces the node, so a signal
    // sent as soon as it is up is handled, not fatal.
    let signals = Signals::new()?;
    let genesis_bytes = std::fs::read(home.genesis())
        .with_context(|| format!("cannot read {}", home.genesis().display()))?;
    let genesis = Genesis::from_json(&String::from_utf8_lossy(&genesis_bytes))
        .map_err(|e| e.in_file(&home.genesis()))?;
    let validator = keyfile::read(&home.validator_key())?;
    let genesis_hash = Hash::domain(&domain::GENESIS, &[&genesis_bytes]);
    let index = genesis
        .validators
        .iter()
        .position(|v| v.public_key == validator.public());
    let mode = if genesis.validators.len() == 1 {
        if index.is_none() {
            bail!(
                "genesis.json lists one validator, and it is not this node's key {}: a lone \
                 validator finalizes blocks alone, so it must be this node",
                validator.address()
            );
        }
        Mode::Solo
    } else {
        if index.is_none() {
            tracing::warn!(
                target: "node",
                key = %validator.address(),
                "this node's key is not among the genesis validators: it follows the chain without voting"
            );
        }
        let stakes: Vec<_> = genesis
            .validators
            .iter()
            .map(|v| (v.public_key, v.stake))
            .collect();
        let set = atoll_consensus::simplex::ValidatorSet::new(&stakes)
            .context("genesis.json's validators")?;
        let index = index.map(|i| i as u16);
        Mode::Network {
            genesis: genesis_hash,
            index,
            committee: Arc::new(CommitteeView {
                chain: genesis.chain_id,
                committees: Arc::new(atoll_consensus::Committees::new(
                    set,
                    genesis.layout.shard_count(),
                    usize::from(genesis.committee_size),
                    genesis_hash,
                )),
                shards: genesis.layout.shard_count(),
                key: index.map(|i| (i, validator.clone())),
                network: std::sync::OnceLock::new(),
                certifier: parking_lot::Mutex::new(Certifier::default()),
                peers: parking_lot::Mutex::new(std::collections::BTreeMap::new()),
                pushed: Default::default(),
            }),
        }
    };
    let data_dir = home.data_dir(&config);
    check_genesis_binding(&data_dir, &genesis_bytes)?;
    drop(genesis_bytes);
    let layout = genesis.layout;
    let mut per_shard: Vec<Vec<(StateKey, StateValue)>> =
        vec![Vec::new(); usize::from(layout.shard_count())];
    for (address, balance) in &genesis.accounts {
        per_shard[usize::from(layout.shard_of(address).0)].push((
            StateKey::Account(*address),
            StateValue::Account(Account {
                balance: *balance,
                nonce: 0,
            }),
        ));
    }
    // The cores are shared out among the shards rather than each shard
    // taking all of them: shards run side by side, and pools larger than
    // the machine only add context switches.
    let threads = std::num::NonZeroUsize::new(
        config.execution.threads.get() / usize::from(layout.shard_count()),
    )
    .unwrap_or(std::num::NonZeroUsize::MIN);
    // The shards open in parallel: each rebuilds its state tree.
    let mut opening = Vec::new();
    for (number, accounts) in per_shard.into_iter().enumerate() {
        let shard = ShardId(u16::try_from(number)?);
        let identity = StoreIdentity {
            chain_id: genesis.chain_id,
            shard,
        };
        let path = data_dir.join("shards").join(shard.0.to_string());
        opening.push(tokio::task::spawn_blocking(move || {
            ShardChain::open(&path, identity, layout, &accounts, threads)
                .with_context(|| format!("cannot open shard {} at {}", shard, path.display()))
        }));
    }
    let mut chains = Vec::new();
    for opened in opening {
        let mut chain = opened.await??;
        chain.set_min_parallel_block(config.execution.min_parallel_block);
        chain.set_gas_rules(genesis.gas);
        tracing::info!(
            target: "node",
            head = chain.head().height,
            state_root = %chain.head().state_root,
            "shard {} opened",
            chain.head().shard
        );
        chains.push(chain);
    }

    let metrics = Arc::new(Metrics::new());
    let beacon_path = data_dir.join("beacon");
    let beacon_store = BeaconStore::open(&beacon_path, genesis.chain_id)
        .with_context(|| format!("cannot open the beacon store at {}", beacon_path.display()))?;
    let params = ChainParams {
        validators: genesis.validators.clone(),
        epoch_length: genesis.epoch_length,
    };
    let mut service = Service::start(
        chains,
        beacon_store,
        &params,
        &config,
        Arc::clone(&metrics),
        mode,
    )?;
    if let Some(parts) = service.network.take() {
        if let Err(e) = start_network(
            parts,
            &service,
            &genesis,
            genesis_hash,
            Signer {
                key: &validator,
                vote_log: home.vote_log(),
            },
            &config,
            &metrics,
        )
        .await
        {
            tokio::task::spawn_blocking(move || service.stop()).await?;
            return Err(e);
        }
    }
    let (rpc_handle, rpc_addr) = match rpc::start(
        &config.rpc,
        NodeView::new(service.shards.clone(), service.new_heads.clone()),
    )
    .await
    {
        Ok(started) => started,
        Err(e) => {
            tokio::task::spawn_blocking(move || service.stop()).await?;
            return Err(e);
        }
    };
    let metrics_addr = if config.metrics.enabled {
        let (listener, addr) = metrics::bind(config.metrics.addr)
            .await
            .with_context(|| format!("cannot serve metrics on {}", config.metrics.addr))?;
        tokio::spawn(metrics::serve(listener, metrics));
        Some(addr)
    } else {
        None
    };
    tracing::info!(
        target: "node",
        rpc = %rpc_addr,
        metrics = ?metrics_addr,
        took_ms = started.elapsed().as_millis() as u64,
        "node started"
    );
    on_ready(Endpoints {
        rpc: rpc_addr,
        metrics: metrics_addr,
    });

    let failed = signals.wait_for_stop(&service).await;
    tracing::info!(target: "node", "shutting down");
    let _ = rpc_handle.stop();
    tokio::task::spawn_blocking(move || service.stop()).await?;
    rpc_handle.stopped().await;
    if failed {
        bail!("block production failed; see the log above");
    }
    tracing::info!(target: "node", "stopped cleanly");
    Ok(())
}

/// This validator's key and the log of what it signed.
struct Signer<'a> {
    key: &'a KeyPair,
    vote_log: std::path::PathBuf,
}

/// Starts the libp2p network and the consensus engine of a node with
/// other validators.
async fn start_network(
    parts: NetworkParts,
    service: &Service,
    genesis: &Genesis,
    genesis_hash: Hash,
    signer: Signer<'_>,
    config: &NodeConfig,
    metrics: &Arc<Metrics>,
) -> anyhow::Result<()> {
    let net = &config.network;
    let validator = signer.key;
    let (votes, records) = host::open_votes(&signer.vote_log, &parts.keeper.store)?;
    let listen = net
        .listen
        .parse()
        .with_context(|| format!("network.listen: {:?} is not a multiaddr", net.listen))?;
    let mut p2p =
        atoll_p2p::P2pConfig::new(genesis.chain_id.0, network::p2p_secret(validator), listen);
    for (i, bootnode) in net.bootnodes.iter().enumerate() {
        p2p.bootnodes.push(
            bootnode.parse().with_context(|| {
                format!("network.bootnodes[{i}]: {bootnode:?} is not a multiaddr")
            })?,
        );
    }
    let limit = net.max_message_bytes.get();
    p2p.max_message_bytes = limit;
    p2p.max_connections = net.max_connections;
    let (handle, events) =
        atoll_p2p::start(p2p).with_context(|| format!("cannot listen on {}", net.listen))?;
    let _ = parts.consensus.peer_id.set(handle.peer_id().to_string());
    let _ = parts.consensus.network.set(handle.clone());
    let committee = Arc::clone(&parts.committee);
    let _ = committee.network.set(handle.clone());
    tracing::info!(target: "node", peer_id = %handle.peer_id(), listen = %net.listen, "network started");
    tokio::spawn(network::gossip_out(handle.clone(), parts.gossip));
    // The set the committees were drawn from (checked when they were made).
    let validators = committee.committees.validators().clone();
    let key = parts.consensus.index.map(|i| (i, validator.clone()));
    let machine = host::machine(
        MachineStart {
            chain: genesis.chain_id,
            validators,
            key,
            genesis: genesis_hash,
            timeout: net.consensus_timeout,
        },
        &parts.keeper.store,
        &records,
        limit,
    )?;
    let builder = Arc::new(Builder {
        shards: service.shards.clone(),
        progress: parts.progress,
        interval: config.block.interval,
        patience: net.consensus_timeout / 2,
        max_transactions: config.block.max_transactions.get(),
        max_bytes: config.block.max_bytes.get(),
        max_receipts: u32::try_from(config.receipts.max_per_block.get()).unwrap_or(u32::MAX),
        committee: Arc::clone(&committee),
        keeper: Arc::clone(&parts.keeper),
    });
    let router = PeerRouter {
        keeper: Arc::clone(&parts.keeper),
        shards: service
            .shards
            .iter()
            .map(|s| ShardLink {
                admission: s.admission.clone(),
                shared: Arc::clone(s),
            })
            .collect(),
        network: handle.clone(),
        metrics: Arc::clone(metrics),
        limit,
        committee,
        stores: service
            .shards
            .iter()
            .map(|s| Arc::clone(&s.store))
            .collect(),
        served: Arc::default(),
        serving: Arc::new(tokio::sync::Semaphore::new(router::MAX_SERVING)),
    };
    let host = NodeHost {
        keeper: parts.keeper,
        blocks: parts.blocks,
        builder,
        votes,
        pruned_below: 0,
    };
    let status: Arc<ConsensusStatus> = Arc::clone(&parts.consensus.status);
    network::spawn(
        machine,
        handle,
        events,
        host,
        router,
        status,
        service.stopping(),
    );
    Ok(())
}

/// SIGINT and SIGTERM, listened for.
struct Signals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> anyhow::Result<Signals> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
        })
    }

    /// Waits for SIGINT or SIGTERM (false) or for the producer to stop on
    /// an error (true).
    async fn wait_for_stop(mut self, service: &Service) -> bool {
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        loop {
            tokio::select! {
                _ = self.interrupt.recv() => return false,
                _ = self.terminate.recv() => return false,
                _ = tick.tick() => if service.is_stopping() { return true },
            }
        }
    }
}

/// A multi-threaded tokio runtime with I/O and timers, for the commands
/// that talk to a node or run one.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}
