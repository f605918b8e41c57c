//! Syncing a shard's state from a peer's snapshot instead of executing
//! every block it missed.
//!
//! A shard this validator must execute whose store is more than
//! `network.state_sync_gap` blocks behind the shard's newest certified
//! header (a validator moved to a shard it last held long ago, or one that
//! was down) is synced this way:
//!
//! 1. **Fetch**, in the background: the state at a peer's head, in parts
//!    (see `snapshot_serve`), from the shard's committee members first. The
//!    replica goes on with the other shards meanwhile.
//! 2. **Check**, once the beacon has recorded the snapshot's height (its
//!    header is certified by the shard's committee): the entries must hash
//!    to the header's state root; each outbox cursor must be one past a
//!    receipt proven against the last recorded header that sent to that
//!    destination, and every destination sent to must have one; the
//!    transactions in the chain up to that height are rebuilt from this
//!    validator's own final consensus blocks and checked against each
//!    recorded header's transaction root (later blocks must drop them as
//!    repeats exactly as the validators that executed them do).
//! 3. **Install**: the store is replaced in one atomic write
//!    ([`ShardChain::install_snapshot`]) and the replica executes the
//!    blocks above the snapshot as usual.
//!
//! A snapshot that fails a check scores its peer down and another is
//! fetched. After [`MAX_FAILURES`] failures in a row the shard falls back to
//! executing its blocks.

pub mod verify;

use super::committee_view::CommitteeView;
use super::snapshot_serve::{MAX_PARTS, PART_ENTRIES};
use super::wire::{Payload, Request, SnapshotPart, SnapshotRequest};
use crate::metrics::Metrics;
use crate::service::common::keeper::BeaconKeeper;
use anyhow::Context;
use atoll_p2p::{Handle, PeerId};
use atoll_primitives::{
    codec, ProvenReceipt, ShardId, ShardLayout, ShardMap, StateKey, StateValue,
};
use atoll_shard::state::StateTree;
use atoll_shard::ShardChain;
use atoll_storage::SnapshotInstall;
use std::sync::Arc;
use std::time::{Duration, Instant};
use verify::{check_outbox, history, Fault};

/// Failed snapshots in a row after which a shard executes its blocks.
pub const MAX_FAILURES: u32 = 3;
/// How long one part may take to arrive.
const PART_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a fetched snapshot waits for its height to be recorded.
const RECORD_WAIT: Duration = Duration::from_secs(30);

/// A snapshot fetched from a peer, not checked yet.
pub struct Fetched {
    peer: PeerId,
    height: u64,
    entries: Vec<(StateKey, StateValue)>,
    outbox: Vec<(ShardId, u64)>,
    last_receipts: Vec<ProvenReceipt>,
    /// When it arrived.
    at: Instant,
    /// When the sync began.
    began: Instant,
}

/// Where one shard's sync stands.
#[derive(Default)]
struct Slot {
    fetching: Option<(tokio::task::JoinHandle<anyhow::Result<Fetched>>, Instant)>,
    fetched: Option<Fetched>,
    failures: u32,
    gave_up: bool,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some((task, _)) = &self.fetching {
            task.abort();
        }
    }
}

/// What the replica does with a tracked shard this round.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    /// Execute its missing blocks.
    Execute,
    /// Leave it: a snapshot is on its way.
    Wait,
    /// A snapshot was just installed; execute the blocks above it.
    Installed,
}

/// What a sync reads: the beacon, the committees and the network.
pub struct SyncContext<'a> {
    /// The beacon and its store.
    pub keeper: &'a BeaconKeeper,
    /// The committees and the network.
    pub view: &'a CommitteeView,
    /// The runtime the network runs on.
    pub runtime: &'a tokio::runtime::Handle,
    /// Largest message.
    pub limit: usize,
    /// The genesis shard layout.
    pub layout: ShardLayout,
    /// The payload of the consensus block that made beacon block `h`.
    pub payload_at: &'a dyn Fn(u64) -> anyhow::Result<Arc<Payload>>,
    /// Metrics.
    pub metrics: &'a Metrics,
}

/// Every shard's sync.
pub struct StateSync {
    gap: u64,
    slots: Vec<Slot>,
}

impl StateSync {
    /// Syncs from snapshots shards more than `gap` blocks behind (never,
    /// for 0), of `shards` shards.
    pub fn new(gap: u64, shards: usize) -> StateSync {
        StateSync {
            gap,
            slots: (0..shards).map(|_| Slot::default()).collect(),
        }
    }

    /// Forgets `shard`'s sync (it is no longer tracked).
    pub fn forget(&mut self, shard: ShardId) {
        if let Some(slot) = self.slots.get_mut(usize::from(shard.0)) {
            *slot = Slot::default();
        }
    }

    /// Whether `chain` executes its missing blocks now, waits for a
    /// snapshot, or just installed one. A store error installing it is
    /// returned (the node cannot go on without its state).
    pub fn next(&mut self, chain: &mut ShardChain, ctx: &SyncContext<'_>) -> anyhow::Result<Next> {
        let shard = chain.head().shard;
        let head = chain.head().height;
        let recorded = ctx
            .keeper
            .state
            .read()
            .shard_head(shard)
            .map_or(0, |h| h.height);
        let Some(slot) = self.slots.get_mut(usize::from(shard.0)) else {
            return Ok(Next::Execute);
        };
        if head.saturating_add(self.gap) >= recorded {
            if slot.fetching.is_some() || slot.fetched.is_some() || slot.failures > 0 {
                *slot = Slot::default();
            }
            return Ok(Next::Execute);
        }
        if self.gap == 0 || slot.gave_up {
            return Ok(Next::Execute);
        }
        if let Some((task, _)) = &slot.fetching {
            if !task.is_finished() {
                return Ok(Next::Wait);
            }
            let (task, _) = slot.fetching.take().expect("checked above");
            match ctx.runtime.block_on(task) {
                Ok(Ok(fetched)) => slot.fetched = Some(fetched),
                Ok(Err(err)) => fail(slot, shard, ctx, "failed", &format!("{err:#}")),
                Err(err) => fail(slot, shard, ctx, "failed", &err.to_string()),
            }
        }
        if let Some(fetched) = slot.fetched.take() {
            if fetched.height <= head {
                // The shard moved past it meanwhile.
                return Ok(Next::Execute);
            }
            let beacon_height = ctx.keeper.state.read().height();
            if recorded < fetched.height || beacon_height < fetched.height {
                if fetched.at.elapsed() < RECORD_WAIT {
                    slot.fetched = Some(fetched);
                    return Ok(Next::Wait);
                }
                let why = format!(
                    "its height {} was not certified within {RECORD_WAIT:?}",
                    fetched.height
                );
                fail(slot, shard, ctx, "failed", &why);
            } else {
                match install(chain, &fetched, ctx) {
                    Ok(()) => {
                        tracing::info!(
                            target: "state_sync",
                            shard = %shard,
                            height = fetched.height,
                            accounts = fetched.entries.len(),
                            peer = %fetched.peer,
                            took_ms = fetched.began.elapsed().as_millis() as u64,
                            "installed the shard's state from a peer's snapshot"
                        );
                        ctx.metrics.state_sync("installed");
                        *slot = Slot::default();
                        return Ok(Next::Installed);
                    }
                    Err(Fault::Peer(why)) => {
                        if let Some(network) = ctx.view.network.get() {
                            ctx.runtime.block_on(network.penalize(fetched.peer));
                        }
                        let why = format!("{why}; peer {} scored down", fetched.peer);
                        fail(slot, shard, ctx, "rejected", &why);
                    }
                    Err(Fault::Local(err)) => return Err(err),
                }
            }
        }
        if slot.failures >= MAX_FAILURES {
            slot.gave_up = true;
            tracing::warn!(
                target: "state_sync",
                shard = %shard,
                failures = slot.failures,
                "no usable state snapshot; executing the shard's blocks instead"
            );
            return Ok(Next::Execute);
        }
        let Some(network) = ctx.view.network.get().cloned() else {
            return Ok(Next::Execute);
        };
        let epoch = ctx.keeper.state.read().epoch();
        let mut peers = super::receipts::peers_of(ctx.view, epoch, ctx.runtime, shard);
        if peers.is_empty() {
            // Not connected yet (just started): nobody to ask, nothing failed.
            return Ok(Next::Wait);
        }
        // After a failure, another peer goes first.
        let turn = slot.failures as usize % peers.len();
        peers.rotate_left(turn);
        tracing::info!(
            target: "state_sync",
            shard = %shard,
            head,
            recorded,
            peers = peers.len(),
            "syncing the shard's state from a peer's snapshot"
        );
        let (limit, shards) = (ctx.limit, ctx.layout.shard_count());
        let task = ctx
            .runtime
            .spawn(fetch(network, peers, shard, shards, limit));
        slot.fetching = Some((task, Instant::now()));
        Ok(Next::Wait)
    }
}

/// Counts a failed snapshot and says why.
fn fail(slot: &mut Slot, shard: ShardId, ctx: &SyncContext<'_>, result: &'static str, why: &str) {
    slot.failures += 1;
    ctx.metrics.state_sync(result);
    tracing::warn!(target: "state_sync", shard = %shard, failures = slot.failures, "state snapshot not used: {why}");
}

/// Fetches a snapshot of `shard` from the first of `peers` that serves a
/// well-formed one; peers that send malformed parts are scored down.
async fn fetch(
    network: Handle,
    peers: Vec<PeerId>,
    shard: ShardId,
    shards: u16,
    limit: usize,
) -> anyhow::Result<Fetched> {
    let began = Instant::now();
    let mut errors = Vec::new();
    for peer in peers {
        match fetch_from(&network, peer, shard, shards, limit).await {
            Ok(Some((height, entries, outbox, last_receipts))) => {
                return Ok(Fetched {
                    peer,
                    height,
                    entries,
                    outbox,
                    last_receipts,
                    at: Instant::now(),
                    began,
                })
            }
            Ok(None) => {}
            Err(err) => {
                network.penalize(peer).await;
                errors.push(format!("{peer}: {err:#} (scored down)"));
            }
        }
    }
    if errors.is_empty() {
        anyhow::bail!("no peer serves a snapshot of shard {shard}");
    }
    anyhow::bail!(
        "no peer served a well-formed snapshot of shard {shard}: {}",
        errors.join("; ")
    )
}

/// A fetched snapshot's height, entries, outbox cursors and last receipts.
type Parts = (
    u64,
    Vec<(StateKey, StateValue)>,
    Vec<(ShardId, u64)>,
    Vec<ProvenReceipt>,
);

/// Every part of `peer`'s snapshot of `shard`: None when it has none to
/// give or an answer is late (nothing wrong with that); an error when it
/// sends something malformed.
async fn fetch_from(
    network: &Handle,
    peer: PeerId,
    shard: ShardId,
    shards: u16,
    limit: usize,
) -> anyhow::Result<Option<Parts>> {
    let ask = |height: u64, part: u32| async move {
        let request = SnapshotRequest {
            shard,
            height,
            part,
        };
        let bytes = codec::encode(&Request::Snapshot(request));
        match tokio::time::timeout(PART_TIMEOUT, network.request(peer, bytes)).await {
            Ok(Ok(answer)) => codec::decode::<SnapshotPart>("snapshot part", &answer, limit)
                .map(Some)
                .context("an undecodable snapshot part"),
            _ => Ok(None),
        }
    };
    let Some(first) = ask(0, 0).await? else {
        return Ok(None);
    };
    if first.height == 0 {
        return Ok(None);
    }
    let (height, parts) = (first.height, first.parts);
    anyhow::ensure!(
        (1..=MAX_PARTS).contains(&parts),
        "a snapshot of {parts} parts"
    );
    anyhow::ensure!(
        first.outbox.len() <= usize::from(shards)
            && first.last_receipts.len() <= first.outbox.len(),
        "more outbox cursors or receipts than shards"
    );
    let (outbox, last_receipts) = (first.outbox.clone(), first.last_receipts.clone());
    let mut entries = Vec::new();
    let mut next = Some(first);
    for part in 0..parts {
        let got = match next.take() {
            Some(got) => got,
            None => match ask(height, part).await? {
                Some(got) if got.height == 0 => return Ok(None), // no longer kept
                Some(got) => got,
                None => return Ok(None),
            },
        };
        anyhow::ensure!(
            got.height == height && got.parts == parts,
            "part {part} is of another snapshot"
        );
        anyhow::ensure!(
            part == 0 || (got.outbox.is_empty() && got.last_receipts.is_empty()),
            "part {part} repeats the outbox"
        );
        let last = part + 1 == parts;
        let count = got.entries.len();
        anyhow::ensure!(
            count == PART_ENTRIES || (last && count < PART_ENTRIES && (count > 0 || parts == 1)),
            "part {part} of {parts} has {count} entries"
        );
        entries.extend(got.entries);
    }
    anyhow::ensure!(
        entries.windows(2).all(|w| w[0].0 < w[1].0),
        "the entries are not in strictly increasing key order"
    );
    anyhow::ensure!(
        entries.iter().all(|(key, value)| value.fits(key)),
        "an entry's value is not of the kind its key holds"
    );
    Ok(Some((height, entries, outbox, last_receipts)))
}

/// Checks `fetched` against the recorded headers and this validator's own
/// final blocks, then installs it into `chain`.
fn install(chain: &mut ShardChain, fetched: &Fetched, ctx: &SyncContext<'_>) -> Result<(), Fault> {
    let shard = chain.head().shard;
    let height = fetched.height;
    let head = ctx
        .keeper
        .final_header(shard, height)
        .with_context(|| format!("shard {shard}'s header {height} is not recorded"))?;
    let tree = StateTree::from_entries(fetched.entries.iter().cloned());
    if tree.root() != head.state_root {
        return Err(Fault::Peer(format!(
            "its state does not hash to the state root certified at height {height}"
        )));
    }
    let map = ctx
        .keeper
        .state
        .read()
        .schedule()
        .get(head.epoch)
        .cloned()
        .with_context(|| format!("the beacon holds no shard map of epoch {}", head.epoch))?;
    if map.hash() != head.map_hash {
        return Err(Fault::Local(anyhow::anyhow!(
            "the beacon's shard map of epoch {} is not the one shard {shard}'s header {height} \
             executed under",
            head.epoch
        )));
    }
    let header_at = |h: u64| ctx.keeper.final_header(shard, h);
    let (transactions, last_sent) = history(
        shard,
        height,
        chain.head().chain_id,
        &header_at,
        ctx.payload_at,
    )?;
    check_outbox(
        shard,
        &fetched.outbox,
        &fetched.last_receipts,
        &last_sent,
        &header_at,
    )?;
    let genesis_map = ShardMap::new(ctx.layout);
    let install = SnapshotInstall {
        head: &head,
        entries: &fetched.entries,
        outbox: &fetched.outbox,
        shard_map: (*map != genesis_map).then_some(&*map),
        transactions: &transactions,
        last_receipts: &fetched.last_receipts,
    };
    chain
        .install_snapshot(&install, tree, ctx.layout)
        .with_context(|| format!("cannot install shard {shard}'s state snapshot"))?;
    Ok(())
}
