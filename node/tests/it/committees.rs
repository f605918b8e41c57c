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

/// Calls `method` on the first validator of `up` that answers anything
/// but 1021 (not tracked), trying them in turn for up to a minute.
fn on_a_tracker(
    net: &Localnet,
    up: &[usize],
    method: &str,
    params: Value,
) -> Result<Value, (i64, String)> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        for &i in up {
            match net.nodes[i].call(method, params.clone()) {
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

fn balance(net: &Localnet, up: &[usize], address: Address) -> u128 {
    on_a_tracker(net, up, "atoll_getAccount", json!([address.to_string()])).expect("account")
        ["balance"]
        .as_str()
        .expect("balance")
        .parse()
        .expect("number")
}

/// The counter `series` (a metric name with its labels) of `node`, from
/// its metrics; 0 while it was never counted.
fn counter(node: &Node, series: &str) -> u64 {
    let (_, text) = crate::harness::get(node.metrics.expect("metrics on"), "/metrics");
    let prefix = format!("{series} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map_or(0, |n| n.trim().parse().expect("a count"))
}

/// Receipts `node` obtained `how` (`local`, `pushed`, `pulled`).
fn obtained(node: &Node, how: &str) -> u64 {
    counter(
        node,
        &format!("atoll_receipts_obtained_total{{how=\"{how}\"}}"),
    )
}

/// State snapshots `node` tried, by `result` (`installed`, `rejected`,
/// `failed`).
fn state_syncs(node: &Node, result: &str) -> u64 {
    counter(
        node,
        &format!("atoll_state_syncs_total{{result=\"{result}\"}}"),
    )
}

/// Starts six validators, two shards, committees of two, epochs of
/// `epoch_length` beacon blocks, and waits until they finalize together.
/// A shard more than `sync_gap` blocks behind is synced from a snapshot.
fn start(epoch_length: u64, sync_gap: u64) -> Localnet {
    let extra = format!("{FAST}state_sync_gap = {sync_gap}\n");
    let net = Localnet::start_with(
        VALIDATORS,
        2,
        &[
            "--committee-size",
            "2",
            "--epoch-length",
            &epoch_length.to_string(),
        ],
        &extra,
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
    net
}

/// What every dev account should hold, as transfers are sent.
struct Expected {
    balances: BTreeMap<Address, u128>,
    fees: u128,
}

impl Expected {
    fn new() -> Expected {
        Expected {
            balances: (0..ACCOUNTS).map(|i| (dev(i).address(), BALANCE)).collect(),
            fees: 0,
        }
    }

    /// Sends round `round` (each dev account pays another, about half of
    /// them across shards) through the validators of `up`, and waits until
    /// every transfer is final on one of them.
    fn round(&mut self, net: &Localnet, up: &[usize], round: u64) {
        let mut hashes = Vec::new();
        for i in 0..ACCOUNTS {
            let (from, to) = (dev(i), dev((i * 7 + round + 1) % ACCOUNTS));
            let amount = 1_000 + round as u128;
            let (tx, hash) = transfer(&from, round, to.address(), amount, 1, CHAIN_ID);
            on_a_tracker(net, up, "atoll_sendTransaction", json!([tx])).expect("accepted");
            *self.balances.get_mut(&from.address()).expect("dev") -= amount + 1;
            *self.balances.get_mut(&to.address()).expect("dev") += amount;
            self.fees += 1;
            hashes.push(hash);
        }
        for hash in &hashes {
            wait_until("a transfer is final", Duration::from_secs(60), || {
                up.iter().any(|&i| {
                    net.nodes[i]
                        .call("atoll_getTransactionStatus", json!([hash]))
                        .is_ok_and(|s| s["status"] == "final")
                })
            });
        }
    }

    /// Exactly once: every balance is what the transfers make it (every
    /// credit landed once), and nothing was created or lost. No validator
    /// equivocated, and the validators tracking each shard agree on every
    /// block they all executed.
    fn check(&self, net: &Localnet) {
        let up: Vec<usize> = (0..net.nodes.len()).collect();
        wait_until("every credit lands", Duration::from_secs(90), || {
            self.balances
                .iter()
                .all(|(a, b)| balance(net, &up, *a) == *b)
        });
        assert_eq!(
            self.balances.values().sum::<u128>() + self.fees,
            ACCOUNTS as u128 * BALANCE
        );
        for node in &net.nodes {
            assert_eq!(status(node)["consensus"]["equivocations"], 0);
        }
        for shard in 0..2u64 {
            // Committees change while this runs. A tracker may still be
            // installing a snapshot, or hold one taken at the lowest final
            // height (its head, without a body): at some moment at least
            // two trackers all hold the newest block they all made final.
            let deadline = Instant::now() + Duration::from_secs(60);
            let (trackers, top) = loop {
                let trackers = net
                    .nodes
                    .iter()
                    .filter(|n| tracked(n).contains(&shard))
                    .collect::<Vec<&Node>>();
                let finals: Vec<u64> = trackers
                    .iter()
                    .map(|n| {
                        status(n)["shards"][shard as usize]["final_height"]
                            .as_u64()
                            .expect("h")
                    })
                    .collect();
                let top = finals.iter().copied().min().unwrap_or(0);
                let answers: Vec<Result<Value, (i64, String)>> = trackers
                    .iter()
                    .map(|n| n.call("atoll_getBlock", json!([shard, top])))
                    .collect();
                if trackers.len() >= 2 && top > 20 && answers.iter().all(Result::is_ok) {
                    break (trackers, top);
                }
                if Instant::now() >= deadline {
                    let lagging: Vec<String> = trackers
                        .iter()
                        .zip(&answers)
                        .filter(|(_, a)| a.is_err())
                        .map(|(n, a)| {
                            let log = n.log();
                            let tail: Vec<&str> = log.lines().rev().take(15).collect();
                            format!(
                                "{a:?}\n{}",
                                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                            )
                        })
                        .collect();
                    panic!(
                        "shard {shard}'s {} trackers (final heights {finals:?}) do not all hold \
                         block {top}:\n{}",
                        trackers.len(),
                        lagging.join("\n---\n")
                    );
                }
                std::thread::sleep(Duration::from_millis(100));
            };
            for height in 1..=top {
                // A tracker that synced the shard from a snapshot holds
                // only the blocks above it (1022); one that left the
                // shard's committee since answers for it no longer (1021).
                let blocks: Vec<Value> = trackers
                    .iter()
                    .filter_map(|n| match n.call("atoll_getBlock", json!([shard, height])) {
                        Ok(block) => Some(block),
                        Err((1021 | 1022, _)) => None,
                        Err(e) => panic!("getBlock({shard}, {height}): {e:?}"),
                    })
                    .collect();
                for block in blocks.iter().skip(1) {
                    assert_eq!(block["hash"], blocks[0]["hash"], "shard {shard} {height}");
                    assert_eq!(block["state_root"], blocks[0]["state_root"]);
                }
            }
        }
    }
}

/// Per shard, the newest height the beacon recorded, as `node` sees it.
fn recorded(node: &Node) -> Vec<u64> {
    status(node)["shards"]
        .as_array()
        .expect("shards")
        .iter()
        .map(|s| s["recorded_height"].as_u64().expect("recorded height"))
        .collect()
}

#[test]
fn committees_of_two_settle_every_cross_shard_transfer_once() {
    let mut net = start(20, 4);
    let all: Vec<usize> = (0..VALIDATORS).collect();
    // Committees of two: nobody tracks both shards in every epoch, and
    // someone does not track a shard, which it refuses to answer for.
    let tracking: Vec<BTreeSet<u64>> = net.nodes.iter().map(tracked).collect();
    assert!(
        tracking.iter().any(|t| t.len() < 2),
        "every validator tracks every shard: {tracking:?}"
    );
    let outsider = tracking.iter().position(|t| !t.contains(&0)).expect("one");
    net.nodes[outsider].err("atoll_getBlock", json!([0, 1]), 1021);

    let mut expected = Expected::new();
    let mut epochs = BTreeSet::new();
    for round in 0..6 {
        expected.round(&net, &all, round);
        epochs.insert(
            status(&net.nodes[0])["beacon"]["epoch"]
                .as_u64()
                .expect("epoch"),
        );
        // Let an epoch or so pass: committees change under the load.
        std::thread::sleep(Duration::from_millis(1500));
    }
    assert!(epochs.len() >= 3, "the test spanned epochs {epochs:?} only");
    expected.check(&net);
    // Source committees pushed receipts on finality, and destinations
    // credited pushed ones (pulling only what was missing).
    let pushed: u64 = net.nodes.iter().map(|n| obtained(n, "pushed")).sum();
    assert!(pushed > 0, "no pushed receipt was credited");
    // Validators moved to a shard far ahead of their store synced its
    // state from a peer's snapshot (and `check` found them in agreement
    // with the validators that executed every block); none was rejected.
    let installed: u64 = net.nodes.iter().map(|n| state_syncs(n, "installed")).sum();
    let rejected: u64 = net.nodes.iter().map(|n| state_syncs(n, "rejected")).sum();
    assert!(installed > 0, "no validator synced a shard from a snapshot");
    assert_eq!(rejected, 0, "an honest snapshot was rejected");
    // A validator holding a synced store restarts from it and goes on.
    let synced = net
        .nodes
        .iter()
        .position(|n| state_syncs(n, "installed") > 0)
        .expect("a synced validator");
    net.nodes[synced].signal(9);
    net.nodes[synced].run();
    expected.round(&net, &all, 6);
    expected.check(&net);
}

#[test]
fn a_killed_committee_member_comes_back_and_certification_goes_on() {
    const EPOCH: u64 = 40;
    let mut net = start(EPOCH, 32);
    let all: Vec<usize> = (0..VALIDATORS).collect();
    let mut expected = Expected::new();
    expected.round(&net, &all, 0);
    // Right after an epoch starts, a member of shard 0's committee (as
    // one that does not track the shard names it) is killed: until it is
    // back, that committee of two cannot certify shard 0's headers of
    // this epoch, so their receipts wait; blocks keep finalizing.
    wait_until("an epoch starts", Duration::from_secs(60), || {
        let height = status(&net.nodes[0])["beacon"]["height"]
            .as_u64()
            .expect("height");
        (1..=3).contains(&(height % EPOCH))
    });
    let outsider = net
        .nodes
        .iter()
        .position(|n| !tracked(n).contains(&0))
        .expect("a validator outside shard 0's committees");
    let message = net.nodes[outsider].err("atoll_getBlock", json!([0, 1]), 1021);
    let members = message
        .split_once('[')
        .and_then(|(_, rest)| rest.split_once(']'))
        .map(|(list, _)| list)
        .expect("the message names the committee");
    let victim: usize = members
        .split(',')
        .next()
        .and_then(|v| v.trim().parse().ok())
        .expect("a validator index");
    let killed = Instant::now();
    net.nodes[victim].signal(9);
    let up: Vec<usize> = all.iter().copied().filter(|&i| i != victim).collect();
    // Per shard, the newest final height any live validator executed.
    let heights = |net: &Localnet, up: &[usize]| -> Vec<u64> {
        (0..2)
            .map(|shard| {
                up.iter()
                    .map(|&i| {
                        status(&net.nodes[i])["shards"][shard]["final_height"]
                            .as_u64()
                            .expect("height")
                    })
                    .max()
                    .expect("validators")
            })
            .collect()
    };
    let before = heights(&net, &up);
    for round in 1..4 {
        expected.round(&net, &up, round);
    }
    std::thread::sleep(Duration::from_secs(6).saturating_sub(killed.elapsed()));
    let during = heights(&net, &up);
    let certified = recorded(&net.nodes[up[0]]);
    assert!(
        during.iter().zip(&before).all(|(d, b)| d > b),
        "blocks stopped finalizing: {before:?} -> {during:?}"
    );
    assert!(
        certified[0] + 5 <= during[0],
        "shard 0 was certified to {} of {} without validator {victim}",
        certified[0],
        during[0]
    );
    // Back: it catches up on the shard whose headers wait for its vote,
    // signs them (again, if its first votes were lost), and every shard's
    // certification passes the height reached while it was down.
    net.nodes[victim].run();
    expected.round(&net, &all, 4);
    let target = heights(&net, &all);
    wait_until(
        "every shard is certified past the outage",
        Duration::from_secs(90),
        || {
            recorded(&net.nodes[0])
                .iter()
                .zip(&target)
                .all(|(r, t)| r >= t)
        },
    );
    expected.check(&net);
}
