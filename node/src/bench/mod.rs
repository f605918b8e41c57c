//! `atoll bench …`: benchmarks that print figures (and ratios measured in the
//! same run), never pass/fail verdicts.

mod bench_store;
mod execute;
mod host;
mod open;
mod sharded;

use clap::Subcommand;

/// The benchmarks.
#[derive(Subcommand)]
pub enum BenchCommand {
    /// Signature checks, sequential vs parallel execution, state-root update
    /// and the whole pipeline, on one pre-signed block of transfers.
    Execute(execute::ExecuteArgs),
    /// What opening a shard with many contract storage slots costs (the
    /// state tree is rebuilt from the stored state at open).
    Open(open::OpenArgs),
}

/// Runs a benchmark.
pub fn run(command: BenchCommand) -> anyhow::Result<()> {
    match command {
        BenchCommand::Execute(args) => match args.shards {
            Some(_) if args.workload != execute::Workload::Transfers => anyhow::bail!(
                "--shards measures native transfers only; leave out --workload or --shards"
            ),
            Some(shards) => sharded::run(&args, shards),
            None => execute::run(&args),
        },
        BenchCommand::Open(args) => open::run(&args),
    }
}
