//! Receipts between shard committees, over libp2p.
//!
//! A destination shard's block at beacon height `b` credits the receipts
//! of source blocks recorded up to `b` (in source, then sequence order, at
//! most the payload's cap). A validator that tracks the destination must
//! therefore hold every such receipt before it executes the block
//! ([`Gatherer::gather`]): from its own store when it tracks the source and
//! has executed it, otherwise from the source's committee by request
//! ([`ReceiptsRequest`], answered by [`serve`] from the store).
//!
//! Nothing a peer says is trusted: every receipt's proof is checked against
//! the recorded (certified) header of its source block, sequences must
//! follow one another, and the claim "that is all of them up to height L"
//! is checked against the recorded headers themselves (the last receipt is
//! the last of its block, and no later recorded header up to L has a
//! receipt root for the destination). A peer whose answer fails a check is
//! scored down and the next peer is asked; a peer that does not hold the
//! blocks, or does not answer within [`REQUEST_TIMEOUT`], is skipped. So a
//! withheld or forged receipt delays the destination only until an honest
//! member of the source's committee answers.
//!
//! Source committee members also push each block's receipts on finality
//! ([`super::push`]); a destination takes a pushed run first, with the
//! same checks, and pulls only what is still missing.

pub mod runs;

use super::committee_view::CommitteeView;
use super::wire::{ReceiptsRequest, ReceiptsResponse, Request};
use crate::service::common::keeper::{FinalHeaders, Recorded};
use atoll_consensus::Beacon;
use atoll_primitives::{codec, ProvenReceipt, ShardId};
use atoll_shard::relay::{proven_from_store, InProcessRelay};
use atoll_storage::{BeaconStore, ShardStore};
use parking_lot::RwLock;
use runs::{check_run, good_start, proven_ok, sends_to, Anchor};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How long a peer has to answer a receipts request.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// Most receipts asked for in one request (whole blocks may add more).
pub const MAX_PER_REQUEST: u32 = 4096;

/// Answers `request` from `stores` (by shard), within `limit` bytes.
pub fn serve(stores: &[Arc<ShardStore>], request: &ReceiptsRequest, limit: usize) -> Vec<u8> {
    let answer = (|| -> anyhow::Result<ReceiptsResponse> {
        let Some(store) = stores.get(usize::from(request.source.0)) else {
            return Ok(ReceiptsResponse::default());
        };
        let held_to = store.head()?.map_or(0, |h| h.height);
        let max = request.max.min(MAX_PER_REQUEST) as usize;
        let mut receipts = proven_from_store(store, request.destination, request.from, max)?;
        if receipts.is_empty() && request.from < store.outbox_cursor(request.destination)? {
            // Sent before the snapshot this store was synced from: not
            // held here (saying "held" would read as withholding them).
            return Ok(ReceiptsResponse::default());
        }
        receipts.retain(|p| p.source_height <= request.up_to);
        Ok(ReceiptsResponse { held_to, receipts })
    })()
    .unwrap_or_default();
    let mut answer = answer;
    loop {
        let bytes = codec::encode(&answer);
        if bytes.len() <= limit || answer.receipts.is_empty() {
            return bytes;
        }
        // Cut at a block boundary: a partial block is fine (the client
        // asks again from where it stopped).
        answer.receipts.truncate(answer.receipts.len() / 2);
    }
}

/// A destination shard's receipts from every source, gathered before
/// each block.
pub struct Gatherer {
    destination: ShardId,
    anchors: BTreeMap<ShardId, Anchor>,
}

/// How [`Gatherer::gather`] reaches sources.
pub struct Sources<'a> {
    /// Stores of the shards this validator holds, by shard, with the
    /// height each has executed to.
    pub local: &'a [(Arc<ShardStore>, u64)],
    /// The committees and the network.
    pub view: &'a CommitteeView,
    /// The beacon (recorded headers).
    pub beacon: &'a RwLock<Beacon>,
    /// Its store (recorded headers the beacon no longer keeps in memory).
    pub store: &'a BeaconStore,
    /// The tokio runtime that runs the network.
    pub runtime: &'a tokio::runtime::Handle,
    /// Largest message.
    pub limit: usize,
    /// Set when the node stops.
    pub stopping: &'a AtomicBool,
    /// Counts how receipts were obtained.
    pub metrics: &'a crate::metrics::Metrics,
}

impl Gatherer {
    /// The receipts of `destination`, whose block applied every receipt
    /// before `cursors`.
    pub fn new(destination: ShardId) -> Gatherer {
        Gatherer {
            destination,
            anchors: BTreeMap::new(),
        }
    }

    /// Puts into `relay` every receipt to this shard, from `cursors` on,
    /// of source blocks at or below `limits` (per source). Returns when it
    /// holds all of them, or an error when the node stops.
    pub fn gather(
        &mut self,
        relay: &InProcessRelay,
        cursors: &BTreeMap<ShardId, u64>,
        limits: &BTreeMap<ShardId, u64>,
        sources: &Sources<'_>,
    ) -> anyhow::Result<()> {
        for (&source, &limit) in limits {
            if source == self.destination {
                continue;
            }
            let next = cursors.get(&source).copied().unwrap_or(0);
            let mut anchor = match self.anchors.get(&source) {
                Some(anchor) if anchor.next >= next => *anchor,
                _ => self.start(source, next, sources)?,
            };
            while !self.complete(&mut anchor, source, limit, sources)? {
                let got = match self.take_pushed(source, &anchor, limit, sources) {
                    Some(got) => got,
                    None => self.fetch(source, &anchor, limit, sources)?,
                };
                relay.restore(got.clone());
                let last = got.last().expect("fetch returns receipts");
                anchor.next = last.receipt.sequence + 1;
                anchor.last = Some((last.source_height, last.proof.is_last()));
                anchor.complete_to = last.source_height.saturating_sub(1);
            }
            self.anchors.insert(source, anchor);
        }
        Ok(())
    }

    /// Where a source stands when nothing is known: the receipt before
    /// `next` (already credited) is read back to learn its block.
    fn start(&self, source: ShardId, next: u64, sources: &Sources<'_>) -> anyhow::Result<Anchor> {
        if next == 0 {
            return Ok(Anchor {
                next,
                complete_to: 0,
                last: None,
            });
        }
        let destination = self.destination;
        let (before, _) = self.ask_any(source, next - 1, u64::MAX, 1, sources, |got| {
            let beacon = sources.beacon.read();
            let headers = sources.recorded(&beacon);
            got.first()
                .filter(|p| p.receipt.sequence == next - 1 && proven_ok(&headers, destination, p))
                .cloned()
        })?;
        Ok(Anchor {
            next,
            complete_to: before.source_height.saturating_sub(1),
            last: Some((before.source_height, before.proof.is_last())),
        })
    }

    /// Whether every receipt of source blocks up to `limit` is held: the
    /// last one held ends its block and no recorded header after it (up to
    /// `limit`) has a root for this shard. Moves `complete_to` on.
    fn complete(
        &self,
        anchor: &mut Anchor,
        source: ShardId,
        limit: u64,
        sources: &Sources<'_>,
    ) -> anyhow::Result<bool> {
        if let Some((height, ended)) = anchor.last {
            if !ended {
                return Ok(false);
            }
            anchor.complete_to = anchor.complete_to.max(height);
        }
        let beacon = sources.beacon.read();
        let headers = sources.recorded(&beacon);
        while anchor.complete_to < limit {
            let height = anchor.complete_to + 1;
            let header = headers.final_header(source, height).ok_or_else(|| {
                anyhow::anyhow!(
                    "shard {source}'s header {height} is not in the beacon store; shard {} \
                     cannot find its receipts",
                    self.destination
                )
            })?;
            if sends_to(&header, self.destination) {
                return Ok(false);
            }
            anchor.complete_to = height;
        }
        Ok(true)
    }

    /// The pushed receipts that continue `anchor`, as far as they pass the
    /// checks of a pulled answer; the pusher of the first that fails is
    /// scored down. None if no pushed receipt continues it.
    fn take_pushed(
        &self,
        source: ShardId,
        anchor: &Anchor,
        limit: u64,
        sources: &Sources<'_>,
    ) -> Option<Vec<ProvenReceipt>> {
        let run = sources
            .view
            .pushed
            .take(source, self.destination, anchor.next, limit);
        if run.is_empty() {
            return None;
        }
        let (receipts, pushers): (Vec<ProvenReceipt>, Vec<atoll_p2p::PeerId>) =
            run.into_iter().unzip();
        let good = {
            let beacon = sources.beacon.read();
            let headers = sources.recorded(&beacon);
            good_start(&headers, self.destination, anchor, limit, &receipts)
        };
        if good < receipts.len() {
            let peer = pushers[good];
            tracing::warn!(
                target: "receipts",
                %peer,
                source = %source,
                destination = %self.destination,
                sequence = receipts[good].receipt.sequence,
                "a peer pushed a receipt that fails its proof or its place; scored down"
            );
            if let Some(network) = sources.view.network.get() {
                sources.runtime.block_on(network.penalize(peer));
            }
        }
        if good == 0 {
            return None;
        }
        let mut receipts = receipts;
        receipts.truncate(good);
        sources.metrics.receipts("pushed", good);
        Some(receipts)
    }

    /// The next receipts after `anchor`, checked.
    fn fetch(
        &self,
        source: ShardId,
        anchor: &Anchor,
        limit: u64,
        sources: &Sources<'_>,
    ) -> anyhow::Result<Vec<ProvenReceipt>> {
        let next = anchor.next;
        let previous = anchor.last;
        let destination = self.destination;
        let (got, how) = self.ask_any(source, next, limit, MAX_PER_REQUEST, sources, |got| {
            let beacon = sources.beacon.read();
            let headers = sources.recorded(&beacon);
            check_run(&headers, destination, next, previous, limit, got).then(|| got.to_vec())
        })?;
        sources.metrics.receipts(how, got.len());
        Ok(got)
    }

    /// Asks this validator's own store, then peers in turn (members of the
    /// source's committees first), until `accept` takes an answer; says
    /// where it came from (`local` or `pulled`).
    fn ask_any<T>(
        &self,
        source: ShardId,
        from: u64,
        up_to: u64,
        max: u32,
        sources: &Sources<'_>,
        accept: impl Fn(&[ProvenReceipt]) -> Option<T>,
    ) -> anyhow::Result<(T, &'static str)> {
        let request = ReceiptsRequest {
            source,
            destination: self.destination,
            from,
            up_to,
            max,
        };
        if let Some((store, executed)) = sources.local.get(usize::from(source.0)) {
            if *executed >= up_to.min(held_needed(sources, source)) {
                let mut got = proven_from_store(store, self.destination, from, max as usize)?;
                got.retain(|p| p.source_height <= up_to);
                if let Some(value) = accept(&got) {
                    return Ok((value, "local"));
                }
            }
        }
        let mut round = 0u32;
        loop {
            for peer in candidates(sources, source) {
                if sources.stopping.load(Ordering::Acquire) {
                    anyhow::bail!("the node is stopping");
                }
                let Some(network) = sources.view.network.get() else {
                    break;
                };
                let bytes = codec::encode(&Request::Receipts(request.clone()));
                let answer = sources.runtime.block_on(async {
                    tokio::time::timeout(REQUEST_TIMEOUT, network.request(peer, bytes)).await
                });
                let Ok(Ok(answer)) = answer else {
                    continue;
                };
                let Ok(response) =
                    codec::decode::<ReceiptsResponse>("receipts", &answer, sources.limit)
                else {
                    sources.runtime.block_on(network.penalize(peer));
                    continue;
                };
                if response.receipts.is_empty() && response.held_to < up_to {
                    continue; // It does not hold them (yet).
                }
                match accept(&response.receipts) {
                    Some(value) => return Ok((value, "pulled")),
                    None if response.held_to >= up_to.min(held_needed(sources, source)) => {
                        tracing::warn!(
                            target: "receipts",
                            %peer,
                            source = %source,
                            destination = %self.destination,
                            from,
                            "a peer sent receipts that fail their proofs or leave some out; scored down"
                        );
                        sources.runtime.block_on(network.penalize(peer));
                    }
                    None => {}
                }
            }
            round += 1;
            if round.is_multiple_of(10) {
                tracing::warn!(
                    target: "receipts",
                    source = %source,
                    destination = %self.destination,
                    from,
                    "no peer has answered with the receipts yet; still asking"
                );
            }
            std::thread::sleep(Duration::from_millis(100));
            if sources.stopping.load(Ordering::Acquire) {
                anyhow::bail!("the node is stopping");
            }
        }
    }
}

impl<'a> Sources<'a> {
    /// Every recorded header, with `beacon` read-locked by the caller.
    fn recorded<'b>(&'b self, beacon: &'b Beacon) -> Recorded<'b> {
        Recorded {
            beacon,
            store: self.store,
        }
    }
}

/// The source's newest recorded height: what a peer that tracks it holds.
fn held_needed(sources: &Sources<'_>, source: ShardId) -> u64 {
    sources
        .beacon
        .read()
        .shard_head(source)
        .map_or(0, |h| h.height)
}

/// Peers to ask for `source`'s receipts: the members of its committees in
/// the current and the previous epoch whose peer ids are known, then every
/// connected peer.
fn candidates(sources: &Sources<'_>, source: ShardId) -> Vec<atoll_p2p::PeerId> {
    let epoch = sources.beacon.read().epoch();
    peers_of(sources.view, epoch, sources.runtime, source)
}

/// Peers that may hold `shard`: the members of its committees in `epoch`
/// and the epochs beside it whose peer ids are known, then every
/// connected peer.
pub fn peers_of(
    view: &CommitteeView,
    epoch: u64,
    runtime: &tokio::runtime::Handle,
    shard: ShardId,
) -> Vec<atoll_p2p::PeerId> {
    let known = view.peers.lock().clone();
    let mut out = Vec::new();
    for e in [epoch, epoch.saturating_sub(1), epoch + 1] {
        for member in view.committees.members(e, shard) {
            if let Some(peer) = known.get(&member) {
                if !out.contains(peer) {
                    out.push(*peer);
                }
            }
        }
    }
    if let Some(network) = view.network.get() {
        if let Ok(info) = runtime.block_on(network.info()) {
            for peer in info.connected {
                if !out.contains(&peer) {
                    out.push(peer);
                }
            }
        }
    }
    out
}
