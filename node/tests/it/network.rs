//! Validators in a network: four `atoll` processes on loopback agree on
//! every block over libp2p, execute the same state, and one that was
//! killed catches up by itself.

use crate::harness::{dev, transfer, Localnet, Node, CHAIN_ID};
use atoll_primitives::Address;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const BALANCE: u128 = 1_000_000_000;
const ACCOUNTS: u64 = 40;

fn status(node: &Node) -> Value {
    node.ok("atoll_status", json!([]))
}

/// The newest final height every shard of `node` has reached.
fn final_height(node: &Node) -> u64 {
    status(node)["shards"]
        .as_array()
        .expect("shards")
        .iter()
        .map(|s| s["final_height"].as_u64().expect("height"))
        .min()
        .expect("a shard")
}

fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Sends one round of transfers (account i to a partner, over both
/// shards), each to node `route(i)`; returns their hashes.
fn round(
    net: &Localnet,
    round: u64,
    route: impl Fn(u64) -> usize,
    expected: &mut BTreeMap<Address, u128>,
) -> Vec<(usize, String)> {
    let mut hashes = Vec::new();
    for i in 0..ACCOUNTS {
        let (from, to) = (dev(i), dev((i * 7 + round + 1) % ACCOUNTS));
        let amount = 1_000 + round as u128;
        let (tx, hash) = transfer(&from, round, to.address(), amount, 1, CHAIN_ID);
        let node = route(i);
        net.nodes[node].ok("atoll_sendTransaction", json!([tx]));
        *expected.get_mut(&from.address()).expect("dev account") -= amount + 1;
        *expected.get_mut(&to.address()).expect("dev account") += amount;
        hashes.push((node, hash));
    }
    hashes
}

fn wait_all_final(net: &Localnet, hashes: &[(usize, String)]) {
    for (node, hash) in hashes {
        net.nodes[*node].wait_final(hash, Duration::from_secs(60));
    }
}

#[test]
fn four_validators_agree_on_every_block_and_a_killed_one_catches_up() {
    let mut net = Localnet::start(4, 2, "[network]\nconsensus_timeout = \"1s\"\n");
    wait_until(
        "every validator connected and finalizing",
        Duration::from_secs(60),
        || {
            net.nodes.iter().all(|n| {
                let s = status(n);
                s["consensus"]["peers"].as_u64() >= Some(3) && final_height(n) >= 2
            })
        },
    );
    let s = status(&net.nodes[0]);
    assert!(s["consensus"]["protocol"]
        .as_str()
        .expect("protocol")
        .starts_with("simplex"));
    assert_eq!(s["validators"].as_array().expect("validators").len(), 4);

    let mut expected: BTreeMap<Address, u128> =
        (0..ACCOUNTS).map(|i| (dev(i).address(), BALANCE)).collect();
    // Three rounds sent to all four validators (each transaction reaches
    // the leaders through gossip).
    for r in 0..3 {
        let hashes = round(&net, r, |i| (i % 4) as usize, &mut expected);
        wait_all_final(&net, &hashes);
    }
    // A validator is killed; the others (3 of 4, more than two thirds)
    // go on finalizing; it restarts and catches up.
    let killed_at = final_height(&net.nodes[0]);
    net.nodes[3].signal(9);
    for r in 3..6 {
        let hashes = round(&net, r, |i| (i % 3) as usize, &mut expected);
        wait_all_final(&net, &hashes);
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
    let hashes = round(&net, 6, |_| 3, &mut expected);
    wait_all_final(&net, &hashes);

    // Every validator: the same balances (each transfer applied exactly
    // once, every credit landed), and nothing created or lost.
    for node in &net.nodes {
        wait_until(
            "credits land on every validator",
            Duration::from_secs(30),
            || expected.iter().all(|(a, b)| node.account(*a).0 == *b),
        );
    }
    let total: u128 = expected.values().sum();
    let fees = 7 * ACCOUNTS as u128;
    assert_eq!(total + fees, ACCOUNTS as u128 * BALANCE);

    // The same blocks and state roots at every final height on all four.
    let top = net.nodes.iter().map(final_height).min().expect("nodes");
    let mut burnt = 0u128;
    for shard in 0..2u16 {
        for height in 1..=top {
            let blocks: Vec<Value> = net
                .nodes
                .iter()
                .map(|n| n.ok("atoll_getBlock", json!([shard, height])))
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
