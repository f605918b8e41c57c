//! A node running several shards: cross-shard transfers debit on the
//! sender's shard and are credited once on the recipient's, also when the
//! node is killed while receipts are in flight.

use crate::harness::{dev, transfer, Node, CHAIN_ID};
use atoll_primitives::{KeyPair, ShardId, ShardLayout};
use rand::{Rng, SeedableRng};
use serde_json::json;
use std::time::{Duration, Instant};

const BALANCE: u128 = 1_000_000_000;

/// Dev accounts (index, key) on `shard` of 2.
fn on_shard(shard: u16, count: usize) -> Vec<KeyPair> {
    let layout = ShardLayout::uniform(2).expect("2 shards");
    (0..40)
        .map(dev)
        .filter(|k| layout.shard_of(&k.address()) == ShardId(shard))
        .take(count)
        .collect()
}

fn wait_balance(node: &Node, key: &KeyPair, expected: u128) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (balance, _) = node.account(key.address());
        if balance == expected {
            return;
        }
        assert!(
            balance < expected,
            "credited more than sent: {balance} > {expected}"
        );
        assert!(
            Instant::now() < deadline,
            "balance {balance}, expected {expected}; log:\n{}",
            node.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_cross_shard_transfer_debits_once_and_credits_once() {
    let node = Node::start_sharded(2, 40, "");
    let (alice, bob) = (&on_shard(0, 1)[0], &on_shard(1, 1)[0]);
    let status = node.ok("atoll_status", json!([]));
    assert_eq!(status["shards"].as_array().expect("a list").len(), 2);
    let (tx, hash) = transfer(alice, 0, bob.address(), 1234, 5, CHAIN_ID);
    node.ok("atoll_sendTransaction", json!([tx, "final"]));
    let st = node.ok("atoll_getTransactionStatus", json!([hash]));
    assert_eq!(st["status"], "final");
    assert_eq!(st["shard"], 0);
    assert_eq!(node.account(alice.address()), (BALANCE - 1234 - 5, 1));
    let account = node.ok("atoll_getAccount", json!([bob.address().to_string()]));
    assert_eq!(account["shard"], 1);
    wait_balance(&node, bob, BALANCE + 1234);
    // The status shows the receipt through to its final credit.
    let deadline = Instant::now() + Duration::from_secs(30);
    let receipt = loop {
        let st = node.ok("atoll_getTransactionStatus", json!([hash]));
        let receipt = st["receipts"][0].clone();
        assert_eq!(receipt["source"], 0, "{st}");
        assert_eq!(receipt["destination"], 1, "{st}");
        if receipt["status"] == "final" {
            break receipt;
        }
        assert!(Instant::now() < deadline, "{st}");
        std::thread::sleep(Duration::from_millis(20));
    };
    let applied = receipt["applied_height"].as_u64().expect("a height");
    let detail = node.ok("atoll_getReceipt", json!([receipt["id"]]));
    assert_eq!(detail["to"], json!(bob.address().to_string()));
    assert_eq!(detail["amount"], "1234");
    assert_eq!(detail["origin"], json!(hash));
    assert_eq!(detail["applied_height"], applied);
    // The crediting block carries it.
    let block = node.ok("atoll_getBlock", json!([1, applied]));
    assert_eq!(block["final"], true);
    node.err("atoll_getReceipt", json!(["0:1:999"]), 1011);
    node.err("atoll_getReceipt", json!(["zero"]), -32602);
}

/// A transfer the load thread sent: (hash, sender, receiver, amount).
type Sent = (String, usize, usize, u128);

/// Sends transactions in batches, one per sender (starting at `nonces`;
/// `sign(sender, key, nonce, round)` makes each: its hex, hash and what
/// the test keeps of it) until the node stops answering; returns every
/// transaction it sent, whatever the answer.
fn send_until_killed<T>(
    rpc: std::net::SocketAddr,
    senders: &[KeyPair],
    mut nonces: Vec<u64>,
    sign: impl Fn(usize, &KeyPair, u64, usize) -> (String, String, T),
) -> Vec<(String, T)> {
    let mut sent = Vec::new();
    for round in 0.. {
        let mut calls = Vec::new();
        let mut batch = Vec::new();
        for (i, key) in senders.iter().enumerate() {
            let (tx, hash, kept) = sign(i, key, nonces[i], round);
            calls.push(json!({"jsonrpc": "2.0", "id": i, "method": "atoll_sendTransaction", "params": [tx]}));
            batch.push((hash, kept));
            nonces[i] += 1;
        }
        let body = serde_json::Value::Array(calls).to_string();
        sent.extend(batch);
        if crate::harness::try_request(rpc, "POST", "/", body.as_bytes()).is_none() {
            return sent;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    unreachable!("the loop ends when the node is killed")
}

/// Cross-shard transfers from `senders` to `receivers` until the node is
/// killed.
fn transfer_until_killed(
    rpc: std::net::SocketAddr,
    senders: &[KeyPair],
    receivers: &[KeyPair],
    nonces: Vec<u64>,
) -> Vec<Sent> {
    let sign = |i: usize, key: &KeyPair, nonce: u64, round: usize| {
        let r = (i + round) % receivers.len();
        let amount = 1 + (round % 7) as u128;
        let (tx, hash) = transfer(key, nonce, receivers[r].address(), amount, 1, CHAIN_ID);
        (tx, hash, (i, r, amount))
    };
    send_until_killed(rpc, senders, nonces, sign)
        .into_iter()
        .map(|(hash, (i, r, amount))| (hash, i, r, amount))
        .collect()
}

#[test]
fn receipts_in_flight_survive_sigkill_at_random_moments_exactly_once() {
    let mut node = Node::start_sharded(2, 40, "");
    let senders = on_shard(0, 10);
    let receivers = on_shard(1, 3);
    let seed: u64 = rand::random();
    eprintln!("kill moments from seed {seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut sent: Vec<Sent> = Vec::new();
    for _ in 0..4 {
        // Continuous cross-shard load, and a SIGKILL at a random moment of
        // it: blocks committing, receipts waiting in the relay or being
        // credited, beacon blocks being stored.
        let nonces: Vec<u64> = senders
            .iter()
            .map(|k| node.account(k.address()).1)
            .collect();
        let load = {
            let (rpc, senders, receivers) = (node.rpc, senders.clone(), receivers.clone());
            std::thread::spawn(move || transfer_until_killed(rpc, &senders, &receivers, nonces))
        };
        std::thread::sleep(Duration::from_millis(rng.gen_range(150..900)));
        assert_eq!(node.signal(9), None);
        sent.extend(load.join().expect("the load thread"));
        node.run();
    }
    // What was included on the source shard is what the receivers must get,
    // exactly once; what the kills lost from the mempools was never charged.
    let mut expected = vec![BALANCE; receivers.len()];
    let mut fees = 0u128;
    let mut included = 0;
    // A transfer lost with a mempool may be signed again, identically, after
    // the restart (same nonce, receiver and amount): count each hash once.
    let mut seen = std::collections::HashSet::new();
    sent.retain(|(hash, ..)| seen.insert(hash.clone()));
    for (hash, _, r, amount) in &sent {
        let status = node.ok("atoll_getTransactionStatus", json!([hash]));
        if status["outcome"]["success"] == true {
            expected[*r] += amount;
            fees += 1;
            included += 1;
        }
    }
    assert!(
        included > 0,
        "some transfers were included before the kills"
    );
    for (r, key) in receivers.iter().enumerate() {
        wait_balance(&node, key, expected[r]);
    }
    // And nothing more arrives later; the supply is whole.
    std::thread::sleep(Duration::from_millis(500));
    for (r, key) in receivers.iter().enumerate() {
        assert_eq!(node.account(key.address()).0, expected[r]);
    }
    let total: u128 = (0..40).map(|i| node.account(dev(i).address()).0).sum();
    assert_eq!(
        total + fees,
        40 * BALANCE,
        "conservation after {included} transfers"
    );
}

/// The status of `hash` once its cross-shard call's refund is final
/// (`None`: it was never included, or is not a call that crossed shards).
fn settled_call(node: &Node, hash: &str) -> Option<serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status = node.ok("atoll_getTransactionStatus", json!([hash]));
        if status["outcome"]["contract"]["status"] != "sent" {
            return None;
        }
        let receipts = status["receipts"].as_array().cloned().unwrap_or_default();
        let refunded = receipts.len() == 2
            && receipts[1]["status"] == "final"
            && receipts[0]["call"].is_object();
        if refunded {
            return Some(status);
        }
        assert!(Instant::now() < deadline, "never settled: {status}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn cross_shard_calls_survive_sigkill_at_random_moments_exactly_once() {
    use crate::harness::signed as sign;
    use atoll_primitives::Action;
    use atoll_shard::contracts::{call_data, create_address, Contract};

    // Load and kills on two cores: not beside a localnet.
    let _turn = crate::harness::localnet_turn();
    let mut node = Node::start_sharded(2, 40, "");
    // A counter contract on shard 1, called from shard 0.
    let owner = &on_shard(1, 1)[0];
    let create = Action::Create {
        value: 0,
        init_code: Contract::Probe.init_code(&[]),
        gas_limit: 2_000_000,
    };
    let (tx, _) = sign(owner, 0, create);
    node.ok("atoll_sendTransaction", json!([tx, "final"]));
    let probe = create_address(&owner.address(), 0);
    let callers = on_shard(0, 8);
    let bump = move |_: usize, key: &KeyPair, nonce: u64, _: usize| {
        let action = Action::Call {
            to: probe,
            value: 0,
            input: call_data("bump()", &[]),
            gas_limit: 100_000,
        };
        let (tx, hash) = sign(key, nonce, action);
        (tx, hash, ())
    };
    let seed: u64 = rand::random();
    eprintln!("kill moments from seed {seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut sent = Vec::new();
    for _ in 0..3 {
        // Calls going out, running on shard 1 and refunds coming back
        // when the node is killed.
        let nonces: Vec<u64> = callers
            .iter()
            .map(|k| node.account(k.address()).1)
            .collect();
        let load = {
            let (rpc, callers) = (node.rpc, callers.clone());
            std::thread::spawn(move || send_until_killed(rpc, &callers, nonces, bump))
        };
        std::thread::sleep(Duration::from_millis(rng.gen_range(150..900)));
        assert_eq!(node.signal(9), None);
        sent.extend(load.join().expect("the load thread"));
        node.run();
    }
    let mut seen = std::collections::HashSet::new();
    sent.retain(|(hash, ())| seen.insert(hash.clone()));
    // Every call included on shard 0 ran once on shard 1, and its refund
    // was paid once: each caller is down exactly the gas its calls used.
    let mut ran = 0u64;
    let mut used = 0u128;
    for (hash, ()) in &sent {
        if let Some(status) = settled_call(&node, hash) {
            let call = &status["receipts"][0]["call"];
            assert_eq!(call["success"], true, "{status}");
            ran += 1;
            used += u128::from(call["contract"]["gas_used"].as_u64().expect("gas"));
        }
    }
    assert!(ran > 0, "some calls were included before the kills");
    let counter = node.ok(
        "atoll_getStorageAt",
        json!([probe.to_string(), format!("0x{}", "00".repeat(32))]),
    );
    let counter = u64::from_str_radix(counter.as_str().expect("hex").trim_start_matches("0x"), 16)
        .expect("a number");
    assert_eq!(counter, ran, "every included call ran exactly once");
    std::thread::sleep(Duration::from_millis(500));
    let paid: u128 = callers
        .iter()
        .map(|k| BALANCE - node.account(k.address()).0)
        .sum();
    assert_eq!(paid, used, "every refund paid exactly once");
}

#[test]
fn tx_transfer_wait_returns_once_the_other_shard_credited() {
    let node = Node::start_sharded(2, 10, "");
    let layout = ShardLayout::uniform(2).expect("2 shards");
    let on = |shard: u16| {
        (0..10u64)
            .find(|&i| layout.shard_of(&dev(i).address()) == ShardId(shard))
            .expect("a dev account with a key file on each shard")
    };
    let (from, to) = (on(0), on(1));
    let key = node.home.join(format!("keys/dev-{from}.json"));
    let rpc = format!("http://{}", node.rpc);
    let recipient = dev(to).address().to_string();
    let (ok, out, err) = crate::harness::cli(
        &[
            "tx",
            "transfer",
            "--rpc",
            &rpc,
            "--key",
            key.to_str().expect("utf-8"),
            "--to",
            &recipient,
            "--amount",
            "321",
            "--wait",
        ],
        None,
    );
    assert!(ok, "{out}{err}");
    assert!(out.contains("\"status\": \"final\""), "{out}");
    // No waiting here: --wait already waited for the credit.
    assert_eq!(node.account(dev(to).address()).0, BALANCE + 321, "{out}");
}

#[test]
fn a_congested_shard_gets_transfers_held_back_and_every_one_settles_once() {
    // Shard 1 credits at most 5 receipts a block and says it is congested
    // once 20 wait for it; shard 0 puts at most 20 transfers in a block.
    let node = Node::start_sharded(
        2,
        40,
        "[receipts]\nbacklog = 40\nmax_per_block = 5\n[block]\nmax_transactions = 20",
    );
    let senders = on_shard(0, 10);
    let receivers = on_shard(1, 2);
    let mut expected = vec![BALANCE; receivers.len()];
    let mut hashes = Vec::new();
    for nonce in 0..10u64 {
        for (i, key) in senders.iter().enumerate() {
            let r = i % receivers.len();
            let (tx, hash) = transfer(key, nonce, receivers[r].address(), 3, 1, CHAIN_ID);
            node.ok("atoll_sendTransaction", json!([tx]));
            expected[r] += 3;
            hashes.push(hash);
        }
    }
    for (r, key) in receivers.iter().enumerate() {
        wait_balance(&node, key, expected[r]);
    }
    for hash in &hashes {
        let status = node.wait_final(hash, Duration::from_secs(30));
        assert_eq!(status["outcome"]["success"], true, "{status}");
    }
    // Shard 1 said it was congested, and said so no more once it drained.
    let head = node.ok("atoll_status", json!([]))["shards"][1]["head_height"]
        .as_u64()
        .expect("height");
    let flags: Vec<bool> = (1..=head)
        .map(|h| node.ok("atoll_getBlock", json!([1, h]))["congested"] == true)
        .collect();
    assert!(flags.contains(&true), "shard 1 never said it was congested");
    assert_eq!(flags.last(), Some(&false), "shard 1 still congested");
    // Shard 0 held transfers to it back meanwhile: its blocks that carried
    // the 100 transfers (20 at most each) have empty blocks between them,
    // made while the transfers waited in its mempool.
    let head = node.ok("atoll_status", json!([]))["shards"][0]["head_height"]
        .as_u64()
        .expect("height");
    let counts: Vec<u64> = (1..=head)
        .map(|h| {
            node.ok("atoll_getBlock", json!([0, h]))["tx_count"]
                .as_u64()
                .expect("count")
        })
        .collect();
    let first = counts
        .iter()
        .position(|&c| c > 0)
        .expect("a block with transfers");
    let last = counts
        .iter()
        .rposition(|&c| c > 0)
        .expect("a block with transfers");
    assert_eq!(counts.iter().sum::<u64>(), 100);
    assert!(
        counts[first..=last].contains(&0),
        "shard 0 never held back: {counts:?}"
    );
    let status = node.ok("atoll_status", json!([]));
    assert_eq!(status["mempool"]["transactions"], 0, "{status}");
    std::thread::sleep(Duration::from_millis(300));
    for (r, key) in receivers.iter().enumerate() {
        assert_eq!(node.account(key.address()).0, expected[r], "credited once");
    }
}

#[test]
fn a_localnet_runs_calls_and_swaps_once_and_keeps_the_supply_while_a_validator_is_killed() {
    use crate::harness::{signed as sign, Localnet};
    use crate::network::{wait_connected, FAST};
    use atoll_primitives::Action;
    use atoll_shard::contracts::{call_data, create_address, Contract};

    let mut net = Localnet::start(4, 2, FAST);
    wait_connected(&net, &[0, 1, 2, 3], 3);
    let owner = &on_shard(1, 1)[0];
    let create = Action::Create {
        value: 0,
        init_code: Contract::Probe.init_code(&[]),
        gas_limit: 2_000_000,
    };
    let (tx, hash) = sign(owner, 0, create);
    net.nodes[0].ok("atoll_sendTransaction", json!([tx]));
    net.nodes[0].wait_final(&hash, Duration::from_secs(60));
    let probe = create_address(&owner.address(), 0);
    let callers = on_shard(0, 6);
    // Swaps beside them: the load tool's AMM workload from the ten
    // Ethereum dev accounts (half of them across shards), through the
    // validators that stay up.
    let load = {
        let rpcs: Vec<String> = net.nodes[..3]
            .iter()
            .map(|n| format!("http://{}", n.rpc))
            .collect();
        std::thread::spawn(move || {
            let mut args = vec!["load", "--eth", "--accounts", "10", "--workload", "amm"];
            args.extend(["--pools", "2", "--cross-shard-ratio", "0.5"]);
            args.extend(["--tps", "40", "--duration", "12", "--json"]);
            for rpc in &rpcs {
                args.extend(["--rpc", rpc.as_str()]);
            }
            crate::harness::cli(&args, None)
        })
    };
    // Let the load set its pools up and start swapping.
    std::thread::sleep(Duration::from_secs(6));
    // A mixed load: calls that succeed and calls that revert, sent to
    // the validators in turn; validator 3 is killed in the middle of it
    // and restarted later.
    let mut sent = Vec::new();
    for round in 0..10u64 {
        let function = match round % 2 {
            0 => call_data("bump()", &[]),
            _ => call_data("bumpThenFail(string)", &[]),
        };
        let to = (round % 3) as usize;
        for key in &callers {
            let action = Action::Call {
                to: probe,
                value: 0,
                input: function.clone(),
                gas_limit: 100_000,
            };
            let (tx, hash) = sign(key, round, action);
            net.nodes[to].ok("atoll_sendTransaction", json!([tx]));
            sent.push((hash, round % 2 == 0));
        }
        match round {
            3 => assert_eq!(net.nodes[3].signal(9), None),
            7 => net.nodes[3].run(),
            _ => {}
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    // Every call ran once, with its outcome, and its refund was paid once:
    // each caller is down exactly the gas its calls used (at price 1).
    let (mut bumps, mut used) = (0u64, 0u128);
    for (hash, succeeds) in &sent {
        net.nodes[0].wait_final(hash, Duration::from_secs(60));
        let status = settled_call(&net.nodes[0], hash).expect("a cross-shard call");
        let call = &status["receipts"][0]["call"];
        assert_eq!(call["success"], *succeeds, "{status}");
        bumps += u64::from(*succeeds);
        used += u128::from(call["contract"]["gas_used"].as_u64().expect("gas"));
    }
    let paid: u128 = callers
        .iter()
        .map(|k| BALANCE - net.nodes[0].account(k.address()).0)
        .sum();
    assert_eq!(paid, used, "every refund paid exactly once");
    // Every validator, the restarted one included, holds the same count.
    let slot = format!("0x{}", "00".repeat(32));
    for node in &net.nodes {
        wait_until_counter(node, probe, &slot, bumps);
    }
    // Every swap is final and succeeded, and every cross-shard one ran
    // and was refunded.
    let (ok, out, err) = load.join().expect("the load thread");
    assert!(ok, "{out}{err}");
    let report: serde_json::Value = serde_json::from_str(out.trim()).expect("one JSON object");
    assert_eq!(report["submitted"], 480, "{report}");
    assert_eq!(report["finalized"], 480, "{report}");
    assert_eq!(report["errors"], json!({}), "{report}");
    assert!(report["cross_shard"].as_u64() > Some(0), "{report}");
    assert_eq!(report["settled"], report["cross_shard"], "{report}");
    let outcomes = report["sampled_outcomes"].as_object().expect("outcomes");
    assert_eq!(
        outcomes.keys().collect::<Vec<_>>(),
        vec!["success"],
        "{report}"
    );
    // Nothing made or lost: once no receipt is in flight, the genesis
    // supply is what the accounts hold plus what the blocks burnt.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (issued, counted) = crate::harness::supply(&net.nodes[0], &[probe]);
        if issued == counted {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "supply {issued}, accounted for {counted}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// Waits until `node` reads `expected` in `probe`'s counter slot.
fn wait_until_counter(node: &Node, probe: atoll_primitives::Address, slot: &str, expected: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let word = node.ok("atoll_getStorageAt", json!([probe.to_string(), slot]));
        let hex = word.as_str().expect("hex").trim_start_matches("0x");
        let count = u64::from_str_radix(hex, 16).expect("a number");
        if count == expected {
            return;
        }
        assert!(
            count < expected,
            "counted {count} calls, {expected} were sent"
        );
        assert!(
            Instant::now() < deadline,
            "counter at {count}, expected {expected}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
