//! Validators in a network: four `atoll` processes on loopback agree on
//! every block over libp2p, execute the same state, and one that was
//! killed catches up by itself (fault 1 of the operations guide). The
//! other faults are in `faults.rs`; both use the [`Ledger`] here to load
//! the network and to check it afterwards.

use crate::harness::{dev, transfer, Localnet, Node, CHAIN_ID};
use atoll_primitives::Address;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const BALANCE: u128 = 1_000_000_000;
const ACCOUNTS: u64 = 40;
/// Faster rounds than the default, so a dead leader costs a second.
pub const FAST: &str = "[network]\nconsensus_timeout = \"1s\"\n";

pub fn status(node: &Node) -> Value {
    node.ok("atoll_status", json!([]))
}

/// The newest final height every shard of `node` has reached.
pub fn final_height(node: &Node) -> u64 {
    status(node)["shards"]
        .as_array()
        .expect("shards")
        .iter()
        .map(|s| s["final_height"].as_u64().expect("height"))
        .min()
        .expect("a shard")
}

pub fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until each of `nodes` has `peers` peers and finalizes.
pub fn wait_connected(net: &Localnet, nodes: &[usize], peers: u64) {
    wait_until(
        "validators connected and finalizing",
        Duration::from_secs(60),
        || {
            nodes.iter().all(|i| {
                let s = status(&net.nodes[*i]);
                s["consensus"]["peers"].as_u64() >= Some(peers) && final_height(&net.nodes[*i]) >= 2
            })
        },
    )
}

/// The transfers sent so far and what every account must hold once they
/// are all final: a check of conservation and of exactly-once credits.
pub struct Ledger {
    expected: BTreeMap<Address, u128>,
    rounds: u64,
    sent: Vec<(usize, String)>,
}

impl Ledger {
    pub fn new() -> Ledger {
        Ledger {
            expected: (0..ACCOUNTS).map(|i| (dev(i).address(), BALANCE)).collect(),
            rounds: 0,
            sent: Vec::new(),
        }
    }

    /// Sends one round of transfers (each account to a partner, about half
    /// of them to the other shard), each to node `route(i)`; returns their
    /// (node, hash).
    pub fn round(&mut self, net: &Localnet, route: impl Fn(u64) -> usize) -> Vec<(usize, String)> {
        let round = self.rounds;
        self.rounds += 1;
        let mut hashes = Vec::new();
        for i in 0..ACCOUNTS {
            let (from, to) = (dev(i), dev((i * 7 + round + 1) % ACCOUNTS));
            let amount = 1_000 + round as u128;
            let (tx, hash) = transfer(&from, round, to.address(), amount, 1, CHAIN_ID);
            let node = route(i);
            net.nodes[node].ok("atoll_sendTransaction", json!([tx]));
            *self.expected.get_mut(&from.address()).expect("dev account") -= amount + 1;
            *self.expected.get_mut(&to.address()).expect("dev account") += amount;
            hashes.push((node, hash));
        }
        self.sent.extend(hashes.iter().cloned());
        hashes
    }

    /// A round, waited for until final.
    pub fn final_round(&mut self, net: &Localnet, route: impl Fn(u64) -> usize) {
        let hashes = self.round(net, route);
        wait_all_final(net, &hashes);
    }

    /// Every transfer sent so far is final on node `on`.
    pub fn all_final_on(&self, net: &Localnet, on: usize) {
        for (_, hash) in &self.sent {
            net.nodes[on].wait_final(hash, Duration::from_secs(60));
        }
    }

    /// After a fault: on each of the `honest` validators, every balance is
    /// what the transfers make it (each applied once, every credit landed,
    /// nothing created or lost), no equivocation was seen, and all of them
    /// have the same blocks and state roots at every final height, whose
    /// burnt fees are exactly the fees paid.
    pub fn check(&self, net: &Localnet, honest: &[usize]) {
        for i in honest {
            wait_until(
                "credits land on every validator",
                Duration::from_secs(60),
                || {
                    self.expected
                        .iter()
                        .all(|(a, b)| net.nodes[*i].account(*a).0 == *b)
                },
            );
            assert_eq!(
                status(&net.nodes[*i])["consensus"]["equivocations"],
                0,
                "validator {i} saw an equivocation"
            );
        }
        let fees = self.rounds as u128 * ACCOUNTS as u128;
        let total: u128 = self.expected.values().sum();
        assert_eq!(total + fees, ACCOUNTS as u128 * BALANCE, "supply conserved");

        let top = honest
            .iter()
            .map(|i| final_height(&net.nodes[*i]))
            .min()
            .expect("nodes");
        let mut burnt = 0u128;
        for shard in 0..2u16 {
            for height in 1..=top {
                let blocks: Vec<Value> = honest
                    .iter()
                    .map(|i| net.nodes[*i].ok("atoll_getBlock", json!([shard, height])))
                    .collect();
                for block in &blocks[1..] {
                    assert_eq!(
                        block["hash"], blocks[0]["hash"],
                        "shard {shard} height {height}"
                    );
                    assert_eq!(block["state_root"], blocks[0]["state_root"]);
                }
                assert_eq!(blocks[0]["final"], true);
                burnt += blocks[0]["burnt_fees"]
                    .as_str()
                    .expect("fees")
                    .parse::<u128>()
                    .expect("number");
            }
        }
        assert_eq!(burnt, fees, "every fee burnt once");
    }
}

pub fn wait_all_final(net: &Localnet, hashes: &[(usize, String)]) {
    for (node, hash) in hashes {
        net.nodes[*node].wait_final(hash, Duration::from_secs(60));
    }
}

#[test]
fn four_validators_agree_on_every_block_and_a_killed_one_catches_up() {
    let mut net = Localnet::start(4, 2, FAST);
    wait_connected(&net, &[0, 1, 2, 3], 3);
    let s = status(&net.nodes[0]);
    assert!(s["consensus"]["protocol"]
        .as_str()
        .expect("protocol")
        .starts_with("simplex"));
    assert_eq!(s["validators"].as_array().expect("validators").len(), 4);

    let mut ledger = Ledger::new();
    // Three rounds sent to all four validators (each transaction reaches
    // the leaders through gossip).
    for _ in 0..3 {
        ledger.final_round(&net, |i| (i % 4) as usize);
    }
    // A validator is killed; the others (3 of 4, more than two thirds)
    // go on finalizing; it restarts and catches up.
    let killed_at = final_height(&net.nodes[0]);
    net.nodes[3].signal(9);
    for _ in 3..6 {
        ledger.final_round(&net, |i| (i % 3) as usize);
    }
    wait_until(
        "blocks finalize without it",
        Duration::from_secs(60),
        || final_height(&net.nodes[0]) >= killed_at + 20,
    );
    net.nodes[3].run();
    let target = final_height(&net.nodes[0]);
    wait_until(
        "the restarted validator catches up",
        Duration::from_secs(60),
        || final_height(&net.nodes[3]) >= target,
    );
    // It takes part again: transactions sent to it finalize.
    ledger.final_round(&net, |_| 3);
    ledger.check(&net, &[0, 1, 2, 3]);
}
