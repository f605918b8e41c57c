//! Starting `atoll` processes in temporary homes and talking to them over
//! plain HTTP and WebSocket, so the tests see exactly what a client sees.

use atoll_primitives::{Action, Address, ChainId, KeyPair, Transaction};
use atoll_shard::workload::dev_key;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The binary under test.
pub const ATOLL: &str = env!("CARGO_BIN_EXE_atoll");
/// The chain id the tests use.
pub const CHAIN_ID: u64 = 7;
/// Longest a node may take to start.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Dev key `i` (the node's dev accounts use seed 0).
pub fn dev(i: u64) -> KeyPair {
    dev_key(0, i)
}

/// The hex and hash of `action` signed by `key` with `nonce` at fee (or
/// price per gas) 1 for the tests' chain.
pub fn signed(key: &KeyPair, nonce: u64, action: Action) -> (String, String) {
    let signed = Transaction {
        chain_id: ChainId(CHAIN_ID),
        sender: key.public(),
        nonce,
        fee: 1,
        action,
    }
    .sign(key);
    (hex::encode(signed.encode()), format!("0x{}", signed.hash()))
}

/// The hex of a signed transfer.
pub fn transfer(
    key: &KeyPair,
    nonce: u64,
    to: Address,
    amount: u128,
    fee: u128,
    chain: u64,
) -> (String, String) {
    let signed = Transaction {
        chain_id: ChainId(chain),
        sender: key.public(),
        nonce,
        fee,
        action: Action::Transfer { to, amount },
    }
    .sign(key);
    (hex::encode(signed.encode()), format!("0x{}", signed.hash()))
}

/// A node's home, made with `atoll init`, and the node process if running.
pub struct Node {
    /// Kept so the directory lives as long as the node (None: the home
    /// belongs to a [`Localnet`]).
    _dir: Option<tempfile::TempDir>,
    pub home: PathBuf,
    child: Option<Child>,
    pub rpc: SocketAddr,
    pub metrics: Option<SocketAddr>,
}

impl Node {
    /// Initialises a home with `dev_accounts` funded accounts and `extra`
    /// appended to the config, and starts the node.
    pub fn start(dev_accounts: usize, extra: &str) -> Node {
        Node::start_sharded(1, dev_accounts, extra)
    }

    /// As [`Node::start`], with `shards` shards.
    pub fn start_sharded(shards: u16, dev_accounts: usize, extra: &str) -> Node {
        Node::start_with(shards, dev_accounts, &[], extra)
    }

    /// As [`Node::start_sharded`], with more `atoll init` arguments.
    pub fn start_with(shards: u16, dev_accounts: usize, init: &[&str], extra: &str) -> Node {
        let dir = tempfile::tempdir().expect("temp dir");
        let home = dir.path().join("home");
        let out = Command::new(ATOLL)
            .args(["init", "--home"])
            .arg(&home)
            .args(["--chain-id", &CHAIN_ID.to_string()])
            .args(["--shards", &shards.to_string()])
            .args(["--dev-accounts", &dev_accounts.to_string()])
            .args(["--dev-balance", "1000000000"])
            .args(["--rpc-addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0"])
            .args(init)
            .output()
            .expect("atoll init runs");
        assert!(
            out.status.success(),
            "init failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let config = home.join("config.toml");
        let mut text = std::fs::read_to_string(&config).expect("config");
        // Faster blocks for tests; sections appended by `extra` override.
        text = text.replace("interval = \"500ms\"", "interval = \"50ms\"");
        text = merge_sections(&text, extra);
        std::fs::write(&config, text).expect("config written");
        Node::start_in(Some(dir), home)
    }

    /// Starts the node of an existing `home` (not removed on drop).
    pub fn start_home(home: PathBuf) -> Node {
        Node::start_in(None, home)
    }

    fn start_in(dir: Option<tempfile::TempDir>, home: PathBuf) -> Node {
        let mut node = Node {
            _dir: dir,
            home,
            child: None,
            rpc: "127.0.0.1:0".parse().expect("addr"),
            metrics: None,
        };
        node.run();
        node
    }

    /// Starts (or restarts) the node process and waits until it serves RPC.
    pub fn run(&mut self) {
        assert!(self.child.is_none(), "already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.home.join("node.log"))
            .expect("log file");
        let mut child = Command::new(ATOLL)
            .args(["run", "--home"])
            .arg(&self.home)
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("atoll run starts");
        let stdout = child.stdout.take().expect("piped");
        let (lines, received) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if lines.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + START_TIMEOUT;
        self.metrics = None;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = received
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("the node did not start; log:\n{}", self.log()));
            if let Some(rest) = line.strip_prefix("Metrics on http://") {
                self.metrics = rest.trim_end_matches("/metrics").parse().ok();
            }
            if let Some(rest) = line.strip_prefix("RPC listening on http://") {
                self.rpc = rest
                    .split_whitespace()
                    .next()
                    .expect("address")
                    .parse()
                    .expect("address");
            }
            if line.starts_with("Metrics ") {
                break;
            }
        }
        self.child = Some(child);
    }

    /// The node's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.home.join("node.log")).unwrap_or_default()
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Sends `signal` and waits for the exit; returns the exit code (None if
    /// killed by a signal).
    pub fn signal(&mut self, signal: i32) -> Option<i32> {
        let mut child = self.child.take().expect("running");
        let pid = i32::try_from(child.id()).expect("pid fits");
        // SAFETY-free: libc::kill is a plain syscall wrapper.
        let rc = unsafe_kill(pid, signal);
        assert_eq!(rc, 0, "kill failed");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                return status.code();
            }
            assert!(
                Instant::now() < deadline,
                "the node did not exit; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Resident memory of the node, in KiB.
    pub fn rss_kib(&self) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).expect("proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS")
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().expect("wait").is_none())
    }

    /// Calls `method`; Ok(result) or Err((code, message)).
    pub fn call(&self, method: &str, params: Value) -> Result<Value, (i64, String)> {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
        let (_, response) = post(self.rpc, body.to_string().as_bytes());
        let value: Value =
            serde_json::from_str(&response).unwrap_or_else(|e| panic!("bad JSON {e}: {response}"));
        answer(&value)
    }

    /// Calls `method` and expects success.
    pub fn ok(&self, method: &str, params: Value) -> Value {
        self.call(method, params.clone())
            .unwrap_or_else(|e| panic!("{method}({params}) failed: {e:?}"))
    }

    /// Calls `method` and expects error `code`.
    pub fn err(&self, method: &str, params: Value, code: i64) -> String {
        match self.call(method, params.clone()) {
            Ok(v) => panic!("{method}({params}) succeeded with {v}, expected error {code}"),
            Err((got, message)) => {
                assert_eq!(got, code, "{method}({params}): {message}");
                message
            }
        }
    }

    /// The balance and nonce of `address`.
    pub fn account(&self, address: Address) -> (u128, u64) {
        let a = self.ok("atoll_getAccount", json!([address.to_string()]));
        (
            a["balance"]
                .as_str()
                .expect("balance")
                .parse()
                .expect("number"),
            a["nonce"].as_u64().expect("nonce"),
        )
    }

    /// The newest final height.
    pub fn final_height(&self) -> u64 {
        self.ok("atoll_status", json!([]))["shards"][0]["final_height"]
            .as_u64()
            .expect("height")
    }

    /// Waits until `hash` is final (or panics after `timeout`).
    pub fn wait_final(&self, hash: &str, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let status = self.ok("atoll_getTransactionStatus", json!([hash]));
            if status["status"] == "final" {
                return status;
            }
            assert!(Instant::now() < deadline, "{hash} not final: {status}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn unsafe_kill(pid: i32, signal: i32) -> i32 {
    // std has no portable way to send SIGTERM/SIGINT; `kill` the command does.
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .expect("kill runs");
    if status.success() {
        0
    } else {
        -1
    }
}

/// The result or the (code, message) of one JSON-RPC answer object.
pub fn answer(value: &Value) -> Result<Value, (i64, String)> {
    if let Some(error) = value.get("error") {
        return Err((
            error["code"].as_i64().expect("code"),
            error["message"].as_str().unwrap_or_default().to_string(),
        ));
    }
    Ok(value["result"].clone())
}

/// POSTs `body` and returns (HTTP status, response body).
pub fn post(addr: SocketAddr, body: &[u8]) -> (u16, String) {
    try_request(addr, "POST", "/", body).unwrap_or_else(|| panic!("no answer from {addr}"))
}

/// GETs `path`.
pub fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    try_request(addr, "GET", path, b"").unwrap_or_else(|| panic!("no answer from {addr}"))
}

/// One HTTP request; None if the connection failed or no status came back.
pub fn try_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: &[u8],
) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(120)))
        .ok()?;
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).ok()?;
    // The server may answer (413) and close before reading all of a large body.
    let _ = stream.write_all(body);
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let text = String::from_utf8_lossy(&response).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())?;
    let body = match text.split_once("\r\n\r\n") {
        Some((head, body))
            if head
                .to_ascii_lowercase()
                .contains("transfer-encoding: chunked") =>
        {
            dechunk(body)
        }
        Some((_, body)) => body.to_string(),
        None => String::new(),
    };
    Some((status, body))
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    out
}

/// Opens a WebSocket to `addr` and sends one text message; the stream is
/// returned unread.
pub fn websocket(addr: SocketAddr, message: &str) -> TcpStream {
    let mut stream = TcpStream::connect(addr).expect("connect");
    let head = format!(
        "GET / HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).expect("handshake");
    let mut reply = Vec::new();
    let mut byte = [0u8; 1];
    while !reply.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).expect("handshake reply");
        reply.push(byte[0]);
    }
    assert!(
        String::from_utf8_lossy(&reply).contains(" 101 "),
        "no upgrade: {}",
        String::from_utf8_lossy(&reply)
    );
    // One masked text frame (clients must mask).
    let payload = message.as_bytes();
    let mut frame = vec![0x81u8];
    match payload.len() {
        n if n < 126 => frame.push(0x80 | n as u8),
        n => {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(n as u16).to_be_bytes());
        }
    }
    let mask = [1u8, 2, 3, 4];
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    stream.write_all(&frame).expect("frame");
    stream
}

/// Reads one unmasked server frame's payload.
pub fn read_frame(stream: &mut TcpStream) -> String {
    let mut head = [0u8; 2];
    stream.read_exact(&mut head).expect("frame head");
    let len = match head[1] & 0x7f {
        126 => {
            let mut b = [0u8; 2];
            stream.read_exact(&mut b).expect("len");
            u16::from_be_bytes(b) as usize
        }
        127 => {
            let mut b = [0u8; 8];
            stream.read_exact(&mut b).expect("len");
            u64::from_be_bytes(b) as usize
        }
        n => n as usize,
    };
    let mut payload = vec![0u8; len];
    stream.read_exact(&mut payload).expect("payload");
    String::from_utf8_lossy(&payload).to_string()
}

/// Runs the `atoll` CLI with `args`; returns (success, stdout, stderr).
pub fn cli(args: &[&str], home: Option<&Path>) -> (bool, String, String) {
    let mut command = Command::new(ATOLL);
    command.args(args);
    if let Some(home) = home {
        command.current_dir(home);
    }
    let out = command.output().expect("atoll runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// `text` with the `[section]` tables of `extra` replacing its own keys.
fn merge_sections(text: &str, extra: &str) -> String {
    let mut out = text.to_string();
    let mut section = String::new();
    for line in extra.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            section = line.to_string();
            continue;
        }
        let Some((key, _)) = line.split_once('=') else {
            continue;
        };
        let key = key.trim();
        // Replace the key's line inside its section, or add it after the
        // section's header when the template leaves it commented out.
        let start = out
            .find(&section)
            .unwrap_or_else(|| panic!("no section {section}"));
        let section_end = out[start + 1..]
            .find("\n[")
            .map_or(out.len(), |e| start + 1 + e);
        let needle = format!("\n{key} =");
        match out[start..section_end].find(&needle) {
            Some(offset) => {
                let at = start + offset + 1;
                let end = out[at..].find('\n').map_or(out.len(), |e| at + e);
                out.replace_range(at..end, line);
            }
            None => {
                let at = start + section.len();
                out.insert_str(at, &format!("\n{line}"));
            }
        }
    }
    out
}

/// One localnet (or heavy load on one node) at a time: four validators on
/// two cores are load enough.
static ONE_LOCALNET: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Waits for this test's turn to run validators.
pub fn localnet_turn() -> std::sync::MutexGuard<'static, ()> {
    // A test that panicked while holding it left nothing behind.
    ONE_LOCALNET.lock().unwrap_or_else(|e| e.into_inner())
}

/// A local testnet made by `atoll localnet init`, its validators started.
pub struct Localnet {
    /// The validators (dropped first: their processes are killed before
    /// the directory goes).
    pub nodes: Vec<Node>,
    _dir: tempfile::TempDir,
    _turn: std::sync::MutexGuard<'static, ()>,
}

impl Localnet {
    /// `validators` validators with `shards` shards and 40 dev accounts,
    /// on free loopback ports, each config with `extra` merged in.
    pub fn start(validators: usize, shards: u16, extra: &str) -> Localnet {
        Localnet::start_with(validators, shards, &[], extra)
    }

    /// As [`Localnet::start`], with more `atoll localnet init` arguments.
    pub fn start_with(validators: usize, shards: u16, init: &[&str], extra: &str) -> Localnet {
        let turn = localnet_turn();
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path().join("net");
        let base = free_port_range(validators * 10);
        let out = Command::new(ATOLL)
            .args(["localnet", "init", "--dir"])
            .arg(&root)
            .args(["--validators", &validators.to_string()])
            .args(["--shards", &shards.to_string()])
            .args(["--chain-id", &CHAIN_ID.to_string()])
            .args(["--dev-accounts", "40", "--dev-balance", "1000000000"])
            .args(["--base-port", &base.to_string()])
            .args(init)
            .output()
            .expect("atoll localnet init runs");
        assert!(
            out.status.success(),
            "localnet init failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let homes: Vec<PathBuf> = (0..validators)
            .map(|i| root.join(format!("validator-{i}")))
            .collect();
        for home in &homes {
            let config = home.join("config.toml");
            let text = std::fs::read_to_string(&config).expect("config");
            let text = text.replace("interval = \"500ms\"", "interval = \"100ms\"");
            std::fs::write(&config, merge_sections(&text, extra)).expect("config written");
        }
        let nodes = homes.into_iter().map(Node::start_home).collect();
        Localnet {
            nodes,
            _dir: dir,
            _turn: turn,
        }
    }
}

/// The first of `count` consecutive loopback ports that are all free now.
pub fn free_port_range(count: usize) -> u16 {
    let seed = std::process::id() as u64 * 7919
        + std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos() as u64);
    for attempt in 0..200u64 {
        // Below the kernel's ephemeral range (32768 up on Linux): a port
        // found free there can be taken by any outgoing connection (a load
        // tool's, a peer's dial) before the node binds it.
        let base = 21_000 + ((seed + attempt * 613) % 1_100) as u16 * 10;
        let free = (0..count as u16)
            .all(|offset| std::net::TcpListener::bind(("127.0.0.1", base + offset)).is_ok());
        if free {
            return base;
        }
    }
    panic!("no {count} free consecutive ports");
}

/// The supply of `node`'s chain at genesis, and what it accounts for now:
/// the balances of every genesis account and of `others`, plus every fee
/// and gas burnt by each shard's blocks up to its head. The two are equal
/// when no receipt is in flight and only those accounts hold value
/// (invariant 1 of DESIGN.md, read through the RPC).
pub fn supply(node: &Node, others: &[Address]) -> (u128, u128) {
    let text = std::fs::read_to_string(node.home.join("genesis.json")).expect("genesis.json");
    let genesis: Value = serde_json::from_str(&text).expect("genesis JSON");
    let amount =
        |v: &Value| -> u128 { v.as_str().expect("a decimal string").parse().expect("u128") };
    let accounts = genesis["accounts"].as_array().expect("accounts");
    let issued: u128 = accounts.iter().map(|a| amount(&a["balance"])).sum();
    let mut held: u128 = accounts
        .iter()
        .map(|a| {
            let address: Address = a["address"]
                .as_str()
                .expect("address")
                .parse()
                .expect("hex");
            node.account(address).0
        })
        .sum();
    held += others.iter().map(|a| node.account(*a).0).sum::<u128>();
    let status = node.ok("atoll_status", json!([]));
    let shards = status["shards"].as_array().expect("shards").len();
    let mut burnt = 0u128;
    for shard in 0..shards {
        let head = node.ok("atoll_getBlock", json!([shard, "latest"]));
        let height = head["height"].as_u64().expect("height");
        for h in 1..=height {
            burnt += amount(&node.ok("atoll_getBlock", json!([shard, h]))["burnt_fees"]);
        }
    }
    (issued, held + burnt)
}
