//! Overlay networks (issue 14): netd's eBPF VXLAN tunnel between containers on two hosts,
//! against the underlay it runs on and against a kernel VXLAN device on a Linux bridge wired
//! the way Docker's classic overlay driver and flannel's VXLAN backend wire it; and the time from
//! `netd run` on one host until a container on another host resolves the new name and gets an
//! answer from it.
//!
//! The world: a fabric namespace (`nbench-fab-h`, a bridge as one switch) with etcd on it
//! ([`netd_world::etcd`], at 10.98.0.100), three cluster hosts `nbench-ov1-h` .. `nbench-ov3-h`
//! (each with its uplink pair and `eth1` on the fabric at 10.98.0.11 .. .13, a netd daemon with
//! `--cluster-store` and `--advertise-addr`, its own dirs, bpffs dir and cgroup), the overlay
//! network `ov` (10.0.9.0/24) with container `oa` on host 1 and `ob` on host 2, and two kernel
//! VXLAN hosts `nbench-kv1-h`, `nbench-kv2-h` on the same fabric (10.98.0.21, .22), each with a
//! bridge `br0`, a VXLAN device `vx42` (VNI 42, UDP 4789, no learning) on it and a veth to a
//! "container" namespace `nbench-kvN-s` (10.0.42.N, MTU 1450), static FDB entries towards the
//! other host's container MAC and static neighbour entries in the containers, as Docker's
//! overlay driver programs them (no eBPF, no iptables); and two host-gw hosts `nbench-rt1-h`,
//! `nbench-rt2-h` (10.98.0.31, .32), each routing a container behind a veth (10.0.43.2,
//! 10.0.44.2) and the other's subnet via the other's underlay address, with no tunnel: what the
//! containers' veths cost by themselves. Where the machine has `br_netfilter`
//! loaded, the fabric's and the kernel hosts' bridges are told not to call netfilter (a
//! per-namespace sysctl), so that no path pays hooks that have no rule.
//!
//! Measured in paired rounds whose order alternates, as the other phases: iperf3 and sockperf
//! from `oa` to `ob` (netd), from host 1's `eth1` address to host 2's (underlay), between the
//! kernel VXLAN containers and between the host-gw containers. Then the create-and-resolve rounds: the `resolve` helper in `oa`
//! asks the embedded DNS (127.0.0.11) for a name that does not exist yet, every few
//! milliseconds, and connects to the address it gets; `netd run -d --network ov NAME` on host 3
//! starts a container of that name with the `serve` helper in it. The time is from just before
//! `netd run` to the first answer of the server through the tunnel.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use anyhow::{bail, Context as _, Result};
use serde_json::Value;

use super::{
    check_interrupt,
    measure::{self, Endpoint, Launcher, DIRECT},
    split, variants,
    world::{self, ns, Guard},
    Results,
};

pub const TPUT: &str = "overlay.tput";
pub const CPU: &str = "overlay.cpu";
pub const P50: &str = "overlay.p50";
pub const P99: &str = "overlay.p99";
pub const CREATE: &str = "overlay.create";
/// The variants: netd's overlay, the underlay between the hosts, the kernel VXLAN + bridge.
pub const NETD: &str = "netd overlay";
pub const UNDERLAY: &str = "underlay";
pub const KERNEL: &str = "kernel VXLAN+bridge";
/// Containers behind veths on two hosts, routed by the hosts with no tunnel (flannel's host-gw):
/// what the containers' veths cost by themselves, for comparison.
pub const HOST_GW: &str = "veth + routing (host-gw)";
/// The create-and-resolve series: until the name answers on host 1, and `netd run` itself.
pub const RESOLVED: &str = "netd run to answer";
pub const RUN_CMD: &str = "netd run (command)";

const T: Duration = Duration::from_secs(30);
const SUBNET: &str = "10.0.9.0/24";
const NETWORK: &str = "ov";
const HOSTS: usize = 3;
/// The kernel VXLAN world: VNI, UDP port, device names, the hosts' fabric numbers.
const VNI: &str = "42";
const VXLAN_PORT: &str = "4789";
const VXLAN_DEV: &str = "vx42";
const KERNEL_BRIDGE: &str = "br0";
const KERNEL_FABRIC: [usize; 2] = [11, 12];
/// The host-gw hosts' fabric numbers.
const ROUTED_FABRIC: [usize; 2] = [21, 22];
const OVERLAY_MTU: &str = "1450";
/// How long one create-and-resolve round may take before it counts as failed.
const RESOLVE_SECS: u32 = 15;

/// The cluster's containers: where the client runs and where its servers answer.
struct Cluster {
    client_netns: PathBuf,
    server_ip: String,
}

/// Builds the worlds, measures, and stops the cluster's daemons.
pub fn run(g: &mut Guard, netd: &Path, tool: &str, r: &mut Results) -> Result<()> {
    let started = r.started;
    let cluster = cluster(g, netd, tool)?;
    kernel_vxlan(g, tool)?;
    host_gw(g, tool)?;
    underlay_servers(g, tool)?;
    println!(
        "bench: overlay worlds built ({:.0?} so far)",
        started.elapsed()
    );
    let endpoints = endpoints(&cluster);
    for e in &endpoints {
        measure::probe(g, tool, e)?;
    }
    let p = r.plan;
    for round in 0..p.rounds {
        check_interrupt()?;
        println!("bench: overlay round {} of {}", round + 1, p.rounds);
        measure_round(g, r, &endpoints, round)?;
    }
    let rounds = if r.quick { 5 } else { 20 };
    let before = unknown_endpoint_drops(g, 2);
    for round in 0..rounds {
        check_interrupt()?;
        create_and_resolve(g, tool, r, &cluster, round);
    }
    if let (Some(a), Some(b)) = (before, unknown_endpoint_drops(g, 2)) {
        r.scalar(UNKNOWN_DROPS, b.saturating_sub(a) as f64, "packets");
    }
    g.stop_nodes()
}

/// The fabric, etcd, three cluster hosts, the overlay network, `oa` on host 1 and `ob` with the
/// three servers on host 2.
fn cluster(g: &mut Guard, netd: &Path, tool: &str) -> Result<Cluster> {
    let fabric = ns("fab", "h");
    g.own_ns(&fabric);
    netd_world::fabric(&fabric).context("the overlay fabric")?;
    no_bridge_netfilter(&fabric)?;
    let etcd_ns = ns("etcd", "h");
    g.own_ns(&etcd_ns);
    let etcd = netd_world::etcd(&fabric, &etcd_ns, &g.dir.join("etcd")).context("etcd")?;
    g.adopt("etcd", etcd);
    let store = netd_world::cluster_store();
    for i in 1..=HOSTS {
        let name = format!("ov{i}");
        g.uplink_pair(&name)?;
        let host = ns(&name, "h");
        let addr = netd_world::fabric_ip(i);
        netd_world::plug(&fabric, &name, &host).context("a port on the fabric")?;
        netd_world::address_underlay(&host, &addr).context("an underlay address")?;
        let flags = ["--cluster-store", &store, "--advertise-addr", &addr];
        g.start_node(netd, &name, &host, &flags)?;
    }
    let create = [
        "network", "create", "-d", "overlay", "--subnet", SUBNET, NETWORK,
    ];
    g.must(&mut g.node(0).cli(&create), T)?;
    for i in 1..HOSTS {
        let node = g.node(i);
        netd_world::wait_until(
            &format!("{} knows network {NETWORK}", node.ns),
            Duration::from_secs(15),
            || {
                g.run(&mut node.cli(&["network", "inspect", NETWORK]), T)
                    .is_ok_and(|o| o.success())
            },
        )?;
    }
    g.must(&mut g.node(0).cli(&["run", "--network", NETWORK, "oa"]), T)?;
    g.must(&mut g.node(1).cli(&["run", "--network", NETWORK, "ob"]), T)?;
    for server in variants::servers(tool) {
        let mut args = vec!["exec", "-d", "ob", "--"];
        args.extend(server.iter().map(String::as_str));
        g.must(&mut g.node(1).cli(&args), T)?;
    }
    let oa = inspect(g, 0, "oa")?;
    let ob = inspect(g, 1, "ob")?;
    let server_ip = ob["networks"][NETWORK]["ip_address"]
        .as_str()
        .with_context(|| format!("ob has no address on {NETWORK}: {ob}"))?
        .to_string();
    let client_netns = oa["netns"]
        .as_str()
        .map(PathBuf::from)
        .unwrap_or_else(|| g.node(0).run.join("netns/oa"));
    Ok(Cluster {
        client_netns,
        server_ip,
    })
}

fn inspect(g: &Guard, node: usize, name: &str) -> Result<Value> {
    let out = g.must(&mut g.node(node).cli(&["container", "inspect", name]), T)?;
    serde_json::from_str(&out).context("container inspect JSON")
}

/// A kernel VXLAN host's namespaces, underlay address, container address and MAC.
struct KernelHost {
    /// Its port on the fabric.
    port: String,
    host: String,
    container: String,
    underlay: String,
    ip: String,
    mac: String,
}

fn kernel_host(n: usize) -> KernelHost {
    KernelHost {
        port: format!("kv{n}"),
        host: ns(&format!("kv{n}"), "h"),
        container: ns(&format!("kv{n}"), "s"),
        underlay: netd_world::fabric_ip(KERNEL_FABRIC[n - 1]),
        ip: format!("10.0.42.{n}"),
        mac: format!("02:42:0a:00:2a:{n:02x}"),
    }
}

/// Two kernel VXLAN hosts on the fabric, each a bridge with the VXLAN device and a veth to its
/// container on it, the other side's MAC in the FDB (towards the other host) and in the
/// container's neighbour table; the servers in the second container.
fn kernel_vxlan(g: &mut Guard, tool: &str) -> Result<()> {
    let fabric = ns("fab", "h");
    let hosts = [kernel_host(1), kernel_host(2)];
    for (me, peer) in [(&hosts[0], &hosts[1]), (&hosts[1], &hosts[0])] {
        g.add_ns(&me.host)?;
        g.add_ns(&me.container)?;
        no_bridge_netfilter(&me.host)?;
        netd_world::plug(&fabric, &me.port, &me.host).context("a port on the fabric")?;
        netd_world::address_underlay(&me.host, &me.underlay).context("an underlay address")?;
        let (h, c) = (me.host.as_str(), me.container.as_str());
        let link = |args: &[&str]| {
            let mut all = vec!["-n", h, "link"];
            all.extend_from_slice(args);
            world::ip(&all)
        };
        link(&["add", KERNEL_BRIDGE, "type", "bridge"])?;
        link(&[
            "add",
            VXLAN_DEV,
            "type",
            "vxlan",
            "id",
            VNI,
            "dstport",
            VXLAN_PORT,
            "local",
            &me.underlay,
            "dev",
            netd_world::UNDERLAY_PORT,
            "nolearning",
        ])?;
        link(&[
            "set",
            VXLAN_DEV,
            "mtu",
            OVERLAY_MTU,
            "master",
            KERNEL_BRIDGE,
            "up",
        ])?;
        link(&[
            "add", "veth0", "type", "veth", "peer", "name", "eth0", "netns", c,
        ])?;
        link(&[
            "set",
            "veth0",
            "mtu",
            OVERLAY_MTU,
            "master",
            KERNEL_BRIDGE,
            "up",
        ])?;
        link(&["set", KERNEL_BRIDGE, "up"])?;
        let mut fdb = util_bridge(&[
            "-n",
            h,
            "fdb",
            "append",
            &peer.mac,
            "dev",
            VXLAN_DEV,
            "dst",
            &peer.underlay,
            "self",
            "permanent",
        ]);
        g.must(&mut fdb, T)?;
        let cidr = format!("{}/24", me.ip);
        world::ip(&[
            "-n",
            c,
            "link",
            "set",
            "eth0",
            "address",
            &me.mac,
            "mtu",
            OVERLAY_MTU,
            "up",
        ])?;
        world::ip(&["-n", c, "link", "set", "lo", "up"])?;
        world::ip(&["-n", c, "addr", "add", &cidr, "dev", "eth0"])?;
        world::ip(&[
            "-n",
            c,
            "neigh",
            "add",
            &peer.ip,
            "lladdr",
            &peer.mac,
            "dev",
            "eth0",
            "nud",
            "permanent",
        ])?;
    }
    start_servers(g, "kernel vxlan", &hosts[1].container, tool)
}

/// A host-gw host's namespaces, underlay address, container subnet, address and gateway.
struct RoutedHost {
    port: String,
    host: String,
    container: String,
    underlay: String,
    subnet: String,
    ip: String,
    gateway: String,
}

fn routed_host(n: usize) -> RoutedHost {
    let net = 42 + n;
    RoutedHost {
        port: format!("rt{n}"),
        host: ns(&format!("rt{n}"), "h"),
        container: ns(&format!("rt{n}"), "s"),
        underlay: netd_world::fabric_ip(ROUTED_FABRIC[n - 1]),
        subnet: format!("10.0.{net}.0/24"),
        ip: format!("10.0.{net}.2"),
        gateway: format!("10.0.{net}.1"),
    }
}

/// Two hosts on the fabric, each routing a container subnet behind a veth and the other
/// host's subnet via that host's underlay address, as flannel's host-gw backend does: the
/// underlay plus the containers' veths and the hosts' forwarding, no tunnel, no eBPF, no
/// iptables. The servers in the second container.
fn host_gw(g: &mut Guard, tool: &str) -> Result<()> {
    let fabric = ns("fab", "h");
    let hosts = [routed_host(1), routed_host(2)];
    for (me, peer) in [(&hosts[0], &hosts[1]), (&hosts[1], &hosts[0])] {
        g.add_ns(&me.host)?;
        g.add_ns(&me.container)?;
        netd_world::plug(&fabric, &me.port, &me.host).context("a port on the fabric")?;
        netd_world::address_underlay(&me.host, &me.underlay).context("an underlay address")?;
        world::sysctl(&me.host, "net.ipv4.ip_forward", "1")?;
        let (h, c) = (me.host.as_str(), me.container.as_str());
        let gw = format!("{}/24", me.gateway);
        let cidr = format!("{}/24", me.ip);
        world::ip(&[
            "-n", h, "link", "add", "veth0", "type", "veth", "peer", "name", "eth0", "netns", c,
        ])?;
        world::ip(&["-n", h, "addr", "add", &gw, "dev", "veth0"])?;
        world::ip(&["-n", h, "link", "set", "veth0", "up"])?;
        world::ip(&["-n", h, "route", "add", &peer.subnet, "via", &peer.underlay])?;
        world::ip(&["-n", c, "link", "set", "lo", "up"])?;
        world::ip(&["-n", c, "link", "set", "eth0", "up"])?;
        world::ip(&["-n", c, "addr", "add", &cidr, "dev", "eth0"])?;
        world::ip(&["-n", c, "route", "add", "default", "via", &me.gateway])?;
    }
    start_servers(g, "host-gw", &hosts[1].container, tool)
}

/// With `br_netfilter` loaded on the machine (Docker and Kubernetes hosts load it) a Linux bridge
/// runs the netfilter hooks on every bridged frame; these bridges (the fabric, a switch, and the
/// kernel VXLAN hosts', which carry no rule either) do not, in the namespace `n` only.
fn no_bridge_netfilter(n: &str) -> Result<()> {
    let present = world::in_ns(n, &["test", "-e", "/proc/sys/net/bridge"])
        .status()
        .is_ok_and(|s| s.success());
    if !present {
        return Ok(());
    }
    for family in ["iptables", "ip6tables", "arptables"] {
        world::sysctl(n, &format!("net.bridge.bridge-nf-call-{family}"), "0")?;
    }
    Ok(())
}

fn util_bridge(args: &[&str]) -> std::process::Command {
    let mut cmd = crate::util::command("bridge");
    cmd.args(args);
    cmd
}

/// The underlay's servers: in host 2's namespace, on its `eth1` address.
fn underlay_servers(g: &mut Guard, tool: &str) -> Result<()> {
    start_servers(g, "underlay", &ns("ov2", "h"), tool)
}

fn start_servers(g: &mut Guard, what: &str, n: &str, tool: &str) -> Result<()> {
    for (i, server) in variants::servers(tool).into_iter().enumerate() {
        let args: Vec<&str> = server.iter().map(String::as_str).collect();
        g.spawn(&format!("{what} server {i}"), world::in_ns(n, &args))?;
    }
    Ok(())
}

/// The four paths, each client to its servers.
fn endpoints(cluster: &Cluster) -> Vec<Endpoint> {
    vec![
        Endpoint {
            variant: NETD,
            launcher: Launcher::Netns(cluster.client_netns.clone()),
            ip: cluster.server_ip.clone(),
            ports: DIRECT,
        },
        Endpoint {
            variant: UNDERLAY,
            launcher: Launcher::Ns(ns("ov1", "h")),
            ip: netd_world::fabric_ip(2),
            ports: DIRECT,
        },
        Endpoint {
            variant: KERNEL,
            launcher: Launcher::Ns(kernel_host(1).container),
            ip: kernel_host(2).ip,
            ports: DIRECT,
        },
        Endpoint {
            variant: HOST_GW,
            launcher: Launcher::Ns(routed_host(1).container),
            ip: routed_host(2).ip,
            ports: DIRECT,
        },
    ]
}

/// Throughput, then request/response latency over `endpoints`, forwards in even rounds and
/// backwards in odd ones.
fn measure_round(g: &Guard, r: &mut Results, endpoints: &[Endpoint], round: usize) -> Result<()> {
    let mut order: Vec<&Endpoint> = endpoints.iter().collect();
    if round % 2 == 1 {
        order.reverse();
    }
    let p = r.plan;
    let who = "container to container across two hosts";
    for e in &order {
        check_interrupt()?;
        let (tput, cpu) = split(measure::iperf(g, e, p.iperf_secs));
        let title = format!("TCP throughput, {who}");
        r.record(TPUT, &title, "Gbit/s", true, e.variant, tput);
        let title = format!("CPU per Gbit, {who}");
        r.record(CPU, &title, "CPU s/Gbit", false, e.variant, cpu);
    }
    for e in &order {
        check_interrupt()?;
        let (p50, p99) = split(measure::sockperf(g, e, p.sockperf_secs));
        let title = format!("Request/response p50, {who}");
        r.record(P50, &title, "µs", false, e.variant, p50);
        let title = format!("Request/response p99, {who}");
        r.record(P99, &title, "µs", false, e.variant, p99);
    }
    Ok(())
}

/// One create-and-resolve round: `web<round>` on host 3, resolved and answered from `oa` on
/// host 1; records both times (and removes the container after).
fn create_and_resolve(g: &Guard, tool: &str, r: &mut Results, cluster: &Cluster, round: usize) {
    let name = format!("web{round}");
    let title = "Create and resolve across hosts: netd run on host 3 to an answer on host 1";
    match resolve_once(g, tool, cluster, &name) {
        Ok(Resolved {
            answered,
            command,
            connects,
        }) => {
            r.record(CREATE, title, "ms", false, RESOLVED, Ok(answered));
            r.record(CREATE, title, "ms", false, RUN_CMD, Ok(command));
            if answered > SLOW_MS {
                r.notes.push(slow_round(g, &name, answered, connects));
            }
        }
        Err(e) => {
            r.record(CREATE, title, "ms", false, RESOLVED, Err(e));
            r.figure_mut(CREATE, title, "ms", false)
                .push(RUN_CMD, f64::NAN);
        }
    }
    let rm = g.must(&mut g.node(2).cli(&["container", "rm", "-f", &name]), T);
    if let Err(e) = rm {
        r.notes.push(format!("remove {name}: {e:#}"));
    }
}

/// The scalar: what host 3's decap program dropped for an endpoint it did not know, over the
/// create-and-resolve rounds.
pub const UNKNOWN_DROPS: &str =
    "overlay create rounds: packets host 3's decap program dropped for an unknown endpoint";

/// `netd stats` of node `i`: the `unknown-endpoint` drops counted on `netd_vxlan` (0 when there
/// is no such line), or `None` if the command failed.
fn unknown_endpoint_drops(g: &Guard, i: usize) -> Option<u64> {
    let out = g.must(&mut g.node(i).cli(&["stats"]), T).ok()?;
    Some(tunnel_drops(&out, "unknown-endpoint"))
}

/// The count on the `netd_vxlan` line for `reason` in `netd stats`'s table.
fn tunnel_drops(stats: &str, reason: &str) -> u64 {
    stats
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|w| w.contains(&"netd_vxlan") && w.contains(&reason))
        .and_then(|w| w.last()?.parse().ok())
        .unwrap_or(0)
}

/// A create-and-resolve round slower than this gets a note with the datapath's drop counters.
pub const SLOW_MS: f64 = 500.0;

/// What one create-and-resolve round saw.
struct Resolved {
    /// ms from `netd run` to the answer on host 1.
    answered: f64,
    /// ms the `netd run` command took.
    command: f64,
    /// Connections the client tried once the name resolved (1: the first one got through,
    /// however long it took).
    connects: u64,
}

/// The note on a slow round: how many connections it took, and what the datapath of host 3
/// (the new container's) and host 1 (the client's) counted as dropped.
fn slow_round(g: &Guard, name: &str, ms: f64, connects: u64) -> String {
    let stats = |i: usize| {
        g.must(&mut g.node(i).cli(&["stats"]), T)
            .map(|out| {
                // The per-device lines; the totals by reason repeat them.
                let head = out.split("TOTAL").next().unwrap_or_default();
                head.split_whitespace().collect::<Vec<_>>().join(" ")
            })
            .unwrap_or_else(|e| format!("{e:#}"))
    };
    format!(
        "create and resolve, {name}: {} ms, {connects} connection(s) tried after the name \
         resolved; `netd stats` (drops since the start) on host 3: {}; on host 1: {}",
        crate::bench::charts::fmt(ms),
        stats(2),
        stats(0)
    )
}

fn resolve_once(g: &Guard, tool: &str, cluster: &Cluster, name: &str) -> Result<Resolved> {
    let secs = RESOLVE_SECS.to_string();
    let mut helper = world::nsenter(
        &cluster.client_netns,
        &[
            tool,
            "bench",
            "--helper",
            "resolve",
            "127.0.0.11:53",
            name,
            "80",
            &secs,
        ],
    );
    let mut child = helper
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("start the resolve helper")?;
    let start = SystemTime::now();
    let mut run = vec!["run", "-d", "--network", NETWORK, name, "--"];
    let serve = [tool, "bench", "--helper", "serve", "80"];
    run.extend_from_slice(&serve);
    let ran = g.must(&mut g.node(2).cli(&run), T);
    let command = start.elapsed().unwrap_or_default();
    if ran.is_err() {
        child.kill().ok();
    }
    let out = child.wait_with_output().context("the resolve helper")?;
    ran?;
    if !out.status.success() {
        bail!(
            "the resolve helper: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let v: Value = serde_json::from_slice(&out.stdout).context("resolve helper output")?;
    let at = v["at_unix_ns"]
        .as_u64()
        .context("resolve helper: no time")?;
    let start_ns = start.duration_since(UNIX_EPOCH)?.as_nanos() as u64;
    Ok(Resolved {
        answered: at.saturating_sub(start_ns) as f64 / 1e6,
        command: command.as_secs_f64() * 1e3,
        connects: v["connects"].as_u64().unwrap_or(0),
    })
}

#[cfg(test)]
mod tests {
    use super::tunnel_drops;

    #[test]
    fn drops_on_the_tunnel_device_are_read_from_the_stats_table() {
        let stats = "CONTAINER  PORT        REASON            PACKETS\n\
                     -          netd_vxlan  unknown-endpoint  4\n\
                     web1       eth0        spoofed-ip        2\n\n\
                     TOTAL BY REASON   PACKETS\nunknown-endpoint  4\nspoofed-ip  2\n";
        assert_eq!(tunnel_drops(stats, "unknown-endpoint"), 4);
        assert_eq!(
            tunnel_drops(stats, "spoofed-ip"),
            0,
            "not on the tunnel device"
        );
        assert_eq!(
            tunnel_drops("CONTAINER PORT REASON PACKETS\n", "unknown-endpoint"),
            0
        );
    }
}
