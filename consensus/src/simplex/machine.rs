//! The protocol as a pure state machine: [`Simplex::handle`] takes one
//! [`Input`] and returns the [`Effect`]s the driver must carry out, in order.
//! A [`Effect::Persist`] must be durable before any later effect of the same
//! call is carried out (a vote is stored before it is sent).

use super::message::{
    Block, Certificate, Choice, Evidence, FinalBlock, Message, Proposal, ValidatorIndex,
    ValidatorSet, Vote,
};
use atoll_primitives::{ChainId, Hash, KeyPair};
use borsh::{BorshDeserialize, BorshSerialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

/// Heights ahead of the current one whose messages are kept; later ones are
/// dropped (a validator that far behind catches up through certificates).
pub const MAX_AHEAD: u64 = 64;
/// Heights below the finalized one whose votes and certificates are kept
/// (to answer validators catching up).
pub const KEEP_BEHIND: u64 = 256;
/// Most heights whose votes a validator sends again at once.
pub const RESEND_HEIGHTS: u64 = 16;
/// Most certificates (and blocks) one sync answer carries.
pub const MAX_SYNC: usize = 128;
/// The timeout doubles with each height that ended empty in a row, from
/// the second on, up to this factor. One empty height (one validator
/// down, its turn to lead) is routine and costs no more than a timeout;
/// heights ending empty in a row mean the network is slower than the
/// timeout.
pub const MAX_BACKOFF: u32 = 16;

/// What a validator signed, as persisted before it is sent: after a restart
/// the machine never signs anything that conflicts with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum Record {
    /// It voted `choice` at `height`.
    Voted {
        /// The height.
        height: u64,
        /// The block or the empty block.
        choice: Choice,
    },
    /// It sent a finalize vote for `height`.
    Finalized {
        /// The height.
        height: u64,
    },
    /// It proposed the block `hash` at `height` (as leader): after a
    /// restart it proposes nothing else there.
    Proposed {
        /// The height.
        height: u64,
        /// The block.
        hash: Hash,
    },
}

/// What the machine is told.
#[derive(Clone, Debug)]
pub enum Input {
    /// Begin (or resume after a restart): enter the current height.
    Start,
    /// A message from a peer (not yet checked).
    Message(Message),
    /// The timeout scheduled for `height` fired.
    Timeout {
        /// Its height.
        height: u64,
    },
    /// The payload asked for by [`Effect::NeedPayload`].
    Payload {
        /// The height it is for.
        height: u64,
        /// The payload.
        payload: Vec<u8>,
    },
}

/// What the driver must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Store this durably before carrying out the effects after it.
    Persist(Record),
    /// Send to every other validator.
    Broadcast(Message),
    /// Send to the peer whose message is being handled.
    Reply(Message),
    /// Call back with [`Input::Timeout`] for `height` after `after`.
    ScheduleTimeout {
        /// The height.
        height: u64,
        /// The delay.
        after: Duration,
    },
    /// This validator leads `height`: call back with [`Input::Payload`].
    NeedPayload {
        /// The height.
        height: u64,
        /// The block the new one extends.
        parent: Hash,
    },
    /// Blocks became final, in height order (each once, ever).
    Finalized(Vec<Block>),
    /// A validator signed two conflicting messages.
    Evidence(Evidence),
}

/// The fixed parameters of one validator's machine.
#[derive(Clone, Debug)]
pub struct Config {
    /// The chain (part of everything signed).
    pub chain: ChainId,
    /// The validators.
    pub validators: ValidatorSet,
    /// This validator's key and index (None: a follower that does not vote).
    pub key: Option<(ValidatorIndex, KeyPair)>,
    /// The hash the first block extends.
    pub genesis: Hash,
    /// How long a height waits for a proposal before voting for the empty
    /// block (the paper's 3Δ), before back-off.
    pub timeout: Duration,
}

/// One validator's view of the protocol. See the module docs of
/// [`crate::simplex`].
pub struct Simplex {
    config: Config,
    height: u64,
    /// Heights that ended empty in a row (for the timeout's back-off).
    empty_streak: u32,
    /// Proposals by block hash (the first per height and leader).
    blocks: HashMap<Hash, Proposal>,
    proposal_at: BTreeMap<u64, Proposal>,
    /// Votes by (height, choice; None = finalize), by voter.
    votes: BTreeMap<(u64, Option<Choice>), BTreeMap<ValidatorIndex, Vote>>,
    /// The first block each validator voted for at each height.
    first_vote: BTreeMap<(u64, ValidatorIndex), Vote>,
    /// Notarizations (choice Some) and finalizations (None).
    certificates: BTreeMap<(u64, Option<Choice>), Certificate>,
    /// What this validator signed.
    signed: BTreeMap<u64, SignedAt>,
    /// The newest final block.
    final_height: u64,
    final_hash: Hash,
    /// Heights whose payload was asked for.
    asked_payload: BTreeSet<u64>,
    /// Offenders already reported for double votes, per height.
    reported: BTreeSet<(u64, ValidatorIndex)>,
    /// Heights where the leader's second proposal was seen (and reported).
    extra_proposal: BTreeSet<u64>,
}

/// What this validator signed at one height.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct SignedAt {
    block: Option<Hash>,
    empty: bool,
    finalize: bool,
    proposed: bool,
}

impl SignedAt {
    /// The choices of the votes signed (`None`: the finalize vote).
    fn choices(&self) -> Vec<Option<Choice>> {
        let mut choices = Vec::new();
        if let Some(hash) = self.block {
            choices.push(Some(Choice::Block(hash)));
        }
        if self.empty {
            choices.push(Some(Choice::Empty));
        }
        if self.finalize {
            choices.push(None);
        }
        choices
    }
}

impl Simplex {
    /// A machine that resumes from `records` (everything it signed before,
    /// in any order) with the newest final block at `final_height` with
    /// `final_hash` (the genesis at 0).
    pub fn new(config: Config, records: &[Record], final_height: u64, final_hash: Hash) -> Simplex {
        let mut signed: BTreeMap<u64, SignedAt> = BTreeMap::new();
        let mut height = final_height + 1;
        for record in records {
            match *record {
                Record::Voted { height: h, choice } => {
                    let at = signed.entry(h).or_default();
                    match choice {
                        Choice::Block(hash) => at.block = Some(hash),
                        Choice::Empty => at.empty = true,
                    }
                    height = height.max(h);
                }
                Record::Finalized { height: h } => {
                    signed.entry(h).or_default().finalize = true;
                    height = height.max(h.saturating_add(1));
                }
                Record::Proposed { height: h, .. } => {
                    signed.entry(h).or_default().proposed = true;
                    height = height.max(h);
                }
            }
        }
        Simplex {
            config,
            height,
            empty_streak: 0,
            blocks: HashMap::new(),
            proposal_at: BTreeMap::new(),
            votes: BTreeMap::new(),
            first_vote: BTreeMap::new(),
            certificates: BTreeMap::new(),
            signed,
            final_height,
            final_hash,
            asked_payload: BTreeSet::new(),
            reported: BTreeSet::new(),
            extra_proposal: BTreeSet::new(),
        }
    }

    /// The height being decided.
    pub fn height(&self) -> u64 {
        self.height
    }

    /// The lowest height above the final one and below the current one
    /// without a notarization (of a block or of the empty block) here:
    /// until it has one, no proposal above it can be voted for.
    pub fn missing_notarization(&self) -> Option<u64> {
        (self.final_height + 1..self.height).find(|h| {
            self.notarized_block(*h).is_none()
                && !self.certificates.contains_key(&(*h, Some(Choice::Empty)))
        })
    }

    /// The newest final height and block hash.
    pub fn final_block(&self) -> (u64, Hash) {
        (self.final_height, self.final_hash)
    }

    /// Whether `message` is signed as it must be (a proposal by its
    /// height's leader, a vote by a validator, a certificate by a quorum):
    /// what a driver checks before it forwards gossip. Changes nothing.
    pub fn is_signed(&self, message: &Message) -> bool {
        let (chain, validators) = (self.config.chain, &self.config.validators);
        match message {
            Message::Propose(proposal) => {
                proposal.signer == self.leader(proposal.block.height)
                    && proposal.verify(chain, validators)
            }
            Message::Vote(vote) => vote.verify(chain, validators),
            Message::Certificate(certificate) => certificate.verify(chain, validators),
            Message::Fetch(_) | Message::Sync(_) => true,
        }
    }

    /// Whether `message` could change anything here: a proposal, vote or
    /// certificate inside the height window that this machine does not
    /// hold yet. Cheap (no signature is checked), so a driver asks it
    /// before [`Simplex::is_signed`]: replayed old votes and certificates
    /// then cost a lookup, not a signature check per copy.
    pub fn wants(&self, message: &Message) -> bool {
        match message {
            Message::Propose(proposal) => {
                let height = proposal.block.height;
                height != 0
                    && self.in_window(height)
                    && !self.blocks.contains_key(&proposal.block.hash())
            }
            Message::Vote(vote) => {
                let key = (vote.height, vote.choice);
                vote.height != 0
                    && self.in_window(vote.height)
                    && !self.certificates.contains_key(&key)
                    && !self
                        .votes
                        .get(&key)
                        .is_some_and(|by| by.contains_key(&vote.signer))
            }
            Message::Certificate(certificate) => {
                certificate.height != 0
                    && certificate.height.saturating_add(KEEP_BEHIND) > self.final_height
                    && !self
                        .certificates
                        .contains_key(&(certificate.height, certificate.choice))
            }
            Message::Fetch(_) | Message::Sync(_) => true,
        }
    }

    /// What proves `block` final, as far as this machine still holds it
    /// (call it when [`Effect::Finalized`] names the block).
    pub fn final_proof(&self, block: &Block) -> Option<FinalBlock> {
        let hash = block.hash();
        let proposal = self.blocks.get(&hash)?.clone();
        Some(FinalBlock {
            proposal,
            notarization: self
                .certificates
                .get(&(block.height, Some(Choice::Block(hash))))
                .cloned(),
            finalization: self.certificates.get(&(block.height, None)).cloned(),
        })
    }

    /// The leader of `height`.
    pub fn leader(&self, height: u64) -> ValidatorIndex {
        self.config.validators.leader(height)
    }

    /// Handles one input.
    pub fn handle(&mut self, input: Input) -> Vec<Effect> {
        let mut out = Vec::new();
        match input {
            Input::Start => {
                self.resend_signed(&mut out);
                self.enter(self.height, &mut out);
                // Whatever was decided while this validator was away.
                out.push(Effect::Broadcast(Message::Sync(self.final_height + 1)));
            }
            Input::Timeout { height } => self.on_timeout(height, &mut out),
            Input::Payload { height, payload } => self.on_payload(height, payload, &mut out),
            Input::Message(message) => self.on_message(message, &mut out),
        }
        out
    }

    /// After a restart: sends again the votes recorded at the current
    /// height (a vote persisted just before a crash may never have left).
    /// Ed25519 signatures are deterministic, so these are the very
    /// signatures sent before, never new statements.
    /// Sends again every vote this validator signed above the final height
    /// (at most [`RESEND_HEIGHTS`] heights, the newest): after a restart,
    /// or when a height times out again. Certificates live in memory
    /// only, so a validator that restarted can no longer show the
    /// notarization that took it past a height; its votes at that height
    /// let the validators still there form it again (and without them, a
    /// network split between two heights by restarts would wait forever).
    fn resend_signed(&mut self, out: &mut Vec<Effect>) {
        let Some((me, key)) = self.config.key.clone() else {
            return;
        };
        let from = (self.final_height + 1).max(self.height.saturating_sub(RESEND_HEIGHTS - 1));
        let signed: Vec<(u64, SignedAt)> = self
            .signed
            .range(from..=self.height)
            .map(|(h, at)| (*h, *at))
            .collect();
        for (height, at) in signed {
            for choice in at.choices() {
                let vote = Vote::sign(self.config.chain, height, choice, me, &key);
                out.push(Effect::Broadcast(Message::Vote(vote)));
                self.count_vote(vote, out);
            }
        }
    }

    fn me(&self) -> Option<ValidatorIndex> {
        self.config.key.as_ref().map(|(i, _)| *i)
    }

    fn timeout(&self) -> Duration {
        let doublings = self.empty_streak.saturating_sub(1);
        self.config.timeout * (1u32 << doublings.min(MAX_BACKOFF.trailing_zeros()))
    }

    fn enter(&mut self, height: u64, out: &mut Vec<Effect>) {
        self.height = height;
        out.push(Effect::ScheduleTimeout {
            height,
            after: self.timeout(),
        });
        if self.me() == Some(self.leader(height)) && self.asked_payload.insert(height) {
            if let Some((parent, _)) = self.tip(height) {
                out.push(Effect::NeedPayload { height, parent });
            }
        }
        self.try_vote(out);
        self.prune();
    }

    /// The newest non-empty block of a notarized chain up to `height - 1`
    /// (its hash and height): walking down, each height must have its block
    /// notarized (that is the tip) or its empty block notarized.
    fn tip(&self, height: u64) -> Option<(Hash, u64)> {
        let mut h = height - 1;
        loop {
            if h <= self.final_height {
                // Below the final block everything is settled.
                return (h == self.final_height).then_some((self.final_hash, h));
            }
            if let Some(hash) = self.notarized_block(h) {
                return Some((hash, h));
            }
            if !self.certificates.contains_key(&(h, Some(Choice::Empty))) {
                return None;
            }
            h -= 1;
        }
    }

    fn notarized_block(&self, height: u64) -> Option<Hash> {
        self.certificates
            .range((height, Some(Choice::Block(Hash::ZERO)))..)
            .take_while(|((h, _), _)| *h == height)
            .find_map(|((_, choice), _)| match choice {
                Some(Choice::Block(hash)) => Some(*hash),
                _ => None,
            })
    }

    /// Whether `block` extends a notarized chain (the paper's validity
    /// rule): its parent is notarized (or the final block) and every height
    /// between them has its empty block notarized.
    fn extends_notarized_chain(&self, block: &Block) -> bool {
        if block.parent_height >= block.height || block.parent_height < self.final_height {
            return false;
        }
        let parent_ok = if block.parent_height == self.final_height {
            block.parent == self.final_hash
        } else {
            self.certificates
                .contains_key(&(block.parent_height, Some(Choice::Block(block.parent))))
        };
        parent_ok
            && (block.parent_height + 1..block.height)
                .all(|h| self.certificates.contains_key(&(h, Some(Choice::Empty))))
    }

    fn on_payload(&mut self, height: u64, payload: Vec<u8>, out: &mut Vec<Effect>) {
        let Some((index, key)) = self.config.key.clone() else {
            return;
        };
        if height != self.height
            || self.leader(height) != index
            || self.proposal_at.contains_key(&height)
            || self.signed.get(&height).is_some_and(|s| s.proposed)
        {
            return;
        }
        let Some((parent, parent_height)) = self.tip(height) else {
            return;
        };
        let block = Block {
            height,
            parent,
            parent_height,
            payload,
        };
        let proposal = Proposal::sign(self.config.chain, block, index, &key);
        self.signed.entry(height).or_default().proposed = true;
        out.push(Effect::Persist(Record::Proposed {
            height,
            hash: proposal.block.hash(),
        }));
        out.push(Effect::Broadcast(Message::Propose(proposal.clone())));
        self.accept_proposal(proposal, out);
    }

    fn on_message(&mut self, message: Message, out: &mut Vec<Effect>) {
        match message {
            Message::Propose(proposal) => self.on_proposal(proposal, out),
            Message::Vote(vote) => self.on_vote(vote, out),
            Message::Certificate(certificate) => self.on_certificate(certificate, out),
            Message::Fetch(hash) => {
                if let Some(proposal) = self.blocks.get(&hash) {
                    out.push(Effect::Reply(Message::Propose(proposal.clone())));
                }
            }
            Message::Sync(from) => self.on_sync(from, out),
        }
    }

    fn in_window(&self, height: u64) -> bool {
        height > self.final_height.saturating_sub(KEEP_BEHIND) && height <= self.height + MAX_AHEAD
    }

    fn on_proposal(&mut self, proposal: Proposal, out: &mut Vec<Effect>) {
        let height = proposal.block.height;
        if height == 0
            || !self.in_window(height)
            || self.blocks.contains_key(&proposal.block.hash())
        {
            return;
        }
        if proposal.signer != self.leader(height)
            || !proposal.verify(self.config.chain, &self.config.validators)
        {
            return;
        }
        self.accept_proposal(proposal, out);
    }

    fn accept_proposal(&mut self, proposal: Proposal, out: &mut Vec<Effect>) {
        let height = proposal.block.height;
        let hash = proposal.block.hash();
        match self.proposal_at.get(&height) {
            Some(first) if first.block.hash() != hash => {
                let notarized = self
                    .certificates
                    .contains_key(&(height, Some(Choice::Block(hash))));
                if self.extra_proposal.contains(&height) && !notarized {
                    // A leader's third (or later) proposal at one height is
                    // kept only if a quorum notarized it: the first and one
                    // that proves the equivocation are enough otherwise.
                    return;
                }
                if self.extra_proposal.insert(height) {
                    out.push(Effect::Evidence(Evidence::DoubleProposal(
                        Box::new(first.clone()),
                        Box::new(proposal.clone()),
                    )));
                }
            }
            Some(_) => {}
            None => {
                self.proposal_at.insert(height, proposal.clone());
            }
        }
        // Both are kept: a notarization may name either, and finalizing
        // needs the block it names.
        self.blocks.insert(hash, proposal);
        self.try_vote(out);
        self.try_finalize(out);
    }

    /// Votes for the current height's proposal if it is valid and this
    /// validator has signed nothing at this height yet.
    fn try_vote(&mut self, out: &mut Vec<Effect>) {
        let height = self.height;
        let Some(me) = self.me() else { return };
        let signed = self.signed.get(&height).copied().unwrap_or_default();
        if signed.block.is_some() || signed.empty || signed.finalize {
            return;
        }
        let Some(proposal) = self.proposal_at.get(&height) else {
            return;
        };
        if !self.extends_notarized_chain(&proposal.block) {
            return;
        }
        let choice = Choice::Block(proposal.block.hash());
        self.sign_vote(me, height, Some(choice), out);
    }

    /// Persists, then sends, then counts this validator's own vote.
    fn sign_vote(
        &mut self,
        me: ValidatorIndex,
        height: u64,
        choice: Option<Choice>,
        out: &mut Vec<Effect>,
    ) {
        let Some((_, key)) = self.config.key.as_ref() else {
            return;
        };
        let at = self.signed.entry(height).or_default();
        let record = match choice {
            Some(Choice::Block(hash)) => {
                at.block = Some(hash);
                Record::Voted {
                    height,
                    choice: Choice::Block(hash),
                }
            }
            Some(Choice::Empty) => {
                at.empty = true;
                Record::Voted {
                    height,
                    choice: Choice::Empty,
                }
            }
            None => {
                at.finalize = true;
                Record::Finalized { height }
            }
        };
        let vote = Vote::sign(self.config.chain, height, choice, me, key);
        out.push(Effect::Persist(record));
        out.push(Effect::Broadcast(Message::Vote(vote)));
        self.count_vote(vote, out);
    }

    fn on_vote(&mut self, vote: Vote, out: &mut Vec<Effect>) {
        if !self.in_window(vote.height) || vote.height == 0 {
            return;
        }
        let key = (vote.height, vote.choice);
        if self
            .votes
            .get(&key)
            .is_some_and(|by| by.contains_key(&vote.signer))
            || self.certificates.contains_key(&key)
        {
            return;
        }
        if !vote.verify(self.config.chain, &self.config.validators) {
            return;
        }
        self.count_vote(vote, out);
    }

    fn count_vote(&mut self, vote: Vote, out: &mut Vec<Effect>) {
        if let Some(Choice::Block(_)) = vote.choice {
            match self.first_vote.get(&(vote.height, vote.signer)) {
                Some(first) if first.choice != vote.choice => {
                    if self.reported.insert((vote.height, vote.signer)) {
                        out.push(Effect::Evidence(Evidence::DoubleVote(
                            Box::new(*first),
                            Box::new(vote),
                        )));
                    }
                    // Only a validator's first block vote at a height counts.
                    return;
                }
                Some(_) => {}
                None => {
                    self.first_vote.insert((vote.height, vote.signer), vote);
                }
            }
        }
        let key = (vote.height, vote.choice);
        let by = self.votes.entry(key).or_default();
        by.insert(vote.signer, vote);
        let signers: BTreeSet<ValidatorIndex> = by.keys().copied().collect();
        if self.certificates.contains_key(&key) || !self.config.validators.is_quorum(&signers) {
            return;
        }
        let certificate = Certificate {
            height: vote.height,
            choice: vote.choice,
            signatures: by.iter().map(|(i, v)| (*i, v.signature)).collect(),
        };
        self.add_certificate(certificate, out);
    }

    fn on_certificate(&mut self, certificate: Certificate, out: &mut Vec<Effect>) {
        let key = (certificate.height, certificate.choice);
        if certificate.height == 0
            || self.certificates.contains_key(&key)
            || certificate.height.saturating_add(KEEP_BEHIND) <= self.final_height
        {
            return;
        }
        // Certificates may come from far ahead (this validator is behind):
        // they are checked, not windowed.
        if !certificate.verify(self.config.chain, &self.config.validators) {
            return;
        }
        self.add_certificate(certificate, out);
    }

    fn add_certificate(&mut self, certificate: Certificate, out: &mut Vec<Effect>) {
        let (height, choice) = (certificate.height, certificate.choice);
        self.certificates
            .insert((height, choice), certificate.clone());
        // Everyone must learn it, so that they move on too.
        out.push(Effect::Broadcast(Message::Certificate(certificate)));
        match choice {
            None => self.try_finalize(out),
            Some(choice) => {
                if height >= self.height {
                    if height == self.height {
                        if let (Choice::Block(_), Some(me)) = (choice, self.me()) {
                            let at = self.signed.get(&height).copied().unwrap_or_default();
                            // The paper's rule: finalize only if this
                            // validator did not vote for the empty block.
                            if !at.empty && !at.finalize {
                                self.sign_vote(me, height, None, out);
                            }
                        }
                    } else {
                        // Behind: ask for what was decided meanwhile.
                        out.push(Effect::Broadcast(Message::Sync(self.final_height + 1)));
                    }
                    self.empty_streak = match choice {
                        Choice::Empty => self.empty_streak.saturating_add(1),
                        Choice::Block(_) => 0,
                    };
                    self.enter(height.saturating_add(1), out);
                } else {
                    // An older height's notarization may complete the chain
                    // the current proposal needs.
                    self.try_vote(out);
                }
                self.try_finalize(out);
            }
        }
    }

    fn on_timeout(&mut self, height: u64, out: &mut Vec<Effect>) {
        if height != self.height {
            return;
        }
        if let Some(missing) = self.missing_notarization() {
            // A hole in the notarized chain below this height (its
            // certificate was missed, or lost in a restart): no proposal
            // here can be voted for until it is filled, so ask for what
            // peers hold from there (certificates, or their votes).
            out.push(Effect::Broadcast(Message::Sync(missing)));
        }
        let Some(me) = self.me() else {
            out.push(Effect::ScheduleTimeout {
                height,
                after: self.timeout(),
            });
            return;
        };
        let at = self.signed.get(&height).copied().unwrap_or_default();
        if !at.empty && !at.finalize {
            self.sign_vote(me, height, Some(Choice::Empty), out);
        } else {
            // Still here after voting: votes may have been lost. Send again
            // what this validator signed at this height and the ones
            // before it that are not final, and the newest certificate it
            // has, so that peers behind catch up.
            self.resend_signed(out);
            if let Some(((_, _), certificate)) =
                self.certificates.range(..(height, None)).next_back()
            {
                out.push(Effect::Broadcast(Message::Certificate(certificate.clone())));
            }
        }
        out.push(Effect::ScheduleTimeout {
            height,
            after: self.timeout(),
        });
    }

    /// Finalizes the newest height with a finalization certificate and a
    /// known notarized block, with every ancestor down to the last final
    /// block; asks for blocks it does not have.
    fn try_finalize(&mut self, out: &mut Vec<Effect>) {
        let finalized: Vec<u64> = self
            .certificates
            .keys()
            .filter(|(h, c)| c.is_none() && *h > self.final_height)
            .map(|(h, _)| *h)
            .collect();
        for height in finalized.into_iter().rev() {
            let Some(hash) = self.notarized_block(height) else {
                continue;
            };
            let mut chain = Vec::new();
            let mut cursor = hash;
            loop {
                if cursor == self.final_hash {
                    break;
                }
                let Some(proposal) = self.blocks.get(&cursor) else {
                    out.push(Effect::Broadcast(Message::Fetch(cursor)));
                    return;
                };
                if proposal.block.height <= self.final_height {
                    // It does not extend the final block: impossible while
                    // fewer than a third of the stake is faulty.
                    return;
                }
                chain.push(proposal.block.clone());
                cursor = proposal.block.parent;
            }
            chain.reverse();
            self.final_height = height;
            self.final_hash = hash;
            out.push(Effect::Finalized(chain));
            self.try_vote(out);
            return;
        }
    }

    fn on_sync(&mut self, from: u64, out: &mut Vec<Effect>) {
        for ((_, choice), certificate) in self.certificates.range((from, None)..).take(MAX_SYNC) {
            if let Some(Choice::Block(hash)) = choice {
                if let Some(proposal) = self.blocks.get(hash) {
                    out.push(Effect::Reply(Message::Propose(proposal.clone())));
                }
            }
            out.push(Effect::Reply(Message::Certificate(certificate.clone())));
        }
        // This validator's own votes at the heights where it holds no
        // certificate for them: certificates live in memory only, so after
        // restarts a notarization may exist nowhere any more, and the
        // votes it was made of (kept in every validator's vote log) are
        // how the one asking makes it again.
        let Some((me, key)) = self.config.key.clone() else {
            return;
        };
        let from = from.max(self.final_height + 1);
        let signed: Vec<(u64, SignedAt)> = self
            .signed
            .range(from..)
            .take(MAX_SYNC)
            .map(|(h, at)| (*h, *at))
            .collect();
        for (height, at) in signed {
            for choice in at.choices() {
                if !self.certificates.contains_key(&(height, choice)) {
                    let vote = Vote::sign(self.config.chain, height, choice, me, &key);
                    out.push(Effect::Reply(Message::Vote(vote)));
                }
            }
        }
    }

    /// Drops what no height in the window needs. Votes are kept only near
    /// the current height (certificates, which are small and make up the
    /// notarized chain, down to the final one).
    fn prune(&mut self) {
        let votes_from = self.height.saturating_sub(KEEP_BEHIND);
        if votes_from > 0 {
            self.votes = self.votes.split_off(&(votes_from, None));
            self.first_vote = self.first_vote.split_off(&(votes_from, 0));
        }
        let keep_from = self.final_height.saturating_sub(KEEP_BEHIND);
        if keep_from == 0 {
            return;
        }
        self.votes = self.votes.split_off(&(keep_from, None));
        self.certificates = self.certificates.split_off(&(keep_from, None));
        self.first_vote = self.first_vote.split_off(&(keep_from, 0));
        self.proposal_at = self.proposal_at.split_off(&keep_from);
        self.signed = self.signed.split_off(&keep_from);
        self.asked_payload = self.asked_payload.split_off(&keep_from);
        self.reported = self.reported.split_off(&(keep_from, 0));
        self.extra_proposal = self.extra_proposal.split_off(&keep_from);
        let final_hash = self.final_hash;
        self.blocks
            .retain(|hash, p| p.block.height >= keep_from || *hash == final_hash);
    }
}
