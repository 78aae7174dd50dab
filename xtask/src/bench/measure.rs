//! The measurements and the arithmetic on them.
//!
//! A [`Endpoint`] says where a client runs (a namespace, the netd world's cgroup inside its host
//! namespace, or a container's namespace file) and which address and ports it targets. Throughput
//! is `iperf3 -J` (receiver's bits/s; machine CPU from `/proc/stat` over the run gives CPU seconds
//! per Gbit), request/response latency is `sockperf ping-pong --tcp --full-rtt` (p50, p99 of the
//! round trip), connections/s is the `connect` helper. A [`Figure`] keeps one value per round and
//! variant; ratios are medians of per-round ratios, so each pair is measured close in time.

use std::{path::PathBuf, process::Command, time::Duration};

use anyhow::{bail, Context as _, Result};
use serde_json::Value;

use super::world::{self, Guard};
use crate::util;

/// Ports of the three servers in a container, as a client addresses them.
#[derive(Clone, Copy)]
pub struct Ports {
    pub conn: u16,
    pub iperf: u16,
    pub sockperf: u16,
}

/// Published ports (netd and Docker) and the servers' own ports (direct clients).
pub const PUBLISHED: Ports = Ports {
    conn: 8080,
    iperf: 5201,
    sockperf: 11111,
};
pub const DIRECT: Ports = Ports {
    conn: 80,
    iperf: 5201,
    sockperf: 11111,
};

/// Where a client process runs.
#[derive(Clone)]
pub enum Launcher {
    /// `ip netns exec NS`.
    Ns(String),
    /// In the netd world's host namespace and its cgroup, where the socket hooks act.
    Cgroup { ns: String, cgroup: PathBuf },
    /// `nsenter --net=FILE`: a netd container's namespace file.
    Netns(PathBuf),
}

/// The CPU that clients, servers and docker-proxy are all pinned to. On this 2-vCPU VM an
/// unpinned ping-pong lands on one or two CPUs at random and its latency differs by 3x between
/// the two, and cross-CPU wake-ups cost up to milliseconds at p99; on one CPU every variant gets
/// the same placement, and the packet processing (veth, bridge, TC programs, netfilter) runs in
/// the senders' context on that CPU, so throughput and rates compare the CPU cost of the paths.
pub const CLIENT_CPU: &str = "1";
pub const SERVER_CPU: &str = CLIENT_CPU;

impl Launcher {
    /// `args`, pinned to [`CLIENT_CPU`], in this place.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut pinned = vec!["taskset", "-c", CLIENT_CPU];
        pinned.extend_from_slice(args);
        let args = pinned.as_slice();
        match self {
            Launcher::Ns(n) => world::in_ns(n, args),
            Launcher::Netns(file) => world::nsenter(file, args),
            Launcher::Cgroup { ns, cgroup } => {
                let mut cmd = util::command("nsenter");
                cmd.arg(format!("--net=/run/netns/{ns}"))
                    .args(["sh", "-c"])
                    .arg(format!(
                        "echo $$ > {}/cgroup.procs && exec \"$@\"",
                        cgroup.display()
                    ))
                    .arg("sh")
                    .args(args);
                cmd
            }
        }
    }
}

/// A client's place and target.
#[derive(Clone)]
pub struct Endpoint {
    pub variant: &'static str,
    pub launcher: Launcher,
    pub ip: String,
    pub ports: Ports,
}

/// Durations and counts for one run.
#[derive(Clone, Copy)]
pub struct Plan {
    pub rounds: usize,
    pub iperf_secs: u32,
    pub sockperf_secs: u32,
    pub conn_secs: f64,
    pub conn_threads: usize,
    pub dns_secs: f64,
    pub dns_threads: usize,
}

/// One measure: a value per round for every variant.
pub struct Figure {
    pub key: &'static str,
    pub title: String,
    pub unit: &'static str,
    pub higher_better: bool,
    pub series: Vec<(String, Vec<f64>)>,
}

impl Figure {
    pub fn new(key: &'static str, title: &str, unit: &'static str, higher_better: bool) -> Self {
        Figure {
            key,
            title: title.to_string(),
            unit,
            higher_better,
            series: Vec::new(),
        }
    }

    /// Appends this round's value (NaN when the measurement failed).
    pub fn push(&mut self, variant: &str, value: f64) {
        match self.series.iter_mut().find(|(v, _)| v == variant) {
            Some((_, values)) => values.push(value),
            None => self.series.push((variant.to_string(), vec![value])),
        }
    }

    pub fn values(&self, variant: &str) -> Option<&[f64]> {
        self.series
            .iter()
            .find(|(v, _)| v == variant)
            .map(|(_, values)| values.as_slice())
    }

    pub fn median(&self, variant: &str) -> Option<f64> {
        median(self.values(variant)?)
    }

    /// Median over rounds of `a / b`, each round's pair taken together.
    pub fn ratio(&self, a: &str, b: &str) -> Option<f64> {
        let (va, vb) = (self.values(a)?, self.values(b)?);
        let ratios: Vec<f64> = va.iter().zip(vb).map(|(x, y)| x / y).collect();
        median(&ratios)
    }
}

/// The median of the finite values, if any.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

/// The machine's busy CPU time so far, in seconds (all CPUs, from `/proc/stat`).
fn busy_cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = stat.lines().next() else {
        return f64::NAN;
    };
    let f: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal ...
    let busy: f64 = [0, 1, 2, 5, 6, 7].iter().filter_map(|&i| f.get(i)).sum();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    busy / hz
}

/// iperf3 from `e` to its iperf3 server: (Gbit/s received, machine CPU seconds per Gbit).
pub fn iperf(g: &Guard, e: &Endpoint, secs: u32) -> Result<(f64, f64)> {
    let port = e.ports.iperf.to_string();
    let t = secs.to_string();
    let mut cmd = e.launcher.command(&[
        "iperf3",
        "-c",
        &e.ip,
        "-p",
        &port,
        "-t",
        &t,
        "-J",
        "--connect-timeout",
        "3000",
    ]);
    let cpu0 = busy_cpu_seconds();
    let out = g.must(&mut cmd, Duration::from_secs(u64::from(secs) + 20))?;
    let cpu = busy_cpu_seconds() - cpu0;
    let v: Value = serde_json::from_str(&out).context("iperf3 -J output")?;
    let received = &v["end"]["sum_received"];
    let bps = received["bits_per_second"]
        .as_f64()
        .with_context(|| format!("iperf3: no throughput in {}", v["error"]))?;
    let gbit = bps * received["seconds"].as_f64().unwrap_or(f64::from(secs)) / 1e9;
    Ok((bps / 1e9, cpu / gbit))
}

/// sockperf TCP ping-pong from `e`: (p50, p99) of the full round trip in microseconds.
pub fn sockperf(g: &Guard, e: &Endpoint, secs: u32) -> Result<(f64, f64)> {
    let port = e.ports.sockperf.to_string();
    let t = secs.to_string();
    let mut cmd = e.launcher.command(&[
        "sockperf",
        "ping-pong",
        "--tcp",
        "-i",
        &e.ip,
        "-p",
        &port,
        "-t",
        &t,
        "--full-rtt",
        "-m",
        "64",
    ]);
    let out = g.must(&mut cmd, Duration::from_secs(u64::from(secs) + 20))?;
    let pct = |p: &str| -> Option<f64> {
        out.lines()
            .find(|l| l.contains(&format!("percentile {p} =")))
            .and_then(|l| l.rsplit('=').next())
            .and_then(|x| x.trim().parse().ok())
    };
    match (pct("50.000"), pct("99.000")) {
        (Some(p50), Some(p99)) => Ok((p50, p99)),
        _ => bail!("sockperf: no percentiles in its output: {}", out.trim()),
    }
}

/// Short connections per second from `e` to its `serve` helper.
pub fn conns(g: &Guard, tool: &str, e: &Endpoint, secs: f64, threads: usize) -> Result<f64> {
    let addr = format!("{}:{}", e.ip, e.ports.conn);
    let (s, t) = (secs.to_string(), threads.to_string());
    let mut cmd = e
        .launcher
        .command(&[tool, "bench", "--helper", "connect", &addr, &s, &t]);
    let out = g.must(&mut cmd, Duration::from_secs_f64(secs + 30.0))?;
    let v: Value = serde_json::from_str(out.trim()).context("connect helper output")?;
    let (ok, errors) = (
        v["conns"].as_f64().unwrap_or(0.0),
        v["errors"].as_f64().unwrap_or(0.0),
    );
    if ok == 0.0 || errors > ok / 100.0 {
        bail!("{} of {} short connections failed", errors, ok + errors);
    }
    Ok(v["rate"].as_f64().unwrap_or(f64::NAN))
}

/// Waits until `e`'s short-connection server answers through its path.
pub fn probe(g: &Guard, tool: &str, e: &Endpoint) -> Result<()> {
    let addr = format!("{}:{}", e.ip, e.ports.conn);
    let mut cmd = e
        .launcher
        .command(&[tool, "bench", "--helper", "probe", &addr]);
    g.must(&mut cmd, Duration::from_secs(20))
        .with_context(|| format!("{}: the path to {addr} is not up", e.variant))
        .map(drop)
}
