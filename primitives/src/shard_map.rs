//! The shard map: which shard holds which address.
//!
//! A [`ShardMap`] assigns every address to a shard: by contiguous ranges of
//! the address space ([`ShardLayout`]) unless the address has an override
//! (an account moved to isolate it). Maps are versioned; the beacon decides
//! which map is in force in which epoch (`atoll_consensus::ShardSchedule`),
//! and every shard block records the epoch it executed under. When a shard
//! enters an epoch whose map differs from its last one, [`ShardMap::moves`]
//! says which accounts leave it and which arrive.

use crate::codec;
use crate::crypto::Address;
use crate::error::DecodeError;
use crate::shard::{ShardId, ShardLayout};
use borsh::{BorshDeserialize, BorshSerialize};
use std::collections::BTreeMap;
use thiserror::Error;

/// Most per-account overrides one map may hold; each is a beacon-state entry
/// every node keeps, so they are bounded.
pub const MAX_OVERRIDES: usize = 65_536;

/// The largest encoding of a map: version, layout, and the overrides
/// (20-byte address and 2-byte shard each) with their count.
pub const MAX_SHARD_MAP_BYTES: usize = 8 + 2 + 4 + MAX_OVERRIDES * 22;

/// Why a change to the map was refused. Nothing changed.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum MapError {
    /// The target shard does not exist.
    #[error("shard {shard} does not exist; the map has {count} shards")]
    NoSuchShard {
        /// The shard asked for.
        shard: ShardId,
        /// The number of shards.
        count: u16,
    },
    /// A change may only take effect at a later epoch.
    #[error("a change for epoch {asked} cannot take effect: epoch {current} is current, the earliest is {}", current + 1)]
    NotInTheFuture {
        /// The epoch asked for.
        asked: u64,
        /// The current epoch.
        current: u64,
    },
    /// The account is already on that shard (from that epoch on).
    #[error("{address} is already on shard {shard}")]
    AlreadyThere {
        /// The account.
        address: Address,
        /// Its shard.
        shard: ShardId,
    },
    /// The map already holds as many overrides as allowed.
    #[error("the shard map already holds {MAX_OVERRIDES} account overrides")]
    TooManyOverrides,
}

/// One version of the map.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct ShardMap {
    /// Bumped by every change.
    pub version: u64,
    layout: ShardLayout,
    overrides: BTreeMap<Address, ShardId>,
}

impl ShardMap {
    /// Version 0: `layout`'s ranges and no overrides.
    pub fn new(layout: ShardLayout) -> ShardMap {
        ShardMap {
            version: 0,
            layout,
            overrides: BTreeMap::new(),
        }
    }

    /// The number of shards.
    pub fn shard_count(&self) -> u16 {
        self.layout.shard_count()
    }

    /// The shard that holds `address` under this map.
    pub fn shard_of(&self, address: &Address) -> ShardId {
        match self.overrides.get(address) {
            Some(shard) => *shard,
            None => self.layout.shard_of(address),
        }
    }

    /// The hash a shard header records of the map it executed under.
    pub fn hash(&self) -> crate::Hash {
        crate::Hash::domain(&crate::hash::domain::SHARD_MAP, &[&codec::encode(self)])
    }

    /// The ranges the map starts from.
    pub fn layout(&self) -> ShardLayout {
        self.layout
    }

    /// The shard `address` would have without an override.
    pub fn home_shard(&self, address: &Address) -> ShardId {
        self.layout.shard_of(address)
    }

    /// The overrides, by address.
    pub fn overrides(&self) -> &BTreeMap<Address, ShardId> {
        &self.overrides
    }

    /// This map with `address` moved to `to` (the override is dropped when
    /// `to` is its home shard), as the next version.
    pub fn with_move(&self, address: Address, to: ShardId) -> Result<ShardMap, MapError> {
        if to.0 >= self.shard_count() {
            return Err(MapError::NoSuchShard {
                shard: to,
                count: self.shard_count(),
            });
        }
        let mut next = self.clone();
        next.version += 1;
        if self.home_shard(&address) == to {
            next.overrides.remove(&address);
        } else {
            if !next.overrides.contains_key(&address) && next.overrides.len() >= MAX_OVERRIDES {
                return Err(MapError::TooManyOverrides);
            }
            next.overrides.insert(address, to);
        }
        Ok(next)
    }

    /// Decodes a stored map, checking what the encoding alone cannot: a
    /// layout of at least one shard, at most [`MAX_OVERRIDES`] overrides,
    /// each to an existing shard.
    pub fn decode(bytes: &[u8]) -> Result<ShardMap, DecodeError> {
        let map: ShardMap = codec::decode("shard map", bytes, MAX_SHARD_MAP_BYTES)?;
        let invalid = |reason: String| DecodeError::Invalid {
            what: "shard map",
            reason,
        };
        let count = map.layout.shard_count();
        if count == 0 {
            return Err(invalid("a map of zero shards".into()));
        }
        if map.overrides.len() > MAX_OVERRIDES {
            return Err(invalid(format!(
                "{} overrides, more than {MAX_OVERRIDES}",
                map.overrides.len()
            )));
        }
        if let Some((address, shard)) = map.overrides.iter().find(|(_, s)| s.0 >= count) {
            return Err(invalid(format!(
                "{address} is placed on shard {shard} of {count}"
            )));
        }
        Ok(map)
    }

    /// The accounts that change shard between this map and `next`, as
    /// (address, shard under this map, shard under `next`), by address.
    /// Only overrides can differ between two maps of one chain, so this
    /// looks at them alone.
    pub fn moves(&self, next: &ShardMap) -> Vec<(Address, ShardId, ShardId)> {
        let mut addresses: Vec<&Address> =
            self.overrides.keys().chain(next.overrides.keys()).collect();
        addresses.sort_unstable();
        addresses.dedup();
        addresses
            .into_iter()
            .filter_map(|address| {
                let (from, to) = (self.shard_of(address), next.shard_of(address));
                (from != to).then_some((*address, from, to))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(first: u8, last: u8) -> Address {
        let mut bytes = [0u8; 20];
        bytes[0] = first;
        bytes[19] = last;
        Address(bytes)
    }

    #[test]
    fn moves_lists_only_accounts_that_change_shard() {
        let map = ShardMap::new(ShardLayout::uniform(4).expect("4 shards"));
        let (a, b, c) = (address(0x00, 1), address(0x00, 2), address(0xff, 3));
        let one = map.with_move(a, ShardId(2)).expect("valid");
        let two = one
            .with_move(b, ShardId(1))
            .and_then(|m| m.with_move(a, ShardId(0)))
            .and_then(|m| m.with_move(c, ShardId(3)))
            .expect("valid");
        assert_eq!(map.moves(&one), vec![(a, ShardId(0), ShardId(2))]);
        // a goes home (its override is dropped), b moves, c's "move" to its
        // own home shard changes nothing.
        assert_eq!(
            one.moves(&two),
            vec![(a, ShardId(2), ShardId(0)), (b, ShardId(0), ShardId(1))]
        );
        assert!(two.moves(&two).is_empty());
        assert_eq!(two.version, 4);
    }

    #[test]
    fn decode_refuses_maps_no_change_could_make() {
        let map = ShardMap::new(ShardLayout::uniform(2).expect("2 shards"))
            .with_move(address(0x00, 1), ShardId(1))
            .expect("valid");
        assert_eq!(ShardMap::decode(&codec::encode(&map)), Ok(map.clone()));
        let mut bytes = codec::encode(&map);
        // The override's shard is the last two bytes: point it at shard 9.
        let len = bytes.len();
        bytes[len - 2] = 9;
        assert!(ShardMap::decode(&bytes).is_err());
        let mut zero = codec::encode(&ShardMap::new(ShardLayout::single()));
        zero[8] = 0;
        assert!(ShardMap::decode(&zero).is_err());
    }
}
