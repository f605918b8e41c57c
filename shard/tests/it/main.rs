//! Integration tests of the shard crate (one binary, one module per area).
#![allow(clippy::unwrap_used, missing_docs)]

mod calls;
mod contracts;
mod contracts_differential;
mod crash;
mod cross_shard;
mod differential;
mod ethereum;
mod inbox;
mod mempool;
mod moves;
mod pair;
mod placement;
mod scenario;
mod semantics;
mod sharded;
mod shards;
mod signatures;
