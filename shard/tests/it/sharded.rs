//! Several shards and the beacon in one process, with the in-process relay:
//! random transfers, some to other shards and some to new accounts, and
//! contract calls (succeeding, reverting, with value a function refuses),
//! many of them across shards, while the shard map changes (accounts move
//! to other shards and back at epoch boundaries, and a contract moves with
//! calls to it in flight); the supply is conserved at every beacon height,
//! and once the relay drains every receipt was applied exactly once and
//! every call that succeeded ran exactly once.

use atoll_consensus::Beacon;
use atoll_primitives::{
    Action, Address, ChainId, ContractStatus, KeyPair, ShardId, ShardLayout, StateKey, StateValue,
    Transaction, TxFailure, TxOutcome,
};
use atoll_shard::contracts::{call_data, create_address, Contract};
use atoll_shard::execution::PreparedTx;
use atoll_shard::relay::{refill, InProcessRelay, ReceiptRelay};
use atoll_shard::signatures::VerifiedTx;
use atoll_shard::workload::dev_keys;
use atoll_shard::ShardChain;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const CHAIN: ChainId = ChainId(8);
const SHARDS: u16 = 3;
const BALANCE: u128 = 1_000_000_000;
/// The share of senders that call a counter contract rather than transfer.
const CALL_RATIO: f64 = 0.3;

fn total_balance(chains: &[ShardChain]) -> u128 {
    chains
        .iter()
        .flat_map(|c| c.store().state_entries())
        .filter_map(|entry| entry.unwrap().1.account().map(|a| a.balance))
        .sum()
}

/// Moves to schedule: (round, key index, destination shard).
type Moves<'a> = &'a [(u64, usize, u16)];

fn run(cross_ratio: f64, seed: u64, restart_at: Option<u64>, moves: Moves<'_>) {
    let layout = ShardLayout::uniform(SHARDS).unwrap();
    let keys = dev_keys(31, 30);
    let dirs: Vec<_> = (0..SHARDS).map(|_| tempfile::tempdir().unwrap()).collect();
    let open = |s: u16| {
        let funded: Vec<KeyPair> = keys
            .iter()
            .filter(|k| layout.shard_of(&k.address()) == ShardId(s))
            .cloned()
            .collect();
        crate::shards::open_shard(dirs[s as usize].path(), CHAIN, layout, s, &funded, BALANCE)
    };
    let mut chains: Vec<ShardChain> = (0..SHARDS).map(open).collect();
    let supply = BALANCE * keys.len() as u128;
    let mut beacon = Beacon::new(
        CHAIN,
        layout,
        4,
        chains.iter().map(|c| c.head().clone()).collect(),
    );
    let mut relay = InProcessRelay::new(10_000);
    let mut rng = StdRng::seed_from_u64(seed);
    let mut burnt = 0u128;
    let mut emitted = 0usize;
    let mut moved = 0usize;
    let mut last_block = None;
    let mut arriving = 0usize;
    // The first funded key of each shard creates a counter contract there
    // in the first round (where its address range falls, it is placed).
    let creators: Vec<usize> = (0..SHARDS)
        .map(|s| {
            (0..keys.len())
                .find(|&i| layout.shard_of(&keys[i].address()) == ShardId(s))
                .unwrap()
        })
        .collect();
    let counters: Vec<Address> = creators
        .iter()
        .map(|&i| create_address(&keys[i].address(), 0))
        .collect();
    // One that is not placed moves to the next shard with calls to it in
    // flight.
    let moving_counter = (0..SHARDS as usize)
        .find(|&s| layout.shard_of(&counters[s]) == ShardId(s as u16))
        .map(|s| (counters[s], ShardId((s as u16 + 1) % SHARDS)));
    // Calls that succeeded (each bumps its counter once).
    let mut bumps = 0u64;
    for round in 0..40u64 {
        for &(_, i, to) in moves.iter().filter(|(r, _, _)| *r == round) {
            beacon
                .schedule_move(keys[i].address(), ShardId(to))
                .unwrap();
        }
        if let (9, Some((counter, to))) = (round, moving_counter) {
            beacon.schedule_move(counter, to).unwrap();
        }
        if restart_at == Some(round) {
            // A crash: the relay's memory and the beacon's are gone; the
            // shards reopen from their stores, and the beacon from what its
            // store keeps (its newest block and the schedule; the node's
            // `BeaconKeeper::restore`) plus the shards' recorded headers.
            // The relay is refilled from the sources' outgoing receipts that
            // follow each destination's inbox cursor.
            drop(chains);
            chains = (0..SHARDS).map(open).collect();
            let recorded: Vec<Vec<_>> = chains
                .iter()
                .map(|c| {
                    (0..=c.head().height)
                        .map(|h| c.store().header(h).unwrap().unwrap())
                        .collect()
                })
                .collect();
            let schedule = beacon.schedule().clone();
            beacon = Beacon::restore(
                CHAIN,
                layout,
                4,
                last_block.as_ref(),
                Some(schedule),
                recorded,
            );
            relay = InProcessRelay::new(10_000);
            refill(&relay, &chains).unwrap();
            assert_eq!(
                total_balance(&chains) + relay.in_flight_value() + burnt,
                supply,
                "conservation after the restart"
            );
        }
        let sending = round < 30;
        let mut produced = Vec::new();
        // Every shard's block of this round executes under the beacon's
        // current epoch and map, and senders are routed by that map.
        let (epoch, map) = (beacon.epoch(), beacon.map().clone());
        for (s, chain) in chains.iter_mut().enumerate() {
            let mut txs = Vec::new();
            if sending {
                let senders = (0..keys.len())
                    .filter(|&i| map.shard_of(&keys[i].address()) == ShardId(s as u16));
                for i in senders {
                    let account = chain
                        .store()
                        .account(&keys[i].address())
                        .unwrap()
                        .unwrap_or_default();
                    let nonce = if account.is_arriving() {
                        0
                    } else {
                        account.nonce
                    };
                    if round == 0 && creators.contains(&i) {
                        let create = Action::Create {
                            value: 0,
                            init_code: Contract::Probe.init_code(&[]),
                            gas_limit: 1_000_000,
                        };
                        txs.push(signed(&keys[i], nonce, create));
                        continue;
                    }
                    if round > 0 && rng.gen_bool(CALL_RATIO) {
                        // bump() succeeds; bump() with value (it is not
                        // payable) and bumpThenFail revert, and their
                        // value and unused gas come back.
                        let (input, value) = match rng.gen_range(0..4) {
                            0 => (call_data("bumpThenFail(string)", &[]), 0),
                            1 => (call_data("bump()", &[]), 7),
                            _ => (call_data("bump()", &[]), 0),
                        };
                        let call = Action::Call {
                            to: counters[rng.gen_range(0..counters.len())],
                            value,
                            input,
                            gas_limit: 100_000,
                        };
                        txs.push(signed(&keys[i], nonce, call));
                        continue;
                    }
                    let to: Address = if rng.gen_bool(0.1) {
                        Address(rng.gen()) // a new account, anywhere
                    } else {
                        let want_cross = rng.gen_bool(cross_ratio);
                        let candidates: Vec<&KeyPair> = keys
                            .iter()
                            .filter(|k| {
                                (layout.shard_of(&k.address()) != ShardId(s as u16)) == want_cross
                            })
                            .collect();
                        candidates[rng.gen_range(0..candidates.len())].address()
                    };
                    // An account whose state is still on its way gets one
                    // transaction anyway (nonce 0, above): it must fail and
                    // charge nothing.
                    let transfer = Action::Transfer {
                        to,
                        amount: rng.gen_range(1..500),
                    };
                    txs.push(signed(&keys[i], nonce, transfer));
                }
            }
            let incoming = relay.pending(ShardId(s as u16), &chain.inbox_cursors(), 10_000);
            chain.set_epoch(epoch, map.clone());
            let block = chain
                .produce_block_with_receipts(
                    txs,
                    incoming,
                    |shard, height| beacon.final_header(shard, height).cloned(),
                    round + 1,
                )
                .unwrap();
            relay.acknowledge(ShardId(s as u16), &chain.inbox_cursors());
            burnt += block.block.header.burnt_fees;
            emitted += block.output.receipts.len();
            arriving += block
                .output
                .outcomes
                .iter()
                .filter(|o| **o == TxOutcome::Failure(TxFailure::SenderArriving))
                .count();
            bumps += successes(&block);
            moved += block
                .output
                .receipts
                .iter()
                .filter(|r| matches!(r.action, atoll_primitives::ReceiptAction::Move { .. }))
                .count();
            produced.push(block);
        }
        // The beacon records the new headers (final: one validator); then
        // their receipts go to the relay.
        last_block = Some(
            beacon
                .propose(
                    produced.iter().map(|p| p.block.header.clone()).collect(),
                    round,
                )
                .unwrap(),
        );
        for block in &produced {
            relay
                .publish(block.block.header.height, &block.output.receipts)
                .unwrap();
        }
        assert_eq!(
            total_balance(&chains) + relay.in_flight_value() + burnt,
            supply,
            "conservation at beacon height {} ({cross_ratio} cross-shard)",
            beacon.height()
        );
    }
    // Drained: every receipt emitted was applied once, in order.
    assert_eq!(relay.in_flight_value(), 0, "the relay drained");
    assert!(emitted > 0);
    for destination in &chains {
        let cursors = destination.inbox_cursors();
        for source in &chains {
            if source.head().shard == destination.head().shard {
                continue;
            }
            let sent = source
                .store()
                .outbox_cursor(destination.head().shard)
                .unwrap();
            assert_eq!(
                cursors.get(&source.head().shard).copied().unwrap_or(0),
                sent
            );
        }
    }
    assert_eq!(total_balance(&chains) + burnt, supply);
    let moving = moves.len() + usize::from(moving_counter.is_some());
    assert_eq!(moved, moving, "each move carried its account's state once");
    // Every call that succeeded, here or on another shard, ran once: the
    // counters hold as many bumps, wherever each contract lives now.
    let counted: u64 = counters
        .iter()
        .map(|counter| {
            let holders: Vec<u64> = chains
                .iter()
                .filter(|c| {
                    let code = c.store().state(&StateKey::CodeHash(*counter)).unwrap();
                    code.is_some()
                })
                .map(
                    |c| match c.store().state(&StateKey::Slot(*counter, [0; 32])).unwrap() {
                        Some(StateValue::Slot(word)) => {
                            u64::from_be_bytes(word[24..].try_into().unwrap())
                        }
                        _ => 0,
                    },
                )
                .collect();
            assert_eq!(holders.len(), 1, "{counter} lives on one shard");
            holders[0]
        })
        .sum();
    assert!(bumps > 0, "some calls succeeded");
    assert_eq!(counted, bumps, "every call that succeeded ran once");
    if let Some((counter, to)) = moving_counter {
        let code = chains[usize::from(to.0)]
            .store()
            .state(&StateKey::CodeHash(counter));
        assert!(code.unwrap().is_some(), "{counter} moved to shard {to}");
    }
    assert!(
        arriving > 0,
        "a transaction from an account whose state had not arrived was refused"
    );
    // Every moved account ended where the map says, with its state there.
    let map = beacon.map();
    for &(_, i, _) in moves {
        let address = keys[i].address();
        let home = map.shard_of(&address);
        for chain in &chains {
            let account = chain.store().account(&address).unwrap().unwrap_or_default();
            if chain.head().shard == home {
                assert!(!account.is_arriving(), "the state of {address} arrived");
                assert!(account.nonce > 0, "{address} sent from its new shard");
            } else {
                assert_eq!(account.balance, 0, "{address} left nothing behind");
            }
        }
    }
}

fn signed(key: &KeyPair, nonce: u64, action: Action) -> VerifiedTx {
    let body = Transaction {
        chain_id: CHAIN,
        sender: key.public(),
        nonce,
        fee: 3,
        action,
    };
    VerifiedTx::verify(PreparedTx::new(body.sign(key))).unwrap()
}

/// The calls of `block` that succeeded: its own transactions' and the
/// cross-shard calls it ran.
fn successes(block: &atoll_shard::ProducedBlock) -> u64 {
    let local = block.output.outcomes.iter().filter(|o| {
        matches!(o, TxOutcome::Contract(c) if c.status == ContractStatus::Success && c.created.is_none())
    });
    let remote = block
        .output
        .calls
        .iter()
        .filter(|c| c.outcome.status == ContractStatus::Success);
    (local.count() + remote.count()) as u64
}

/// Accounts 0 and 1 move at round 3 (effective at the next epoch), account
/// 2 at round 9, and account 0 moves again at round 14: to a shard, then
/// home (the override is dropped) while credits to them are in flight.
const MOVES: [(u64, usize, u16); 4] = [(3, 0, 2), (3, 1, 0), (9, 2, 1), (14, 0, 0)];

fn moves_away_from_home(layout: ShardLayout, keys: &[KeyPair]) -> Vec<(u64, usize, u16)> {
    // Each move is to a shard other than the account's shard at the time.
    let mut placed: Vec<u16> = keys
        .iter()
        .map(|k| layout.shard_of(&k.address()).0)
        .collect();
    MOVES
        .iter()
        .map(|&(round, i, to)| {
            let to = if placed[i] == to {
                (to + 1) % SHARDS
            } else {
                to
            };
            placed[i] = to;
            (round, i, to)
        })
        .collect()
}

#[test]
fn conservation_and_exactly_once_from_10_to_90_percent_cross_shard() {
    let layout = ShardLayout::uniform(SHARDS).unwrap();
    let moves = moves_away_from_home(layout, &dev_keys(31, 30));
    for (ratio, seed) in [(0.1, 1), (0.5, 2), (0.9, 3)] {
        run(ratio, seed, None, &moves);
    }
}

#[test]
fn receipts_in_flight_survive_a_restart_exactly_once() {
    let layout = ShardLayout::uniform(SHARDS).unwrap();
    let moves = moves_away_from_home(layout, &dev_keys(31, 30));
    for (ratio, seed, round) in [(0.5, 4, 7), (0.9, 5, 12), (0.3, 6, 20)] {
        run(ratio, seed, Some(round), &moves);
    }
}
