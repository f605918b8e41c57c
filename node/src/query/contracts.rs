//! Contract state at the head: code, storage words, and the site where a
//! read-only call runs (the callee's shard, its head fixed in one
//! snapshot).

use super::error::QueryError;
use super::view::NodeView;
use crate::service::common::shared::Shared;
use atoll_primitives::{Address, GasRules, ShardMap, StateKey, StateValue};
use atoll_shard::execution::evm::CodeCache;
use atoll_shard::execution::BlockContext;
use atoll_shard::state::StateView;
use atoll_storage::HeadState;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The shard a call runs on. It may be moved to a blocking thread.
#[derive(Clone)]
pub struct CallSite {
    shard: Arc<Shared>,
}

impl CallSite {
    /// The chain's gas rules.
    pub fn gas(&self) -> GasRules {
        self.shard.gas
    }

    /// Runs `read` on the committed head of the shard with its state, fixed
    /// for the whole read (a call reads tens of keys while blocks go on
    /// committing, and each read from the live state could come from a
    /// different block), and the context of the block after it.
    pub fn at_head<T>(
        &self,
        read: impl FnOnce(&BlockContext, &HeadState<'_>) -> T,
    ) -> Result<T, QueryError> {
        let shard = &self.shard;
        let head = shard
            .store
            .head_state()
            .map_err(QueryError::internal)?
            .ok_or_else(|| {
                QueryError::internal(format!("shard {} has no committed block", shard.shard.0))
            })?;
        Ok(read(&context(shard, &head)?, &head))
    }
}

/// The context of the block after `head`, as a call sees it: its height,
/// parent and shard map are the head's, from the same snapshot as the
/// state the call reads.
fn context(shard: &Shared, head: &HeadState<'_>) -> Result<BlockContext, QueryError> {
    let header = head.head();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    // No map recorded: the shards never changed and the genesis layout holds.
    let map = head
        .shard_map()
        .map_err(QueryError::internal)?
        .unwrap_or_else(|| ShardMap::new(shard.layout));
    Ok(BlockContext {
        chain_id: shard.chain_id,
        shard: shard.shard,
        height: header.height + 1,
        timestamp_ms: now.max(header.timestamp_ms),
        map: Arc::new(map),
        outbox: BTreeMap::new(),
        gas: shard.gas,
        parent_hash: header.hash(),
        codes: CodeCache::default(),
    })
}

impl NodeView {
    /// Where a call from `from` to `to` with `input` runs: on the shard
    /// that holds `to`; a creation (no `to`) on `from`'s. A call without
    /// input to an account of another shard runs on `from`'s shard, where
    /// a transaction would send its value on by receipt.
    pub fn call_site(
        &self,
        from: &Address,
        to: Option<&Address>,
        input: &[u8],
    ) -> Result<CallSite, QueryError> {
        let id = match to {
            Some(to) if input.is_empty() && self.holder_of(to) != self.shard_of(from) => {
                self.shard_of(from)
            }
            Some(to) => self.holder_of(to),
            None => self.shard_of(from),
        };
        Ok(CallSite {
            shard: Arc::clone(self.tracked(id)?),
        })
    }

    /// The code at `address` (`None`: no code).
    pub fn code(&self, address: &Address) -> Result<Option<Vec<u8>>, QueryError> {
        let shard = self.tracked(self.holder_of(address))?;
        let hash = match head_value(shard, &StateKey::CodeHash(*address))? {
            Some(StateValue::CodeHash(hash)) => hash,
            _ => return Ok(None),
        };
        match head_value(shard, &StateKey::Code(hash))? {
            Some(StateValue::Code(code)) => Ok(Some(code)),
            _ => Err(QueryError::internal(format!(
                "code {hash} is missing from the state"
            ))),
        }
    }

    /// The 32-byte word in `slot` of `address` (zero when empty).
    pub fn storage_at(&self, address: &Address, slot: [u8; 32]) -> Result<[u8; 32], QueryError> {
        let shard = self.tracked(self.holder_of(address))?;
        Ok(match head_value(shard, &StateKey::Slot(*address, slot))? {
            Some(StateValue::Slot(value)) => value,
            _ => [0; 32],
        })
    }

    /// Why the account at `address` cannot be moved to another shard, if
    /// it cannot: a contract placed on its creator's shard (not the one its
    /// address range gives) stays there, and a contract moves with its
    /// storage only up to [`atoll_shard::opening::MAX_MOVED_SLOTS`] slots.
    pub fn why_not_movable(&self, address: &Address) -> Result<Option<String>, QueryError> {
        let (holder, home) = (self.holder_of(address), self.shard_of(address));
        if holder != home {
            return Ok(Some(format!(
                "{address} is a contract that shard {} created at an address of shard {}'s \
                 range: it lives where its creator does, and placed contracts do not move",
                holder.0, home.0
            )));
        }
        // A validator that does not track the account's shard cannot see
        // its storage; the limit is the asking operator's guard, not a
        // rule of the chain (the switch moves whatever storage there is).
        let Ok(shard) = self.tracked(holder) else {
            return Ok(None);
        };
        if head_value(shard, &StateKey::CodeHash(*address))?.is_none() {
            return Ok(None);
        }
        let limit = atoll_shard::opening::MAX_MOVED_SLOTS;
        let slots = shard
            .store
            .slots(address, limit + 1)
            .map_err(QueryError::internal)?;
        Ok((slots.len() > limit).then(|| {
            format!(
                "{address} is a contract with more than {limit} storage slots, the most a \
                 contract may move with: its code and storage travel as receipts, 1,024 \
                 slots each"
            )
        }))
    }
}

/// The head's value of `key` on `shard`.
fn head_value(shard: &Shared, key: &StateKey) -> Result<Option<StateValue>, QueryError> {
    shard.state.get(key).map_err(QueryError::internal)
}
