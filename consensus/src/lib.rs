//! The beacon coordinator.
//!
//! - [`schedule`]: which shard holds which account, per epoch. The map is
//!   contiguous ranges of the 20-byte address space plus explicit
//!   per-account overrides (accounts moved to isolate them), versioned, and
//!   changed only at epoch boundaries. [`ShardSchedule::shard_of`] is the one
//!   function every component asks.
//!
//! - [`beacon`]: the beacon's state machine: each beacon block records the
//!   shard headers committed since the last one, each extending its shard's
//!   chain; a recorded header is final, and receipts are proven against it.
//!
//! - [`committee`]: each shard's committee per epoch, drawn from a seed
//!   no validator can bias, and the quorum a shard header needs.
//!
//! - [`simplex`]: the BFT protocol (Simplex, Chan and Pass, TCC 2023) as a
//!   pure state machine, with stake-weighted quorums and equivocation
//!   evidence. It is tested under a deterministic simulation and run by the
//!   node when the genesis lists several validators.
//!
//! The node stores beacon blocks and the schedule in the beacon's own
//! RocksDB store (`atoll_storage::BeaconStore`).

pub mod beacon;
pub mod committee;
pub mod schedule;
pub mod simplex;

pub use beacon::{Beacon, BeaconBlock, BeaconError};
pub use committee::Committees;
pub use schedule::ShardSchedule;
