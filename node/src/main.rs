//! `atoll`: the validator daemon and its command-line tools.
//!
//! Today it offers `atoll bench execute`, which measures the block pipeline
//! (signature checks, sequential and Block-STM execution, state-root update)
//! on one generated block. The node itself comes with the next issues.

mod bench;

use clap::{Parser, Subcommand};

/// mimalloc keeps freed memory for reuse instead of returning it to the OS at
/// once: a block allocates megabytes of short-lived buffers from several
/// threads, and with glibc's allocator each block paid for page faults that
/// serialise on the process's memory map.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// atoll: a sharded blockchain validator with a parallel (Block-STM) executor.
#[derive(Parser)]
#[command(name = "atoll", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Measure parts of the node on generated workloads.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Bench(command) => bench::run(command),
    }
}
