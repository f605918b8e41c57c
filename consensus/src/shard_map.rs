//! The versioned shard map.
//!
//! A [`ShardMap`] assigns every address to a shard: by contiguous ranges of
//! the address space (shard `i` of `n` holds the addresses whose first two
//! bytes, as a big-endian number `p`, satisfy `i = p * n / 65536`, as
//! [`ShardLayout`] does), unless the address has an override. A
//! [`ShardSchedule`] is the history of maps, each in force from an epoch on:
//! changes are scheduled for the next epoch boundary, never the current
//! epoch, so every component that asks about an epoch gets the same answer
//! whenever it asks.

use atoll_primitives::{Address, ShardId, ShardLayout};
use borsh::{BorshDeserialize, BorshSerialize};
use std::collections::BTreeMap;
use thiserror::Error;

/// Most per-account overrides one map may hold; each is a beacon-state entry
/// every node keeps, so they are bounded.
pub const MAX_OVERRIDES: usize = 65_536;

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
}

/// The maps in force by epoch: the one function every component uses to
/// place an address is [`ShardSchedule::shard_of`].
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct ShardSchedule {
    /// From each epoch on (key), that map is in force until the next key.
    maps: BTreeMap<u64, ShardMap>,
}

impl ShardSchedule {
    /// `map` from epoch 0 on.
    pub fn new(map: ShardMap) -> ShardSchedule {
        ShardSchedule {
            maps: BTreeMap::from([(0, map)]),
        }
    }

    /// The map in force at `epoch`.
    pub fn map_at(&self, epoch: u64) -> &ShardMap {
        self.maps
            .range(..=epoch)
            .next_back()
            .map(|(_, map)| map)
            .expect("a schedule always has a map from epoch 0")
    }

    /// The shard that holds `address` at `epoch`.
    pub fn shard_of(&self, address: &Address, epoch: u64) -> ShardId {
        self.map_at(epoch).shard_of(address)
    }

    /// Schedules `address` to move to `to` from epoch `effective` on, which
    /// must be after `current`. Maps already scheduled for later epochs keep
    /// their other changes and get this one too: the latest request for an
    /// address wins from its epoch on. Returns the newest map's version.
    pub fn schedule_move(
        &mut self,
        address: Address,
        to: ShardId,
        current: u64,
        effective: u64,
    ) -> Result<u64, MapError> {
        if effective <= current {
            return Err(MapError::NotInTheFuture {
                asked: effective,
                current,
            });
        }
        // Apply the move to the map in force at `effective` and to every
        // later map, all or nothing.
        let mut updated = Vec::new();
        let base = self.map_at(effective).with_move(address, to)?;
        updated.push((effective, base));
        for (&epoch, map) in self.maps.range(effective + 1..) {
            updated.push((epoch, map.with_move(address, to)?));
        }
        let version = updated.last().map_or(0, |(_, map)| map.version);
        self.maps.extend(updated);
        Ok(version)
    }

    /// Forgets maps that no epoch from `current` on can use.
    pub fn prune(&mut self, current: u64) {
        let keep_from = self
            .maps
            .range(..=current)
            .next_back()
            .map_or(0, |(epoch, _)| *epoch);
        self.maps = self.maps.split_off(&keep_from);
    }

    /// Epochs at which a new map takes effect, after `epoch`.
    pub fn changes_after(&self, epoch: u64) -> impl Iterator<Item = u64> + '_ {
        self.maps.range(epoch + 1..).map(|(epoch, _)| *epoch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn address(first: u8, last: u8) -> Address {
        let mut bytes = [0u8; 20];
        bytes[0] = first;
        bytes[19] = last;
        Address(bytes)
    }

    fn four() -> ShardSchedule {
        ShardSchedule::new(ShardMap::new(ShardLayout::uniform(4).expect("4 shards")))
    }

    #[test]
    fn ranges_place_addresses_like_the_layout() {
        let schedule = four();
        assert_eq!(schedule.shard_of(&address(0x00, 1), 0), ShardId(0));
        assert_eq!(schedule.shard_of(&address(0x40, 1), 0), ShardId(1));
        assert_eq!(schedule.shard_of(&address(0xbf, 1), 0), ShardId(2));
        assert_eq!(schedule.shard_of(&address(0xff, 1), 7), ShardId(3));
    }

    #[test]
    fn a_move_takes_effect_at_its_epoch_and_not_before() {
        let mut schedule = four();
        let hot = address(0x00, 7);
        assert!(matches!(
            schedule.schedule_move(hot, ShardId(3), 5, 5),
            Err(MapError::NotInTheFuture { .. })
        ));
        assert!(matches!(
            schedule.schedule_move(hot, ShardId(9), 5, 6),
            Err(MapError::NoSuchShard { .. })
        ));
        assert_eq!(schedule.schedule_move(hot, ShardId(3), 5, 6), Ok(1));
        assert_eq!(schedule.shard_of(&hot, 5), ShardId(0));
        assert_eq!(schedule.shard_of(&hot, 6), ShardId(3));
        assert_eq!(schedule.shard_of(&hot, 60), ShardId(3));
        // Its neighbours stay.
        assert_eq!(schedule.shard_of(&address(0x00, 8), 6), ShardId(0));
        // Moving back home drops the override.
        schedule
            .schedule_move(hot, ShardId(0), 6, 7)
            .expect("valid");
        assert_eq!(schedule.shard_of(&hot, 7), ShardId(0));
        assert!(schedule.map_at(7).overrides().is_empty());
        assert_eq!(schedule.shard_of(&hot, 6), ShardId(3));
    }

    #[test]
    fn a_move_scheduled_before_a_later_one_carries_into_it() {
        let mut schedule = four();
        let (a, b) = (address(0x00, 1), address(0x00, 2));
        schedule.schedule_move(b, ShardId(2), 0, 3).expect("valid");
        schedule.schedule_move(a, ShardId(1), 0, 2).expect("valid");
        assert_eq!(
            schedule.shard_of(&a, 3),
            ShardId(1),
            "the later map keeps the earlier move"
        );
        assert_eq!(schedule.shard_of(&b, 2), ShardId(0));
        assert_eq!(schedule.shard_of(&b, 3), ShardId(2));
        assert_eq!(schedule.changes_after(0).collect::<Vec<_>>(), vec![2, 3]);
        schedule.prune(3);
        assert_eq!(schedule.shard_of(&a, 3), ShardId(1));
        assert_eq!(schedule.shard_of(&b, 3), ShardId(2));
        assert_eq!(schedule.changes_after(3).count(), 0);
    }

    proptest! {
        /// Whatever moves are scheduled, an epoch's answer never changes
        /// once that epoch is current: scheduling only touches later epochs.
        #[test]
        fn the_current_epoch_never_changes_under_scheduling(
            moves in proptest::collection::vec((0u8..8, 0u16..4, 0u64..5, 1u64..4), 1..40)
        ) {
            let mut schedule = four();
            let addresses: Vec<Address> = (0..8u8).map(|i| address(i.wrapping_mul(37), i)).collect();
            for (who, to, current, ahead) in moves {
                let before: Vec<ShardId> = addresses.iter().map(|a| schedule.shard_of(a, current)).collect();
                let _ = schedule.schedule_move(addresses[who as usize], ShardId(to), current, current + ahead);
                let after: Vec<ShardId> = addresses.iter().map(|a| schedule.shard_of(a, current)).collect();
                prop_assert_eq!(before, after);
                let target = schedule.shard_of(&addresses[who as usize], current + ahead);
                prop_assert_eq!(target, ShardId(to));
            }
        }
    }
}
