//! Moving an account to another shard on a running node
//! (`atoll_moveAccount`): its balance and nonce survive the move and a
//! restart, and each of its transactions sent while it moves is either
//! applied once or refused with a clear error. A contract moves with its
//! code and storage; a placed one is refused.

use crate::harness::{dev, transfer, Node, CHAIN_ID};
use atoll_primitives::{Action, Address, KeyPair, ShardId, ShardLayout};
use atoll_shard::contracts::{call_data, create_address, Contract, Word};
use serde_json::json;
use std::time::{Duration, Instant};

const BALANCE: u128 = 1_000_000_000;

fn on_shard(shard: u16) -> KeyPair {
    dev_on(shard, 0)
}

/// The `n`th dev account (of 40) on `shard` of two.
fn dev_on(shard: u16, n: usize) -> KeyPair {
    let layout = ShardLayout::uniform(2).expect("2 shards");
    (0..40)
        .map(dev)
        .filter(|k| layout.shard_of(&k.address()) == ShardId(shard))
        .nth(n)
        .expect("dev accounts on each shard")
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

/// Sends `action` from `key` to `node` and waits until it is final.
fn send(node: &Node, key: &KeyPair, nonce: u64, action: Action) -> serde_json::Value {
    let (tx, _) = crate::harness::signed(key, nonce, action);
    let hash = node.ok("atoll_sendTransaction", json!([tx]));
    let status = node.wait_final(hash.as_str().expect("a hash"), Duration::from_secs(60));
    assert_eq!(status["status"], "final", "{status}");
    status
}

/// `who`'s balance of the ERC-20 `token`, read through `node`.
fn balance_of(node: &Node, token: Address, who: Address) -> u128 {
    let data = call_data("balanceOf(address)", &[Word::address(who)]);
    let data = format!("0x{}", hex::encode(data));
    let read = node.ok(
        "atoll_call",
        json!([{"to": token.to_string(), "data": data}]),
    );
    let output = read["contract"]["output"]
        .as_str()
        .expect("output")
        .to_string();
    u128::from_str_radix(&output[output.len() - 32..], 16).expect("a word")
}

/// `transfer(to, amount)` of the ERC-20 `token`.
fn pay(token: Address, to: Address, amount: u128) -> Action {
    Action::Call {
        to: token,
        value: 0,
        input: call_data(
            "transfer(address,uint256)",
            &[Word::address(to), Word::uint(amount)],
        ),
        gas_limit: 100_000,
    }
}

/// ERC-20s deployed by `creator` (of shard 0) through `node` until one's
/// address is in shard 0's range (it can move) and one's in shard 1's
/// (placed on shard 0, its creator's: it cannot); with the creator's next
/// nonce.
fn tokens(node: &Node, creator: &KeyPair) -> (Address, Address, u64) {
    let layout = ShardLayout::uniform(2).expect("2 shards");
    let (mut token, mut placed, mut nonce) = (None, None, 0);
    while token.is_none() || placed.is_none() {
        let address = create_address(&creator.address(), nonce);
        let create = Action::Create {
            value: 0,
            init_code: Contract::Token.init_code(&[Word::uint(1_000_000)]),
            gas_limit: 2_000_000,
        };
        send(node, creator, nonce, create);
        nonce += 1;
        match layout.shard_of(&address) {
            ShardId(0) => token = token.or(Some(address)),
            _ => placed = placed.or(Some(address)),
        }
        assert!(nonce < 16, "sixteen addresses in one range");
    }
    (token.expect("token"), placed.expect("placed"), nonce)
}

/// Waits until `node` shows `address` on `shard`, whole (not arriving).
fn wait_moved(node: &Node, address: Address, shard: u16) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let account = node.ok("atoll_getAccount", json!([address.to_string()]));
        if account["shard"] == shard && account.get("arriving").is_none() {
            return account;
        }
        assert!(Instant::now() < deadline, "never arrived: {account}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_moved_contract_keeps_its_code_and_storage_and_is_served_from_its_new_shard() {
    let mut node = Node::start_with(2, 40, &["--epoch-length", "8", "--admin-rpc"], "");
    let (creator, holder) = (on_shard(0), on_shard(1));
    let (token, placed, mut nonce) = tokens(&node, &creator);
    send(&node, &creator, nonce, pay(token, holder.address(), 250));
    nonce += 1;
    let code = node.ok("atoll_getCode", json!([token.to_string()]));

    let (code_err, message) = node
        .call("atoll_moveAccount", json!([placed.to_string(), 1]))
        .expect_err("a placed contract does not move");
    assert_eq!(code_err, 1019);
    assert!(
        message.contains("placed contracts do not move"),
        "{message}"
    );
    let moved = node.ok("atoll_moveAccount", json!([token.to_string(), 1]));
    assert_eq!(moved["from"], 0, "{moved}");

    // It arrives whole on shard 1: code, balances (storage), nonce.
    assert_eq!(wait_moved(&node, token, 1)["nonce"], 1);
    assert_eq!(node.ok("atoll_getCode", json!([token.to_string()])), code);
    assert_eq!(balance_of(&node, token, holder.address()), 250);
    assert_eq!(balance_of(&node, token, creator.address()), 999_750);

    // Its old shard's accounts now call it across shards; its new shard's
    // call it directly.
    let status = send(&node, &creator, nonce, pay(token, holder.address(), 5));
    let legs = status["receipts"].as_array().map_or(0, Vec::len);
    assert!(legs >= 1, "the call did not cross shards: {status}");
    send(&node, &holder, 0, pay(token, creator.address(), 1));
    let deadline = Instant::now() + Duration::from_secs(30);
    while balance_of(&node, token, holder.address()) != 254 {
        assert!(Instant::now() < deadline, "the cross-shard call never ran");
        std::thread::sleep(Duration::from_millis(50));
    }

    // The moved contract survives a kill.
    assert_eq!(node.signal(9), None);
    node.run();
    assert_eq!(balance_of(&node, token, holder.address()), 254);
    assert_eq!(node.ok("atoll_getCode", json!([token.to_string()])), code);
}

#[test]
fn validators_agree_on_moves_through_consensus_and_every_one_holds_moved_and_placed_state() {
    use crate::harness::Localnet;
    use crate::network::{wait_connected, FAST};

    let mut net = Localnet::start_with(4, 2, &["--epoch-length", "8"], FAST);
    wait_connected(&net, &[0, 1, 2, 3], 3);
    let (mover, creator, friend) = (on_shard(0), dev_on(0, 1), on_shard(1));
    for nonce in 0..3 {
        send(
            &net.nodes[0],
            &mover,
            nonce,
            Action::Transfer {
                to: friend.address(),
                amount: 10,
            },
        );
    }
    let (token, placed, nonce) = tokens(&net.nodes[0], &creator);
    send(
        &net.nodes[0],
        &creator,
        nonce,
        pay(token, friend.address(), 250),
    );
    let code = net.nodes[0].ok("atoll_getCode", json!([token.to_string()]));

    // Asked through two different validators: each answer comes once a
    // block carrying the move is final.
    let moved = net.nodes[1].ok("atoll_moveAccount", json!([mover.address().to_string(), 1]));
    assert_eq!(
        (moved["from"].clone(), moved["to"].clone()),
        (json!(0), json!(1)),
        "{moved}"
    );
    let moved = net.nodes[2].ok("atoll_moveAccount", json!([token.to_string(), 1]));
    assert_eq!(moved["from"], 0, "{moved}");
    // Asking again for a move the schedule holds is refused.
    let (code_err, message) = net.nodes[3]
        .call("atoll_moveAccount", json!([token.to_string(), 1]))
        .expect_err("already scheduled");
    assert_eq!(code_err, 1019, "{message}");

    // Every validator holds both accounts on shard 1, whole.
    let check = |node: &Node, sent: u64| {
        let account = wait_moved(node, mover.address(), 1);
        assert_eq!(account["nonce"], sent, "{account}");
        let spent = u128::from(sent) * 11;
        assert_eq!(
            account["balance"],
            (BALANCE - spent).to_string(),
            "{account}"
        );
        assert_eq!(wait_moved(node, token, 1)["nonce"], 1);
        assert_eq!(node.ok("atoll_getCode", json!([token.to_string()])), code);
        assert_eq!(balance_of(node, token, friend.address()), 250);
    };
    for node in &net.nodes {
        check(node, 3);
    }
    // The contract placed on shard 0 (its creator's) at an address of
    // shard 1's range is still served from shard 0 by every validator
    // after the epochs turned, and value sent to it from shard 1 follows
    // it there.
    let placed_on_0 = |node: &Node, balance: u128| {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let account = node.ok("atoll_getAccount", json!([placed.to_string()]));
            assert_eq!(account["shard"], 0, "{account}");
            if account["balance"] == balance.to_string() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the value never reached it: {account}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        assert_eq!(balance_of(node, placed, creator.address()), 1_000_000);
    };
    let to = placed;
    send(
        &net.nodes[1],
        &friend,
        0,
        Action::Transfer { to, amount: 77 },
    );
    for node in &net.nodes {
        placed_on_0(node, 77);
    }
    // The mover sends from its new shard; a restarted validator still
    // holds the moves (the schedule is stored with the beacon block).
    let to = friend.address();
    send(
        &net.nodes[3],
        &mover,
        3,
        Action::Transfer { to, amount: 10 },
    );
    assert_eq!(net.nodes[3].signal(9), None);
    net.nodes[3].run();
    check(&net.nodes[3], 4);
    placed_on_0(&net.nodes[3], 77);
}
