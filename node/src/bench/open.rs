//! `atoll bench open`: what opening a shard costs with many contract
//! storage slots. A shard rebuilds its state tree from the state column at
//! open and checks the root against its head; this measures that.

use anyhow::Context;
use atoll_primitives::{Account, Address, ChainId, StateKey, StateValue};
use clap::Args;
use std::num::NonZeroUsize;
use std::time::Instant;

/// Options of `atoll bench open`.
#[derive(Args)]
pub struct OpenArgs {
    /// Storage slots in the genesis state (over 100 contracts).
    #[arg(long, default_value_t = 1_000_000)]
    slots: u64,
    /// Worker threads [default: the number of CPU cores].
    #[arg(long)]
    threads: Option<NonZeroUsize>,
}

/// Contracts the slots are spread over.
const CONTRACTS: u64 = 100;

pub fn run(args: &OpenArgs) -> anyhow::Result<()> {
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().unwrap_or(NonZeroUsize::MIN));
    let dir = tempfile::tempdir().context("creating a temporary directory for the bench store")?;
    eprintln!("generating {} slots…", args.slots);
    let contract = |i: u64| {
        let mut address = [0xc0; 20];
        address[12..].copy_from_slice(&i.to_be_bytes());
        Address(address)
    };
    let mut genesis: Vec<(StateKey, StateValue)> = (0..CONTRACTS)
        .map(|i| {
            let account = Account {
                balance: 0,
                nonce: 1,
            };
            (StateKey::Account(contract(i)), StateValue::Account(account))
        })
        .collect();
    for n in 0..args.slots {
        let mut slot = [0u8; 32];
        slot[24..].copy_from_slice(&n.to_be_bytes());
        let mut word = [0u8; 32];
        word[16..24].copy_from_slice(&(n + 1).to_be_bytes());
        genesis.push((
            StateKey::Slot(contract(n % CONTRACTS), slot),
            StateValue::Slot(word),
        ));
    }
    let started = Instant::now();
    let chain = super::bench_store::bench_shard(dir.path(), ChainId(1), &genesis, threads)?;
    let created = started.elapsed();
    let root = chain.head().state_root;
    drop(chain);
    drop(genesis);
    let started = Instant::now();
    let chain = super::bench_store::bench_shard(dir.path(), ChainId(1), &[], threads)?;
    let reopened = started.elapsed();
    anyhow::ensure!(chain.head().state_root == root, "the reopened root differs");
    let entries = u64::try_from(chain.store().state_entries().count())?;
    println!(
        "{entries} state entries ({} slots over {CONTRACTS} contracts), {} threads",
        args.slots, threads
    );
    println!(
        "  create (tree from genesis, commit)  {:>8.2} s",
        created.as_secs_f64()
    );
    println!(
        "  reopen (read state, rebuild tree, check root)  {:>8.2} s  ({:.2} µs per entry)",
        reopened.as_secs_f64(),
        reopened.as_secs_f64() * 1e6 / entries as f64
    );
    Ok(())
}
