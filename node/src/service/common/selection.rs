//! Which ready transactions go into a block, for the lone producer and
//! for a leader's payload alike.

use atoll_primitives::{Address, ShardId, ShardMap};
use atoll_shard::signatures::VerifiedTx;
use std::collections::{BTreeSet, HashSet};

/// `txs` without the transfers to a `blocked` shard, and without every later
/// transaction of a sender that had one held back (its nonces must stay in
/// order). What is left out stays in the mempool for a later block.
pub fn hold_back(
    txs: Vec<VerifiedTx>,
    map: &ShardMap,
    blocked: &BTreeSet<ShardId>,
) -> Vec<VerifiedTx> {
    let mut held: HashSet<Address> = HashSet::new();
    txs.into_iter()
        .filter(|tx| {
            let to_blocked = tx
                .terms
                .action
                .recipient()
                .is_some_and(|to| blocked.contains(&map.shard_of(to)));
            if held.contains(&tx.sender) || to_blocked {
                held.insert(tx.sender);
                false
            } else {
                true
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use atoll_primitives::{Action, ChainId, ShardLayout, Transaction};
    use atoll_shard::execution::PreparedTx;
    use atoll_shard::workload::dev_keys;

    #[test]
    fn transfers_to_a_congested_shard_and_what_follows_them_are_held_back() {
        let layout = ShardLayout::uniform(2).expect("2 shards");
        let keys = dev_keys(3, 40);
        let on = |shard: u16| {
            keys.iter()
                .filter(|k| layout.shard_of(&k.address()) == ShardId(shard))
                .collect::<Vec<_>>()
        };
        let (home, away) = (on(0), on(1));
        let tx = |from: &atoll_primitives::KeyPair, nonce: u64, to: Address| {
            let body = Transaction {
                chain_id: ChainId(1),
                sender: from.public(),
                nonce,
                fee: 1,
                action: Action::Transfer { to, amount: 1 },
            };
            VerifiedTx::verify(PreparedTx::new(body.sign(from))).expect("valid")
        };
        let txs = vec![
            tx(home[0], 0, home[1].address()),
            tx(home[0], 1, away[0].address()), // held: to congested shard 1
            tx(home[0], 2, home[1].address()), // held: behind a held nonce
            tx(home[1], 0, home[0].address()),
        ];
        let blocked = BTreeSet::from([ShardId(1)]);
        let kept: Vec<(Address, u64)> = hold_back(txs.clone(), &ShardMap::new(layout), &blocked)
            .iter()
            .map(|t| (t.sender, t.terms.nonce))
            .collect();
        assert_eq!(kept, vec![(home[0].address(), 0), (home[1].address(), 0)]);
        assert_eq!(
            hold_back(txs, &ShardMap::new(layout), &BTreeSet::new()).len(),
            4
        );
    }
}
