//! Ethereum-signed transactions in the executors: prepared by recovering
//! their sender, run as contract actions at Ethereum's effective gas price,
//! alike in every executor, and value sent to another shard by receipt.

use atoll_primitives::{
    Account, Address, ChainId, ContractStatus, ReceiptAction, ShardId, ShardLayout, ShardMap,
    SignedTransaction, StateKey, StateValue, TxOutcome,
};
use atoll_shard::contracts::{call_data, create_address, Contract, Word};
use atoll_shard::execution::{agreed_chain, sequential, Executor, PreparedTx};
use atoll_shard::signatures::{find_bad_signatures, prepare_all};
use atoll_shard::workload::ethereum::{EthCall, EthKey};
use atoll_shard::workload::{dev_keys, DefiState};
use std::num::NonZeroUsize;
use std::sync::Arc;

const CHAIN: ChainId = ChainId(1337);

/// An Ethereum key from `seed` and its address.
fn eth_key(seed: u8) -> (EthKey, Address) {
    let key = EthKey::from_private_key(&[seed; 32]).expect("a valid scalar");
    let address = key.address();
    (key, address)
}

/// An EIP-1559 transaction from `key`, prepared.
#[allow(clippy::too_many_arguments)]
fn eip1559(
    key: &EthKey,
    nonce: u64,
    to: Option<Address>,
    value: u128,
    input: Vec<u8>,
    gas_limit: u64,
    max_fee: u128,
    tip: u128,
) -> PreparedTx {
    let call = EthCall {
        chain_id: CHAIN,
        nonce,
        to,
        value,
        input,
        gas_limit,
    };
    PreparedTx::prepare(key.eip1559(&call, max_fee, tip)).expect("recovers")
}

fn account(defi: &DefiState, address: &Address) -> Account {
    match defi.state.get(&StateKey::Account(*address)) {
        Some(StateValue::Account(account)) => *account,
        _ => Account::default(),
    }
}

/// A chain whose genesis funds dev keys and the Ethereum keys of `seeds`
/// (and, with `token`, where every dev key holds an ERC-20).
fn world(seeds: &[u8], token: bool) -> (DefiState, Vec<(EthKey, Address)>) {
    let mut defi = match token {
        true => DefiState::erc20(CHAIN, dev_keys(5, 4)).expect("a token"),
        false => DefiState::new(CHAIN, dev_keys(5, 4)),
    };
    let keys: Vec<_> = seeds.iter().map(|seed| eth_key(*seed)).collect();
    for (_, address) in &keys {
        defi.state.insert(
            StateKey::Account(*address),
            StateValue::Account(Account {
                balance: 10u128.pow(24),
                nonce: 0,
            }),
        );
    }
    (defi, keys)
}

#[test]
fn an_ethereum_transaction_deploys_and_calls_at_its_effective_price() {
    let (mut defi, keys) = world(&[7], false);
    let (key, me) = &keys[0];
    let base = u128::from(defi.ctx.gas.base_fee);
    // The EIP-1559 price: the base fee plus the tip, at most the cap.
    let (cap, tip) = (base + 10, 3);
    let init = Contract::Token.init_code(&[Word::uint(1_000)]);
    let deploy = eip1559(key, 0, None, 0, init, 2_000_000, cap, tip);
    assert_eq!(deploy.sender, *me, "the recovered sender");
    let before = account(&defi, me);
    let output = defi.execute(&[deploy]).expect("executes");
    let TxOutcome::Contract(outcome) = &output.outcomes[0] else {
        panic!("a contract outcome: {:?}", output.outcomes[0]);
    };
    assert_eq!(outcome.status, ContractStatus::Success);
    let token = create_address(me, 0);
    assert_eq!(outcome.created, Some(token));
    let price = base + tip;
    let paid = u128::from(outcome.gas_used) * price;
    assert_eq!(output.burnt_fees, paid);
    let after = account(&defi, me);
    assert_eq!((after.balance, after.nonce), (before.balance - paid, 1));

    // A legacy transaction pays its gas price; the call moves tokens.
    let to = Address([0x42; 20]);
    let transfer = EthCall {
        chain_id: CHAIN,
        nonce: 1,
        to: Some(token),
        value: 0,
        input: call_data(
            "transfer(address,uint256)",
            &[Word::address(to), Word::uint(250)],
        ),
        gas_limit: 100_000,
    };
    let call = PreparedTx::prepare(key.legacy(&transfer, base + 5)).expect("recovers");
    let output = defi.execute(&[call]).expect("executes");
    let TxOutcome::Contract(outcome) = &output.outcomes[0] else {
        panic!("a contract outcome");
    };
    assert_eq!(outcome.status, ContractStatus::Success);
    assert_eq!(outcome.logs.len(), 1, "the Transfer event");
    assert_eq!(output.burnt_fees, u128::from(outcome.gas_used) * (base + 5));

    // A maximum fee below the base fee is refused with nothing charged.
    let cheap = eip1559(key, 2, Some(to), 0, Vec::new(), 21_000, base - 1, 0);
    let output = defi.execute(&[cheap]).expect("executes");
    assert!(!output.outcomes[0].is_success());
    assert_eq!(output.burnt_fees, 0);
    assert_eq!(account(&defi, me).nonce, 2);
}

#[test]
fn a_call_without_input_to_another_shard_sends_its_value_by_receipt() {
    let (mut defi, keys) = world(&[9, 10, 11, 12], false);
    let layout = ShardLayout::uniform(2).expect("two shards");
    defi.ctx.map = Arc::new(ShardMap::new(layout));
    let (key, me) = keys
        .iter()
        .find(|(_, address)| layout.shard_of(address) == ShardId(0))
        .expect("one key on shard 0");
    let there = (0u8..=255)
        .map(|b| Address([b; 20]))
        .find(|a| layout.shard_of(a) == ShardId(1))
        .expect("an address on shard 1");
    let base = u128::from(defi.ctx.gas.base_fee);
    let before = account(&defi, me);
    let tx = eip1559(key, 0, Some(there), 777, Vec::new(), 50_000, base + 2, 1);
    let output = defi.execute(&[tx]).expect("executes");
    let TxOutcome::Contract(outcome) = &output.outcomes[0] else {
        panic!("a contract outcome");
    };
    assert_eq!(
        (outcome.status.clone(), outcome.gas_used),
        (ContractStatus::Success, 21_000)
    );
    assert_eq!(output.receipts.len(), 1);
    assert_eq!(output.receipts[0].destination, ShardId(1));
    assert_eq!(
        output.receipts[0].action,
        ReceiptAction::Transfer {
            to: there,
            amount: 777
        }
    );
    let paid = 21_000 * (base + 1);
    assert_eq!(output.burnt_fees, paid);
    assert_eq!(account(&defi, me).balance, before.balance - 777 - paid);
    assert_eq!(account(&defi, &there), Account::default(), "credited there");
}

#[test]
fn every_executor_runs_a_block_of_both_kinds_alike() {
    let (mut defi, keys) = world(&[20, 21, 22, 23], true);
    let token = defi.tokens[0];
    let base = u128::from(defi.ctx.gas.base_fee);
    let mut txs = Vec::new();
    for round in 0..20u64 {
        for (i, (key, _)) in keys.iter().enumerate() {
            // Value among the Ethereum accounts and to the dev accounts.
            let to = keys[(i + 1) % keys.len()].1;
            txs.push(eip1559(
                key,
                round,
                Some(to),
                5,
                Vec::new(),
                30_000,
                base + 1,
                1,
            ));
        }
        for who in 0..defi.keys.len() {
            let to = keys[who % keys.len()].1;
            let data = call_data(
                "transfer(address,uint256)",
                &[Word::address(to), Word::uint(3)],
            );
            txs.push(defi.call(who, token, data, 80_000));
        }
    }
    let expected = sequential::execute(&defi.ctx, &txs, &defi.state).expect("sequential");
    assert!(expected.outcomes.iter().all(TxOutcome::is_success));
    for threads in [2, 4] {
        let executor = Executor::new(NonZeroUsize::new(threads).unwrap())
            .unwrap()
            .with_min_parallel_block(0);
        let (got, _) = executor
            .execute_parallel(&defi.ctx, &txs, &defi.state)
            .expect("Block-STM");
        assert_eq!(got, expected, "Block-STM on {threads} threads");
    }
}

#[test]
fn bytes_without_a_sender_never_reach_execution() {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    let (key, me) = eth_key(30);
    let good = eip1559(
        &key,
        0,
        Some(Address([1; 20])),
        1,
        Vec::new(),
        21_000,
        10,
        0,
    );
    let garbage = SignedTransaction::Ethereum(vec![0x02, 0xc0]);
    assert_eq!(agreed_chain(&good.signed), Some(CHAIN));
    assert_eq!(agreed_chain(&garbage), None);
    let prepared = prepare_all(vec![good.signed.clone(), garbage], &pool);
    assert_eq!(prepared[0].as_ref().map(|tx| tx.sender), Ok(me));
    assert!(prepared[1].is_err());
    // A prepared Ethereum transaction passed its check: the ed25519
    // batches skip it.
    let native = defi_transfer();
    assert!(find_bad_signatures(&[good, native], &pool).is_empty());
}

/// A native transfer, for a mixed batch.
fn defi_transfer() -> PreparedTx {
    let mut defi = DefiState::new(CHAIN, dev_keys(6, 1));
    defi.call(0, Address([2; 20]), Vec::new(), 21_000)
}
