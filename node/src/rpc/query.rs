//! Reads of committed state: accounts (at latest, final or a height) and
//! blocks, through the node's query layer.

use super::error::invalid_params;
use super::server::Rpc;
use super::types::{hex_hash, AccountInfo, BlockInfo, BlockRef, HeadInfo, IncomingInfo};
use crate::query::At;
use atoll_primitives::{Address, Hash, ShardId};
use jsonrpsee::core::RpcResult;

impl From<BlockRef> for At {
    fn from(at: BlockRef) -> At {
        match at {
            BlockRef::Latest => At::Latest,
            BlockRef::Final => At::Final,
            BlockRef::Height(h) => At::Height(h),
            BlockRef::Hash(hash) => At::Hash(Hash(hash)),
        }
    }
}

impl Rpc {
    pub(super) async fn account(
        &self,
        address: &str,
        at: Option<BlockRef>,
    ) -> RpcResult<AccountInfo> {
        let address: Address = address.parse().map_err(invalid_params)?;
        let at = at.unwrap_or(BlockRef::Latest).into();
        let found = self.node.account(&address, at).await?;
        Ok(AccountInfo {
            address: address.to_string(),
            balance: found.account.balance.to_string(),
            nonce: if found.arriving {
                0
            } else {
                found.account.nonce
            },
            shard: found.shard.0,
            arriving: found.arriving,
            height: found.height,
            is_final: found.is_final,
        })
    }

    pub(super) fn block(&self, shard: u16, at: BlockRef) -> RpcResult<BlockInfo> {
        let found = self.node.block(ShardId(shard), at.into())?;
        let block = &found.block;
        Ok(BlockInfo {
            header: HeadInfo::of(&block.header, found.is_final),
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
