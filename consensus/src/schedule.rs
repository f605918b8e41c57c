//! The versioned shard map.
//!
//! A [`ShardMap`] (defined in `atoll_primitives`, since every shard executes
//! under one) assigns every address to a shard: by contiguous ranges of the
//! address space unless the address has an override. A
//! [`ShardSchedule`] is the history of maps, each in force from an epoch on:
//! changes are scheduled for the next epoch boundary, never the current
//! epoch, so every component that asks about an epoch gets the same answer
//! whenever it asks.

use atoll_primitives::shard_map::MAX_SHARD_MAP_BYTES;
use atoll_primitives::shard_map::{MapError, ShardMap};
use atoll_primitives::{codec, Address, DecodeError, ShardId};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Most maps a schedule holds: the current one and the next (a move is
/// always scheduled for the next epoch, and older maps are pruned), with
/// room to spare.
pub const MAX_SCHEDULED_MAPS: usize = 8;

/// The maps in force by epoch: the one function every component uses to
/// place an address is [`ShardSchedule::shard_of`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShardSchedule {
    /// From each epoch on (key), that map is in force until the next key.
    /// Shared, so handing the current map to every producer is cheap.
    maps: BTreeMap<u64, Arc<ShardMap>>,
}

impl ShardSchedule {
    /// `map` from epoch 0 on.
    pub fn new(map: ShardMap) -> ShardSchedule {
        ShardSchedule {
            maps: BTreeMap::from([(0, Arc::new(map))]),
        }
    }

    /// The map in force at `epoch`.
    pub fn map_at(&self, epoch: u64) -> &Arc<ShardMap> {
        self.maps
            .range(..=epoch)
            .next_back()
            .map(|(_, map)| map)
            .expect("a schedule always has a map from its first epoch on, and epochs only grow")
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
        let in_force = self.map_at(effective);
        if in_force.shard_of(&address) == to {
            return Err(MapError::AlreadyThere { address, shard: to });
        }
        let mut updated = Vec::new();
        let base = in_force.with_move(address, to)?;
        updated.push((effective, Arc::new(base)));
        for (&epoch, map) in self.maps.range(effective + 1..) {
            updated.push((epoch, Arc::new(map.with_move(address, to)?)));
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

    /// The canonical encoding, for the beacon store.
    pub fn encode(&self) -> Vec<u8> {
        let maps: Vec<(u64, Vec<u8>)> = self
            .maps
            .iter()
            .map(|(epoch, map)| (*epoch, codec::encode(&**map)))
            .collect();
        codec::encode(&maps)
    }

    /// Decodes a stored schedule: at most [`MAX_SCHEDULED_MAPS`] maps, one
    /// from epoch 0 on (or from the oldest kept epoch), each checked as
    /// [`ShardMap::decode`] checks it.
    pub fn decode(bytes: &[u8]) -> Result<ShardSchedule, DecodeError> {
        let invalid = |reason: String| DecodeError::Invalid {
            what: "shard schedule",
            reason,
        };
        let maps: Vec<(u64, Vec<u8>)> = codec::decode(
            "shard schedule",
            bytes,
            4 + MAX_SCHEDULED_MAPS * (8 + 4 + MAX_SHARD_MAP_BYTES),
        )?;
        if maps.is_empty() || maps.len() > MAX_SCHEDULED_MAPS {
            return Err(invalid(format!(
                "{} maps; a schedule holds 1 to {MAX_SCHEDULED_MAPS}",
                maps.len()
            )));
        }
        let mut schedule = BTreeMap::new();
        for (epoch, map) in maps {
            if schedule
                .insert(epoch, Arc::new(ShardMap::decode(&map)?))
                .is_some()
            {
                return Err(invalid(format!("two maps for epoch {epoch}")));
            }
        }
        Ok(ShardSchedule { maps: schedule })
    }

    /// The map in force at `epoch`, if the schedule still has it (`None`
    /// for an epoch before the first map kept).
    pub fn get(&self, epoch: u64) -> Option<&Arc<ShardMap>> {
        self.maps.range(..=epoch).next_back().map(|(_, map)| map)
    }

    /// The first epoch the schedule has a map for (0 until pruned).
    pub fn first_epoch(&self) -> u64 {
        self.maps.keys().next().copied().unwrap_or(0)
    }

    /// Epochs at which a new map takes effect, after `epoch`.
    pub fn changes_after(&self, epoch: u64) -> impl Iterator<Item = u64> + '_ {
        self.maps.range(epoch + 1..).map(|(epoch, _)| *epoch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use atoll_primitives::ShardLayout;
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
        assert!(matches!(
            schedule.schedule_move(hot, ShardId(0), 5, 6),
            Err(MapError::AlreadyThere { .. })
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

    #[test]
    fn a_schedule_survives_encoding_and_bad_bytes_are_refused() {
        let mut schedule = four();
        schedule
            .schedule_move(address(0x00, 1), ShardId(3), 0, 1)
            .expect("valid");
        let bytes = schedule.encode();
        assert_eq!(ShardSchedule::decode(&bytes), Ok(schedule));
        assert!(ShardSchedule::decode(&bytes[..bytes.len() - 1]).is_err());
        assert!(ShardSchedule::decode(&codec::encode(&Vec::<(u64, Vec<u8>)>::new())).is_err());
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
