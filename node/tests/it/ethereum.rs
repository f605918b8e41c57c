//! The Ethereum JSON-RPC of a real node of two shards, as a wallet or
//! library uses it: Ethereum-signed transactions from the first account of
//! the standard test mnemonic (funded by `atoll init`), their receipts,
//! blocks, logs, refusals, value to the other shard, and `eth_subscribe`.

use crate::harness::{read_frame, websocket, Node, CHAIN_ID};
use atoll_primitives::{Address, ChainId, SignedTransaction};
use atoll_shard::contracts::{call_data, Contract, Word};
use atoll_shard::workload::ethereum::{EthCall, EthKey};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// The first key of "test test … junk" (m/44'/60'/0'/0/0).
const KEY: &str = "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";

fn key() -> EthKey {
    let mut secret = [0u8; 32];
    hex::decode_to_slice(KEY, &mut secret).expect("hex");
    EthKey::from_private_key(&secret).expect("valid")
}

fn number(value: &Value) -> u128 {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("a quantity: {value}"));
    u128::from_str_radix(text.trim_start_matches("0x"), 16).expect("hex")
}

fn raw(signed: &SignedTransaction) -> String {
    match signed {
        SignedTransaction::Ethereum(raw) => format!("0x{}", hex::encode(raw)),
        SignedTransaction::Native(_) => panic!("an Ethereum transaction"),
    }
}

/// Sends `signed` and waits for its receipt.
fn send(node: &Node, signed: &SignedTransaction) -> Value {
    let hash = node.ok("eth_sendRawTransaction", json!([raw(signed)]));
    let SignedTransaction::Ethereum(bytes) = signed else {
        unreachable!()
    };
    assert_eq!(
        hash.as_str(),
        Some(format!("0x{}", hex::encode(alloy_primitives::keccak256(bytes))).as_str()),
        "the hash is keccak-256 of the raw bytes"
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let receipt = node.ok("eth_getTransactionReceipt", json!([hash]));
        if !receipt.is_null() {
            let head = number(&node.ok("eth_blockNumber", json!([])));
            assert!(number(&receipt["blockNumber"]) <= head, "{receipt}");
            return receipt;
        }
        assert!(Instant::now() < deadline, "no receipt for {hash}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn wallets_send_and_follow_ethereum_transactions() {
    let node = Node::start_sharded(2, 2, "");
    let key = key();
    let me = format!("{}", key.address());
    let base = number(&node.ok("eth_gasPrice", json!([])));
    let call = |nonce, to: Option<Address>, value, input: Vec<u8>, gas_limit| EthCall {
        chain_id: ChainId(CHAIN_ID),
        nonce,
        to,
        value,
        input,
        gas_limit,
    };

    // A deployment, at the base fee plus a tip of 2.
    let init = Contract::Token.init_code(&[Word::uint(1_000_000)]);
    let deploy = key.eip1559(&call(0, None, 0, init, 2_000_000), base + 10, 2);
    let receipt = send(&node, &deploy);
    assert_eq!(receipt["status"], "0x1", "{receipt}");
    assert_eq!(receipt["from"], me);
    assert_eq!(receipt["type"], "0x2");
    assert_eq!(number(&receipt["effectiveGasPrice"]), base + 2);
    let token: Address = receipt["contractAddress"]
        .as_str()
        .expect("created")
        .parse()
        .expect("an address");
    assert_eq!(
        receipt["logs"].as_array().map(Vec::len),
        Some(1),
        "the mint"
    );

    // The transaction and its block.
    let tx = node.ok(
        "eth_getTransactionByHash",
        json!([receipt["transactionHash"]]),
    );
    assert_eq!(tx["from"], me);
    assert_eq!(tx["to"], Value::Null);
    assert_eq!(tx["blockNumber"], receipt["blockNumber"]);
    assert_eq!(tx["maxPriorityFeePerGas"], "0x2");
    let block = node.ok(
        "eth_getBlockByNumber",
        json!([receipt["blockNumber"], false]),
    );
    assert_eq!(block["hash"], receipt["blockHash"]);
    assert!(block["transactions"]
        .as_array()
        .expect("hashes")
        .contains(&receipt["transactionHash"]));
    assert_eq!(number(&block["baseFeePerGas"]), base);
    let by_hash = node.ok("eth_getBlockByHash", json!([block["hash"], true]));
    assert_eq!(by_hash["number"], block["number"]);
    let parent = node.ok(
        "eth_getBlockByNumber",
        json!([format!("0x{:x}", number(&block["number"]) - 1), false]),
    );
    assert_eq!(block["parentHash"], parent["hash"]);
    let far = format!(
        "0x{:x}",
        number(&node.ok("eth_blockNumber", json!([]))) + 100
    );
    assert_eq!(
        node.ok("eth_getBlockByNumber", json!([far, false])),
        Value::Null
    );

    // A legacy token transfer: its event, found again by eth_getLogs.
    let to = Address([0x42; 20]);
    let data = call_data(
        "transfer(address,uint256)",
        &[Word::address(to), Word::uint(250)],
    );
    let transfer = key.legacy(&call(1, Some(token), 0, data, 100_000), base + 1);
    let receipt = send(&node, &transfer);
    assert_eq!(receipt["status"], "0x1", "{receipt}");
    assert_eq!(number(&receipt["effectiveGasPrice"]), base + 1);
    let log = &receipt["logs"][0];
    let empty_bloom = format!("0x{}", "00".repeat(256));
    assert_ne!(receipt["logsBloom"], json!(empty_bloom), "{receipt}");
    assert_eq!(log["address"], token.to_string());
    assert_eq!(log["transactionHash"], receipt["transactionHash"]);
    let topic = format!(
        "0x{}",
        hex::encode(alloy_primitives::keccak256(
            "Transfer(address,address,uint256)"
        ))
    );
    let mine = format!("0x{}{}", "00".repeat(12), hex::encode(key.address().0));
    let logs = node.ok(
        "eth_getLogs",
        json!([{"fromBlock": "0x0", "toBlock": "latest", "address": [token.to_string()],
                "topics": [topic, [mine, "0x".to_string() + &"11".repeat(32)]]}]),
    );
    let logs = logs.as_array().expect("logs");
    assert_eq!(logs.len(), 1, "only the transfer was sent by me: {logs:?}");
    assert_eq!(logs[0]["logIndex"], log["logIndex"]);
    // Without a filter, up to a block beyond the head: the mint and the
    // transfer, in chain order.
    let all = node.ok(
        "eth_getLogs",
        json!([{"fromBlock": "earliest", "toBlock": "0x100000"}]),
    );
    let all = all.as_array().expect("logs");
    assert_eq!(all.len(), 2, "{all:?}");
    assert_eq!(all[1]["transactionHash"], receipt["transactionHash"]);

    // Refusals in geth's words.
    let message = node.err("eth_sendRawTransaction", json!([raw(&transfer)]), -32000);
    assert!(
        message.starts_with("already known") || message.starts_with("nonce too low"),
        "{message}"
    );
    let other_chain = EthCall {
        chain_id: ChainId(CHAIN_ID + 1),
        ..call(2, Some(to), 1, Vec::new(), 21_000)
    };
    let message = node.err(
        "eth_sendRawTransaction",
        json!([raw(&key.eip1559(&other_chain, base, 0))]),
        -32000,
    );
    assert!(message.starts_with("invalid chain id"), "{message}");
    node.err("eth_sendRawTransaction", json!(["0x02c0"]), -32602);
    let message = node.err("eth_sendTransaction", json!([{}]), -32601);
    assert!(message.contains("eth_sendRawTransaction"), "{message}");

    // Value to an account of the other shard: final at once here, credited
    // there a few blocks later.
    let home = node.ok("atoll_getAccount", json!([me]))["shard"].clone();
    let far_account = (1u8..=255)
        .map(|b| Address([b; 20]))
        .find(|a| node.ok("atoll_getAccount", json!([a.to_string()]))["shard"] != home)
        .expect("an address on the other shard");
    let balance = number(&node.ok("eth_getBalance", json!([me, "latest"])));
    let value = key.eip1559(
        &call(2, Some(far_account), 777, Vec::new(), 30_000),
        base,
        0,
    );
    let receipt = send(&node, &value);
    assert_eq!(
        (receipt["status"].clone(), number(&receipt["gasUsed"])),
        (json!("0x1"), 21_000)
    );
    assert_eq!(
        balance - number(&node.ok("eth_getBalance", json!([me, "latest"]))),
        777 + 21_000 * base
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while number(&node.ok("eth_getBalance", json!([far_account.to_string(), "latest"]))) != 777 {
        assert!(Instant::now() < deadline, "the value never arrived");
        std::thread::sleep(Duration::from_millis(50));
    }

    let history = node.ok("eth_feeHistory", json!(["0x4", "latest", [50.0]]));
    assert_eq!(
        history["baseFeePerGas"].as_array().map(Vec::len),
        history["gasUsedRatio"].as_array().map(|r| r.len() + 1)
    );

    // New heads over WebSocket: a header without its transactions.
    let mut stream = websocket(
        node.rpc,
        r#"{"jsonrpc":"2.0","id":1,"method":"eth_subscribe","params":["newHeads"]}"#,
    );
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let subscribed: Value = serde_json::from_str(&read_frame(&mut stream)).expect("json");
    assert!(!subscribed["result"].is_null(), "{subscribed}");
    let head: Value = serde_json::from_str(&read_frame(&mut stream)).expect("json");
    assert_eq!(head["method"], "eth_subscription", "{head}");
    let header = &head["params"]["result"];
    assert!(header["number"].is_string() && header["parentHash"].is_string());
    assert!(header.get("transactions").is_none(), "{header}");

    // The token's logs over WebSocket: a transfer sent after subscribing
    // arrives as its log, with the block it is final in.
    let subscribe = json!({"jsonrpc": "2.0", "id": 2, "method": "eth_subscribe",
        "params": ["logs", {"address": token.to_string()}]});
    let mut stream = websocket(node.rpc, &subscribe.to_string());
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let subscribed: Value = serde_json::from_str(&read_frame(&mut stream)).expect("json");
    assert!(!subscribed["result"].is_null(), "{subscribed}");
    let data = call_data(
        "transfer(address,uint256)",
        &[Word::address(to), Word::uint(7)],
    );
    let receipt = send(
        &node,
        &key.eip1559(&call(3, Some(token), 0, data, 100_000), base + 1, 1),
    );
    let note: Value = serde_json::from_str(&read_frame(&mut stream)).expect("json");
    let log = &note["params"]["result"];
    assert_eq!(log["transactionHash"], receipt["transactionHash"], "{note}");
    assert_eq!(log["blockNumber"], receipt["blockNumber"]);
    assert_eq!(log["address"], token.to_string());
}
