//! Shard committees on a running validator: which shards it tracks, the
//! signatures its committee puts on shard headers, and the certificates a
//! leader puts into its payload.
//!
//! ```text
//!  committee member of shard s, after executing s's block at height k:
//!      HeaderVote{header, validator, peer id, signature}
//!        ── gossip /atoll/<c>/beacon/header-votes/1 ──▶ every validator
//!  each validator: signer in committee(header.epoch, s), signature valid
//!      → Certifier (per shard, heights above the recorded one, bounded)
//!  leader: for each shard, from the newest recorded header on, the headers
//!      that extend it and hold > 2/3 of their committee's stake
//!        → Payload.certified; the beacon block of that consensus block
//!          records them (every validator checks the signatures again)
//! ```
//!
//! A validator tracks (stores and executes) the shards whose committee it
//! is in this epoch, and those of the next epoch for the last
//! [`NEXT_EPOCH_LEAD`] beacon blocks of this one: it catches up on them
//! (from a state snapshot, or by executing the stored blocks) before it
//! must sign, without executing two shards for a whole epoch.

use super::wire::{CertifiedHeader, HeaderVote, MAX_CERTIFIED_PER_SHARD};
use atoll_consensus::simplex::ValidatorIndex;
use atoll_consensus::{Beacon, Committees};
use atoll_primitives::hash::domain;
use atoll_primitives::{codec, ChainId, Hash, KeyPair, ShardBlockHeader, ShardId, Signature};
use parking_lot::Mutex;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, OnceLock};

/// Heights above a shard's recorded head for which votes are kept.
pub const VOTE_WINDOW: u64 = 256;
/// Most epochs a validator looks back for a header whose certification
/// may wait on its vote.
const OWED_EPOCHS: u64 = 256;
/// Largest encoded header vote.
pub const MAX_VOTE_BYTES: usize = 64 * 1024;
/// Beacon blocks before an epoch ends from which a validator tracks the
/// shards of its next epoch's committees (the whole epoch when it is
/// shorter). Long enough to sync a shard's state and execute the blocks
/// above it (about 100 s at two blocks a second); short enough that,
/// with the default epoch of 1,000 blocks, a validator in one committee
/// executes one shard for four fifths of the time instead of two for
/// the whole epoch whenever its committee changes.
pub const NEXT_EPOCH_LEAD: u64 = 200;

/// Whether, with the newest beacon block at `height` and epochs of
/// `epoch_length` blocks, validators track the shards of their next
/// epoch's committees already: within [`NEXT_EPOCH_LEAD`] blocks of the
/// next epoch's first block.
pub fn next_epoch_tracked(height: u64, epoch_length: u64) -> bool {
    let epoch_length = epoch_length.max(1);
    let next_starts = (height.saturating_add(1) / epoch_length + 1).saturating_mul(epoch_length);
    height.saturating_add(1 + NEXT_EPOCH_LEAD) >= next_starts
}

/// Why a header vote from the network is not taken.
#[derive(Debug, PartialEq, Eq)]
pub enum VoteFault {
    /// Malformed, for another chain or shard, not by a committee member,
    /// or badly signed: its sender is scored down.
    Bad,
    /// Well-formed but of no use (out of the window, or a repeat): ignored.
    Unwanted,
}

/// What a header vote signs.
fn vote_message(chain: ChainId, header: &Hash, peer: &[u8]) -> Hash {
    Hash::domain(
        &domain::HEADER_VOTE,
        &[&chain.0.to_be_bytes(), header.as_bytes(), peer],
    )
}

/// What a certificate's signatures sign (no peer id: one per signer).
fn certified_message(chain: ChainId, header: &Hash) -> Hash {
    Hash::domain(
        &domain::HEADER_VOTE,
        &[&chain.0.to_be_bytes(), header.as_bytes(), b"certified"],
    )
}

/// This validator's part in the committees, shared by the replica (which
/// signs headers and fetches receipts) and the engine (which checks votes).
pub struct CommitteeView {
    /// The chain.
    pub chain: ChainId,
    /// Every shard's committee, per epoch.
    pub committees: Arc<Committees>,
    /// The number of shards.
    pub shards: u16,
    /// This validator's index and key, if it is one.
    pub key: Option<(ValidatorIndex, KeyPair)>,
    /// The network, once started.
    pub network: OnceLock<atoll_p2p::Handle>,
    /// Votes and certificates collected for the next payloads.
    pub certifier: Mutex<Certifier>,
    /// Peer ids of validators, learned from their signed votes.
    pub peers: Mutex<BTreeMap<ValidatorIndex, atoll_p2p::PeerId>>,
    /// Receipts pushed to this validator, not yet taken.
    pub pushed: super::pushed::Pushed,
}

impl CommitteeView {
    /// The shards this validator tracks now: its committees of the
    /// beacon's epoch, those of the next within [`NEXT_EPOCH_LEAD`] blocks
    /// of its start, and any shard whose certification
    /// waits on a header of an earlier epoch when it was in the shard's
    /// committee (its vote may be the one missing, and it can sign only
    /// what it executed). A node that is not a validator tracks every
    /// shard.
    pub fn tracked(&self, beacon: &Beacon) -> BTreeSet<ShardId> {
        let epoch = beacon.epoch();
        match &self.key {
            Some((index, _)) if !self.committees.everyone() => {
                let mut shards: BTreeSet<ShardId> = self
                    .committees
                    .shards_of(epoch, *index)
                    .into_iter()
                    .collect();
                if next_epoch_tracked(beacon.height(), beacon.epoch_length()) {
                    shards.extend(self.committees.shards_of(epoch + 1, *index));
                }
                for shard in (0..self.shards).map(ShardId) {
                    let waiting = beacon.shard_head(shard).map_or(0, |h| h.epoch);
                    let from = waiting.max(epoch.saturating_sub(OWED_EPOCHS));
                    if (from..epoch).any(|e| self.committees.is_member(e, shard, *index)) {
                        shards.insert(shard);
                    }
                }
                shards
            }
            _ => (0..self.shards).map(ShardId).collect(),
        }
    }

    /// Signs `header` if this validator is in its committee, keeps the vote
    /// (within the window above `recorded`, the shard's newest recorded
    /// height) and gossips it. A vote no peer hears is sent again by
    /// [`super::revote::Revoter`] if certification stalls.
    pub fn vote_and_publish(
        &self,
        header: &ShardBlockHeader,
        recorded: u64,
        runtime: &tokio::runtime::Handle,
    ) {
        let Some(network) = self.network.get() else {
            return;
        };
        let Some(vote) = self.vote(header, &network.peer_id().to_bytes(), recorded) else {
            return;
        };
        let bytes = codec::encode(&vote);
        let network = network.clone();
        runtime.spawn(async move {
            let _ = network.publish(atoll_p2p::Topic::HeaderVotes, bytes).await;
        });
    }

    /// Whether `peer` may push receipts of `source` in `epoch`: it is a
    /// validator (known by the peer id its header votes bind) in the
    /// source's committee of that epoch or one next to it. A stranger's
    /// push is dropped unread.
    pub fn may_push(&self, peer: &atoll_p2p::PeerId, source: ShardId, epoch: u64) -> bool {
        let validator = self
            .peers
            .lock()
            .iter()
            .find(|(_, p)| *p == peer)
            .map(|(v, _)| *v);
        validator.is_some_and(|v| {
            [epoch.saturating_sub(1), epoch, epoch.saturating_add(1)]
                .into_iter()
                .any(|e| self.committees.is_member(e, source, v))
        })
    }

    /// This validator's vote on `header` (None if it is not in the
    /// header's committee), kept in its own certifier as any other vote.
    pub fn vote(
        &self,
        header: &ShardBlockHeader,
        peer: &[u8],
        recorded: u64,
    ) -> Option<HeaderVote> {
        let (index, key) = self.key.as_ref()?;
        if !self
            .committees
            .is_member(header.epoch, header.shard, *index)
        {
            return None;
        }
        let hash = header.hash();
        // Two signatures: one binds the peer id (for the vote), one does
        // not (the one a certificate carries).
        let signature = key.sign(vote_message(self.chain, &hash, peer).as_bytes());
        let certified = key.sign(certified_message(self.chain, &hash).as_bytes());
        let vote = HeaderVote {
            header: header.clone(),
            validator: *index,
            peer: peer.to_vec(),
            signature,
            certified,
        };
        self.certifier.lock().add(vote.clone(), Some(recorded));
        Some(vote)
    }

    /// Checks a vote from the network: decodes, then (cheap checks first)
    /// whether the certifier would keep it given the shard's `recorded`
    /// height and the beacon's `epoch` (no header of a later epoch than
    /// the next can be certified yet), signer in the header's committee,
    /// and only then both signatures. Replayed or out-of-window votes cost
    /// no signature check.
    pub fn check_vote(
        &self,
        bytes: &[u8],
        recorded: &dyn Fn(ShardId) -> u64,
        epoch: u64,
    ) -> Result<HeaderVote, VoteFault> {
        let vote: HeaderVote =
            codec::decode("header vote", bytes, MAX_VOTE_BYTES).map_err(|_| VoteFault::Bad)?;
        let header = &vote.header;
        if header.chain_id != self.chain || header.shard.0 >= self.shards {
            return Err(VoteFault::Bad);
        }
        if header.epoch > epoch.saturating_add(1)
            || !self
                .certifier
                .lock()
                .wants(&vote, Some(recorded(header.shard)))
        {
            return Err(VoteFault::Unwanted);
        }
        if !self
            .committees
            .is_member(header.epoch, header.shard, vote.validator)
        {
            return Err(VoteFault::Bad);
        }
        let key = self
            .committees
            .validators()
            .key(vote.validator)
            .ok_or(VoteFault::Bad)?;
        let hash = header.hash();
        let signed = key
            .verify(
                vote_message(self.chain, &hash, &vote.peer).as_bytes(),
                &vote.signature,
            )
            .and_then(|()| {
                key.verify(
                    certified_message(self.chain, &hash).as_bytes(),
                    &vote.certified,
                )
            });
        if signed.is_err() {
            return Err(VoteFault::Bad);
        }
        if let Ok(peer) = atoll_p2p::PeerId::from_bytes(&vote.peer) {
            let new = self.peers.lock().insert(vote.validator, peer) != Some(peer);
            if let (true, Some(network)) = (new, self.network.get()) {
                // A validator: strangers never take its connection slot.
                network.reserve(vec![peer]);
            }
        }
        Ok(vote)
    }

    /// Whether `certified` holds valid signatures of more than two thirds
    /// of its header's committee's stake.
    pub fn is_certified(&self, certified: &CertifiedHeader) -> bool {
        let header = &certified.header;
        if header.chain_id != self.chain || header.shard.0 >= self.shards {
            return false;
        }
        let message = certified_message(self.chain, &header.hash());
        let mut signers = BTreeSet::new();
        for (validator, signature) in &certified.signatures {
            if !self
                .committees
                .is_member(header.epoch, header.shard, *validator)
            {
                return false;
            }
            let Some(key) = self.committees.validators().key(*validator) else {
                return false;
            };
            if key.verify(message.as_bytes(), signature).is_err() || !signers.insert(*validator) {
                return false;
            }
        }
        self.committees
            .is_quorum(header.epoch, header.shard, &signers)
    }

    /// The certified headers of `certified` that the beacon can record, in
    /// order: per shard, each extends the one before (starting from the
    /// beacon's newest recorded header). Everything else is left out, the
    /// same way on every validator.
    pub fn recordable(
        &self,
        beacon: &Beacon,
        certified: &[CertifiedHeader],
    ) -> Vec<ShardBlockHeader> {
        let mut heads: BTreeMap<ShardId, (u64, Hash, u64)> = BTreeMap::new();
        let mut out = Vec::new();
        for item in certified {
            let header = &item.header;
            let head = match heads.get(&header.shard) {
                Some(head) => Some(*head),
                None => beacon
                    .shard_head(header.shard)
                    .map(|h| (h.height, h.hash(), h.epoch)),
            };
            let Some((height, hash, epoch)) = head else {
                continue;
            };
            let extends = header.height == height + 1
                && header.parent == hash
                && header.epoch >= epoch
                && header.epoch <= beacon.epoch()
                && beacon
                    .schedule()
                    .get(header.epoch)
                    .is_some_and(|map| map.hash() == header.map_hash);
            if extends && self.is_certified(item) {
                heads.insert(header.shard, (header.height, header.hash(), header.epoch));
                out.push(header.clone());
            }
        }
        out
    }
}

/// Header votes, collected until a quorum certifies a header.
#[derive(Default)]
pub struct Certifier {
    /// Per (shard, height): per header hash, the header and its
    /// certificate signatures by signer.
    votes: BTreeMap<(ShardId, u64), BTreeMap<Hash, Collected>>,
    /// Signers seen per (shard, height): a second vote of one signer at a
    /// height is not counted.
    seen: BTreeMap<(ShardId, u64), BTreeSet<ValidatorIndex>>,
}

struct Collected {
    header: ShardBlockHeader,
    signatures: BTreeMap<ValidatorIndex, Signature>,
}

impl Certifier {
    /// Adds a checked vote; with `recorded` (the shard's newest recorded
    /// height), votes at or below it or more than [`VOTE_WINDOW`] heights
    /// above it are not kept (one refused now may be sent again later).
    /// Returns whether it was kept.
    pub fn add(&mut self, vote: HeaderVote, recorded: Option<u64>) -> bool {
        if !self.wants(&vote, recorded) {
            return false;
        }
        let key = (vote.header.shard, vote.header.height);
        self.seen.entry(key).or_default().insert(vote.validator);
        self.votes
            .entry(key)
            .or_default()
            .entry(vote.header.hash())
            .or_insert_with(|| Collected {
                header: vote.header,
                signatures: BTreeMap::new(),
            })
            .signatures
            .insert(vote.validator, vote.certified);
        true
    }

    /// Whether [`Certifier::add`] would keep `vote`: inside the window
    /// above `recorded` and the first from its validator at its height.
    /// Checks no signature.
    pub fn wants(&self, vote: &HeaderVote, recorded: Option<u64>) -> bool {
        let height = vote.header.height;
        if let Some(recorded) = recorded {
            if height <= recorded || height > recorded.saturating_add(VOTE_WINDOW) {
                return false;
            }
        }
        !self
            .seen
            .get(&(vote.header.shard, height))
            .is_some_and(|seen| seen.contains(&vote.validator))
    }

    /// Drops what is at or below each shard's recorded height.
    pub fn prune(&mut self, recorded: &BTreeMap<ShardId, u64>) {
        let keep =
            |(shard, height): &(ShardId, u64)| recorded.get(shard).is_none_or(|r| *height > *r);
        self.votes.retain(|k, _| keep(k));
        self.seen.retain(|k, _| keep(k));
    }

    /// For each shard, the certified headers that extend the beacon's
    /// newest recorded one, in order.
    pub fn certified(&self, view: &CommitteeView, beacon: &Beacon) -> Vec<CertifiedHeader> {
        let mut out = Vec::new();
        for shard in (0..view.shards).map(ShardId) {
            let Some(head) = beacon.shard_head(shard) else {
                continue;
            };
            let (mut height, mut parent) = (head.height, head.hash());
            for _ in 0..MAX_CERTIFIED_PER_SHARD {
                let Some(candidates) = self.votes.get(&(shard, height + 1)) else {
                    break;
                };
                let found = candidates.values().find(|c| {
                    c.header.parent == parent && {
                        let signers = c.signatures.keys().copied().collect();
                        view.committees.is_quorum(c.header.epoch, shard, &signers)
                    }
                });
                let Some(found) = found else {
                    break;
                };
                out.push(CertifiedHeader {
                    header: found.header.clone(),
                    signatures: found.signatures.iter().map(|(v, s)| (*v, *s)).collect(),
                });
                height += 1;
                parent = found.header.hash();
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use atoll_consensus::simplex::ValidatorSet;
    use atoll_primitives::ShardLayout;

    fn genesis(shard: u16) -> ShardBlockHeader {
        ShardBlockHeader {
            chain_id: ChainId(5),
            shard: ShardId(shard),
            height: 0,
            parent: Hash::ZERO,
            timestamp_ms: 0,
            epoch: 0,
            map_hash: Hash::ZERO,
            state_root: Hash::ZERO,
            tx_root: Hash::ZERO,
            outcome_root: Hash::ZERO,
            receipt_roots: Vec::new(),
            incoming_root: Hash::ZERO,
            inbox_cursors: Vec::new(),
            congested: false,
            tx_count: 0,
            burnt_fees: 0,
        }
    }

    fn view(index: ValidatorIndex) -> CommitteeView {
        let keys: Vec<KeyPair> = (0..6u8).map(|i| KeyPair::from_seed([i; 32])).collect();
        let stakes: Vec<_> = keys.iter().map(|k| (k.public(), 1)).collect();
        let set = ValidatorSet::new(&stakes).expect("validators");
        CommitteeView {
            chain: ChainId(5),
            committees: Arc::new(Committees::new(set, 2, 2, Hash::ZERO)),
            shards: 2,
            key: Some((index, keys[usize::from(index)].clone())),
            network: OnceLock::new(),
            certifier: Mutex::new(Certifier::default()),
            peers: Mutex::new(BTreeMap::new()),
            pushed: Default::default(),
        }
    }

    #[test]
    fn a_shard_waiting_on_an_old_committee_is_tracked_by_its_members() {
        // The beacon is in epoch 3 and has recorded nothing past the
        // genesis headers (epoch 0): both shards wait on headers of
        // epochs 0 to 2.
        let layout = ShardLayout::uniform(2).expect("layout");
        let mut beacon = Beacon::new(ChainId(5), layout, 10, vec![genesis(0), genesis(1)]);
        while beacon.epoch() < 3 {
            beacon.propose(Vec::new(), 1).expect("empty beacon block");
        }
        let mut owed = 0;
        for index in 0..6 {
            let view = view(index);
            let committees = &view.committees;
            let tracked = view.tracked(&beacon);
            for shard in (0..2).map(ShardId) {
                let now = (3..=4).any(|e| committees.is_member(e, shard, index));
                let before = (0..3).any(|e| committees.is_member(e, shard, index));
                assert_eq!(tracked.contains(&shard), now || before, "{index} {shard}");
                owed += usize::from(before && !now);
            }
        }
        assert!(owed > 0, "no validator is kept on a shard by an old epoch");
    }

    #[test]
    fn the_next_epochs_shards_are_tracked_only_near_its_start() {
        let layout = ShardLayout::uniform(2).expect("layout");
        let length = 3 * NEXT_EPOCH_LEAD;
        let mut beacon = Beacon::new(ChainId(5), layout, length, vec![genesis(0), genesis(1)]);
        let changes = |view: &CommitteeView| {
            let index = view.key.as_ref().map_or(0, |(i, _)| *i);
            view.committees.shards_of(0, index) != view.committees.shards_of(1, index)
        };
        let movers: Vec<_> = (0..6).map(view).filter(|v| changes(v)).collect();
        assert!(
            !movers.is_empty(),
            "no validator changes committee at epoch 1"
        );
        let last_alone = length - NEXT_EPOCH_LEAD - 1;
        // The newest beacon block at `last_alone - 1`: the next is the
        // last before the lead; at `last_alone`, the next is within it.
        assert!(!next_epoch_tracked(last_alone - 1, length));
        assert!(next_epoch_tracked(last_alone, length));
        assert!(next_epoch_tracked(length - 2, length));
        assert!(!next_epoch_tracked(length - 1, length), "epoch 1 has begun");
        assert!((0..NEXT_EPOCH_LEAD).all(|h| next_epoch_tracked(h, NEXT_EPOCH_LEAD)));
        while beacon.height() + 1 < last_alone {
            beacon.propose(Vec::new(), 1).expect("empty beacon block");
        }
        for stage in ["epoch 0 alone", "epoch 0 and 1"] {
            for view in &movers {
                let index = view.key.as_ref().map_or(0, |(i, _)| *i);
                let mut expected: BTreeSet<ShardId> =
                    view.committees.shards_of(0, index).into_iter().collect();
                if stage == "epoch 0 and 1" {
                    expected.extend(view.committees.shards_of(1, index));
                }
                assert_eq!(
                    view.tracked(&beacon),
                    expected,
                    "{stage}, validator {index}"
                );
            }
            // The next beacon block is the first within the lead.
            beacon.propose(Vec::new(), 1).expect("empty beacon block");
        }
    }

    /// Regression (hostile peers): a vote the certifier already holds or
    /// one outside the window is ignored before its signatures are
    /// checked (a forged copy of a held vote is not even looked at), and a
    /// forged vote inside the window scores its sender down.
    #[test]
    fn header_votes_are_windowed_before_their_signatures_are_checked() {
        let member = (0..6)
            .find(|&i| view(0).committees.is_member(0, ShardId(0), i))
            .expect("shard 0 has members");
        let signer = view(member);
        let header = ShardBlockHeader {
            height: 1,
            ..genesis(0)
        };
        let vote = signer.vote(&header, b"peer", 0).expect("a member votes");
        let bytes = codec::encode(&vote);
        let receiver = view(if member == 0 { 1 } else { 0 });
        let at = |height: u64| move |_: ShardId| height;
        assert_eq!(receiver.check_vote(&bytes, &at(0), 0), Ok(vote.clone()));
        receiver.certifier.lock().add(vote.clone(), Some(0));
        let mut forged = vote.clone();
        forged.signature = forged.certified;
        let forged = codec::encode(&forged);
        assert_eq!(
            receiver.check_vote(&forged, &at(0), 0),
            Err(VoteFault::Unwanted)
        );
        let fresh = view(receiver.key.as_ref().map_or(0, |(i, _)| *i));
        assert_eq!(fresh.check_vote(&forged, &at(0), 0), Err(VoteFault::Bad));
        assert_eq!(
            fresh.check_vote(&bytes, &at(1), 0),
            Err(VoteFault::Unwanted)
        );
        assert_eq!(
            fresh.check_vote(&bytes, &at(u64::MAX), 0),
            Err(VoteFault::Unwanted)
        );
        assert_eq!(fresh.check_vote(&[1, 2, 3], &at(0), 0), Err(VoteFault::Bad));
        // A header of an epoch the beacon cannot certify yet.
        let mut later = vote.clone();
        later.header.epoch = 2;
        let later = codec::encode(&later);
        assert_eq!(
            fresh.check_vote(&later, &at(0), 0),
            Err(VoteFault::Unwanted)
        );
    }

    /// Regression (hostile peers): pushes were taken from anyone.
    #[test]
    fn only_possible_source_committee_members_may_push() {
        let receiver = view(0);
        let shard = ShardId(1);
        let member = (0..6)
            .find(|&v| (0..=1).any(|e| receiver.committees.is_member(e, shard, v)))
            .expect("a member");
        let outsider =
            (0..6).find(|&v| !(0..=2).any(|e| receiver.committees.is_member(e, shard, v)));
        let (member_peer, stranger) = (atoll_p2p::PeerId::random(), atoll_p2p::PeerId::random());
        assert!(!receiver.may_push(&member_peer, shard, 0), "not known yet");
        receiver.peers.lock().insert(member, member_peer);
        assert!(receiver.may_push(&member_peer, shard, 0));
        assert!(!receiver.may_push(&stranger, shard, 0));
        if let Some(outsider) = outsider {
            let peer = atoll_p2p::PeerId::random();
            receiver.peers.lock().insert(outsider, peer);
            assert!(!receiver.may_push(&peer, shard, 1));
        }
    }
}
