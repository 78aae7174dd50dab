//! The paths a packet takes on one host besides published ports (issue 17): container to
//! container on one network, and egress through SNAT to a server outside.
//!
//! Container to container: netd (a second container `peer` on `srv`'s network: the endpoint
//! program delivers straight into `srv`, past the bridge), docker (a second namespace on the
//! `dock` world's `docker0`, with Docker's rules loaded, so bridged frames pass br_netfilter,
//! conntrack and the FORWARD chains as on a Docker host) and veth (two namespaces joined by one
//! veth pair, no bridge: the limit of this kind of link).
//!
//! Egress: the client in the container, the servers in the client namespace beyond the uplink
//! (10.99.0.1): netd (eBPF SNAT), docker (Docker's MASQUERADE, conntrack and FORWARD chains) and
//! routed (the plain world: routing, no NAT, the server routes back to the container subnet).

use anyhow::{Context as _, Result};
use serde_json::Value;

use super::{
    measure::{Endpoint, Launcher, DIRECT},
    variants,
    world::{self, ns, Guard, BRIDGE, CLIENT_IP, CONTAINER_IP},
};

/// The `dock` world's second container.
const DOCK_PEER_IP: &str = "172.17.0.3";
/// The veth pair world's two ends.
const PAIR_CLIENT_IP: &str = "10.98.7.1";
const PAIR_SERVER_IP: &str = "10.98.7.2";
const T: std::time::Duration = std::time::Duration::from_secs(30);

/// The clients of both groups.
pub struct Paths {
    pub c2c: Vec<Endpoint>,
    pub egress: Vec<Endpoint>,
}

/// Builds what the two groups need on top of the netd, dock and plain worlds (made by
/// [`variants`]): netd's `peer`, the dock world's peer namespace, the veth pair world, and the
/// servers in the netd, dock and plain client namespaces.
pub fn build(g: &mut Guard, tool: &str) -> Result<Paths> {
    g.must(&mut g.netd_cli(&["container", "create", "peer"]), T)?;
    g.must(&mut g.netd_cli(&["container", "start", "peer"]), T)?;
    let srv = inspect(g, "srv")?;
    let srv_ip = srv["networks"]["bridge"]["ip_address"]
        .as_str()
        .with_context(|| format!("srv has no address on bridge: {srv}"))?
        .to_string();
    let netns = |c: &Value, name: &str| {
        c["netns"]
            .as_str()
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| g.run.join("netns").join(name))
    };
    let peer_netns = netns(&inspect(g, "peer")?, "peer");
    let srv_netns = netns(&srv, "srv");
    dock_peer(g)?;
    veth_pair(g, tool)?;
    for world in ["netd", "dock", "plain"] {
        variants::start_servers_in(g, &ns(world, "c"), &format!("{world} outside"), tool)?;
    }
    let at = |variant, launcher, ip: &str| Endpoint {
        variant,
        launcher,
        ip: ip.to_string(),
        ports: DIRECT,
    };
    Ok(Paths {
        c2c: vec![
            at("netd", Launcher::Netns(peer_netns), &srv_ip),
            at("docker", Launcher::Ns(ns("dock", "p")), CONTAINER_IP),
            at("veth", Launcher::Ns(ns("pair", "c")), PAIR_SERVER_IP),
        ],
        egress: vec![
            at("netd", Launcher::Netns(srv_netns), CLIENT_IP),
            at("docker", Launcher::Ns(ns("dock", "s")), CLIENT_IP),
            at("routed", Launcher::Ns(ns("plain", "s")), CLIENT_IP),
        ],
    })
}

fn inspect(g: &Guard, name: &str) -> Result<Value> {
    let out = g.must(&mut g.netd_cli(&["container", "inspect", name]), T)?;
    serde_json::from_str(&out).context("container inspect JSON")
}

/// A second namespace on the dock world's `docker0`, wired as Docker wires a container.
fn dock_peer(g: &mut Guard) -> Result<()> {
    let (h, p) = (ns("dock", "h"), ns("dock", "p"));
    g.add_ns(&p)?;
    world::ip(&[
        "-n", &h, "link", "add", "veth1", "type", "veth", "peer", "name", "eth0", "netns", &p,
    ])?;
    world::ip(&["-n", &h, "link", "set", "veth1", "master", BRIDGE, "up"])?;
    world::ip(&[
        "-n",
        &p,
        "addr",
        "add",
        &format!("{DOCK_PEER_IP}/16"),
        "dev",
        "eth0",
    ])?;
    world::ip(&["-n", &p, "link", "set", "eth0", "up"])?;
    world::ip(&["-n", &p, "link", "set", "lo", "up"])?;
    world::ip(&["-n", &p, "route", "add", "default", "via", world::BRIDGE_IP])
}

/// Two namespaces joined by one veth pair, the servers in `nbench-pair-s`.
fn veth_pair(g: &mut Guard, tool: &str) -> Result<()> {
    let (c, s) = (ns("pair", "c"), ns("pair", "s"));
    g.add_ns(&c)?;
    g.add_ns(&s)?;
    world::ip(&[
        "-n", &c, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", &s,
    ])?;
    for (n, addr) in [(&c, PAIR_CLIENT_IP), (&s, PAIR_SERVER_IP)] {
        world::ip(&["-n", n, "addr", "add", &format!("{addr}/24"), "dev", "eth0"])?;
        world::ip(&["-n", n, "link", "set", "eth0", "up"])?;
        world::ip(&["-n", n, "link", "set", "lo", "up"])?;
    }
    variants::start_servers_in(g, &s, "veth pair", tool)
}
