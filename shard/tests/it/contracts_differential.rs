//! Differential tests over random blocks of contract transactions: Block-STM
//! on 1, 2, 4 and 8 threads (with and without declared keys) and the
//! executor's own choice of path must give exactly the sequential result
//! (outcomes with gas used, logs and output, the state changes and so the
//! state root, receipts, burnt fees), on one shard and on the first of two
//! (where calls toward the other fail and creations are placed here).

use atoll_primitives::{
    Action, Address, ChainId, ContractStatus, ReceiptAction, ShardLayout, ShardMap, TxFailure,
    TxOutcome,
};
use atoll_shard::contracts::{call_data, Contract, Word};
use atoll_shard::execution::{sequential, BlockOutput, Executor, PreparedTx};
use atoll_shard::workload::{defi::swap_data, dev_keys, DefiState};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeSet;
use std::num::NonZeroUsize;
use std::sync::Arc;

const CHAIN: ChainId = ChainId(23);
const ACCOUNTS: usize = 16;
const BLOCKS: usize = 3;
const BLOCK_SIZE: usize = 120;

/// The state a seed's blocks run on: two tokens, `pools` pairs, a probe.
struct World {
    defi: DefiState,
    probe: Address,
}

fn world(seed: u64) -> World {
    let pools = [1, 3, 12][seed as usize % 3];
    let mut defi = DefiState::amm(CHAIN, dev_keys(100 + seed, ACCOUNTS), pools).unwrap();
    let probe = defi.deploy(0, Contract::Probe.init_code(&[])).unwrap();
    if seed % 2 == 1 {
        // Odd seeds split the chain in two after the set-up: senders,
        // recipients and contracts of shard 1's range are then elsewhere
        // (transactions refused, receipts, reverting stand-ins), and
        // contracts created at addresses of that range are placed here.
        defi.ctx.map = Arc::new(ShardMap::new(ShardLayout::uniform(2).unwrap()));
    }
    World { defi, probe }
}

/// One random transaction of a mixed block, from a random sender.
fn random_tx(world: &mut World, rng: &mut StdRng) -> PreparedTx {
    let defi = &mut world.defi;
    let probe = world.probe;
    let who = rng.gen_range(0..ACCOUNTS);
    let other = defi.keys[rng.gen_range(0..ACCOUNTS)].address();
    let token = defi.tokens[rng.gen_range(0..2)];
    let pair = defi.pairs[rng.gen_range(0..defi.pairs.len())];
    let gas = |rng: &mut StdRng, typical: u64| {
        if rng.gen_ratio(1, 12) {
            rng.gen_range(21_000..typical) // often too little: out of gas
        } else {
            typical
        }
    };
    let call = |to, value, input, gas_limit| Action::Call {
        to,
        value,
        input,
        gas_limit,
    };
    let action = match rng.gen_range(0..16) {
        0 | 1 => Action::Transfer {
            to: if rng.gen_ratio(1, 4) { probe } else { other },
            amount: if rng.gen_ratio(1, 20) {
                u128::MAX / 2
            } else {
                rng.gen_range(1..1_000)
            },
        },
        2..=4 => {
            // Sometimes more than anyone holds: the token reverts.
            let amount = if rng.gen_ratio(1, 10) {
                u128::MAX / 4
            } else {
                rng.gen_range(1..1_000_000)
            };
            let data = call_data(
                "transfer(address,uint256)",
                &[Word::address(other), Word::uint(amount)],
            );
            call(token, 0, data, gas(rng, 60_000))
        }
        5..=7 => {
            // On its own pool it is approved; on another it reverts.
            let data = swap_data(rng.gen_range(1..1_000_000), rng.gen(), 0);
            call(pair, 0, data, gas(rng, 150_000))
        }
        8 => {
            let supply = Word::uint(rng.gen_range(1..1_000_000));
            let code = if rng.gen() {
                Contract::Token.init_code(&[supply])
            } else {
                Contract::Child.init_code(&[supply])
            };
            Action::Create {
                value: if rng.gen_ratio(1, 3) { 5 } else { 0 },
                init_code: code,
                gas_limit: gas(rng, 1_500_000),
            }
        }
        9 => {
            let name =
                ["bump()", "bumpTwice()", "exhaust()", "scratch(uint256)"][rng.gen_range(0..4)];
            let args = if name.starts_with("scratch") {
                vec![Word::uint(rng.gen())]
            } else {
                vec![]
            };
            call(probe, 0, call_data(name, &args), gas(rng, 120_000))
        }
        10 => {
            let mut data = call_data("bumpThenFail(string)", &[Word::uint(32), Word::uint(2)]);
            let mut text = [0u8; 32];
            text[..2].copy_from_slice(b"no");
            data.extend_from_slice(&text);
            call(probe, 0, data, gas(rng, 100_000))
        }
        11 => call(
            probe,
            rng.gen_range(0..50),
            call_data("create(uint256)", &[Word::uint(rng.gen_range(0..9))]),
            gas(rng, 400_000),
        ),
        12 => {
            // Few salts: some creations collide.
            let salt = Word::uint(rng.gen_range(0..4));
            let data = call_data("create2(bytes32,uint256)", &[salt, Word::uint(1)]);
            call(probe, 0, data, gas(rng, 400_000))
        }
        13 => call(
            probe,
            rng.gen_range(1..100),
            call_data("forward(address)", &[Word::address(other)]),
            gas(rng, 100_000),
        ),
        14 => call(probe, rng.gen_range(0..100), vec![], gas(rng, 80_000)),
        _ => call(other, rng.gen_range(0..100), vec![1, 2, 3], 30_000),
    };
    let tx = defi.sign(who, action);
    if rng.gen_ratio(1, 30) {
        // A stale nonce: fails without being charged; the next one is still free.
        defi.nonces[who] -= 1;
    }
    tx
}

/// Fails with the first difference (the whole outputs are too long to read).
fn assert_same(got: &BlockOutput, expected: &BlockOutput, what: &str) {
    if got == expected {
        return;
    }
    let at =
        (0..expected.outcomes.len()).find(|i| got.outcomes.get(*i) != expected.outcomes.get(*i));
    if let Some(i) = at {
        panic!(
            "{what}: outcome {i} differs:\n got      {:?}\n expected {:?}",
            got.outcomes.get(i),
            expected.outcomes[i]
        );
    }
    let change = (0..expected.state_changes.len().max(got.state_changes.len()))
        .find(|i| got.state_changes.get(*i) != expected.state_changes.get(*i));
    panic!(
        "{what}: state change {change:?} differs:\n got      {:?}\n expected {:?}\n burnt {} vs {}",
        change.and_then(|i| got.state_changes.get(i)),
        change.and_then(|i| expected.state_changes.get(i)),
        got.burnt_fees,
        expected.burnt_fees
    );
}

fn kind(outcome: &TxOutcome) -> String {
    match outcome {
        TxOutcome::Success => "transfer".into(),
        TxOutcome::Failure(TxFailure::Invalid { .. }) => "invalid".into(),
        TxOutcome::Failure(f) => format!("{f:?}").split([' ', '{']).next().unwrap().into(),
        TxOutcome::Contract(c) => match &c.status {
            ContractStatus::Halted { .. } => "halted".into(),
            status => format!("{status:?}"),
        },
    }
}

#[test]
fn block_stm_runs_contract_blocks_exactly_as_the_sequential_executor() {
    let seeds: u64 = std::env::var("ATOLL_CONTRACT_DIFF_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(6);
    let executors: Vec<(usize, Executor)> = [1, 2, 4, 8]
        .into_iter()
        .map(|n| {
            let threads = NonZeroUsize::new(n).unwrap();
            (
                n,
                Executor::new(threads).unwrap().with_min_parallel_block(0),
            )
        })
        .collect();
    let mut seen = BTreeSet::new();
    let mut placed = 0;
    for seed in 0..seeds {
        let mut world = world(seed);
        let mut rng = StdRng::seed_from_u64(seed);
        for block in 0..BLOCKS {
            let txs: Vec<PreparedTx> = (0..BLOCK_SIZE)
                .map(|_| random_tx(&mut world, &mut rng))
                .collect();
            let defi = &world.defi;
            let expected = sequential::execute(&defi.ctx, &txs, &defi.state).unwrap();
            for (threads, executor) in &executors {
                for declared in [true, false] {
                    let executor = executor.clone().with_declared_keys(declared);
                    let (got, _) = executor
                        .execute_parallel(&defi.ctx, &txs, &defi.state)
                        .unwrap();
                    assert_same(
                        &got,
                        &expected,
                        &format!("seed {seed} block {block}: Block-STM on {threads} threads (declared keys: {declared})"),
                    );
                }
                let (got, _) = executor.execute(&defi.ctx, &txs, &defi.state).unwrap();
                assert_eq!(
                    got, expected,
                    "seed {seed} block {block}: {threads} threads, chosen path"
                );
            }
            seen.extend(expected.outcomes.iter().map(kind));
            placed += expected
                .receipts
                .iter()
                .filter(|r| matches!(r.action, ReceiptAction::Placed { .. }))
                .count();
            world.defi.apply(&expected);
        }
    }
    // Guards the generator: blocks without these would prove little.
    for wanted in [
        "transfer",
        "Success",
        "Revert",
        "OutOfGas",
        "invalid",
        "BadNonce",
        "InsufficientBalance",
    ] {
        assert!(seen.contains(wanted), "no {wanted} outcome in {seen:?}");
    }
    assert!(placed > 0, "no contract was placed on its creator's shard");
}
