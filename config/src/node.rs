//! The node's `config.toml`.
//!
//! Every field has a default, so an empty file is a working single-node
//! configuration. Unknown fields are refused, so a misspelt key is an error
//! rather than a silently ignored setting.

use crate::error::ConfigError;
use crate::ExecutionConfig;
use serde::Deserialize;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Everything `atoll run` reads from `config.toml`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NodeConfig {
    /// Where the node keeps its stores; relative paths are taken from the
    /// home directory. Default: `data`.
    pub data_dir: PathBuf,
    /// The JSON-RPC server.
    pub rpc: RpcConfig,
    /// The Prometheus metrics endpoint.
    pub metrics: MetricsConfig,
    /// Block production.
    pub block: BlockConfig,
    /// The transaction pool.
    pub mempool: MempoolConfig,
    /// Block execution.
    pub execution: ExecutionConfig,
    /// Receipts between shards.
    pub receipts: ReceiptsConfig,
    /// The peer-to-peer network (with several validators).
    pub network: NetworkConfig,
    /// Logging.
    pub log: LogConfig,
}

impl Default for NodeConfig {
    fn default() -> NodeConfig {
        NodeConfig {
            data_dir: PathBuf::from("data"),
            rpc: RpcConfig::default(),
            metrics: MetricsConfig::default(),
            block: BlockConfig::default(),
            mempool: MempoolConfig::default(),
            execution: ExecutionConfig::default(),
            receipts: ReceiptsConfig::default(),
            network: NetworkConfig::default(),
            log: LogConfig::default(),
        }
    }
}

/// The JSON-RPC server (HTTP and WebSocket on one port).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RpcConfig {
    /// Address to listen on. Default: `127.0.0.1:8545` (loopback only).
    pub addr: SocketAddr,
    /// Largest request body accepted, in bytes. Default: 10 MiB.
    pub max_request_bytes: NonZeroUsize,
    /// Most connections served at once. Default: 100.
    pub max_connections: NonZeroUsize,
    /// Whether to serve the operator's methods (`atoll_moveAccount`).
    /// Default: false; enable it only where the RPC port is not public.
    pub admin: bool,
}

impl Default for RpcConfig {
    fn default() -> RpcConfig {
        RpcConfig {
            addr: SocketAddr::from(([127, 0, 0, 1], 8545)),
            max_request_bytes: NonZeroUsize::new(10 * 1024 * 1024).expect("non-zero constant"),
            max_connections: NonZeroUsize::new(100).expect("non-zero constant"),
            admin: false,
        }
    }
}

/// The Prometheus metrics endpoint.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Whether to serve metrics at all. Default: true.
    pub enabled: bool,
    /// Address to serve `/metrics` on. Default: `127.0.0.1:9615`.
    pub addr: SocketAddr,
}

impl Default for MetricsConfig {
    fn default() -> MetricsConfig {
        MetricsConfig {
            enabled: true,
            addr: SocketAddr::from(([127, 0, 0, 1], 9615)),
        }
    }
}

/// Block production.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BlockConfig {
    /// Time between blocks, e.g. `"500ms"` or `"2s"`; a full block is
    /// produced earlier. With several validators, a leader proposes this
    /// long after the parent's leader did (once it has executed the
    /// parent). Default: `500ms`.
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// Most transactions in one block. Default: 20,000.
    pub max_transactions: NonZeroUsize,
    /// Largest encoded block, in bytes. Default: 8 MiB.
    pub max_bytes: NonZeroUsize,
}

impl Default for BlockConfig {
    fn default() -> BlockConfig {
        BlockConfig {
            interval: Duration::from_millis(500),
            max_transactions: NonZeroUsize::new(20_000).expect("non-zero constant"),
            max_bytes: NonZeroUsize::new(8 * 1024 * 1024).expect("non-zero constant"),
        }
    }
}

/// Receipts between shards: how many may wait for one shard, and how many
/// one block credits.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReceiptsConfig {
    /// Most receipts waiting in the relay for one destination shard. Past
    /// half of it the destination says it is congested and other shards
    /// hold new transfers to it back. Default: 200,000.
    pub backlog: NonZeroUsize,
    /// Most receipts one block credits. Default: 20,000.
    pub max_per_block: NonZeroUsize,
}

impl Default for ReceiptsConfig {
    fn default() -> ReceiptsConfig {
        ReceiptsConfig {
            backlog: NonZeroUsize::new(200_000).expect("non-zero constant"),
            max_per_block: NonZeroUsize::new(20_000).expect("non-zero constant"),
        }
    }
}

/// The peer-to-peer network and consensus, used when the genesis lists
/// several validators.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NetworkConfig {
    /// The libp2p address to listen on. Default: `/ip4/127.0.0.1/tcp/7100`
    /// (loopback only: set a public address for validators on other
    /// machines).
    pub listen: String,
    /// Peers to connect to at start, as `/ip4/<ip>/tcp/<port>/p2p/<peer id>`.
    pub bootnodes: Vec<String>,
    /// Largest message (a consensus block with its payload, a sync
    /// answer), in bytes. Default: 40 MiB.
    pub max_message_bytes: NonZeroUsize,
    /// Most connections at once. Default: 64.
    pub max_connections: u32,
    /// How long a consensus height waits for its leader's proposal before
    /// voting for the empty block (doubled with each height in a row that
    /// ended empty, from the second on, up to 16 times). Default: `2s`.
    #[serde(with = "humantime_serde")]
    pub consensus_timeout: Duration,
    /// A shard this validator must execute whose store is more than this
    /// many blocks behind the shard's newest certified header is synced
    /// from a peer's state snapshot (checked against the certified state
    /// root) instead of by executing every missing block; 0 always
    /// executes them. Default: 32.
    pub state_sync_gap: u64,
}

impl Default for NetworkConfig {
    fn default() -> NetworkConfig {
        NetworkConfig {
            listen: "/ip4/127.0.0.1/tcp/7100".into(),
            bootnodes: Vec::new(),
            max_message_bytes: NonZeroUsize::new(40 * 1024 * 1024).expect("non-zero constant"),
            max_connections: 64,
            consensus_timeout: Duration::from_secs(2),
            state_sync_gap: 32,
        }
    }
}

/// The transaction pool; every limit bounds memory a client can fill.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MempoolConfig {
    /// Most transactions held in total. Default: 100,000.
    pub max_transactions: NonZeroUsize,
    /// Most transactions held for one sender. Default: 64.
    pub max_per_sender: NonZeroUsize,
    /// How far ahead of the sender's nonce a transaction may be held.
    /// Default: 128.
    pub max_nonce_gap: u64,
    /// Most bytes of encoded transactions held in total. Default: 64 MiB.
    pub max_bytes: NonZeroUsize,
    /// Most transactions held that wait on a nonce gap (they cannot run
    /// until the missing nonces arrive), so they never crowd out
    /// transactions that can. Default: a quarter of `max_transactions`.
    pub max_queued: Option<NonZeroUsize>,
}

impl MempoolConfig {
    /// `max_queued`, or its default: a quarter of `max_transactions`.
    pub fn max_queued(&self) -> NonZeroUsize {
        self.max_queued.unwrap_or_else(|| {
            NonZeroUsize::new(self.max_transactions.get() / 4).unwrap_or(NonZeroUsize::MIN)
        })
    }
}

impl Default for MempoolConfig {
    fn default() -> MempoolConfig {
        MempoolConfig {
            max_transactions: NonZeroUsize::new(100_000).expect("non-zero constant"),
            max_per_sender: NonZeroUsize::new(64).expect("non-zero constant"),
            max_nonce_gap: 128,
            max_bytes: NonZeroUsize::new(64 * 1024 * 1024).expect("non-zero constant"),
            max_queued: None,
        }
    }
}

/// How the node writes its log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines (the default).
    #[default]
    Human,
    /// One JSON object per line.
    Json,
}

/// Logging.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `human` or `json`. Default: `human`.
    pub format: LogFormat,
    /// A `tracing` filter such as `info` or `info,shard=debug`; the
    /// `RUST_LOG` environment variable overrides it. Default: `info`.
    pub filter: String,
}

impl Default for LogConfig {
    fn default() -> LogConfig {
        LogConfig {
            format: LogFormat::Human,
            filter: "info".into(),
        }
    }
}

impl NodeConfig {
    /// Parses a `config.toml`; missing fields take their defaults.
    pub fn from_toml(text: &str) -> Result<NodeConfig, ConfigError> {
        let config: NodeConfig = toml::from_str(text).map_err(|e| ConfigError::Invalid {
            section: "config.toml",
            reason: e.to_string(),
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Reads and parses the file at `path`.
    pub fn load(path: &Path) -> Result<NodeConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        NodeConfig::from_toml(&text).map_err(|e| e.in_file(path))
    }

    /// Checks what the types cannot express.
    fn validate(&self) -> Result<(), ConfigError> {
        let field = |field: &str, reason: String| ConfigError::Field {
            field: field.into(),
            reason,
        };
        if self.block.interval < Duration::from_millis(10) {
            return Err(field(
                "block.interval",
                format!("{:?} is too short; use at least 10ms", self.block.interval),
            ));
        }
        if self.receipts.backlog.get() < 2 {
            return Err(field(
                "receipts.backlog",
                "1 would leave every shard congested (congestion starts at half the backlog); use at least 2".into(),
            ));
        }
        if self.mempool.max_per_sender > self.mempool.max_transactions {
            return Err(field(
                "mempool.max_per_sender",
                format!(
                    "{} is more than mempool.max_transactions ({})",
                    self.mempool.max_per_sender, self.mempool.max_transactions
                ),
            ));
        }
        if self.mempool.max_queued() > self.mempool.max_transactions {
            return Err(field(
                "mempool.max_queued",
                format!(
                    "{} is more than mempool.max_transactions ({})",
                    self.mempool.max_queued(),
                    self.mempool.max_transactions
                ),
            ));
        }
        if self.metrics.enabled && self.metrics.addr == self.rpc.addr && self.rpc.addr.port() != 0 {
            return Err(field(
                "metrics.addr",
                format!(
                    "{} is also rpc.addr; give them different ports",
                    self.rpc.addr
                ),
            ));
        }
        Ok(())
    }
}

/// The `config.toml` that `atoll init` writes: every field, with its
/// meaning, set to its default except the two addresses given.
pub fn template(
    rpc_addr: SocketAddr,
    metrics_addr: Option<SocketAddr>,
    admin: bool,
    network: &NetworkConfig,
) -> String {
    let defaults = NodeConfig::default();
    let bootnodes = network
        .bootnodes
        .iter()
        .map(|b| format!("\n    \"{b}\","))
        .collect::<String>();
    let bootnodes = if bootnodes.is_empty() {
        "[]".to_string()
    } else {
        format!("[{bootnodes}\n]")
    };
    let metrics = match metrics_addr {
        Some(addr) => format!("enabled = true\naddr = \"{addr}\""),
        None => format!(
            "enabled = false\naddr = \"{}\"",
            MetricsConfig::default().addr
        ),
    };
    format!(
        r#"# atoll node configuration. Every field is optional; absent fields take
# the default shown. Relative paths are taken from the home directory.

# Where the node keeps its stores (one RocksDB store per shard under
# shards/<id>, the beacon's under beacon/). The vote log is not in it: it
# stays beside validator.json.
data_dir = "data"

[rpc]
# JSON-RPC over HTTP and WebSocket, on one port. Port 0 picks a free port,
# which the node prints when it starts.
addr = "{rpc_addr}"
# Largest request body accepted, in bytes (larger ones get error -32007).
max_request_bytes = {max_request_bytes}
# Most connections served at once.
max_connections = {max_connections}
# Serve the operator's methods (atoll_moveAccount: move an account to
# another shard at the next epoch; atoll_setBlockedPeers: refuse peers).
# Only where the RPC port is not public.
admin = {admin}

[metrics]
# Prometheus text at http://<addr>/metrics. Port 0 picks a free port.
{metrics}

[block]
# Time between blocks; a full block is produced earlier.
interval = "{interval}"
# Most transactions, and most encoded bytes, in one block.
max_transactions = {max_transactions}
max_bytes = {max_bytes}

[mempool]
# Most transactions held in total, and for one sender.
max_transactions = {pool_max}
max_per_sender = {per_sender}
# How far ahead of the sender's next nonce a transaction may wait.
max_nonce_gap = {gap}
# Most bytes of encoded transactions held.
max_bytes = {pool_bytes}
# Most transactions waiting on a nonce gap (they cannot run yet).
# Default: a quarter of max_transactions.
# max_queued = {queued}

[execution]
# Worker threads for signature checks and execution (default: CPU cores).
# threads = 2
# Blocks with fewer transactions run on the sequential executor.
min_parallel_block = {min_parallel}

[receipts]
# Most receipts waiting for one destination shard; past half of it the
# shard says it is congested and the others hold transfers to it back.
backlog = {backlog}
# Most receipts from other shards one block credits.
max_per_block = {max_incoming}

[network]
# Used when the genesis lists several validators (they agree on blocks
# through Simplex consensus over libp2p); a lone validator ignores it.
# The libp2p address to listen on.
listen = "{listen}"
# Peers to connect to: "/ip4/<ip>/tcp/<port>/p2p/<peer id>"; dialed at
# start and again every 3 s while not connected.
bootnodes = {bootnodes}
# Largest message (a consensus block, a sync answer), in bytes.
max_message_bytes = {max_message}
# Most connections at once.
max_connections = {max_peers}
# How long a height waits for its leader's proposal before voting to skip
# it (doubled with each height skipped in a row from the second on, up to
# 16 times).
consensus_timeout = "{consensus_timeout}"
# A shard this validator must execute whose store is more than this many
# blocks behind the shard's newest certified header is synced from a
# peer's state snapshot (checked against the certified state root) rather
# than by executing every block it missed; 0 always executes them.
state_sync_gap = {state_sync_gap}

[log]
# "human" or "json".
format = "human"
# A tracing filter, e.g. "info" or "info,atoll_shard=debug"; RUST_LOG overrides it.
filter = "{filter}"
"#,
        max_request_bytes = defaults.rpc.max_request_bytes,
        max_connections = defaults.rpc.max_connections,
        interval = humantime_serde::re::humantime::format_duration(defaults.block.interval),
        max_transactions = defaults.block.max_transactions,
        max_bytes = defaults.block.max_bytes,
        pool_max = defaults.mempool.max_transactions,
        per_sender = defaults.mempool.max_per_sender,
        gap = defaults.mempool.max_nonce_gap,
        pool_bytes = defaults.mempool.max_bytes,
        queued = defaults.mempool.max_queued(),
        min_parallel = defaults.execution.min_parallel_block,
        backlog = defaults.receipts.backlog,
        max_incoming = defaults.receipts.max_per_block,
        filter = defaults.log.filter,
        listen = network.listen,
        max_message = defaults.network.max_message_bytes,
        max_peers = defaults.network.max_connections,
        consensus_timeout =
            humantime_serde::re::humantime::format_duration(defaults.network.consensus_timeout),
        state_sync_gap = defaults.network.state_sync_gap,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_template_is_the_default_with_its_addresses() {
        let rpc: SocketAddr = "127.0.0.1:0".parse().expect("address");
        let config = NodeConfig::from_toml(&template(rpc, None, false, &NetworkConfig::default()))
            .expect("template parses");
        let mut expected = NodeConfig::default();
        expected.rpc.addr = rpc;
        expected.metrics.enabled = false;
        assert_eq!(config, expected);
        let metrics: SocketAddr = "127.0.0.1:9000".parse().expect("address");
        let config = NodeConfig::from_toml(&template(
            rpc,
            Some(metrics),
            true,
            &NetworkConfig::default(),
        ))
        .expect("parses");
        assert!(config.metrics.enabled);
        assert_eq!(config.metrics.addr, metrics);
    }

    #[test]
    fn an_empty_file_is_the_default_configuration() {
        assert_eq!(
            NodeConfig::from_toml("").expect("empty is valid"),
            NodeConfig::default()
        );
    }

    #[test]
    fn fields_parse_into_typed_values() {
        let text = "data_dir = \"/var/lib/atoll\"\n[rpc]\naddr = \"0.0.0.0:9000\"\n[block]\ninterval = \"2s\"\n[log]\nformat = \"json\"\n";
        let config = NodeConfig::from_toml(text).expect("valid");
        assert_eq!(config.data_dir, PathBuf::from("/var/lib/atoll"));
        assert_eq!(config.rpc.addr, "0.0.0.0:9000".parse().expect("address"));
        assert_eq!(config.block.interval, Duration::from_secs(2));
        assert_eq!(config.log.format, LogFormat::Json);
        assert_eq!(config.mempool, MempoolConfig::default());
    }

    #[test]
    fn errors_name_the_field_and_the_problem() {
        let cases = [
            ("[rpc]\naddr = \"localhost\"", "addr"),
            ("[block]\ninterval = \"soon\"", "interval"),
            ("[block]\ninterval = \"1ms\"", "block.interval"),
            ("[receipts]\nbacklog = 1", "receipts.backlog"),
            ("[mempool]\nmax_transactions = 0", "max_transactions"),
            (
                "[mempool]\nmax_transactions = 10\nmax_per_sender = 20",
                "mempool.max_per_sender",
            ),
            ("[metrics]\naddr = \"127.0.0.1:8545\"", "metrics.addr"),
            ("[log]\nformat = \"xml\"", "format"),
            ("[blok]\ninterval = \"1s\"", "blok"),
        ];
        for (text, field) in cases {
            let err = NodeConfig::from_toml(text).expect_err(text).to_string();
            assert!(err.contains(field), "{text:?}: {err}");
        }
    }
}
