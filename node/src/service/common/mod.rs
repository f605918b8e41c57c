//! What a lone validator and a validator in a network share: a shard's
//! shared state ([`shard::Shared`]), the admission stage, the waiters, the
//! finality rule, the beacon keeper, which transactions go into a block
//! ([`selection`]) and the path every committed block takes
//! ([`committed`]).

pub mod admission;
pub mod clock;
pub mod committed;
pub mod finality;
pub mod handoff;
pub mod keeper;
pub mod pipeline;
pub mod selection;
pub mod shared;
pub mod waiters;
