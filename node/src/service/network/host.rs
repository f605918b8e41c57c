//! The node's side of the consensus engine ([`NodeHost`]): votes and
//! proposals are appended to the vote log (a synced file beside the key,
//! outside the data directory) before they leave, so a restarted
//! validator rebuilds its machine from them and never signs anything that
//! conflicts, even when its data directory was restored from an older
//! copy; final consensus blocks are stored with their certificates, then
//! handed to the replica, which executes them; the stored blocks also
//! serve validators that catch up ([`StoredBlocks`]).

use super::builder::Builder;
use super::engine::{Host, PayloadTask};
use super::sync_serve::Archive;
use crate::service::common::keeper::BeaconKeeper;
use anyhow::Context;
use atoll_consensus::simplex::{
    machine::KEEP_BEHIND, Config, FinalBlock, Record, Simplex, ValidatorSet,
};
use atoll_primitives::{codec, ChainId, Hash, KeyPair};
use atoll_storage::vote_log::MAX_RECORD;
use atoll_storage::{BeaconStore, VoteLog};
use std::sync::Arc;
use std::time::Duration;

/// The node's side of the consensus engine: it keeps the vote log, builds
/// this validator's payloads and hands final blocks to the replica.
pub struct NodeHost {
    /// The beacon and its store (final blocks).
    pub keeper: Arc<BeaconKeeper>,
    /// Final blocks, to the replica.
    pub blocks: std::sync::mpsc::SyncSender<FinalBlock>,
    /// Builds this validator's payloads.
    pub builder: Arc<Builder>,
    /// Every vote and proposal this validator signed.
    pub votes: VoteLog,
    /// Vote records below this height were pruned.
    pub pruned_below: u64,
}

/// The height of a vote record.
fn record_height(record: &Record) -> u64 {
    match record {
        Record::Voted { height, .. }
        | Record::Finalized { height }
        | Record::Proposed { height, .. } => *height,
    }
}

/// Opens the vote log at `path` and returns it with its records. Records
/// an older atoll kept in the beacon store are moved into the log first.
pub fn open_votes(
    path: &std::path::Path,
    store: &BeaconStore,
) -> anyhow::Result<(VoteLog, Vec<Vec<u8>>)> {
    let (mut log, records) = VoteLog::open(path)?;
    let mut records: Vec<Vec<u8>> = records.into_iter().map(|(_, r)| r).collect();
    let legacy = store.vote_records(0)?;
    for bytes in &legacy {
        let record = codec::decode::<Record>("vote record", bytes, MAX_RECORD)
            .context("the beacon store's vote records are damaged")?;
        log.append(record_height(&record), bytes)?;
    }
    if !legacy.is_empty() {
        store.prune_vote_records(u64::MAX)?;
        tracing::info!(
            target: "consensus",
            records = legacy.len(),
            "vote records moved from the beacon store to the vote log"
        );
        records.extend(legacy);
    }
    Ok((log, records))
}

/// The final blocks in the beacon store, for validators that catch up.
pub struct StoredBlocks {
    /// The beacon and its store.
    pub keeper: Arc<BeaconKeeper>,
    /// Largest message.
    pub limit: usize,
}

impl Archive for StoredBlocks {
    fn stored(&self, from: u64, max: usize, max_bytes: usize) -> Vec<FinalBlock> {
        let Ok(found) = self.keeper.store.final_blocks(from, max) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let mut bytes = 0;
        for (_, encoded) in found {
            bytes += encoded.len();
            if bytes > max_bytes && !out.is_empty() {
                break;
            }
            match codec::decode::<FinalBlock>("stored final block", &encoded, self.limit) {
                Ok(block) => out.push(block),
                Err(_) => break,
            }
        }
        out
    }
}

impl Host for NodeHost {
    fn persist(&mut self, record: Record) -> anyhow::Result<()> {
        self.votes
            .append(record_height(&record), &codec::encode(&record))
            .context("cannot store a vote record; this validator stops signing")
    }

    fn payload(&mut self, _height: u64, parent: Hash) -> PayloadTask {
        Box::pin(Arc::clone(&self.builder).build(parent))
    }

    fn finalized(&mut self, blocks: Vec<FinalBlock>) -> anyhow::Result<()> {
        let Some(last) = blocks.last() else {
            return Ok(());
        };
        let newest = (last.proposal.block.height, last.proposal.block.hash());
        let encoded: Vec<(u64, Vec<u8>)> = blocks
            .iter()
            .map(|b| (b.proposal.block.height, codec::encode(b)))
            .collect();
        self.keeper
            .store
            .put_final_blocks(&encoded, newest)
            .context("cannot store final blocks")?;
        let below = newest.0.saturating_sub(KEEP_BEHIND);
        if below >= self.pruned_below + KEEP_BEHIND {
            self.votes
                .prune(below)
                .context("cannot prune the vote log")?;
            self.pruned_below = below;
        }
        for block in blocks {
            // Waits while the replica is far behind (a validator catching
            // up): consensus must not outrun execution without bound.
            let sent = tokio::task::block_in_place(|| self.blocks.send(block).is_ok());
            if !sent {
                anyhow::bail!("the replica stopped");
            }
        }
        Ok(())
    }
}

/// What the consensus machine of this validator starts from.
pub struct MachineStart {
    /// The chain.
    pub chain: ChainId,
    /// The validators.
    pub validators: ValidatorSet,
    /// This validator's key and index, if it is one.
    pub key: Option<(u16, KeyPair)>,
    /// The hash the first block extends (the genesis file's).
    pub genesis: Hash,
    /// The timeout.
    pub timeout: Duration,
}

/// The machine, rebuilt from the newest final block in the store and the
/// vote log's `records` (which may be ahead of the store: then the machine
/// starts above the heights this validator already voted at).
pub fn machine(
    start: MachineStart,
    store: &BeaconStore,
    records: &[Vec<u8>],
    limit: usize,
) -> anyhow::Result<Simplex> {
    let (final_height, final_hash) = store.final_head()?.unwrap_or((0, start.genesis));
    let records = records
        .iter()
        .map(|bytes| codec::decode::<Record>("vote record", bytes, limit))
        .collect::<Result<Vec<_>, _>>()
        .context("the vote log's records do not decode")?;
    Ok(Simplex::new(
        Config {
            chain: start.chain,
            validators: start.validators,
            key: start.key,
            genesis: start.genesis,
            timeout: start.timeout,
        },
        &records,
        final_height,
        final_hash,
    ))
}
