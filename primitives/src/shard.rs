//! Shard identifiers and the assignment of addresses to shards.

use crate::crypto::Address;
use borsh::{BorshDeserialize, BorshSerialize};
use serde::{Deserialize, Serialize};
use std::fmt;

/// The number of a shard, from 0 to the shard count minus one.
#[derive(
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Default,
    Debug,
    BorshSerialize,
    BorshDeserialize,
    Serialize,
    Deserialize,
)]
pub struct ShardId(pub u16);

impl fmt::Display for ShardId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Assigns addresses to shards by contiguous ranges of the address space.
///
/// Shard `i` of `n` owns the addresses whose first two bytes, read as a
/// big-endian number `p`, satisfy `i = p * n / 65536`. Contiguous ranges let a
/// shard be split at a boundary later. The beacon's versioned map (with
/// per-account overrides and epochs) builds on this.
#[derive(Clone, Copy, PartialEq, Eq, Debug, BorshSerialize, BorshDeserialize)]
pub struct ShardLayout {
    shard_count: u16,
}

impl ShardLayout {
    /// `shard_count` shards of equal ranges; `None` if `shard_count` is 0.
    pub fn uniform(shard_count: u16) -> Option<ShardLayout> {
        (shard_count > 0).then_some(ShardLayout { shard_count })
    }

    /// A single shard holding every address.
    pub fn single() -> ShardLayout {
        ShardLayout { shard_count: 1 }
    }

    /// The number of shards.
    pub fn shard_count(&self) -> u16 {
        self.shard_count
    }

    /// The shard that holds `address`.
    pub fn shard_of(&self, address: &Address) -> ShardId {
        let prefix = u32::from(u16::from_be_bytes([address.0[0], address.0[1]]));
        ShardId(((prefix * u32::from(self.shard_count)) >> 16) as u16)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_contiguous_and_cover_every_shard() {
        let layout = ShardLayout::uniform(3).expect("non-zero");
        let mut last = ShardId(0);
        for p in 0..=u16::MAX {
            let mut bytes = [0u8; 20];
            bytes[..2].copy_from_slice(&p.to_be_bytes());
            let shard = layout.shard_of(&Address(bytes));
            assert!(shard >= last && shard.0 < 3);
            last = shard;
        }
        assert_eq!(last, ShardId(2));
        assert!(ShardLayout::uniform(0).is_none());
    }
}
