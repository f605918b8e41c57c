//! Contracts on a running node through the client and the API: deploy the
//! shipped ERC-20 with `atoll tx deploy`, transfer with `atoll tx call`,
//! read with `atoll call` and `atoll_getStorageAt`, and the errors.

use crate::harness::{cli, dev, Node, CHAIN_ID};
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
