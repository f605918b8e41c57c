//! Moving one account to another shard at an epoch boundary: its balance
//! and nonce arrive exactly once, a transaction sent to its old shard during
//! the move is refused and charges nothing, one sent to its new shard before
//! its state arrives is refused too, a credit sent to the old shard under the
//! old map is forwarded, and its old transactions cannot be replayed there.

use crate::shards;
use atoll_consensus::Beacon;
use atoll_primitives::{
    Account, Action, ChainId, KeyPair, ReceiptAction, ShardId, ShardLayout, Transaction, TxFailure,
    TxOutcome,
};
use atoll_shard::execution::PreparedTx;
use atoll_shard::relay::{InProcessRelay, ReceiptRelay};
use atoll_shard::signatures::VerifiedTx;
use atoll_shard::{ProducedBlock, ShardChain};
use tempfile::TempDir;

const CHAIN: ChainId = ChainId(12);
const BALANCE: u128 = 1_000;
const FEE: u128 = 2;

fn layout() -> ShardLayout {
    ShardLayout::uniform(2).unwrap()
}

fn transfer(key: &KeyPair, nonce: u64, to: &KeyPair, amount: u128) -> VerifiedTx {
    let body = Transaction {
        chain_id: CHAIN,
        sender: key.public(),
        nonce,
        fee: FEE,
        action: Action::Transfer {
            to: to.address(),
            amount,
        },
    };
    VerifiedTx::verify(PreparedTx::new(body.sign(key))).unwrap()
}

/// Two shards, a beacon with epochs of 2 blocks, and the relay.
struct World {
    chains: Vec<ShardChain>,
    beacon: Beacon,
    relay: InProcessRelay,
    _dirs: Vec<TempDir>,
}

impl World {
    fn new(funded: [&[KeyPair]; 2]) -> World {
        let dirs: Vec<TempDir> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
        let chains: Vec<ShardChain> = (0..2u16)
            .map(|s| {
                let keys = funded[usize::from(s)];
                shards::open_shard(
                    dirs[usize::from(s)].path(),
                    CHAIN,
                    layout(),
                    s,
                    keys,
                    BALANCE,
                )
            })
            .collect();
        let genesis = chains.iter().map(|c| c.head().clone()).collect();
        World {
            beacon: Beacon::new(CHAIN, layout(), 2, genesis),
            relay: InProcessRelay::new(1_000),
            chains,
            _dirs: dirs,
        }
    }

    /// One block per shard under the beacon's current epoch, recorded by a
    /// beacon block, their receipts published.
    fn round(&mut self, txs: [Vec<VerifiedTx>; 2]) -> Vec<ProducedBlock> {
        let (epoch, map) = (self.beacon.epoch(), self.beacon.map().clone());
        let mut produced = Vec::new();
        for (chain, txs) in self.chains.iter_mut().zip(txs) {
            let shard = chain.head().shard;
            let incoming = self.relay.pending(shard, &chain.inbox_cursors(), 1_000);
            chain.set_epoch(epoch, map.clone());
            let beacon = &self.beacon;
            let block = chain
                .produce_block_with_receipts(
                    txs,
                    incoming,
                    |s, h| beacon.final_header(s, h).cloned(),
                    1,
                )
                .unwrap();
            self.relay.acknowledge(shard, &chain.inbox_cursors());
            produced.push(block);
        }
        let headers = produced.iter().map(|p| p.block.header.clone()).collect();
        self.beacon.propose(headers, 1).unwrap();
        for block in &produced {
            self.relay
                .publish(block.block.header.height, &block.output.receipts)
                .unwrap();
        }
        produced
    }

    fn account(&self, shard: u16, key: &KeyPair) -> Account {
        self.chains[usize::from(shard)]
            .store()
            .account(&key.address())
            .unwrap()
            .unwrap_or_default()
    }
}

#[test]
fn a_moved_account_keeps_its_balance_and_nonce_and_is_never_replayed() {
    let zero = shards::keys_on(41, layout(), 0, 2);
    let one = shards::keys_on(41, layout(), 1, 1);
    let (mover, friend, remote) = (&zero[0], &zero[1], &one[0]);
    let mut world = World::new([&zero, &one]);

    // Epoch 0: the mover sends three transfers on shard 0; the first is kept
    // to be replayed later.
    let first = transfer(mover, 0, friend, 10);
    world.round([vec![first.clone(), transfer(mover, 1, friend, 10)], vec![]]);
    world.round([vec![transfer(mover, 2, remote, 10)], vec![]]);
    assert_eq!(world.account(0, mover).nonce, 3);
    let before = world.account(0, mover).balance;
    assert_eq!(before, BALANCE - 30 - 3 * FEE);

    // The operator moves it to shard 1 from the next epoch on.
    let effective = world
        .beacon
        .schedule_move(mover.address(), ShardId(1))
        .unwrap();
    // Still in the old epoch: a shard-1 account credits the mover, routed
    // to shard 0 by the old map; the credit is in flight over the boundary.
    while world.beacon.epoch() + 1 < effective {
        world.round([vec![], vec![]]);
    }
    world.round([vec![], vec![transfer(remote, 0, mover, 100)]]);
    assert_eq!(world.beacon.epoch(), effective);

    // The first block of the new epoch: shard 0 sends the mover's state,
    // and refuses (charging nothing) a transaction of the mover's that
    // reached it; shard 1 marks the mover arriving and refuses its
    // transaction too: its nonce is not known there yet.
    let switch = world.round([
        vec![transfer(mover, 3, friend, 1)],
        vec![transfer(mover, 3, remote, 1)],
    ]);
    assert_eq!(
        switch[0].output.outcomes,
        vec![TxOutcome::Failure(TxFailure::SenderOnOtherShard {
            shard: 1
        })]
    );
    assert_eq!(
        switch[1].output.outcomes,
        vec![TxOutcome::Failure(TxFailure::SenderArriving)]
    );
    let moves: Vec<_> = switch[0]
        .output
        .receipts
        .iter()
        .filter(|r| matches!(r.action, ReceiptAction::Move { .. }))
        .collect();
    assert_eq!(moves.len(), 1);
    assert_eq!(
        moves[0].action,
        ReceiptAction::Move {
            account: mover.address(),
            balance: before,
            nonce: 3
        }
    );
    assert_eq!(world.account(0, mover), Account::default());
    assert!(world.account(1, mover).is_arriving());
    // The credit sent under the old map reached shard 0 in that block too
    // and was forwarded to shard 1, with its origin.
    let forwarded: Vec<_> = switch[0]
        .output
        .receipts
        .iter()
        .filter(|r| matches!(r.action, ReceiptAction::Transfer { to, .. } if to == mover.address()))
        .collect();
    assert_eq!(forwarded.len(), 1);
    assert_eq!(forwarded[0].destination, ShardId(1));
    let credit = switch[0]
        .block
        .body
        .incoming
        .iter()
        .find(|p| p.receipt.action.account() == mover.address())
        .expect("the credit reached shard 0");
    assert_eq!(
        world.chains[0]
            .store()
            .forwarded(credit.receipt.source, credit.receipt.sequence)
            .unwrap(),
        Some((ShardId(1), forwarded[0].sequence)),
        "the store says where the credit went on to"
    );

    // The next round applies the move and the forwarded credit on shard 1.
    world.round([vec![], vec![]]);
    let arrived = world.account(1, mover);
    assert_eq!(
        arrived,
        Account {
            balance: before + 100,
            nonce: 3
        }
    );
    // Its old transaction cannot run again on its new shard; its next one
    // can.
    let after = world.round([vec![], vec![first, transfer(mover, 3, remote, 5)]]);
    assert_eq!(
        after[1].output.outcomes,
        vec![
            TxOutcome::Failure(TxFailure::BadNonce {
                expected: 3,
                got: 0
            }),
            TxOutcome::Success
        ]
    );
    assert_eq!(world.account(1, mover).nonce, 4);
    assert_eq!(world.account(0, mover), Account::default());
    // Nothing is in flight and nothing was made or lost.
    world.round([vec![], vec![]]);
    assert_eq!(world.relay.in_flight_value(), 0);
    let total: u128 = world
        .chains
        .iter()
        .flat_map(|c| c.store().state_entries())
        .filter_map(|e| e.unwrap().1.account().map(|a| a.balance))
        .sum();
    let burnt: u128 = world
        .chains
        .iter()
        .flat_map(|c| (1..=c.head().height).map(move |h| c.store().header(h).unwrap().unwrap()))
        .map(|h| h.burnt_fees)
        .sum();
    assert_eq!(total + burnt, BALANCE * 3);
}
