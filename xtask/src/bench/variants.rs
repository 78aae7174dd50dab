//! Building the variants: netd with `-p` on a container, Docker's iptables datapath and
//! docker-proxy reproduced by hand, plain routing; the same three servers in each container.
//!
//! Docker's rules are those of Docker 20.10 on its default bridge (`docker0`, 172.17.0.0/16) with
//! the userland proxy on, written for `iptables-nft-restore` and loaded inside the `dock` host
//! namespace only: nat `DOCKER` jumped to from PREROUTING (`-m addrtype --dst-type LOCAL`) and
//! OUTPUT (`! -d 127.0.0.0/8`), a DNAT per published port, MASQUERADE for the subnet and for the
//! hairpin of every port; filter FORWARD (policy DROP) through `DOCKER-USER`,
//! `DOCKER-ISOLATION-STAGE-1/2`, conntrack ESTABLISHED and the per-port ACCEPT in `DOCKER`.

use std::{fmt::Write as _, path::Path, time::Duration};

use anyhow::Result;

use super::{
    measure::{Endpoint, Launcher, DIRECT, PUBLISHED, SERVER_CPU},
    world::{self, ns, Guard, BRIDGE, CONTAINER_IP, SUBNET, UPLINK_IP},
};

const T: Duration = Duration::from_secs(30);
/// The published ports of the measured container: (host port, container port).
pub const MAPPINGS: [(u16, u16); 3] = [(8080, 80), (5201, 5201), (11111, 11111)];
const DOCKER_PROXY: &str = "/usr/sbin/docker-proxy";

/// The three servers, as argument lists pinned to [`SERVER_CPU`]: short connections, iperf3,
/// sockperf.
pub fn servers(tool: &str) -> [Vec<String>; 3] {
    let pin = ["taskset", "-c", SERVER_CPU];
    [
        vec![tool, "bench", "--helper", "serve", "80"],
        vec!["iperf3", "-s", "-p", "5201"],
        vec![
            "sockperf", "server", "--tcp", "-i", "0.0.0.0", "-p", "11111",
        ],
    ]
    .map(|args| pin.iter().chain(&args).map(|a| a.to_string()).collect())
}

/// netd: the daemon in `nbench-netd-h`, container `srv` with the three ports published, the
/// servers started with `netd exec -d`.
pub fn netd(g: &mut Guard, netd: &Path, tool: &str) -> Result<()> {
    netd_with(g, netd, tool, &[])
}

/// As [`netd`], the daemon started with `extra` flags.
pub fn netd_with(g: &mut Guard, netd: &Path, tool: &str, extra: &[&str]) -> Result<()> {
    g.uplink_pair("netd")?;
    serve_netd(g, netd, tool, extra)
}

/// On the netd world's uplink (already there): the daemon started with `extra` flags, `srv`
/// and its servers.
pub fn serve_netd(g: &mut Guard, netd: &Path, tool: &str, extra: &[&str]) -> Result<()> {
    g.start_netd(netd, extra)?;
    let mut create = vec!["container", "create"];
    let specs: Vec<String> = MAPPINGS.iter().map(|(h, c)| format!("{h}:{c}")).collect();
    for s in &specs {
        create.extend(["-p", s]);
    }
    create.push("srv");
    g.must(&mut g.netd_cli(&create), T)?;
    g.must(&mut g.netd_cli(&["container", "start", "srv"]), T)?;
    for server in servers(tool) {
        let mut args = vec!["exec", "-d", "srv", "--"];
        args.extend(server.iter().map(String::as_str));
        g.must(&mut g.netd_cli(&args), T)?;
    }
    Ok(())
}

/// Docker's datapath by hand: bridge, container, the iptables rules, one docker-proxy per port.
pub fn docker(g: &mut Guard, tool: &str) -> Result<()> {
    g.uplink_pair("dock")?;
    g.bridge_world("dock")?;
    load_docker_rules(g, &[])?;
    for (h, c) in MAPPINGS {
        let (h, c) = (h.to_string(), c.to_string());
        let cmd = world::in_ns(
            &ns("dock", "h"),
            &[
                "sh",
                "-c",
                // docker-proxy writes its start-up status to fd 3 and closes it: without an open
                // fd 3 it would close its own listener (which got that number).
                "exec \"$0\" \"$@\" 3>/dev/null",
                "taskset",
                "-c",
                SERVER_CPU,
                DOCKER_PROXY,
                "-proto",
                "tcp",
                "-host-ip",
                "0.0.0.0",
                "-host-port",
                &h,
                "-container-ip",
                CONTAINER_IP,
                "-container-port",
                &c,
            ],
        );
        g.spawn(&format!("docker-proxy {h}"), cmd)?;
    }
    start_servers(g, "dock", tool)
}

/// Plain routing: the same bridge and container, no rule; the client routes to the subnet.
/// The same servers also run in the host's namespace itself (the limit of a published port).
pub fn plain(g: &mut Guard, tool: &str) -> Result<()> {
    g.uplink_pair("plain")?;
    g.bridge_world("plain")?;
    world::ip(&[
        "-n",
        &ns("plain", "c"),
        "route",
        "add",
        SUBNET,
        "via",
        UPLINK_IP,
    ])?;
    start_servers(g, "plain", tool)?;
    start_servers_in(g, &ns("plain", "h"), "plain host", tool)
}

fn start_servers(g: &mut Guard, world: &str, tool: &str) -> Result<()> {
    start_servers_in(g, &ns(world, "s"), world, tool)
}

/// The three servers in namespace `n`, named `what` in the guard's list.
pub fn start_servers_in(g: &mut Guard, n: &str, what: &str, tool: &str) -> Result<()> {
    for (i, server) in servers(tool).into_iter().enumerate() {
        let args: Vec<&str> = server.iter().map(String::as_str).collect();
        g.spawn(&format!("{what} server {i}"), world::in_ns(n, &args))?;
    }
    Ok(())
}

/// The rules of Docker's datapath with `extra` published ports (each to the same container
/// port) ahead of the measured container's three, as if that container had been started last.
pub fn docker_rules(extra: &[u16]) -> String {
    let ports: Vec<(u16, u16)> = extra.iter().map(|&p| (p, p)).chain(MAPPINGS).collect();
    let (b, ip) = (BRIDGE, CONTAINER_IP);
    let mut nat = format!(
        "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n\
         :POSTROUTING ACCEPT [0:0]\n:DOCKER - [0:0]\n\
         -A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER\n\
         -A OUTPUT ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j DOCKER\n\
         -A POSTROUTING -s {SUBNET} ! -o {b} -j MASQUERADE\n"
    );
    let mut filter = format!(
        "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n\
         :DOCKER - [0:0]\n:DOCKER-ISOLATION-STAGE-1 - [0:0]\n:DOCKER-ISOLATION-STAGE-2 - [0:0]\n\
         :DOCKER-USER - [0:0]\n\
         -A FORWARD -j DOCKER-USER\n-A FORWARD -j DOCKER-ISOLATION-STAGE-1\n\
         -A FORWARD -o {b} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n\
         -A FORWARD -o {b} -j DOCKER\n-A FORWARD -i {b} ! -o {b} -j ACCEPT\n\
         -A FORWARD -i {b} -o {b} -j ACCEPT\n"
    );
    let mut docker_nat = format!("-A DOCKER -i {b} -j RETURN\n");
    for (h, c) in &ports {
        let _ = writeln!(
            nat,
            "-A POSTROUTING -s {ip}/32 -d {ip}/32 -p tcp -m tcp --dport {c} -j MASQUERADE"
        );
        let _ = writeln!(
            docker_nat,
            "-A DOCKER ! -i {b} -p tcp -m tcp --dport {h} -j DNAT --to-destination {ip}:{c}"
        );
        let _ = writeln!(
            filter,
            "-A DOCKER -d {ip}/32 ! -i {b} -o {b} -p tcp -m tcp --dport {c} -j ACCEPT"
        );
    }
    nat.push_str(&docker_nat);
    nat.push_str("COMMIT\n");
    filter.push_str(&format!(
        "-A DOCKER-ISOLATION-STAGE-1 -i {b} ! -o {b} -j DOCKER-ISOLATION-STAGE-2\n\
         -A DOCKER-ISOLATION-STAGE-1 -j RETURN\n\
         -A DOCKER-ISOLATION-STAGE-2 -o {b} -j DROP\n-A DOCKER-ISOLATION-STAGE-2 -j RETURN\n\
         -A DOCKER-USER -j RETURN\nCOMMIT\n"
    ));
    nat + &filter
}

/// Replaces the `dock` host namespace's nat and filter tables with [`docker_rules`]`(extra)`.
pub fn load_docker_rules(g: &Guard, extra: &[u16]) -> Result<()> {
    let file = g.dir.join("docker-rules");
    std::fs::write(&file, docker_rules(extra))?;
    let path = file.display().to_string();
    g.must(
        &mut world::in_ns(&ns("dock", "h"), &["iptables-nft-restore", &path]),
        Duration::from_secs(300),
    )?;
    Ok(())
}

/// The iptables commands Docker runs to publish one more port `port` (as three separate
/// `iptables` processes, as Docker does), or to take it back with `-D`.
pub fn docker_port_commands(port: u16, op: &str) -> [Vec<String>; 3] {
    let (b, ip, p) = (BRIDGE, CONTAINER_IP, port.to_string());
    let dst = format!("{ip}/32");
    let to = format!("{ip}:{p}");
    [
        vec![
            "-t",
            "nat",
            op,
            "DOCKER",
            "!",
            "-i",
            b,
            "-p",
            "tcp",
            "-m",
            "tcp",
            "--dport",
            &p,
            "-j",
            "DNAT",
            "--to-destination",
            &to,
        ],
        vec![
            "-t",
            "nat",
            op,
            "POSTROUTING",
            "-s",
            &dst,
            "-d",
            &dst,
            "-p",
            "tcp",
            "-m",
            "tcp",
            "--dport",
            &p,
            "-j",
            "MASQUERADE",
        ],
        vec![
            "-t", "filter", op, "DOCKER", "-d", &dst, "!", "-i", b, "-o", b, "-p", "tcp", "-m",
            "tcp", "--dport", &p, "-j", "ACCEPT",
        ],
    ]
    .map(|v| v.into_iter().map(String::from).collect())
}

/// Clients from the client namespaces through each world's uplink: netd and Docker through
/// the published ports on 10.99.0.2, plain routing to the container's address, and the same
/// servers in the host's namespace (host, the limit: no container at all).
pub fn remote_endpoints() -> Vec<Endpoint> {
    vec![
        Endpoint {
            variant: "netd",
            launcher: Launcher::Ns(ns("netd", "c")),
            ip: UPLINK_IP.into(),
            ports: PUBLISHED,
        },
        Endpoint {
            variant: "docker",
            launcher: Launcher::Ns(ns("dock", "c")),
            ip: UPLINK_IP.into(),
            ports: PUBLISHED,
        },
        Endpoint {
            variant: "plain",
            launcher: Launcher::Ns(ns("plain", "c")),
            ip: CONTAINER_IP.into(),
            ports: DIRECT,
        },
        Endpoint {
            variant: "host",
            launcher: Launcher::Ns(ns("plain", "c")),
            ip: UPLINK_IP.into(),
            ports: DIRECT,
        },
    ]
}

/// Host-local clients: netd's socket hooks (in the daemon's cgroup) and docker-proxy on
/// 127.0.0.1's published ports, a host process to the container's address (direct), and
/// loopback inside the container (the ceiling).
pub fn local_endpoints(g: &Guard) -> Vec<Endpoint> {
    vec![
        Endpoint {
            variant: "netd",
            launcher: Launcher::Cgroup {
                ns: ns("netd", "h"),
                cgroup: g.cgroup(),
            },
            ip: "127.0.0.1".into(),
            ports: PUBLISHED,
        },
        Endpoint {
            variant: "docker-proxy",
            launcher: Launcher::Ns(ns("dock", "h")),
            ip: "127.0.0.1".into(),
            ports: PUBLISHED,
        },
        Endpoint {
            variant: "direct",
            launcher: Launcher::Ns(ns("plain", "h")),
            ip: CONTAINER_IP.into(),
            ports: DIRECT,
        },
        Endpoint {
            variant: "loopback",
            launcher: Launcher::Ns(ns("plain", "s")),
            ip: "127.0.0.1".into(),
            ports: DIRECT,
        },
    ]
}
