//! Contract transactions: what each does to the state and to the sender's
//! balance, Ethereum features current solc relies on, contracts creating
//! contracts, calls toward another shard, and a chain with contract state
//! reopened.

use atoll_primitives::{
    Account, Action, ChainId, ContractOutcome, ContractStatus, ReceiptAction, ShardId, ShardLayout,
    ShardMap, StateKey, StateValue, TxFailure, TxOutcome,
};
use atoll_shard::contracts::{
    call_data, create2_address, create_address, mapping_slot, word, Contract, Word,
};
use atoll_shard::execution::evm::code_hash;
use atoll_shard::execution::{BlockOutput, PreparedTx};
use atoll_shard::workload::{dev_keys, DefiState};
use atoll_shard::ShardChain;
use atoll_storage::StoreIdentity;
use std::num::NonZeroUsize;
use std::sync::Arc;

const CHAIN: ChainId = ChainId(17);

fn native(defi: &DefiState, who: usize) -> Account {
    match defi.state.get(&StateKey::Account(defi.keys[who].address())) {
        Some(StateValue::Account(account)) => *account,
        _ => Account::default(),
    }
}

fn slot(defi: &DefiState, contract: atoll_primitives::Address, index: [u8; 32]) -> u128 {
    match defi.state.get(&StateKey::Slot(contract, index)) {
        Some(StateValue::Slot(word)) => Word(*word).to_u128().unwrap(),
        _ => 0,
    }
}

fn slot_n(n: u8) -> [u8; 32] {
    let mut index = [0; 32];
    index[31] = n;
    index
}

fn run_one(defi: &mut DefiState, tx: PreparedTx) -> (ContractOutcome, BlockOutput) {
    let output = defi.execute(&[tx]).unwrap();
    match &output.outcomes[0] {
        TxOutcome::Contract(outcome) => (outcome.clone(), output),
        other => panic!("expected a contract outcome, got {other:?}"),
    }
}

fn probe(defi: &mut DefiState) -> atoll_primitives::Address {
    defi.deploy(0, Contract::Probe.init_code(&[])).unwrap()
}

#[test]
fn an_erc20_transfer_moves_tokens_and_burns_only_the_gas_used() {
    let mut defi = DefiState::erc20(CHAIN, dev_keys(3, 4)).unwrap();
    let token = defi.tokens[0];
    let (a, b) = (defi.keys[1].address(), defi.keys[2].address());
    let before = native(&defi, 1);
    let held = slot(&defi, token, mapping_slot(1, &a));
    let data = call_data(
        "transfer(address,uint256)",
        &[Word::address(b), Word::uint(250)],
    );
    let tx = defi.call(1, token, data, 60_000);
    let (outcome, output) = run_one(&mut defi, tx);

    assert_eq!(outcome.status, ContractStatus::Success);
    assert!(outcome.gas_used > 21_000 && outcome.gas_used < 60_000);
    assert_eq!(word(&outcome.output, 0), Some(Word::bool(true)));
    assert_eq!(outcome.logs.len(), 1, "one Transfer event");
    assert_eq!(outcome.logs[0].address, token);
    assert_eq!(outcome.logs[0].topics[1], Word::address(a).0);
    assert_eq!(outcome.logs[0].topics[2], Word::address(b).0);
    assert_eq!(slot(&defi, token, mapping_slot(1, &a)), held - 250);
    assert_eq!(slot(&defi, token, mapping_slot(1, &b)), held + 250);
    // Bought 60,000 gas at price 1, refunded what it did not use.
    let after = native(&defi, 1);
    assert_eq!(after.balance, before.balance - u128::from(outcome.gas_used));
    assert_eq!(after.nonce, before.nonce + 1);
    assert_eq!(output.burnt_fees, u128::from(outcome.gas_used));
}

#[test]
fn reverts_and_running_out_of_gas_pay_for_gas_and_undo_the_rest() {
    let mut defi = DefiState::new(CHAIN, dev_keys(4, 2));
    let probe = probe(&mut defi);
    let supply = |defi: &DefiState| -> u128 {
        defi.state
            .values()
            .filter_map(|v| match v {
                StateValue::Account(a) => Some(a.balance),
                _ => None,
            })
            .sum()
    };
    let total = supply(&defi);

    let before = native(&defi, 1);
    let reason = {
        let mut data = call_data("bumpThenFail(string)", &[Word::uint(32), Word::uint(4)]);
        let mut text = [0u8; 32];
        text[..4].copy_from_slice(b"nope");
        data.extend_from_slice(&text);
        data
    };
    let mut tx_action = Action::Call {
        to: probe,
        value: 0,
        input: reason,
        gas_limit: 100_000,
    };
    let tx = defi.sign(1, tx_action.clone());
    let (outcome, output) = run_one(&mut defi, tx);
    assert_eq!(outcome.status, ContractStatus::Revert);
    assert!(outcome.logs.is_empty());
    assert!(
        outcome.output.windows(4).any(|w| w == b"nope"),
        "the revert data carries the reason"
    );
    assert_eq!(slot(&defi, probe, slot_n(0)), 0, "the bump was undone");
    let after = native(&defi, 1);
    assert_eq!(after.nonce, before.nonce + 1);
    assert_eq!(after.balance, before.balance - u128::from(outcome.gas_used));
    assert_eq!(supply(&defi) + output.burnt_fees, total);

    // Value sent to a function that is not payable comes back.
    if let Action::Call { value, input, .. } = &mut tx_action {
        *value = 1_000;
        *input = call_data("bump()", &[]);
    }
    let before = native(&defi, 1);
    let tx = defi.sign(1, tx_action);
    let (outcome, _) = run_one(&mut defi, tx);
    assert_eq!(outcome.status, ContractStatus::Revert);
    assert_eq!(
        native(&defi, 1).balance,
        before.balance - u128::from(outcome.gas_used)
    );

    // Out of gas: all of it is paid.
    let before = native(&defi, 1);
    let tx = defi.call(1, probe, call_data("exhaust()", &[]), 80_000);
    let (outcome, _) = run_one(&mut defi, tx);
    assert_eq!(outcome.status, ContractStatus::OutOfGas);
    assert_eq!(outcome.gas_used, 80_000);
    assert_eq!(native(&defi, 1).balance, before.balance - 80_000);
    assert_eq!(slot(&defi, probe, slot_n(0)), 0);
}

#[test]
fn transactions_no_block_may_run_are_charged_nothing() {
    let mut defi = DefiState::new(CHAIN, dev_keys(5, 2));
    let probe = probe(&mut defi);
    let before = native(&defi, 1);
    // Below the intrinsic cost, above the block's limit, below the base fee.
    let too_little = defi.call(1, probe, call_data("bump()", &[]), 1_000);
    let out = defi.execute(&[too_little]).unwrap();
    assert!(matches!(
        out.outcomes[0],
        TxOutcome::Failure(TxFailure::Invalid { .. })
    ));
    defi.nonces[1] -= 1;
    let too_much = defi.call(
        1,
        probe,
        call_data("bump()", &[]),
        defi.ctx.gas.block_gas_limit + 1,
    );
    let out = defi.execute(&[too_much]).unwrap();
    assert!(matches!(
        out.outcomes[0],
        TxOutcome::Failure(TxFailure::Invalid { .. })
    ));
    defi.nonces[1] -= 1;
    let free = {
        let tx = atoll_primitives::Transaction {
            chain_id: CHAIN,
            sender: defi.keys[1].public(),
            nonce: defi.nonces[1],
            fee: 0,
            action: Action::Call {
                to: probe,
                value: 0,
                input: vec![],
                gas_limit: 50_000,
            },
        };
        PreparedTx::new(tx.sign(&defi.keys[1]))
    };
    let out = defi.execute(&[free]).unwrap();
    let TxOutcome::Failure(TxFailure::Invalid { reason }) = &out.outcomes[0] else {
        panic!("{:?}", out.outcomes[0]);
    };
    assert!(reason.contains("base fee"), "{reason}");
    // More gas than the balance can buy.
    let rich = defi.call(1, probe, call_data("bump()", &[]), 1_000_000);
    let mut poor = rich.signed.native().unwrap().tx.clone();
    poor.fee = before.balance;
    let out = defi
        .execute(&[PreparedTx::new(poor.sign(&defi.keys[1]))])
        .unwrap();
    assert!(matches!(
        out.outcomes[0],
        TxOutcome::Failure(TxFailure::CannotPayFee { .. })
    ));
    assert_eq!(native(&defi, 1), before, "nothing was charged");
}

#[test]
fn current_solidity_runs_transient_storage_mcopy_and_block_context() {
    let mut defi = DefiState::new(CHAIN, dev_keys(6, 2));
    let probe = probe(&mut defi);

    let tx = defi.call(
        1,
        probe,
        call_data("scratch(uint256)", &[Word::uint(77)]),
        100_000,
    );
    let (outcome, _) = run_one(&mut defi, tx);
    assert_eq!(outcome.status, ContractStatus::Success);
    assert_eq!(word(&outcome.output, 0), Some(Word::uint(77)));

    let payload: Vec<u8> = (0..45u8).collect();
    let mut data = call_data("echo(bytes)", &[Word::uint(32), Word::uint(45)]);
    let mut padded = payload.clone();
    padded.resize(64, 0);
    data.extend_from_slice(&padded);
    let tx = defi.call(1, probe, data, 100_000);
    let (outcome, _) = run_one(&mut defi, tx);
    assert_eq!(outcome.status, ContractStatus::Success);
    assert_eq!(word(&outcome.output, 1), Some(Word::uint(45)));
    assert_eq!(&outcome.output[64..64 + 45], &payload[..]);

    let ctx = defi.ctx.clone();
    let tx = defi.call(1, probe, call_data("context()", &[]), 100_000);
    let (outcome, _) = run_one(&mut defi, tx);
    assert_eq!(outcome.status, ContractStatus::Success);
    let out = &outcome.output;
    assert_eq!(word(out, 0), Some(Word::uint(ctx.height.into())));
    assert_eq!(
        word(out, 1),
        Some(Word::uint((ctx.timestamp_ms / 1000).into()))
    );
    assert_eq!(word(out, 2), Some(Word::uint(CHAIN.0.into())));
    assert_eq!(word(out, 3), Some(Word::uint(ctx.gas.base_fee.into())));
    assert_eq!(word(out, 4), Some(Word(ctx.parent_hash.0)));
}

#[test]
fn contracts_create_contracts_with_create_and_create2() {
    let mut defi = DefiState::new(CHAIN, dev_keys(7, 2));
    let probe = probe(&mut defi);

    let tx = defi.sign(
        1,
        Action::Call {
            to: probe,
            value: 500,
            input: call_data("create(uint256)", &[Word::uint(5)]),
            gas_limit: 500_000,
        },
    );
    let (outcome, _) = run_one(&mut defi, tx);
    assert_eq!(outcome.status, ContractStatus::Success);
    // A contract's nonce starts at 1.
    let child = create_address(&probe, 1);
    assert_eq!(word(&outcome.output, 0), Some(Word::address(child)));
    assert_eq!(slot(&defi, child, slot_n(0)), 5);
    let child_account = defi.state.get(&StateKey::Account(child)).cloned();
    assert_eq!(
        child_account,
        Some(StateValue::Account(Account {
            balance: 500,
            nonce: 1
        }))
    );
    let Some(StateValue::CodeHash(hash)) = defi.state.get(&StateKey::CodeHash(child)).cloned()
    else {
        panic!("the child has code");
    };
    let Some(StateValue::Code(code)) = defi.state.get(&StateKey::Code(hash)) else {
        panic!("its code is stored under its hash");
    };
    assert_eq!(code_hash(code), hash);

    let salt = [9u8; 32];
    let expected = create2_address(&probe, salt, &Contract::Child.init_code(&[Word::uint(6)]));
    let create2 = call_data("create2(bytes32,uint256)", &[Word(salt), Word::uint(6)]);
    let tx = defi.call(1, probe, create2.clone(), 500_000);
    let (outcome, _) = run_one(&mut defi, tx);
    assert_eq!(outcome.status, ContractStatus::Success);
    assert_eq!(word(&outcome.output, 0), Some(Word::address(expected)));
    assert_eq!(slot(&defi, expected, slot_n(0)), 6);
    // The same salt again collides: the creation fails and reverts.
    let tx = defi.call(1, probe, create2, 500_000);
    let (outcome, _) = run_one(&mut defi, tx);
    assert_eq!(outcome.status, ContractStatus::Revert);

    // The self-call runs the code twice through an external call.
    let tx = defi.call(1, probe, call_data("bumpTwice()", &[]), 200_000);
    let (outcome, _) = run_one(&mut defi, tx);
    assert_eq!(outcome.status, ContractStatus::Success);
    assert_eq!(outcome.logs.len(), 2);
    assert_eq!(slot(&defi, probe, slot_n(0)), 2);
}

#[test]
fn value_reaches_code_by_call_and_by_plain_transfer() {
    let mut defi = DefiState::new(CHAIN, dev_keys(8, 2));
    let probe = probe(&mut defi);
    let token = defi
        .deploy(0, Contract::Token.init_code(&[Word::uint(1)]))
        .unwrap();

    // A call with value and no data runs receive().
    let tx = defi.sign(
        1,
        Action::Call {
            to: probe,
            value: 700,
            input: vec![],
            gas_limit: 100_000,
        },
    );
    let (outcome, _) = run_one(&mut defi, tx);
    assert_eq!(outcome.status, ContractStatus::Success);
    assert_eq!(outcome.logs.len(), 1, "Received");
    assert_eq!(slot(&defi, probe, slot_n(1)), 700);

    // A plain transfer runs receive() with the call stipend: too little to
    // write storage, so it runs out of gas, and the amount stays.
    let before = native(&defi, 1);
    let tx = defi.sign(
        1,
        Action::Transfer {
            to: probe,
            amount: 300,
        },
    );
    let (outcome, _) = run_one(&mut defi, tx);
    assert_eq!(outcome.status, ContractStatus::OutOfGas);
    assert_eq!(
        native(&defi, 1).balance,
        before.balance - 1,
        "only the flat fee"
    );
    assert_eq!(slot(&defi, probe, slot_n(1)), 700);

    // A token has no receive(): the transfer reverts and the amount stays.
    let before = native(&defi, 1);
    let tx = defi.sign(
        1,
        Action::Transfer {
            to: token,
            amount: 300,
        },
    );
    let (outcome, _) = run_one(&mut defi, tx);
    assert_eq!(outcome.status, ContractStatus::Revert);
    assert_eq!(native(&defi, 1).balance, before.balance - 1);

    // A call to an account without code just moves the value.
    let to = defi.keys[0].address();
    let before_to = native(&defi, 0);
    let tx = defi.sign(
        1,
        Action::Call {
            to,
            value: 40,
            input: vec![1, 2, 3],
            gas_limit: 30_000,
        },
    );
    let (outcome, _) = run_one(&mut defi, tx);
    assert_eq!(outcome.status, ContractStatus::Success);
    assert_eq!(native(&defi, 0).balance, before_to.balance + 40);
}

#[test]
fn contract_calls_toward_another_shard_fail_visibly_and_lose_no_value() {
    // Keys on shard 0 of two; contracts deployed while the map says one
    // shard, then the map splits (as if the chain resharded).
    let layout = ShardLayout::uniform(2).unwrap();
    let keys: Vec<_> = dev_keys(9, 64)
        .into_iter()
        .filter(|k| layout.shard_of(&k.address()).0 == 0)
        .take(2)
        .collect();
    let remote = dev_keys(10, 64)
        .into_iter()
        .map(|k| k.address())
        .find(|a| layout.shard_of(a).0 == 1)
        .unwrap();
    let mut defi = DefiState::new(CHAIN, keys);
    let probe = probe(&mut defi);
    defi.ctx.map = Arc::new(ShardMap::new(layout));
    if layout.shard_of(&probe).0 == 1 {
        // The probe itself is now remote: calling it reverts with the reason.
        let tx = defi.call(1, probe, call_data("bump()", &[]), 100_000);
        let (outcome, _) = run_one(&mut defi, tx);
        assert_eq!(outcome.status, ContractStatus::Revert);
        assert!(String::from_utf8_lossy(&outcome.output).contains("lives on shard 1"));
        return;
    }
    // Value forwarded to an account on shard 1: the inner call reverts,
    // so does the whole transaction, and only gas is paid.
    let before = native(&defi, 1);
    let tx = defi.sign(
        1,
        Action::Call {
            to: probe,
            value: 1_000,
            input: call_data("forward(address)", &[Word::address(remote)]),
            gas_limit: 200_000,
        },
    );
    let (outcome, _) = run_one(&mut defi, tx);
    assert_eq!(outcome.status, ContractStatus::Revert);
    assert!(String::from_utf8_lossy(&outcome.output).contains("forward failed"));
    assert_eq!(
        native(&defi, 1).balance,
        before.balance - u128::from(outcome.gas_used)
    );
    assert!(!defi.state.contains_key(&StateKey::Account(remote)));

    // A contract lives on its creator's shard: creations whose Ethereum
    // address falls in shard 1's range succeed here, are placed here, and
    // tell shard 1 so.
    let mut other_shard = 0;
    for _ in 0..6 {
        let before = native(&defi, 1);
        let address = create_address(&defi.keys[1].address(), defi.nonces[1]);
        let tx = defi.sign(
            1,
            Action::Create {
                value: 0,
                init_code: Contract::Child.init_code(&[Word::uint(1)]),
                gas_limit: 500_000,
            },
        );
        let (outcome, output) = run_one(&mut defi, tx);
        let paid = before.balance - native(&defi, 1).balance;
        assert_eq!(paid, u128::from(outcome.gas_used));
        assert_eq!(outcome.status, ContractStatus::Success);
        assert_eq!(outcome.created, Some(address));
        assert!(defi.state.contains_key(&StateKey::CodeHash(address)));
        let placement = defi.state.get(&StateKey::Placement(address)).cloned();
        if layout.shard_of(&address).0 == 1 {
            other_shard += 1;
            assert_eq!(placement, Some(StateValue::Placement(ShardId(0))));
            let placed: Vec<_> = output
                .receipts
                .iter()
                .map(|r| (r.destination, r.action.clone()))
                .collect();
            assert_eq!(
                placed,
                vec![(
                    ShardId(1),
                    ReceiptAction::Placed {
                        account: address,
                        shard: ShardId(0)
                    }
                )]
            );
            // It runs here like any local contract.
            let tx = defi.call(
                1,
                address,
                call_data("set(uint256)", &[Word::uint(9)]),
                100_000,
            );
            let (outcome, _) = run_one(&mut defi, tx);
            assert_eq!(outcome.status, ContractStatus::Success);
            assert_eq!(slot(&defi, address, slot_n(0)), 9);
        } else {
            assert_eq!(placement, None);
            assert!(output.receipts.is_empty());
        }
    }
    assert!(other_shard > 0, "six creations all fell in shard 0's range");
}

#[test]
fn a_chain_with_contract_state_reopens_and_serves_blockhash() {
    let dir = tempfile::tempdir().unwrap();
    let identity = StoreIdentity {
        chain_id: CHAIN,
        shard: atoll_primitives::ShardId(0),
    };
    let mut defi = DefiState::erc20(CHAIN, dev_keys(11, 8)).unwrap();
    let probe = probe(&mut defi);
    let genesis = defi.entries();
    let threads = NonZeroUsize::new(2).unwrap();
    let mut chain = ShardChain::open(
        dir.path(),
        identity,
        ShardLayout::single(),
        &genesis,
        threads,
    )
    .unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let mut hashes = vec![chain.head().hash()];
    for height in 1..=4u64 {
        let mut txs = defi.erc20_block(30, &mut rng);
        txs.push(defi.call(1, probe, call_data("context()", &[]), 100_000));
        let produced = chain.produce_block(txs, 1_000 * height).unwrap();
        assert!(produced.output.outcomes.iter().all(TxOutcome::is_success));
        let TxOutcome::Contract(context) = produced.output.outcomes.last().unwrap() else {
            panic!("a contract outcome");
        };
        assert_eq!(
            word(&context.output, 4),
            Some(Word(hashes.last().unwrap().0))
        );
        hashes.push(produced.block.hash());
    }
    let head = chain.head().clone();
    drop(chain);
    let mut chain = ShardChain::open(
        dir.path(),
        identity,
        ShardLayout::single(),
        &genesis,
        threads,
    )
    .unwrap();
    assert_eq!(
        chain.head(),
        &head,
        "reopened at the same head and state root"
    );
    // BLOCKHASH of an older block comes from the state: a contract that
    // returns blockhash(calldata word 0).
    let runtime = [0x5f, 0x35, 0x40, 0x5f, 0x52, 0x60, 0x20, 0x5f, 0xf3];
    let mut init = vec![0x68];
    init.extend_from_slice(&runtime);
    init.extend_from_slice(&[0x5f, 0x52, 0x60, 0x09, 0x60, 0x17, 0xf3]);
    let address = create_address(&defi.keys[1].address(), defi.nonces[1]);
    let deploy = defi.sign(
        1,
        Action::Create {
            value: 0,
            init_code: init,
            gas_limit: 100_000,
        },
    );
    let produced = chain.produce_block(vec![deploy], 10_000).unwrap();
    assert!(
        produced.output.outcomes[0].is_success(),
        "{:?}",
        produced.output.outcomes
    );
    let mut asked = Vec::new();
    for height in [0u64, 2, 4, 5, 6, 100] {
        let tx = defi.call(1, address, Word::uint(height.into()).0.to_vec(), 100_000);
        asked.push(tx);
    }
    hashes.push(produced.block.hash());
    let produced = chain.produce_block(asked, 11_000).unwrap();
    let answers: Vec<_> = produced
        .output
        .outcomes
        .iter()
        .map(|o| match o {
            TxOutcome::Contract(c) => word(&c.output, 0).unwrap(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(produced.block.header.height, 6);
    assert_eq!(answers[0], Word(hashes[0].0), "genesis");
    assert_eq!(answers[1], Word(hashes[2].0));
    assert_eq!(answers[2], Word(hashes[4].0), "from before the restart");
    assert_eq!(answers[3], Word(hashes[5].0), "the parent");
    assert_eq!(answers[4], Word([0; 32]), "the block itself");
    assert_eq!(answers[5], Word([0; 32]), "the future");
}

use rand::SeedableRng;

#[test]
fn a_block_holds_contract_transactions_up_to_its_gas_limit() {
    let dir = tempfile::tempdir().unwrap();
    let identity = StoreIdentity {
        chain_id: CHAIN,
        shard: atoll_primitives::ShardId(0),
    };
    let mut defi = DefiState::new(CHAIN, dev_keys(12, 4));
    let probe = probe(&mut defi);
    let threads = NonZeroUsize::new(1).unwrap();
    let genesis = defi.entries();
    let mut chain = ShardChain::open(
        dir.path(),
        identity,
        ShardLayout::single(),
        &genesis,
        threads,
    )
    .unwrap();
    chain.set_gas_rules(atoll_primitives::GasRules {
        block_gas_limit: 250_000,
        base_fee: 1,
    });
    // Three calls of 100,000 gas from three senders, and a transfer: the
    // third call does not fit; the transfer needs no gas limit.
    let mut txs: Vec<_> = (1..4)
        .map(|who| defi.call(who, probe, call_data("bump()", &[]), 100_000))
        .collect();
    txs.push(defi.sign(
        0,
        Action::Transfer {
            to: defi.keys[1].address(),
            amount: 5,
        },
    ));
    let produced = chain.produce_block(txs.clone(), 1_000).unwrap();
    assert_eq!(produced.rejected, 1);
    assert_eq!(
        produced.hashes,
        vec![txs[0].hash, txs[1].hash, txs[3].hash],
        "the call past the limit is left out"
    );
}
