//! One Simplex machine driven by hand: it votes once per height, finalizes
//! only where it did not vote for the empty block, and after a restart from
//! its records never signs anything that conflicts with them.

use atoll_consensus::simplex::{
    Block, Certificate, Choice, Config, Effect, Input, Message, Proposal, Record, Simplex,
    ValidatorSet, Vote,
};
use atoll_primitives::{ChainId, Hash, KeyPair};
use std::time::Duration;

const CHAIN: ChainId = ChainId(9);

fn keys() -> Vec<KeyPair> {
    (1..=4u8).map(|i| KeyPair::from_seed([i; 32])).collect()
}

fn validators(keys: &[KeyPair]) -> ValidatorSet {
    ValidatorSet::new(&keys.iter().map(|k| (k.public(), 1)).collect::<Vec<_>>()).unwrap()
}

/// The configuration of validator `me` of the four.
fn config(keys: &[KeyPair], me: u16) -> Config {
    Config {
        chain: CHAIN,
        validators: validators(keys),
        key: Some((me, keys[usize::from(me)].clone())),
        genesis: Hash::ZERO,
        timeout: Duration::from_millis(100),
    }
}

/// The machine of a validator that does not lead height 1.
fn machine(records: &[Record]) -> (Simplex, Vec<KeyPair>, u16) {
    let keys = keys();
    let leader = validators(&keys).leader(1);
    let me = (0..4u16).find(|i| *i != leader).unwrap();
    let m = Simplex::new(config(&keys, me), records, 0, Hash::ZERO);
    (m, keys, me)
}

fn proposal(keys: &[KeyPair], payload: &[u8]) -> Proposal {
    let set = validators(keys);
    let leader = set.leader(1);
    let block = Block {
        height: 1,
        parent: Hash::ZERO,
        parent_height: 0,
        payload: payload.to_vec(),
    };
    Proposal::sign(CHAIN, block, leader, &keys[usize::from(leader)])
}

fn notarization(keys: &[KeyPair], me: u16, choice: Choice) -> Certificate {
    let signers: Vec<u16> = (0..4u16).filter(|i| *i != me).collect();
    Certificate {
        height: 1,
        choice: Some(choice),
        signatures: signers
            .iter()
            .map(|&i| {
                (
                    i,
                    Vote::sign(CHAIN, 1, Some(choice), i, &keys[usize::from(i)]).signature,
                )
            })
            .collect(),
    }
}

fn my_votes(effects: &[Effect], me: u16) -> Vec<Option<Choice>> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Broadcast(Message::Vote(v)) if v.signer == me => Some(v.choice),
            _ => None,
        })
        .collect()
}

#[test]
fn a_vote_is_persisted_before_it_is_sent_and_never_changed_after_a_restart() {
    let (mut m, keys, me) = machine(&[]);
    m.handle(Input::Start);
    let first = proposal(&keys, b"one");
    let effects = m.handle(Input::Message(Message::Propose(first.clone())));
    let choice = Choice::Block(first.block.hash());
    let persisted = effects
        .iter()
        .position(|e| *e == Effect::Persist(Record::Voted { height: 1, choice }))
        .expect("the vote is persisted");
    let sent = effects
        .iter()
        .position(|e| matches!(e, Effect::Broadcast(Message::Vote(_))))
        .expect("and sent");
    assert!(persisted < sent, "persisted first: {effects:?}");

    // Restarted from its records, it votes for no other block at height 1
    // (the leader equivocates: a second proposal).
    let (mut restarted, _, _) = machine(&[Record::Voted { height: 1, choice }]);
    restarted.handle(Input::Start);
    let second = proposal(&keys, b"two");
    let effects = restarted.handle(Input::Message(Message::Propose(second)));
    assert!(my_votes(&effects, me).is_empty(), "{effects:?}");
}

#[test]
fn no_finalize_vote_where_it_voted_for_the_empty_block() {
    let (mut m, keys, me) = machine(&[]);
    m.handle(Input::Start);
    // The proposal comes too late: the validator votes for the empty block.
    let effects = m.handle(Input::Timeout { height: 1 });
    assert_eq!(my_votes(&effects, me), vec![Some(Choice::Empty)]);
    let block = proposal(&keys, b"late");
    m.handle(Input::Message(Message::Propose(block.clone())));
    // The others notarize the block anyway: this validator moves on without
    // a finalize vote (the paper's rule that makes finality safe).
    let effects = m.handle(Input::Message(Message::Certificate(notarization(
        &keys,
        me,
        Choice::Block(block.block.hash()),
    ))));
    assert!(!my_votes(&effects, me).contains(&None), "{effects:?}");
    assert_eq!(m.height(), 2);

    // The same after a restart: the record of the empty vote is enough.
    let (mut restarted, _, _) = machine(&[Record::Voted {
        height: 1,
        choice: Choice::Empty,
    }]);
    restarted.handle(Input::Start);
    restarted.handle(Input::Message(Message::Propose(block.clone())));
    let effects = restarted.handle(Input::Message(Message::Certificate(notarization(
        &keys,
        me,
        Choice::Block(block.block.hash()),
    ))));
    assert!(my_votes(&effects, me).is_empty(), "{effects:?}");
}

#[test]
fn a_forged_certificate_changes_nothing() {
    let (mut m, keys, me) = machine(&[]);
    m.handle(Input::Start);
    let mut forged = notarization(&keys, me, Choice::Empty);
    forged.signatures[0].1 = forged.signatures[1].1;
    let effects = m.handle(Input::Message(Message::Certificate(forged)));
    assert!(effects.is_empty(), "{effects:?}");
    assert_eq!(m.height(), 1);
}

#[test]
fn a_certificate_from_the_far_future_is_refused_without_harm() {
    let (mut m, keys, me) = machine(&[]);
    m.handle(Input::Start);
    let mut far = notarization(&keys, me, Choice::Empty);
    far.height = u64::MAX - 1;
    let effects = m.handle(Input::Message(Message::Certificate(far)));
    assert!(effects.is_empty(), "{effects:?}");
    assert_eq!(m.height(), 1);
}

#[test]
fn a_leader_records_its_proposal_first_and_never_proposes_again_after_a_restart() {
    let keys = keys();
    let leader = validators(&keys).leader(1);
    let config = config(&keys, leader);
    let mut m = Simplex::new(config.clone(), &[], 0, Hash::ZERO);
    let effects = m.handle(Input::Start);
    assert!(effects
        .iter()
        .any(|e| matches!(e, Effect::NeedPayload { height: 1, .. })));
    let effects = m.handle(Input::Payload {
        height: 1,
        payload: b"first".to_vec(),
    });
    let recorded = effects
        .iter()
        .position(|e| matches!(e, Effect::Persist(Record::Proposed { height: 1, .. })))
        .expect("the proposal is recorded");
    let sent = effects
        .iter()
        .position(|e| matches!(e, Effect::Broadcast(Message::Propose(_))))
        .expect("and sent");
    assert!(recorded < sent);
    let records: Vec<Record> = effects
        .iter()
        .filter_map(|e| match e {
            Effect::Persist(r) => Some(*r),
            _ => None,
        })
        .collect();
    // Restarted, it is asked for a payload again but proposes nothing
    // else at height 1; it sends its recorded vote again, unchanged.
    let mut restarted = Simplex::new(config, &records, 0, Hash::ZERO);
    let effects = restarted.handle(Input::Start);
    let votes = my_votes(&effects, leader);
    assert_eq!(votes.len(), 1, "{effects:?}");
    let effects = restarted.handle(Input::Payload {
        height: 1,
        payload: b"second".to_vec(),
    });
    assert!(
        !effects
            .iter()
            .any(|e| matches!(e, Effect::Broadcast(Message::Propose(_)))),
        "{effects:?}"
    );
}

/// Regression (hostile peers): a replayed vote or certificate the machine
/// already holds, or one below its window, is not wanted, so a driver never
/// spends a signature check on it; a new one inside the window is.
#[test]
fn replays_and_old_heights_are_not_wanted_before_any_signature_is_checked() {
    let (mut m, keys, me) = machine(&[]);
    let other = (0..4u16).find(|i| *i != me).unwrap();
    let vote = Vote::sign(
        CHAIN,
        1,
        Some(Choice::Empty),
        other,
        &keys[usize::from(other)],
    );
    assert!(m.wants(&Message::Vote(vote)));
    m.handle(Input::Message(Message::Vote(vote)));
    assert!(!m.wants(&Message::Vote(vote)), "a vote held is a replay");
    // A forged copy of a held vote is refused without being verified.
    let mut forged = vote;
    forged.signature = Vote::sign(CHAIN, 2, None, other, &keys[usize::from(other)]).signature;
    assert!(!m.wants(&Message::Vote(forged)));
    let certificate = notarization(&keys, me, Choice::Empty);
    assert!(m.wants(&Message::Certificate(certificate.clone())));
    m.handle(Input::Message(Message::Certificate(certificate.clone())));
    assert!(!m.wants(&Message::Certificate(certificate)), "held already");
    // Far past the window: 300 blocks final since.
    let (mut far, keys, me) = machine(&[]);
    let set = validators(&keys);
    let signers: Vec<u16> = (0..4u16).filter(|i| *i != me).collect();
    let certificate = |height, choice| Certificate {
        height,
        choice,
        signatures: signers
            .iter()
            .map(|&i| {
                (
                    i,
                    Vote::sign(CHAIN, height, choice, i, &keys[usize::from(i)]).signature,
                )
            })
            .collect(),
    };
    let (mut parent, mut parent_height) = (Hash::ZERO, 0);
    for height in 1..=300u64 {
        let block = Block {
            height,
            parent,
            parent_height,
            payload: Vec::new(),
        };
        let hash = block.hash();
        let leader = set.leader(height);
        let proposal = Proposal::sign(CHAIN, block, leader, &keys[usize::from(leader)]);
        far.handle(Input::Message(Message::Propose(proposal)));
        let notarized = certificate(height, Some(Choice::Block(hash)));
        far.handle(Input::Message(Message::Certificate(notarized)));
        far.handle(Input::Message(Message::Certificate(certificate(
            height, None,
        ))));
        (parent, parent_height) = (hash, height);
    }
    assert_eq!(far.final_block().0, 300);
    let old = Vote::sign(
        CHAIN,
        2,
        Some(Choice::Empty),
        other,
        &keys[usize::from(other)],
    );
    assert!(!far.wants(&Message::Vote(old)), "below the window");
    assert!(!far.wants(&Message::Certificate(notarization(
        &keys,
        me,
        Choice::Empty
    ))));
    let ahead = Vote::sign(
        CHAIN,
        310,
        Some(Choice::Empty),
        other,
        &keys[usize::from(other)],
    );
    assert!(far.wants(&Message::Vote(ahead)));
    let too_far = Vote::sign(
        CHAIN,
        700,
        Some(Choice::Empty),
        other,
        &keys[usize::from(other)],
    );
    assert!(!far.wants(&Message::Vote(too_far)), "above the window");
}

/// Four machines on a hand-driven network: what each persisted, and the
/// messages on their way (to, from, message).
struct Net {
    keys: Vec<KeyPair>,
    machines: Vec<Simplex>,
    records: Vec<Vec<Record>>,
    queue: std::collections::VecDeque<(usize, usize, Message)>,
    /// Messages from the first set to the second are lost.
    cut: Option<(Vec<usize>, Vec<usize>)>,
}

impl Net {
    fn new() -> Net {
        let keys = keys();
        let machines = (0..4u16)
            .map(|i| Simplex::new(config(&keys, i), &[], 0, Hash::ZERO))
            .collect();
        Net {
            keys,
            machines,
            records: vec![Vec::new(); 4],
            queue: Default::default(),
            cut: None,
        }
    }

    fn input(&mut self, node: usize, input: Input, from: Option<usize>) {
        for effect in self.machines[node].handle(input) {
            match effect {
                Effect::Persist(record) => self.records[node].push(record),
                Effect::Broadcast(message) => {
                    for to in (0..4).filter(|to| *to != node) {
                        self.queue.push_back((to, node, message.clone()));
                    }
                }
                Effect::Reply(message) => {
                    if let Some(to) = from {
                        self.queue.push_back((to, node, message));
                    }
                }
                Effect::NeedPayload { height, .. } => {
                    let payload = height.to_le_bytes().to_vec();
                    self.input(node, Input::Payload { height, payload }, None);
                }
                _ => {}
            }
        }
    }

    /// Delivers until nothing is on its way, or every validator has height
    /// 2 final (past it, the chain goes on by itself).
    fn pump(&mut self) {
        while let Some((to, from, message)) = self.queue.pop_front() {
            if self.machines.iter().all(|m| m.final_block().0 >= 2) {
                return;
            }
            let lost = self
                .cut
                .as_ref()
                .is_some_and(|(a, b)| a.contains(&from) && b.contains(&to));
            if !lost {
                self.input(to, Input::Message(message), Some(from));
            }
        }
    }

    /// Every machine's height times out.
    fn time_out(&mut self) {
        for node in 0..4 {
            let height = self.machines[node].height();
            self.input(node, Input::Timeout { height }, None);
        }
    }

    /// Restarts `node` from what it persisted (its certificates, kept in
    /// memory only, are gone).
    fn restart(&mut self, node: usize) {
        let config = config(&self.keys, node as u16);
        self.machines[node] = Simplex::new(config, &self.records[node], 0, Hash::ZERO);
        self.input(node, Input::Start, None);
    }
}

/// Two validators see the notarization of height 1 and move on while the
/// two others miss every message from them; then the two that moved on
/// restart, losing that certificate. Their votes, kept in their records and
/// sent again, let the two left behind form it; without them the four would
/// wait forever, two at each height.
#[test]
fn validators_split_across_a_height_by_a_restart_come_together_again() {
    let mut net = Net::new();
    let leader = usize::from(validators(&net.keys).leader(1));
    let behind: Vec<usize> = vec![leader, (leader + 1) % 4];
    let ahead: Vec<usize> = (0..4).filter(|v| !behind.contains(v)).collect();
    net.cut = Some((ahead.clone(), behind.clone()));
    for node in 0..4 {
        net.input(node, Input::Start, None);
    }
    net.pump();
    for &v in &ahead {
        assert_eq!(
            net.machines[v].height(),
            2,
            "validator {v} saw the notarization"
        );
    }
    for &v in &behind {
        assert_eq!(net.machines[v].height(), 1, "validator {v} missed it");
    }
    for &v in &ahead {
        net.restart(v);
    }
    net.cut = None;
    for _ in 0..20 {
        net.pump();
        if net.machines.iter().all(|m| m.final_block().0 >= 2) {
            return;
        }
        net.time_out();
    }
    let heights: Vec<_> = net
        .machines
        .iter()
        .map(|m| (m.height(), m.final_block().0))
        .collect();
    panic!("stuck: (height, final) per validator {heights:?}");
}
