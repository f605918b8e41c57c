//! Clients that misbehave: oversized bodies, floods of invalid
//! transactions, garbage, connection floods and a WebSocket subscriber that
//! never reads. The node stays up, its memory stays bounded, and valid
//! transactions still finalize.

use crate::harness::{dev, post, transfer, try_request, websocket, Node, CHAIN_ID};
use serde_json::{json, Value};
use std::net::TcpStream;
use std::time::Duration;

/// Growth of resident memory the abuse may cause, in KiB.
const MAX_GROWTH_KIB: u64 = 300 * 1024;

#[test]
fn abusive_clients_do_not_hurt_the_node() {
    let mut node = Node::start(2, "[rpc]\nmax_connections = 32");
    let (alice, bob) = (dev(0), dev(1));
    let (tx, _) = transfer(&alice, 0, bob.address(), 1, 1, CHAIN_ID);
    node.ok("atoll_sendTransaction", json!([tx, "final"]));
    let rss_before = node.rss_kib();

    // A subscriber that never reads what it asked for.
    let request =
        json!({"jsonrpc": "2.0", "id": 1, "method": "atoll_subscribe", "params": ["newHeads"]});
    let silent = websocket(node.rpc, &request.to_string());

    // Floods of invalid transactions: bad signatures (each costs the node a
    // verification), in batches of 1,000; and garbage.
    let mut flipped = 0;
    for round in 0..20u64 {
        let batch: Vec<Value> = (0..1000u64)
            .map(|i| {
                let (tx, _) = transfer(&alice, 1 + round * 1000 + i, bob.address(), 1, 1, CHAIN_ID);
                let mut bytes = hex::decode(tx).expect("hex");
                let last = bytes.len() - 1;
                bytes[last] ^= 0x40;
                json!({"jsonrpc": "2.0", "id": i, "method": "atoll_sendTransaction", "params": [hex::encode(bytes)]})
            })
            .collect();
        let (code, text) = post(node.rpc, Value::Array(batch).to_string().as_bytes());
        assert_eq!(code, 200);
        let answers: Vec<Value> = serde_json::from_str(&text).expect("batch answer");
        flipped += answers
            .iter()
            .filter(|a| a["error"]["code"] == 1001 || a["error"]["code"] == 1004)
            .count();
        for garbage in [
            &b"{\"jsonrpc\": \"2.0\", \"method\": "[..],
            &[0xff; 300][..],
            b"[]",
        ] {
            let _ = try_request(node.rpc, "POST", "/", garbage);
        }
        let huge = vec![b'['; 11 * 1024 * 1024];
        let _ = try_request(node.rpc, "POST", "/", &huge);
    }
    assert_eq!(flipped, 20_000, "every invalid transaction was refused");

    // More connections than allowed, all held open at once.
    let held: Vec<TcpStream> = (0..100)
        .filter_map(|_| TcpStream::connect(node.rpc).ok())
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    drop(held);

    // Still up, memory bounded, valid transactions still finalize.
    assert!(node.is_running(), "the node died; log:\n{}", node.log());
    let (tx, hash) = transfer(&alice, 1, bob.address(), 1, 1, CHAIN_ID);
    let mut answered = None;
    for _ in 0..50 {
        match node.call("atoll_sendTransaction", json!([tx, "final"])) {
            Ok(v) => {
                answered = Some(v);
                break;
            }
            Err((1008, _)) => break,
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
    let _ = answered;
    node.wait_final(&hash, Duration::from_secs(30));
    let rss_after = node.rss_kib();
    assert!(
        rss_after < rss_before + MAX_GROWTH_KIB,
        "resident memory grew from {rss_before} KiB to {rss_after} KiB"
    );
    drop(silent);
}
