//! Reads of committed state: accounts (at latest, final or a height) and
//! blocks.

use super::error::tracked;
use super::error::{self, error, internal, invalid_params};
use super::server::Rpc;
use super::types::{hex_hash, AccountInfo, BlockInfo, BlockRef, IncomingInfo};
use crate::service::common::committed::head_info;
use atoll_primitives::{Account, Address, Hash, StateKey, StateValue};
use jsonrpsee::core::RpcResult;
use std::sync::Arc;
use std::time::Duration;

/// How long `atoll_getAccount` at `"final"` waits for the head it read to
/// become final (the coordinator makes a block final right after its commit).
const FINAL_WAIT: Duration = Duration::from_secs(2);

impl Rpc {
    pub(super) async fn account(
        &self,
        address: &str,
        at: Option<BlockRef>,
    ) -> RpcResult<AccountInfo> {
        let address: Address = address.parse().map_err(invalid_params)?;
        let shard = self.node.holder_of(&address);
        tracked(shard)?;
        // The height and the value from one snapshot, so a commit between
        // the two reads cannot pair a value with the wrong height.
        let (height, value) = match shard.store.head_state().map_err(internal)? {
            Some(head) => {
                let value = head.state(&StateKey::Account(address)).map_err(internal)?;
                (head.head().height, value)
            }
            None => (0, None),
        };
        let account: Option<Account> = value.as_ref().and_then(StateValue::account).copied();
        // Arriving: its shard marked it so, or has not made its first block
        // under the map that moved it there (its state is on its way).
        let placed_here = !Arc::ptr_eq(shard, self.node.shard_of(&address));
        let arriving = account.is_some_and(|a| a.is_arriving())
            || (!placed_here && shard.head_map.read().shard_of(&address) != shard.shard);
        let mut final_height = shard.heads.borrow().final_height;
        let at = at.unwrap_or(BlockRef::Latest);
        if at == BlockRef::Final && final_height < height {
            // The value read is the head's; it answers "final" once the head
            // is final, which the coordinator makes it right after its commit.
            let mut heads = shard.heads.subscribe();
            let waited =
                tokio::time::timeout(FINAL_WAIT, heads.wait_for(|h| h.final_height >= height))
                    .await;
            final_height = match waited {
                Ok(Ok(heads)) => heads.final_height,
                _ => {
                    return Err(error(
                        error::WAIT_TIMEOUT,
                        format!(
                            "the head (height {height}) did not become final within {}s; this node keeps only the head's state",
                            FINAL_WAIT.as_secs()
                        ),
                    ))
                }
            };
        }
        let wanted = match at {
            BlockRef::Latest | BlockRef::Final => height,
            BlockRef::Height(h) => h,
            BlockRef::Hash(_) => {
                return Err(invalid_params(
                    "an account is read at \"latest\", \"final\" or a height, not a block hash",
                ))
            }
        };
        if wanted > height {
            return Err(error(
                error::NOT_FOUND,
                format!("height {wanted} is beyond the head (height {height})"),
            ));
        }
        if wanted != height {
            return Err(error(
                error::STATE_NOT_KEPT,
                format!("this node keeps only the state at its head (height {height}); height {wanted} is not kept"),
            ));
        }
        let account = account.unwrap_or_default();
        Ok(AccountInfo {
            address: address.to_string(),
            balance: account.balance.to_string(),
            nonce: if arriving { 0 } else { account.nonce },
            shard: shard.shard.0,
            arriving,
            height,
            is_final: height <= final_height,
        })
    }

    pub(super) fn block(&self, shard: u16, at: BlockRef) -> RpcResult<BlockInfo> {
        let Some(shared) = self.node.shards.get(usize::from(shard)) else {
            return Err(error(
                error::WRONG_SHARD,
                format!(
                    "there is no shard {shard}; the chain has {}",
                    self.node.shards.len()
                ),
            ));
        };
        tracked(shared)?;
        let heads = shared.heads.borrow().clone();
        let height = match at {
            BlockRef::Latest => heads.head.height,
            BlockRef::Final => heads.final_height,
            BlockRef::Height(h) => h,
            BlockRef::Hash(hash) => shared
                .store
                .height_of(&Hash(hash))
                .map_err(internal)?
                .ok_or_else(|| error(error::NOT_FOUND, "no block has that hash"))?,
        };
        let Some(block) = shared.store.block(height).map_err(internal)? else {
            let from = shared.store.history_from().map_err(internal)?;
            if height <= from && height <= heads.head.height {
                return Err(error(
                    error::HISTORY_NOT_HELD,
                    format!(
                        "this validator synced shard {shard}'s state from a snapshot at height \
                         {from} and holds only its genesis block and the blocks above it; ask a \
                         validator that executed height {height}"
                    ),
                ));
            }
            return Err(error(
                error::NOT_FOUND,
                format!("no block at height {height}"),
            ));
        };
        let is_final = height <= heads.final_height;
        Ok(BlockInfo {
            header: head_info(&block.header, is_final),
            transactions: block
                .body
                .transactions
                .iter()
                .map(|tx| hex_hash(&tx.hash()))
                .collect(),
            incoming: block
                .body
                .incoming
                .iter()
                .map(|p| IncomingInfo {
                    source: p.receipt.source.0,
                    sequence: p.receipt.sequence,
                    origin: hex_hash(&p.receipt.origin),
                })
                .collect(),
        })
    }
}
