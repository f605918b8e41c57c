//! The lone validator's pipeline: each shard's block producer, and the
//! coordinator that makes their blocks final in beacon blocks.

pub mod coordinator;
pub mod producer;

use crate::service::common::handoff::Committed;
use crate::service::common::pipeline::Pipeline;
use atoll_config::BlockConfig;
use std::sync::Arc;
use std::thread::JoinHandle;

/// The lone validator's threads, started.
pub struct Solo {
    /// Each shard's block producer.
    pub producers: Vec<JoinHandle<()>>,
    /// The coordinator.
    pub coordinator: JoinHandle<()>,
}

/// Starts a producer for every shard of `pipeline` and the coordinator,
/// which makes the blocks the producers send on `committed` final.
pub fn start(
    pipeline: Pipeline,
    committed: std::sync::mpsc::Receiver<Committed>,
    block: &BlockConfig,
) -> anyhow::Result<Solo> {
    let Pipeline {
        shards,
        chains,
        keeper,
        relay,
        new_heads,
        stopping,
    } = pipeline;
    let mut producers = Vec::new();
    for (shared, chain) in shards.iter().zip(chains) {
        let shared = Arc::clone(shared);
        let block = block.clone();
        producers.push(
            std::thread::Builder::new()
                .name(format!("producer-{}", shared.shard))
                .spawn(move || producer::run(&shared, chain, &block))?,
        );
    }
    let coordinator = std::thread::Builder::new()
        .name("coordinator".into())
        .spawn(move || {
            coordinator::run(&shards, &keeper, &relay, committed, &new_heads, &stopping)
        })?;
    Ok(Solo {
        producers,
        coordinator,
    })
}
