//! RocksDB stores for atoll: one store per shard, each block committed with
//! one atomic, synced write batch.
//!
//! Main types:
//! - [`ShardStore`]: the store of one shard. [`ShardStore::open`] creates it in
//!   a missing or empty directory and refuses (without touching the directory)
//!   anything that is not a store of [`SCHEMA_VERSION`] for the expected
//!   [`StoreIdentity`] (chain id and shard).
//! - [`BlockCommit`]: a block with its outcomes, state changes and outgoing
//!   receipts; [`ShardStore::commit_block`] validates it (chain, shard,
//!   height, parent, body, receipt numbering, transaction uniqueness) and
//!   writes it all or not at all, so a node killed at any moment restarts at
//!   its last committed block.
//! - [`BeaconStore`]: the beacon's blocks and shard schedule.
//! - [`StateSnapshot`] and [`SnapshotInstall`]: a shard's state read in
//!   one consistent snapshot to serve a peer, and installed in place of a
//!   store's contents in one atomic write (state sync).
//! - [`TxLocation`]: where a transaction was included and its outcome.
//! - [`StorageError`]: every failure, with a message that says what to do.
//! - [`VoteLog`]: the votes a validator signed, in a file beside its key
//!   (outside the data directory, so an old copy of the data cannot make it
//!   sign twice).
//!
//! # Column families and key layout
//!
//! Values are borsh ([`atoll_primitives::codec`]); numbers in keys are
//! big-endian so that byte order is numeric order.
//!
//! | column family | key | value |
//! | --- | --- | --- |
//! | `headers` | `0x00` ‖ height (u64) | `ShardBlockHeader` |
//! | `headers` | `0x01` ‖ block hash (32 bytes) | height (u64) |
//! | `blocks` | height (u64) | `ShardBlockBody` |
//! | `state` | `StateKey` (its borsh encoding) | `Account` |
//! | `receipts` | destination shard (u16) ‖ sequence (u64) | `Receipt` |
//! | `tx_index` | transaction hash (32 bytes) | [`TxLocation`] |
//! | `meta` | `"schema_version"` | u32 ([`SCHEMA_VERSION`]) |
//! | `meta` | `"identity"` | [`StoreIdentity`] |
//! | `meta` | `"head"` | height of the newest block (absent before genesis) |
//! | `meta` | `"outbox_cursor/"` ‖ destination shard (u16) | next receipt sequence (u64) |
//! | `meta` | `"incoming/"` ‖ source shard (u16) ‖ sequence (u64) | height that applied it |
//! | `meta` | `"forwarded/"` ‖ source shard (u16) ‖ sequence (u64) | (destination, sequence) of the receipt that carried it on |
//! | `tx_index` | `'k'` ‖ transaction hash (32 bytes) | height (u64): a transaction below the history of a store installed from a snapshot |
//! | `meta` | `"history_from"` | height of the snapshot a store was installed from (absent in a store that executed from genesis) |
//! | `meta` | `"shard_map"` | the [`atoll_primitives::ShardMap`] the head executed under (absent until it first changes) |
//!
//! [`BeaconStore`] is the beacon's store: the same schema, opened with the
//! identity of the pseudo-shard [`BEACON`]; `blocks` holds beacon blocks by
//! height and `meta` the beacon head, the shard schedule and the recorded
//! height of every shard.
//!
//! Height 0 is the genesis block; its state changes are the genesis accounts.
//!
//! ```no_run
//! use atoll_primitives::{ChainId, ShardId};
//! use atoll_storage::{ShardStore, StoreIdentity};
//!
//! let identity = StoreIdentity { chain_id: ChainId(1), shard: ShardId(0) };
//! let store = ShardStore::open("data/shard-0".as_ref(), identity)?;
//! let next_height = store.head()?.map_or(0, |head| head.height + 1);
//! # let _ = next_height;
//! # Ok::<(), atoll_storage::StorageError>(())
//! ```

mod beacon_store;
mod commit;
mod consensus_log;
pub mod error;
mod head_state;
mod keys;
mod schema;
mod shard_store;
mod snapshot;
pub mod vote_log;

pub use beacon_store::{BeaconStore, BEACON};
pub use commit::{BlockCommit, ReceiptRef};
pub use error::StorageError;
pub use head_state::HeadState;
pub use schema::{StoreIdentity, SCHEMA_VERSION};
pub use shard_store::{Inclusion, ShardStore, StoredReceipt, TxLocation};
pub use snapshot::{SnapshotInstall, StateSnapshot};
pub use vote_log::{VoteLog, VoteLogError};
