//! `eth_getLogs` and `eth_feeHistory`: reads over a range of blocks, each
//! bounded in blocks and in results, with an error that names the bound.

use super::super::error::invalid_params;
use super::super::server::Rpc;
use super::super::types::parse_address;
use super::chain::log_object;
use super::format::{parse_hash, parse_quantity, quantity, LIMIT_EXCEEDED};
use crate::query::EthBlockTx;
use atoll_primitives::{Address, Log};
use jsonrpsee::core::RpcResult;
use jsonrpsee::types::ErrorObjectOwned;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::HashSet;

/// Most blocks one `eth_getLogs` call reads.
pub const MAX_LOG_BLOCKS: u64 = 512;
/// Most logs one `eth_getLogs` call answers.
pub const MAX_LOGS: usize = 10_000;
/// Most addresses, and most alternatives per topic, in one filter.
pub const MAX_FILTER_ALTERNATIVES: usize = 1_024;
/// Most blocks one `eth_feeHistory` call covers (geth allows 1,024; each
/// block here is read whole).
pub const MAX_FEE_HISTORY_BLOCKS: u64 = 128;

/// One value, or a list of alternatives.
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    /// One value.
    One(String),
    /// Any of these.
    Many(Vec<String>),
}

impl OneOrMany {
    fn values(&self) -> &[String] {
        match self {
            OneOrMany::One(one) => std::slice::from_ref(one),
            OneOrMany::Many(many) => many,
        }
    }
}

/// A log filter as Ethereum tools send it.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogFilter {
    /// The first block (default: `latest`).
    pub from_block: Option<String>,
    /// The last block (default: `latest`).
    pub to_block: Option<String>,
    /// One block by hash, instead of a range.
    pub block_hash: Option<String>,
    /// The emitting contract, or any of a list.
    pub address: Option<OneOrMany>,
    /// Per position (at most four): `null` for any topic, one topic, or any
    /// of a list.
    pub topics: Option<Vec<Option<OneOrMany>>>,
}

/// A filter ready to match logs.
pub(super) struct Matcher {
    addresses: Option<HashSet<Address>>,
    topics: Vec<Option<HashSet<[u8; 32]>>>,
}

impl Matcher {
    pub(super) fn new(filter: &LogFilter) -> RpcResult<Matcher> {
        let addresses = match &filter.address {
            None => None,
            Some(list) => {
                let values = bounded("address", list.values())?;
                let parsed = values
                    .iter()
                    .map(|a| parse_address("address", a).map_err(invalid_params))
                    .collect::<RpcResult<HashSet<_>>>()?;
                Some(parsed)
            }
        };
        let positions = filter.topics.as_deref().unwrap_or_default();
        if positions.len() > 4 {
            return Err(invalid_params(format!(
                "topics: {} positions; a log has at most 4",
                positions.len()
            )));
        }
        let topics = positions
            .iter()
            .map(|position| {
                position
                    .as_ref()
                    .map(|alternatives| {
                        bounded("topics", alternatives.values())?
                            .iter()
                            .map(|t| parse_hash("topics", t).map(|h| h.0))
                            .collect::<RpcResult<HashSet<_>>>()
                    })
                    .transpose()
            })
            .collect::<RpcResult<Vec<_>>>()?;
        Ok(Matcher { addresses, topics })
    }

    pub(super) fn matches(&self, log: &Log) -> bool {
        if let Some(addresses) = &self.addresses {
            if !addresses.contains(&log.address) {
                return false;
            }
        }
        self.topics
            .iter()
            .enumerate()
            .all(|(i, wanted)| match wanted {
                None => true,
                Some(set) => log.topics.get(i).is_some_and(|topic| set.contains(topic)),
            })
    }
}

/// `values`, if there are not too many of them.
fn bounded<'a>(field: &str, values: &'a [String]) -> RpcResult<&'a [String]> {
    if values.len() > MAX_FILTER_ALTERNATIVES {
        return Err(limit(format!(
            "{field}: {} alternatives, more than the limit of {MAX_FILTER_ALTERNATIVES}",
            values.len()
        )));
    }
    Ok(values)
}

/// A request past one of the limits above.
fn limit(message: String) -> ErrorObjectOwned {
    ErrorObjectOwned::owned(LIMIT_EXCEEDED, message, None::<()>)
}

impl Rpc {
    /// `eth_getLogs`.
    pub(super) fn eth_logs(&self, filter: &LogFilter) -> RpcResult<Vec<Value>> {
        let matcher = Matcher::new(filter)?;
        let (from, to) = match &filter.block_hash {
            Some(text) => {
                if filter.from_block.is_some() || filter.to_block.is_some() {
                    return Err(invalid_params(
                        "blockHash cannot be given with fromBlock or toBlock",
                    ));
                }
                let wanted = parse_hash("blockHash", text)?;
                match self.node.eth_block_number(&wanted)? {
                    Some(number) => (number, number),
                    None => return Ok(Vec::new()),
                }
            }
            None => {
                let tag =
                    |t: &Option<String>| self.block_number_of(t.as_deref().unwrap_or("latest"));
                (tag(&filter.from_block)?, tag(&filter.to_block)?)
            }
        };
        let Some((from, to)) = log_range(from, to, self.node.eth_head()?)? else {
            return Ok(Vec::new());
        };
        let mut found = Vec::new();
        for number in from..=to {
            let Some(block) = self.node.eth_block(number)? else {
                break;
            };
            for at in block.logs().filter(|at| matcher.matches(at.log)) {
                if found.len() == MAX_LOGS {
                    return Err(limit(format!(
                        "more than {MAX_LOGS} logs match in blocks {from} to {to}; ask \
                         for a narrower range (the first {MAX_LOGS} end in block \
                         {number})"
                    )));
                }
                found.push(log_object(&at, &block));
            }
        }
        Ok(found)
    }

    /// `eth_feeHistory`: the base fee of each block (fixed by the genesis)
    /// and of the next, each block's gas used over its gas limit, and per
    /// block the priority fee paid at each asked percentile of its gas.
    pub(super) fn eth_fee_history(
        &self,
        count: &Value,
        newest: &str,
        percentiles: Option<&[f64]>,
    ) -> RpcResult<Value> {
        let count = match count {
            Value::Number(n) => n.as_u64().map(u128::from),
            Value::String(text) => parse_quantity("blockCount", text).ok(),
            _ => None,
        }
        .ok_or_else(|| invalid_params("blockCount: not a block count"))?;
        let count = u64::try_from(count)
            .unwrap_or(u64::MAX)
            .min(MAX_FEE_HISTORY_BLOCKS);
        if let Some(percentiles) = percentiles {
            let ascending = percentiles.windows(2).all(|w| w[0] <= w[1]);
            let in_range = percentiles.iter().all(|p| (0.0..=100.0).contains(p));
            if !ascending || !in_range || percentiles.len() > 100 {
                return Err(invalid_params(
                    "rewardPercentiles: at most 100 ascending values from 0 to 100",
                ));
            }
        }
        let newest = self.block_number_of(newest)?.min(self.node.eth_head()?);
        let oldest = (newest + 1).saturating_sub(count);
        let gas = self.node.gas();
        let capacity = gas
            .block_gas_limit
            .saturating_mul(self.node.shard_count() as u64)
            .max(1);
        let mut ratios = Vec::new();
        let mut rewards = Vec::new();
        for number in oldest..=newest {
            if count == 0 {
                break;
            }
            let Some(block) = self.node.eth_block(number)? else {
                break;
            };
            let used: u64 = block.transactions.iter().map(EthBlockTx::gas_used).sum();
            ratios.push(json!(used as f64 / capacity as f64));
            if let Some(percentiles) = percentiles {
                let tips = tips(&block.transactions, gas.base_fee);
                rewards.push(json!(percentiles
                    .iter()
                    .map(|p| quantity(tip_at(&tips, *p)))
                    .collect::<Vec<_>>()));
            }
        }
        let base_fees = vec![quantity(gas.base_fee); ratios.len() + 1];
        let mut answer = json!({
            "oldestBlock": quantity(oldest),
            "baseFeePerGas": base_fees,
            "gasUsedRatio": ratios,
        });
        if percentiles.is_some() {
            answer["reward"] = json!(rewards);
        }
        Ok(answer)
    }
}

/// The blocks `from..=to` that exist (up to `head`), if any, within
/// [`MAX_LOG_BLOCKS`].
fn log_range(from: u64, to: u64, head: u64) -> RpcResult<Option<(u64, u64)>> {
    let to = to.min(head);
    if from > to {
        return Ok(None);
    }
    if to - from >= MAX_LOG_BLOCKS {
        return Err(limit(format!(
            "blocks {from} to {to} are {} blocks, more than the limit of {MAX_LOG_BLOCKS}; ask \
             for a narrower range",
            to - from + 1
        )));
    }
    Ok(Some((from, to)))
}

/// Each contract transaction's tip over the base fee with the gas it used,
/// lowest tip first.
fn tips(txs: &[EthBlockTx], base_fee: u64) -> Vec<(u128, u64)> {
    let mut tips: Vec<(u128, u64)> = txs
        .iter()
        .filter(|tx| tx.gas_used() > 0)
        .map(|tx| {
            let price = tx.shown.tx.terms.price(base_fee);
            (price.saturating_sub(u128::from(base_fee)), tx.gas_used())
        })
        .collect();
    tips.sort_unstable();
    tips
}

/// The tip paid at `percentile` of the gas used (geth's rule: the tip of
/// the first transaction whose cumulative gas reaches that share); 0 for
/// a block without contract transactions.
fn tip_at(tips: &[(u128, u64)], percentile: f64) -> u128 {
    let total: u64 = tips.iter().map(|(_, gas)| gas).sum();
    let threshold = (total as f64 * percentile / 100.0) as u64;
    let mut cumulative = 0;
    for (tip, gas) in tips {
        cumulative += gas;
        if cumulative >= threshold {
            return *tip;
        }
    }
    tips.last().map_or(0, |(tip, _)| *tip)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(address: u8, topics: &[u8]) -> Log {
        Log {
            address: Address([address; 20]),
            topics: topics.iter().map(|t| [*t; 32]).collect(),
            data: Vec::new(),
        }
    }

    fn topic(t: u8) -> String {
        format!("0x{}", hex::encode([t; 32]))
    }

    #[test]
    fn filters_take_address_lists_null_and_or_topics() {
        let filter: LogFilter = serde_json::from_value(json!({
            "address": [format!("0x{}", hex::encode([1u8; 20])), format!("0x{}", hex::encode([2u8; 20]))],
            "topics": [null, [topic(5), topic(6)]],
        }))
        .expect("a filter");
        let matcher = Matcher::new(&filter).expect("valid");
        assert!(matcher.matches(&log(1, &[9, 5])));
        assert!(matcher.matches(&log(2, &[9, 6, 7])));
        assert!(!matcher.matches(&log(3, &[9, 5])), "another address");
        assert!(!matcher.matches(&log(1, &[9, 7])), "another second topic");
        assert!(!matcher.matches(&log(1, &[9])), "no second topic");
        let one: LogFilter = serde_json::from_value(json!({ "topics": [topic(9)] })).expect("ok");
        assert!(Matcher::new(&one).expect("valid").matches(&log(4, &[9])));
        let five: LogFilter =
            serde_json::from_value(json!({ "topics": [null, null, null, null, null] }))
                .expect("parses");
        assert!(Matcher::new(&five).is_err());
    }

    #[test]
    fn a_range_is_bounded_by_the_head_and_the_limit() {
        assert_eq!(log_range(3, 9, 5).expect("fine"), Some((3, 5)));
        assert_eq!(log_range(6, 9, 5).expect("fine"), None, "above the head");
        assert_eq!(log_range(0, 511, 10_000).expect("fine"), Some((0, 511)));
        let error = log_range(0, 512, 10_000).expect_err("513 blocks");
        assert_eq!(error.code(), LIMIT_EXCEEDED);
        assert_eq!(
            error.message(),
            "blocks 0 to 512 are 513 blocks, more than the limit of 512; ask for a narrower range"
        );
    }

    #[test]
    fn tips_are_read_at_gas_percentiles() {
        let tips = vec![(1, 100), (5, 100), (9, 200)];
        assert_eq!(tip_at(&tips, 0.0), 1);
        assert_eq!(tip_at(&tips, 25.0), 1);
        assert_eq!(tip_at(&tips, 50.0), 5);
        assert_eq!(tip_at(&tips, 100.0), 9);
        assert_eq!(tip_at(&[], 50.0), 0);
    }
}
