//! A deterministic simulation of the Simplex machines: validators in one
//! process over an in-memory network driven by a seed, with message delays,
//! drops, duplicates and reordering, a partition that heals, crashes and
//! restarts (from what each validator persisted), and in some runs one
//! validator run twice with the same key (the Twins method: an equivocating
//! validator that behaves correctly in every other way).
//!
//! Checked on every run: no two different blocks are final at one height on
//! any node (safety); every node's final blocks form one chain; no node
//! ever persisted two conflicting votes; and once the network is healthy
//! every node finalizes new blocks (liveness). Final blocks carry transfers
//! that each node applies to its ledger (`ledger`): the supply is conserved,
//! every cross-shard receipt is credited exactly once, and all nodes hold
//! the same accounts at every final height.
//!
//! `ATOLL_SIM_SEED=N` replays seed N alone (a failure prints its seed);
//! `ATOLL_SIM_SEEDS=K` runs K seeds instead of the default.

use crate::ledger::{self, Ledger};
use atoll_consensus::simplex::{
    Choice, Config, Effect, Input, Message, Record, Simplex, ValidatorIndex, ValidatorSet,
};
use atoll_primitives::{ChainId, Hash, KeyPair};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::time::Duration;

const CHAIN: ChainId = ChainId(77);
const DEFAULT_SEEDS: u64 = 300;
/// Heights every node must finalize once the network is healthy.
const LIVENESS_HEIGHTS: u64 = 3;

/// One simulated process: a validator's machine (None while crashed) and
/// what it keeps across crashes.
struct Node {
    validator: ValidatorIndex,
    machine: Option<Simplex>,
    /// Its store: every record it persisted, and its final blocks.
    persisted: Vec<Record>,
    finals: Vec<(u64, Hash)>,
    /// What its final blocks did to the accounts (kept like a store).
    ledger: Ledger,
    /// Bumped at each restart, so timeouts of an earlier life are ignored.
    life: u64,
}

#[derive(PartialEq, Eq)]
struct Event {
    time: u64,
    seq: u64,
    kind: Kind,
}

#[derive(PartialEq, Eq)]
enum Kind {
    Deliver {
        to: usize,
        from: usize,
        message: Message,
    },
    Timeout {
        node: usize,
        height: u64,
        life: u64,
    },
    Crash(usize),
    Restart(usize),
}

impl Ord for Event {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        // A min-heap on (time, seq).
        (other.time, other.seq).cmp(&(self.time, self.seq))
    }
}

impl PartialOrd for Event {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// The faults of one run, drawn from its seed.
#[derive(Debug)]
struct Faults {
    max_delay: u64,
    drop: f64,
    duplicate: f64,
    /// (from, until, side of each node).
    partition: Option<(u64, u64, Vec<bool>)>,
    /// (node, crash time, restart time).
    crashes: Vec<(usize, u64, u64)>,
    /// When every fault is over.
    healthy_from: u64,
}

struct Sim {
    rng: StdRng,
    seed: u64,
    now: u64,
    seq: u64,
    events: BinaryHeap<Event>,
    nodes: Vec<Node>,
    configs: Vec<Config>,
    faults: Faults,
    /// Every final block seen on any node, by height.
    finals: BTreeMap<u64, Hash>,
    /// Every node's ledger digest after each final block, by height.
    digests: BTreeMap<u64, u64>,
    evidence: BTreeSet<ValidatorIndex>,
    delivered: u64,
}

/// What one run showed.
struct Outcome {
    final_heights: Vec<u64>,
    evidence: BTreeSet<ValidatorIndex>,
    /// The validator run twice, if one was.
    twin: Option<ValidatorIndex>,
}

impl Sim {
    fn new(seed: u64) -> (Sim, bool) {
        let mut rng = StdRng::seed_from_u64(seed);
        let validators = rng.gen_range(4..=6usize);
        let twins = rng.gen_bool(0.5);
        let keys: Vec<KeyPair> = (0..validators)
            .map(|i| KeyPair::from_seed([i as u8 + 1; 32]))
            .collect();
        // Stakes: equal, or random with the twinned validator (the last)
        // holding less than a third.
        let mut stakes: Vec<u64> = if rng.gen_bool(0.5) {
            vec![1; validators]
        } else {
            (0..validators).map(|_| rng.gen_range(1..=10)).collect()
        };
        let others: u64 = stakes[..validators - 1].iter().sum();
        let last = stakes.last_mut().expect("validators");
        // Less than a third of the total: 3 * last < others + last.
        *last = (*last).min((others.saturating_sub(1)) / 2).max(1);
        let set = ValidatorSet::new(
            &keys
                .iter()
                .zip(&stakes)
                .map(|(k, s)| (k.public(), *s))
                .collect::<Vec<_>>(),
        )
        .expect("valid set");
        let max_delay = rng.gen_range(5..=30u64);
        let mut slots: Vec<ValidatorIndex> = (0..validators as ValidatorIndex).collect();
        if twins {
            slots.push(validators as ValidatorIndex - 1);
        }
        let configs: Vec<Config> = slots
            .iter()
            .map(|&v| Config {
                chain: CHAIN,
                validators: set.clone(),
                key: Some((v, keys[usize::from(v)].clone())),
                genesis: Hash::ZERO,
                timeout: Duration::from_millis(3 * max_delay),
            })
            .collect();
        let n = configs.len();
        let healthy_from = 1_500;
        let partition = rng.gen_bool(0.5).then(|| {
            let from = rng.gen_range(0..1_000);
            let side = (0..n).map(|_| rng.gen_bool(0.5)).collect();
            (from, rng.gen_range(from..healthy_from), side)
        });
        // Up to two crashes of honest validators, back before the end of
        // the faults.
        let crashes = (0..rng.gen_range(0..=2))
            .map(|_| {
                let node = rng.gen_range(0..validators - 1);
                let at = rng.gen_range(0..1_200);
                (node, at, rng.gen_range(at + 1..healthy_from))
            })
            .collect();
        let faults = Faults {
            max_delay,
            drop: if rng.gen_bool(0.5) {
                rng.gen_range(0.0..0.2)
            } else {
                0.0
            },
            duplicate: rng.gen_range(0.0..0.1),
            partition,
            crashes,
            healthy_from,
        };
        let nodes = configs
            .iter()
            .map(|c| Node {
                validator: c.key.as_ref().expect("a validator").0,
                machine: Some(Simplex::new(c.clone(), &[], 0, Hash::ZERO)),
                persisted: Vec::new(),
                finals: Vec::new(),
                ledger: Ledger::default(),
                life: 0,
            })
            .collect();
        let sim = Sim {
            rng,
            seed,
            now: 0,
            seq: 0,
            events: BinaryHeap::new(),
            nodes,
            configs,
            faults,
            finals: BTreeMap::new(),
            digests: BTreeMap::new(),
            evidence: BTreeSet::new(),
            delivered: 0,
        };
        (sim, twins)
    }

    fn push(&mut self, time: u64, kind: Kind) {
        self.seq += 1;
        self.events.push(Event {
            time,
            seq: self.seq,
            kind,
        });
    }

    fn healthy(&self) -> bool {
        self.now >= self.faults.healthy_from
    }

    fn cut(&self, a: usize, b: usize) -> bool {
        match &self.faults.partition {
            Some((from, until, side)) => {
                self.now >= *from && self.now < *until && side[a] != side[b]
            }
            None => false,
        }
    }

    fn send(&mut self, from: usize, to: usize, message: Message) {
        if self.cut(from, to) {
            return;
        }
        let healthy = self.healthy();
        if !healthy && self.rng.gen_bool(self.faults.drop) {
            return;
        }
        let copies = if !healthy && self.rng.gen_bool(self.faults.duplicate) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let delay = self.rng.gen_range(1..=self.faults.max_delay);
            self.push(
                self.now + delay,
                Kind::Deliver {
                    to,
                    from,
                    message: message.clone(),
                },
            );
        }
    }

    /// Hands `input` to node `node` and carries out the effects.
    fn input(&mut self, node: usize, input: Input, from: Option<usize>) {
        let Some(machine) = self.nodes[node].machine.as_mut() else {
            return;
        };
        let effects = machine.handle(input);
        for effect in effects {
            match effect {
                Effect::Persist(record) => self.nodes[node].persisted.push(record),
                Effect::Broadcast(message) => {
                    for to in 0..self.nodes.len() {
                        if to != node {
                            self.send(node, to, message.clone());
                        }
                    }
                }
                Effect::Reply(message) => {
                    if let Some(to) = from {
                        self.send(node, to, message);
                    }
                }
                Effect::ScheduleTimeout { height, after } => {
                    let life = self.nodes[node].life;
                    self.push(
                        self.now + after.as_millis() as u64,
                        Kind::Timeout { node, height, life },
                    );
                }
                Effect::NeedPayload { height, .. } => {
                    // Twins propose different payloads: the same key signs
                    // two proposals.
                    let payload = ledger::payload(node, height);
                    self.input(node, Input::Payload { height, payload }, None);
                }
                Effect::Finalized(blocks) => {
                    for block in blocks {
                        let hash = block.hash();
                        let seed = self.seed;
                        let previous = self.nodes[node].finals.last().copied();
                        let (parent_height, parent) = previous.unwrap_or((0, Hash::ZERO));
                        assert!(
                            block.height > parent_height && block.parent == parent,
                            "seed {seed}: node {node} finalized block {} at {} not extending its last final block at {parent_height}",
                            hash,
                            block.height
                        );
                        if let Some(other) = self.finals.insert(block.height, hash) {
                            assert_eq!(
                                other, hash,
                                "seed {seed}: two different blocks final at height {} (node {node})",
                                block.height
                            );
                        }
                        self.nodes[node].finals.push((block.height, hash));
                        let ledger = &mut self.nodes[node].ledger;
                        ledger.apply(seed, block.height, &block.payload);
                        let digest = ledger.digest();
                        if let Some(other) = self.digests.insert(block.height, digest) {
                            assert_eq!(
                                other, digest,
                                "seed {seed}: node {node}'s accounts differ from another node's after height {}",
                                block.height
                            );
                        }
                    }
                }
                Effect::Evidence(evidence) => {
                    self.evidence.insert(evidence.offender());
                }
            }
        }
    }

    fn run(mut self, twins: bool) -> Outcome {
        for i in 0..self.nodes.len() {
            self.input(i, Input::Start, None);
        }
        for &(node, at, back) in &self.faults.crashes.clone() {
            self.push(at, Kind::Crash(node));
            self.push(back, Kind::Restart(node));
        }
        // Liveness: once healthy, every node must finalize two heights past
        // the newest final one of that moment, within this long.
        let end = self.faults.healthy_from + 6_000;
        let mut at_healthy: Option<Vec<u64>> = None;
        while let Some(event) = self.events.pop() {
            if event.time > end {
                break;
            }
            self.now = event.time;
            if at_healthy.is_none() && self.healthy() {
                at_healthy = Some(self.nodes.iter().map(final_height).collect());
            }
            if let Some(before) = &at_healthy {
                let target = before.iter().copied().max().unwrap_or(0) + LIVENESS_HEIGHTS;
                if self.nodes.iter().all(|n| final_height(n) >= target) {
                    break;
                }
            }
            match event.kind {
                Kind::Deliver { to, from, message } => {
                    self.delivered += 1;
                    self.input(to, Input::Message(message), Some(from));
                }
                Kind::Timeout { node, height, life } => {
                    if self.nodes[node].life == life {
                        self.input(node, Input::Timeout { height }, None);
                    }
                }
                Kind::Crash(node) => {
                    self.nodes[node].machine = None;
                    self.nodes[node].life += 1;
                }
                Kind::Restart(node) => {
                    let n = &mut self.nodes[node];
                    if n.machine.is_none() {
                        let (height, hash) = n.finals.last().copied().unwrap_or((0, Hash::ZERO));
                        n.machine = Some(Simplex::new(
                            self.configs[node].clone(),
                            &n.persisted,
                            height,
                            hash,
                        ));
                        self.input(node, Input::Start, None);
                    }
                }
            }
        }
        let seed = self.seed;
        for (i, node) in self.nodes.iter().enumerate() {
            check_records(seed, i, &node.persisted);
        }
        let before = at_healthy.unwrap_or_else(|| vec![0; self.nodes.len()]);
        let newest_before = before.iter().copied().max().unwrap_or(0);
        let final_heights: Vec<u64> = self.nodes.iter().map(final_height).collect();
        let states: Vec<String> = self
            .nodes
            .iter()
            .map(|n| match &n.machine {
                Some(m) => format!(
                    "height {} final {} missing {:?}",
                    m.height(),
                    m.final_block().0,
                    m.missing_notarization()
                ),
                None => "down".into(),
            })
            .collect();
        for (i, height) in final_heights.iter().enumerate() {
            assert!(
                *height >= newest_before + LIVENESS_HEIGHTS,
                "seed {seed}: node {i} (validator {}) finalized up to {height} by the end, but {newest_before} was final when the network became healthy ({:?}; {} messages delivered; machines: {states:?})",
                self.nodes[i].validator,
                self.faults,
                self.delivered
            );
        }
        Outcome {
            final_heights,
            evidence: self.evidence,
            twin: twins.then(|| self.nodes.last().expect("nodes").validator),
        }
    }
}

fn final_height(node: &Node) -> u64 {
    node.finals.last().map_or(0, |(h, _)| *h)
}

/// A node never persisted two votes for different blocks at one height, nor
/// an empty vote and a finalize vote at one height.
fn check_records(seed: u64, node: usize, records: &[Record]) {
    let mut blocks: BTreeMap<u64, Hash> = BTreeMap::new();
    let mut empty = BTreeSet::new();
    let mut finalize = BTreeSet::new();
    let mut proposed: BTreeMap<u64, Hash> = BTreeMap::new();
    for record in records {
        match *record {
            Record::Voted {
                height,
                choice: Choice::Block(hash),
            } => {
                if let Some(other) = blocks.insert(height, hash) {
                    assert_eq!(
                        other, hash,
                        "seed {seed}: node {node} voted twice at {height}"
                    );
                }
            }
            Record::Voted {
                height,
                choice: Choice::Empty,
            } => {
                empty.insert(height);
            }
            Record::Finalized { height } => {
                finalize.insert(height);
            }
            Record::Proposed { height, hash } => {
                if let Some(other) = proposed.insert(height, hash) {
                    assert_eq!(
                        other, hash,
                        "seed {seed}: node {node} proposed twice at {height}"
                    );
                }
            }
        }
    }
    assert!(
        empty.is_disjoint(&finalize),
        "seed {seed}: node {node} voted empty and finalize at one height"
    );
}

fn run_seed(seed: u64) -> Outcome {
    let (sim, twins) = Sim::new(seed);
    sim.run(twins)
}

#[test]
fn simplex_is_safe_and_live_under_faults_and_an_equivocating_validator() {
    if let Ok(seed) = std::env::var("ATOLL_SIM_SEED") {
        let seed: u64 = seed.parse().expect("ATOLL_SIM_SEED is a number");
        let outcome = run_seed(seed);
        eprintln!("seed {seed}: final heights {:?}", outcome.final_heights);
        return;
    }
    let seeds: u64 = std::env::var("ATOLL_SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_SEEDS);
    let mut twin_runs = 0;
    let mut caught = 0;
    let mut heights = Vec::new();
    for seed in 0..seeds {
        let outcome = run_seed(seed);
        if outcome.twin.is_some() {
            twin_runs += 1;
            if !outcome.evidence.is_empty() {
                caught += 1;
            }
        }
        assert!(
            outcome.evidence.iter().all(|v| Some(*v) == outcome.twin),
            "seed {seed}: evidence against an honest validator: {:?}",
            outcome.evidence
        );
        heights.push(outcome.final_heights.iter().copied().min().unwrap_or(0));
    }
    heights.sort_unstable();
    eprintln!(
        "{seeds} seeds: {twin_runs} with twins, equivocation caught in {caught}; final height of the slowest node: min {} median {}",
        heights[0],
        heights[heights.len() / 2]
    );
    assert!(
        caught > 0,
        "twins never equivocated visibly in {twin_runs} runs"
    );
}
