//! Blocks of one shard, by height, hash, or the newest committed or final.

use super::error::QueryError;
use super::view::{At, NodeView};
use atoll_primitives::{ShardBlock, ShardId};

/// A block and whether it is final.
#[derive(Clone, Debug)]
pub struct BlockAt {
    /// The block.
    pub block: ShardBlock,
    /// Whether it is final.
    pub is_final: bool,
}

impl NodeView {
    /// Shard `id`'s block at `at`.
    pub fn block(&self, id: ShardId, at: At) -> Result<BlockAt, QueryError> {
        let shard = self.tracked(id)?;
        let heads = shard.heads.borrow().clone();
        let height = match at {
            At::Latest => heads.head.height,
            At::Final => heads.final_height,
            At::Height(h) => h,
            At::Hash(hash) => shard
                .store
                .height_of(&hash)
                .map_err(QueryError::internal)?
                .ok_or(QueryError::NoBlockWithHash { hash })?,
        };
        let Some(block) = shard.store.block(height).map_err(QueryError::internal)? else {
            let from = shard.store.history_from().map_err(QueryError::internal)?;
            if height <= from && height <= heads.head.height {
                return Err(QueryError::HistoryNotHeld {
                    shard: id,
                    from,
                    height,
                });
            }
            return Err(QueryError::NoBlock { height });
        };
        Ok(BlockAt {
            block,
            is_final: height <= heads.final_height,
        })
    }
}
