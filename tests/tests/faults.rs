//! Fault injection: the daemon is killed with SIGKILL at random moments while it serves
//! container create/start/stop/rm, network connect, publish/unpublish and network create/rm
//! (bridge, macvlan and overlay networks; the daemon shares an etcd on its underlay)
//! (random requests and delays from a fixed seed), then restarted. After every restart
//! `netd check` must find nothing, and, looked at from outside the daemon, no device, namespace
//! file or map entry may be left that no network or running container explains, and every
//! running container must answer at its address; every so often (and at the end) containers
//! that were running all along must still reach each other and their published port must
//! answer from outside.
use std::{
    collections::{BTreeMap, BTreeSet},
    process::{Command, Stdio},
    thread::sleep,
    time::{Duration, Instant},
};

use aya::maps::{HashMap, Map, MapData};
use netd_common::{Backend, Endpoint, PortKey};
use netd_tests::{fabric::Fabric, kernel::Attached, netd_bin, Host, Launch, UPLINK_IP};
use serde_json::Value;

/// The seed of requests and delays (`NETD_FAULT_SEED` overrides, to look further).
fn seed() -> u64 {
    std::env::var("NETD_FAULT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x6e65_7464_0c0c_0012)
}
/// Kills per run (`NETD_FAULT_KILLS` overrides, for a quick look).
fn kills() -> u32 {
    std::env::var("NETD_FAULT_KILLS")
        .ok()
        .and_then(|k| k.parse().ok())
        .unwrap_or(200)
}
/// Kills are spread over this much time after a request is sent (its client starting, the
/// request itself, the reply): half of them over the short window (most requests take a few
/// milliseconds in a debug build), half over the long one (a container start with two networks).
const SHORT_WINDOW: Duration = Duration::from_millis(10);
const LONG_WINDOW: Duration = Duration::from_millis(40);
/// How often the datapath is checked end to end.
const DATAPATH_EVERY: u32 = 50;
/// The networks the loop creates and removes: two bridges, and two macvlan networks, one on
/// `eth1` and one on the 802.1q sub-interface `eth1.7`, which netd makes with its network (on a
/// kernel without 802.1q, from a veth pair and two programs) and removes with it.
const NETWORKS: [(&str, &[&str]); 5] = [
    ("f1", &[]),
    ("f2", &[]),
    (
        "m1",
        &[
            "-d",
            "macvlan",
            "--subnet",
            "172.31.1.0/24",
            "-o",
            "parent=eth1",
        ],
    ),
    (
        "m2",
        &[
            "-d",
            "macvlan",
            "--subnet",
            "172.31.2.0/24",
            "-o",
            "parent=eth1.7",
        ],
    ),
    ("o1", &["-d", "overlay", "--subnet", "10.0.31.0/24"]),
];

fn is_overlay(network: &str) -> bool {
    NETWORKS
        .iter()
        .any(|(n, args)| *n == network && args.contains(&"overlay"))
}

fn is_macvlan(network: &str) -> bool {
    NETWORKS
        .iter()
        .any(|(n, args)| *n == network && args.contains(&"macvlan"))
}
const CONTAINERS: [&str; 4] = ["c0", "c1", "c2", "c3"];
/// The port the long-lived probe publishes.
const PROBE_PORT: u16 = 8999;

/// xorshift64*: small, and the same sequence from the same seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// What the loop knows besides what the daemon reports: the host ports it asked for.
struct Plan {
    next_port: u16,
    published: BTreeMap<String, Vec<String>>,
}

impl Plan {
    fn port(&mut self) -> String {
        self.next_port += 1;
        format!("{}:80", self.next_port)
    }

    /// Every request that makes sense now, as client arguments.
    fn requests(&mut self, networks: &[Value], containers: &[Value]) -> Vec<Vec<String>> {
        let mut out: Vec<Vec<String>> = vec![];
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let net = |name: &str| networks.iter().find(|n| n["name"] == name);
        for (n, args) in NETWORKS {
            match net(n) {
                None => {
                    let mut create = s(&["network", "create"]);
                    create.extend(s(args));
                    create.push(n.to_string());
                    out.push(create);
                }
                Some(v) if v["containers"].as_object().is_none_or(|c| c.is_empty()) => {
                    out.push(s(&["network", "rm", n]))
                }
                Some(_) => {}
            }
        }
        let present: Vec<&str> = std::iter::once("bridge")
            .chain(
                NETWORKS
                    .map(|(n, _)| n)
                    .into_iter()
                    .filter(|n| net(n).is_some()),
            )
            .collect();
        for (i, c) in CONTAINERS.iter().enumerate() {
            let Some(v) = containers.iter().find(|v| v["name"] == *c) else {
                let network = present[i % present.len()];
                let mut create = s(&["container", "create", "--network", network]);
                if i % 2 == 0 && !is_macvlan(network) {
                    let spec = self.port();
                    self.published
                        .entry(c.to_string())
                        .or_default()
                        .push(spec.clone());
                    create.extend(["-p".to_string(), spec]);
                }
                create.push(c.to_string());
                out.push(create);
                continue;
            };
            match v["status"].as_str() {
                Some("running") => out.push(s(&["container", "stop", c])),
                _ => out.push(s(&["container", "start", c])),
            }
            out.push(s(&["container", "rm", "-f", c]));
            let attached = v["networks"].as_object().cloned().unwrap_or_default();
            for n in &present {
                if !attached.contains_key(*n) {
                    out.push(s(&["network", "connect", n, c]));
                }
            }
            out.push(vec![
                "container".into(),
                "publish".into(),
                c.to_string(),
                format!("{}:80", self.next_port + 1),
            ]);
            if let Some(spec) = self.published.get(*c).and_then(|p| p.last()) {
                out.push(s(&["container", "unpublish", c, spec]));
            }
        }
        out
    }
}

/// Sends `args` to the daemon, kills it `delay` later, waits for the client and restarts the
/// daemon; returns how long the kill and restart took and whether the request had been answered
/// before the kill.
fn kill_during(host: &mut Host, args: &[String], delay: Duration) -> (Duration, bool) {
    let client = Command::new(netd_bin())
        .arg("--socket")
        .arg(host.socket())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the client");
    sleep(delay);
    let started = Instant::now();
    host.stop_daemon("KILL");
    let out = client.wait_with_output().expect("client");
    host.start_daemon();
    // A reply, success or refusal, came before the kill; anything else was cut short.
    let answered = out.status.success() || !String::from_utf8_lossy(&out.stderr).contains("daemon");
    (started.elapsed(), answered)
}

/// A pinned hash map of the host's daemon, read directly.
fn pinned<K: aya::Pod + Ord, V: aya::Pod>(host: &Host, name: &str) -> BTreeMap<K, V> {
    let data = MapData::from_pin(host.bpffs.join("maps").join(name)).expect("pinned map");
    let map: HashMap<MapData, K, V> = Map::HashMap(data).try_into().expect("hash map");
    map.iter().map(|r| r.expect("map entry")).collect()
}

/// Map entries (published ports, endpoints) that the running containers do not explain.
fn map_leaks(host: &Host, containers: &[Value], attached: &[Attached]) -> Vec<String> {
    let mut leaks = vec![];
    let devices: BTreeMap<u32, String> = host
        .kernel_devices()
        .into_iter()
        .map(|d| (d.index, d.name))
        .collect();
    let mut wanted = BTreeSet::new();
    for c in containers.iter().filter(|c| c["status"] == "running") {
        for p in c["ports"].as_array().into_iter().flatten() {
            // `0.0.0.0:8080:80/tcp`
            let p = p.as_str().unwrap_or("");
            let mut parts = p.split(':');
            let (ip, port) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            let proto = p.rsplit('/').next().unwrap_or("");
            wanted.insert(format!("{proto} {ip}:{port}"));
        }
    }
    let ports: BTreeMap<PortKey, Backend> = pinned(host, "NETD_PORTS");
    let mut found = BTreeSet::new();
    for k in ports.keys() {
        let proto = if k.proto == 6 { "tcp" } else { "udp" };
        let port = u16::from_be(k.port_be);
        found.insert(format!(
            "{proto} {}:{port}",
            std::net::Ipv4Addr::from(k.addr)
        ));
    }
    for p in found.difference(&wanted) {
        leaks.push(format!(
            "NETD_PORTS holds {p}, which no running container publishes"
        ));
    }
    for p in wanted.difference(&found) {
        leaks.push(format!(
            "NETD_PORTS lacks {p}, which a running container publishes"
        ));
    }
    let endpoints: BTreeMap<u32, Endpoint> = pinned(host, "NETD_ENDPOINTS");
    for (index, ep) in &endpoints {
        let name = devices.get(index).cloned().unwrap_or_default();
        let ip = std::net::Ipv4Addr::from(ep.addr).to_string();
        if !attached.iter().any(|a| a.veth == name && a.ip == ip) {
            leaks.push(format!(
                "NETD_ENDPOINTS holds {ip} at ifindex {index} ({name:?}), which no running container has"
            ));
        }
    }
    if endpoints.len() != attached.len() {
        leaks.push(format!(
            "NETD_ENDPOINTS has {} entries for {} running endpoints",
            endpoints.len(),
            attached.len()
        ));
    }
    leaks
}

/// Running endpoints that do not answer a ping from the host namespace (over their gateway).
fn unreachable(host: &Host, attached: &[Attached]) -> Vec<String> {
    attached
        .iter()
        .filter(|a| {
            !(0..3).any(|_| {
                host.on_host(&["busybox", "ping", "-c", "1", "-W", "1", &a.ip])
                    .ok()
            })
        })
        .map(|a| {
            format!(
                "{} on {} at {} does not answer",
                a.container, a.network, a.ip
            )
        })
        .collect()
}

/// Everything wrong after a restart, one line each: what `netd check` says, then what the
/// kernel shows from outside.
fn findings(host: &Host) -> Vec<String> {
    let mut found = vec![];
    let check = host.netd(&["check"]);
    if !check.ok() {
        found.extend(check.stdout.lines().map(|l| format!("netd check: {l}")));
        if check.stdout.trim().is_empty() {
            found.push(format!("netd check failed: {}", check.stderr.trim()));
        }
    } else if !check.stdout.starts_with("state and kernel agree: ") {
        found.push(format!("netd check said {:?}", check.stdout));
    }
    found.extend(host.leaks());
    let (_, containers) = host.listed();
    let attached = Host::attached(&containers);
    found.extend(map_leaks(host, &containers, &attached));
    found.extend(unreachable(host, &attached));
    found
}

/// The answer of the probe's published port, from the outside namespace.
fn from_outside(host: &Host) -> String {
    host.outside(&[
        "socat",
        "-T2",
        "-",
        &format!("TCP:{UPLINK_IP}:{PROBE_PORT},connect-timeout=2"),
    ])
    .stdout
    .trim()
    .to_string()
}

/// Containers that were running all along reach each other, and the published port answers.
fn datapath_works(host: &Host) -> Vec<String> {
    let mut broken = vec![];
    let b = host.ip("probe-b", "bridge");
    if !host.reaches("probe-a", &b) {
        broken.push(format!("probe-a does not reach probe-b at {b}"));
    }
    let answer = (0..20)
        .map(|_| from_outside(host))
        .find(|a| a == "probe")
        .unwrap_or_default();
    if answer != "probe" {
        broken.push(format!(
            "{UPLINK_IP}:{PROBE_PORT} does not answer from outside: {:?}",
            from_outside(host)
        ));
    }
    broken
}

#[test]
fn the_daemon_killed_at_random_moments_leaves_nothing_half_made() {
    // Started as most users start a program in a namespace: its mounts must outlive each kill.
    // On an underlay with etcd, for the overlay network; its `eth1` is the macvlan networks'
    // parent too.
    let Some(mut fabric) = Fabric::with_etcd() else {
        return;
    };
    let mut host = fabric.cluster_host_with(Launch::IpNetnsExec, &[]);
    host.container("probe-a", &[]);
    host.container("probe-b", &["-p", &format!("{PROBE_PORT}:9000")]);
    host.ok(&[
        "exec",
        "-d",
        "probe-b",
        "--",
        "socat",
        "TCP-LISTEN:9000,fork,reuseaddr",
        "SYSTEM:echo probe",
    ]);
    let mut rng = Rng(seed());
    let mut plan = Plan {
        next_port: 20000,
        published: BTreeMap::new(),
    };
    // Finding -> the request during which it was first seen.
    let mut leaks: BTreeMap<String, String> = BTreeMap::new();
    let mut by_kind: BTreeMap<String, u32> = BTreeMap::new();
    let mut restart = Duration::ZERO;
    let began = Instant::now();
    let mut answered = 0;
    let note = |leaks: &mut BTreeMap<String, String>, found: Vec<String>, during: &str| {
        for f in found {
            leaks.entry(f).or_insert_with(|| during.to_string());
        }
    };
    let total = kills();
    for kill in 1..=total {
        let (networks, containers) = host.listed();
        let requests = plan.requests(&networks, &containers);
        // Kinds of request by weight, whatever the number of their variants.
        let mut kinds: BTreeMap<String, Vec<&Vec<String>>> = BTreeMap::new();
        for r in &requests {
            kinds.entry(r[..2].join(" ")).or_default().push(r);
        }
        // Starts, stops and connects, which do the most, more often.
        let kinds: Vec<Vec<&Vec<String>>> = kinds
            .into_iter()
            .flat_map(|(kind, variants)| {
                let weight = match kind.as_str() {
                    "container start" => 3,
                    "container stop" | "network connect" => 2,
                    _ => 1,
                };
                std::iter::repeat_n(variants, weight)
            })
            .collect();
        let kind = rng.pick(&kinds);
        let args = rng.pick(kind).to_vec();
        let window = *rng.pick(&[SHORT_WINDOW, LONG_WINDOW]);
        let delay = Duration::from_micros(rng.below(window.as_micros() as usize) as u64);
        let on_macvlan = args.iter().any(|a| a == "macvlan" || is_macvlan(a));
        let on_overlay = args.iter().any(|a| a == "overlay" || is_overlay(a));
        let driver = match (on_macvlan, on_overlay) {
            (true, _) => " (macvlan)",
            (_, true) => " (overlay)",
            _ => "",
        };
        let kind = args[..2].join(" ") + driver;
        *by_kind.entry(kind).or_default() += 1;
        let (took, done) = kill_during(&mut host, &args, delay);
        restart += took;
        answered += u32::from(done);
        let during = format!("kill {kill} {delay:?} into `{}`", args.join(" "));
        note(&mut leaks, findings(&host), &during);
        if kill % DATAPATH_EVERY == 0 || kill == total {
            note(&mut leaks, datapath_works(&host), &during);
        }
    }
    let took = began.elapsed();
    println!(
        "{total} kills in {took:.1?} ({:.0?} per cycle, of which kill and restart {:.0?}); requests: {by_kind:?}",
        took / total,
        restart / total
    );
    println!(
        "requests answered before their kill: {answered}, cut short: {}",
        total - answered
    );
    println!("leaks found: {}", leaks.len());
    for (leak, during) in &leaks {
        println!("  {leak}  (first after {during})");
    }
    assert!(leaks.is_empty(), "{} leaks found", leaks.len());
}

#[test]
fn devices_created_but_not_yet_tagged_when_the_daemon_died_are_removed_at_the_next_start() {
    let Some(mut host) = Host::start() else {
        return;
    };
    host.container("keep", &[]);
    host.stop_daemon("KILL");
    // What a kill between creating a device (in netd's group) and tagging it leaves: a bridge
    // of a network never recorded, and a container's host end on the default bridge.
    let group = netd::netlink::DEVICE_GROUP.to_string();
    for cmd in [
        format!("ip link add br-0123456789ab group {group} type bridge"),
        format!("ip link add vethhalf0 group {group} master netd0 type veth peer name vethhalf1"),
    ] {
        let out = host.on_host(&["sh", "-c", &cmd]);
        assert!(out.ok(), "{cmd}: {}", out.stderr);
    }
    host.start_daemon();
    let names: Vec<String> = host.kernel_devices().into_iter().map(|d| d.name).collect();
    assert!(
        !names
            .iter()
            .any(|n| n == "br-0123456789ab" || n.starts_with("vethhalf")),
        "{names:?}"
    );
    let check = host.netd(&["check"]);
    assert!(check.ok(), "{}", check.stdout);
    assert!(host.leaks().is_empty(), "{:?}", host.leaks());
}

/// The saved copy of container `name`, from the journal (its last line naming it) or its file.
fn saved_container(host: &Host, name: &str) -> Value {
    let state = host.dir.join("state");
    let journal = std::fs::read_to_string(state.join("journal.jsonl")).unwrap_or_default();
    journal
        .lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find_map(|e| e["containers"].get(name).cloned())
        .unwrap_or_else(|| {
            let file = state.join("containers").join(format!("{name}.json"));
            serde_json::from_str(&std::fs::read_to_string(file).expect("saved container"))
                .expect("container JSON")
        })
}

#[test]
fn a_stop_or_rm_recorded_before_a_kill_is_finished_at_the_next_start() {
    let Some(mut host) = Host::start() else {
        return;
    };
    host.container("web", &["-p", "8080:80"]);
    let pid = host.ok(&["exec", "-d", "web", "--", "busybox", "sleep", "1000"]);
    let pid = pid.trim().to_string();
    host.ok(&["container", "create", "gone"]);
    host.ok(&["container", "start", "gone"]);
    host.stop_daemon("KILL");
    // What the journal holds when a kill comes right after a stop of web and a removal of gone
    // were recorded: web stopped, gone removed, and none of their teardown done.
    let mut web = saved_container(&host, "web");
    web["status"] = "exited".into();
    web["endpoints"] = Value::Array(vec![]);
    web["ports"] = Value::Array(vec![]);
    let line = serde_json::json!({"containers": {"web": web, "gone": null}, "networks": {}});
    let journal = host.dir.join("state/journal.jsonl");
    let mut text = std::fs::read_to_string(&journal).unwrap_or_default();
    text.push_str(&format!("{line}\n"));
    std::fs::write(&journal, text).unwrap();
    host.start_daemon();
    assert_eq!(host.inspect("web")["status"], "exited");
    assert!(host.netd(&["container", "inspect", "gone"]).status != 0);
    let check = host.netd(&["check"]);
    assert!(check.ok(), "{}", check.stdout);
    assert!(host.leaks().is_empty(), "{:?}", host.leaks());
    // Gone, or a zombie its parent has not reaped yet.
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let state = stat.rsplit(") ").next().unwrap_or("").chars().next();
    assert!(
        matches!(state, None | Some('Z' | 'X')),
        "the stopped container's process {pid} was ended: {stat}"
    );
    assert!(!host.dir.join("run/containers/gone").exists());
}
