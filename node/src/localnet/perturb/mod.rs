//! `atoll localnet perturb`: a load on a localnet while a seeded schedule
//! kills, pauses and disconnects validators and brings them back, then
//! checks what must hold and prints a report (in the style of Aptos
//! Forge and CometBFT's e2e runner).
//!
//! ```text
//!  load (atoll load, through validator 0, never perturbed) ────────────▶
//!  faults (schedule): kill v2 ▇▇▇ restart · pause v1 ▇▇ resume · cut v3 ▇▇▇▇ rejoin …
//!  sampler: every validator's final height, every 250 ms
//!  then: every admitted transaction final and every cross-shard one
//!        settled; all validators hold the same block at every final
//!        height of every shard; genesis supply = balances + burnt;
//!        longest stall ≤ --max-stall; each catch-up ≤ --max-catch-up
//! ```
//!
//! At most `(n - 1) / 3` validators (of equal stake) are perturbed at once,
//! so more than two thirds of the stake stays up and finality must go on.
//! On loopback, disconnecting uses the validator's own block list: it cuts
//! both directions. A localnet in network namespaces (`localnet init
//! --netns`, `scripts/netns.sh`) is cut on the bridge instead, both ways
//! or one way, with the loss (and, where the kernel has netem, the delay)
//! its links were given (see docs/operations.md).

pub mod observe;
pub mod schedule;

use super::control::{self, signal, Member};
use super::netns::Way;
use super::DirArg;
use crate::client::connect;
use crate::rpc::api::AtollApiClient;
use crate::rpc::types::BlockRef;
use anyhow::{bail, Context};
use atoll_config::genesis::Genesis;
use clap::Args;
use observe::Sample;
use parking_lot::Mutex;
use schedule::{Event, Fault};
use serde::Serialize;
use serde_json::Value;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::runtime::Runtime;

/// How often the sampler asks every validator for its final height.
const SAMPLE_EVERY: Duration = Duration::from_millis(250);
/// How long the supply may take to add up once the load ended (receipts
/// still in flight).
const SUPPLY_WAIT: Duration = Duration::from_secs(30);

/// `atoll localnet perturb`.
#[derive(Args)]
pub struct PerturbArgs {
    /// The localnet (its validators are started if they are not running,
    /// and left running, restored, at the end).
    #[command(flatten)]
    dir: DirArg,
    /// Seconds of load; the faults fit inside it.
    #[arg(long, default_value_t = 120)]
    duration: u64,
    /// Names the schedule of faults: the same seed gives the same faults.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Transactions per second of the load.
    #[arg(long, default_value_t = 300)]
    tps: u64,
    /// Dev accounts the load sends from and to.
    #[arg(long, default_value_t = 100)]
    accounts: usize,
    /// Share of transfers to another shard.
    #[arg(long, default_value_t = 0.2)]
    cross_shard_ratio: f64,
    /// Fail if, during the load, no validator's final height rose for
    /// longer than this many seconds (a quorum is always up). Heights led
    /// by a stopped validator time out, each twice as long as the one
    /// before from the second on: with the default 2 s timeout, four in a
    /// row cost 2 + 4 + 8 + 16 s.
    #[arg(long, default_value_t = 30)]
    max_stall: u64,
    /// Fail if a restored validator takes longer than this many seconds to
    /// reach the final height the others had when it came back.
    #[arg(long, default_value_t = 30)]
    max_catch_up: u64,
    /// Print one JSON object instead of the report.
    #[arg(long)]
    json: bool,
}

/// One fault as it happened.
#[derive(Debug, Serialize)]
struct Done {
    validator: usize,
    fault: Fault,
    /// Seconds from the load's start.
    at_s: f64,
    /// Seconds it lasted (to the validator serving again).
    lasted_s: f64,
    /// Seconds to reach the others' final height after it; `None`: never.
    catch_up_s: Option<f64>,
}

/// What the run measured and whether each criterion held.
#[derive(Debug, Serialize)]
struct Report {
    seed: u64,
    validators: usize,
    /// `loopback`, or `namespaces` (`localnet init --netns`).
    network: &'static str,
    duration_s: u64,
    load: Value,
    faults: Vec<Done>,
    restarts: usize,
    longest_stall_s: f64,
    heights_compared: u64,
    supply: String,
    accounted: String,
    failures: Vec<String>,
}

/// Runs the load, the faults and the checks; an error names every failed
/// criterion (after the report is printed).
pub fn run(args: PerturbArgs) -> anyhow::Result<()> {
    let members = control::members(&args.dir.dir)?;
    let n = members.len();
    if n < 4 {
        bail!(
            "{} has {n} validators: perturbing one while more than two thirds of the stake \
             stays up needs at least 4",
            args.dir.dir.display()
        );
    }
    if args.duration < 30 {
        bail!("--duration must be at least 30 s: faults start at 5 s and end 10 s before the load");
    }
    let runtime = Arc::new(crate::run::runtime()?);
    control::start_members(&runtime, &members)?;
    let genesis = Genesis::load(&members[0].home.genesis())
        .with_context(|| format!("{}", members[0].home.genesis().display()))?;
    let peers = runtime.block_on(peer_ids(&members))?;
    let netns = members[0].netns.clone();
    let events = schedule::schedule(
        args.seed,
        n,
        Duration::from_secs(args.duration),
        netns.is_some(),
    );
    if !args.json {
        eprintln!(
            "perturb: {n} validators, {} s of load at {} tx/s, {} faults from seed {}",
            args.duration,
            args.tps,
            events.len(),
            args.seed
        );
    }

    let started = Instant::now();
    let samples = Arc::new(Mutex::new(Vec::<Sample>::new()));
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let (runtime, samples, sampling) = (runtime.clone(), samples.clone(), sampling.clone());
        let rpcs: Vec<String> = members.iter().map(|m| m.rpc.clone()).collect();
        std::thread::spawn(move || {
            while sampling.load(Ordering::Acquire) {
                let heights = runtime.block_on(final_heights(&rpcs));
                samples.lock().push(Sample {
                    at: started.elapsed(),
                    heights,
                });
                std::thread::sleep(SAMPLE_EVERY);
            }
        })
    };
    let load = Command::new(std::env::current_exe().context("cannot find the atoll binary")?)
        .args(["load", "--rpc", &members[0].rpc, "--json"])
        .args(["--accounts", &args.accounts.to_string()])
        .args(["--tps", &args.tps.to_string()])
        .args(["--duration", &args.duration.to_string()])
        .args(["--cross-shard-ratio", &args.cross_shard_ratio.to_string()])
        .args(["--settle", "60"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("cannot start the load")?;

    let done = perturb(&runtime, &members, &peers, &events, started, args.json);
    let output = load.wait_with_output().context("the load")?;
    let load_end = started.elapsed();
    // Every validator restored: let the last ones catch up under no load.
    let settle = Instant::now() + Duration::from_secs(args.max_catch_up);
    while Instant::now() < settle && !level(&samples.lock()) {
        std::thread::sleep(SAMPLE_EVERY);
    }
    sampling.store(false, Ordering::Release);
    let _ = sampler.join();
    let done = done?;

    let mut failures = Vec::new();
    let load_report: Value = match serde_json::from_slice(&output.stdout) {
        Ok(report) => report,
        Err(e) => {
            failures.push(format!(
                "the load printed no report ({e}): {}",
                String::from_utf8_lossy(&output.stderr).trim()
            ));
            Value::Null
        }
    };
    check_load(&load_report, &mut failures);
    let samples = samples.lock().clone();
    let longest_stall = observe::longest_stall(&samples, Duration::ZERO, load_end);
    if longest_stall > Duration::from_secs(args.max_stall) {
        failures.push(format!(
            "finality stalled for {:.1} s, more than --max-stall {} s",
            longest_stall.as_secs_f64(),
            args.max_stall
        ));
    }
    let faults: Vec<Done> = done
        .iter()
        .map(|(event, at, restored)| {
            let catch_up = observe::catch_up(&samples, event.validator, *restored);
            match catch_up {
                Some(t) if t <= Duration::from_secs(args.max_catch_up) => {}
                _ => failures.push(format!(
                    "validator {} did not catch up within {} s after its {:?} at {:.1} s",
                    event.validator,
                    args.max_catch_up,
                    event.fault,
                    at.as_secs_f64()
                )),
            }
            Done {
                validator: event.validator,
                fault: event.fault,
                at_s: at.as_secs_f64(),
                lasted_s: (*restored - *at).as_secs_f64(),
                catch_up_s: catch_up.map(|t| t.as_secs_f64()),
            }
        })
        .collect();
    let heights_compared = runtime.block_on(agreement(&members, &mut failures))?;
    let (supply, accounted) = runtime.block_on(conservation(&members[0], &genesis))?;
    if supply != accounted {
        failures.push(format!(
            "the genesis supply is {supply}, but balances plus burnt fees are {accounted}"
        ));
    }
    let report = Report {
        seed: args.seed,
        validators: n,
        network: if netns.is_some() {
            "namespaces"
        } else {
            "loopback"
        },
        duration_s: args.duration,
        load: load_report,
        restarts: done.iter().filter(|(e, ..)| e.fault == Fault::Kill).count(),
        faults,
        longest_stall_s: longest_stall.as_secs_f64(),
        heights_compared,
        supply: supply.to_string(),
        accounted: accounted.to_string(),
        failures,
    };
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print_report(&report, &args);
    }
    if !report.failures.is_empty() {
        bail!(
            "{} criteria failed: {}",
            report.failures.len(),
            report.failures.join("; ")
        );
    }
    Ok(())
}

/// Applies `events` on time; returns each with when it started and when
/// its validator served again (both since `started`).
fn perturb(
    runtime: &Runtime,
    members: &[Member],
    peers: &[String],
    events: &[Event],
    started: Instant,
    quiet: bool,
) -> anyhow::Result<Vec<(Event, Duration, Duration)>> {
    // Each event's start and restore, in time order.
    let mut steps: Vec<(Duration, usize, bool)> = Vec::new();
    for (i, event) in events.iter().enumerate() {
        steps.push((event.at, i, true));
        steps.push((event.end(), i, false));
    }
    steps.sort();
    let mut began = vec![Duration::ZERO; events.len()];
    let mut done = Vec::new();
    for (when, i, begin) in steps {
        std::thread::sleep(when.saturating_sub(started.elapsed()));
        let event = events[i];
        let member = &members[event.validator];
        let pid = || {
            member.running().with_context(|| {
                format!(
                    "validator {} is not running (see {})",
                    event.validator,
                    member.log().display()
                )
            })
        };
        if begin {
            began[i] = started.elapsed();
            if !quiet {
                eprintln!(
                    "perturb: {:>6.1} s  {:?} validator {} for {:.1} s",
                    began[i].as_secs_f64(),
                    event.fault,
                    event.validator,
                    event.lasting.as_secs_f64()
                );
            }
            match (event.fault, &member.netns) {
                (Fault::Kill, _) => signal(pid()?, "KILL")?,
                (Fault::Pause, _) => signal(pid()?, "STOP")?,
                (Fault::Disconnect, Some(netns)) => netns.cut(event.validator, Way::Both)?,
                (Fault::CutIn, Some(netns)) => netns.cut(event.validator, Way::In)?,
                (Fault::CutOut, Some(netns)) => netns.cut(event.validator, Way::Out)?,
                (Fault::Disconnect, None) => {
                    let others: Vec<String> = (0..members.len())
                        .filter(|v| *v != event.validator)
                        .map(|v| peers[v].clone())
                        .collect();
                    runtime.block_on(block(member, others))?;
                }
                (Fault::CutIn | Fault::CutOut, None) => {
                    bail!("a one-way cut needs network namespaces (localnet init --netns)")
                }
            }
            continue;
        }
        match (event.fault, &member.netns) {
            (Fault::Kill, _) => {
                let deadline = Instant::now() + Duration::from_secs(10);
                while member.running().is_some() && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(20));
                }
                control::start_members(runtime, std::slice::from_ref(member))?;
            }
            (Fault::Pause, _) => signal(pid()?, "CONT")?,
            (Fault::Disconnect | Fault::CutIn | Fault::CutOut, Some(netns)) => {
                netns.heal(event.validator)?
            }
            (Fault::Disconnect | Fault::CutIn | Fault::CutOut, None) => {
                runtime.block_on(block(member, Vec::new()))?
            }
        }
        let restored = started.elapsed();
        if !quiet {
            eprintln!(
                "perturb: {:>6.1} s  validator {} back",
                restored.as_secs_f64(),
                event.validator
            );
        }
        done.push((event, began[i], restored));
    }
    Ok(done)
}

/// Every validator's libp2p peer id.
async fn peer_ids(members: &[Member]) -> anyhow::Result<Vec<String>> {
    let mut ids = Vec::new();
    for member in members {
        let status = control::status(&member.rpc).await?;
        let consensus = status.consensus.with_context(|| {
            format!(
                "validator {} runs without consensus (a lone validator?)",
                member.index
            )
        })?;
        ids.push(consensus.peer_id);
    }
    Ok(ids)
}

/// Sets `member`'s blocked peers.
async fn block(member: &Member, peers: Vec<String>) -> anyhow::Result<()> {
    let client = connect(&member.rpc)?;
    tokio::time::timeout(Duration::from_secs(5), client.set_blocked_peers(peers))
        .await
        .with_context(|| format!("validator {} did not answer within 5 s", member.index))?
        .map_err(crate::client::call_error)
        .with_context(|| format!("setting validator {}'s blocked peers", member.index))?;
    Ok(())
}

/// Each validator's final consensus height, `None` for one that does not
/// answer within a second.
async fn final_heights(rpcs: &[String]) -> Vec<Option<u64>> {
    let asks = rpcs.iter().map(|rpc| async move {
        let client = connect(rpc).ok()?;
        let status = tokio::time::timeout(Duration::from_secs(1), client.status())
            .await
            .ok()?
            .ok()?;
        Some(status.consensus?.final_height)
    });
    futures::future::join_all(asks).await
}

/// Whether the newest sample has every validator at the same final height.
fn level(samples: &[Sample]) -> bool {
    samples.last().is_some_and(|s| {
        let first = s.heights[0];
        first.is_some() && s.heights.iter().all(|h| *h == first)
    })
}

/// The load must have every admitted transaction final and every
/// cross-shard one settled.
fn check_load(report: &Value, failures: &mut Vec<String>) {
    if report.is_null() {
        return;
    }
    let count = |key: &str| report[key].as_u64().unwrap_or(0);
    if count("submitted") == 0 {
        failures.push("the load had no transaction admitted".into());
    }
    if count("finalized") != count("submitted") {
        failures.push(format!(
            "{} transactions admitted, {} seen final",
            count("submitted"),
            count("finalized")
        ));
    }
    if count("settled") != count("cross_shard") {
        failures.push(format!(
            "{} cross-shard transfers, {} settled",
            count("cross_shard"),
            count("settled")
        ));
    }
}

/// Compares every validator's block at every height every validator holds
/// final, shard by shard; returns the heights compared.
async fn agreement(members: &[Member], failures: &mut Vec<String>) -> anyhow::Result<u64> {
    let clients = members
        .iter()
        .map(|m| connect(&m.rpc))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let status = control::status(&members[0].rpc).await?;
    let mut compared = 0;
    for shard in 0..status.shards.len() {
        let mut top = u64::MAX;
        for member in members {
            let status = control::status(&member.rpc).await?;
            top = top.min(status.shards[shard].final_height);
        }
        let shard = u16::try_from(shard)?;
        for height in 1..=top {
            let mut hashes = Vec::new();
            for client in &clients {
                let block = client
                    .get_block(shard, BlockRef::Height(height))
                    .await
                    .map_err(crate::client::call_error)?;
                hashes.push(block.header.hash);
            }
            if hashes.iter().any(|h| *h != hashes[0]) {
                failures.push(format!(
                    "validators disagree on shard {shard}'s final block {height}: {hashes:?}"
                ));
            }
            compared += 1;
        }
    }
    Ok(compared)
}

/// The genesis supply, and the balances of the genesis accounts plus every
/// fee burnt, as `member` reads them, once no receipt is in flight: the two
/// must be equal (conservation; each receipt applied exactly once). Only
/// genesis accounts receive value in the load.
async fn conservation(member: &Member, genesis: &Genesis) -> anyhow::Result<(u128, u128)> {
    let client = connect(&member.rpc)?;
    let supply = genesis.total_supply();
    let deadline = Instant::now() + SUPPLY_WAIT;
    // Fees burnt up to each shard's height summed so far: a retry reads
    // only the blocks made since.
    let mut burnt = 0u128;
    let mut summed_to: Vec<u64> = Vec::new();
    loop {
        let mut accounted = 0u128;
        for (address, _) in &genesis.accounts {
            let account = client
                .get_account(address.to_string(), None)
                .await
                .map_err(crate::client::call_error)?;
            accounted += account.balance.parse::<u128>()?;
        }
        let status = control::status(&member.rpc).await?;
        summed_to.resize(status.shards.len(), 0);
        for (shard, to) in status.shards.iter().zip(&mut summed_to) {
            for height in *to + 1..=shard.head_height {
                let block = client
                    .get_block(shard.shard, BlockRef::Height(height))
                    .await
                    .map_err(crate::client::call_error)?;
                burnt += block.header.burnt_fees.parse::<u128>()?;
            }
            *to = (*to).max(shard.head_height);
        }
        accounted += burnt;
        if accounted == supply || Instant::now() >= deadline {
            return Ok((supply, accounted));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn print_report(report: &Report, args: &PerturbArgs) {
    let load = &report.load;
    let f = |key: &str| load[key].as_f64().unwrap_or(f64::NAN);
    println!("==== perturbation report (seed {}) ====", report.seed);
    println!(
        "validators {} ({})   load {} s at {} tx/s, {:.0}% cross-shard",
        report.validators,
        report.network,
        report.duration_s,
        args.tps,
        args.cross_shard_ratio * 100.0
    );
    println!(
        "submitted {}   final {}   finalized TPS {:.0}   latency p50 {:.0} / p90 {:.0} / p99 {:.0} ms",
        load["submitted"], load["finalized"], f("finalized_tps"),
        f("latency_ms_p50"), f("latency_ms_p90"), f("latency_ms_p99")
    );
    println!(
        "cross-shard {}   settled {}   settlement p50 {:.0} / p99 {:.0} ms   load errors {}",
        load["cross_shard"],
        load["settled"],
        f("settlement_ms_p50"),
        f("settlement_ms_p99"),
        load["errors"]
    );
    println!(
        "longest stall {:.1} s (bound {} s)   restarts {}   blocks compared {}",
        report.longest_stall_s, args.max_stall, report.restarts, report.heights_compared
    );
    println!(
        "supply {}   balances + burnt {}",
        report.supply, report.accounted
    );
    println!(
        "{:>8}  {:<10} {:>9} {:>8} {:>10}",
        "at (s)", "fault", "validator", "lasted", "catch-up"
    );
    for done in &report.faults {
        let catch_up = done
            .catch_up_s
            .map_or("never".to_string(), |t| format!("{t:.1} s"));
        println!(
            "{:>8.1}  {:<10} {:>9} {:>6.1} s {:>10}",
            done.at_s,
            format!("{:?}", done.fault).to_lowercase(),
            done.validator,
            done.lasted_s,
            catch_up
        );
    }
    match report.failures.is_empty() {
        true => println!("PASS: every criterion held"),
        false => {
            for failure in &report.failures {
                println!("FAIL: {failure}");
            }
        }
    }
}
