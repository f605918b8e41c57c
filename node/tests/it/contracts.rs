//! Contracts on a running node through the client and the API: deploy the
//! shipped ERC-20 with `atoll tx deploy`, transfer with `atoll tx call`,
//! read with `atoll call` and `atoll_getStorageAt`, and the errors.

use crate::harness::{cli, dev, post, Node, CHAIN_ID};
use atoll_primitives::{Action, ChainId, Transaction};
use serde_json::{json, Value};

/// The JSON status `atoll tx deploy|call` prints after its two lines.
fn printed_status(out: &str) -> Value {
    let start = out.find('{').unwrap_or_else(|| panic!("no JSON in {out}"));
    serde_json::from_str(&out[start..]).expect("the status is JSON")
}

fn word(n: u128) -> String {
    format!("{n:064x}")
}

#[test]
fn a_token_is_deployed_called_and_read_through_the_client() {
    let node = Node::start(3, "");
    let rpc = format!("http://{}", node.rpc);
    let key = node.home.join("keys/dev-0.json");
    let key = key.to_str().expect("utf-8");
    let code = concat!(env!("CARGO_MANIFEST_DIR"), "/../contracts/out/Token.bin");

    let (ok, out, err) = cli(
        &[
            "tx",
            "deploy",
            "--rpc",
            &rpc,
            "--key",
            key,
            "--code",
            code,
            "--args",
            &word(1_000_000),
        ],
        None,
    );
    assert!(ok, "{out}{err}");
    let status = printed_status(&out);
    assert_eq!(status["status"], "final", "{out}");
    let contract = &status["outcome"]["contract"];
    assert_eq!(contract["status"], "success", "{out}");
    assert!(contract["gas_used"].as_u64().expect("gas") > 100_000);
    assert_eq!(
        contract["logs"].as_array().expect("logs").len(),
        1,
        "Transfer"
    );
    let token = contract["created"].as_str().expect("created").to_string();
    assert!(
        node.ok("atoll_getCode", json!([token]))
            .as_str()
            .expect("hex")
            .len()
            > 1000
    );

    let to = dev(1).address();
    let to_word = format!("{:0>64}", hex::encode(to.0));
    let transfer = format!("a9059cbb{to_word}{}", word(250));
    let (ok, out, err) = cli(
        &[
            "tx", "call", "--rpc", &rpc, "--key", key, "--to", &token, "--data", &transfer,
        ],
        None,
    );
    assert!(ok, "{out}{err}");
    let status = printed_status(&out);
    assert_eq!(status["outcome"]["contract"]["status"], "success", "{out}");

    let (ok, out, err) = cli(
        &[
            "call",
            "--rpc",
            &rpc,
            "--to",
            &token,
            "--data",
            &format!("70a08231{to_word}"),
        ],
        None,
    );
    assert!(ok, "{err}");
    let read: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(read["contract"]["output"], format!("0x{}", word(250)));
    // totalSupply is slot 0.
    let supply = node.ok("atoll_getStorageAt", json!([token, "0x0"]));
    assert_eq!(supply, format!("0x{}", word(1_000_000)));

    // More than the sender holds: it reverts in its block, the reason shown,
    // the gas paid. `--gas` skips the estimate, which would refuse it.
    let too_much = format!("a9059cbb{to_word}{}", word(2_000_000));
    let (ok, out, err) = cli(
        &[
            "tx", "call", "--rpc", &rpc, "--key", key, "--to", &token, "--data", &too_much,
            "--gas", "60000",
        ],
        None,
    );
    assert!(ok, "{out}{err}");
    let status = printed_status(&out);
    assert_eq!(status["outcome"]["failure"], "revert", "{out}");
    assert!(
        status["outcome"]["message"]
            .as_str()
            .expect("message")
            .contains("Token: balance too low"),
        "{out}"
    );
    // The estimate says why it cannot succeed.
    let (ok, _, err) = cli(
        &[
            "tx", "call", "--rpc", &rpc, "--key", key, "--to", &token, "--data", &too_much,
        ],
        None,
    );
    assert!(
        !ok && err.contains("call_failed") && err.contains("balance too low"),
        "{err}"
    );

    // The same reads through the Ethereum methods, as ethers or web3.py
    // send them.
    assert_eq!(node.ok("eth_chainId", json!([])), format!("0x{CHAIN_ID:x}"));
    assert_eq!(node.ok("net_version", json!([])), CHAIN_ID.to_string());
    let balance_of = json!({"to": token, "data": format!("0x70a08231{to_word}")});
    assert_eq!(
        node.ok("eth_call", json!([balance_of, "latest"])),
        format!("0x{}", word(250))
    );
    assert_eq!(
        node.ok("eth_getCode", json!([token, "latest"])),
        node.ok("atoll_getCode", json!([token]))
    );
    assert_eq!(
        node.ok("eth_getStorageAt", json!([token, "0x0", "latest"])),
        supply
    );
    let sender = dev(0).address().to_string();
    let (balance, nonce) = node.account(dev(0).address());
    assert_eq!(
        node.ok("eth_getBalance", json!([sender, "latest"])),
        format!("0x{balance:x}")
    );
    assert_eq!(
        node.ok("eth_getTransactionCount", json!([sender, "pending"])),
        format!("0x{nonce:x}")
    );
    let gas = node.ok(
        "eth_estimateGas",
        json!([{"from": sender, "to": token, "data": format!("0x{transfer}")}]),
    );
    let gas = u64::from_str_radix(gas.as_str().expect("quantity").trim_start_matches("0x"), 16)
        .expect("hex");
    assert!((21_000..100_000).contains(&gas), "{gas}");
    // A revert is error 3 with the revert data, which tools decode:
    // Error(string) "Token: balance too low".
    let reverting = json!({"from": sender, "to": token, "data": format!("0x{too_much}")});
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "eth_call", "params": [reverting]});
    let (_, response) = post(node.rpc, body.to_string().as_bytes());
    let response: Value = serde_json::from_str(&response).expect("json");
    assert_eq!(response["error"]["code"], 3, "{response}");
    let revert_data = response["error"]["data"].as_str().expect("revert data");
    assert!(revert_data.starts_with("0x08c379a0"), "{response}");
    assert!(
        revert_data.contains(&hex::encode("Token: balance too low")),
        "{response}"
    );
    // An old block's state is not kept, and says so.
    let message = node.err("eth_getBalance", json!([sender, "0x0"]), -32000);
    assert!(message.contains("not kept"), "{message}");

    // A price below the base fee is refused at admission, with the reason.
    let nonce = node.account(dev(0).address()).1;
    let free = Transaction {
        chain_id: ChainId(CHAIN_ID),
        sender: dev(0).public(),
        nonce,
        fee: 0,
        action: Action::Call {
            to: dev(2).address(),
            value: 0,
            input: Vec::new(),
            gas_limit: 30_000,
        },
    }
    .sign(&dev(0));
    let message = node.err(
        "atoll_sendTransaction",
        json!([hex::encode(free.encode())]),
        1023,
    );
    assert!(message.contains("below the base fee"), "{message}");
    let message = node.err("atoll_getStorageAt", json!([token, "0xzz"]), -32602);
    assert!(message.contains("slot"), "{message}");
}

#[test]
fn a_contract_created_at_an_address_of_another_shard_is_served_from_its_creators() {
    use atoll_primitives::{ShardId, ShardLayout};
    use atoll_shard::contracts::{call_data, create_address, Contract, Word};
    use std::time::{Duration, Instant};

    let node = Node::start_sharded(2, 8, "");
    let layout = ShardLayout::uniform(2).expect("layout");
    let on = |shard: u16| {
        (0..8)
            .map(dev)
            .find(|k| layout.shard_of(&k.address()) == ShardId(shard))
            .expect("a dev key on each shard")
    };
    let (creator, payer) = (on(0), on(1));
    let send = |key: &atoll_primitives::KeyPair, nonce: u64, action: Action| {
        let (tx, _) = crate::harness::signed(key, nonce, action);
        let hash = node.ok("atoll_sendTransaction", json!([tx, "final"]));
        node.wait_final(hash.as_str().expect("a hash"), Duration::from_secs(30))
    };

    // Deploy until a contract's address falls in shard 1's range.
    let mut nonce = 0;
    let contract = loop {
        let address = create_address(&creator.address(), nonce);
        let create = Action::Create {
            value: 0,
            init_code: Contract::Child.init_code(&[Word::uint(42)]),
            gas_limit: 500_000,
        };
        let status = send(&creator, nonce, create);
        assert_eq!(status["status"], "final", "{status}");
        nonce += 1;
        if layout.shard_of(&address) == ShardId(1) {
            break address;
        }
        assert!(nonce < 16, "sixteen addresses all in shard 0's range");
    };

    // It is served from shard 0, where it lives.
    let code = node.ok("atoll_getCode", json!([contract.to_string()]));
    assert!(code.as_str().expect("hex").len() > 10, "{code}");
    let data = format!("0x{}", hex::encode(call_data("value()", &[])));
    let read = node.ok(
        "atoll_call",
        json!([{"to": contract.to_string(), "data": data}]),
    );
    assert_eq!(
        read["contract"]["output"],
        format!("0x{}", word(42)),
        "{read}"
    );
    let account = node.ok("atoll_getAccount", json!([contract.to_string()]));
    assert_eq!(account["nonce"], 1, "{account}");
    assert_eq!(account["shard"], 0, "{account}");
    assert!(account.get("arriving").is_none(), "{account}");

    // Value sent from shard 1 reaches it on shard 0.
    let status = send(
        &payer,
        0,
        Action::Transfer {
            to: contract,
            amount: 77,
        },
    );
    assert_eq!(status["status"], "final", "{status}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while node.account(contract).0 != 77 {
        assert!(Instant::now() < deadline, "the value never arrived");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_load_tool_sets_up_and_runs_the_contract_workloads() {
    // A load on two cores: not beside a localnet, whose timing it would
    // upset.
    let _turn = crate::harness::localnet_turn();
    let node = Node::start(20, "");
    run_contract_loads(&node, &[]);
}

#[test]
fn the_load_tool_calls_contracts_across_shards() {
    let _turn = crate::harness::localnet_turn();
    let node = Node::start_sharded(2, 20, "");
    let reports = run_contract_loads(&node, &["--cross-shard-ratio", "0.5"]);
    for report in reports {
        // Half the accounts call the other shard's contracts: those calls
        // ran there and their refunds came back.
        let cross = report["cross_shard"].as_u64().expect("a count");
        assert!(cross > 0, "{report}");
        assert_eq!(report["settled"], cross, "{report}");
    }
}

/// Runs the ERC-20 and AMM loads with `extra` arguments on `node`, checks
/// that every transaction was admitted, final and successful, and returns
/// the reports.
fn run_contract_loads(node: &Node, extra: &[&str]) -> Vec<Value> {
    let rpc = format!("http://{}", node.rpc);
    let mut reports = Vec::new();
    for workload in [
        &["--workload", "erc20"][..],
        &["--workload", "amm", "--pools", "3"],
    ] {
        let mut args = vec![
            "load",
            "--rpc",
            &rpc,
            "--accounts",
            "20",
            "--tps",
            "200",
            "--duration",
            "2",
            "--json",
        ];
        args.extend_from_slice(workload);
        args.extend_from_slice(extra);
        let (ok, out, err) = cli(&args, None);
        assert!(ok, "{workload:?}: {out}{err}");
        let report: Value = serde_json::from_str(out.trim()).expect("one JSON object");
        assert_eq!(report["submitted"], 400, "{workload:?}: {report}");
        assert_eq!(report["finalized"], 400, "{workload:?}: {report}");
        assert_eq!(report["errors"], json!({}), "{workload:?}: {report}");
        // Every sampled transaction succeeded in its block.
        let outcomes = report["sampled_outcomes"].as_object().expect("outcomes");
        assert_eq!(
            outcomes.keys().collect::<Vec<_>>(),
            vec!["success"],
            "{workload:?}: {report}"
        );
        reports.push(report);
    }
    reports
}
