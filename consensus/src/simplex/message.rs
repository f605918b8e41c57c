//! The validator set and the signed messages of the protocol: proposals,
//! votes (for a block or for the empty block of a height), finalize votes,
//! and the certificates made of more than two thirds of the stake's votes.

use atoll_primitives::hash::domain;
use atoll_primitives::{codec, ChainId, Hash, KeyPair, PublicKey, Signature};
use borsh::{BorshDeserialize, BorshSerialize};
use std::collections::BTreeSet;
use thiserror::Error;

/// A validator's position in the [`ValidatorSet`].
pub type ValidatorIndex = u16;

/// Most validators a set may hold (certificates list one signature each).
pub const MAX_VALIDATORS: usize = 1024;

/// The validators and their stakes. Quorums are more than two thirds of the
/// total stake.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidatorSet {
    keys: Vec<PublicKey>,
    stakes: Vec<u64>,
    total: u128,
    /// The leaders of one turn of [`LEADER_SLOTS`] heights.
    schedule: Vec<ValidatorIndex>,
}

/// Heights in one turn of the leader schedule.
const LEADER_SLOTS: usize = 4096;

/// Why a validator set was refused.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum SetError {
    /// No validators, or more than [`MAX_VALIDATORS`].
    #[error("a validator set holds 1 to {MAX_VALIDATORS} validators, not {0}")]
    Size(usize),
    /// A stake of 0.
    #[error("validator {0} has no stake")]
    NoStake(usize),
    /// A key listed twice.
    #[error("validator {0} repeats an earlier key")]
    Repeated(usize),
}

impl ValidatorSet {
    /// The set of `validators` (key, stake), in this order.
    pub fn new(validators: &[(PublicKey, u64)]) -> Result<ValidatorSet, SetError> {
        if validators.is_empty() || validators.len() > MAX_VALIDATORS {
            return Err(SetError::Size(validators.len()));
        }
        let mut seen = BTreeSet::new();
        for (i, (key, stake)) in validators.iter().enumerate() {
            if *stake == 0 {
                return Err(SetError::NoStake(i));
            }
            if !seen.insert(key.0) {
                return Err(SetError::Repeated(i));
            }
        }
        let stakes: Vec<u64> = validators.iter().map(|(_, s)| *s).collect();
        Ok(ValidatorSet {
            keys: validators.iter().map(|(k, _)| *k).collect(),
            total: stakes.iter().map(|s| u128::from(*s)).sum(),
            schedule: leader_schedule(&stakes),
            stakes,
        })
    }

    /// The number of validators.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the set is empty (never: `new` refuses it).
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The index of `key`, if it is a validator.
    pub fn index_of(&self, key: &PublicKey) -> Option<ValidatorIndex> {
        self.keys
            .iter()
            .position(|k| k == key)
            .and_then(|i| ValidatorIndex::try_from(i).ok())
    }

    /// The key of validator `index`.
    pub fn key(&self, index: ValidatorIndex) -> Option<&PublicKey> {
        self.keys.get(usize::from(index))
    }

    /// The stake of validator `index` (0 if there is none).
    pub fn stake(&self, index: ValidatorIndex) -> u64 {
        self.stakes.get(usize::from(index)).copied().unwrap_or(0)
    }

    /// Whether `signers` hold more than two thirds of the stake.
    pub fn is_quorum(&self, signers: &BTreeSet<ValidatorIndex>) -> bool {
        let stake: u128 = signers
            .iter()
            .filter_map(|i| self.stakes.get(usize::from(*i)))
            .map(|s| u128::from(*s))
            .sum();
        3 * stake > 2 * self.total
    }

    /// The leader of `height`: validators take turns in proportion to their
    /// stake, in a fixed order that spreads each one's turns evenly (a
    /// weighted round robin; with equal stakes, 0, 1, 2, … in index order).
    ///
    /// Leaders used to be drawn by hashing the height. With shard
    /// committees a shard's transactions wait for one of its members to
    /// lead, and the draw made runs of other leaders unbounded: 8 heights
    /// in a row, 4 s, with 4 validators in committees of 2. In turn, a
    /// shard waits for at most the validators outside its committee.
    pub fn leader(&self, height: u64) -> ValidatorIndex {
        self.schedule[(height % LEADER_SLOTS as u64) as usize]
    }
}

/// One turn of [`LEADER_SLOTS`] leaders: each validator gets slots in
/// proportion to its stake (largest remainders first, then the lowest
/// index), interleaved by smooth weighted round robin, so that its turns
/// are evenly spaced. A validator with less than 1/4,096 of the stake may
/// get no slot (when others' remainders are larger): it then never leads,
/// where a draw by hash let it lead that rarely.
fn leader_schedule(stakes: &[u64]) -> Vec<ValidatorIndex> {
    let total: u128 = stakes.iter().map(|s| u128::from(*s)).sum();
    let slots_total = LEADER_SLOTS as u128;
    let mut slots: Vec<u128> = stakes
        .iter()
        .map(|s| u128::from(*s) * slots_total / total)
        .collect();
    let mut by_remainder: Vec<usize> = (0..stakes.len()).collect();
    by_remainder.sort_by_key(|&i| std::cmp::Reverse(u128::from(stakes[i]) * slots_total % total));
    let missing = slots_total - slots.iter().sum::<u128>();
    for &i in by_remainder.iter().take(missing as usize) {
        slots[i] += 1;
    }
    let slots: Vec<i128> = slots.iter().map(|s| *s as i128).collect();
    let mut current = vec![0i128; stakes.len()];
    (0..LEADER_SLOTS)
        .map(|_| {
            for (c, s) in current.iter_mut().zip(&slots) {
                *c += s;
            }
            let mut pick = 0;
            for i in 1..current.len() {
                if current[i] > current[pick] {
                    pick = i;
                }
            }
            current[pick] -= LEADER_SLOTS as i128;
            pick as ValidatorIndex
        })
        .collect()
}

/// What a vote is for: a block, or the empty block of a height whose
/// proposal did not come in time.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, BorshSerialize, BorshDeserialize,
)]
pub enum Choice {
    /// The block with this hash.
    Block(Hash),
    /// The empty block (⊥ in the paper).
    Empty,
}

/// The kinds of signed statement.
#[derive(Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
enum Statement {
    Vote { height: u64, choice: Choice },
    Finalize { height: u64 },
}

fn statement_hash(chain: ChainId, statement: Statement) -> Hash {
    Hash::domain(
        &domain::CONSENSUS_VOTE,
        &[&chain.0.to_be_bytes(), &codec::encode(&statement)],
    )
}

/// A block proposed for a height: its parent (the newest non-empty block of
/// the notarized chain it extends, or the genesis hash) and its payload.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Block {
    /// The height it is proposed for.
    pub height: u64,
    /// The parent's hash.
    pub parent: Hash,
    /// The parent's height (0: genesis).
    pub parent_height: u64,
    /// What the block carries (a beacon block's encoding, in the node).
    pub payload: Vec<u8>,
}

impl Block {
    /// The block's hash.
    pub fn hash(&self) -> Hash {
        Hash::domain(&domain::CONSENSUS_PROPOSAL, &[&codec::encode(self)])
    }
}

/// A leader's signed proposal.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Proposal {
    /// The block.
    pub block: Block,
    /// The leader.
    pub signer: ValidatorIndex,
    /// The leader's signature over the block hash.
    pub signature: Signature,
}

impl Proposal {
    /// `block`, signed by validator `signer` with `key`.
    pub fn sign(chain: ChainId, block: Block, signer: ValidatorIndex, key: &KeyPair) -> Proposal {
        let signature = key.sign(&proposal_message(chain, &block.hash()).0);
        Proposal {
            block,
            signer,
            signature,
        }
    }

    /// Whether the signature is the signer's.
    pub fn verify(&self, chain: ChainId, validators: &ValidatorSet) -> bool {
        validators.key(self.signer).is_some_and(|key| {
            key.verify(
                &proposal_message(chain, &self.block.hash()).0,
                &self.signature,
            )
            .is_ok()
        })
    }
}

fn proposal_message(chain: ChainId, block: &Hash) -> Hash {
    Hash::domain(
        &domain::CONSENSUS_PROPOSAL,
        &[&chain.0.to_be_bytes(), &block.0],
    )
}

/// A signed vote, or a signed finalize vote.
#[derive(Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Vote {
    /// The height.
    pub height: u64,
    /// `Some`: a vote for that choice; `None`: a finalize vote.
    pub choice: Option<Choice>,
    /// The voter.
    pub signer: ValidatorIndex,
    /// Its signature.
    pub signature: Signature,
}

impl Vote {
    fn statement(height: u64, choice: Option<Choice>) -> Statement {
        match choice {
            Some(choice) => Statement::Vote { height, choice },
            None => Statement::Finalize { height },
        }
    }

    /// A vote (`choice` `Some`) or finalize vote (`None`) at `height`.
    pub fn sign(
        chain: ChainId,
        height: u64,
        choice: Option<Choice>,
        signer: ValidatorIndex,
        key: &KeyPair,
    ) -> Vote {
        let message = statement_hash(chain, Vote::statement(height, choice));
        Vote {
            height,
            choice,
            signer,
            signature: key.sign(&message.0),
        }
    }

    /// Whether the signature is the signer's.
    pub fn verify(&self, chain: ChainId, validators: &ValidatorSet) -> bool {
        let message = statement_hash(chain, Vote::statement(self.height, self.choice));
        validators
            .key(self.signer)
            .is_some_and(|key| key.verify(&message.0, &self.signature).is_ok())
    }
}

/// More than two thirds of the stake signed the same statement: a
/// notarization (`choice` `Some`) or a finalization (`None`) of `height`.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Certificate {
    /// The height.
    pub height: u64,
    /// What was notarized, or `None` for a finalization.
    pub choice: Option<Choice>,
    /// The signatures, by validator index, ascending, no repeats.
    pub signatures: Vec<(ValidatorIndex, Signature)>,
}

impl Certificate {
    /// Whether the signatures are distinct validators', valid, and more than
    /// two thirds of the stake.
    pub fn verify(&self, chain: ChainId, validators: &ValidatorSet) -> bool {
        let message = statement_hash(chain, Vote::statement(self.height, self.choice));
        let mut signers = BTreeSet::new();
        let mut last = None;
        for (index, signature) in &self.signatures {
            if last.is_some_and(|l| l >= *index) {
                return false;
            }
            last = Some(*index);
            let Some(key) = validators.key(*index) else {
                return false;
            };
            if key.verify(&message.0, signature).is_err() {
                return false;
            }
            signers.insert(*index);
        }
        validators.is_quorum(&signers)
    }
}

/// Two conflicting signed messages of one validator: proof that it
/// misbehaved.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum Evidence {
    /// Two votes for different blocks at one height.
    DoubleVote(Box<Vote>, Box<Vote>),
    /// Two different proposals of one leader at one height.
    DoubleProposal(Box<Proposal>, Box<Proposal>),
}

impl Evidence {
    /// The validator the evidence is against.
    pub fn offender(&self) -> ValidatorIndex {
        match self {
            Evidence::DoubleVote(a, _) => a.signer,
            Evidence::DoubleProposal(a, _) => a.signer,
        }
    }
}

/// A message between validators.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum Message {
    /// A leader's proposal.
    Propose(Proposal),
    /// A vote or finalize vote.
    Vote(Vote),
    /// A notarization or finalization certificate.
    Certificate(Certificate),
    /// Asks for the block with this hash (a validator that missed it).
    Fetch(Hash),
    /// Asks for the certificates from this height on (a validator behind).
    Sync(u64),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(n: u8) -> Vec<KeyPair> {
        (1..=n).map(|i| KeyPair::from_seed([i; 32])).collect()
    }

    fn set(keys: &[KeyPair], stakes: &[u64]) -> ValidatorSet {
        let list: Vec<_> = keys
            .iter()
            .map(|k| k.public())
            .zip(stakes.iter().copied())
            .collect();
        ValidatorSet::new(&list).expect("valid")
    }

    #[test]
    fn sets_refuse_what_cannot_vote() {
        let k = keys(2);
        assert_eq!(ValidatorSet::new(&[]), Err(SetError::Size(0)));
        assert_eq!(
            ValidatorSet::new(&[(k[0].public(), 0)]),
            Err(SetError::NoStake(0))
        );
        assert_eq!(
            ValidatorSet::new(&[(k[0].public(), 1), (k[0].public(), 1)]),
            Err(SetError::Repeated(1))
        );
    }

    #[test]
    fn quorums_are_more_than_two_thirds_of_the_stake() {
        let k = keys(4);
        let equal = set(&k, &[1, 1, 1, 1]);
        assert!(!equal.is_quorum(&BTreeSet::from([0, 1])));
        assert!(equal.is_quorum(&BTreeSet::from([0, 1, 2])));
        let weighted = set(&k, &[1, 1, 1, 6]);
        // 6 of 9 is exactly two thirds: not enough.
        assert!(!weighted.is_quorum(&BTreeSet::from([3])));
        assert!(weighted.is_quorum(&BTreeSet::from([3, 0])));
        assert!(!weighted.is_quorum(&BTreeSet::from([0, 1, 2])));
    }

    #[test]
    fn equal_validators_lead_in_turn() {
        let k = keys(4);
        let validators = set(&k, &[5, 5, 5, 5]);
        let leaders: Vec<_> = (0..12).map(|h| validators.leader(h)).collect();
        assert_eq!(leaders, [0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3]);
        // Across the end of a turn too.
        let turn = LEADER_SLOTS as u64;
        let leaders: Vec<_> = (turn - 2..turn + 2).map(|h| validators.leader(h)).collect();
        assert_eq!(leaders, [2, 3, 0, 1]);
    }

    #[test]
    fn a_validators_turns_are_evenly_spaced() {
        let k = keys(3);
        let validators = set(&k, &[1, 1, 2]);
        // Validator 2 holds half the stake: it leads every other height.
        for h in 0..1_000u64 {
            let pair = [validators.leader(2 * h), validators.leader(2 * h + 1)];
            assert_eq!(pair.iter().filter(|v| **v == 2).count(), 1, "{h}: {pair:?}");
        }
        // A tiny stake still gets its exact share: 1 slot in 4,096.
        let tiny = set(&keys(2), &[1, 4_095]);
        let turns = (0..LEADER_SLOTS as u64)
            .filter(|h| tiny.leader(*h) == 0)
            .count();
        assert_eq!(turns, 1);
    }

    #[test]
    fn leaders_rotate_in_proportion_to_stake() {
        let k = keys(3);
        let validators = set(&k, &[1, 1, 2]);
        let mut count = [0u32; 3];
        for height in 0..4_000 {
            count[usize::from(validators.leader(height))] += 1;
        }
        assert!(count.iter().all(|c| *c > 700), "{count:?}");
        assert!(count[2] > count[0] + 500, "{count:?}");
    }

    #[test]
    fn certificates_need_distinct_valid_signers_holding_a_quorum() {
        let chain = ChainId(3);
        let k = keys(4);
        let validators = set(&k, &[1, 1, 1, 1]);
        let choice = Some(Choice::Block(Hash([9; 32])));
        // Index 9 is no validator: it signs with key 0.
        let vote = |i: u16| Vote::sign(chain, 5, choice, i, &k[usize::from(i).min(3)]);
        let certificate = |signers: &[u16]| Certificate {
            height: 5,
            choice,
            signatures: signers.iter().map(|&i| (i, vote(i).signature)).collect(),
        };
        assert!(certificate(&[0, 1, 2]).verify(chain, &validators));
        assert!(!certificate(&[0, 1]).verify(chain, &validators), "too few");
        assert!(
            !certificate(&[0, 0, 1]).verify(chain, &validators),
            "repeated"
        );
        assert!(
            !certificate(&[2, 1, 0]).verify(chain, &validators),
            "unsorted"
        );
        assert!(
            !certificate(&[0, 1, 9]).verify(chain, &validators),
            "unknown"
        );
        let mut forged = certificate(&[0, 1, 2]);
        forged.height = 6;
        assert!(!forged.verify(chain, &validators), "another height");
        assert!(
            !certificate(&[0, 1, 2]).verify(ChainId(4), &validators),
            "another chain"
        );
        // A vote for the block is not a finalize vote.
        let mut finalize = certificate(&[0, 1, 2]);
        finalize.choice = None;
        assert!(!finalize.verify(chain, &validators));
    }
}

/// A final block with what proves it, as a validator stores it and serves
/// it to validators catching up: its leader's proposal, its notarization
/// (absent where the block became final only as an ancestor of a block
/// this validator saw finalized) and the finalization of its height (absent
/// where a descendant's finalization made it final).
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct FinalBlock {
    /// The leader's proposal of the block.
    pub proposal: Proposal,
    /// Its notarization, if this validator has it.
    pub notarization: Option<Certificate>,
    /// The finalization of its height, if this validator has it.
    pub finalization: Option<Certificate>,
}

impl FinalBlock {
    /// The messages that make a machine that is behind finalize it, in the
    /// order it takes them best.
    pub fn messages(&self) -> Vec<Message> {
        let mut out = vec![Message::Propose(self.proposal.clone())];
        out.extend(self.notarization.clone().map(Message::Certificate));
        out.extend(self.finalization.clone().map(Message::Certificate));
        out
    }
}
