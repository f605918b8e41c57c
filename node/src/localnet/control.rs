//! `atoll localnet start|stop|status|logs`: the validators of a localnet as
//! background processes, one per home.
//!
//! ```text
//! <dir>/validator-<i>/atoll.pid   the process id while it runs
//! <dir>/validator-<i>/node.log    its output (appended across starts)
//! ```
//!
//! A pid file is trusted only while `/proc/<pid>/cmdline` is an
//! `atoll run --home <that home>`: a stale file (the node exited, the pid
//! was reused) reads as stopped. Linux only, like the node's signals.

use crate::client::{call_error, connect};
use crate::home::Home;
use crate::rpc::api::AtollApiClient;
use crate::rpc::types::Status;
use anyhow::{bail, Context};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long `start` waits for every validator to serve RPC.
const START_TIMEOUT: Duration = Duration::from_secs(120);

/// One validator of a localnet.
pub struct Member {
    /// Its number.
    pub index: usize,
    /// Its home.
    pub home: Home,
    /// Its RPC URL (from its config).
    pub rpc: String,
    /// The localnet's network namespaces, if it runs in them.
    pub netns: Option<super::netns::Netns>,
}

impl Member {
    fn pid_file(&self) -> PathBuf {
        self.home.root().join("atoll.pid")
    }

    /// Its log file.
    pub fn log(&self) -> PathBuf {
        self.home.root().join("node.log")
    }

    /// The process id, if it is running.
    pub fn running(&self) -> Option<u32> {
        let pid: u32 = std::fs::read_to_string(self.pid_file())
            .ok()?
            .trim()
            .parse()
            .ok()?;
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        let home = self.home.root().as_os_str().as_encoded_bytes();
        let ours = args
            .windows(3)
            .any(|w| w[0] == b"run" && w[1] == b"--home" && w[2] == home);
        ours.then_some(pid)
    }
}

/// The validators under `dir`, in order (homes named `validator-<i>`).
pub fn members(dir: &Path) -> anyhow::Result<Vec<Member>> {
    if !dir.is_dir() {
        bail!(
            "{} is not a localnet: make one with `atoll localnet init --dir {}`",
            dir.display(),
            dir.display()
        );
    }
    // Absolute paths: the pid check compares them, and the processes run
    // from another working directory.
    let dir = std::fs::canonicalize(dir).with_context(|| format!("{}", dir.display()))?;
    let netns = super::netns::Netns::of(&dir)?;
    let mut out = Vec::new();
    for index in 0.. {
        let home = Home::of_validator(&dir, index);
        if !home.is_initialised() {
            break;
        }
        let config = crate::run::load_config(&home)?;
        out.push(Member {
            index,
            rpc: format!("http://{}", config.rpc.addr),
            home,
            netns: netns.clone(),
        });
    }
    if out.is_empty() {
        bail!(
            "{} holds no validator homes (validator-0, …): make them with `atoll localnet init --dir {}`",
            dir.display(),
            dir.display()
        );
    }
    Ok(out)
}

/// Starts every validator that is not running, in the background, and
/// waits until each serves RPC.
pub fn start(dir: &Path) -> anyhow::Result<()> {
    let members = members(dir)?;
    for member in &members {
        if let Some(pid) = member.running() {
            println!("validator {} already runs (pid {pid})", member.index);
        }
    }
    let runtime = crate::run::runtime()?;
    start_members(&runtime, &members)?;
    print_table(&runtime, &members);
    print_next_steps(dir, &members[0]);
    Ok(())
}

/// Starts those of `members` that are not running, in the background, and
/// waits until each serves RPC; prints nothing.
pub fn start_members(runtime: &tokio::runtime::Runtime, members: &[Member]) -> anyhow::Result<()> {
    let atoll = std::env::current_exe().context("cannot find the atoll binary")?;
    let mut started = Vec::new();
    for member in members {
        if member.running().is_some() {
            continue;
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(member.log())
            .with_context(|| format!("cannot open {}", member.log().display()))?;
        let mut command = match &member.netns {
            Some(netns) => {
                netns.check(member.index)?;
                netns.command(member.index, &atoll)
            }
            None => Command::new(&atoll),
        };
        let child = command
            .arg("run")
            .arg("--home")
            .arg(member.home.root())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            // Its own process group: Ctrl-C in this terminal later does
            // not reach it; `localnet stop` does.
            .process_group(0)
            .spawn()
            .with_context(|| format!("cannot start validator {}", member.index))?;
        std::fs::write(member.pid_file(), format!("{}\n", child.id()))?;
        started.push((member, child));
    }
    let deadline = Instant::now() + START_TIMEOUT;
    for (member, child) in &mut started {
        loop {
            // Asked of the child, not of /proc: a child that has not
            // exec'd yet still shows this process's command line.
            if child.try_wait()?.is_some() {
                bail!(
                    "validator {} exited while starting; the end of {}:\n{}",
                    member.index,
                    member.log().display(),
                    tail(&member.log(), 20)
                );
            }
            if runtime.block_on(status(&member.rpc)).is_ok() {
                break;
            }
            if Instant::now() > deadline {
                bail!(
                    "validator {} did not serve RPC within {:?}; see {}",
                    member.index,
                    START_TIMEOUT,
                    member.log().display()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    Ok(())
}

/// How to use the localnet that just started.
fn print_next_steps(dir: &Path, first: &Member) {
    let atoll = std::env::current_exe().map_or("atoll".into(), |p| p.display().to_string());
    let dir = dir.display();
    let key = first.home.dev_key_file(0);
    let to = atoll_shard::workload::dev_key(crate::home::DEV_SEED, 1).address();
    println!();
    if key.exists() {
        println!("Send a transfer (dev account 0 to dev account 1) and wait until it is final:");
        println!(
            "  {atoll} tx transfer --rpc {} --key {} --to {to} --amount 1000 --wait",
            first.rpc,
            key.display()
        );
    }
    println!("Status:  {atoll} localnet status --dir {dir}");
    println!("Logs:    {dir}/validator-<i>/node.log  ({atoll} localnet logs --dir {dir} --follow)");
    println!("Stop:    {atoll} localnet stop --dir {dir}");
}

/// Stops every running validator (SIGTERM: each finishes its block and
/// closes its stores) and waits up to `timeout` for them to exit.
pub fn stop(dir: &Path, timeout: Duration) -> anyhow::Result<()> {
    let members = members(dir)?;
    let mut stopping = Vec::new();
    for member in &members {
        match member.running() {
            Some(pid) => {
                signal(pid, "TERM")?;
                stopping.push((member, pid));
            }
            None => {
                let _ = std::fs::remove_file(member.pid_file());
            }
        }
    }
    let deadline = Instant::now() + timeout;
    while stopping.iter().any(|(m, _)| m.running().is_some()) {
        if Instant::now() > deadline {
            let left: Vec<String> = stopping
                .iter()
                .filter(|(m, _)| m.running().is_some())
                .map(|(m, pid)| format!("validator {} (pid {pid})", m.index))
                .collect();
            bail!(
                "still running after {timeout:?}: {}; see their logs, or `kill -9` them",
                left.join(", ")
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    for (member, pid) in &stopping {
        let _ = std::fs::remove_file(member.pid_file());
        println!("validator {} stopped (pid {pid})", member.index);
    }
    if stopping.is_empty() {
        println!("no validator was running");
    }
    Ok(())
}

/// Sends signal `name` (`TERM`, `KILL`, `STOP`, `CONT`) to `pid`.
pub fn signal(pid: u32, name: &str) -> anyhow::Result<()> {
    let ok = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status()
        .context("cannot run kill")?
        .success();
    if !ok {
        bail!("kill -{name} {pid} failed");
    }
    Ok(())
}

/// The node's `atoll_status`, or why it gave none within 3 s.
pub async fn status(rpc: &str) -> anyhow::Result<Status> {
    let client = connect(rpc)?;
    tokio::time::timeout(Duration::from_secs(3), client.status())
        .await
        .context("no answer within 3 s")?
        .map_err(call_error)
}

/// Prints each validator's state: running or not, heights, peers, shards,
/// RPC URL.
pub fn show(dir: &Path, json: bool) -> anyhow::Result<()> {
    let members = members(dir)?;
    let runtime = crate::run::runtime()?;
    if json {
        let mut out = Vec::new();
        for member in &members {
            let pid = member.running();
            let status = match pid {
                Some(_) => runtime.block_on(status(&member.rpc)).ok(),
                None => None,
            };
            out.push(serde_json::json!({
                "validator": member.index,
                "pid": pid,
                "rpc": member.rpc,
                "log": member.log(),
                "status": status,
            }));
        }
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    print_table(&runtime, &members);
    Ok(())
}

fn print_table(runtime: &tokio::runtime::Runtime, members: &[Member]) {
    println!(
        "{:<10} {:<8} {:>8} {:>8} {:>6}  {:<22} {:<24} RPC",
        "validator", "pid", "height", "final", "peers", "shard final heights", "state"
    );
    for member in members {
        let pid = member.running();
        let status = pid.map(|_| runtime.block_on(status(&member.rpc)));
        let pid_text = pid.map_or("-".into(), |p| p.to_string());
        let (height, final_height, peers, shards, state) = match status {
            None => (
                "-".into(),
                "-".into(),
                "-".into(),
                String::new(),
                "stopped".into(),
            ),
            Some(Err(e)) => (
                "-".into(),
                "-".into(),
                "-".into(),
                String::new(),
                format!("not answering: {e}"),
            ),
            Some(Ok(s)) => {
                let shards = s
                    .shards
                    .iter()
                    .filter(|sh| sh.tracked)
                    .map(|sh| format!("{}:{}", sh.shard, sh.final_height))
                    .collect::<Vec<_>>()
                    .join(" ");
                // With shard committees, only the shards it tracks now.
                let shards = if shards.is_empty() {
                    "none tracked".to_string()
                } else {
                    shards
                };
                match &s.consensus {
                    Some(c) => (
                        c.height.to_string(),
                        c.final_height.to_string(),
                        c.peers.to_string(),
                        shards,
                        if c.banned_peers > 0 {
                            format!("running, {} banned", c.banned_peers)
                        } else {
                            "running".into()
                        },
                    ),
                    None => ("-".into(), "-".into(), "-".into(), shards, "running".into()),
                }
            }
        };
        println!(
            "{:<10} {:<8} {:>8} {:>8} {:>6}  {:<22} {:<24} {}",
            member.index, pid_text, height, final_height, peers, shards, state, member.rpc
        );
    }
}

/// The last `lines` lines of `path`.
pub fn tail(path: &Path, lines: usize) -> String {
    let Ok(mut file) = std::fs::File::open(path) else {
        return String::new();
    };
    // The end of the file is enough for a few lines.
    let len = file.metadata().map_or(0, |m| m.len());
    let from = len.saturating_sub(lines as u64 * 400 + 4096);
    let mut text = String::new();
    if file.seek(SeekFrom::Start(from)).is_err() {
        return text;
    }
    let mut bytes = Vec::new();
    let _ = file.read_to_end(&mut bytes);
    text.push_str(&String::from_utf8_lossy(&bytes));
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Prints the end of each chosen validator's log; with `follow`, keeps
/// printing what they append until interrupted.
pub fn logs(
    dir: &Path,
    validator: Option<usize>,
    lines: usize,
    follow: bool,
) -> anyhow::Result<()> {
    let members: Vec<Member> = members(dir)?
        .into_iter()
        .filter(|m| validator.is_none_or(|v| v == m.index))
        .collect();
    if members.is_empty() {
        bail!("there is no validator {}", validator.unwrap_or_default());
    }
    let mut out = std::io::stdout().lock();
    let mut offsets = Vec::new();
    for member in &members {
        for line in tail(&member.log(), lines).lines() {
            writeln!(out, "validator-{} | {line}", member.index)?;
        }
        offsets.push(std::fs::metadata(member.log()).map_or(0, |m| m.len()));
    }
    out.flush()?;
    if !follow {
        return Ok(());
    }
    loop {
        std::thread::sleep(Duration::from_millis(250));
        for (member, offset) in members.iter().zip(offsets.iter_mut()) {
            let Ok(mut file) = std::fs::File::open(member.log()) else {
                continue;
            };
            let len = file.metadata().map_or(0, |m| m.len());
            if len < *offset {
                *offset = 0;
            }
            if len == *offset {
                continue;
            }
            file.seek(SeekFrom::Start(*offset))?;
            let mut bytes = Vec::new();
            file.read_to_end(&mut bytes)?;
            // Whole lines only; the rest waits for the next round.
            let end = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
            for line in String::from_utf8_lossy(&bytes[..end]).lines() {
                writeln!(out, "validator-{} | {line}", member.index)?;
            }
            *offset += end as u64;
        }
        out.flush()?;
    }
}
