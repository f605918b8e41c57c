//! Shard committees: which validators execute and sign each shard, per
//! epoch.
//!
//! Every validator is in the beacon committee (it runs consensus and
//! records shard headers). Each shard also has a committee of
//! `committee_size` validators, drawn again at every epoch: the validators
//! are ordered by `H(seed, epoch, index)` and shard `s` takes the `size`
//! validators from position `s × size` on (wrapping), so committees are as
//! disjoint as the numbers allow and every validator serves about the same
//! number of shards.
//!
//! The seed is the genesis hash, so the draw of every epoch is fixed before
//! the chain starts: no validator, leader or not, can bias it by what it
//! proposes or withholds. The price is that it is predictable: anyone can
//! compute the committees of any future epoch, so an adversary that can
//! corrupt validators after seeing the draw can target a committee. A seed
//! from a verifiable random function over the beacon chain would fix that;
//! it is not built.
//!
//! A shard header is certified by signatures of more than two thirds of
//! its committee's stake ([`Committees::is_quorum`]).

use crate::simplex::{ValidatorIndex, ValidatorSet};
use atoll_primitives::hash::domain;
use atoll_primitives::{Hash, ShardId};
use parking_lot::Mutex;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// Epochs whose draws are kept.
const CACHED_EPOCHS: usize = 8;

/// The committees of every shard and epoch of one chain.
#[derive(Debug)]
pub struct Committees {
    validators: ValidatorSet,
    shards: u16,
    size: usize,
    seed: Hash,
    cache: Mutex<BTreeMap<u64, Arc<Vec<Vec<ValidatorIndex>>>>>,
}

impl Committees {
    /// The committees of `shards` shards of `size` validators each (clamped
    /// to 1 ..= the number of validators), drawn from `seed`.
    pub fn new(validators: ValidatorSet, shards: u16, size: usize, seed: Hash) -> Committees {
        let size = size.clamp(1, validators.len().max(1));
        Committees {
            validators,
            shards,
            size,
            seed,
            cache: Mutex::new(BTreeMap::new()),
        }
    }

    /// Validators per committee.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Whether every validator is in every committee.
    pub fn everyone(&self) -> bool {
        self.size == self.validators.len()
    }

    /// The validators.
    pub fn validators(&self) -> &ValidatorSet {
        &self.validators
    }

    /// Each shard's committee in `epoch`, sorted by validator index.
    pub fn draw(&self, epoch: u64) -> Arc<Vec<Vec<ValidatorIndex>>> {
        let mut cache = self.cache.lock();
        if let Some(draw) = cache.get(&epoch) {
            return Arc::clone(draw);
        }
        let count = self.validators.len();
        let mut order: Vec<(Hash, ValidatorIndex)> = (0..count)
            .map(|i| {
                let index = i as ValidatorIndex;
                let key = Hash::domain(
                    &domain::COMMITTEE,
                    &[
                        self.seed.as_bytes(),
                        &epoch.to_be_bytes(),
                        &index.to_be_bytes(),
                    ],
                );
                (key, index)
            })
            .collect();
        order.sort();
        let draw: Vec<Vec<ValidatorIndex>> = (0..usize::from(self.shards))
            .map(|shard| {
                let mut members: Vec<ValidatorIndex> = (0..self.size)
                    .map(|i| order[(shard * self.size + i) % count].1)
                    .collect();
                members.sort_unstable();
                members
            })
            .collect();
        let draw = Arc::new(draw);
        cache.insert(epoch, Arc::clone(&draw));
        while cache.len() > CACHED_EPOCHS {
            // Keep the newest epochs: the draws of old ones are rarely asked
            // again and are cheap to redo.
            cache.pop_first();
        }
        draw
    }

    /// The committee of `shard` in `epoch` (empty for a shard the chain does
    /// not have).
    pub fn members(&self, epoch: u64, shard: ShardId) -> Vec<ValidatorIndex> {
        self.draw(epoch)
            .get(usize::from(shard.0))
            .cloned()
            .unwrap_or_default()
    }

    /// Whether `validator` is in `shard`'s committee in `epoch`.
    pub fn is_member(&self, epoch: u64, shard: ShardId, validator: ValidatorIndex) -> bool {
        self.draw(epoch)
            .get(usize::from(shard.0))
            .is_some_and(|members| members.binary_search(&validator).is_ok())
    }

    /// The shards `validator` serves in `epoch`.
    pub fn shards_of(&self, epoch: u64, validator: ValidatorIndex) -> Vec<ShardId> {
        self.draw(epoch)
            .iter()
            .enumerate()
            .filter(|(_, members)| members.binary_search(&validator).is_ok())
            .map(|(shard, _)| ShardId(shard as u16))
            .collect()
    }

    /// Whether those of `signers` in `shard`'s committee of `epoch` hold
    /// more than two thirds of the committee's stake.
    pub fn is_quorum(
        &self,
        epoch: u64,
        shard: ShardId,
        signers: &BTreeSet<ValidatorIndex>,
    ) -> bool {
        let members = self.members(epoch, shard);
        if members.is_empty() {
            return false;
        }
        let total: u128 = members
            .iter()
            .map(|m| u128::from(self.validators.stake(*m)))
            .sum();
        let signed: u128 = members
            .iter()
            .filter(|m| signers.contains(m))
            .map(|m| u128::from(self.validators.stake(*m)))
            .sum();
        3 * signed > 2 * total
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use atoll_primitives::KeyPair;

    fn committees(validators: u8, shards: u16, size: usize) -> Committees {
        let set: Vec<_> = (0..validators)
            .map(|i| (KeyPair::from_seed([i + 1; 32]).public(), 1))
            .collect();
        Committees::new(
            ValidatorSet::new(&set).expect("set"),
            shards,
            size,
            Hash([9; 32]),
        )
    }

    #[test]
    fn committees_have_their_size_and_spread_validators_evenly() {
        let c = committees(6, 2, 2);
        for epoch in 0..50 {
            let draw = c.draw(epoch);
            assert_eq!(draw.len(), 2);
            assert!(draw.iter().all(|m| m.len() == 2));
            // Six validators, two shards of two: no validator in both.
            let all: BTreeSet<_> = draw.iter().flatten().collect();
            assert_eq!(all.len(), 4, "epoch {epoch}: {draw:?}");
        }
        let full = committees(4, 2, 4);
        assert!(full.everyone());
        assert_eq!(full.members(3, ShardId(1)), vec![0, 1, 2, 3]);
        assert_eq!(full.shards_of(3, 2), vec![ShardId(0), ShardId(1)]);
    }

    #[test]
    fn the_draw_changes_with_the_epoch_and_is_the_same_everywhere() {
        let (a, b) = (committees(6, 2, 2), committees(6, 2, 2));
        let draws: BTreeSet<_> = (0..20).map(|e| (*a.draw(e)).clone()).collect();
        assert!(draws.len() > 5, "the committees never change: {draws:?}");
        for epoch in 0..20 {
            assert_eq!(a.draw(epoch), b.draw(epoch));
        }
        let other = Committees::new(a.validators().clone(), 2, 2, Hash([8; 32]));
        assert!((0..20).any(|e| other.draw(e) != a.draw(e)));
    }

    #[test]
    fn a_quorum_is_more_than_two_thirds_of_the_committee() {
        let c = committees(6, 2, 3);
        let members = c.members(0, ShardId(0));
        let two: BTreeSet<_> = members[..2].iter().copied().collect();
        let one: BTreeSet<_> = members[..1].iter().copied().collect();
        assert!(!c.is_quorum(0, ShardId(0), &two));
        let all: BTreeSet<_> = members.iter().copied().collect();
        assert!(c.is_quorum(0, ShardId(0), &all));
        assert!(!c.is_quorum(0, ShardId(0), &one));
        // Outsiders add nothing.
        let outsiders: BTreeSet<_> = (0..6).filter(|v| !members.contains(v)).collect();
        let mut with = outsiders.clone();
        with.extend(&two);
        assert!(!c.is_quorum(0, ShardId(0), &with));
        assert!(!c.is_quorum(0, ShardId(7), &all));
    }
}
