//! Invariant 3 (determinism): Block-STM (with and without declared keys) and
//! the declared-dependency executor give exactly the sequential result.

use crate::scenario::{generate, supply, Scenario};
use atoll_primitives::{StateKey, StateValue};
use atoll_shard::execution::{sequential, BlockOutput, Executor};
use atoll_shard::state::StateTree;
use proptest::prelude::*;
use std::collections::HashMap;
use std::num::NonZeroUsize;

fn post_state_root(
    genesis: &HashMap<StateKey, StateValue>,
    output: &BlockOutput,
) -> atoll_primitives::Hash {
    let mut tree = StateTree::from_entries(genesis.iter().map(|(k, v)| (*k, v.clone())));
    tree.update(&output.state_changes);
    tree.root()
}

/// Balances after the block plus receipts in flight plus burnt fees equal the
/// balances before (mod 2^128, see `Scenario::genesis_supply`).
fn assert_conserved(scenario: &Scenario, output: &BlockOutput) {
    let mut after: HashMap<StateKey, StateValue> = scenario.genesis.clone();
    for (key, value) in &output.state_changes {
        match value {
            Some(value) => after.insert(*key, value.clone()),
            None => after.remove(key),
        };
    }
    let total = supply(after.values())
        // The generator's whales make the supply wrap, so the receipts'
        // value is summed mod 2^128 too (`receipt_value` would overflow).
        .wrapping_add(
            output
                .receipts
                .iter()
                .fold(0u128, |s, r| s.wrapping_add(r.value())),
        )
        .wrapping_add(output.burnt_fees);
    assert_eq!(
        total,
        scenario.genesis_supply(),
        "value was created or destroyed"
    );
}

fn check_scenario(seed: u64, accounts: usize, txs: usize) {
    let scenario = generate(seed, accounts, txs);
    let expected = sequential::execute(&scenario.ctx, &scenario.txs, &scenario.genesis).unwrap();
    assert_eq!(expected.outcomes.len(), scenario.txs.len());
    assert_conserved(&scenario, &expected);
    let expected_root = post_state_root(&scenario.genesis, &expected);
    for threads in [1usize, 2, 4, 8] {
        for declared in [true, false] {
            let executor = Executor::new(NonZeroUsize::new(threads).unwrap())
                .unwrap()
                .with_declared_keys(declared);
            let (output, stats) = executor
                .execute_parallel(&scenario.ctx, &scenario.txs, &scenario.genesis)
                .unwrap();
            assert_eq!(
                output, expected,
                "seed {seed}: {threads} threads, declared keys {declared}, {stats:?}"
            );
            assert_eq!(post_state_root(&scenario.genesis, &output), expected_root);
            // The automatic choice of path must agree as well.
            let (auto, _) = executor
                .clone()
                .with_min_parallel_block(0)
                .execute(&scenario.ctx, &scenario.txs, &scenario.genesis)
                .unwrap();
            assert_eq!(
                auto, expected,
                "seed {seed}: automatic path, {threads} threads"
            );
            if declared {
                let (output, _) = executor
                    .execute_declared(&scenario.ctx, &scenario.txs, &scenario.genesis)
                    .unwrap()
                    .unwrap();
                assert_eq!(
                    output, expected,
                    "seed {seed}: declared-dependency path, {threads} threads"
                );
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    #[test]
    fn parallel_matches_sequential(seed in any::<u64>(), accounts in 2usize..=1000, txs in 1usize..400) {
        check_scenario(seed, accounts, txs);
    }

    #[test]
    fn parallel_matches_sequential_under_contention(seed in any::<u64>(), accounts in 2usize..=8, txs in 50usize..600) {
        check_scenario(seed, accounts, txs);
    }
}

#[test]
fn large_block_with_many_conflicts() {
    check_scenario(7, 30, 3_000);
    check_scenario(8, 1_000, 3_000);
}

#[test]
fn outcomes_cover_every_failure_kind() {
    // Guards the generator: a differential test over blocks without failures
    // would prove little.
    use atoll_primitives::{TxFailure, TxOutcome};
    let mut seen = std::collections::BTreeSet::new();
    for seed in 0..40 {
        let scenario = generate(seed, 20, 300);
        let out = sequential::execute(&scenario.ctx, &scenario.txs, &scenario.genesis).unwrap();
        for outcome in &out.outcomes {
            seen.insert(match outcome {
                TxOutcome::Success => "success",
                TxOutcome::Failure(TxFailure::WrongChainId { .. }) => "chain",
                TxOutcome::Failure(TxFailure::BadNonce { .. }) => "nonce",
                TxOutcome::Failure(TxFailure::CannotPayFee { .. }) => "fee",
                TxOutcome::Failure(TxFailure::InsufficientBalance { .. }) => "balance",
                TxOutcome::Failure(TxFailure::BalanceOverflow) => "overflow",
                TxOutcome::Failure(TxFailure::SenderOnOtherShard { .. }) => "shard",
                // Needs a nonce of u64::MAX: covered by a unit test, not generated.
                TxOutcome::Failure(TxFailure::NonceExhausted) => "nonce exhausted",
                // Needs an account moving between shards: covered by the
                // multi-shard tests.
                TxOutcome::Failure(TxFailure::SenderArriving) => "arriving",
                // Contract transactions: the contract differential tests.
                TxOutcome::Failure(TxFailure::Invalid { .. }) => "invalid",
                TxOutcome::Contract(_) => "contract",
            });
        }
        if !out.receipts.is_empty() {
            seen.insert("receipt");
        }
    }
    let all = [
        "success", "chain", "nonce", "fee", "balance", "overflow", "shard", "receipt",
    ];
    for kind in all {
        assert!(seen.contains(kind), "no {kind} outcome generated");
    }
}
