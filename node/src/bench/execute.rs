//! `atoll bench execute`: the block pipeline on one generated block.
//!
//! The genesis accounts live in a real RocksDB shard store (in a temporary
//! directory), which the executors read, as the node does. Stages that are
//! compared are run in turn, round after round, and each one's median is
//! reported, so the ratios come from the same conditions.

use anyhow::{bail, Context};
use atoll_primitives::{ChainId, ShardId, ShardLayout};
use atoll_shard::execution::{sequential, BlockContext, BlockOutput, ExecutionPath, Executor};
use atoll_shard::signatures::{find_bad_signatures, find_bad_signatures_one_by_one};
use atoll_shard::state::StateTree;
use atoll_shard::workload::{dev_keys, genesis_accounts, transfer_block};
use atoll_shard::ShardChain;
use atoll_storage::StoreIdentity;
use clap::Args;
use serde::Serialize;
use std::collections::BTreeMap;
use std::num::NonZeroUsize;
use std::time::{Duration, Instant};

/// Options of `atoll bench execute`.
#[derive(Args)]
pub struct ExecuteArgs {
    /// Transactions in the block.
    #[arg(long, default_value_t = 20_000)]
    pub(super) txs: usize,
    /// Accounts the transfers move value between (2 means every transaction
    /// conflicts with the one before it).
    #[arg(long, default_value_t = 10_000)]
    pub(super) accounts: usize,
    /// Worker threads for the parallel stages [default: the number of CPU cores].
    #[arg(long, default_value_t = default_threads(), hide_default_value = true)]
    pub(super) threads: NonZeroUsize,
    /// Rounds of measurement (execution stages run four times as many);
    /// stages are interleaved and the median is reported.
    #[arg(long, default_value_t = 7)]
    pub(super) rounds: usize,
    /// Instead of the stage breakdown, compare the whole block pipeline of
    /// this many shards running at once (the threads shared out among them)
    /// with one shard, in the same run.
    #[arg(long)]
    pub(super) shards: Option<u16>,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub(super) json: bool,
}

/// The figures printed by `--json` (transactions per second unless noted).
#[derive(Serialize)]
struct Report {
    txs: usize,
    accounts: usize,
    threads: usize,
    verify_single_tps: f64,
    verify_batch_tps: f64,
    verify_speedup: f64,
    sequential_tps: f64,
    parallel_tps: f64,
    exec_speedup: f64,
    /// The path the executor chose for this block: "declared-dependencies",
    /// "block-stm" or "sequential".
    parallel_path: &'static str,
    /// Block-STM forced on, whatever the executor would choose.
    blockstm_tps: f64,
    blockstm_executions: u64,
    /// Changed keys folded into the state tree per second, with `threads`.
    state_root_keys_per_s: f64,
    state_root_ms: f64,
    pipeline_1_tps: f64,
    pipeline_n_tps: f64,
    pipeline_speedup: f64,
}

const CHAIN: ChainId = ChainId(1);

pub fn run(args: &ExecuteArgs) -> anyhow::Result<()> {
    if args.accounts < 2 {
        bail!("--accounts must be at least 2 (a transfer needs a sender and a recipient)");
    }
    if args.txs == 0 || args.rounds == 0 {
        bail!("--txs and --rounds must be at least 1");
    }
    let threads = args.threads;
    let progress = |msg: &str| {
        if !args.json {
            eprintln!("{msg}");
        }
    };
    progress(&format!(
        "generating {} accounts and signing {} transfers…",
        args.accounts, args.txs
    ));
    let keys = dev_keys(1, args.accounts);
    let genesis = genesis_accounts(&keys, 1_000_000_000_000);
    let mut nonces = vec![0; keys.len()];
    let txs = transfer_block(CHAIN, &keys, &mut nonces, args.txs, 2);

    let dir = tempfile::tempdir().context("creating a temporary directory for the bench store")?;
    let identity = StoreIdentity {
        chain_id: CHAIN,
        shard: ShardId(0),
    };
    let chain = ShardChain::open(
        dir.path(),
        identity,
        ShardLayout::single(),
        &genesis,
        threads,
    )
    .context("opening the bench shard store")?;
    let store = chain.store();
    let ctx = BlockContext {
        chain_id: CHAIN,
        shard: ShardId(0),
        height: 1,
        timestamp_ms: 0,
        map: std::sync::Arc::new(atoll_primitives::ShardMap::new(ShardLayout::single())),
        outbox: BTreeMap::new(),
        gas: atoll_primitives::GasRules::default(),
        parent_hash: atoll_primitives::Hash([0; 32]),
    };
    let tree = StateTree::from_entries(genesis.iter().cloned());
    // Every parallel stage runs on the executor's pool, as in the node.
    let executor = Executor::new(threads)?;
    let executor_1 = Executor::new(NonZeroUsize::MIN)?;
    let pool_n = executor.pool();
    let rounds = args.rounds;

    progress("measuring signature checks…");
    let [verify_single, verify_batch] = interleaved(
        rounds,
        [
            &mut || expect_valid(find_bad_signatures_one_by_one(&txs)),
            &mut || expect_valid(find_bad_signatures(&txs, pool_n)),
        ],
    )?;

    progress("measuring execution…");
    let expected = sequential::execute(&ctx, &txs, store)?;
    let check = |output: BlockOutput| -> anyhow::Result<()> {
        anyhow::ensure!(
            output == expected,
            "an executor disagreed with the sequential reference"
        );
        Ok(())
    };
    let mut path = ExecutionPath::Parallel;
    let mut blockstm_executions = 0;
    // Execution takes milliseconds: more rounds, interleaved, keep the ratio
    // clear of drift (RocksDB, caches, frequency).
    let [sequential_time, parallel_time, blockstm_time] = interleaved(
        rounds * 4,
        [
            &mut || check(sequential::execute(&ctx, &txs, store)?),
            &mut || {
                let (output, stats) = executor.execute(&ctx, &txs, store)?;
                path = stats.path;
                check(output)
            },
            &mut || {
                let (output, stats) = executor.execute_parallel(&ctx, &txs, store)?;
                blockstm_executions = stats.executions;
                check(output)
            },
        ],
    )?;

    progress("measuring the state-root update…");
    let changes = &expected.state_changes;
    let [root_time] = interleaved(
        rounds * 4,
        [&mut || {
            let mut t = tree.clone();
            pool_n.install(|| t.update_parallel(changes));
            std::hint::black_box(t.root());
            Ok(())
        }],
    )?;

    progress("measuring the whole pipeline…");
    let pipeline = |executor: &Executor| -> anyhow::Result<()> {
        let pool = executor.pool();
        expect_valid(find_bad_signatures(&txs, pool))?;
        let (output, _) = executor.execute(&ctx, &txs, store)?;
        let mut t = tree.clone();
        pool.install(|| t.update_parallel(&output.state_changes));
        std::hint::black_box(t.root());
        check(output)
    };
    let [pipeline_1, pipeline_n] = interleaved(
        rounds,
        [&mut || pipeline(&executor_1), &mut || pipeline(&executor)],
    )?;

    let tps = |d: Duration| args.txs as f64 / d.as_secs_f64();
    let report = Report {
        txs: args.txs,
        accounts: args.accounts,
        threads: threads.get(),
        verify_single_tps: tps(verify_single),
        verify_batch_tps: tps(verify_batch),
        verify_speedup: tps(verify_batch) / tps(verify_single),
        sequential_tps: tps(sequential_time),
        parallel_tps: tps(parallel_time),
        exec_speedup: tps(parallel_time) / tps(sequential_time),
        parallel_path: path.name(),
        blockstm_tps: tps(blockstm_time),
        blockstm_executions,
        state_root_keys_per_s: changes.len() as f64 / root_time.as_secs_f64(),
        state_root_ms: root_time.as_secs_f64() * 1e3,
        pipeline_1_tps: tps(pipeline_1),
        pipeline_n_tps: tps(pipeline_n),
        pipeline_speedup: tps(pipeline_n) / tps(pipeline_1),
    };
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print_table(&report);
    }
    Ok(())
}

fn default_threads() -> NonZeroUsize {
    std::thread::available_parallelism().unwrap_or(NonZeroUsize::MIN)
}

/// Runs each stage once per round, in turn, and returns each stage's median
/// time. Interleaving puts every stage under the same conditions, so the
/// ratios between them are not skewed by drift during the run.
fn interleaved<const N: usize>(
    rounds: usize,
    mut stages: [&mut dyn FnMut() -> anyhow::Result<()>; N],
) -> anyhow::Result<[Duration; N]> {
    let mut times: [Vec<Duration>; N] = std::array::from_fn(|_| Vec::with_capacity(rounds));
    for _ in 0..rounds {
        for (stage, times) in stages.iter_mut().zip(times.iter_mut()) {
            let start = Instant::now();
            stage()?;
            times.push(start.elapsed());
        }
    }
    Ok(times.map(|mut t| {
        t.sort_unstable();
        t[t.len() / 2]
    }))
}

/// Fails unless the signature check found no bad signature.
fn expect_valid(bad: Vec<usize>) -> anyhow::Result<()> {
    anyhow::ensure!(
        bad.is_empty(),
        "the generated block has {} bad signatures",
        bad.len()
    );
    Ok(())
}

fn print_table(r: &Report) {
    println!(
        "block: {} transfers over {} accounts, {} threads",
        r.txs, r.accounts, r.threads
    );
    println!("  verify one by one    {:>12.0} tx/s", r.verify_single_tps);
    println!(
        "  verify batched       {:>12.0} tx/s   x{:.2}",
        r.verify_batch_tps, r.verify_speedup
    );
    println!("  execute sequential   {:>12.0} tx/s", r.sequential_tps);
    println!(
        "  execute parallel     {:>12.0} tx/s   x{:.2}  (path: {})",
        r.parallel_tps, r.exec_speedup, r.parallel_path
    );
    println!(
        "  Block-STM forced     {:>12.0} tx/s   ({} executions)",
        r.blockstm_tps, r.blockstm_executions
    );
    println!(
        "  state root update    {:>12.0} keys/s ({:.1} ms)",
        r.state_root_keys_per_s, r.state_root_ms
    );
    println!("  pipeline, 1 thread   {:>12.0} tx/s", r.pipeline_1_tps);
    println!(
        "  pipeline, {} threads  {:>12.0} tx/s   x{:.2}",
        r.threads, r.pipeline_n_tps, r.pipeline_speedup
    );
}
