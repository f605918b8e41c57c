//! `atoll bench execute --shards S`: the whole block pipeline (signature
//! checks, execution, state root, synced commit) of S shards running
//! concurrently in one process, against one shard in the same run.
//!
//! The transfers are split evenly over the shards and stay within each
//! shard (cross-shard settlement is measured end to end by `atoll load
//! --cross-shard-ratio`). The machine's threads are shared out among the
//! shards as the node does. One-shard and S-shard rounds alternate, and the
//! medians are reported.

use super::execute::ExecuteArgs;
use anyhow::Context;
use atoll_primitives::{ChainId, KeyPair, ShardId, ShardLayout};
use atoll_shard::execution::PreparedTx;
use atoll_shard::workload::{dev_keys, genesis_accounts, transfer_block};
use atoll_shard::ShardChain;
use atoll_storage::StoreIdentity;
use serde::Serialize;
use std::num::NonZeroUsize;
use std::time::Instant;

const CHAIN: ChainId = ChainId(1);

/// The figures printed by `--json`.
#[derive(Serialize)]
struct Report {
    txs: usize,
    accounts: usize,
    threads: usize,
    shards: u16,
    one_shard_tps: f64,
    sharded_tps: f64,
    /// `sharded_tps / one_shard_tps`.
    ratio: f64,
}

/// Shards with their stores, and pre-signed blocks for every round.
struct Setup {
    _dirs: Vec<tempfile::TempDir>,
    chains: Vec<ShardChain>,
    /// `blocks[round][shard]`.
    blocks: Vec<Vec<Vec<PreparedTx>>>,
}

fn setup(keys: &[KeyPair], shards: u16, args: &ExecuteArgs) -> anyhow::Result<Setup> {
    let layout = ShardLayout::uniform(shards).context("at least one shard")?;
    let threads =
        NonZeroUsize::new(args.threads.get() / usize::from(shards)).unwrap_or(NonZeroUsize::MIN);
    let mut dirs = Vec::new();
    let mut chains = Vec::new();
    let mut per_shard_keys = Vec::new();
    for shard in 0..shards {
        let own: Vec<KeyPair> = keys
            .iter()
            .filter(|k| layout.shard_of(&k.address()) == ShardId(shard))
            .cloned()
            .collect();
        anyhow::ensure!(
            own.len() >= 2,
            "shard {shard} has fewer than 2 of the accounts; use more --accounts"
        );
        let dir =
            tempfile::tempdir().context("creating a temporary directory for a bench store")?;
        let identity = StoreIdentity {
            chain_id: CHAIN,
            shard: ShardId(shard),
        };
        let genesis = genesis_accounts(&own, 1_000_000_000_000);
        chains.push(ShardChain::open(
            dir.path(),
            identity,
            layout,
            &genesis,
            threads,
        )?);
        dirs.push(dir);
        per_shard_keys.push(own);
    }
    let per_block = args.txs / usize::from(shards);
    let mut nonces: Vec<Vec<u64>> = per_shard_keys.iter().map(|k| vec![0; k.len()]).collect();
    let blocks = (0..args.rounds)
        .map(|round| {
            (0..usize::from(shards))
                .map(|s| {
                    transfer_block(
                        CHAIN,
                        &per_shard_keys[s],
                        &mut nonces[s],
                        per_block,
                        (round * 100 + s) as u64,
                    )
                })
                .collect()
        })
        .collect();
    Ok(Setup {
        _dirs: dirs,
        chains,
        blocks,
    })
}

/// Produces round `round`'s blocks on every shard at once; returns seconds.
fn produce_round(setup: &mut Setup, round: usize) -> anyhow::Result<f64> {
    let blocks = std::mem::take(&mut setup.blocks[round]);
    let started = Instant::now();
    std::thread::scope(|scope| {
        let handles: Vec<_> = setup
            .chains
            .iter_mut()
            .zip(blocks)
            .map(|(chain, txs)| scope.spawn(move || chain.produce_block(txs, 1)))
            .collect();
        for handle in handles {
            let produced = handle
                .join()
                .map_err(|_| anyhow::anyhow!("a shard's thread panicked"))??;
            anyhow::ensure!(
                produced.rejected == 0,
                "the bench block had rejected transactions"
            );
        }
        Ok::<(), anyhow::Error>(())
    })?;
    Ok(started.elapsed().as_secs_f64())
}

/// Runs the comparison.
pub fn run(args: &ExecuteArgs, shards: u16) -> anyhow::Result<()> {
    anyhow::ensure!(shards >= 2, "--shards compares 2 or more shards with one");
    anyhow::ensure!(
        args.rounds >= 1 && args.txs >= usize::from(shards),
        "--rounds and --txs must be positive"
    );
    if !args.json {
        eprintln!(
            "signing {} transfers per round for 1 and {shards} shards…",
            args.txs
        );
    }
    let keys = dev_keys(1, args.accounts);
    let mut one = setup(&keys, 1, args)?;
    let mut many = setup(&keys, shards, args)?;
    let (mut one_times, mut many_times) = (Vec::new(), Vec::new());
    for round in 0..args.rounds {
        one_times.push(produce_round(&mut one, round)?);
        many_times.push(produce_round(&mut many, round)?);
    }
    let median = |times: &mut Vec<f64>| {
        times.sort_by(f64::total_cmp);
        times[times.len() / 2]
    };
    let one_shard_tps = args.txs as f64 / median(&mut one_times);
    let sharded_tps =
        (args.txs / usize::from(shards) * usize::from(shards)) as f64 / median(&mut many_times);
    let report = Report {
        txs: args.txs,
        accounts: args.accounts,
        threads: args.threads.get(),
        shards,
        one_shard_tps,
        sharded_tps,
        ratio: sharded_tps / one_shard_tps,
    };
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!(
            "block pipeline, {} transfers per round, {} threads, median of {} rounds",
            report.txs, report.threads, args.rounds
        );
        println!("  1 shard        {:>12.0} tx/s", report.one_shard_tps);
        println!(
            "  {shards} shards       {:>12.0} tx/s  (×{:.2} of one shard)",
            report.sharded_tps, report.ratio
        );
    }
    Ok(())
}
