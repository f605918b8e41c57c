//! Crash consistency (DESIGN.md invariant 5): a child process commits blocks
//! in a loop and is killed with SIGKILL at random moments, again and again.
//! After every kill the store reopens at a whole block: the head header, the
//! stored state and the state root agree, and the head is exactly the block a
//! crash-free run produces at that height.
//!
//! Replay a failing run with `ATOLL_CRASH_SEED=<seed>`.

use atoll_primitives::{
    Account, Action, Address, ChainId, KeyPair, ShardId, ShardLayout, StateKey, StateValue,
    Transaction,
};
use atoll_shard::contracts::{call_data, create_address, Contract, Word};
use atoll_shard::execution::PreparedTx;
use atoll_shard::workload::{dev_keys, DefiState};
use atoll_shard::ShardChain;
use atoll_storage::StoreIdentity;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::num::NonZeroUsize;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CHILD_DIR_ENV: &str = "ATOLL_CRASH_CHILD_DIR";
const IDENTITY: StoreIdentity = StoreIdentity {
    chain_id: ChainId(5),
    shard: ShardId(0),
};
const ACCOUNTS: usize = 64;
const TXS_PER_BLOCK: usize = 120;

fn layout() -> ShardLayout {
    // Two shards, so blocks also emit receipts and advance outbox cursors.
    ShardLayout::uniform(2).unwrap()
}

fn keys() -> Vec<KeyPair> {
    dev_keys(42, ACCOUNTS * 3)
        .into_iter()
        .filter(|k| layout().shard_of(&k.address()) == ShardId(0))
        .take(ACCOUNTS)
        .collect()
}

/// The genesis: the keys funded, and a `Probe` contract (deployed by the
/// first key whose contract address falls on shard 0), so blocks also
/// write contract storage and create contracts with code.
fn genesis(keys: &[KeyPair]) -> (Vec<(StateKey, StateValue)>, Address) {
    let mut defi = DefiState::new(IDENTITY.chain_id, keys.to_vec());
    let deployer = (0..keys.len())
        .find(|i| layout().shard_of(&create_address(&keys[*i].address(), 0)) == ShardId(0))
        .expect("some key's first contract lands on shard 0");
    let probe = defi
        .deploy(deployer, Contract::Probe.init_code(&[]))
        .expect("the probe deploys");
    (defi.entries(), probe)
}

fn open(dir: &Path, keys: &[KeyPair]) -> ShardChain {
    let (genesis, _) = genesis(keys);
    ShardChain::open(
        dir,
        IDENTITY,
        layout(),
        &genesis,
        NonZeroUsize::new(2).unwrap(),
    )
    .unwrap_or_else(|e| panic!("reopening {} failed: {e}", dir.display()))
}

/// The transactions of the block after `chain`'s head: a function of the head
/// height and the stored nonces only, so every run builds the same blocks.
fn next_block(
    chain: &ShardChain,
    keys: &[KeyPair],
    other_shard: &[atoll_primitives::Address],
) -> Vec<PreparedTx> {
    let probe = genesis(keys).1;
    let height = chain.head().height + 1;
    let mut rng = StdRng::seed_from_u64(height);
    let mut nonces: Vec<u64> = keys
        .iter()
        .map(|k| {
            chain
                .store()
                .account(&k.address())
                .unwrap()
                .map_or(0, |a: Account| a.nonce)
        })
        .collect();
    (0..TXS_PER_BLOCK)
        .map(|_| {
            let from = rng.gen_range(0..keys.len());
            let to = if rng.gen_bool(0.2) {
                other_shard[rng.gen_range(0..other_shard.len())]
            } else {
                keys[rng.gen_range(0..keys.len())].address()
            };
            // A quarter are contract calls: a storage write, or a contract
            // created with its code and a slot.
            let action = match rng.gen_range(0..8) {
                0 => Action::Call {
                    to: probe,
                    value: 0,
                    input: call_data("bump()", &[]),
                    gas_limit: 100_000,
                },
                1 => Action::Call {
                    to: probe,
                    value: 0,
                    input: call_data("create(uint256)", &[Word::uint(rng.gen_range(1..9))]),
                    gas_limit: 300_000,
                },
                _ => Action::Transfer {
                    to,
                    amount: rng.gen_range(1..50),
                },
            };
            let tx = Transaction {
                chain_id: IDENTITY.chain_id,
                sender: keys[from].public(),
                nonce: nonces[from],
                fee: 1,
                action,
            };
            nonces[from] += 1;
            PreparedTx::new(tx.sign(&keys[from]))
        })
        .collect()
}

fn other_shard_addresses() -> Vec<atoll_primitives::Address> {
    dev_keys(43, 40)
        .iter()
        .map(KeyPair::address)
        .filter(|a| layout().shard_of(a) != ShardId(0))
        .collect()
}

/// The child: commits blocks until it is killed. Does nothing (and passes)
/// when run as an ordinary test.
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_DIR_ENV) else {
        return;
    };
    let keys = keys();
    let others = other_shard_addresses();
    let mut chain = open(Path::new(&dir), &keys);
    loop {
        let txs = next_block(&chain, &keys, &others);
        let height = chain.head().height + 1;
        chain.produce_block(txs, height).unwrap();
    }
}

#[test]
fn sigkill_at_random_moments_never_loses_or_tears_a_block() {
    let seed = std::env::var("ATOLL_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("crash test seed {seed} (replay with ATOLL_CRASH_SEED={seed})");
    let mut rng = StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().unwrap();
    let reference_dir = tempfile::tempdir().unwrap();
    let keys = keys();
    let others = other_shard_addresses();
    // A crash-free run, advanced to each height the crashed run reaches.
    let mut reference = open(reference_dir.path(), &keys);
    let exe = std::env::current_exe().unwrap();
    let started = Instant::now();
    let mut last_height = 0;
    let mut kills = 0;
    while kills < 12 && started.elapsed() < Duration::from_secs(60) {
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "crash::crash_child",
                "--nocapture",
                "--test-threads",
                "1",
            ])
            .env(CHILD_DIR_ENV, dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(rng.gen_range(150..700)));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        kills += 1;

        let chain = open(dir.path(), &keys); // checks the state root against the stored state
        let head = chain.head().clone();
        assert!(
            head.height >= last_height,
            "seed {seed}: head went back from {last_height} to {}",
            head.height
        );
        last_height = head.height;
        let stored = chain
            .store()
            .header(head.height)
            .unwrap()
            .expect("head header stored");
        assert_eq!(stored, head);
        let block = chain
            .store()
            .block(head.height)
            .unwrap()
            .expect("head block stored");
        assert_eq!(block.hash(), head.hash());
        while reference.head().height < head.height {
            let txs = next_block(&reference, &keys, &others);
            let height = reference.head().height + 1;
            reference.produce_block(txs, height).unwrap();
        }
        assert_eq!(
            reference.head(),
            &head,
            "seed {seed}: the crashed run's head differs from a crash-free run"
        );
        let state: Vec<_> = chain
            .store()
            .state_entries()
            .collect::<Result<_, _>>()
            .unwrap();
        let expected: Vec<_> = reference
            .store()
            .state_entries()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            state, expected,
            "seed {seed}: stored state differs at height {}",
            head.height
        );
        drop(chain);
    }
    assert!(
        last_height > 0,
        "seed {seed}: the child never committed a block"
    );
    // The blocks did write contract state: the probe's counter, and
    // contracts it created (code and slots).
    let probe = genesis(&keys).1;
    let state: Vec<_> = reference
        .store()
        .state_entries()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(state
        .iter()
        .any(|(key, _)| matches!(key, StateKey::Slot(a, _) if *a == probe)));
    let codes = state
        .iter()
        .filter(|(key, _)| matches!(key, StateKey::CodeHash(_)))
        .count();
    assert!(codes > 1, "seed {seed}: no contract was created");
    // Children at addresses of the other shard's range live here too.
    let placed = state
        .iter()
        .filter(|(key, _)| matches!(key, StateKey::Placement(_)))
        .count();
    assert!(placed > 0, "seed {seed}: no child was placed here");
    eprintln!(
        "crash test: {kills} kills, reached height {last_height}, {codes} contracts, {placed} placed"
    );
}
