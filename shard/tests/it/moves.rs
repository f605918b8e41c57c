//! Moving one account to another shard at an epoch boundary: its balance
//! and nonce arrive exactly once, a transaction sent to its old shard during
//! the move is refused and charges nothing, one sent to its new shard before
//! its state arrives is refused too, a credit sent to the old shard under the
//! old map is forwarded, and its old transactions cannot be replayed there.
//! A contract moves with its code and every storage slot, in several
//! receipts, and runs on its new shard once they all arrived.

use crate::shards;
use atoll_consensus::Beacon;
use atoll_primitives::{
    Account, Action, Address, ChainId, ContractStatus, KeyPair, ReceiptAction, ShardId,
    ShardLayout, StateKey, StateValue, Transaction, TxFailure, TxOutcome,
};
use atoll_shard::contracts::create_address;
use atoll_shard::execution::evm::code_hash;
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
        World::with_balance(funded, BALANCE)
    }

    fn with_balance(funded: [&[KeyPair]; 2], balance: u128) -> World {
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
                    balance,
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
        self.account_at(shard, &key.address())
    }

    fn account_at(&self, shard: u16, address: &Address) -> Account {
        self.chains[usize::from(shard)]
            .store()
            .account(address)
            .unwrap()
            .unwrap_or_default()
    }

    /// Every balance, plus what is in flight and what was burnt.
    fn total(&self) -> u128 {
        let held: u128 = self
            .chains
            .iter()
            .flat_map(|c| c.store().state_entries())
            .filter_map(|e| e.unwrap().1.account().map(|a| a.balance))
            .sum();
        let burnt: u128 = self
            .chains
            .iter()
            .flat_map(|c| (1..=c.head().height).map(move |h| c.store().header(h).unwrap().unwrap()))
            .map(|h| h.burnt_fees)
            .sum();
        held + burnt + self.relay.in_flight_value()
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
    assert_eq!(world.total(), BALANCE * 3);
}

/// A contract's creation code: its code returns the word in the slot its
/// 32 bytes of call data name, and with 64 bytes `(lo, hi)` stores `i` in
/// every slot `i` of `(lo, hi]`.
fn slot_writer() -> Vec<u8> {
    let mut code = vec![
        0x60, 0x2a, 0x80, 0x60, 0x0b, 0x60, 0x00, 0x39, 0x60, 0x00,
        0xf3, // copy and return 42 bytes
    ];
    code.extend([
        0x36, 0x60, 0x20, 0x14, 0x60, 0x1d, 0x57, // 32 bytes of input: read
        0x60, 0x00, 0x35, 0x60, 0x20, 0x35, // lo, i = hi
        0x5b, 0x80, 0x80, 0x55, // loop: sstore(i, i)
        0x60, 0x01, 0x90, 0x03, 0x81, 0x81, 0x14, 0x15, 0x60, 0x0d, 0x57,
        0x00, // i -= 1 until lo
        0x5b, 0x60, 0x00, 0x35, 0x54, 0x60, 0x00, 0x52, 0x60, 0x20, 0x60, 0x00, 0xf3, // read
    ]);
    code
}

fn word(n: u64) -> [u8; 32] {
    let mut word = [0; 32];
    word[24..].copy_from_slice(&n.to_be_bytes());
    word
}

fn contract_tx(key: &KeyPair, nonce: u64, action: Action) -> VerifiedTx {
    let body = Transaction {
        chain_id: CHAIN,
        sender: key.public(),
        nonce,
        fee: 1,
        action,
    };
    VerifiedTx::verify(PreparedTx::new(body.sign(key))).unwrap()
}

fn write_slots(key: &KeyPair, nonce: u64, to: Address, (lo, hi): (u64, u64)) -> VerifiedTx {
    let input = [word(lo), word(hi)].concat();
    let action = Action::Call {
        to,
        value: 0,
        input,
        gas_limit: 16_000_000,
    };
    contract_tx(key, nonce, action)
}

fn status(block: &ProducedBlock) -> Vec<ContractStatus> {
    let status = |outcome: &TxOutcome| match outcome {
        TxOutcome::Contract(outcome) => outcome.status.clone(),
        other => panic!("not a contract outcome: {other:?}"),
    };
    block.output.outcomes.iter().map(status).collect()
}

#[test]
fn a_moved_contract_takes_its_code_and_every_slot_and_runs_on_its_new_shard() {
    const FUNDS: u128 = 1_000_000_000_000;
    let zero = shards::keys_on(43, layout(), 0, 1);
    let one = shards::keys_on(43, layout(), 1, 1);
    let (creator, user) = (&zero[0], &one[0]);
    let mut world = World::with_balance([&zero, &one], FUNDS);

    // A contract of shard 0's own range (not placed), with 77 units of
    // value and 1,300 slots: more than one receipt's worth.
    let nonce = (0..64)
        .find(|n| layout().shard_of(&create_address(&creator.address(), *n)) == ShardId(0))
        .unwrap();
    let contract = create_address(&creator.address(), nonce);
    let mut txs: Vec<_> = (0..nonce)
        .map(|n| transfer(creator, n, creator, 1))
        .collect();
    let create = Action::Create {
        value: 77,
        init_code: slot_writer(),
        gas_limit: 1_000_000,
    };
    txs.push(contract_tx(creator, nonce, create));
    txs.push(write_slots(creator, nonce + 1, contract, (0, 650)));
    txs.push(write_slots(creator, nonce + 2, contract, (650, 1300)));
    let made = world.round([txs, vec![]]);
    let made = &made[0].output.outcomes[nonce as usize..];
    assert!(
        made.iter()
            .all(|o| matches!(o, TxOutcome::Contract(c) if c.status == ContractStatus::Success)),
        "{made:?}"
    );
    let slots = world.chains[0].store().slots(&contract, 10_000).unwrap();
    assert_eq!(slots.len(), 1300);
    let code_hash_value = world.chains[0]
        .store()
        .state(&StateKey::CodeHash(contract))
        .unwrap()
        .expect("the contract has code");
    let before = world.account_at(0, &contract);
    assert_eq!(
        before,
        Account {
            balance: 77,
            nonce: 1
        }
    );

    let effective = world.beacon.schedule_move(contract, ShardId(1)).unwrap();
    while world.beacon.epoch() < effective {
        world.round([vec![], vec![]]);
    }
    // The first block of the new epoch: shard 0 sends the code with the
    // first 1,024 slots, then the other 276, then the account, and keeps
    // nothing of it; shard 1 marks it arriving, and a call to it there
    // reverts with the reason (no code runs on half its storage).
    let read = |slot| Action::Call {
        to: contract,
        value: 0,
        input: word(slot).to_vec(),
        gas_limit: 100_000,
    };
    let switch = world.round([vec![], vec![contract_tx(user, 0, read(5))]]);
    let parts: Vec<_> = switch[0]
        .output
        .receipts
        .iter()
        .filter(|r| r.action.account() == contract)
        .map(|r| (r.destination, r.action.clone()))
        .collect();
    assert_eq!(parts.len(), 3, "{parts:?}");
    assert!(parts.iter().all(|(to, _)| *to == ShardId(1)));
    let ReceiptAction::MoveState {
        code: Some(code),
        slots: first,
        ..
    } = &parts[0].1
    else {
        panic!("{:?}", parts[0]);
    };
    assert_eq!(
        Some(StateValue::CodeHash(code_hash(code))),
        Some(code_hash_value.clone())
    );
    let ReceiptAction::MoveState {
        code: None,
        slots: rest,
        ..
    } = &parts[1].1
    else {
        panic!("{:?}", parts[1]);
    };
    assert_eq!((first.len(), rest.len()), (1024, 276));
    assert!(
        [first.clone(), rest.clone()].concat() == slots,
        "the parts are not the slots"
    );
    let account = ReceiptAction::Move {
        account: contract,
        balance: 77,
        nonce: 1,
    };
    assert_eq!(parts[2].1, account);
    assert!(world.chains[0]
        .store()
        .slots(&contract, 10)
        .unwrap()
        .is_empty());
    let left = world.chains[0].store().state(&StateKey::CodeHash(contract));
    assert_eq!(left.unwrap(), None);
    assert_eq!(world.account_at(0, &contract), Account::default());
    assert_eq!(status(&switch[1]), vec![ContractStatus::Revert]);
    let TxOutcome::Contract(refused) = &switch[1].output.outcomes[0] else {
        unreachable!()
    };
    assert!(String::from_utf8_lossy(&refused.output).contains("arriving"));

    // The next blocks take in the parts: shard 1 holds the same code,
    // slots and account, and the contract runs there.
    world.round([vec![], vec![]]);
    let arrived_slots = world.chains[1].store().slots(&contract, 10_000).unwrap();
    assert!(
        arrived_slots == slots,
        "{} slots arrived, not the same",
        arrived_slots.len()
    );
    let arrived = world.chains[1].store().state(&StateKey::CodeHash(contract));
    assert_eq!(arrived.unwrap(), Some(code_hash_value));
    assert_eq!(world.account_at(1, &contract), before);
    let txs = vec![
        contract_tx(user, 1, read(1300)),
        write_slots(user, 2, contract, (1300, 1301)),
    ];
    let ran = world.round([vec![], txs]);
    assert_eq!(status(&ran[1]), vec![ContractStatus::Success; 2]);
    let TxOutcome::Contract(read) = &ran[1].output.outcomes[0] else {
        unreachable!()
    };
    assert_eq!(read.output, word(1300));
    assert_eq!(
        world.chains[1]
            .store()
            .slots(&contract, 10_000)
            .unwrap()
            .len(),
        1301
    );

    // Nothing is in flight and nothing was made or lost.
    world.round([vec![], vec![]]);
    assert_eq!(world.relay.in_flight_value(), 0);
    assert_eq!(world.total(), FUNDS * 2);
}
