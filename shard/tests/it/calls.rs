//! Cross-shard contract calls between two shard chains: the sender's shard
//! sends a call receipt with the value and the gas bought, the contract's
//! shard runs the call and sends the rest back in a refund receipt. Every
//! ending (success, value sent back to the caller, revert, out of gas, a
//! value the contract cannot take) moves the caller's balance by exactly
//! the gas used × price plus the value the call kept; each call runs once
//! and each refund is paid once, across a reopen; the supply is conserved
//! at every step.

use crate::pair::{layout, Pair, BALANCE};
use crate::shards;
use atoll_primitives::{
    Action, Address, ContractStatus, GasRules, KeyPair, ReceiptAction, ShardId, StateKey, TxOutcome,
};
use atoll_shard::contracts::{call_data, create_address, Contract, Word};
use atoll_shard::signatures::VerifiedTx;
use proptest::prelude::*;

/// The price per gas the callers pay (above the base fee of 1).
const PRICE: u128 = 3;

fn contract_tx(key: &KeyPair, nonce: u64, action: Action) -> VerifiedTx {
    crate::pair::signed_at(key, nonce, PRICE, action)
}

fn call(
    key: &KeyPair,
    nonce: u64,
    to: Address,
    value: u128,
    input: Vec<u8>,
    gas: u64,
) -> VerifiedTx {
    let action = Action::Call {
        to,
        value,
        input,
        gas_limit: gas,
    };
    contract_tx(key, nonce, action)
}

/// Two shards with a `Probe` created by `owner` on shard 1 (at an address
/// of shard `range`'s range: a placed contract when that is shard 0), and
/// `callers` funded on shard 0.
fn setup(range: u16, callers: usize) -> (Pair, Vec<KeyPair>, Address) {
    let owners = shards::keys_on(47, layout(), 1, 1);
    let owner = &owners[0];
    let callers = shards::keys_on(47, layout(), 0, callers);
    let mut pair = Pair::new([callers.clone(), owners.clone()]);
    let nonce = (0..64)
        .find(|n| layout().shard_of(&create_address(&owner.address(), *n)) == ShardId(range))
        .unwrap();
    let probe = create_address(&owner.address(), nonce);
    let mut txs: Vec<VerifiedTx> = (0..nonce)
        .map(|n| crate::pair::pay(owner, n, owner.address(), 1))
        .collect();
    txs.push(contract_tx(
        owner,
        nonce,
        Action::Create {
            value: 0,
            init_code: Contract::Probe.init_code(&[]),
            gas_limit: 2_000_000,
        },
    ));
    let produced = pair.block(1, txs);
    assert!(produced.output.outcomes.iter().all(TxOutcome::is_success));
    // A placement on shard 0's range reaches shard 0.
    pair.block(0, Vec::new());
    (pair, callers, probe)
}

fn status_of(outcome: &TxOutcome) -> &ContractStatus {
    match outcome {
        TxOutcome::Contract(run) => &run.status,
        other => panic!("not a contract outcome: {other:?}"),
    }
}

fn counter(pair: &Pair, probe: Address) -> u128 {
    let slot = pair.state(1, StateKey::Slot(probe, [0; 32]));
    slot.and_then(|v| match v {
        atoll_primitives::StateValue::Slot(word) => Word(word).to_u128(),
        _ => None,
    })
    .unwrap_or(0)
}

#[test]
fn a_call_to_another_shard_runs_there_once_and_refunds_what_it_did_not_use() {
    for range in [1, 0] {
        let (mut pair, callers, probe) = setup(range, 1);
        let caller = &callers[0];
        let supply = BALANCE * 2;
        assert_eq!(pair.total(), supply);
        let gas = 200_000;
        let me = Word::address(caller.address());
        let txs = vec![
            // Success: the counter goes up.
            call(caller, 0, probe, 0, call_data("bump()", &[]), gas),
            // Success: the value comes straight back to the caller.
            call(
                caller,
                1,
                probe,
                700,
                call_data("forward(address)", &[me]),
                gas,
            ),
            // Revert: the bump is undone, the value comes back.
            call(
                caller,
                2,
                probe,
                50,
                call_data("bumpThenFail(string)", &[]),
                gas,
            ),
            // Out of gas: all of it is used.
            call(caller, 3, probe, 0, call_data("exhaust()", &[]), gas),
            // Input no function takes, and no fallback: it reverts and
            // the value comes back.
            call(caller, 4, probe, 9, vec![0xde, 0xad], gas),
        ];
        let calls = txs.len();
        let sent = pair.block(0, txs);
        for outcome in &sent.output.outcomes {
            assert_eq!(status_of(outcome), &ContractStatus::Sent { shard: 1 });
        }
        let bought = PRICE * u128::from(gas) * calls as u128;
        assert_eq!(
            pair.balance(0, &caller.address()),
            BALANCE - bought - 759,
            "the sender paid the gas and value up front"
        );
        assert_eq!(
            sent.block.header.burnt_fees, 0,
            "nothing ran on the sender's shard"
        );
        assert_eq!(pair.total(), supply);
        // A placed contract: shard 0 routes by its placement.
        assert!(sent
            .output
            .receipts
            .iter()
            .all(|r| r.destination == ShardId(1)));

        // The contract's shard runs them, with a reopen first.
        pair.reopen(1);
        let ran = pair.block(1, Vec::new());
        let records = &ran.output.calls;
        assert_eq!(records.len(), calls, "each call ran once");
        let statuses: Vec<&ContractStatus> = records.iter().map(|r| &r.outcome.status).collect();
        assert_eq!(statuses[0], &ContractStatus::Success);
        assert_eq!(statuses[1], &ContractStatus::Success);
        assert_eq!(statuses[2], &ContractStatus::Revert);
        assert_eq!(statuses[3], &ContractStatus::OutOfGas);
        assert_eq!(statuses[4], &ContractStatus::Revert);
        assert_eq!(records[3].outcome.gas_used, gas);
        assert_eq!(counter(&pair, probe), 1, "only the first call's bump stays");
        let used: u128 = records.iter().map(|r| u128::from(r.outcome.gas_used)).sum();
        assert_eq!(ran.block.header.burnt_fees, used * PRICE);
        assert_eq!(pair.total(), supply);
        let refunds: Vec<(u16, u128, bool)> = ran
            .output
            .receipts
            .iter()
            .map(|r| match r.action {
                ReceiptAction::Refund {
                    to,
                    amount,
                    success,
                    gas_used,
                    reply: None,
                } => {
                    assert_eq!(to, caller.address());
                    assert!(gas_used > 0);
                    (r.destination.0, amount, success)
                }
                ref other => panic!("not a refund: {other:?}"),
            })
            .collect();
        let unused = |i: usize| PRICE * u128::from(gas - records[i].outcome.gas_used);
        assert_eq!(
            refunds,
            vec![
                (0, unused(0), true),
                (0, unused(1) + 700, true),
                (0, unused(2) + 50, false),
                (0, 0, false),
                (0, unused(4) + 9, false),
            ]
        );
        for record in records {
            let stored = pair.chains[1]
                .store()
                .call_record(record.source, record.sequence)
                .unwrap();
            assert_eq!(stored.as_ref(), Some(record), "stored with the block");
        }

        // The refunds land once; the caller is down exactly the gas used.
        pair.block(0, Vec::new());
        assert_eq!(pair.balance(0, &caller.address()), BALANCE - used * PRICE);
        assert!(pair.in_flight.iter().all(Vec::is_empty));
        pair.block(1, Vec::new());
        pair.block(0, Vec::new());
        assert_eq!(pair.balance(0, &caller.address()), BALANCE - used * PRICE);
        assert_eq!(counter(&pair, probe), 1);
        assert_eq!(pair.total(), supply);
    }
}

#[test]
fn a_replayed_call_receipt_is_refused_and_changes_nothing() {
    let (mut pair, callers, probe) = setup(1, 1);
    let caller = &callers[0];
    pair.block(
        0,
        vec![call(caller, 0, probe, 0, call_data("bump()", &[]), 100_000)],
    );
    let receipts = pair.in_flight[1].clone();
    pair.block(1, Vec::new());
    assert_eq!(counter(&pair, probe), 1);
    let head = pair.chains[1].head().clone();
    let headers = pair.headers.clone();
    let refused = pair.chains[1].produce_block_with_receipts(
        Vec::new(),
        receipts,
        |source, height| headers[usize::from(source.0)].get(&height).cloned(),
        u64::MAX / 2,
    );
    assert!(refused.is_err(), "a replayed call receipt is refused");
    assert_eq!(pair.chains[1].head(), &head);
    assert_eq!(counter(&pair, probe), 1);
}

#[test]
fn the_calls_a_block_takes_fit_its_gas_limit_and_the_rest_wait_in_order() {
    let (mut pair, callers, probe) = setup(1, 4);
    let limit = 600_000;
    // The contract's shard only: the callers' shard takes all four in one
    // block.
    pair.chains[1].set_gas_rules(GasRules {
        block_gas_limit: limit,
        base_fee: 1,
    });
    // Each call may use a third of the block's gas: three fit in a block.
    let gas = limit / 3;
    let txs: Vec<VerifiedTx> = callers
        .iter()
        .map(|c| call(c, 0, probe, 0, call_data("bump()", &[]), gas))
        .collect();
    pair.block(0, txs);
    assert_eq!(pair.in_flight[1].len(), 4);
    let first = pair.block(1, Vec::new());
    assert_eq!(first.output.calls.len(), 3);
    let second = pair.block(1, Vec::new());
    assert_eq!(second.output.calls.len(), 1);
    assert_eq!(second.output.calls[0].sequence, 3, "in order");
    assert_eq!(counter(&pair, probe), 4);
}

/// One step of a random schedule.
#[derive(Clone, Debug)]
enum Step {
    /// Caller `i` calls `function` with `value` and `gas`.
    Call {
        caller: usize,
        function: u8,
        value: u128,
        gas: u64,
    },
    /// A block of shard `0` or `1` (taking what waits for it).
    Block(usize),
    /// Shard `0` or `1` is closed and opened again.
    Reopen(usize),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (0..3usize, 0..5u8, 0..1_000u128, 25_000..300_000u64).prop_map(
            |(caller, function, value, gas)| Step::Call { caller, function, value, gas }
        ),
        3 => (0..2usize).prop_map(Step::Block),
        1 => (0..2usize).prop_map(Step::Reopen),
    ]
}

fn input(function: u8, caller: &Address) -> Vec<u8> {
    match function {
        0 => call_data("bump()", &[]),
        1 => call_data("forward(address)", &[Word::address(*caller)]),
        2 => call_data("bumpThenFail(string)", &[]),
        3 => call_data("exhaust()", &[]),
        _ => call_data("create(uint256)", &[Word::uint(7)]),
    }
}

/// The refund receipts a block applied.
fn refunds_in(produced: &atoll_shard::ProducedBlock) -> usize {
    produced
        .block
        .body
        .incoming
        .iter()
        .filter(|p| matches!(p.receipt.action, ReceiptAction::Refund { .. }))
        .count()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    /// Random calls, blocks and reopens: the supply is conserved after every
    /// step; in the end every call ran exactly once, every refund was paid
    /// exactly once, and each caller is down exactly its gas used × price
    /// plus the value its calls kept.
    #[test]
    fn random_cross_shard_calls_conserve_value_and_settle_exactly_once(
        steps in proptest::collection::vec(step(), 1..40)
    ) {
        let (mut pair, callers, probe) = setup(1, 3);
        let supply = BALANCE * 4;
        let mut nonces = [0u64; 3];
        let mut sent = 0usize;
        let mut ran = Vec::new();
        let mut refunds = 0usize;
        for step in steps {
            match step {
                Step::Call { caller, function, value, gas } => {
                    let key = &callers[caller];
                    let data = input(function, &key.address());
                    let tx = call(key, nonces[caller], probe, value, data, gas);
                    let produced = pair.block(0, vec![tx]);
                    refunds += refunds_in(&produced);
                    if matches!(status_of(&produced.output.outcomes[0]), ContractStatus::Sent { .. }) {
                        nonces[caller] += 1;
                        sent += 1;
                    } else {
                        // Below its intrinsic gas: refused, nothing charged.
                        prop_assert!(matches!(produced.output.outcomes[0], TxOutcome::Failure(_)));
                    }
                }
                Step::Block(shard) => {
                    let produced = pair.block(shard, Vec::new());
                    ran.extend(produced.output.calls.iter().cloned());
                    refunds += refunds_in(&produced);
                }
                Step::Reopen(shard) => pair.reopen(shard),
            }
            prop_assert_eq!(pair.total(), supply);
        }
        // Settle what is still in flight.
        for _ in 0..3 {
            for shard in [1, 0] {
                let produced = pair.block(shard, Vec::new());
                ran.extend(produced.output.calls.iter().cloned());
                refunds += refunds_in(&produced);
            }
        }
        prop_assert!(pair.in_flight.iter().all(Vec::is_empty));
        prop_assert_eq!(ran.len(), sent, "every call ran once");
        let sequences: Vec<u64> = ran.iter().map(|r| r.sequence).collect();
        prop_assert_eq!(sequences, (0..sent as u64).collect::<Vec<_>>());
        prop_assert_eq!(refunds, sent, "every refund was paid once");
        prop_assert_eq!(pair.total(), supply);
        // What the callers lost is what was burnt (the gas of every call)
        // plus what the contract and its children kept.
        let lost: u128 = callers
            .iter()
            .map(|c| BALANCE - pair.balance(0, &c.address()))
            .sum();
        let used: u128 = ran.iter().map(|r| u128::from(r.outcome.gas_used)).sum();
        let held_by_contracts = pair.balance(1, &probe)
            + (1..=sent as u64)
                .map(|n| pair.balance(1, &create_address(&probe, n)))
                .sum::<u128>();
        prop_assert_eq!(lost, used * PRICE + held_by_contracts);
    }
}

/// Deploys a `Dispatcher` from `caller` (nonce 0) on shard 0 and lets any
/// placement settle; returns its address.
fn deploy_dispatcher(pair: &mut Pair, caller: &KeyPair) -> Address {
    let deploy = contract_tx(
        caller,
        0,
        Action::Create {
            value: 0,
            init_code: Contract::Dispatcher.init_code(&[]),
            gas_limit: 2_000_000,
        },
    );
    let produced = pair.block(0, vec![deploy]);
    assert!(produced.output.outcomes[0].is_success(), "{produced:?}");
    pair.block(1, Vec::new());
    pair.block(0, Vec::new());
    create_address(&caller.address(), 0)
}

/// `data` as the tail of an ABI `bytes` argument: its length, then its
/// bytes padded to whole words.
fn bytes_words(data: &[u8]) -> Vec<Word> {
    let mut padded = data.to_vec();
    padded.resize(data.len().div_ceil(32) * 32, 0);
    std::iter::once(Word::uint(data.len() as u128))
        .chain(padded.chunks(32).map(|c| Word(c.try_into().unwrap())))
        .collect()
}

#[test]
fn a_contract_sends_calls_to_another_shard_through_the_cross_shard_contract() {
    let (mut pair, callers, probe) = setup(1, 1);
    let caller = &callers[0];
    let supply = BALANCE * 2;
    let dispatcher = deploy_dispatcher(&mut pair, caller);
    assert_eq!(pair.total(), supply);

    let gas = 100_000u64;
    let dispatch = |nonce: u64, to: Address, value: u128, fail: Option<bool>| {
        let data = call_data("bump()", &[]);
        let input = match fail {
            None => dispatch_data("dispatch(address,bytes,uint256)", to, &data, gas, None),
            Some(fail) => dispatch_data(
                "dispatchTwice(address,bytes,uint256,bool)",
                to,
                &data,
                gas,
                Some(fail),
            ),
        };
        call(caller, nonce, dispatcher, value, input, 300_000)
    };
    let paid = PRICE * u128::from(gas);
    // One call sent: it runs on shard 1 and its refund returns to the
    // dispatcher.
    let produced = pair.block(0, vec![dispatch(1, probe, paid, None)]);
    assert_eq!(
        status_of(&produced.output.outcomes[0]),
        &ContractStatus::Success
    );
    let sent: Vec<_> = produced.output.receipts.iter().map(|r| &r.action).collect();
    assert_eq!(
        sent,
        vec![&ReceiptAction::Call {
            caller: dispatcher,
            to: probe,
            value: 0,
            input: call_data("bump()", &[]),
            gas_limit: gas,
            price: PRICE,
            callback: None,
        }]
    );
    assert_eq!(pair.total(), supply);
    let ran = pair.block(1, Vec::new());
    assert_eq!(ran.output.calls.len(), 1);
    assert_eq!(ran.output.calls[0].outcome.status, ContractStatus::Success);
    assert_eq!(counter(&pair, probe), 1);
    let used = u128::from(ran.output.calls[0].outcome.gas_used);
    pair.block(0, Vec::new());
    assert_eq!(pair.balance(0, &dispatcher), paid - used * PRICE);
    assert_eq!(pair.total(), supply);

    // Two calls, then a revert: none is sent, the value stays with the
    // caller.
    let produced = pair.block(0, vec![dispatch(2, probe, 2 * paid, Some(true))]);
    assert_eq!(
        status_of(&produced.output.outcomes[0]),
        &ContractStatus::Revert
    );
    assert!(produced.output.receipts.is_empty());
    // Without the revert, both go, in order.
    let produced = pair.block(0, vec![dispatch(3, probe, 2 * paid, Some(false))]);
    assert_eq!(
        status_of(&produced.output.outcomes[0]),
        &ContractStatus::Success
    );
    assert_eq!(produced.output.receipts.len(), 2);
    // Too little value for the gas: the cross-shard contract refuses.
    let produced = pair.block(0, vec![dispatch(4, probe, paid - 1, None)]);
    assert_eq!(
        status_of(&produced.output.outcomes[0]),
        &ContractStatus::Revert
    );
    // A target on this shard: the transaction fails, nothing is sent.
    let produced = pair.block(0, vec![dispatch(5, caller.address(), paid, None)]);
    assert!(
        matches!(status_of(&produced.output.outcomes[0]), ContractStatus::Halted { reason } if reason.contains("this shard's range")),
        "{:?}",
        produced.output.outcomes
    );
    assert!(produced.output.receipts.is_empty());
    for shard in [1, 0, 1, 0] {
        pair.block(shard, Vec::new());
    }
    assert_eq!(counter(&pair, probe), 3);
    assert!(pair.in_flight.iter().all(Vec::is_empty));
    assert_eq!(pair.total(), supply);
}

/// The call data of the dispatcher's `signature` (`dispatch` or, with
/// `fail`, `dispatchTwice`) for a call of `data` to `to` with `gas`.
fn dispatch_data(
    signature: &str,
    to: Address,
    data: &[u8],
    gas: u64,
    fail: Option<bool>,
) -> Vec<u8> {
    let head = if fail.is_some() { 4 } else { 3 };
    let mut words = vec![
        Word::address(to),
        Word::uint(32 * head as u128),
        Word::uint(u128::from(gas)),
    ];
    if let Some(fail) = fail {
        words.push(Word::bool(fail));
    }
    words.extend(bytes_words(data));
    call_data(signature, &words)
}

#[test]
fn a_cross_shard_call_with_a_callback_reports_its_result_to_the_caller() {
    let (mut pair, callers, probe) = setup(1, 1);
    let caller = &callers[0];
    let supply = BALANCE * 2;
    let dispatcher = deploy_dispatcher(&mut pair, caller);
    let (gas, callback_gas) = (100_000u64, 300_000u64);
    let paid = PRICE * u128::from(gas + callback_gas);
    let slot = |n: u128| Word::uint(n).0;
    let word = |pair: &Pair, n: u128| match pair.state(0, StateKey::Slot(dispatcher, slot(n))) {
        Some(atoll_primitives::StateValue::Slot(word)) => Word(word).to_u128().unwrap(),
        _ => 0,
    };
    for (nonce, function, expect_success) in [
        (
            1,
            call_data(
                "echo(bytes)",
                &[
                    Word::uint(32),
                    Word::uint(2),
                    Word(*b"hi\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0"),
                ],
            ),
            true,
        ),
        (2, call_data("bumpThenFail(string)", &[]), false),
    ] {
        let before = pair.balance(0, &dispatcher);
        let mut words = vec![
            Word::address(probe),
            Word::uint(128),
            Word::uint(u128::from(gas)),
            Word::uint(u128::from(callback_gas)),
        ];
        words.extend(bytes_words(&function));
        let input = call_data(
            "dispatchWithCallback(address,bytes,uint256,uint256)",
            &words,
        );
        let produced = pair.block(
            0,
            vec![call(caller, nonce, dispatcher, paid, input, 400_000)],
        );
        assert_eq!(
            status_of(&produced.output.outcomes[0]),
            &ContractStatus::Success
        );
        let ran = pair.block(1, Vec::new());
        let used = u128::from(ran.output.calls[0].outcome.gas_used);
        let reply = ran.output.receipts.iter().find_map(|r| match &r.action {
            ReceiptAction::Refund { reply, success, .. } => Some((reply.clone(), *success)),
            _ => None,
        });
        let (Some(reply), success) = reply.expect("a refund") else {
            panic!("no callback in the refund");
        };
        assert_eq!(success, expect_success);
        assert_eq!(reply.callback.gas_limit, callback_gas);
        // Back on shard 0: the callback runs from the cross-shard contract.
        let back = pair.block(0, Vec::new());
        let record = &back.output.calls[0];
        assert_eq!(record.refund, None, "a callback");
        assert_eq!(record.outcome.status, ContractStatus::Success, "{record:?}");
        let callback_used = u128::from(record.outcome.gas_used);
        assert_eq!(
            pair.balance(0, &dispatcher) - before,
            paid - (used + callback_used) * PRICE,
            "the dispatcher paid exactly the gas of the call and the callback"
        );
        assert_eq!(word(&pair, 0), nonce as u128, "results");
        assert_eq!(word(&pair, 1), u128::from(expect_success), "lastSuccess");
        if expect_success {
            // The echo's output (96 bytes of ABI) reached the callback: a
            // long `bytes` keeps 2 × length + 1 in its slot.
            assert_eq!(word(&pair, 2), 2 * 96 + 1, "lastOutput");
        }
        assert_eq!(pair.total(), supply);
    }
    assert_eq!(
        counter(&pair, probe),
        0,
        "the failing call's bump was undone"
    );
}

#[test]
fn an_account_creates_a_contract_on_another_shard_through_the_cross_shard_contract() {
    use atoll_shard::execution::calls::CROSS_SHARD;
    use atoll_shard::execution::evm::code_hash;

    let (mut pair, callers, _) = setup(1, 1);
    let caller = &callers[0];
    let supply = BALANCE * 2;
    let init = Contract::Probe.init_code(&[]);
    let (salt, gas) = ([7u8; 32], 1_500_000u64);
    let mut words = vec![
        Word::uint(1),
        Word::uint(128),
        Word(salt),
        Word::uint(u128::from(gas)),
    ];
    words.extend(bytes_words(&init));
    let input = call_data("createAsync(uint16,bytes,bytes32,uint256)", &words);
    let endowment = 0; // Probe's constructor takes no value
    let value = PRICE * u128::from(gas) + endowment;
    let produced = pair.block(0, vec![call(caller, 0, CROSS_SHARD, value, input, 400_000)]);
    assert_eq!(
        status_of(&produced.output.outcomes[0]),
        &ContractStatus::Success
    );
    assert_eq!(produced.output.receipts.len(), 1);
    assert_eq!(produced.output.receipts[0].destination, ShardId(1));
    assert_eq!(pair.total(), supply);

    // Shard 1 creates it at the CREATE2 address `addressOf` gives.
    let ran = pair.block(1, Vec::new());
    assert_eq!(
        ran.output.calls[0].outcome.status,
        ContractStatus::Success,
        "{ran:?}"
    );
    let mut key = Word::address(caller.address()).0.to_vec();
    key.extend_from_slice(&salt);
    let expected = atoll_shard::contracts::create2_address(&CROSS_SHARD, code_hash(&key).0, &init);
    assert!(pair.state(1, StateKey::CodeHash(expected)).is_some());
    assert_eq!(pair.balance(1, &expected), endowment);
    // Its range's shard, when another, routes to it from then on.
    for shard in [0, 1, 0] {
        pair.block(shard, Vec::new());
    }
    if layout().shard_of(&expected) == ShardId(0) {
        assert_eq!(
            pair.state(0, StateKey::Placement(expected)),
            Some(atoll_primitives::StateValue::Placement(ShardId(1)))
        );
    }
    // And a call from shard 0 reaches it.
    let bump = call(caller, 1, expected, 0, call_data("bump()", &[]), 100_000);
    pair.block(0, vec![bump]);
    pair.block(1, Vec::new());
    assert_eq!(
        pair.state(1, StateKey::Slot(expected, [0; 32])),
        Some(atoll_primitives::StateValue::Slot(Word::uint(1).0))
    );
    pair.block(0, Vec::new());
    assert!(pair.in_flight.iter().all(Vec::is_empty));
    assert_eq!(pair.total(), supply);
}
