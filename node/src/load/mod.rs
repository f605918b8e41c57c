//! `atoll load`: sends pre-signed transfers among dev accounts at a fixed
//! rate in JSON-RPC batches, follows finality through the node's blocks, and
//! reports submitted and finalized TPS, finality latency percentiles and
//! errors by kind.
//!
//! Every transaction is signed before the clock starts, so the rate measures
//! the node, not the generator's signing. Latency is measured from the
//! moment a transaction's batch is sent to the moment a poll of the node
//! first sees it in a final block (polls run every [`track::POLL`]).

mod batches;
mod keys;
mod report;
mod routes;
mod track;
mod workloads;

use crate::client::{connect, DEFAULT_RPC};
use crate::home::DEV_SEED;
use crate::rpc::api::AtollApiClient;
use crate::rpc::types::AccountInfo;
use anyhow::{bail, Context};
use atoll_primitives::{ChainId, Hash, ShardLayout};
use atoll_shard::workload::dev_key;
use batches::{send_batch, sign_all, Plan};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use jsonrpsee::core::client::ClientT;
use jsonrpsee::http_client::HttpClient;
use jsonrpsee::rpc_params;
use keys::LoadKey;
use parking_lot::Mutex;
use rayon::prelude::*;
use report::{print_report, report, sample_outcomes};
use routes::Routes;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use track::{watch_finality, Tracker};

/// Most batches in flight at once.
const MAX_IN_FLIGHT: usize = 64;

/// `atoll load`.
#[derive(Args)]
pub struct LoadArgs {
    /// A node's JSON-RPC URL; repeat to spread batches over several nodes.
    #[arg(long = "rpc", default_value = DEFAULT_RPC)]
    rpc: Vec<String>,
    /// Dev accounts to send from and to (the node's genesis must fund at
    /// least this many: `atoll init --dev-accounts N`).
    #[arg(long, default_value_t = 1000)]
    accounts: usize,
    /// Transactions per second to submit.
    #[arg(long, default_value_t = 1000)]
    tps: u64,
    /// Seconds to submit for.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Transactions per JSON-RPC batch.
    #[arg(long, default_value_t = 500)]
    batch: usize,
    /// Share of transfers (0 to 1) whose recipient lives on another shard
    /// than the sender; their settlement (credit final on the recipient's
    /// shard) is measured separately. With `--workload erc20|amm`: the
    /// share of accounts that call a contract on another shard (each
    /// shard's first dev account deploys that shard's contracts); their
    /// settlement is the refund final back on the sender's shard.
    #[arg(long, default_value_t = 0.0)]
    cross_shard_ratio: f64,
    /// Seconds to wait, after the last batch, for transactions to become final.
    #[arg(long, default_value_t = 30)]
    settle: u64,
    /// What to send: native `transfers`; `erc20` transfers of a token that
    /// the first dev account of each shard deploys and hands out first; or
    /// `amm` swaps on `--pools` constant-product pools of two such tokens
    /// per shard, which that account deploys and funds and every trader
    /// approves first.
    #[arg(long, value_enum, default_value_t = LoadWorkload::Transfers)]
    workload: LoadWorkload,
    /// Pools of `--workload amm` on each shard; each trader swaps on one.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pools: u32,
    /// Send Ethereum-signed (EIP-1559) transactions from the accounts of
    /// the standard test mnemonic instead of native ones from the ed25519
    /// dev accounts (the genesis must fund as many:
    /// `--eth-dev-accounts N`).
    #[arg(long)]
    eth: bool,
    /// Print one JSON object with the results instead of text.
    #[arg(long)]
    json: bool,
}

/// What `atoll load` sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LoadWorkload {
    /// Native transfers of 1.
    Transfers,
    /// ERC-20 `transfer` calls of 1 token.
    Erc20,
    /// Swaps of 1,000 tokens on constant-product pools.
    Amm,
}

/// Runs the generator.
pub async fn run(args: LoadArgs) -> anyhow::Result<()> {
    if args.accounts < 2 {
        bail!("--accounts must be at least 2");
    }
    if args.tps == 0 || args.duration == 0 || args.batch == 0 {
        bail!("--tps, --duration and --batch must be positive");
    }
    if !(0.0..=1.0).contains(&args.cross_shard_ratio) {
        bail!("--cross-shard-ratio must be between 0 and 1");
    }
    let clients: Vec<HttpClient> = args
        .rpc
        .iter()
        .map(|url| connect(url))
        .collect::<Result<_, _>>()?;
    let status = clients[0]
        .status()
        .await
        .with_context(|| format!("cannot reach the node at {}", args.rpc[0]))?;
    let chain_id = ChainId(status.chain_id);
    let shard_count = u16::try_from(status.shards.len().max(1))?;
    let routes = Arc::new(Routes::new(clients, usize::from(shard_count)).await);
    let layout = ShardLayout::uniform(shard_count).expect("at least one shard");
    let total = usize::try_from(args.tps.saturating_mul(args.duration))?;
    let progress_out = !args.json;
    if progress_out {
        eprintln!(
            "Preparing {total} transactions among {} accounts…",
            args.accounts
        );
    }
    let keys: Vec<LoadKey> = if args.eth {
        crate::eth_accounts::derive(args.accounts)?
            .into_iter()
            .map(|account| LoadKey::Ethereum(account.key))
            .collect()
    } else {
        (0..args.accounts as u64)
            .into_par_iter()
            .map(|i| LoadKey::Native(dev_key(DEV_SEED, i)))
            .collect()
    };
    let client = routes.client(0);
    let ratio = args.cross_shard_ratio;
    let targets = match args.workload {
        LoadWorkload::Transfers => None,
        LoadWorkload::Erc20 => {
            let shape = (&layout, ratio);
            Some(workloads::set_up_erc20(client, chain_id, &keys, shape, progress_out).await?)
        }
        LoadWorkload::Amm => {
            let shape = (&layout, ratio, args.pools as usize);
            Some(workloads::set_up_amm(client, chain_id, &keys, shape, progress_out).await?)
        }
    };
    let nonces = account_nonces(&routes, &layout, &keys).await?;
    let shard_of_tx: Arc<Vec<u16>> = Arc::new(
        (0..total)
            .map(|k| layout.shard_of(&keys[k % keys.len()].address()).0)
            .collect(),
    );
    let plan = Plan {
        chain_id,
        layout,
        cross_shard_ratio: args.cross_shard_ratio,
        targets,
    };
    let (params, (hashes, cross)) = sign_all(&plan, &keys, &nonces, total);
    // A cross-shard transfer settles with its credit; a call with its call
    // receipt and then its refund.
    let legs = match plan.targets {
        None => 1,
        Some(_) => 2,
    };
    let tracker = Arc::new(Mutex::new(Tracker {
        index: hashes.iter().enumerate().map(|(i, h)| (*h, i)).collect(),
        sent: vec![None; total],
        finalized: vec![None; total],
        legs: cross.iter().map(|c| if *c { legs } else { 0 }).collect(),
        cross,
        settled: vec![None; total],
        final_beacon: vec![0; total],
        settled_beacon: vec![0; total],
    }));
    let errors = Arc::new(Mutex::new(BTreeMap::<String, u64>::new()));
    let admitted = Arc::new(AtomicU64::new(0));
    let final_count = Arc::new(AtomicU64::new(0));

    let bar = if progress_out {
        ProgressBar::new(total as u64)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} sent  {msg}")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    let mut start_heights: Vec<u64> = Vec::new();
    for shard in 0..usize::from(shard_count) {
        let height = match routes.client(shard).status().await {
            Ok(status) => status.shards[shard].final_height,
            Err(_) => status.shards[shard].final_height,
        };
        start_heights.push(height);
    }
    let settled_count = Arc::new(AtomicU64::new(0));
    let watcher = tokio::spawn(watch_finality(
        Arc::clone(&routes),
        start_heights,
        Arc::clone(&tracker),
        Arc::clone(&final_count),
        Arc::clone(&settled_count),
    ));

    let started = Instant::now();
    let in_flight = Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT));
    let mut next = 0usize;
    let mut turn = 0usize;
    let mut sends = Vec::new();
    let params = Arc::new(params);
    while next < total {
        let due = ((started.elapsed().as_secs_f64() * args.tps as f64) as usize).min(total);
        while next < due {
            let end = (next + args.batch).min(due);
            let permit = Arc::clone(&in_flight).acquire_owned().await?;
            let (routes, shard_of_tx) = (Arc::clone(&routes), Arc::clone(&shard_of_tx));
            let spread = turn;
            turn += 1;
            let (batch_params, batch_tracker, batch_errors, batch_admitted) = (
                Arc::clone(&params),
                Arc::clone(&tracker),
                Arc::clone(&errors),
                Arc::clone(&admitted),
            );
            let range = next..end;
            sends.push(tokio::spawn(async move {
                let _permit = permit;
                send_batch(
                    &routes,
                    (&shard_of_tx, spread),
                    &batch_params,
                    range,
                    &batch_tracker,
                    &batch_errors,
                    &batch_admitted,
                )
                .await;
            }));
            next = end;
            bar.set_position(next as u64);
            bar.set_message(progress_message(&admitted, &final_count, &errors));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for send in sends {
        send.await?;
    }
    let send_time = started.elapsed();
    let deadline = Instant::now() + Duration::from_secs(args.settle);
    let cross_admitted = {
        let tracker = tracker.lock();
        tracker
            .sent
            .iter()
            .zip(&tracker.cross)
            .filter(|(sent, cross)| sent.is_some() && **cross)
            .count() as u64
    };
    while (final_count.load(Ordering::Relaxed) < admitted.load(Ordering::Relaxed)
        || settled_count.load(Ordering::Relaxed) < cross_admitted)
        && Instant::now() < deadline
    {
        bar.set_message(progress_message(&admitted, &final_count, &errors));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    watcher.abort();
    bar.finish_and_clear();

    let mut report = report(
        args.tps,
        &tracker.lock(),
        started,
        send_time,
        &errors.lock(),
    );
    if plan.targets.is_some() {
        let finalized: Vec<Hash> = {
            let tracker = tracker.lock();
            (0..total)
                .filter(|i| tracker.finalized[*i].is_some())
                .map(|i| hashes[i])
                .collect()
        };
        report.sampled_outcomes = sample_outcomes(client, &finalized).await;
    }
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print_report(&report, send_time);
    }
    Ok(())
}

fn progress_message(
    admitted: &AtomicU64,
    finalized: &AtomicU64,
    errors: &Mutex<BTreeMap<String, u64>>,
) -> String {
    let errors: u64 = errors.lock().values().sum();
    format!(
        "admitted {}  final {}  errors {errors}",
        admitted.load(Ordering::Relaxed),
        finalized.load(Ordering::Relaxed)
    )
}

/// Account queries in flight at once while the load reads nonces: enough
/// that a round trip of a real network's length (tens of milliseconds)
/// does not turn 10,000 queries into minutes.
const NONCE_QUERIES: usize = 64;

/// The next nonce of every key, in key order.
async fn account_nonces(
    routes: &Routes,
    layout: &ShardLayout,
    keys: &[LoadKey],
) -> anyhow::Result<Vec<u64>> {
    use futures::stream::{self, StreamExt, TryStreamExt};
    stream::iter(keys.iter().enumerate())
        .map(|(index, key)| account_nonce(routes, layout, index, key, keys.len()))
        .buffered(NONCE_QUERIES)
        .try_collect()
        .await
}

/// Key `index`'s next nonce, from a validator that tracks its shard; an
/// error if the account has no funds.
async fn account_nonce(
    routes: &Routes,
    layout: &ShardLayout,
    index: usize,
    key: &LoadKey,
    keys: usize,
) -> anyhow::Result<u64> {
    let shard = usize::from(layout.shard_of(&key.address()).0);
    let mut tries = 0;
    let account = loop {
        let route = routes.route(shard);
        let answer = routes
            .client(shard)
            .request::<AccountInfo, _>(
                "atoll_getAccount",
                rpc_params![key.address().to_string(), "latest"],
            )
            .await;
        match answer {
            Err(jsonrpsee::core::ClientError::Call(e))
                if e.code() == crate::rpc::error::SHARD_NOT_TRACKED
                    && tries < routes.clients.len() =>
            {
                tries += 1;
                routes.moved(shard, route);
            }
            other => break other.map_err(|e| anyhow::anyhow!("getAccount: {e}"))?,
        }
    };
    if account.balance == "0" {
        bail!(
            "dev account {index} ({}) has no funds; initialise the node with --dev-accounts \
             {keys} (--eth-dev-accounts with --eth) or more",
            account.address,
        );
    }
    Ok(account.nonce)
}
