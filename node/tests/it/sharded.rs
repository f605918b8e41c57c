//! A node running several shards: cross-shard transfers debit on the
//! sender's shard and are credited once on the recipient's, also when the
//! node is killed while receipts are in flight.

use crate::harness::{dev, transfer, Node, CHAIN_ID};
use atoll_primitives::{KeyPair, ShardId, ShardLayout};
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

#[test]
fn receipts_in_flight_survive_sigkill_exactly_once() {
    let mut node = Node::start_sharded(2, 40, "");
    let senders = on_shard(0, 8);
    let receivers = on_shard(1, 2);
    let mut sent_to = vec![0u128; receivers.len()];
    let mut nonces = vec![0u64; senders.len()];
    for round in 0..3 {
        // A burst of cross-shard transfers, then a kill before the receipts
        // can all be credited.
        let mut last = String::new();
        for (i, key) in senders.iter().enumerate() {
            let r = (i + round) % receivers.len();
            let (tx, hash) = transfer(
                key,
                nonces[i],
                receivers[r].address(),
                10 + i as u128,
                1,
                CHAIN_ID,
            );
            node.ok("atoll_sendTransaction", json!([tx]));
            nonces[i] += 1;
            sent_to[r] += 10 + i as u128;
            last = hash;
        }
        node.wait_final(&last, Duration::from_secs(30));
        for (i, key) in senders.iter().enumerate() {
            // Every transfer of the burst is final on the source shard.
            assert_eq!(node.account(key.address()).1, nonces[i]);
        }
        assert_eq!(node.signal(9), None);
        node.run();
    }
    for (r, key) in receivers.iter().enumerate() {
        wait_balance(&node, key, BALANCE + sent_to[r]);
    }
    // And nothing more arrives later.
    std::thread::sleep(Duration::from_millis(500));
    for (r, key) in receivers.iter().enumerate() {
        assert_eq!(node.account(key.address()).0, BALANCE + sent_to[r]);
    }
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
