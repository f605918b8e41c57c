//! The beacon coordinator.
//!
//! - [`shard_map`]: which shard holds which account, per epoch. The map is
//!   contiguous ranges of the 20-byte address space plus explicit
//!   per-account overrides (accounts moved to isolate them), versioned, and
//!   changed only at epoch boundaries. [`ShardSchedule::shard_of`] is the one
//!   function every component asks.
//!
//! - [`beacon`]: the beacon's state machine: each beacon block records the
//!   shard headers committed since the last one, each extending its shard's
//!   chain; a recorded header is final, and receipts are proven against it.
//!
//! The node stores beacon blocks and the schedule in the beacon's own
//! RocksDB store (`atoll_storage::BeaconStore`); the BFT protocol comes with
//! the network issue.

pub mod beacon;
pub mod shard_map;

pub use beacon::{Beacon, BeaconBlock, BeaconError};
pub use shard_map::{MapError, ShardMap, ShardSchedule};
