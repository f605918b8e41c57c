//! Moving an account to another shard on a running node
//! (`atoll_moveAccount`): its balance and nonce survive the move and a
//! restart, and each of its transactions sent while it moves is either
//! applied once or refused with a clear error.

use crate::harness::{dev, transfer, Node, CHAIN_ID};
use atoll_primitives::{KeyPair, ShardId, ShardLayout};
use serde_json::json;
use std::time::{Duration, Instant};

const BALANCE: u128 = 1_000_000_000;

fn on_shard(shard: u16) -> KeyPair {
    let layout = ShardLayout::uniform(2).expect("2 shards");
    (0..40)
        .map(dev)
        .find(|k| layout.shard_of(&k.address()) == ShardId(shard))
        .expect("a dev account on each shard")
}

fn account(node: &Node, key: &KeyPair) -> serde_json::Value {
    node.ok("atoll_getAccount", json!([key.address().to_string()]))
}

#[test]
fn a_moved_account_keeps_its_state_and_each_transaction_lands_once_or_is_refused() {
    // Short epochs, so the move takes effect within a fraction of a second.
    let mut node = Node::start_with(2, 40, &["--epoch-length", "8", "--admin-rpc"], "");
    let (mover, friend) = (on_shard(0), on_shard(1));
    let address = mover.address().to_string();
    let mut spent: u128 = 0;
    let mut sent: u128 = 0;
    let mut nonce = 0;
    for _ in 0..3 {
        let (tx, _) = transfer(&mover, nonce, friend.address(), 10, 1, CHAIN_ID);
        node.ok("atoll_sendTransaction", json!([tx, "final"]));
        nonce += 1;
        spent += 11;
        sent += 10;
    }
    node.err("atoll_moveAccount", json!([address, 7]), 1019);
    let rpc = format!("http://{}", node.rpc);
    let (ok, _, err) = crate::harness::cli(
        &[
            "admin",
            "move-account",
            &address,
            "--to",
            "7",
            "--rpc",
            &rpc,
        ],
        None,
    );
    assert!(!ok && err.contains("shard 7 does not exist"), "{err}");
    let moved = node.ok("atoll_moveAccount", json!([address, 1]));
    assert_eq!(moved["from"], 0, "{moved}");
    assert_eq!(moved["to"], 1, "{moved}");
    let effective = moved["effective_epoch"].as_u64().expect("epoch");
    assert_eq!(
        effective,
        moved["current_epoch"].as_u64().expect("epoch") + 1
    );

    // Keep sending while the account moves: each transaction is final with
    // success (applied once), or refused with a clear error and sent again.
    let mut refusals = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut after_move = 0;
    while after_move < 3 {
        assert!(Instant::now() < deadline, "refusals: {refusals:?}");
        // Wherever the account is read, it is either flagged arriving or
        // shows its whole state: never an empty account.
        let a = account(&node, &mover);
        if a.get("arriving").is_none() {
            assert_eq!(a["nonce"], nonce, "{a}");
            assert_eq!(a["balance"], (BALANCE - spent).to_string(), "{a}");
        }
        let (tx, hash) = transfer(&mover, nonce, friend.address(), 10, 1, CHAIN_ID);
        match node.call("atoll_sendTransaction", json!([tx, "final"])) {
            Ok(_) => {
                let status = node.ok("atoll_getTransactionStatus", json!([hash]));
                if status["outcome"]["success"] == true {
                    nonce += 1;
                    spent += 11;
                    sent += 10;
                    if status["shard"] == 1 {
                        after_move += 1;
                    }
                } else {
                    // Included but refused by its block (it reached the
                    // old shard as the epoch turned, or the new one before
                    // the state): nothing was charged.
                    let failure = status["outcome"]["failure"].clone();
                    assert!(
                        failure == "sender_on_other_shard" || failure == "sender_arriving",
                        "{status}"
                    );
                    refusals.push(failure.to_string());
                }
            }
            // Wrong shard (routed just before the switch), dropped from the
            // old shard's pool at the switch, or the state not arrived yet.
            Err((code, message)) => {
                assert!(
                    [1010, 1016, 1017].contains(&code),
                    "unexpected error {code}: {message}"
                );
                refusals.push(format!("{code}"));
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
    eprintln!("refused while the account moved: {refusals:?}");
    let check = |node: &Node| {
        let a = account(node, &mover);
        assert_eq!(a["shard"], 1, "{a}");
        assert_eq!(a["nonce"], nonce, "{a}");
        assert_eq!(a["balance"], (BALANCE - spent).to_string(), "{a}");
        assert!(a.get("arriving").is_none(), "{a}");
    };
    check(&node);
    let status = node.ok("atoll_status", json!([]));
    assert_eq!(status["beacon"]["moved_accounts"], 1, "{status}");
    assert!(status["beacon"]["epoch"].as_u64().expect("epoch") >= effective);

    // The move, the schedule and the beacon survive a kill.
    let beacon_height = status["beacon"]["height"].as_u64().expect("height");
    assert_eq!(node.signal(9), None);
    node.run();
    check(&node);
    let status = node.ok("atoll_status", json!([]));
    assert_eq!(status["beacon"]["moved_accounts"], 1, "{status}");
    assert!(status["beacon"]["height"].as_u64().expect("height") >= beacon_height);
    // Its old transactions cannot be replayed on its new shard.
    let (old, _) = transfer(&mover, 0, friend.address(), 10, 1, CHAIN_ID);
    node.err("atoll_sendTransaction", json!([old]), 1003);
    // Everything it sent was credited once.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let balance = account(&node, &friend)["balance"].clone();
        if balance == (BALANCE + sent).to_string() {
            break;
        }
        assert!(Instant::now() < deadline, "{balance} != {}", BALANCE + sent);
        std::thread::sleep(Duration::from_millis(20));
    }
}
