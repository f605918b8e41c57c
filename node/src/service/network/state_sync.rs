//! Syncing a shard's state from a peer's snapshot instead of executing
//! every block it missed.
//!
//! A shard this validator must execute whose store is more than
//! `network.state_sync_gap` blocks behind the shard's newest certified
//! header (a validator moved to a shard it last held long ago, or one that
//! was down) is synced this way:
//!
//! 1. **Fetch**, in the background: the state at a peer's head, in parts
//!    (see `snapshot`), from the shard's committee members first. The
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

use super::committee::CommitteeView;
use super::snapshot::{MAX_PARTS, PART_ENTRIES};
use super::wire::{Payload, Request, SnapshotPart, SnapshotRequest};
use crate::metrics::Metrics;
use crate::service::common::keeper::BeaconKeeper;
use anyhow::Context;
use atoll_p2p::{Handle, PeerId};
use atoll_primitives::{
    codec, merkle, Hash, ProvenReceipt, ShardBlockHeader, ShardId, ShardLayout, ShardMap, StateKey,
    StateValue,
};
use atoll_shard::state::StateTree;
use atoll_shard::ShardChain;
use atoll_storage::SnapshotInstall;
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

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

/// Why a fetched snapshot was not installed.
pub enum Fault {
    /// It failed a check: the peer sent a bad one.
    Peer(String),
    /// This validator's own stores failed.
    Local(anyhow::Error),
}

impl From<anyhow::Error> for Fault {
    fn from(err: anyhow::Error) -> Fault {
        Fault::Local(err)
    }
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

/// The transactions in `shard`'s chain up to `height` with their heights,
/// rebuilt from the stored final consensus blocks and checked against the
/// recorded headers, and the last recorded height that sent receipts to
/// each destination.
#[allow(clippy::type_complexity)]
fn history(
    shard: ShardId,
    height: u64,
    chain_id: atoll_primitives::ChainId,
    header_at: &dyn Fn(u64) -> Option<ShardBlockHeader>,
    payload_at: &dyn Fn(u64) -> anyhow::Result<Arc<Payload>>,
) -> anyhow::Result<(Vec<(Hash, u64)>, BTreeMap<ShardId, u64>)> {
    let mut known: HashSet<Hash> = HashSet::new();
    let mut transactions = Vec::new();
    let mut last_sent = BTreeMap::new();
    for h in 1..=height {
        let header =
            header_at(h).with_context(|| format!("shard {shard}'s header {h} is not recorded"))?;
        for (destination, _) in &header.receipt_roots {
            last_sent.insert(*destination, h);
        }
        if header.tx_count == 0 {
            continue;
        }
        let payload = payload_at(h)?;
        let offered = payload
            .shards
            .get(usize::from(shard.0))
            .map_or(&[][..], Vec::as_slice);
        // As the block was made: other chains' transactions, repeats and
        // transactions already in the chain are dropped, then bad
        // signatures (checked only when the root says some were).
        let mut seen = HashSet::new();
        let mut kept: Vec<(Hash, &atoll_primitives::SignedTransaction)> = offered
            .iter()
            .filter(|tx| tx.tx.chain_id == chain_id)
            .map(|tx| (tx.hash(), tx))
            .filter(|(hash, _)| seen.insert(*hash) && !known.contains(hash))
            .collect();
        let root =
            |kept: &[(Hash, _)]| merkle::root(&kept.iter().map(|(h, _)| *h).collect::<Vec<_>>());
        if root(&kept) != header.tx_root {
            kept.retain(|(_, tx)| tx.verify().is_ok());
            anyhow::ensure!(
                root(&kept) == header.tx_root,
                "the stored consensus block of beacon height {h} does not give shard {shard}'s \
                 certified transactions"
            );
        }
        for (hash, _) in kept {
            known.insert(hash);
            transactions.push((hash, h));
        }
    }
    Ok((transactions, last_sent))
}

/// Each outbox cursor is one past a receipt proven against the last
/// recorded header that sent to its destination, and every destination
/// sent to has one.
pub fn check_outbox(
    shard: ShardId,
    outbox: &[(ShardId, u64)],
    last_receipts: &[ProvenReceipt],
    last_sent: &BTreeMap<ShardId, u64>,
    header_at: &dyn Fn(u64) -> Option<ShardBlockHeader>,
) -> Result<(), Fault> {
    let bad = |why: String| Err(Fault::Peer(why));
    let destinations: Vec<ShardId> = outbox.iter().map(|(d, _)| *d).collect();
    if !destinations.windows(2).all(|w| w[0] < w[1]) {
        return bad("its outbox cursors are not in destination order".into());
    }
    if destinations != last_sent.keys().copied().collect::<Vec<_>>() {
        return bad(format!(
            "its outbox names destinations {destinations:?}, the recorded headers sent to {:?}",
            last_sent.keys().collect::<Vec<_>>()
        ));
    }
    if last_receipts.len() != outbox.len() {
        return bad("it proves only some of its outbox cursors".into());
    }
    for ((destination, cursor), proven) in outbox.iter().zip(last_receipts) {
        let sent_at = last_sent[destination];
        let receipt = &proven.receipt;
        let header = header_at(sent_at)
            .with_context(|| format!("shard {shard}'s header {sent_at} is not recorded"))?;
        let proven_ok = receipt.source == shard
            && receipt.destination == *destination
            && cursor.checked_sub(1) == Some(receipt.sequence)
            && proven.source_height == sent_at
            && proven.proof.is_last()
            && header
                .receipt_roots
                .iter()
                .find(|(d, _)| d == destination)
                .is_some_and(|(_, root)| proven.proof.verify(root, &receipt.hash()));
        if !proven_ok {
            return bad(format!(
                "its outbox cursor {cursor} to shard {destination} is not one past the last \
                 receipt of block {sent_at}"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::network::receipts::tests::{header, receipt, DEST, SOURCE};
    use atoll_primitives::{Action, ChainId, KeyPair, Receipt, SignedTransaction, Transaction};
    use atoll_shard::inbox::prove_receipts;

    /// Source blocks 1 (receipts 0 and 1), 2 (none) and 3 (receipt 2),
    /// with the last receipt proven.
    fn sent() -> (Vec<ShardBlockHeader>, ProvenReceipt) {
        let blocks: [Vec<Receipt>; 3] = [
            vec![receipt(0, 10), receipt(1, 11)],
            vec![],
            vec![receipt(2, 12)],
        ];
        let mut headers = vec![header(0, &[])];
        for (i, receipts) in blocks.iter().enumerate() {
            headers.push(header(i as u64 + 1, receipts));
        }
        let last = prove_receipts(3, &blocks[2], DEST).remove(0);
        (headers, last)
    }

    fn outbox_ok(
        headers: &[ShardBlockHeader],
        outbox: &[(ShardId, u64)],
        last: &[ProvenReceipt],
    ) -> bool {
        let header_at = |h: u64| headers.get(h as usize).cloned();
        let mut last_sent = BTreeMap::new();
        for header in headers {
            for (destination, _) in &header.receipt_roots {
                last_sent.insert(*destination, header.height);
            }
        }
        match check_outbox(SOURCE, outbox, last, &last_sent, &header_at) {
            Ok(()) => true,
            Err(Fault::Peer(_)) => false,
            Err(Fault::Local(err)) => panic!("a local error: {err:#}"),
        }
    }

    #[test]
    fn outbox_cursors_must_follow_the_last_receipt_sent() {
        let (headers, last) = sent();
        assert!(outbox_ok(
            &headers,
            &[(DEST, 3)],
            std::slice::from_ref(&last)
        ));
        // One too many or too few.
        assert!(!outbox_ok(
            &headers,
            &[(DEST, 4)],
            std::slice::from_ref(&last)
        ));
        assert!(!outbox_ok(
            &headers,
            &[(DEST, 2)],
            std::slice::from_ref(&last)
        ));
        // A destination sent to left out, or one never sent to added.
        assert!(!outbox_ok(&headers, &[], &[]));
        assert!(!outbox_ok(
            &headers,
            &[(DEST, 3), (ShardId(2), 1)],
            &[last.clone(), last.clone()]
        ));
        // A cursor without its proof.
        assert!(!outbox_ok(&headers, &[(DEST, 3)], &[]));
        // A receipt of an earlier block that sent to the destination.
        let earlier = prove_receipts(1, &[receipt(0, 10), receipt(1, 11)], DEST);
        assert!(!outbox_ok(&headers, &[(DEST, 2)], &[earlier[1].clone()]));
        // A forged receipt fails its proof.
        let mut forged = last.clone();
        forged.receipt = receipt(2, 13);
        assert!(!outbox_ok(&headers, &[(DEST, 3)], &[forged]));
    }

    /// Regression: a proof whose index is `u64::MAX` panicked the replica
    /// (overflow checks are on in release builds) before it was verified.
    #[test]
    fn a_proof_index_at_the_top_of_the_range_is_refused_not_a_panic() {
        let (headers, last) = sent();
        for (index, leaf_count) in [
            (u64::MAX, u64::MAX),
            (u64::MAX, 0),
            (u64::MAX - 1, u64::MAX),
        ] {
            let mut forged = last.clone();
            forged.proof.index = index;
            forged.proof.leaf_count = leaf_count;
            assert!(!outbox_ok(&headers, &[(DEST, 3)], &[forged]));
        }
    }

    #[test]
    fn a_receipt_that_does_not_end_its_block_proves_no_cursor() {
        let blocks = [vec![receipt(0, 10), receipt(1, 11)]];
        let headers = vec![header(0, &[]), header(1, &blocks[0])];
        let proven = prove_receipts(1, &blocks[0], DEST);
        assert!(outbox_ok(&headers, &[(DEST, 2)], &[proven[1].clone()]));
        assert!(!outbox_ok(&headers, &[(DEST, 1)], &[proven[0].clone()]));
    }

    fn transfer(key: &KeyPair, nonce: u64, chain: u64) -> SignedTransaction {
        Transaction {
            chain_id: ChainId(chain),
            sender: key.public(),
            nonce,
            fee: 1,
            action: Action::Transfer {
                to: atoll_primitives::Address([9; 20]),
                amount: 5,
            },
        }
        .sign(key)
    }

    /// A header of [`SOURCE`] at `height` whose block kept `kept`.
    fn block_of(height: u64, kept: &[&SignedTransaction]) -> ShardBlockHeader {
        let hashes: Vec<Hash> = kept.iter().map(|tx| tx.hash()).collect();
        ShardBlockHeader {
            tx_root: merkle::root(&hashes),
            tx_count: kept.len() as u32,
            ..header(height, &[])
        }
    }

    #[test]
    fn the_chain_s_transactions_are_rebuilt_as_the_blocks_kept_them() {
        let key = KeyPair::from_seed([3; 32]);
        let (a, b, c) = (
            transfer(&key, 0, 5),
            transfer(&key, 1, 5),
            transfer(&key, 2, 5),
        );
        let other_chain = transfer(&key, 3, 6);
        let mut bad = transfer(&key, 4, 5);
        bad.signature = a.signature;
        // Block 1 kept a and b (a repeated, another chain's transaction
        // and a bad signature offered too); block 2 was offered a again
        // (already in the chain) and c, and kept c.
        let payloads = [
            vec![a.clone(), a.clone(), other_chain, b.clone(), bad],
            vec![a.clone(), c.clone()],
        ];
        let headers = [header(0, &[]), block_of(1, &[&a, &b]), block_of(2, &[&c])];
        let header_at = |h: u64| headers.get(h as usize).cloned();
        let payload_at = |h: u64| -> anyhow::Result<Arc<Payload>> {
            let mut shards = vec![Vec::new(); 2];
            shards[usize::from(SOURCE.0)] = payloads[h as usize - 1].clone();
            Ok(Arc::new(Payload {
                shards,
                ..Payload::default()
            }))
        };
        let (transactions, last_sent) =
            history(SOURCE, 2, ChainId(5), &header_at, &payload_at).expect("rebuilt");
        assert_eq!(
            transactions,
            vec![(a.hash(), 1), (b.hash(), 1), (c.hash(), 2)]
        );
        assert!(last_sent.is_empty());
        // A header whose transactions the stored payload does not give.
        let wrong = [header(0, &[]), block_of(1, &[&b, &a])];
        let header_at = |h: u64| wrong.get(h as usize).cloned();
        assert!(history(SOURCE, 1, ChainId(5), &header_at, &payload_at).is_err());
    }
}
