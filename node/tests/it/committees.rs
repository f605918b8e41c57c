//! Shard committees: six validators, two shards, committees of two drawn
//! again every short epoch. Each validator executes only the shards of its
//! committees (this epoch and the next), so cross-shard receipts travel
//! between committees over libp2p and validators moved to a shard catch up
//! on it from their peers. Every transfer must land exactly once, and the
//! validators that hold a shard must agree on its blocks.

use crate::harness::{dev, transfer, Localnet, Node, CHAIN_ID};
use crate::network::{status, wait_until, FAST};
use atoll_primitives::Address;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

const BALANCE: u128 = 1_000_000_000;
const ACCOUNTS: u64 = 40;
const VALIDATORS: usize = 6;

/// The shards `node` tracks now.
fn tracked(node: &Node) -> BTreeSet<u64> {
    status(node)["shards"]
        .as_array()
        .expect("shards")
        .iter()
        .filter(|s| s["tracked"] == true)
        .map(|s| s["shard"].as_u64().expect("shard"))
        .collect()
}

/// Calls `method` on the first validator that answers anything but 1021
/// (not tracked), trying them in turn until `timeout`.
fn on_a_tracker(net: &Localnet, method: &str, params: Value) -> Result<Value, (i64, String)> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        for node in &net.nodes {
            match node.call(method, params.clone()) {
                Err((1021, _)) => continue,
                other => return other,
            }
        }
        assert!(
            Instant::now() < deadline,
            "no validator tracks it: {params}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn balance(net: &Localnet, address: Address) -> u128 {
    on_a_tracker(net, "atoll_getAccount", json!([address.to_string()])).expect("account")["balance"]
        .as_str()
        .expect("balance")
        .parse()
        .expect("number")
}

/// Receipts `node` obtained `how` (`local`, `pushed`, `pulled`), from its
/// metrics.
fn obtained(node: &Node, how: &str) -> u64 {
    let (_, text) = crate::harness::get(node.metrics.expect("metrics on"), "/metrics");
    let prefix = format!("atoll_receipts_obtained_total{{how=\"{how}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map_or(0, |n| n.trim().parse().expect("a count"))
}

/// Waits until some validator reports `hash` final.
fn wait_final_anywhere(net: &Localnet, hash: &str) {
    wait_until("a transfer is final", Duration::from_secs(60), || {
        net.nodes.iter().any(|n| {
            n.call("atoll_getTransactionStatus", json!([hash]))
                .is_ok_and(|s| s["status"] == "final")
        })
    });
}

#[test]
fn committees_of_two_settle_every_cross_shard_transfer_once() {
    let net = Localnet::start_with(
        VALIDATORS,
        2,
        &["--committee-size", "2", "--epoch-length", "20"],
        FAST,
    );
    wait_until(
        "validators connected and finalizing",
        Duration::from_secs(60),
        || {
            net.nodes.iter().all(|n| {
                let s = status(n);
                s["consensus"]["peers"].as_u64() >= Some(VALIDATORS as u64 - 1)
                    && s["consensus"]["final_height"].as_u64() >= Some(2)
            })
        },
    );
    // Committees of two: nobody tracks both shards in every epoch, and
    // someone does not track a shard, which it refuses to answer for.
    let tracking: Vec<BTreeSet<u64>> = net.nodes.iter().map(tracked).collect();
    assert!(
        tracking.iter().any(|t| t.len() < 2),
        "every validator tracks every shard: {tracking:?}"
    );
    let outsider = tracking.iter().position(|t| !t.contains(&0)).expect("one");
    net.nodes[outsider].err("atoll_getBlock", json!([0, 1]), 1021);

    let mut expected: BTreeMap<Address, u128> =
        (0..ACCOUNTS).map(|i| (dev(i).address(), BALANCE)).collect();
    let mut epochs = BTreeSet::new();
    let rounds = 6u64;
    for round in 0..rounds {
        let mut hashes = Vec::new();
        for i in 0..ACCOUNTS {
            let (from, to) = (dev(i), dev((i * 7 + round + 1) % ACCOUNTS));
            let amount = 1_000 + round as u128;
            let (tx, hash) = transfer(&from, round, to.address(), amount, 1, CHAIN_ID);
            on_a_tracker(&net, "atoll_sendTransaction", json!([tx])).expect("accepted");
            *expected.get_mut(&from.address()).expect("dev") -= amount + 1;
            *expected.get_mut(&to.address()).expect("dev") += amount;
            hashes.push(hash);
        }
        for hash in &hashes {
            wait_final_anywhere(&net, hash);
        }
        epochs.insert(
            status(&net.nodes[0])["beacon"]["epoch"]
                .as_u64()
                .expect("epoch"),
        );
        // Let an epoch or so pass: committees change under the load.
        std::thread::sleep(Duration::from_millis(1500));
    }
    assert!(epochs.len() >= 3, "the test spanned epochs {epochs:?} only");

    // Exactly once: every balance is what the transfers make it (every
    // credit landed once), and nothing was created or lost.
    wait_until("every credit lands", Duration::from_secs(60), || {
        expected.iter().all(|(a, b)| balance(&net, *a) == *b)
    });
    let fees = rounds as u128 * ACCOUNTS as u128;
    assert_eq!(
        expected.values().sum::<u128>() + fees,
        ACCOUNTS as u128 * BALANCE
    );
    for node in &net.nodes {
        assert_eq!(status(node)["consensus"]["equivocations"], 0);
    }
    // Source committees pushed receipts on finality, and destinations
    // credited pushed ones (pulling only what was missing).
    let pushed: u64 = net.nodes.iter().map(|n| obtained(n, "pushed")).sum();
    assert!(pushed > 0, "no pushed receipt was credited");
    // The validators tracking a shard now agree on its blocks, at every
    // height all of them have executed.
    for shard in 0..2u64 {
        let trackers: Vec<&Node> = net
            .nodes
            .iter()
            .filter(|n| tracked(n).contains(&shard))
            .collect();
        assert!(trackers.len() >= 2, "shard {shard} has one tracker");
        let top = trackers
            .iter()
            .map(|n| {
                status(n)["shards"][shard as usize]["final_height"]
                    .as_u64()
                    .expect("h")
            })
            .min()
            .expect("trackers");
        assert!(top > 20, "shard {shard} reached height {top} only");
        for height in 1..=top {
            let blocks: Vec<Value> = trackers
                .iter()
                .map(|n| n.ok("atoll_getBlock", json!([shard, height])))
                .collect();
            for block in &blocks[1..] {
                assert_eq!(block["hash"], blocks[0]["hash"], "shard {shard} {height}");
                assert_eq!(block["state_root"], blocks[0]["state_root"]);
            }
        }
    }
}
