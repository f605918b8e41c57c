//! SIGKILL under load: whatever was reported final survives, the head's
//! state root matches, and the node goes on producing blocks.

use crate::harness::{answer, dev, transfer, try_request, Node, CHAIN_ID};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const SENDERS: u64 = 200;
const ROUNDS: usize = 3;

/// Sends batches of transfers from every sender until `stop`, recording the
/// hashes the node admitted. Connection errors (the node was killed) are
/// expected and skipped; nonces restart from the node's view after them.
fn load(rpc: Arc<Mutex<SocketAddr>>, stop: Arc<AtomicBool>, sent: Arc<Mutex<Vec<String>>>) {
    let keys: Vec<_> = (0..SENDERS).map(dev).collect();
    let mut nonces: Vec<Option<u64>> = vec![None; keys.len()];
    let mut round = 0u64;
    while !stop.load(Ordering::Relaxed) {
        round += 1;
        let addr = *rpc.lock().expect("lock");
        let mut batch = Vec::new();
        let mut hashes = Vec::new();
        for (i, key) in keys.iter().enumerate() {
            let nonce = match nonces[i] {
                Some(n) => n,
                None => {
                    let body = json!({"jsonrpc":"2.0","id":1,"method":"atoll_getAccount","params":[key.address().to_string()]});
                    let Some((200, text)) =
                        try_request(addr, "POST", "/", body.to_string().as_bytes())
                    else {
                        break;
                    };
                    let Ok(value) = serde_json::from_str::<Value>(&text) else {
                        break;
                    };
                    let Ok(account) = answer(&value) else { break };
                    account["nonce"].as_u64().expect("nonce")
                }
            };
            let to = keys[(i + 1 + round as usize) % keys.len()].address();
            let (tx, hash) = transfer(key, nonce, to, 1, 1, CHAIN_ID);
            batch.push(
                json!({"jsonrpc":"2.0","id":i,"method":"atoll_sendTransaction","params":[tx]}),
            );
            hashes.push((i, hash));
            nonces[i] = Some(nonce + 1);
        }
        let ok = try_request(
            addr,
            "POST",
            "/",
            Value::Array(batch).to_string().as_bytes(),
        )
        .and_then(|(_, text)| serde_json::from_str::<Vec<Value>>(&text).ok());
        match ok {
            Some(answers) => {
                let admitted: HashMap<u64, bool> = answers
                    .iter()
                    .map(|a| {
                        (
                            a["id"].as_u64().unwrap_or(u64::MAX),
                            a.get("result").is_some(),
                        )
                    })
                    .collect();
                let mut sent = sent.lock().expect("lock");
                for (i, hash) in hashes {
                    if admitted.get(&(i as u64)) == Some(&true) {
                        sent.push(hash);
                    } else {
                        nonces[i] = None;
                    }
                }
            }
            None => {
                nonces.iter_mut().for_each(|n| *n = None);
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn sigkill_under_load_loses_nothing_reported_final() {
    let mut node = Node::start(SENDERS as usize, "");
    let rpc = Arc::new(Mutex::new(node.rpc));
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(Mutex::new(Vec::new()));
    let loader = {
        let (rpc, stop, sent) = (Arc::clone(&rpc), Arc::clone(&stop), Arc::clone(&sent));
        std::thread::spawn(move || load(rpc, stop, sent))
    };
    let mut finals: HashMap<String, Value> = HashMap::new();
    for round in 0..ROUNDS {
        // Let load build up, then record what the node says is final.
        let deadline = Instant::now() + Duration::from_secs(30);
        while sent.lock().expect("lock").len() < (round + 1) * 2000 {
            assert!(
                Instant::now() < deadline,
                "the load does not get through; log:\n{}",
                node.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let hashes: Vec<String> = sent.lock().expect("lock").clone();
        for chunk in hashes.chunks(500) {
            let batch: Vec<Value> = chunk
                .iter()
                .enumerate()
                .map(|(i, h)| json!({"jsonrpc":"2.0","id":i,"method":"atoll_getTransactionStatus","params":[h]}))
                .collect();
            let (_, text) =
                crate::harness::post(node.rpc, Value::Array(batch).to_string().as_bytes());
            let answers: Vec<Value> = serde_json::from_str(&text).expect("batch answer");
            for a in answers {
                let status = answer(&a).expect("status");
                if status["status"] == "final" {
                    finals.insert(status["hash"].as_str().expect("hash").to_string(), status);
                }
            }
        }
        let final_height = node.final_height();
        let final_block = node.ok("atoll_getBlock", json!([0, final_height]));
        assert!(!finals.is_empty());

        // Kill it mid-load, with no chance to clean up.
        assert_eq!(node.signal(9), None, "SIGKILL ends the process");
        node.run();
        *rpc.lock().expect("lock") = node.rpc;

        let block = node.ok("atoll_getBlock", json!([0, final_height]));
        assert_eq!(block["hash"], final_block["hash"], "round {round}");
        assert_eq!(block["state_root"], final_block["state_root"]);
        for (hash, before) in &finals {
            let after = node.ok("atoll_getTransactionStatus", json!([hash]));
            assert_eq!(&after, before, "{hash} changed across the crash");
        }
    }
    // The node goes on: the head moves and new transfers finalize.
    let height = node.final_height();
    let deadline = Instant::now() + Duration::from_secs(30);
    while node.final_height() < height + 3 {
        assert!(
            Instant::now() < deadline,
            "no new blocks after restart; log:\n{}",
            node.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    stop.store(true, Ordering::Relaxed);
    loader.join().expect("loader");
    let last = sent
        .lock()
        .expect("lock")
        .last()
        .cloned()
        .expect("some sent");
    node.wait_final(&last, Duration::from_secs(30));
}
