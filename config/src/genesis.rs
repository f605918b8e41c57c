//! The genesis file (`genesis.json`): the chain id, the number of shards, the
//! initial accounts and the validator set.
//!
//! Balances are decimal strings, because they are 128-bit numbers, which
//! JSON numbers cannot carry exactly:
//!
//! ```json
//! {
//!   "chain_id": 1,
//!   "shard_count": 2,
//!   "accounts": [{ "address": "0x00…", "balance": "1000000" }],
//!   "validators": [{ "public_key": "<64 hex digits>", "stake": 100 }]
//! }
//! ```

use crate::error::ConfigError;
use atoll_primitives::{Address, ChainId, GasRules, PublicKey, ShardLayout};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;

/// Most shards a chain may have.
pub const MAX_SHARDS: u16 = 1024;

/// A validator of the genesis set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GenesisValidator {
    /// Its signing key.
    pub public_key: PublicKey,
    /// Its voting weight.
    pub stake: u64,
}

/// A checked genesis.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Genesis {
    /// The chain id every transaction must carry.
    pub chain_id: ChainId,
    /// The shards and which addresses each holds.
    pub layout: ShardLayout,
    /// Beacon blocks per epoch; shard map changes (account moves) take
    /// effect at epoch boundaries.
    pub epoch_length: u64,
    /// Initial balances, in file order, no address twice.
    pub accounts: Vec<(Address, u128)>,
    /// The validator set, no key twice, every stake positive.
    pub validators: Vec<GenesisValidator>,
    /// Validators in each shard's committee (between 1 and the number of
    /// validators; all of them unless the file says otherwise). Every
    /// validator is in the beacon committee.
    pub committee_size: u16,
    /// The gas rules of contract transactions (block gas limit, base fee).
    pub gas: GasRules,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct GenesisFile {
    chain_id: u64,
    shard_count: u16,
    #[serde(default = "default_epoch_length")]
    epoch_length: u64,
    accounts: Vec<AccountEntry>,
    validators: Vec<ValidatorEntry>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    committee_size: Option<u16>,
    /// The most gas (by gas limit) one shard block's contract transactions
    /// may buy.
    #[serde(default = "default_block_gas_limit")]
    block_gas_limit: u64,
    /// The least price per gas a contract transaction may offer.
    #[serde(default = "default_base_fee")]
    base_fee: u64,
}

fn default_block_gas_limit() -> u64 {
    atoll_primitives::gas::DEFAULT_BLOCK_GAS_LIMIT
}

fn default_base_fee() -> u64 {
    atoll_primitives::gas::DEFAULT_BASE_FEE
}

/// The smallest block gas limit a genesis may set (a few contract
/// deployments).
pub const MIN_BLOCK_GAS_LIMIT: u64 = 30_000_000;
/// The largest block gas limit a genesis may set.
pub const MAX_BLOCK_GAS_LIMIT: u64 = 100_000_000_000;

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct AccountEntry {
    address: String,
    balance: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ValidatorEntry {
    public_key: String,
    stake: u64,
}

/// Beacon blocks per epoch unless the genesis file says otherwise.
pub const DEFAULT_EPOCH_LENGTH: u64 = 1_000;
/// The longest epoch a genesis file may ask for.
pub const MAX_EPOCH_LENGTH: u64 = 1_000_000;

fn default_epoch_length() -> u64 {
    DEFAULT_EPOCH_LENGTH
}

fn field(field: String, reason: String) -> ConfigError {
    ConfigError::Field { field, reason }
}

impl Genesis {
    /// Parses and checks a genesis file's text.
    pub fn from_json(text: &str) -> Result<Genesis, ConfigError> {
        let mut deserializer = serde_json::Deserializer::from_str(text);
        let file: GenesisFile = serde_path_to_error::deserialize(&mut deserializer)
            .map_err(|e| field(e.path().to_string(), e.inner().to_string()))?;
        deserializer
            .end()
            .map_err(|e| field(".".into(), e.to_string()))?;
        Genesis::check(file)
    }

    /// Reads and checks the genesis file at `path`.
    pub fn load(path: &Path) -> Result<Genesis, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        Genesis::from_json(&text).map_err(|e| e.in_file(path))
    }

    fn check(file: GenesisFile) -> Result<Genesis, ConfigError> {
        if file.chain_id == 0 {
            return Err(field("chain_id".into(), "must not be 0".into()));
        }
        if ChainId(file.chain_id) == ChainId::RESERVED {
            return Err(field(
                "chain_id".into(),
                format!(
                    "{} is reserved: it marks Ethereum transactions in atoll's encoding",
                    file.chain_id
                ),
            ));
        }
        if file.shard_count == 0 || file.shard_count > MAX_SHARDS {
            return Err(field(
                "shard_count".into(),
                format!("{} is not between 1 and {MAX_SHARDS}", file.shard_count),
            ));
        }
        let layout = ShardLayout::uniform(file.shard_count).expect("shard count checked above");
        if file.epoch_length == 0 || file.epoch_length > MAX_EPOCH_LENGTH {
            return Err(field(
                "epoch_length".into(),
                format!(
                    "{} is not between 1 and {MAX_EPOCH_LENGTH} beacon blocks",
                    file.epoch_length
                ),
            ));
        }
        let mut accounts = Vec::with_capacity(file.accounts.len());
        let mut seen: HashMap<Address, usize> = HashMap::new();
        let mut supply: u128 = 0;
        for (i, entry) in file.accounts.iter().enumerate() {
            let address: Address = entry
                .address
                .parse()
                .map_err(|e| field(format!("accounts[{i}].address"), e))?;
            if let Some(first) = seen.insert(address, i) {
                return Err(field(
                    format!("accounts[{i}].address"),
                    format!("{address} is already accounts[{first}]"),
                ));
            }
            let balance: u128 = entry.balance.parse().map_err(|_| {
                field(
                    format!("accounts[{i}].balance"),
                    format!("{:?} is not a whole number below 2^128", entry.balance),
                )
            })?;
            supply = supply.checked_add(balance).ok_or_else(|| {
                field(
                    format!("accounts[{i}].balance"),
                    "the balances add up to more than 2^128 - 1".into(),
                )
            })?;
            accounts.push((address, balance));
        }
        if file.validators.is_empty() {
            return Err(field(
                "validators".into(),
                "at least one validator is needed".into(),
            ));
        }
        let mut validators = Vec::with_capacity(file.validators.len());
        let mut total_stake: u64 = 0;
        for (i, entry) in file.validators.iter().enumerate() {
            let name = format!("validators[{i}].public_key");
            let mut bytes = [0u8; 32];
            hex::decode_to_slice(
                entry
                    .public_key
                    .strip_prefix("0x")
                    .unwrap_or(&entry.public_key),
                &mut bytes,
            )
            .map_err(|e| {
                field(
                    name.clone(),
                    format!("{:?} is not 64 hex digits: {e}", entry.public_key),
                )
            })?;
            let public_key = PublicKey(bytes);
            public_key
                .verifying_key()
                .map_err(|e| field(name.clone(), e.to_string()))?;
            if let Some(first) = validators
                .iter()
                .position(|v: &GenesisValidator| v.public_key == public_key)
            {
                return Err(field(
                    name,
                    format!("the key is already validators[{first}]"),
                ));
            }
            if entry.stake == 0 {
                return Err(field(
                    format!("validators[{i}].stake"),
                    "must be greater than 0".into(),
                ));
            }
            total_stake = total_stake.checked_add(entry.stake).ok_or_else(|| {
                field(
                    format!("validators[{i}].stake"),
                    "the stakes add up to more than 2^64 - 1".into(),
                )
            })?;
            validators.push(GenesisValidator {
                public_key,
                stake: entry.stake,
            });
        }
        let count = validators.len();
        let committee_size = match file.committee_size {
            None => u16::try_from(count).unwrap_or(u16::MAX),
            Some(size) if size == 0 || usize::from(size) > count => {
                return Err(field(
                    "committee_size".into(),
                    format!("{size} is not between 1 and the {count} validators"),
                ))
            }
            Some(size) => size,
        };
        if !(MIN_BLOCK_GAS_LIMIT..=MAX_BLOCK_GAS_LIMIT).contains(&file.block_gas_limit) {
            return Err(field(
                "block_gas_limit".into(),
                format!(
                    "{} is not between {MIN_BLOCK_GAS_LIMIT} and {MAX_BLOCK_GAS_LIMIT}",
                    file.block_gas_limit
                ),
            ));
        }
        if file.base_fee == 0 {
            return Err(field(
                "base_fee".into(),
                "must be at least 1 (free gas would let anyone fill blocks for nothing)".into(),
            ));
        }
        Ok(Genesis {
            chain_id: ChainId(file.chain_id),
            layout,
            epoch_length: file.epoch_length,
            accounts,
            validators,
            committee_size,
            gas: GasRules {
                block_gas_limit: file.block_gas_limit,
                base_fee: file.base_fee,
            },
        })
    }

    /// The sum of all initial balances.
    pub fn total_supply(&self) -> u128 {
        self.accounts.iter().map(|(_, balance)| balance).sum()
    }

    /// The genesis file text for this genesis (pretty JSON).
    pub fn to_json(&self) -> String {
        let file = GenesisFile {
            chain_id: self.chain_id.0,
            shard_count: self.layout.shard_count(),
            epoch_length: self.epoch_length,
            accounts: self
                .accounts
                .iter()
                .map(|(address, balance)| AccountEntry {
                    address: address.to_string(),
                    balance: balance.to_string(),
                })
                .collect(),
            validators: self
                .validators
                .iter()
                .map(|v| ValidatorEntry {
                    public_key: v.public_key.to_string(),
                    stake: v.stake,
                })
                .collect(),
            committee_size: (usize::from(self.committee_size) < self.validators.len())
                .then_some(self.committee_size),
            block_gas_limit: self.gas.block_gas_limit,
            base_fee: self.gas.base_fee,
        };
        serde_json::to_string_pretty(&file).expect("a genesis file always serialises")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use atoll_primitives::KeyPair;

    fn valid() -> serde_json::Value {
        serde_json::json!({
            "chain_id": 7,
            "shard_count": 2,
            "accounts": [
                { "address": KeyPair::from_seed([1; 32]).address().to_string(), "balance": "340282366920938463463374607431768211000" },
                { "address": KeyPair::from_seed([2; 32]).address().to_string(), "balance": "5" }
            ],
            "validators": [{ "public_key": KeyPair::from_seed([3; 32]).public().to_string(), "stake": 10 }]
        })
    }

    #[test]
    fn gas_rules_default_and_are_checked() {
        let genesis = Genesis::from_json(&valid().to_string()).expect("valid genesis");
        assert_eq!(genesis.gas, GasRules::default());
        let mut file = valid();
        file["block_gas_limit"] = 50_000_000.into();
        file["base_fee"] = 7.into();
        let genesis = Genesis::from_json(&file.to_string()).expect("valid genesis");
        assert_eq!(genesis.gas.block_gas_limit, 50_000_000);
        assert_eq!(genesis.gas.base_fee, 7);
        assert_eq!(
            Genesis::from_json(&genesis.to_json()).expect("round trip"),
            genesis
        );
        for (field, value) in [
            ("block_gas_limit", 1_000u64),
            ("block_gas_limit", MAX_BLOCK_GAS_LIMIT + 1),
            ("base_fee", 0),
        ] {
            let mut file = valid();
            file[field] = value.into();
            let err = Genesis::from_json(&file.to_string())
                .expect_err("refused")
                .to_string();
            assert!(err.contains(field), "{err}");
        }
    }

    #[test]
    fn a_valid_file_round_trips() {
        let genesis = Genesis::from_json(&valid().to_string()).expect("valid genesis");
        assert_eq!(genesis.chain_id, ChainId(7));
        assert_eq!(genesis.layout.shard_count(), 2);
        assert_eq!(
            genesis.total_supply(),
            340282366920938463463374607431768211005
        );
        assert_eq!(
            Genesis::from_json(&genesis.to_json()).expect("round trip"),
            genesis
        );
    }

    #[test]
    fn errors_name_the_field_and_the_problem() {
        type Edit = Box<dyn Fn(&mut serde_json::Value)>;
        let edits: Vec<(&str, Edit)> = vec![
            ("chain_id", Box::new(|g| g["chain_id"] = 0.into())),
            ("chain_id", Box::new(|g| g["chain_id"] = u64::MAX.into())),
            ("chain_id", Box::new(|g| g["chain_id"] = "seven".into())),
            ("shard_count", Box::new(|g| g["shard_count"] = 0.into())),
            (
                "accounts[1].address",
                Box::new(|g| g["accounts"][1]["address"] = "0x12".into()),
            ),
            (
                "accounts[1].address",
                Box::new(|g| g["accounts"][1]["address"] = g["accounts"][0]["address"].clone()),
            ),
            (
                "accounts[1].balance",
                Box::new(|g| g["accounts"][1]["balance"] = "-5".into()),
            ),
            (
                "accounts[1].balance",
                Box::new(|g| g["accounts"][1]["balance"] = "1000".into()),
            ),
            (
                "validators",
                Box::new(|g| g["validators"] = serde_json::json!([])),
            ),
            (
                "validators[0].public_key",
                Box::new(|g| g["validators"][0]["public_key"] = "abc".into()),
            ),
            (
                "validators[0].stake",
                Box::new(|g| g["validators"][0]["stake"] = 0.into()),
            ),
            ("extra", Box::new(|g| g["extra"] = 1.into())),
            (
                "committee_size",
                Box::new(|g| g["committee_size"] = 0.into()),
            ),
            (
                "committee_size",
                Box::new(|g| g["committee_size"] = 2.into()),
            ),
        ];
        for (name, edit) in edits {
            let mut g = valid();
            edit(&mut g);
            let err = Genesis::from_json(&g.to_string())
                .expect_err(name)
                .to_string();
            assert!(err.contains(name), "expected {name:?} in: {err}");
        }
    }
}
