//! The command line: keys, the client commands against a node, `atoll dev`,
//! clean shutdown on SIGTERM and SIGINT, and errors for bad homes.

use crate::harness::{cli, dev, Node, ATOLL};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn the_client_commands_work_against_a_node_and_sigterm_exits_cleanly() {
    let mut node = Node::start(3, "");
    let rpc = format!("http://{}", node.rpc);
    let dir = tempfile::tempdir().expect("temp dir");
    let key = dir.path().join("me.json");
    let key_arg = key.to_str().expect("utf-8");
    let (ok, out, err) = cli(&["keys", "new", "--out", key_arg], None);
    assert!(ok, "{err}");
    let (ok, shown, _) = cli(&["keys", "show", key_arg], None);
    assert!(ok);
    let address = shown
        .split_whitespace()
        .nth(1)
        .expect("address")
        .to_string();
    assert!(out.contains(&address));
    let (ok, _, err) = cli(&["keys", "new", "--out", key_arg], None);
    assert!(!ok && err.contains("already exists"), "{err}");

    let dev0 = node.home.join("keys/dev-0.json");
    let (ok, out, err) = cli(
        &[
            "tx",
            "transfer",
            "--rpc",
            &rpc,
            "--key",
            dev0.to_str().expect("utf-8"),
            "--to",
            &address,
            "--amount",
            "77",
            "--wait",
        ],
        None,
    );
    assert!(ok, "{out}{err}");
    assert!(out.contains("\"status\": \"final\""), "{out}");
    let (ok, out, err) = cli(&["account", "--rpc", &rpc, &address], None);
    assert!(ok, "{err}");
    let account: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(account["balance"], "77");
    assert_eq!(node.account(dev(0).address()).1, 1);

    // A transfer the node refuses: the error says why, the exit code is 1.
    let (ok, _, err) = cli(
        &[
            "tx",
            "transfer",
            "--rpc",
            &rpc,
            "--key",
            dev0.to_str().expect("utf-8"),
            "--to",
            &address,
            "--amount",
            "99999999999999",
        ],
        None,
    );
    assert!(!ok);
    assert!(
        err.contains("1005") || err.to_lowercase().contains("balance"),
        "{err}"
    );
    let (ok, _, err) = cli(&["status", "--rpc", "http://127.0.0.1:1"], None);
    assert!(
        !ok && err.contains("cannot reach") || err.contains("asking"),
        "{err}"
    );

    // A client waiting for a transaction that cannot be included (its nonce
    // leaves a gap) must not hold the shutdown up.
    let rpc_addr = node.rpc;
    let waiter = std::thread::spawn(move || {
        let (tx, _) =
            crate::harness::transfer(&dev(1), 5, dev(2).address(), 1, 1, crate::harness::CHAIN_ID);
        let body = serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "atoll_sendTransaction", "params": [tx, "final"]});
        crate::harness::try_request(rpc_addr, "POST", "/", body.to_string().as_bytes())
    });
    std::thread::sleep(Duration::from_millis(300));
    let stopping = Instant::now();
    assert_eq!(
        node.signal(15),
        Some(0),
        "SIGTERM exits 0; log:\n{}",
        node.log()
    );
    assert!(
        stopping.elapsed() < Duration::from_secs(10),
        "shutdown took {:?}",
        stopping.elapsed()
    );
    if let Some((_, body)) = waiter.join().expect("waiter") {
        assert!(body.contains("1015") || body.is_empty(), "{body}");
    }
    assert!(node.log().contains("stopped cleanly"));
    node.run();
    assert_eq!(
        node.account(dev(0).address()).1,
        1,
        "nothing lost across the restart"
    );
    assert_eq!(node.signal(2), Some(0), "SIGINT exits 0");
}

#[test]
fn atoll_dev_prints_the_rpc_url_and_funded_keys_and_restarts_on_the_same_home() {
    let dir = tempfile::tempdir().expect("temp dir");
    let home = dir.path().join("dev");
    let home_arg = home.to_str().expect("utf-8");
    for attempt in 0..2 {
        let mut child = Command::new(ATOLL)
            .args([
                "dev",
                "--home",
                home_arg,
                "--rpc-addr",
                "127.0.0.1:0",
                "--metrics-addr",
                "127.0.0.1:0",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("atoll dev starts");
        let mut lines = BufReader::new(child.stdout.take().expect("piped")).lines();
        let mut seen = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        while !seen.iter().any(|l: &String| l.starts_with("Stop with")) {
            assert!(Instant::now() < deadline, "{seen:?}");
            seen.push(lines.next().expect("a line").expect("utf-8"));
        }
        let text = seen.join("\n");
        assert!(
            text.contains("RPC listening on http://127.0.0.1:"),
            "{text}"
        );
        assert!(text.contains(&dev(0).address().to_string()), "{text}");
        assert!(text.contains("atoll tx transfer"), "{text}");
        if attempt == 1 {
            assert!(text.contains("Reusing"), "{text}");
        }
        let status = Command::new("kill")
            .arg("-15")
            .arg(child.id().to_string())
            .status()
            .expect("kill");
        assert!(status.success());
        assert_eq!(child.wait().expect("exit").code(), Some(0));
    }
}

#[test]
fn bad_homes_get_clear_errors_and_change_nothing() {
    let (ok, _, err) = cli(&["run", "--home", "/nonexistent/atoll"], None);
    assert!(!ok && err.contains("atoll init"), "{err}");

    let mut node = Node::start(2, "");
    let height = node.final_height();
    assert_eq!(node.signal(15), Some(0));
    let genesis = node.home.join("genesis.json");
    let original = std::fs::read_to_string(&genesis).expect("genesis");
    std::fs::write(
        &genesis,
        original.replace("\"chain_id\": 7", "\"chain_id\": 8"),
    )
    .expect("write");
    let home = node.home.to_str().expect("utf-8").to_string();
    let (ok, _, err) = cli(&["run", "--home", &home], None);
    assert!(!ok && err.contains("another genesis"), "{err}");
    std::fs::write(&genesis, &original).expect("restore");

    let config = node.home.join("config.toml");
    let text = std::fs::read_to_string(&config).expect("config");
    std::fs::write(
        &config,
        text.replace("max_per_sender = 64", "max_per_sender = -1"),
    )
    .expect("write");
    let (ok, _, err) = cli(&["run", "--home", &home], None);
    assert!(!ok && err.contains("max_per_sender"), "{err}");
    std::fs::write(&config, text).expect("restore");
    node.run();
    let deadline = Instant::now() + Duration::from_secs(30);
    while node.final_height() <= height {
        assert!(Instant::now() < deadline, "no blocks after the restart");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Stops a localnet's background validators however the test ends.
struct StopOnDrop(std::path::PathBuf);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        let _ = cli(
            &["localnet", "stop", "--dir", self.0.to_str().expect("utf-8")],
            None,
        );
    }
}

fn localnet_json(dir: &str) -> Vec<Value> {
    let (ok, out, err) = cli(&["localnet", "status", "--dir", dir, "--json"], None);
    assert!(ok, "{err}");
    serde_json::from_str::<Value>(&out)
        .expect("json")
        .as_array()
        .expect("array")
        .clone()
}

#[test]
fn localnet_start_status_logs_and_stop_run_validators_in_the_background() {
    let _turn = crate::harness::localnet_turn();
    let tmp = tempfile::tempdir().expect("temp dir");
    let net = tmp.path().join("net");
    let dir = net.to_str().expect("utf-8");
    let (ok, _, err) = cli(&["localnet", "start", "--dir", dir], None);
    assert!(!ok && err.contains("is not a localnet"), "{err}");

    let base = crate::harness::free_port_range(20).to_string();
    let (ok, _, err) = cli(
        &[
            "localnet",
            "init",
            "--dir",
            dir,
            "--validators",
            "2",
            "--base-port",
            &base,
            "--dev-accounts",
            "5",
        ],
        None,
    );
    assert!(ok, "{err}");
    let _stop = StopOnDrop(net.clone());
    let (ok, out, err) = cli(&["localnet", "start", "--dir", dir], None);
    assert!(ok, "{err}");
    assert_eq!(out.matches(" running ").count(), 2, "{out}");
    assert!(
        out.contains("Send a transfer") && out.contains("localnet stop"),
        "{out}"
    );

    // Both run in the background, connected and finalizing.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let all = localnet_json(dir);
        assert_eq!(all.len(), 2);
        let ready = all.iter().all(|v| {
            v["pid"].is_u64()
                && v["status"]["consensus"]["peers"].as_u64() >= Some(1)
                && v["status"]["consensus"]["final_height"].as_u64() >= Some(2)
        });
        if ready {
            break;
        }
        assert!(Instant::now() < deadline, "not finalizing: {all:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let (ok, out, _) = cli(&["localnet", "start", "--dir", dir], None);
    assert!(ok && out.contains("already runs"), "{out}");
    let (ok, out, _) = cli(&["localnet", "logs", "--dir", dir, "--lines", "3"], None);
    assert!(ok);
    assert!(
        out.contains("validator-0 | ") && out.contains("validator-1 | "),
        "{out}"
    );
    assert!(!out.contains('\u{1b}'), "colour codes in a log file");

    let (ok, out, err) = cli(&["localnet", "stop", "--dir", dir], None);
    assert!(ok, "{err}");
    assert_eq!(out.matches("stopped").count(), 2, "{out}");
    assert!(localnet_json(dir).iter().all(|v| v["pid"].is_null()));
    assert!(!net.join("validator-0/atoll.pid").exists());
    let (ok, out, _) = cli(&["localnet", "stop", "--dir", dir], None);
    assert!(ok && out.contains("no validator was running"), "{out}");
}

#[test]
fn network_methods_need_admin_and_a_network() {
    let lone = Node::start_with(1, 1, &["--admin-rpc"], "");
    lone.err("atoll_setBlockedPeers", serde_json::json!([[]]), 1020);
    let closed = Node::start(1, "");
    closed.err("atoll_setBlockedPeers", serde_json::json!([[]]), 1018);
}
