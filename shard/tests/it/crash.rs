//! Crash consistency (DESIGN.md invariant 5): a child process commits blocks
//! in a loop and is killed with SIGKILL at random moments, again and again.
//! After every kill the store reopens at a whole block: the head header, the
//! stored state and the state root agree, and the head is exactly the block a
//! crash-free run produces at that height.
//!
//! Replay a failing run with `ATOLL_CRASH_SEED=<seed>`.

use atoll_primitives::{Account, Action, ChainId, KeyPair, ShardId, ShardLayout, Transaction};
use atoll_shard::execution::PreparedTx;
use atoll_shard::workload::{dev_keys, genesis_accounts};
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

fn open(dir: &Path, keys: &[KeyPair]) -> ShardChain {
    let genesis = genesis_accounts(keys, 1_000_000);
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
            let tx = Transaction {
                chain_id: IDENTITY.chain_id,
                sender: keys[from].public(),
                nonce: nonces[from],
                fee: 1,
                action: Action::Transfer {
                    to,
                    amount: rng.gen_range(1..50),
                },
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
    eprintln!("crash test: {kills} kills, reached height {last_height}");
}
