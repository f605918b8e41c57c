//! Accounts at the head (the node keeps the head's state only).

use super::error::QueryError;
use super::view::{At, NodeView};
use atoll_primitives::{Account, Address, ShardId, StateKey, StateValue};
use std::time::Duration;

/// How long a read at [`At::Final`] waits for the head it read to become
/// final (the coordinator makes a block final right after its commit).
const FINAL_WAIT: Duration = Duration::from_secs(2);

/// An account as a block left it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountAt {
    /// The account (the empty one if the state does not hold it).
    pub account: Account,
    /// The shard that holds it.
    pub shard: ShardId,
    /// Whether it is moving to that shard and its state has not arrived.
    pub arriving: bool,
    /// The height of the block whose state this is.
    pub height: u64,
    /// Whether that block is final.
    pub is_final: bool,
}

impl NodeView {
    /// `address`'s account at `at`: the head's state (at [`At::Latest`],
    /// at [`At::Final`] once the head is final, or at the head's height).
    pub async fn account(&self, address: &Address, at: At) -> Result<AccountAt, QueryError> {
        let id = self.holder_of(address);
        let shard = self.tracked(id)?;
        // The height and the value from one snapshot, so a commit between
        // the two reads cannot pair a value with the wrong height.
        let (height, value) = match shard.store.head_state().map_err(QueryError::internal)? {
            Some(head) => {
                let value = head
                    .state(&StateKey::Account(*address))
                    .map_err(QueryError::internal)?;
                (head.head().height, value)
            }
            None => (0, None),
        };
        let account: Option<Account> = value.as_ref().and_then(StateValue::account).copied();
        // Arriving: its shard marked it so, or has not made its first block
        // under the map that moved it there (its state is on its way).
        let placed_here = id != self.shard_of(address);
        let arriving = account.is_some_and(|a| a.is_arriving())
            || (!placed_here && shard.head_map.read().shard_of(address) != id);
        let mut final_height = shard.heads.borrow().final_height;
        if at == At::Final && final_height < height {
            // The value read is the head's; it answers "final" once the head
            // is final, which the coordinator makes it right after its commit.
            let mut heads = shard.heads.subscribe();
            let waited =
                tokio::time::timeout(FINAL_WAIT, heads.wait_for(|h| h.final_height >= height))
                    .await;
            final_height = match waited {
                Ok(Ok(heads)) => heads.final_height,
                _ => {
                    return Err(QueryError::NotFinalInTime {
                        height,
                        seconds: FINAL_WAIT.as_secs(),
                    })
                }
            };
        }
        let wanted = match at {
            At::Latest | At::Final => height,
            At::Height(h) => h,
            At::Hash(_) => return Err(QueryError::StateAtHash),
        };
        if wanted > height {
            return Err(QueryError::BeyondHead {
                wanted,
                head: height,
            });
        }
        if wanted != height {
            return Err(QueryError::StateNotKept {
                wanted,
                head: height,
            });
        }
        Ok(AccountAt {
            account: account.unwrap_or_default(),
            shard: id,
            arriving,
            height,
            is_final: height <= final_height,
        })
    }

    /// The nonce `address`'s next transaction would take: its account's at
    /// the head, past the consecutive nonces its shard's mempool holds.
    pub async fn pending_nonce(&self, address: &Address) -> Result<u64, QueryError> {
        let found = self.account(address, At::Latest).await?;
        let shard = self.tracked(found.shard)?;
        let nonce = if found.arriving {
            0
        } else {
            found.account.nonce
        };
        Ok(shard.mempool.lock().pending_nonce(address, nonce))
    }
}
