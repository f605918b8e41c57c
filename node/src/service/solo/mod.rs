//! The lone validator's pipeline: each shard's block producer, and the
//! coordinator that makes their blocks final in beacon blocks.

pub mod coordinator;
pub mod producer;
