//! With several validators: the beacon and the shards execute what
//! consensus finalized.
//!
//! For each final consensus block, in order, every validator:
//!
//! 1. **Beacon step**: records the payload's certified shard headers
//!    ([`CommitteeView::recordable`]: each extends its shard's last recorded
//!    header and carries signatures of more than two thirds of its
//!    committee's stake) in a beacon block at the payload's timestamp,
//!    stored with the consensus block it was made of. The beacon block is
//!    the same on every validator and needs no execution.
//! 2. **Shard steps**, for the shards it tracks (its committees of this
//!    epoch and the next; every shard when the committee is every
//!    validator), in parallel: shard block `b` (the beacon block's height)
//!    credits the receipts of source blocks recorded up to beacon block `b`,
//!    from its inbox cursors on, at most the payload's cap
//!    ([`Gatherer::gather`] first obtains them, from its own stores or from
//!    the source's committee), then runs the payload's transactions
//!    ([`ShardChain::execute_agreed_block`]: Ethereum transactions without
//!    a sender, other chains' transactions, repeats, known transactions and
//!    bad signatures are dropped by rule).
//!    Its contents were final before it ran, so the block is final when
//!    committed. A committee member then signs its header
//!    ([`CommitteeView::vote`]) and gossips the vote; a later leader puts
//!    the certified header into its payload.
//!
//! A shard that became tracked (a new committee, or a restart that cut a
//! step short) catches up first: it executes each missing block from the
//! stored final consensus blocks, with the receipts the rule above gives
//! for that block's beacon height. So a validator moved to a shard at an
//! epoch boundary syncs it during the epoch before, from its peers'
//! consensus blocks and receipts, and checks each block it rebuilds
//! against the certified header when the beacon holds it.

use super::committee_view::CommitteeView;
use super::receipts::{Gatherer, Sources};
use super::revote::Revoter;
use super::state_sync::{Next, StateSync, SyncContext};
use super::wire::Payload;
use crate::service::common::committed::{block_span, finish, mark_final};
use crate::service::common::handoff::Committed;
use crate::service::common::keeper::{stored_block, BeaconKeeper};
use crate::service::common::shared::Shared;
use anyhow::Context;
use atoll_consensus::simplex::{Block, FinalBlock};
use atoll_consensus::BeaconBlock;
use atoll_primitives::{codec, Hash, ShardBlockHeader, ShardId};
use atoll_shard::execution::PreparedTx;
use atoll_shard::mempool::Mempool;
use atoll_shard::relay::{InProcessRelay, ReceiptRelay};
use atoll_shard::ShardChain;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{broadcast, watch};

/// The newest executed consensus block: its height and hash, when it was
/// executed, and when its leader built its payload.
#[derive(Clone, Copy, Debug)]
pub struct Executed {
    /// Its consensus height.
    pub height: u64,
    /// Its hash.
    pub hash: Hash,
    /// When this validator executed it.
    pub at: Instant,
    /// Its payload's timestamp (Unix milliseconds, the leader's clock); 0
    /// when unknown (at start).
    pub proposed_ms: u64,
}

/// Most beacon heights whose payloads a catch-up holds at once (each
/// payload is at most `network.max_message_bytes`).
const STEPS_AT_ONCE: u64 = 16;

/// Beacon heights `from..=to` of a catch-up.
struct Span {
    from: u64,
    to: u64,
    /// Each source's newest recorded height after beacon block `to`.
    limits: BTreeMap<ShardId, u64>,
}

/// What a shard block at one beacon height is made of.
struct Step {
    /// The beacon height (= the shard block's height).
    height: u64,
    /// The beacon block's epoch.
    epoch: u64,
    /// Each source's newest recorded height after that beacon block.
    limits: BTreeMap<ShardId, u64>,
    /// The consensus block's payload.
    payload: Arc<Payload>,
    /// Whether this is the block just made (not a catch-up on an old one):
    /// its receipts are pushed.
    live: bool,
}

/// Executes final consensus blocks, in order.
pub struct Replica {
    /// Every shard, by shard number.
    pub shards: Vec<Arc<Shared>>,
    /// Every shard's chain, by shard number.
    pub chains: Vec<ShardChain>,
    /// The beacon and its store.
    pub keeper: Arc<BeaconKeeper>,
    /// Receipts waiting for the tracked shards.
    pub relay: Arc<InProcessRelay>,
    /// Final heads, to subscribers.
    pub new_heads: broadcast::Sender<Arc<ShardBlockHeader>>,
    /// What was executed, to the payload builder.
    pub progress: watch::Sender<Executed>,
    /// Largest message.
    pub limit: usize,
    /// The committees.
    pub committee: Arc<CommitteeView>,
    /// The runtime the network runs on.
    pub runtime: tokio::runtime::Handle,
    /// A shard whose waiting receipts reach this says so in its header.
    pub backlog: usize,
    /// Set when the node stops.
    pub stopping: Arc<AtomicBool>,
    /// Sends header votes again where certification stalls.
    pub revoter: Revoter,
    /// Syncs shards far behind from peers' state snapshots.
    pub sync: StateSync,
}

impl Replica {
    /// Executes the blocks that arrive until the node stops. A failure
    /// (a store error) stops the node: it cannot go on without its state.
    pub fn run(mut self, blocks: Receiver<FinalBlock>) {
        let mut inbound: Vec<Gatherer> =
            self.shards.iter().map(|s| Gatherer::new(s.shard)).collect();
        if let Err(err) = self.replay(&mut inbound) {
            tracing::error!(
                target: "replica",
                err = format!("{err:#}"),
                "cannot execute the stored final blocks; the node stops"
            );
            self.stopping.store(true, Ordering::Release);
            return;
        }
        loop {
            let block = match blocks.recv_timeout(Duration::from_millis(100)) {
                Ok(block) => block,
                Err(RecvTimeoutError::Timeout) => {
                    if self.stopping.load(Ordering::Acquire) {
                        return;
                    }
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => return,
            };
            if self.stopping.load(Ordering::Acquire) {
                return;
            }
            if let Err(err) = self.execute(&block.proposal.block, &mut inbound) {
                if self.stopping.load(Ordering::Acquire) {
                    return;
                }
                tracing::error!(
                    target: "replica",
                    err = format!("{err:#}"),
                    height = block.proposal.block.height,
                    "cannot execute a final block; the node stops"
                );
                self.stopping.store(true, Ordering::Release);
                return;
            }
        }
    }

    /// Executes the final blocks stored before a restart and not executed
    /// yet (the store keeps a block before the replica gets it), then
    /// brings the tracked shards level with the beacon.
    fn replay(&mut self, inbound: &mut [Gatherer]) -> anyhow::Result<()> {
        let mut replayed = 0u64;
        loop {
            let from = self.progress.borrow().height + 1;
            let stored = self.keeper.store.final_blocks(from, 64)?;
            if stored.is_empty() {
                break;
            }
            for (height, bytes) in stored {
                let block: FinalBlock = codec::decode("stored final block", &bytes, self.limit)
                    .with_context(|| format!("the stored final block {height} is damaged"))?;
                self.execute(&block.proposal.block, inbound)?;
                replayed += 1;
            }
        }
        if replayed > 0 {
            tracing::info!(
                target: "replica",
                blocks = replayed,
                "executed the final blocks stored before the restart"
            );
        }
        if replayed == 0 {
            // A step a crash cut short: the beacon block is stored, some
            // shards are behind it.
            self.shard_steps(None, inbound)?;
        }
        Ok(())
    }

    /// Executes one final block (nothing if it was executed before).
    pub fn execute(&mut self, block: &Block, inbound: &mut [Gatherer]) -> anyhow::Result<()> {
        let done = *self.progress.borrow();
        if block.height <= done.height {
            return Ok(());
        }
        let payload = Arc::new(Payload::decode_or_empty(
            &block.payload,
            self.chains.len(),
            self.limit,
        ));
        let headers = {
            let beacon = self.keeper.state.read();
            self.committee.recordable(&beacon, &payload.certified)
        };
        let payload_timestamp = payload.timestamp_ms;
        let moves: Vec<_> = payload.moves.iter().map(|m| (m.address, m.to)).collect();
        let beacon = self
            .keeper
            .record_at(
                headers,
                payload.timestamp_ms,
                Some((block.height, block.hash())),
                &moves,
            )
            .with_context(|| format!("cannot record consensus block {}", block.height))?;
        let recorded: BTreeMap<ShardId, u64> =
            self.keeper.state.read().recorded().into_iter().collect();
        self.committee.certifier.lock().prune(&recorded);
        for (shared, txs) in self.shards.iter().zip(&payload.shards) {
            if !txs.is_empty() {
                shared
                    .carried_ms
                    .store(payload_timestamp, Ordering::Release);
            }
        }
        self.shard_steps(Some((&beacon, payload)), inbound)?;
        self.revoter.check(
            &self.chains,
            &self.keeper.state,
            &self.committee,
            &self.runtime,
        );
        self.progress.send_replace(Executed {
            height: block.height,
            hash: block.hash(),
            at: Instant::now(),
            proposed_ms: payload_timestamp,
        });
        Ok(())
    }

    /// Brings every tracked shard level with the beacon; `current` is the
    /// beacon block just made, with its payload.
    fn shard_steps(
        &mut self,
        current: Option<(&BeaconBlock, Arc<Payload>)>,
        inbound: &mut [Gatherer],
    ) -> anyhow::Result<()> {
        let (height, epoch, tracked) = {
            let beacon = self.keeper.state.read();
            (
                beacon.height(),
                beacon.epoch(),
                self.committee.tracked(&beacon),
            )
        };
        for shared in &self.shards {
            let now = tracked.contains(&shared.shard);
            let before = shared.tracked.swap(now, Ordering::AcqRel);
            if before && !now {
                // No longer this validator's: its pool cannot be ordered
                // without the state, and its clients are told so. Its
                // transactions are gossiped again for the shard's trackers
                // (this validator may have had no peer when it took them,
                // and it will not propose them now).
                let dropped = shared.mempool.lock().clear();
                shared.waiters.dropped(dropped.iter().map(|tx| &tx.hash));
                if let Some(gossip) = &shared.gossip {
                    let signed: Vec<_> = dropped
                        .into_iter()
                        .map(|tx| tx.into_inner().signed)
                        .collect();
                    for chunk in signed.chunks(super::wire::MAX_GOSSIP_TXS) {
                        // A full queue drops the rest, as at admission.
                        let _ = gossip.try_send((shared.shard.0, chunk.to_vec()));
                    }
                }
                self.committee.pushed.forget(shared.shard);
                self.sync.forget(shared.shard);
                tracing::info!(target: "replica", shard = %shared.shard, epoch, "no longer tracking this shard");
            } else if now && !before {
                tracing::info!(target: "replica", shard = %shared.shard, epoch, "tracking this shard");
            }
        }
        let tracked = self.ready(&tracked, inbound)?;
        let lowest = self
            .chains
            .iter()
            .filter(|c| tracked.contains(&c.head().shard))
            .map(|c| c.head().height)
            .min()
            .unwrap_or(height);
        if lowest >= height {
            return Ok(());
        }
        // A long catch-up goes a few beacon heights at a time, so that the
        // payloads held at once stay bounded.
        for span in self.spans(lowest + 1, height, current.as_ref())? {
            if self.stopping.load(Ordering::Acquire) {
                break;
            }
            let steps = self.steps(span, current.as_ref())?;
            self.run_steps(&steps, &tracked, inbound)?;
        }
        Ok(())
    }

    /// Executes `steps` on the `tracked` shards, each shard on its own
    /// thread.
    fn run_steps(
        &mut self,
        steps: &[Step],
        tracked: &BTreeSet<ShardId>,
        inbound: &mut [Gatherer],
    ) -> anyhow::Result<()> {
        let local: Vec<_> = self
            .chains
            .iter()
            .map(|c| (c.shared_store(), c.head().height))
            .collect();
        let stopping = Arc::clone(&self.stopping);
        let sources = Sources {
            local: &local,
            view: &self.committee,
            beacon: &self.keeper.state,
            store: &self.keeper.store,
            runtime: &self.runtime,
            limit: self.limit,
            stopping: &stopping,
            metrics: &self.shards[0].metrics,
        };
        let context = StepContext {
            shards: &self.shards,
            keeper: &self.keeper,
            relay: &self.relay,
            new_heads: &self.new_heads,
            committee: &self.committee,
            runtime: &self.runtime,
            backlog: self.backlog,
            limit: self.limit,
        };
        let context = &context;
        let results: Vec<anyhow::Result<()>> = std::thread::scope(|scope| {
            let handles: Vec<_> = self
                .chains
                .iter_mut()
                .zip(inbound.iter_mut())
                .filter(|(chain, _)| tracked.contains(&chain.head().shard))
                .map(|(chain, inbound)| {
                    let sources = &sources;
                    scope.spawn(move || -> anyhow::Result<()> {
                        for step in steps {
                            if step.height > chain.head().height {
                                context.shard_step(chain, inbound, step, sources)?;
                            }
                        }
                        Ok(())
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(anyhow::anyhow!("a shard's executor panicked")))
                })
                .collect()
        });
        results.into_iter().collect()
    }

    /// The shards of `tracked` whose blocks execute now: not those waiting
    /// for a state snapshot ([`StateSync`]). A shard that just installed
    /// one starts its receipts over from the snapshot's inbox cursors.
    fn ready(
        &mut self,
        tracked: &BTreeSet<ShardId>,
        inbound: &mut [Gatherer],
    ) -> anyhow::Result<BTreeSet<ShardId>> {
        let (keeper, limit, count) = (&self.keeper, self.limit, self.chains.len());
        let payload_at =
            |height: u64| stored_step(keeper, count, limit, height).map(|(_, payload)| payload);
        let context = SyncContext {
            keeper,
            view: &self.committee,
            runtime: &self.runtime,
            limit,
            layout: self.shards[0].layout,
            payload_at: &payload_at,
            metrics: &self.shards[0].metrics,
        };
        let mut ready = BTreeSet::new();
        for (chain, inbound) in self.chains.iter_mut().zip(inbound.iter_mut()) {
            let shard = chain.head().shard;
            if !tracked.contains(&shard) {
                continue;
            }
            match self.sync.next(chain, &context)? {
                Next::Wait => continue,
                Next::Execute => {}
                Next::Installed => {
                    let shared = &self.shards[usize::from(shard.0)];
                    *inbound = Gatherer::new(shard);
                    self.relay.acknowledge(shard, &chain.inbox_cursors());
                    *shared.head_map.write() = Arc::clone(chain.shard_map());
                    let head = Arc::new(chain.head().clone());
                    shared.heads.send_modify(|heads| {
                        heads.final_height = heads.final_height.max(head.height);
                        heads.head = head;
                    });
                }
            }
            ready.insert(shard);
        }
        Ok(ready)
    }

    /// Beacon heights `from..=to` (`from` at least 1) cut into spans of at
    /// most [`STEPS_AT_ONCE`], oldest first, each with the recorded heights
    /// after its last block. Reads the beacon blocks, not their payloads.
    fn spans(
        &self,
        from: u64,
        to: u64,
        current: Option<&(&BeaconBlock, Arc<Payload>)>,
    ) -> anyhow::Result<Vec<Span>> {
        let mut limits: BTreeMap<ShardId, u64> =
            self.keeper.state.read().recorded().into_iter().collect();
        let mut spans = Vec::new();
        let mut end = to;
        while end >= from {
            let start = end.saturating_sub(STEPS_AT_ONCE - 1).max(from);
            spans.push(Span {
                from: start,
                to: end,
                limits: limits.clone(),
            });
            for height in (start..=end).rev() {
                let block = match current {
                    Some((block, _)) if block.height == height => (*block).clone(),
                    _ => stored_block(&self.keeper.store, height)?,
                };
                lower_limits(&mut limits, &block);
            }
            end = start - 1;
        }
        spans.reverse();
        Ok(spans)
    }

    /// What the shard blocks of `span` are made of.
    fn steps(
        &self,
        span: Span,
        current: Option<&(&BeaconBlock, Arc<Payload>)>,
    ) -> anyhow::Result<Vec<Step>> {
        let Span {
            from,
            to,
            mut limits,
        } = span;
        let mut steps = Vec::new();
        for height in (from..=to).rev() {
            let (block, payload, live) = match current {
                Some((block, payload)) if block.height == height => {
                    ((*block).clone(), Arc::clone(payload), true)
                }
                _ => {
                    let (block, payload) =
                        stored_step(&self.keeper, self.chains.len(), self.limit, height)?;
                    (block, payload, false)
                }
            };
            steps.push(Step {
                height,
                epoch: block.epoch,
                limits: limits.clone(),
                payload,
                live,
            });
            lower_limits(&mut limits, &block);
        }
        steps.reverse();
        Ok(steps)
    }
}

/// Takes `limits` (recorded heights after `block`) to those before it:
/// each shard it recorded stood one below its first header there.
fn lower_limits(limits: &mut BTreeMap<ShardId, u64>, block: &BeaconBlock) {
    for header in &block.shard_headers {
        let entry = limits.entry(header.shard).or_default();
        *entry = (*entry).min(header.height.saturating_sub(1));
    }
}

/// Beacon block `height` and the payload it was made of, from the stores
/// (payloads of `shards` shards, messages of at most `limit` bytes).
fn stored_step(
    keeper: &BeaconKeeper,
    shards: usize,
    limit: usize,
    height: u64,
) -> anyhow::Result<(BeaconBlock, Arc<Payload>)> {
    {
        let store = &keeper.store;
        let block = stored_block(store, height)?;
        let (consensus, _) = store.executed_at(height)?.with_context(|| {
            format!(
                "the beacon store does not say which consensus block made beacon block {height}"
            )
        })?;
        let (_, bytes) = store
            .final_blocks(consensus, 1)?
            .into_iter()
            .find(|(h, _)| *h == consensus)
            .with_context(|| format!("the final consensus block {consensus} is not stored"))?;
        let final_block: FinalBlock = codec::decode("stored final block", &bytes, limit)
            .with_context(|| format!("the stored final block {consensus} is damaged"))?;
        let payload = Payload::decode_or_empty(&final_block.proposal.block.payload, shards, limit);
        Ok((block, Arc::new(payload)))
    }
}

/// What a shard step reads and tells, borrowed from the [`Replica`] (whose
/// chains the steps hold).
struct StepContext<'a> {
    shards: &'a [Arc<Shared>],
    keeper: &'a BeaconKeeper,
    relay: &'a InProcessRelay,
    new_heads: &'a broadcast::Sender<Arc<ShardBlockHeader>>,
    committee: &'a CommitteeView,
    runtime: &'a tokio::runtime::Handle,
    backlog: usize,
    limit: usize,
}

impl StepContext<'_> {
    /// Executes `chain`'s block of `step`.
    fn shard_step(
        &self,
        chain: &mut ShardChain,
        inbound: &mut Gatherer,
        step: &Step,
        sources: &Sources<'_>,
    ) -> anyhow::Result<()> {
        let shard = chain.head().shard;
        let _span = block_span(shard, step.height).entered();
        let shared = &self.shards[usize::from(shard.0)];
        let started = Instant::now();
        inbound.gather(self.relay, &chain.inbox_cursors(), &step.limits, sources)?;
        let map = {
            let beacon = self.keeper.state.read();
            beacon
                .schedule()
                .get(step.epoch)
                .cloned()
                .unwrap_or_else(|| Arc::clone(beacon.map()))
        };
        chain.set_epoch(step.epoch, map);
        // Every receipt recorded up to this height and not yet credited is
        // in the relay (and nothing newer): the same count everywhere.
        chain.set_congested(self.relay.backlog(shard) >= self.backlog / 2);
        let max_receipts = (step.payload.max_receipts as usize).max(1);
        let incoming = self
            .relay
            .pending(shard, &chain.inbox_cursors(), max_receipts);
        let txs = step.payload.shards[usize::from(shard.0)].clone();
        let keeper = self.keeper;
        let produced = chain.execute_agreed_block(
            txs,
            incoming,
            |source, height| keeper.final_header(source, height),
            |txs| admitted(&shared.mempool.lock(), txs),
            step.payload.timestamp_ms,
        )?;
        if produced.block.header.height != step.height {
            anyhow::bail!(
                "shard {shard}'s block {} does not match beacon height {}: the shard's store and \
                 the beacon store disagree",
                produced.block.header.height,
                step.height
            );
        }
        finish(
            shared,
            chain,
            &produced,
            produced.block.body.incoming.len(),
            &[],
            started,
        );
        let header = produced.block.header.clone();
        let committed = Committed::from(produced);
        mark_final(shared, &committed, self.new_heads);
        if let Some(recorded) = keeper.final_header(shard, header.height) {
            if recorded.hash() != header.hash() {
                tracing::error!(
                    target: "replica",
                    shard = %shard,
                    height = header.height,
                    "this validator's block differs from the one its committee certified: its \
                     state diverged"
                );
            }
        }
        if step.live {
            // The next epoch's members track already within the lead, and
            // from the epoch's last block on (the beacon is then in it).
            let next_epoch = {
                let beacon = keeper.state.read();
                header.epoch < beacon.epoch()
                    || super::committee_view::next_epoch_tracked(
                        header.height,
                        beacon.epoch_length(),
                    )
            };
            super::push::push(
                self.committee,
                self.runtime,
                &header,
                &committed.receipts,
                self.limit,
                next_epoch,
            );
        }
        let recorded = keeper
            .state
            .read()
            .shard_head(shard)
            .map_or(0, |h| h.height);
        self.committee
            .vote_and_publish(&header, recorded, self.runtime);
        Ok(())
    }
}

/// Which of `txs` this validator admitted to its mempool exactly as they
/// are (signature included): their signatures were checked at admission,
/// and are not checked again.
fn admitted(pool: &Mempool, txs: &[PreparedTx]) -> Vec<bool> {
    txs.iter()
        .map(|tx| {
            pool.get(&tx.hash)
                .is_some_and(|held| held.signed == tx.signed)
        })
        .collect()
}
