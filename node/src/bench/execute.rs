//! `atoll bench execute`: the block pipeline on one generated block.
//!
//! The genesis accounts live in a real RocksDB shard store (in a temporary
//! directory), which the executors read through the shard's read cache
//! (`CachedState`), as the node does: the first, unmeasured, run fills
//! the cache with the state the block touches, as the blocks before it
//! do on a running node. Stages that are
//! compared are run in turn, round after round, and each one's median is
//! reported, so the ratios come from the same conditions.

use anyhow::{bail, Context};
use atoll_primitives::{ChainId, StateKey, StateValue, TxOutcome};
use atoll_shard::execution::{
    sequential, BlockContext, BlockOutput, ExecutionPath, Executor, PreparedTx,
};
use atoll_shard::signatures::{find_bad_signatures, find_bad_signatures_one_by_one};
use atoll_shard::state::StateTree;
use atoll_shard::workload::{dev_keys, genesis_accounts, transfer_block, DefiState};
use clap::Args;
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde::Serialize;
use std::num::NonZeroUsize;
use std::time::{Duration, Instant};

/// Options of `atoll bench execute`.
#[derive(Args)]
pub struct ExecuteArgs {
    /// What the block holds: native `transfers`, `erc20` transfers of one
    /// token among distinct holders, or `amm` swaps (each trader on one of
    /// `--pools` pairs over two tokens). Contracts are deployed and funded
    /// before the measurement by executing setup blocks.
    #[arg(long, value_enum, default_value_t = Workload::Transfers)]
    pub(super) workload: Workload,
    /// AMM pools the swaps are spread over (`--workload amm`; 1 puts every
    /// swap on the same pool).
    #[arg(long, default_value_t = 100)]
    pub(super) pools: usize,
    /// Transactions in the block.
    #[arg(long, default_value_t = 20_000)]
    pub(super) txs: usize,
    /// Accounts the transactions move value between (2 means every transfer
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

/// What the benchmark block holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Workload {
    /// Native transfers.
    Transfers,
    /// ERC-20 `transfer` calls of one token.
    Erc20,
    /// AMM `swap` calls.
    Amm,
}

/// The figures printed by `--json` (transactions per second unless noted).
#[derive(Serialize)]
struct Report {
    workload: Workload,
    /// AMM pools (`amm` only).
    pools: Option<usize>,
    txs: usize,
    /// Gas the block used (contract workloads; 0 for transfers).
    gas_used: u64,
    /// Gas executed per second, sequential and with the chosen path.
    sequential_gas_per_s: f64,
    parallel_gas_per_s: f64,
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
    /// How many times slower `threads` threads updating memory of their
    /// own ran together than one alone, right before and right after the
    /// execution stages (1.0: the host's shared cache was not contended;
    /// see `bench::host`).
    host_memory_slowdown_before: f64,
    host_memory_slowdown_after: f64,
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
    if args.workload == Workload::Amm && args.pools == 0 {
        bail!("--pools must be at least 1");
    }
    let (genesis, ctx, txs) = generate(args, &progress)?;

    let dir = tempfile::tempdir().context("creating a temporary directory for the bench store")?;
    let chain = super::bench_store::bench_shard(dir.path(), CHAIN, &genesis, threads)?;
    let cached = chain.state();
    let state = &*cached;
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
            &mut || Ok(find_bad_signatures_one_by_one(&txs)),
            &mut || Ok(find_bad_signatures(&txs, pool_n)),
        ],
        expect_valid,
    )?;

    progress("measuring the host's memory contention…");
    let host_before = super::host::memory_slowdown(threads.get());
    progress("measuring execution…");
    let expected = sequential::execute(&ctx, &txs, state)?;
    let failed = expected.outcomes.iter().filter(|o| !o.is_success()).count();
    anyhow::ensure!(
        failed == 0,
        "{failed} generated transactions failed, e.g. {:?}",
        expected.outcomes.iter().find(|o| !o.is_success())
    );
    let gas_used: u64 = expected
        .outcomes
        .iter()
        .map(|o| match o {
            TxOutcome::Contract(c) => c.gas_used,
            _ => 0,
        })
        .sum();
    // Checked after each timed run, so the figures measure the executors
    // and not the comparison.
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
            &mut || Ok(sequential::execute(&ctx, &txs, state)?),
            &mut || {
                let (output, stats) = executor.execute(&ctx, &txs, state)?;
                path = stats.path;
                Ok(output)
            },
            &mut || {
                let (output, stats) = executor.execute_parallel(&ctx, &txs, state)?;
                blockstm_executions = stats.executions;
                Ok(output)
            },
        ],
        check,
    )?;

    let host_after = super::host::memory_slowdown(threads.get());

    progress("measuring the state-root update…");
    let changes = &expected.state_changes;
    let [root_time] = interleaved(
        rounds * 4,
        [&mut || {
            let mut t = tree.clone();
            pool_n.install(|| t.update_parallel(changes));
            Ok(t.root())
        }],
        |root| {
            std::hint::black_box(root);
            Ok(())
        },
    )?;

    progress("measuring the whole pipeline…");
    let pipeline = |executor: &Executor| -> anyhow::Result<BlockOutput> {
        let pool = executor.pool();
        expect_valid(find_bad_signatures(&txs, pool))?;
        let (output, _) = executor.execute(&ctx, &txs, state)?;
        let mut t = tree.clone();
        pool.install(|| t.update_parallel(&output.state_changes));
        std::hint::black_box(t.root());
        Ok(output)
    };
    let [pipeline_1, pipeline_n] = interleaved(
        rounds,
        [&mut || pipeline(&executor_1), &mut || pipeline(&executor)],
        check,
    )?;

    let tps = |d: Duration| args.txs as f64 / d.as_secs_f64();
    let gas_per_s = |d: Duration| gas_used as f64 / d.as_secs_f64();
    let report = Report {
        workload: args.workload,
        pools: (args.workload == Workload::Amm).then_some(args.pools),
        gas_used,
        sequential_gas_per_s: gas_per_s(sequential_time),
        parallel_gas_per_s: gas_per_s(parallel_time),
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
        host_memory_slowdown_before: host_before,
        host_memory_slowdown_after: host_after,
    };
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print_table(&report);
    }
    Ok(())
}

/// A genesis, the context of the block after it, and that block.
type Generated = (Vec<(StateKey, StateValue)>, BlockContext, Vec<PreparedTx>);

/// The genesis, the block's context and the block for `args.workload`.
fn generate(args: &ExecuteArgs, progress: &dyn Fn(&str)) -> anyhow::Result<Generated> {
    let keys = dev_keys(1, args.accounts);
    let mut rng = StdRng::seed_from_u64(2);
    let defi = match args.workload {
        Workload::Transfers => {
            progress(&format!(
                "generating {} accounts and signing {} transfers…",
                args.accounts, args.txs
            ));
            let genesis = genesis_accounts(&keys, 1_000_000_000_000);
            let mut nonces = vec![0; keys.len()];
            let txs = transfer_block(CHAIN, &keys, &mut nonces, args.txs, 2);
            let ctx = DefiState::new(CHAIN, Vec::new()).ctx;
            return Ok((genesis, ctx, txs));
        }
        Workload::Erc20 => {
            progress(&format!(
                "deploying a token and funding {} holders…",
                args.accounts
            ));
            DefiState::erc20(CHAIN, keys)?
        }
        Workload::Amm => {
            progress(&format!(
                "deploying two tokens and {} pools, funding and approving {} traders…",
                args.pools, args.accounts
            ));
            DefiState::amm(CHAIN, keys, args.pools)?
        }
    };
    let mut defi = defi;
    progress(&format!("signing {} transactions…", args.txs));
    let txs = match args.workload {
        Workload::Erc20 => defi.erc20_block(args.txs, &mut rng),
        _ => defi.swap_block(args.txs, &mut rng),
    };
    Ok((defi.entries(), defi.ctx.clone(), txs))
}

fn default_threads() -> NonZeroUsize {
    std::thread::available_parallelism().unwrap_or(NonZeroUsize::MIN)
}

/// Runs each stage once per round, in turn, and returns each stage's median
/// time. Interleaving puts every stage under the same conditions, so the
/// ratios between them are not skewed by drift during the run; every
/// other round runs them in reverse order, so that no stage always follows
/// the same one (a Block-STM run right after another found the worker
/// threads' caches warm, and measured up to 8% faster than one right after
/// the sequential run). What a stage returns goes to `settle` (a check)
/// once its time is taken.
fn interleaved<T, const N: usize>(
    rounds: usize,
    stages: [&mut dyn FnMut() -> anyhow::Result<T>; N],
    mut settle: impl FnMut(T) -> anyhow::Result<()>,
) -> anyhow::Result<[Duration; N]> {
    let mut times: [Vec<Duration>; N] = std::array::from_fn(|_| Vec::with_capacity(rounds));
    for round in 0..rounds {
        for i in 0..N {
            let i = if round % 2 == 0 { i } else { N - 1 - i };
            let start = Instant::now();
            let result = stages[i]()?;
            times[i].push(start.elapsed());
            settle(result)?;
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
    let what = match (r.workload, r.pools) {
        (Workload::Transfers, _) => "native transfers".to_string(),
        (Workload::Erc20, _) => "ERC-20 transfers".to_string(),
        (_, pools) => format!("AMM swaps on {} pools", pools.unwrap_or(0)),
    };
    println!(
        "block: {} {what} over {} accounts, {} threads",
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
    if r.gas_used > 0 {
        println!(
            "  gas executed         {:>12.1} Mgas/s sequential, {:.1} Mgas/s parallel ({} gas in the block)",
            r.sequential_gas_per_s / 1e6,
            r.parallel_gas_per_s / 1e6,
            r.gas_used
        );
    }
    println!(
        "  state root update    {:>12.0} keys/s ({:.1} ms)",
        r.state_root_keys_per_s, r.state_root_ms
    );
    println!("  pipeline, 1 thread   {:>12.0} tx/s", r.pipeline_1_tps);
    println!(
        "  pipeline, {} threads  {:>12.0} tx/s   x{:.2}",
        r.threads, r.pipeline_n_tps, r.pipeline_speedup
    );
    println!(
        "  host check           x{:.2} before, x{:.2} after the execution stages: \
         {} threads on memory of their own, together vs one alone (1.00: uncontended)",
        r.host_memory_slowdown_before,
        r.host_memory_slowdown_after,
        r.threads.max(2)
    );
}
