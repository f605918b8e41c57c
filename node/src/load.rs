//! `atoll load`: sends pre-signed transfers among dev accounts at a fixed
//! rate in JSON-RPC batches, follows finality through the node's blocks, and
//! reports submitted and finalized TPS, finality latency percentiles and
//! errors by kind.
//!
//! Every transaction is signed before the clock starts, so the rate measures
//! the node, not the generator's signing. Latency is measured from the
//! moment a transaction's batch is sent to the moment a poll of the node
//! first sees it in a final block (polls run every [`POLL`]).

use crate::client::{connect, DEFAULT_RPC};
use crate::home::DEV_SEED;
use crate::load_defi;
use crate::rpc::api::AtollApiClient;
use crate::rpc::error::code_name;
use crate::rpc::types::{parse_hash, AccountInfo, BlockRef};
use anyhow::{bail, Context};
use atoll_primitives::{Action, ChainId, Hash, KeyPair, ShardLayout, Transaction};
use atoll_shard::workload::dev_key;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use jsonrpsee::core::client::ClientT;
use jsonrpsee::core::params::BatchRequestBuilder;
use jsonrpsee::http_client::HttpClient;
use jsonrpsee::rpc_params;
use parking_lot::Mutex;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rayon::prelude::*;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often the generator asks the node for new final blocks.
pub const POLL: Duration = Duration::from_millis(20);
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
    /// shard) is measured separately.
    #[arg(long, default_value_t = 0.0)]
    cross_shard_ratio: f64,
    /// Seconds to wait, after the last batch, for transactions to become final.
    #[arg(long, default_value_t = 30)]
    settle: u64,
    /// What to send: native `transfers`; `erc20` transfers of a token that
    /// dev account 0 deploys and hands out first; or `amm` swaps on
    /// `--pools` constant-product pools of two such tokens, which dev
    /// account 0 deploys and funds and every account approves first.
    /// Contract workloads need a one-shard chain.
    #[arg(long, value_enum, default_value_t = LoadWorkload::Transfers)]
    workload: LoadWorkload,
    /// Pools of `--workload amm`; account `i` swaps on pool `i mod pools`.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pools: u32,
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

/// The results (`--json` prints them as one object).
#[derive(Debug, Serialize)]
pub struct Report {
    /// Transactions the node admitted.
    pub submitted: u64,
    /// Admitted transactions seen in a final block.
    pub finalized: u64,
    /// The rate asked for.
    pub target_tps: u64,
    /// Admitted transactions per second of sending.
    pub submitted_tps: f64,
    /// Finalized transactions per second, from the first send to the last
    /// finalization seen.
    pub finalized_tps: f64,
    /// Finality latency percentiles, in milliseconds.
    pub latency_ms_p50: f64,
    /// 90th percentile.
    pub latency_ms_p90: f64,
    /// 99th percentile.
    pub latency_ms_p99: f64,
    /// Admitted transfers to another shard.
    pub cross_shard: u64,
    /// Of those, the ones whose credit was seen final on the recipient's shard.
    pub settled: u64,
    /// Cross-shard settlement latency (submission to credit final), p50, ms.
    pub settlement_ms_p50: f64,
    /// p99.
    pub settlement_ms_p99: f64,
    /// From the source block seen final to the credit seen final, p50, ms.
    pub settlement_after_final_ms_p50: f64,
    /// p99.
    pub settlement_after_final_ms_p99: f64,
    /// Beacon blocks made between the source block seen final and the
    /// credit seen final (read from `atoll_status` at each poll), p50.
    pub settlement_beacon_blocks_p50: f64,
    /// p99.
    pub settlement_beacon_blocks_p99: f64,
    /// Errors by kind (error code names, or `transport`).
    pub errors: BTreeMap<String, u64>,
    /// Contract workloads: the outcomes in their blocks of up to
    /// [`OUTCOME_SAMPLE`] finalized transactions spread over the run, by
    /// status (`success`, `revert`, `out_of_gas`, …): a final transaction
    /// may still have failed in its block.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub sampled_outcomes: BTreeMap<String, u64>,
}

/// How many finalized contract transactions the report looks up.
const OUTCOME_SAMPLE: usize = 200;

/// Which RPC endpoint each shard's requests go to. With shard committees
/// a validator answers only for the shards it tracks (1021 otherwise):
/// the generator then moves that shard to the next endpoint.
struct Routes {
    clients: Vec<HttpClient>,
    by_shard: Vec<AtomicUsize>,
    /// Every endpoint tracks every shard: batches take turns among them.
    everywhere: bool,
}

impl Routes {
    /// Routes for `shards` shards, each to the first endpoint that tracks
    /// it (by `atoll_status`), else the first.
    async fn new(clients: Vec<HttpClient>, shards: usize) -> Routes {
        let mut by_shard: Vec<AtomicUsize> = (0..shards).map(|_| AtomicUsize::new(0)).collect();
        let mut everywhere = true;
        for (i, client) in clients.iter().enumerate().rev() {
            if let Ok(status) = client.status().await {
                everywhere &= status.shards.iter().all(|s| s.tracked);
                for shard in status.shards.iter().filter(|s| s.tracked) {
                    if let Some(route) = by_shard.get_mut(usize::from(shard.shard)) {
                        *route.get_mut() = i;
                    }
                }
            }
        }
        Routes {
            clients,
            by_shard,
            everywhere,
        }
    }

    fn client(&self, shard: usize) -> &HttpClient {
        &self.clients[self.by_shard[shard].load(Ordering::Relaxed) % self.clients.len()]
    }

    /// `shard`'s endpoint answered 1021: try the next one.
    fn moved(&self, shard: usize) {
        self.by_shard[shard].fetch_add(1, Ordering::Relaxed);
    }
}

/// Send times and finality times of the generated transactions.
struct Tracker {
    index: HashMap<Hash, usize>,
    sent: Vec<Option<Instant>>,
    finalized: Vec<Option<Instant>>,
    cross: Vec<bool>,
    settled: Vec<Option<Instant>>,
    /// The beacon height when each was seen final, and when credited.
    final_beacon: Vec<u64>,
    settled_beacon: Vec<u64>,
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
    let keys: Vec<KeyPair> = (0..args.accounts as u64)
        .into_par_iter()
        .map(|i| dev_key(DEV_SEED, i))
        .collect();
    if args.workload != LoadWorkload::Transfers && (shard_count > 1 || args.cross_shard_ratio > 0.0)
    {
        bail!("--workload erc20|amm needs a one-shard chain and no --cross-shard-ratio (cross-shard contract calls do not exist yet)");
    }
    let client = routes.client(0);
    let targets = match args.workload {
        LoadWorkload::Transfers => None,
        LoadWorkload::Erc20 => {
            Some(load_defi::set_up_erc20(client, chain_id, &keys, progress_out).await?)
        }
        LoadWorkload::Amm => {
            let pools = args.pools as usize;
            Some(load_defi::set_up_amm(client, chain_id, &keys, pools, progress_out).await?)
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
    let (hexes, (hashes, cross)) = sign_all(&plan, &keys, &nonces, total);
    let tracker = Arc::new(Mutex::new(Tracker {
        index: hashes.iter().enumerate().map(|(i, h)| (*h, i)).collect(),
        sent: vec![None; total],
        finalized: vec![None; total],
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
    let hexes = Arc::new(hexes);
    while next < total {
        let due = ((started.elapsed().as_secs_f64() * args.tps as f64) as usize).min(total);
        while next < due {
            let end = (next + args.batch).min(due);
            let permit = Arc::clone(&in_flight).acquire_owned().await?;
            let (routes, shard_of_tx) = (Arc::clone(&routes), Arc::clone(&shard_of_tx));
            let spread = turn;
            turn += 1;
            let (batch_hexes, batch_tracker, batch_errors, batch_admitted) = (
                Arc::clone(&hexes),
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
                    &batch_hexes,
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

    let mut report = report(&args, &tracker.lock(), started, send_time, &errors.lock());
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

/// The outcomes of up to [`OUTCOME_SAMPLE`] of `finalized`, evenly spread,
/// by status (`unknown`: the lookup failed).
async fn sample_outcomes(client: &HttpClient, finalized: &[Hash]) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    let step = finalized.len().div_ceil(OUTCOME_SAMPLE).max(1);
    for hash in finalized.iter().step_by(step) {
        let status = client.get_transaction_status(format!("0x{hash}")).await;
        let kind = match status.ok().and_then(|s| s.outcome) {
            Some(outcome) => match (outcome.contract, outcome.failure) {
                (Some(contract), _) => contract.status,
                (None, Some(failure)) => failure,
                (None, None) => "success".into(),
            },
            None => "unknown".into(),
        };
        *counts.entry(kind).or_default() += 1;
    }
    counts
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

/// The next nonce of every key, asked in batches.
async fn account_nonces(
    routes: &Routes,
    layout: &ShardLayout,
    keys: &[KeyPair],
) -> anyhow::Result<Vec<u64>> {
    let mut nonces = Vec::with_capacity(keys.len());
    for (chunk_index, chunk) in keys.chunks(1000).enumerate() {
        let mut answers = Vec::with_capacity(chunk.len());
        for key in chunk {
            let shard = usize::from(layout.shard_of(&key.address()).0);
            let mut tries = 0;
            let account = loop {
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
                        routes.moved(shard);
                    }
                    other => break other,
                }
            };
            answers.push(account);
        }
        for (i, answer) in answers.into_iter().enumerate() {
            let account = answer.map_err(|e| anyhow::anyhow!("getAccount: {e}"))?;
            if account.balance == "0" {
                bail!(
                    "dev account {} ({}) has no funds; initialise the node with --dev-accounts {} or more",
                    chunk_index * 1000 + i,
                    account.address,
                    keys.len()
                );
            }
            nonces.push(account.nonce);
        }
    }
    Ok(nonces)
}

/// What the generated transfers look like.
struct Plan {
    chain_id: ChainId,
    layout: ShardLayout,
    cross_shard_ratio: f64,
    /// `Some`: contract calls (ERC-20 transfers, swaps) instead of native
    /// transfers.
    targets: Option<load_defi::Targets>,
}

/// Signs `total` transfers: sender `k % accounts` with consecutive nonces;
/// the recipient another account, on another shard with probability
/// `cross_shard_ratio` (when there is one); amount 1, fee 1. Returns the
/// hex encodings, and the hashes with whether each crosses shards.
fn sign_all(
    plan: &Plan,
    keys: &[KeyPair],
    nonces: &[u64],
    total: usize,
) -> (Vec<String>, (Vec<Hash>, Vec<bool>)) {
    let accounts = keys.len();
    let shard_of: Vec<_> = keys
        .iter()
        .map(|k| plan.layout.shard_of(&k.address()))
        .collect();
    // Per shard: its accounts, and everyone else's.
    let mut home: BTreeMap<_, Vec<usize>> = BTreeMap::new();
    for (i, shard) in shard_of.iter().enumerate() {
        home.entry(*shard).or_default().push(i);
    }
    let away: BTreeMap<_, Vec<usize>> = home
        .keys()
        .map(|&shard| {
            let others = (0..accounts).filter(|&i| shard_of[i] != shard).collect();
            (shard, others)
        })
        .collect();
    (0..total)
        .into_par_iter()
        .map(|k| {
            let sender = k % accounts;
            let mut rng = StdRng::seed_from_u64(k as u64);
            let shard = shard_of[sender];
            let cross = !away[&shard].is_empty() && rng.gen_bool(plan.cross_shard_ratio);
            let to = if cross || home[&shard].len() < 2 {
                let pool = if away[&shard].is_empty() {
                    &home[&shard]
                } else {
                    &away[&shard]
                };
                pool[rng.gen_range(0..pool.len())]
            } else {
                let pool = &home[&shard];
                loop {
                    let pick = pool[rng.gen_range(0..pool.len())];
                    if pick != sender {
                        break pick;
                    }
                }
            };
            let body = Transaction {
                chain_id: plan.chain_id,
                sender: keys[sender].public(),
                nonce: nonces[sender] + (k / accounts) as u64,
                fee: 1,
                action: match &plan.targets {
                    None => Action::Transfer {
                        to: keys[to].address(),
                        amount: 1,
                    },
                    Some(targets) => targets.action(sender, keys[to].address(), &mut rng),
                },
            };
            let signed = body.sign(&keys[sender]);
            (
                hex::encode(signed.encode()),
                (signed.hash(), shard_of[to] != shard_of[sender]),
            )
        })
        .unzip()
}

/// Sends the transactions of `range`, each shard's to its endpoint (with
/// one endpoint per shard, batches take turns by `spread`), and moves a
/// shard to the next endpoint when its endpoint does not track it.
async fn send_batch(
    routes: &Routes,
    (shard_of_tx, spread): (&[u16], usize),
    hexes: &[String],
    range: std::ops::Range<usize>,
    tracker: &Mutex<Tracker>,
    errors: &Mutex<BTreeMap<String, u64>>,
    admitted: &AtomicU64,
) {
    let mut by_shard: BTreeMap<u16, Vec<usize>> = BTreeMap::new();
    for i in range {
        by_shard.entry(shard_of_tx[i]).or_default().push(i);
    }
    for (shard, mut indices) in by_shard {
        let shard = usize::from(shard);
        for _ in 0..=routes.clients.len() {
            let client = if routes.everywhere {
                &routes.clients[spread % routes.clients.len()]
            } else {
                routes.client(shard)
            };
            indices = send_to(client, hexes, &indices, tracker, errors, admitted).await;
            if indices.is_empty() {
                break;
            }
            routes.moved(shard);
        }
        if !indices.is_empty() {
            *errors.lock().entry("shard_not_tracked".into()).or_default() += indices.len() as u64;
        }
    }
}

/// Sends `indices`; returns those refused with 1021 (not tracked there).
async fn send_to(
    client: &HttpClient,
    hexes: &[String],
    indices: &[usize],
    tracker: &Mutex<Tracker>,
    errors: &Mutex<BTreeMap<String, u64>>,
    admitted: &AtomicU64,
) -> Vec<usize> {
    let mut refused = Vec::new();
    let mut batch = BatchRequestBuilder::new();
    for hex in indices.iter().map(|i| &hexes[*i]) {
        if batch
            .insert("atoll_sendTransaction", rpc_params![hex, "none"])
            .is_err()
        {
            *errors.lock().entry("encoding".into()).or_default() += 1;
        }
    }
    let sent = Instant::now();
    {
        let mut tracker = tracker.lock();
        for i in indices {
            tracker.sent[*i].get_or_insert(sent);
        }
    }
    match client.batch_request::<String>(batch).await {
        Ok(answers) => {
            let mut ok = 0;
            let mut errors = errors.lock();
            let mut tracker = tracker.lock();
            for (&i, answer) in indices.iter().zip(answers) {
                match answer {
                    Ok(_) => ok += 1,
                    Err(e) if e.code() == crate::rpc::error::SHARD_NOT_TRACKED => refused.push(i),
                    Err(e) => {
                        tracker.sent[i] = None;
                        *errors.entry(code_name(e.code()).into()).or_default() += 1;
                    }
                }
            }
            admitted.fetch_add(ok, Ordering::Relaxed);
        }
        Err(e) => {
            tracing::warn!(%e, "a batch failed");
            let mut tracker = tracker.lock();
            for i in indices {
                tracker.sent[*i] = None;
            }
            *errors.lock().entry("transport".into()).or_default() += indices.len() as u64;
        }
    }
    refused
}

/// Follows every shard's final blocks from `from[shard] + 1` and records
/// when each generated transaction is first seen final, and when each
/// cross-shard one is first seen credited in a final block of its
/// recipient's shard.
async fn watch_finality(
    routes: Arc<Routes>,
    mut from: Vec<u64>,
    tracker: Arc<Mutex<Tracker>>,
    final_count: Arc<AtomicU64>,
    settled_count: Arc<AtomicU64>,
) {
    loop {
        tokio::time::sleep(POLL).await;
        for index in 0..from.len() {
            let client = routes.client(index);
            let Ok(status) = client.status().await else {
                continue;
            };
            let (Some(shard), Some(next)) = (status.shards.get(index), from.get_mut(index)) else {
                continue;
            };
            if !shard.tracked {
                routes.moved(index);
                continue;
            }
            while *next < shard.final_height {
                let Ok(block) = client
                    .get_block(shard.shard, BlockRef::Height(*next + 1))
                    .await
                else {
                    break;
                };
                let seen = Instant::now();
                let mut tracker = tracker.lock();
                let (mut finals, mut settled) = (0, 0);
                for hash in &block.transactions {
                    let Ok(hash) = parse_hash(hash) else { continue };
                    if let Some(&i) = tracker.index.get(&hash) {
                        if tracker.finalized[i].is_none() {
                            tracker.finalized[i] = Some(seen);
                            tracker.final_beacon[i] = status.beacon.height;
                            finals += 1;
                        }
                    }
                }
                for incoming in &block.incoming {
                    let Ok(hash) = parse_hash(&incoming.origin) else {
                        continue;
                    };
                    if let Some(&i) = tracker.index.get(&hash) {
                        if tracker.settled[i].is_none() {
                            tracker.settled[i] = Some(seen);
                            tracker.settled_beacon[i] = status.beacon.height;
                            settled += 1;
                        }
                    }
                }
                final_count.fetch_add(finals, Ordering::Relaxed);
                settled_count.fetch_add(settled, Ordering::Relaxed);
                *next += 1;
            }
        }
    }
}

fn report(
    args: &LoadArgs,
    tracker: &Tracker,
    started: Instant,
    send_time: Duration,
    errors: &BTreeMap<String, u64>,
) -> Report {
    let mut latencies = Vec::new();
    let mut settlements = Vec::new();
    let mut after_final = Vec::new();
    let mut beacon_blocks = Vec::new();
    let (mut submitted, mut cross_shard) = (0u64, 0u64);
    let mut last_final = started;
    for (i, sent) in tracker.sent.iter().enumerate() {
        let Some(sent) = sent else { continue };
        submitted += 1;
        if let Some(finalized) = tracker.finalized[i] {
            latencies.push(finalized.saturating_duration_since(*sent).as_secs_f64() * 1e3);
            last_final = last_final.max(finalized);
        }
        if tracker.cross[i] {
            cross_shard += 1;
            if let Some(settled) = tracker.settled[i] {
                settlements.push(settled.saturating_duration_since(*sent).as_secs_f64() * 1e3);
                if let Some(finalized) = tracker.finalized[i] {
                    after_final
                        .push(settled.saturating_duration_since(finalized).as_secs_f64() * 1e3);
                    beacon_blocks.push(
                        tracker.settled_beacon[i].saturating_sub(tracker.final_beacon[i]) as f64,
                    );
                }
            }
        }
    }
    latencies.sort_by(f64::total_cmp);
    settlements.sort_by(f64::total_cmp);
    after_final.sort_by(f64::total_cmp);
    beacon_blocks.sort_by(f64::total_cmp);
    let finalized = latencies.len() as u64;
    let span = last_final.duration_since(started).as_secs_f64();
    Report {
        submitted,
        finalized,
        target_tps: args.tps,
        submitted_tps: submitted as f64 / send_time.as_secs_f64(),
        finalized_tps: if span > 0.0 {
            finalized as f64 / span
        } else {
            0.0
        },
        latency_ms_p50: percentile(&latencies, 0.50),
        latency_ms_p90: percentile(&latencies, 0.90),
        latency_ms_p99: percentile(&latencies, 0.99),
        cross_shard,
        settled: settlements.len() as u64,
        settlement_ms_p50: percentile(&settlements, 0.50),
        settlement_ms_p99: percentile(&settlements, 0.99),
        settlement_after_final_ms_p50: percentile(&after_final, 0.50),
        settlement_after_final_ms_p99: percentile(&after_final, 0.99),
        settlement_beacon_blocks_p50: percentile(&beacon_blocks, 0.50),
        settlement_beacon_blocks_p99: percentile(&beacon_blocks, 0.99),
        errors: errors.clone(),
        sampled_outcomes: BTreeMap::new(),
    }
}

/// The `q` quantile of sorted `values` (nearest rank), 0 when empty.
fn percentile(values: &[f64], q: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let rank = ((q * values.len() as f64).ceil() as usize).clamp(1, values.len());
    values[rank - 1]
}

fn print_report(report: &Report, send_time: Duration) {
    println!(
        "submitted   {} in {:.1}s ({:.0} TPS, target {})",
        report.submitted,
        send_time.as_secs_f64(),
        report.submitted_tps,
        report.target_tps
    );
    println!(
        "finalized   {} ({:.0} TPS)",
        report.finalized, report.finalized_tps
    );
    println!(
        "latency     p50 {:.0} ms  p90 {:.0} ms  p99 {:.0} ms (submission to final)",
        report.latency_ms_p50, report.latency_ms_p90, report.latency_ms_p99
    );
    if report.cross_shard > 0 {
        println!(
            "cross-shard {} settled of {} (credit final on the recipient's shard): p50 {:.0} ms  p99 {:.0} ms",
            report.settled, report.cross_shard, report.settlement_ms_p50, report.settlement_ms_p99
        );
        println!(
            "            after the source block was final: p50 {:.0} ms ({:.0} beacon blocks)  p99 {:.0} ms ({:.0} beacon blocks)",
            report.settlement_after_final_ms_p50,
            report.settlement_beacon_blocks_p50,
            report.settlement_after_final_ms_p99,
            report.settlement_beacon_blocks_p99
        );
    }
    if !report.sampled_outcomes.is_empty() {
        let counts: Vec<String> = report
            .sampled_outcomes
            .iter()
            .map(|(kind, n)| format!("{kind} {n}"))
            .collect();
        println!(
            "outcomes    {} (a sample of the final transactions)",
            counts.join(", ")
        );
    }
    if report.errors.is_empty() {
        println!("errors      none");
    } else {
        let list: Vec<String> = report
            .errors
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        println!("errors      {}", list.join(", "));
    }
}

#[cfg(test)]
mod tests {
    use super::percentile;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&values, 0.5), 50.0);
        assert_eq!(percentile(&values, 0.99), 99.0);
        assert_eq!(percentile(&[7.0], 0.99), 7.0);
        assert_eq!(percentile(&[], 0.5), 0.0);
    }
}
