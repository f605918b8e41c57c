//! `atoll localnet delay`: delay and jitter on a host's outgoing packets,
//! for kernels built without netem (`CONFIG_NET_SCH_NETEM`).
//!
//! `scripts/netns.sh up N --latency D [--jitter J]` on such a kernel sends
//! every packet that reaches a validator's namespace over its link to a
//! netfilter queue (`iptables-legacy -t raw -A PREROUTING -i eth0 -j
//! NFQUEUE`) and runs this in the namespace. It reads each queued packet's
//! id and source (the first 24 bytes, never the rest), and gives the
//! kernel its verdict, accept, once the packet's delay has passed: `D`
//! plus a normal sample of standard deviation `J`, never below zero.
//!
//! The delay is on arrival, not departure: a sender's packet held in its
//! own namespace would still count against its socket (TCP small queues),
//! and TCP would then send no faster than a millisecond's worth of data
//! per delay. Netem avoids that by orphaning what it holds; a queue cannot.
//!
//! The jitter is a path's: each source's delay drifts (a
//! mean-reverting random walk, correlation time [`DRIFT`]) around `D`
//! with standard deviation `J`, and a packet is never released before an
//! earlier one from the same source. Netem instead draws each packet's
//! delay on its own, which reorders packets microseconds apart by
//! milliseconds, and TCP then retransmits what was not lost.
//!
//! What it holds is bounded by the kernel's queue (`MAX_QUEUED` packets);
//! past that the kernel drops, as netem drops past its limit. Loss is not
//! done here: `netns.sh` drops packets on the bridge (nftables).

use anyhow::{bail, Context};
use netlink_sys::{protocols::NETLINK_NETFILTER, Socket as Netlink, SocketAddr};
use rand::{Rng, SeedableRng};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

/// Packets the kernel keeps waiting for a verdict before it drops more.
pub const MAX_QUEUED: u32 = 100_000;

/// Bytes of each packet copied to us: an IPv6 header's source ends at
/// byte 24 (an IPv4 one at 16).
const COPY_RANGE: u32 = 24;

/// Verdicts sent in one write.
const VERDICT_BATCH: usize = 512;

// nfnetlink_queue, from <linux/netfilter/nfnetlink_queue.h>.
const NFNL_SUBSYS_QUEUE: u16 = 3;
const NFQNL_MSG_PACKET: u16 = 0;
const NFQNL_MSG_VERDICT: u16 = 1;
const NFQNL_MSG_CONFIG: u16 = 2;
const NFQA_PACKET_HDR: u16 = 1;
const NFQA_VERDICT_HDR: u16 = 2;
const NFQA_PAYLOAD: u16 = 10;
const NFQA_CFG_CMD: u16 = 1;
const NFQA_CFG_PARAMS: u16 = 2;
const NFQA_CFG_QUEUE_MAXLEN: u16 = 3;
const NFQNL_CFG_CMD_BIND: u8 = 1;
const NFQNL_COPY_PACKET: u8 = 2;
const NF_ACCEPT: u32 = 1;
const NLMSG_HDRLEN: usize = 16;
const NFGENMSG_LEN: usize = 4;

/// `atoll localnet delay`.
#[derive(clap::Args)]
pub struct DelayArgs {
    /// The netfilter queue to serve (`-j NFQUEUE --queue-num`).
    #[arg(long, default_value_t = 0)]
    pub queue: u16,
    /// Each packet's delay, e.g. 50ms.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub latency: Duration,
    /// Standard deviation of the delay, e.g. 10ms.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "0ms")]
    pub jitter: Duration,
    /// Seed of the jitter's random numbers.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// Serves the queue until killed.
pub fn run(args: DelayArgs) -> anyhow::Result<()> {
    if args.latency > Duration::from_secs(10) || args.jitter > Duration::from_secs(10) {
        bail!("--latency and --jitter must be at most 10 s");
    }
    let socket = bind(args.queue)?;
    let mut poll = mio::Poll::new()?;
    poll.registry().register(
        &mut mio::unix::SourceFd(&socket.as_raw_fd()),
        mio::Token(0),
        mio::Interest::READABLE,
    )?;
    let mut events = mio::Events::with_capacity(4);
    let mut delays = Delays::new(args.latency, args.jitter, args.seed);
    eprintln!(
        "delaying queue {}: {:?} ± {:?}, order kept per source",
        args.queue, args.latency, args.jitter
    );
    let mut buf = Vec::with_capacity(1 << 18);
    let mut verdicts = Vec::with_capacity(VERDICT_BATCH * 32);
    let mut stats = Stats::default();
    loop {
        stats.report();
        // (epoll rounds the wait up to a whole millisecond.)
        let wait = delays
            .next()
            .map(|at| at.saturating_duration_since(Instant::now()));
        if let Err(e) = poll.poll(&mut events, wait) {
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(e).context("poll failed");
            }
        }
        loop {
            buf.clear();
            match socket.recv(&mut buf, 0) {
                Ok(_) => {
                    let now = Instant::now();
                    for (id, source) in packets(&buf) {
                        delays.push(now, id, source);
                        stats.delayed += 1;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                // The kernel's messages did not fit the receive buffer: it
                // dropped those packets, as a full link would.
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => stats.overflows += 1,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e).context("netlink receive failed"),
            }
        }
        let now = Instant::now();
        while delays.next().is_some_and(|at| at <= now) {
            verdicts.clear();
            while verdicts.len() < VERDICT_BATCH * 32 {
                let Some(id) = delays.pop_due(now) else { break };
                append_verdict(&mut verdicts, args.queue, id);
            }
            socket.send(&verdicts, 0).context("netlink send failed")?;
        }
    }
}

/// What the delay has done, printed every [`Stats::EVERY`] when it moved.
#[derive(Default)]
struct Stats {
    delayed: u64,
    /// Times the kernel's messages overflowed our receive buffer (their
    /// packets were dropped).
    overflows: u64,
    printed: Option<(Instant, u64)>,
}

impl Stats {
    const EVERY: Duration = Duration::from_secs(10);

    fn report(&mut self) {
        let now = Instant::now();
        let (at, before) = *self.printed.get_or_insert((now, 0));
        if now.duration_since(at) >= Self::EVERY && self.delayed != before {
            eprintln!(
                "delayed {} packets ({:.0}/s), receive buffer overflowed {} times",
                self.delayed,
                (self.delayed - before) as f64 / now.duration_since(at).as_secs_f64(),
                self.overflows
            );
            self.printed = Some((now, self.delayed));
        }
    }
}

/// How fast a path's delay drifts: samples this far apart are nearly
/// independent (correlation 1/e).
pub const DRIFT: Duration = Duration::from_millis(50);

/// When each held packet goes, earliest first.
struct Delays {
    latency: f64,
    jitter: f64,
    rng: rand::rngs::StdRng,
    held: BinaryHeap<Reverse<(Instant, u64, u32)>>,
    paths: HashMap<[u8; 16], Path>,
    sequence: u64,
}

/// One source's delay now.
struct Path {
    /// When it was last sampled.
    at: Instant,
    /// Its offset from the latency, in standard deviations.
    offset: f64,
    /// When its latest packet goes, so that none is overtaken.
    release: Instant,
}

impl Delays {
    fn new(latency: Duration, jitter: Duration, seed: u64) -> Delays {
        Delays {
            latency: latency.as_secs_f64(),
            jitter: jitter.as_secs_f64(),
            rng: rand::rngs::StdRng::seed_from_u64(seed),
            held: BinaryHeap::new(),
            paths: HashMap::new(),
            sequence: 0,
        }
    }

    /// A standard normal sample (Box–Muller).
    fn normal(&mut self) -> f64 {
        let u1: f64 = 1.0 - self.rng.gen::<f64>();
        let u2: f64 = self.rng.gen();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }

    fn push(&mut self, now: Instant, id: u32, source: [u8; 16]) {
        if self.paths.len() > 4096 {
            self.paths.retain(|_, path| path.release > now);
        }
        let fresh = self.normal();
        let step = self.normal();
        let path = self.paths.entry(source).or_insert(Path {
            at: now,
            offset: fresh,
            release: now,
        });
        // Ornstein–Uhlenbeck: the offset keeps a standard normal
        // distribution while it moves by correlation exp(-elapsed/DRIFT).
        let elapsed = now.saturating_duration_since(path.at).as_secs_f64();
        let kept = (-elapsed / DRIFT.as_secs_f64()).exp();
        path.offset = path.offset * kept + (1.0 - kept * kept).sqrt() * step;
        path.at = now;
        let delay = (self.latency + path.offset * self.jitter).max(0.0);
        let at = (now + Duration::from_secs_f64(delay)).max(path.release);
        path.release = at;
        self.sequence += 1;
        self.held.push(Reverse((at, self.sequence, id)));
    }

    fn next(&self) -> Option<Instant> {
        self.held.peek().map(|Reverse((at, _, _))| *at)
    }

    fn pop_due(&mut self, now: Instant) -> Option<u32> {
        match self.held.peek() {
            Some(Reverse((at, _, _))) if *at <= now => self.held.pop().map(|Reverse(p)| p.2),
            _ => None,
        }
    }
}

/// A netlink message to the queue subsystem: header, `nfgenmsg`, attributes.
fn message(kind: u16, flags: u16, queue: u16, attributes: &[(u16, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    append_message(&mut out, kind, flags, queue, attributes);
    out
}

/// [`message`], appended to `out` (verdicts go out many to a write).
fn append_message(
    out: &mut Vec<u8>,
    kind: u16,
    flags: u16,
    queue: u16,
    attributes: &[(u16, &[u8])],
) {
    let start = out.len();
    out.resize(start + NLMSG_HDRLEN, 0);
    out.extend_from_slice(&[libc::AF_UNSPEC as u8, 0]);
    out.extend_from_slice(&queue.to_be_bytes());
    for (kind, value) in attributes {
        out.extend_from_slice(&(4 + value.len() as u16).to_ne_bytes());
        out.extend_from_slice(&kind.to_ne_bytes());
        out.extend_from_slice(value);
        out.resize(start + (out.len() - start).next_multiple_of(4), 0);
    }
    let len = (out.len() - start) as u32;
    out[start..start + 4].copy_from_slice(&len.to_ne_bytes());
    out[start + 4..start + 6].copy_from_slice(&((NFNL_SUBSYS_QUEUE << 8) | kind).to_ne_bytes());
    out[start + 6..start + 8].copy_from_slice(&flags.to_ne_bytes());
}

/// Appends to `out` the verdict that releases packet `id`.
fn append_verdict(out: &mut Vec<u8>, queue: u16, id: u32) {
    let mut header = [0u8; 8];
    header[..4].copy_from_slice(&NF_ACCEPT.to_be_bytes());
    header[4..].copy_from_slice(&id.to_be_bytes());
    append_message(
        out,
        NFQNL_MSG_VERDICT,
        libc::NLM_F_REQUEST as u16,
        queue,
        &[(NFQA_VERDICT_HDR, &header)],
    );
}

/// The queued packets in a datagram from the kernel: id and source (an
/// IPv4 address in the first 4 bytes). Whatever does not parse is
/// skipped: the kernel then never hears of it and drops it when the queue
/// closes, which only this process's bugs could cause.
fn packets(datagram: &[u8]) -> Vec<(u32, [u8; 16])> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + NLMSG_HDRLEN <= datagram.len() {
        let len = u32::from_ne_bytes([
            datagram[at],
            datagram[at + 1],
            datagram[at + 2],
            datagram[at + 3],
        ]) as usize;
        let kind = u16::from_ne_bytes([datagram[at + 4], datagram[at + 5]]);
        if len < NLMSG_HDRLEN || at + len > datagram.len() {
            break;
        }
        if kind == (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET {
            let body = &datagram[at + NLMSG_HDRLEN..at + len];
            if let Some(packet) = packet(body.get(NFGENMSG_LEN..).unwrap_or_default()) {
                out.push(packet);
            }
        }
        at += len.next_multiple_of(4);
    }
    out
}

fn packet(mut attributes: &[u8]) -> Option<(u32, [u8; 16])> {
    let (mut id, mut source) = (None, [0u8; 16]);
    while attributes.len() >= 4 {
        let len = u16::from_ne_bytes([attributes[0], attributes[1]]) as usize;
        let kind = u16::from_ne_bytes([attributes[2], attributes[3]]) & 0x3fff;
        if len < 4 || len > attributes.len() {
            break;
        }
        let value = &attributes[4..len];
        match kind {
            NFQA_PACKET_HDR if value.len() >= 4 => {
                id = Some(u32::from_be_bytes([value[0], value[1], value[2], value[3]]));
            }
            NFQA_PAYLOAD => match value.first().map(|b| b >> 4) {
                Some(4) if value.len() >= 20 => source[..4].copy_from_slice(&value[12..16]),
                Some(6) if value.len() >= 24 => source.copy_from_slice(&value[8..24]),
                _ => {}
            },
            _ => {}
        }
        attributes = &attributes[len.next_multiple_of(4).min(attributes.len())..];
    }
    id.map(|id| (id, source))
}

/// A non-blocking netlink socket bound to netfilter queue `queue`.
fn bind(queue: u16) -> anyhow::Result<Netlink> {
    let mut netlink = Netlink::new(NETLINK_NETFILTER).context("cannot open a netlink socket")?;
    netlink.bind(&SocketAddr::new(0, 0))?;
    // As much as the machine allows (net.core.rmem_max): what does not fit
    // is dropped.
    let _ = netlink.set_rx_buf_sz(32usize << 20);
    let mut params = COPY_RANGE.to_be_bytes().to_vec();
    params.push(NFQNL_COPY_PACKET);
    let bind = [NFQNL_CFG_CMD_BIND, 0, 0, libc::AF_INET as u8];
    let flags = (libc::NLM_F_REQUEST | libc::NLM_F_ACK) as u16;
    for attribute in [
        (NFQA_CFG_CMD, &bind[..]),
        (NFQA_CFG_PARAMS, &params[..]),
        (NFQA_CFG_QUEUE_MAXLEN, &MAX_QUEUED.to_be_bytes()[..]),
    ] {
        netlink.send(&message(NFQNL_MSG_CONFIG, flags, queue, &[attribute]), 0)?;
        ack(&netlink).with_context(|| {
            format!("cannot bind netfilter queue {queue} (is another process serving it?)")
        })?;
    }
    netlink.set_non_blocking(true)?;
    Ok(netlink)
}

/// The kernel's answer to a request sent with `NLM_F_ACK`.
fn ack(netlink: &Netlink) -> anyhow::Result<()> {
    let mut buf = Vec::with_capacity(4096);
    let n = netlink.recv(&mut buf, 0)?;
    if n < NLMSG_HDRLEN + 4 || buf.len() < NLMSG_HDRLEN + 4 {
        bail!("short netlink answer");
    }
    let kind = u16::from_ne_bytes([buf[4], buf[5]]);
    if kind != libc::NLMSG_ERROR as u16 {
        bail!("unexpected netlink answer (type {kind})");
    }
    let error = i32::from_ne_bytes([buf[16], buf[17], buf[18], buf[19]]);
    if error != 0 {
        return Err(std::io::Error::from_raw_os_error(-error).into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(last: u8) -> [u8; 16] {
        let mut d = [0u8; 16];
        d[..4].copy_from_slice(&[10, 77, 0, last]);
        d
    }

    /// Delays of `count` packets to each of 3 sources, `gap` apart,
    /// in order of release; panics if a source's packets reorder.
    fn released(gap: Duration, count: u32) -> Vec<f64> {
        let mut delays = Delays::new(Duration::from_millis(50), Duration::from_millis(10), 7);
        let start = Instant::now();
        let sent = |id: u32| start + gap * id;
        for id in 0..count * 3 {
            delays.push(sent(id), id, source(10 + (id % 3) as u8));
        }
        assert!(delays.pop_due(start).is_none());
        let mut out = Vec::new();
        let mut last: HashMap<u32, u32> = HashMap::new();
        while let Some(at) = delays.next() {
            let id = delays.pop_due(at).expect("due at its own time");
            if let Some(before) = last.insert(id % 3, id) {
                assert!(before < id, "{id} overtook {before}");
            }
            out.push(at.duration_since(sent(id)).as_secs_f64() * 1000.0);
        }
        assert_eq!(out.len(), count as usize * 3);
        out
    }

    fn mean_and_deviation(xs: &[f64]) -> (f64, f64) {
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / xs.len() as f64;
        (mean, var.sqrt())
    }

    #[test]
    fn sparse_packets_see_the_latency_and_jitter() {
        let (mean, deviation) = mean_and_deviation(&released(Duration::from_millis(100), 3000));
        assert!((48.0..52.0).contains(&mean), "mean {mean} ms");
        assert!((8.5..11.5).contains(&deviation), "deviation {deviation} ms");
    }

    #[test]
    fn bursts_keep_their_order_without_piling_up_delay() {
        // 10 µs apart: far faster than the delay drifts.
        let (mean, deviation) = mean_and_deviation(&released(Duration::from_micros(10), 20_000));
        assert!((40.0..60.0).contains(&mean), "mean {mean} ms");
        assert!(deviation < 15.0, "deviation {deviation} ms");
    }

    #[test]
    fn without_jitter_the_delay_is_exact() {
        let mut delays = Delays::new(Duration::from_millis(50), Duration::ZERO, 1);
        let start = Instant::now();
        delays.push(start, 9, source(11));
        assert_eq!(delays.next(), Some(start + Duration::from_millis(50)));
        assert!(delays.pop_due(start + Duration::from_millis(49)).is_none());
        assert_eq!(delays.pop_due(start + Duration::from_millis(50)), Some(9));
    }

    /// A packet message as the kernel sends it: header, nfgenmsg, the
    /// packet header attribute and the first bytes of the payload.
    fn kernel_packet(id: u32, payload: &[u8]) -> Vec<u8> {
        let mut header = id.to_be_bytes().to_vec();
        header.extend_from_slice(&[0x08, 0x00, 3]);
        message(
            NFQNL_MSG_PACKET,
            0,
            0,
            &[(NFQA_PACKET_HDR, &header), (NFQA_PAYLOAD, payload)],
        )
    }

    #[test]
    fn queued_packets_parse_and_verdicts_encode() {
        let mut ipv4 = vec![0x45u8; 20];
        ipv4[12..16].copy_from_slice(&[10, 77, 0, 12]);
        let mut ipv6 = vec![0u8; 24];
        ipv6[0] = 0x60;
        ipv6[8..24].copy_from_slice(&[0xfd; 16]);
        let mut datagram = kernel_packet(5, &ipv4);
        datagram.extend(kernel_packet(6, &ipv6));
        datagram.extend(kernel_packet(7, &[0x45, 0, 0])); // too short: no source
        datagram.extend_from_slice(&[1, 2, 3]); // a torn tail is ignored
        assert_eq!(
            packets(&datagram),
            vec![(5, source(12)), (6, [0xfd; 16]), (7, [0; 16])]
        );
        // Appended after another message, each is whole and aligned.
        let mut v = vec![0xaa; 12];
        append_verdict(&mut v, 3, 0x01020304);
        assert!(v[..12].iter().all(|b| *b == 0xaa));
        let v = &v[12..];
        assert_eq!(v.len(), 16 + 4 + 4 + 8);
        assert_eq!(u32::from_ne_bytes([v[0], v[1], v[2], v[3]]), 32);
        assert_eq!(u16::from_ne_bytes([v[4], v[5]]), (3 << 8) | 1);
        assert_eq!(&v[18..20], &[0, 3]);
        assert_eq!(&v[24..32], &[0, 0, 0, 1, 1, 2, 3, 4]);
    }
}
