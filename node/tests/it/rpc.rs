//! The JSON-RPC API against a running node: transfers finalize, and every
//! documented error comes with its code.

use crate::harness::{dev, post, read_frame, transfer, websocket, Node, CHAIN_ID};
use serde_json::{json, Value};
use std::time::Duration;

#[test]
fn transfers_finalize_with_balances_nonces_and_statuses() {
    let node = Node::start(4, "");
    let (alice, bob) = (dev(0), dev(1));
    let (balance, nonce) = node.account(bob.address());
    assert_eq!((balance, nonce), (1_000_000_000, 0));

    // wait_until "final" answers only once the block is final.
    let (tx, hash) = transfer(&alice, 0, bob.address(), 250, 3, CHAIN_ID);
    let answered = node.ok("atoll_sendTransaction", json!([tx, "final"]));
    assert_eq!(answered, json!(hash));
    let status = node.ok("atoll_getTransactionStatus", json!([hash]));
    assert_eq!(status["status"], "final", "{status}");
    assert_eq!(status["outcome"]["success"], true);
    assert_eq!(status["shard"], 0);
    let height = status["height"].as_u64().expect("height");

    assert_eq!(node.account(alice.address()), (1_000_000_000 - 253, 1));
    assert_eq!(node.account(bob.address()), (1_000_000_250, 0));
    let account = node.ok(
        "atoll_getAccount",
        json!([bob.address().to_string(), "final"]),
    );
    assert_eq!(account["final"], true);
    assert_eq!(account["shard"], 0);

    // The block holds the transaction, by height and by hash.
    let block = node.ok("atoll_getBlock", json!([0, height]));
    assert!(block["transactions"]
        .as_array()
        .expect("list")
        .contains(&json!(hash)));
    assert_eq!(block["final"], true);
    let by_hash = node.ok("atoll_getBlock", json!([0, block["hash"]]));
    assert_eq!(by_hash, block);
    assert!(node.ok("atoll_getBlock", json!([0, "latest"]))["height"].as_u64() >= Some(height));

    // Several in a row from one sender, admitted out of order, all land.
    let mut hashes = Vec::new();
    for nonce in [2u64, 1, 3] {
        let (tx, hash) = transfer(&alice, nonce, bob.address(), 1, 1, CHAIN_ID);
        node.ok("atoll_sendTransaction", json!([tx]));
        hashes.push(hash);
    }
    let pending_or_later = node.ok("atoll_getTransactionStatus", json!([hashes[0]]));
    assert!(["pending", "included", "final"]
        .contains(&pending_or_later["status"].as_str().expect("status")));
    for hash in &hashes {
        node.wait_final(hash, Duration::from_secs(30));
    }
    assert_eq!(node.account(alice.address()).1, 4);
    let unknown = node.ok(
        "atoll_getTransactionStatus",
        json!([format!("0x{}", "ab".repeat(32))]),
    );
    assert_eq!(unknown["status"], "unknown");

    let status = node.ok("atoll_status", json!([]));
    assert_eq!(status["chain_id"], CHAIN_ID);
    assert_eq!(status["validators"].as_array().expect("list").len(), 1);
    assert!(status["shards"][0]["final_height"].as_u64() >= Some(height));

    // A JSON-RPC batch is answered call by call.
    let batch = json!([
        {"jsonrpc": "2.0", "id": 1, "method": "atoll_status", "params": []},
        {"jsonrpc": "2.0", "id": 2, "method": "atoll_getAccount", "params": ["zz"]},
    ]);
    let (code, body) = post(node.rpc, batch.to_string().as_bytes());
    assert_eq!(code, 200);
    let answers: Vec<Value> = serde_json::from_str(&body).expect("batch answer");
    assert_eq!(answers.len(), 2);
    let bad = answers.iter().find(|a| a["id"] == 2).expect("answer 2");
    assert_eq!(bad["error"]["code"], -32602);

    // Metrics count blocks, transactions and requests.
    let metrics = node.metrics.expect("metrics on");
    let (code, text) = crate::harness::get(metrics, "/metrics");
    assert_eq!(code, 200);
    for name in [
        "atoll_block_height",
        "atoll_mempool_transactions",
        "atoll_executor_reexecutions_total",
        "atoll_rpc_requests_total{method=\"sendTransaction\",result=\"ok\"}",
        "atoll_block_transactions_bucket",
    ] {
        assert!(text.contains(name), "{name} missing from metrics:\n{text}");
    }
}

#[test]
fn new_heads_arrive_over_websocket() {
    let node = Node::start(2, "");
    let request =
        json!({"jsonrpc": "2.0", "id": 1, "method": "atoll_subscribe", "params": ["newHeads"]});
    let mut ws = websocket(node.rpc, &request.to_string());
    ws.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let accepted: Value = serde_json::from_str(&read_frame(&mut ws)).expect("json");
    let id = accepted["result"].clone();
    assert!(!id.is_null(), "{accepted}");
    let mut heights = Vec::new();
    while heights.len() < 3 {
        let note: Value = serde_json::from_str(&read_frame(&mut ws)).expect("json");
        assert_eq!(note["method"], "atoll_subscription", "{note}");
        assert_eq!(note["params"]["subscription"], id);
        heights.push(note["params"]["result"]["height"].as_u64().expect("height"));
    }
    assert!(heights.windows(2).all(|w| w[1] == w[0] + 1), "{heights:?}");

    let bad =
        json!({"jsonrpc": "2.0", "id": 2, "method": "atoll_subscribe", "params": ["oldHeads"]});
    let mut ws = websocket(node.rpc, &bad.to_string());
    ws.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let refused: Value = serde_json::from_str(&read_frame(&mut ws)).expect("json");
    assert_eq!(refused["error"]["code"], -32602, "{refused}");
}

#[test]
fn every_bad_transaction_gets_its_documented_code() {
    let node = Node::start(
        3,
        "[mempool]\nmax_transactions = 4\nmax_per_sender = 2\nmax_nonce_gap = 8\nmax_queued = 4\n[rpc]\nmax_request_bytes = 65536",
    );
    let (alice, bob, carol) = (dev(0), dev(1), dev(2));
    let send = |tx: &str| json!([tx]);
    let height_before = node.final_height();

    // The operator's methods are off unless rpc.admin is set.
    node.err(
        "atoll_moveAccount",
        json!([alice.address().to_string(), 0]),
        1018,
    );
    // Bad params: not hex, not a transaction, trailing bytes.
    node.err("atoll_sendTransaction", send("xyz"), -32602);
    node.err("atoll_sendTransaction", send("00ff"), -32602);
    let (good, _) = transfer(&alice, 0, bob.address(), 1, 1, CHAIN_ID);
    node.err("atoll_sendTransaction", send(&format!("{good}00")), -32602);
    node.err("atoll_sendTransaction", json!([good, "eventually"]), -32602);
    node.err("atoll_getAccount", json!(["0x1234"]), -32602);
    node.err("atoll_getBlock", json!([0, "soon"]), -32602);

    // A flipped signature byte.
    let mut bytes = hex::decode(&good).expect("hex");
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    node.err("atoll_sendTransaction", send(&hex::encode(&bytes)), 1001);
    // Another chain.
    let (other_chain, _) = transfer(&alice, 0, bob.address(), 1, 1, CHAIN_ID + 1);
    node.err("atoll_sendTransaction", send(&other_chain), 1002);
    // More than the balance.
    let (too_much, _) = transfer(&alice, 0, bob.address(), 2_000_000_000, 1, CHAIN_ID);
    node.err("atoll_sendTransaction", send(&too_much), 1005);
    // Too far ahead.
    let (gap, _) = transfer(&alice, 9, bob.address(), 1, 1, CHAIN_ID);
    node.err("atoll_sendTransaction", send(&gap), 1004);

    // Admitted, then the same again; then a used nonce.
    node.ok("atoll_sendTransaction", json!([good, "final"]));
    node.err("atoll_sendTransaction", send(&good), 1008);
    let (reused, _) = transfer(&alice, 0, bob.address(), 2, 1, CHAIN_ID);
    node.err("atoll_sendTransaction", send(&reused), 1003);

    // Fill the pool with transactions that wait on a nonce gap, so none is
    // taken into a block: two senders, two each (the per-sender limit).
    for key in [&bob, &carol] {
        for nonce in [5u64, 6] {
            let (tx, _) = transfer(key, nonce, alice.address(), 1, 1, CHAIN_ID);
            node.ok("atoll_sendTransaction", send(&tx));
        }
    }
    let (third, _) = transfer(&bob, 7, alice.address(), 1, 1, CHAIN_ID);
    node.err("atoll_sendTransaction", send(&third), 1007);
    let (same_nonce, _) = transfer(&bob, 5, alice.address(), 2, 1, CHAIN_ID);
    node.err("atoll_sendTransaction", send(&same_nonce), 1009);
    let (no_room, _) = transfer(&alice, 3, bob.address(), 1, 1, CHAIN_ID);
    node.err("atoll_sendTransaction", send(&no_room), 1006);
    assert_eq!(
        node.ok("atoll_status", json!([]))["mempool"]["transactions"],
        4
    );

    // Heights the node does not keep, blocks it does not have.
    let head = node.final_height();
    assert!(head > height_before);
    node.err(
        "atoll_getAccount",
        json!([bob.address().to_string(), 0]),
        1012,
    );
    node.err(
        "atoll_getAccount",
        json!([bob.address().to_string(), head + 1000]),
        1011,
    );
    node.err("atoll_getBlock", json!([0, head + 1000]), 1011);
    node.err("atoll_getBlock", json!([3, "latest"]), 1010);

    // A body over rpc.max_request_bytes.
    let huge = format!(
        "{{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"atoll_status\",\"params\":[\"{}\"]}}",
        "a".repeat(100_000)
    );
    let (code, body) = post(node.rpc, huge.as_bytes());
    assert_eq!(code, 413, "{body}");
    assert!(body.contains("-32007"), "{body}");
    // The node is fine after all that.
    // (A higher fee makes room in the full pool.)
    let (tx, hash) = transfer(&alice, 1, bob.address(), 1, 5, CHAIN_ID);
    node.ok("atoll_sendTransaction", json!([tx, "final"]));
    assert_eq!(
        node.ok("atoll_getTransactionStatus", json!([hash]))["status"],
        "final"
    );
}

#[test]
fn a_waiter_learns_when_its_transaction_is_replaced() {
    let node = std::sync::Arc::new(Node::start(2, ""));
    let (alice, bob) = (dev(0), dev(1));
    // Nonce 1 waits for nonce 0, so it stays in the pool until replaced.
    let (waiting, _) = transfer(&alice, 1, bob.address(), 1, 1, CHAIN_ID);
    let waiter = {
        let node = std::sync::Arc::clone(&node);
        std::thread::spawn(move || node.call("atoll_sendTransaction", json!([waiting, "final"])))
    };
    std::thread::sleep(Duration::from_millis(300));
    let (dearer, dearer_hash) = transfer(&alice, 1, bob.address(), 1, 2, CHAIN_ID);
    node.ok("atoll_sendTransaction", json!([dearer]));
    let (code, message) = waiter
        .join()
        .expect("thread")
        .expect_err("the wait ends in an error");
    assert_eq!(code, 1016, "{message}");
    // The replacement goes through once the gap fills.
    let (first, _) = transfer(&alice, 0, bob.address(), 1, 1, CHAIN_ID);
    node.ok("atoll_sendTransaction", json!([first]));
    node.wait_final(&dearer_hash, Duration::from_secs(30));
}
