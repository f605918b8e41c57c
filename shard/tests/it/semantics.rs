//! Transaction semantics at the edges, and how the executors behave when a
//! transaction cannot finish.

use crate::scenario::{CHAIN, SHARD};
use atoll_primitives::{
    Account, Action, ChainId, ShardLayout, SignedTransaction, StateKey, StateValue, Transaction,
    TxFailure, TxOutcome,
};
use atoll_shard::execution::{sequential, BlockContext, Executor, PreparedTx};
use atoll_shard::state::StateView;
use atoll_shard::workload::{dev_keys, genesis_accounts};
use atoll_shard::{ShardChain, ShardError};
use atoll_storage::StoreIdentity;
use std::collections::{BTreeMap, HashMap};
use std::num::NonZeroUsize;
use std::sync::mpsc;
use std::time::Duration;

fn ctx() -> BlockContext {
    BlockContext {
        chain_id: CHAIN,
        shard: SHARD,
        height: 1,
        timestamp_ms: 0,
        map: std::sync::Arc::new(atoll_primitives::ShardMap::new(ShardLayout::single())),
        outbox: BTreeMap::new(),
        gas: atoll_primitives::GasRules::default(),
        parent_hash: atoll_primitives::Hash([0; 32]),
        codes: Default::default(),
    }
}

fn transfer(
    key: &atoll_primitives::KeyPair,
    nonce: u64,
    fee: u128,
    to: atoll_primitives::Address,
    amount: u128,
) -> PreparedTx {
    let tx = Transaction {
        chain_id: CHAIN,
        sender: key.public(),
        nonce,
        fee,
        action: Action::Transfer { to, amount },
    };
    PreparedTx::new(tx.sign(key))
}

#[test]
fn a_nonce_at_its_maximum_cannot_advance() {
    let keys = dev_keys(1, 2);
    let mut state: HashMap<StateKey, StateValue> =
        genesis_accounts(&keys, 100).into_iter().collect();
    state.insert(
        StateKey::Account(keys[0].address()),
        StateValue::Account(Account {
            balance: 100,
            nonce: u64::MAX - 1,
        }),
    );
    // u64::MAX itself marks an account whose state is moving between
    // shards, so u64::MAX - 1 is the last nonce: it cannot be used.
    let txs = [transfer(&keys[0], u64::MAX - 1, 1, keys[1].address(), 5)];
    let out = sequential::execute(&ctx(), &txs, &state).unwrap();
    assert_eq!(
        out.outcomes,
        vec![TxOutcome::Failure(TxFailure::NonceExhausted)]
    );
    assert!(out.state_changes.is_empty());
    assert_eq!(out.burnt_fees, 0);
}

#[test]
fn an_account_whose_state_is_arriving_cannot_send() {
    let keys = dev_keys(1, 2);
    let mut state: HashMap<StateKey, StateValue> =
        genesis_accounts(&keys, 100).into_iter().collect();
    state.insert(
        StateKey::Account(keys[0].address()),
        StateValue::Account(Account::arriving(50)),
    );
    // Not even with the sentinel as its nonce.
    let txs = [
        transfer(&keys[0], 0, 1, keys[1].address(), 5),
        transfer(&keys[0], u64::MAX, 1, keys[1].address(), 5),
    ];
    let out = sequential::execute(&ctx(), &txs, &state).unwrap();
    assert_eq!(
        out.outcomes,
        vec![TxOutcome::Failure(TxFailure::SenderArriving); 2]
    );
    assert!(out.state_changes.is_empty());
}

/// Many transactions from one sender that fail before writing anything
/// (here: it cannot pay the fee) after enough independent ones that the block
/// runs in parallel. Each failure declares the sender's key without writing
/// it; the declared path must still give the sequential result (and reads
/// one recorded writer instead of walking back over every failure).
#[test]
fn a_long_run_of_failures_that_write_nothing() {
    let keys = dev_keys(2, 1_200);
    let mut state: HashMap<StateKey, StateValue> =
        genesis_accounts(&keys[1..], 1_000).into_iter().collect();
    state.insert(
        StateKey::Account(keys[0].address()),
        StateValue::Account(Account {
            balance: 0,
            nonce: 0,
        }),
    );
    let mut txs: Vec<PreparedTx> = (1..600)
        .map(|i| transfer(&keys[i], 0, 1, keys[i + 600].address(), 3))
        .collect();
    txs.extend((0..3_000).map(|n| transfer(&keys[0], n, 1, keys[1].address(), 1)));
    // The sender is funded at the end: its next transaction with nonce 0 runs.
    txs.push(transfer(&keys[5], 1, 1, keys[0].address(), 500));
    txs.push(transfer(&keys[0], 0, 1, keys[2].address(), 10));
    let expected = sequential::execute(&ctx(), &txs, &state).unwrap();
    assert_eq!(expected.outcomes.last(), Some(&TxOutcome::Success));
    for threads in [2, 4] {
        let executor = Executor::new(NonZeroUsize::new(threads).unwrap()).unwrap();
        let (declared, _) = executor
            .execute_declared(&ctx(), &txs, &state)
            .unwrap()
            .unwrap();
        assert_eq!(declared, expected, "declared path, {threads} threads");
        let (stm, _) = executor.execute_parallel(&ctx(), &txs, &state).unwrap();
        assert_eq!(stm, expected, "Block-STM, {threads} threads");
    }
}

/// A state that panics when one key is read.
struct PanicsOn(StateKey, HashMap<StateKey, StateValue>);

impl StateView for PanicsOn {
    fn get(&self, key: &StateKey) -> Result<Option<StateValue>, ShardError> {
        assert_ne!(*key, self.0, "deliberate panic while reading the state");
        Ok(self.1.get(key).cloned())
    }
}

/// A panic in one worker must stop the block and reach the caller, not leave
/// the other workers waiting forever for a transaction that never finishes.
#[test]
fn a_panicking_transaction_stops_the_block_instead_of_hanging_it() {
    let keys = dev_keys(3, 400);
    let genesis: HashMap<StateKey, StateValue> =
        genesis_accounts(&keys, 1_000).into_iter().collect();
    // Transaction 100's recipient is read by it and by later transactions.
    let txs: Vec<PreparedTx> = (0..399)
        .map(|i| transfer(&keys[i], 0, 1, keys[(i * 7 + 1) % 400].address(), 1))
        .collect();
    let poisoned = StateKey::Account(keys[(100 * 7 + 1) % 400].address());
    for path in ["declared", "block-stm"] {
        let (done, finished) = mpsc::channel();
        let state = PanicsOn(poisoned, genesis.clone());
        let txs = txs.clone();
        std::thread::spawn(move || {
            let executor = Executor::new(NonZeroUsize::new(3).unwrap()).unwrap();
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match path {
                "declared" => executor.execute_declared(&ctx(), &txs, &state).map(|_| ()),
                _ => executor.execute_parallel(&ctx(), &txs, &state).map(|_| ()),
            }));
            let _ = done.send(result.is_err());
        });
        let panicked = finished
            .recv_timeout(Duration::from_secs(60))
            .expect("the executor hung after a panic");
        assert!(panicked, "{path}: the panic did not reach the caller");
    }
}

/// A single-shard chain in `dir` whose genesis funds `keys`.
fn open_chain(dir: &std::path::Path, keys: &[atoll_primitives::KeyPair]) -> ShardChain {
    let identity = StoreIdentity {
        chain_id: ChainId(CHAIN.0),
        shard: SHARD,
    };
    let genesis = genesis_accounts(keys, 1_000);
    ShardChain::open(
        dir,
        identity,
        ShardLayout::single(),
        &genesis,
        NonZeroUsize::new(2).unwrap(),
    )
    .unwrap()
}

#[test]
fn replayed_and_repeated_transactions_are_left_out_of_a_block() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dev_keys(4, 3);
    let mut chain = open_chain(dir.path(), &keys);
    let tx = transfer(&keys[0], 0, 1, keys[1].address(), 10);
    let first = chain
        .produce_block(vec![tx.clone(), tx.clone()], 1)
        .unwrap();
    assert_eq!(
        (first.block.body.transactions.len(), first.rejected),
        (1, 1)
    );
    let next = transfer(&keys[0], 1, 1, keys[2].address(), 10);
    let second = chain.produce_block(vec![tx, next], 2).unwrap();
    assert_eq!(
        (second.block.body.transactions.len(), second.rejected),
        (1, 1)
    );
    assert_eq!(second.output.outcomes, vec![TxOutcome::Success]);
}

#[test]
fn transactions_with_bad_signatures_are_left_out_of_a_block() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dev_keys(5, 40);
    let mut chain = open_chain(dir.path(), &keys);
    let mut txs: Vec<PreparedTx> = (0..39)
        .map(|i| transfer(&keys[i], 0, 1, keys[i + 1].address(), 1))
        .collect();
    for i in [3, 17, 38] {
        let SignedTransaction::Native(native) = &mut txs[i].signed else {
            unreachable!("native transfers")
        };
        native.signature.0[0] = native.signature.0[0].wrapping_add(1);
    }
    let produced = chain.produce_block(txs.clone(), 1).unwrap();
    assert_eq!(produced.rejected, 3);
    let included: Vec<_> = produced
        .block
        .body
        .transactions
        .iter()
        .map(|t| t.hash())
        .collect();
    let expected: Vec<_> = txs
        .iter()
        .enumerate()
        .filter(|(i, _)| ![3, 17, 38].contains(i))
        .map(|(_, t)| t.hash)
        .collect();
    assert_eq!(included, expected);
}

#[test]
fn an_agreed_block_checks_only_the_signatures_this_validator_has_not() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dev_keys(5, 4);
    let mut chain = open_chain(dir.path(), &keys);
    let mut txs: Vec<SignedTransaction> = (0..4)
        .map(|i| transfer(&keys[i], 0, 1, keys[(i + 1) % 4].address(), 10).signed)
        .collect();
    // Transactions 1 and 3 carry signatures that do not match.
    for i in [1, 3] {
        let SignedTransaction::Native(native) = &mut txs[i] else {
            unreachable!("native transfers")
        };
        native.signature.0[7] ^= 1;
    }
    let hashes: Vec<_> = txs.iter().map(SignedTransaction::hash).collect();
    // This validator vouches for 1 and 2 (as if it had admitted them), so
    // 1 is not checked and stays; 3 is checked and left out.
    let produced = chain
        .execute_agreed_block(
            txs,
            Vec::new(),
            |_, _| None,
            |txs| (0..txs.len()).map(|i| i == 1 || i == 2).collect(),
            1,
        )
        .unwrap();
    assert_eq!(produced.hashes, hashes[..3], "block order is kept");
    assert_eq!(produced.rejected, 1);
}
