//! Scale and memory: with 10, 1,000 and 10,000 published ports, the time to publish one more
//! (netd: one request on its socket, and the whole `netd container publish` command; Docker: the
//! three `iptables` commands it runs per port) and connections/s and request/response p50
//! through the measured port at that scale (netd and Docker in alternating rounds); with 100 and
//! 1,000 containers the time to attach one more (`container start`, which wires it: p50) (and,
//! with `--only attach`, with 1,000 and 4,000, past a bridge's ports, and address resolution
//! between pairs of them); netd's
//! RSS, the memory of the BPF maps pinned under its bpffs dir (`bpftool map show`, memlock
//! bytes), and docker-proxy's RSS per published port.
//!
//! netd publishes the extra ports as ranges (`20000-20996:20000-20996`); Docker's rules for them
//! are loaded with `iptables-nft-restore`, ahead of the measured container's rules (as if it had
//! been started last, so a new connection to it walks past all of them).

use std::{
    collections::HashSet,
    fs,
    path::Path,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};
use serde_json::{json, Value};

use super::{
    measure::{self, median},
    variants,
    world::{self, ns, Guard},
    Results,
};
use crate::util;

const PORT_SIZES: [usize; 3] = [10, 1_000, 10_000];
const CONTAINER_SIZES: [usize; 2] = [100, 1_000];
/// Repetitions of each "one more" timing (the figure is their median).
const REPS: usize = 9;
const FIRST_EXTRA: u16 = 20_000;
const ONE_MORE: u16 = 40_000;
const T: Duration = Duration::from_secs(60);

/// A figure key that lives as long as the program (keys are static strings).
fn key(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

/// The scale phase (full run only).
pub fn run(g: &mut Guard, tool: &str, r: &mut Results) -> Result<()> {
    let mut published = variants::MAPPINGS.len();
    let remote = variants::remote_endpoints();
    let pair: Vec<_> = remote
        .into_iter()
        .filter(|e| e.variant != "plain")
        .collect();
    for n in PORT_SIZES {
        super::check_interrupt()?;
        println!("bench: scale: {n} published ports");
        let extra = n - variants::MAPPINGS.len();
        if extra + variants::MAPPINGS.len() > published {
            let (a, b) = (
                FIRST_EXTRA + (published - variants::MAPPINGS.len()) as u16,
                FIRST_EXTRA + extra as u16 - 1,
            );
            let spec = format!("{a}-{b}:{a}-{b}");
            let t0 = Instant::now();
            g.api(json!({"op": "container_publish", "name": "srv", "spec": spec}))
                .with_context(|| format!("netd: publish {spec}"))?;
            r.scalar(
                &format!("netd: publish {} ports as one range (to {n})", b - a + 1),
                t0.elapsed().as_secs_f64() * 1e3,
                "ms",
            );
            published = n;
        }
        let ports: Vec<u16> = (0..extra as u16).map(|i| FIRST_EXTRA + i).collect();
        let t0 = Instant::now();
        variants::load_docker_rules(g, &ports)?;
        r.scalar(
            &format!("docker: iptables-nft-restore of the rules for {n} ports"),
            t0.elapsed().as_secs_f64() * 1e3,
            "ms",
        );
        one_more_port(g, r, n);
        for e in &pair {
            measure::probe(g, tool, e)?;
        }
        let p = r.plan;
        let cps = key(format!("scale.cps.{n}"));
        let p50 = key(format!("scale.p50.{n}"));
        for round in 0..p.rounds {
            let mut order: Vec<_> = pair.iter().collect();
            if round % 2 == 1 {
                order.reverse();
            }
            for e in &order {
                let v = measure::conns(g, tool, e, p.conn_secs, p.conn_threads);
                let title = format!("Short connections with {n} published ports");
                r.record(cps, &title, "conn/s", true, e.variant, v);
            }
            for e in &order {
                let v = measure::sockperf(g, e, 1).map(|(p50, _)| p50);
                let title = format!("Request/response p50 with {n} published ports");
                r.record(p50, &title, "µs", false, e.variant, v);
            }
        }
    }
    containers(g, tool, r)?;
    memory(g, r, "10,000 published ports, 1,000 containers");
    Ok(())
}

/// Times publishing one more port, REPS times (each taken back before the next).
fn one_more_port(g: &Guard, r: &mut Results, n: usize) {
    let k = key(format!("scale.addport.{n}"));
    let title = format!("Publish one more port with {n} published");
    let spec = format!("{ONE_MORE}:{ONE_MORE}");
    for _ in 0..REPS {
        let t0 = Instant::now();
        let v = g
            .api(json!({"op": "container_publish", "name": "srv", "spec": spec}))
            .map(|_| t0.elapsed().as_secs_f64() * 1e3);
        r.record(k, &title, "ms", false, "netd (socket request)", v);
        g.api(json!({"op": "container_unpublish", "name": "srv", "spec": spec}))
            .ok();
        let t0 = Instant::now();
        let v = g
            .must(&mut g.netd_cli(&["container", "publish", "srv", &spec]), T)
            .map(|_| t0.elapsed().as_secs_f64() * 1e3);
        r.record(k, &title, "ms", false, "netd (CLI command)", v);
        g.api(json!({"op": "container_unpublish", "name": "srv", "spec": spec}))
            .ok();
        let t0 = Instant::now();
        let v = docker_port(g, "-A").map(|_| t0.elapsed().as_secs_f64() * 1e3);
        r.record(k, &title, "ms", false, "docker (3 iptables commands)", v);
        docker_port(g, "-D").ok();
    }
}

fn docker_port(g: &Guard, op: &str) -> Result<()> {
    let netns = Path::new("/run/netns").join(ns("dock", "h"));
    for args in variants::docker_port_commands(ONE_MORE, op) {
        let mut all = vec!["iptables-nft", "-w"];
        all.extend(args.iter().map(String::as_str));
        g.must(&mut world::nsenter(&netns, &all), T)?;
    }
    Ok(())
}

/// Containers on the default bridge up to each size, then the time to start one more.
fn containers(g: &Guard, tool: &str, r: &mut Results) -> Result<()> {
    // `srv` and the DNS benchmark's container exist already.
    containers_up_to(g, tool, r, 2, &CONTAINER_SIZES).map(drop)
}

/// The sizes of `--only attach` (issue 17): a full bridge (1,023 ports) and beyond it.
pub const ATTACH_SIZES: [usize; 2] = [1_000, 4_000];
/// Container pairs whose address resolution `--only attach` checks at its largest size.
const RESOLVE_PAIRS: usize = 20;

/// `--only attach`: containers on the default bridge up to 1,000 and 4,000 (past the bridge's
/// ports), the time to start one more at each, address resolution between random pairs at
/// 4,000 (one ping each way, each pair's first), and netd's RSS there.
pub fn attach_only(g: &mut Guard, tool: &str, r: &mut Results) -> Result<()> {
    let made = containers_up_to(g, tool, r, 1, &ATTACH_SIZES)?;
    let names: Vec<String> = made.iter().map(|i| format!("c{i}")).collect();
    let mut answered = 0;
    for k in 0..RESOLVE_PAIRS {
        // Spread over the range, across the bridge's ports and the routed ones.
        let a = &names[(k * 7919) % names.len()];
        let b = &names[(k * 104_729 + names.len() / 2) % names.len()];
        let ip = inspect_ip(g, b)?;
        let ping = [
            "exec", a, "--", "busybox", "ping", "-c", "1", "-W", "2", &ip,
        ];
        if g.run(&mut g.netd_cli(&ping), T).is_ok_and(|o| o.success()) {
            answered += 1;
        }
    }
    r.scalar(
        &format!(
            "address resolution at {} containers: pairs answered at the first ping (of {RESOLVE_PAIRS})",
            ATTACH_SIZES[1]
        ),
        f64::from(answered),
        "pairs",
    );
    memory(g, r, "4,000 containers, 3 published ports");
    Ok(())
}

fn inspect_ip(g: &Guard, name: &str) -> Result<String> {
    let out = g.must(&mut g.netd_cli(&["container", "inspect", name]), T)?;
    let v: Value = serde_json::from_str(&out).context("container inspect JSON")?;
    v["networks"]["bridge"]["ip_address"]
        .as_str()
        .map(String::from)
        .with_context(|| format!("{name} has no address: {v}"))
}

/// Containers `cN` on the default bridge from `count` (those already there) up to each of
/// `sizes`, and at each the time to start one more (REPS times); returns the numbers made.
fn containers_up_to(
    g: &Guard,
    tool: &str,
    r: &mut Results,
    mut count: usize,
    sizes: &[usize],
) -> Result<Vec<usize>> {
    let mut made = vec![];
    for &n in sizes {
        super::check_interrupt()?;
        println!("bench: scale: creating containers up to {n}");
        while count < n {
            let name = format!("c{count}");
            g.must(&mut g.netd_cli(&["container", "create", &name]), T)?;
            g.must(&mut g.netd_cli(&["container", "start", &name]), T)?;
            made.push(count);
            count += 1;
            if count.is_multiple_of(100) {
                println!("bench: scale: {count} containers");
            }
        }
        // The datapath still works at this size (a broadcast on a bridge of this many ports
        // would not be answered).
        let e = variants::remote_endpoints()
            .into_iter()
            .find(|e| e.variant == "netd")
            .context("netd endpoint")?;
        measure::probe(g, tool, &e)?;
        let k = key(format!("containers.start.{n}"));
        let title = format!("Attach one more container with {n} (container start)");
        for i in 0..REPS {
            let name = format!("more{n}x{i}");
            g.must(&mut g.netd_cli(&["container", "create", &name]), T)?;
            let t0 = Instant::now();
            let v = g
                .api(json!({"op": "container_start", "name": name}))
                .map(|_| t0.elapsed().as_secs_f64() * 1e3);
            r.record(k, &title, "ms", false, "netd (socket request)", v);
            count += 1;
        }
    }
    Ok(made)
}

/// netd's RSS, its BPF maps' memory and (once) docker-proxy's RSS per port, labelled.
pub fn memory(g: &Guard, r: &mut Results, label: &str) {
    if let Some(kib) = g.daemon_pid().and_then(rss_kib) {
        r.scalar(&format!("netd RSS ({label})"), kib / 1024.0, "MiB");
    }
    match bpf_map_bytes(g.bpffs()) {
        Ok((maps, bytes)) => r.scalar(
            &format!("BPF map memory, {maps} maps pinned by netd ({label})"),
            bytes / (1024.0 * 1024.0),
            "MiB",
        ),
        Err(e) => r.notes.push(format!("BPF map memory: {e:#}")),
    }
    if r.scalar_value("docker-proxy RSS per published port")
        .is_none()
    {
        let proxies = docker_proxy_pids();
        let rss: Vec<f64> = proxies.iter().filter_map(|&p| rss_kib(p)).collect();
        if let Some(m) = median(&rss) {
            r.scalar("docker-proxy RSS per published port", m / 1024.0, "MiB");
        }
    }
}

pub fn rss_kib(pid: u32) -> Option<f64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// docker-proxy processes in the `dock` host namespace.
fn docker_proxy_pids() -> Vec<u32> {
    use std::os::unix::fs::MetadataExt as _;
    let id = |p: &Path| fs::metadata(p).ok().map(|m| (m.dev(), m.ino()));
    let Some(dock) = id(&Path::new("/run/netns").join(ns("dock", "h"))) else {
        return Vec::new();
    };
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| c.trim() == "docker-proxy")
                && id(Path::new(&format!("/proc/{pid}/ns/net"))) == Some(dock)
        })
        .collect()
}

/// (maps, memlock bytes) of the distinct maps pinned under `dir`.
fn bpf_map_bytes(dir: &str) -> Result<(usize, f64)> {
    let mut seen = HashSet::new();
    let mut total = 0.0;
    let mut stack = vec![std::path::PathBuf::from(dir)];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d).with_context(|| format!("read {}", d.display()))? {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let mut cmd = util::command("bpftool");
            cmd.args(["-j", "map", "show", "pinned"]).arg(&path);
            let Ok(out) = util::output(&mut cmd, "bpftool") else {
                continue; // a program or link
            };
            let Ok(v) = serde_json::from_str::<Value>(&out) else {
                continue;
            };
            if let Some(id) = v["id"].as_u64() {
                if seen.insert(id) {
                    total += v["bytes_memlock"].as_f64().unwrap_or(0.0);
                }
            }
        }
    }
    Ok((seen.len(), total))
}
