//! A localnet whose validators sit in network namespaces made by
//! `scripts/netns.sh` (one per validator, joined by a bridge in a hub
//! namespace), so that they are separate hosts with a network between them.
//!
//! ```text
//! <dir>/netns    the namespaces' prefix (written by `localnet init --netns`)
//! ```
//!
//! Validator `i` is `10.77.0.(10 + i)` in namespace `<prefix>-v<i>`; clients
//! are `10.77.0.2` in `<prefix>-client`. `localnet start` and `perturb` start
//! each validator in its namespace; whatever talks to their RPC (`atoll
//! localnet status`, `perturb`, `load`) runs in the clients' namespace
//! (`scripts/netns.sh exec client atoll …`). A cut (`perturb`'s one-way and
//! two-way disconnects) is an nftables rule on the hub's bridge: the
//! packets vanish on the way, and neither end sees an error.

use anyhow::{bail, Context};
use std::io::Write;
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Command, Stdio};

/// The file under a localnet's directory that names its namespaces.
pub const MARKER: &str = "netns";

/// The namespace prefix when `ATOLL_NETNS_PREFIX` is not set (as in
/// `scripts/netns.sh`).
pub const DEFAULT_PREFIX: &str = "atoll";

/// Validator `i`'s address.
pub fn validator_addr(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 77, 0, 10 + i as u8)
}

/// The clients' address.
pub const CLIENT_ADDR: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);

/// Which way a cut drops a validator's traffic with the other validators.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Way {
    /// What the others send it.
    In,
    /// What it sends the others.
    Out,
    /// Both.
    Both,
}

/// The namespaces of one localnet.
#[derive(Clone, Debug)]
pub struct Netns {
    prefix: String,
}

impl Netns {
    /// The prefix `localnet init --netns` records: `ATOLL_NETNS_PREFIX`, or
    /// [`DEFAULT_PREFIX`].
    pub fn from_env() -> anyhow::Result<Netns> {
        let prefix =
            std::env::var("ATOLL_NETNS_PREFIX").unwrap_or_else(|_| DEFAULT_PREFIX.to_string());
        if prefix.is_empty()
            || prefix.len() > 20
            || !prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            bail!("ATOLL_NETNS_PREFIX {prefix:?} must be 1 to 20 letters, digits, - or _");
        }
        Ok(Netns { prefix })
    }

    /// Records these namespaces as `dir`'s.
    pub fn record(&self, dir: &Path) -> anyhow::Result<()> {
        let path = dir.join(MARKER);
        std::fs::write(&path, format!("{}\n", self.prefix))
            .with_context(|| format!("cannot write {}", path.display()))
    }

    /// The namespaces of the localnet in `dir`, if it has them.
    pub fn of(dir: &Path) -> anyhow::Result<Option<Netns>> {
        let path = dir.join(MARKER);
        match std::fs::read_to_string(&path) {
            Ok(text) => Ok(Some(Netns {
                prefix: text.trim().to_string(),
            })),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    /// Validator `i`'s namespace.
    pub fn namespace(&self, i: usize) -> String {
        format!("{}-v{i}", self.prefix)
    }

    fn hub(&self) -> String {
        format!("{}-hub", self.prefix)
    }

    /// A command that runs `program` in validator `i`'s namespace (`ip
    /// netns exec` execs into it, so the child's pid is the program's).
    pub fn command(&self, i: usize, program: &Path) -> Command {
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", &self.namespace(i)])
            .arg(program);
        command
    }

    /// Fails with a clear message unless validator `i`'s namespace exists.
    pub fn check(&self, i: usize) -> anyhow::Result<()> {
        let list = Command::new("ip")
            .args(["netns", "list"])
            .output()
            .context("cannot run `ip netns list` (is iproute2 installed?)")?;
        let listed = String::from_utf8_lossy(&list.stdout);
        let name = self.namespace(i);
        if !listed
            .lines()
            .any(|line| line.split_whitespace().next() == Some(name.as_str()))
        {
            bail!(
                "network namespace {name} does not exist: this localnet runs in namespaces; \
                 make them with `scripts/netns.sh up N` (as root) first"
            );
        }
        Ok(())
    }

    /// Drops validator `i`'s traffic with the other validators, `way`.
    pub fn cut(&self, i: usize, way: Way) -> anyhow::Result<()> {
        let me = validator_addr(i);
        let from = format!("ip saddr {me} ip daddr != {CLIENT_ADDR} drop;");
        let to = format!("ip daddr {me} ip saddr != {CLIENT_ADDR} drop;");
        let rules = match way {
            Way::In => to,
            Way::Out => from,
            Way::Both => format!("{from} {to}"),
        };
        self.heal(i)?;
        self.nft(&format!(
            "table bridge atoll_cut_{i} {{\n  chain forward {{\n    type filter hook forward \
             priority 0; policy accept;\n    {rules}\n  }}\n}}\n"
        ))
        .with_context(|| format!("cutting validator {i} off ({way:?})"))
    }

    /// Undoes [`Netns::cut`] (nothing if there was none).
    pub fn heal(&self, i: usize) -> anyhow::Result<()> {
        let status = Command::new("ip")
            .args(["netns", "exec", &self.hub(), "nft", "list", "tables"])
            .output()
            .context("cannot run nft in the hub namespace (is nftables installed?)")?;
        let table = format!("table bridge atoll_cut_{i}");
        if String::from_utf8_lossy(&status.stdout)
            .lines()
            .any(|line| line.trim() == table)
        {
            self.nft(&format!("delete {table}\n"))?;
        }
        Ok(())
    }

    fn nft(&self, script: &str) -> anyhow::Result<()> {
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.hub(), "nft", "-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("cannot run nft in the hub namespace (is nftables installed?)")?;
        child
            .stdin
            .take()
            .context("nft's input")?
            .write_all(script.as_bytes())?;
        let output = child.wait_with_output()?;
        if !output.status.success() {
            bail!(
                "nft refused the rules: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        Ok(())
    }
}
