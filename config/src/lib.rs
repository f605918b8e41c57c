//! Typed configuration for atoll, read by the node and handed down to the
//! crates that need it.
//!
//! - [`NodeConfig`]: the node's `config.toml` (data directory, RPC and metrics
//!   addresses, block interval and size limits, mempool limits, executor
//!   threads, log format). Every field has a default.
//! - [`Genesis`]: the genesis file (chain id, shard count, initial accounts,
//!   validator set), checked as it is read.
//!
//! Unknown fields are refused, and every error names the field to fix.
//!
//! ```
//! let config = atoll_config::ExecutionConfig::from_toml("threads = 4").unwrap();
//! assert_eq!(config.threads.get(), 4);
//! ```

mod error;
pub mod genesis;
pub mod node;

pub use error::ConfigError;
pub use genesis::{Genesis, GenesisValidator};
pub use node::{
    BlockConfig, LogConfig, LogFormat, MempoolConfig, MetricsConfig, NetworkConfig, NodeConfig,
    ReceiptsConfig, RpcConfig,
};
use serde::Deserialize;
use std::num::NonZeroUsize;

/// How blocks are executed.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExecutionConfig {
    /// Worker threads for signature checks, Block-STM and the state-tree
    /// update. Default: the number of CPU cores.
    pub threads: NonZeroUsize,
    /// Blocks with fewer transactions run on the sequential executor, where
    /// Block-STM's bookkeeping would cost more than it saves. Default: 64.
    pub min_parallel_block: usize,
}

impl Default for ExecutionConfig {
    fn default() -> ExecutionConfig {
        ExecutionConfig {
            threads: std::thread::available_parallelism().unwrap_or(NonZeroUsize::MIN),
            min_parallel_block: 64,
        }
    }
}

impl ExecutionConfig {
    /// Parses the `[execution]` table's contents; missing fields take defaults.
    pub fn from_toml(text: &str) -> Result<ExecutionConfig, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Invalid {
            section: "execution",
            reason: e.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_fill_missing_fields() {
        let config = ExecutionConfig::from_toml("").expect("empty config is valid");
        assert_eq!(config, ExecutionConfig::default());
    }

    #[test]
    fn errors_name_the_field() {
        let err = ExecutionConfig::from_toml("threads = 0")
            .expect_err("zero threads is invalid")
            .to_string();
        assert!(err.contains("threads"), "{err}");
        let err = ExecutionConfig::from_toml("treads = 2")
            .expect_err("unknown field")
            .to_string();
        assert!(err.contains("treads"), "{err}");
    }
}
