//! `netd check`: the saved state compared with the kernel, every difference reported.
//!
//! Three parts: [`Expected::from_state`] says what the kernel must hold for a state (namespace
//! files, devices, map entries, pins), [`Daemon::observe`] reads what it holds, and the pure
//! [`diff`] names every difference. [`state_problems`] finds what is wrong in the state alone
//! (addresses and ports handed out twice, addresses of containers that are not running).
use std::{
    collections::{BTreeMap, BTreeSet},
    fmt,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    path::PathBuf,
};

use ipnet::Ipv4Net;
use netd_common::{
    maps, Backend, Endpoint, Neighbor, NetworkInfo, OverlayPort, PortKey, Tunnel, Uplink,
};

use super::{error::OpResult, ports::desired_ports, Daemon};
use crate::{
    api::{format_mac, CheckView, DifferenceView, Reply},
    datapath::{plan, uplink_pin, SOCK_PROGRAMS},
    netlink::{LinkState, ALIAS_PREFIX, DEVICE_GROUP},
    state::{
        BridgeConfig, DriverConfig, Network, NetworkMode, OverlayConfig, State, Status, VlanKind,
    },
};

/// One way in which the kernel (or the state itself) is not what the state says.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Difference {
    /// What kind of object: `netns`, `device`, `map NETD_PORTS`, `pin`, `ipam`, `port`, ...
    pub area: String,
    /// Which one: a file, device, key or address.
    pub subject: String,
    pub problem: String,
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.area, self.subject, self.problem)
    }
}

fn difference(area: &str, subject: impl ToString, problem: impl Into<String>) -> Difference {
    Difference {
        area: area.into(),
        subject: subject.to_string(),
        problem: problem.into(),
    }
}

/// A device netd must have: its owner tag, kind, bridge (by name) and MAC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WantedDevice {
    /// The alias after `netd:` (`network:ID`, `container:ID`).
    pub owner: String,
    pub kind: &'static str,
    pub master: Option<String>,
    pub mac: Option<[u8; 6]>,
    /// Who it is for, as users say it (`network n1`, `container web on n1`).
    pub what: String,
}

/// What the kernel must hold for one state.
#[derive(Debug, Clone, Default)]
pub struct Expected {
    /// Files under the run dir's `netns/`, by name, with their container.
    pub netns_files: BTreeMap<String, String>,
    /// Namespaces adopted with `--netns` by running containers: path and container.
    pub adopted: BTreeMap<PathBuf, String>,
    /// Containers the state has: the only ones that may have files under the run dir's
    /// `containers/`.
    pub containers: BTreeSet<String>,
    pub devices: BTreeMap<String, WantedDevice>,
    /// Endpoint entries by host-side veth.
    pub endpoints: BTreeMap<String, Endpoint>,
    pub networks: BTreeMap<Ipv4Net, NetworkInfo>,
    pub neighbors: BTreeMap<[u8; 4], Neighbor>,
    /// Published ports: where they lead (by veth name; the backend's ifindex left 0).
    pub ports: BTreeMap<PortKey, (String, Backend)>,
    /// Addresses pinned on each bridge (by bridge name), of both families.
    pub pinned: BTreeMap<String, BTreeSet<IpAddr>>,
    /// The daemon's uplinks and whether it hooks a cgroup.
    pub uplinks: Vec<String>,
    pub cgroup_hooks: bool,
    /// Map pins the eBPF object declares.
    pub map_pins: BTreeSet<String>,
    /// Link pins of eBPF 802.1q sub-interfaces and of containers' macvlan devices.
    pub vlan_pins: BTreeSet<String>,
    /// Other hosts' overlay endpoints (as the daemon's view of the cluster store has them) and
    /// this host's (where decapsulated frames go, by address: the port by veth name).
    pub remotes: BTreeMap<[u8; 4], Tunnel>,
    pub overlay_ports: BTreeMap<[u8; 4], (String, OverlayPort)>,
    /// The host-side veth (by name) of every container address with one.
    pub veths: BTreeMap<[u8; 4], String>,
    /// The IPv6 ports (by host-side veth; the ifindex left 0) and dual-stack networks, which
    /// the IPv6 maps must hold.
    pub ports6: BTreeMap<String, plan::Port6>,
    pub networks6: Vec<plan::Network6>,
}

/// What the kernel holds, as [`Daemon::observe`] read it.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    /// Entries of the run dir's `netns/`, by name, and whether each is a namespace.
    pub netns_files: BTreeMap<String, bool>,
    /// Adopted namespace paths that are namespaces.
    pub adopted_present: BTreeSet<PathBuf>,
    /// Entries of the run dir's `containers/` (each container's hosts and resolv.conf).
    pub container_files: BTreeSet<String>,
    pub links: Vec<LinkState>,
    pub endpoints: BTreeMap<u32, Endpoint>,
    pub networks: BTreeMap<Ipv4Net, NetworkInfo>,
    pub neighbors: BTreeMap<[u8; 4], Neighbor>,
    pub ports: BTreeMap<PortKey, Backend>,
    /// Permanent neighbour entries of both families: (device index, address).
    pub pinned: Vec<(u32, IpAddr)>,
    /// The namespace's IPv4 addresses: (device index, address).
    pub addresses: Vec<(u32, Ipv4Addr)>,
    pub local_addrs: BTreeSet<[u8; 4]>,
    pub uplinks: BTreeMap<u32, Uplink>,
    pub link_pins: BTreeSet<String>,
    pub map_pins: BTreeSet<String>,
    pub remotes: BTreeMap<[u8; 4], Tunnel>,
    pub overlay_ports: BTreeMap<[u8; 4], OverlayPort>,
    pub veths: BTreeMap<[u8; 4], u32>,
    pub maps6: plan::Maps6,
}

impl Expected {
    /// The host devices network `n`'s driver made: a bridge (with nothing pinned on it yet),
    /// or the 802.1q parent a macvlan network made.
    fn add_network_devices(&mut self, n: &Network) {
        let devices = match &n.driver {
            DriverConfig::Bridge(BridgeConfig { device })
            | DriverConfig::Overlay(OverlayConfig { device, .. }) => {
                self.pinned.insert(device.clone(), BTreeSet::new());
                vec![(device.clone(), "bridge", Some(plan::bridge_mac(n)))]
            }
            DriverConfig::Macvlan(m) => match &m.made_parent {
                None => vec![],
                Some(v) => match &v.kind {
                    VlanKind::Kernel => vec![(m.parent.clone(), "vlan", None)],
                    VlanKind::Ebpf { inner } => {
                        vec![
                            (m.parent.clone(), "veth", None),
                            (inner.clone(), "veth", None),
                        ]
                    }
                },
            },
        };
        for (device, kind, mac) in devices {
            self.devices.insert(
                device,
                WantedDevice {
                    owner: format!("network:{}", n.id),
                    kind,
                    master: None,
                    mac,
                    what: format!("network {}", n.name),
                },
            );
        }
    }

    /// What `state` implies (`uplinks` and `cgroup_hooks` as the daemon runs, `map_pins` the
    /// pinned maps of the eBPF object).
    pub fn from_state(
        state: &State,
        uplinks: &[String],
        cgroup_hooks: bool,
        map_pins: BTreeSet<String>,
    ) -> Self {
        let mut want = Expected {
            endpoints: plan::endpoints(state),
            networks: plan::networks(state),
            neighbors: plan::neighbors(state, &BTreeMap::new()),
            vlan_pins: plan::vlan_pins(state)
                .into_iter()
                .chain(plan::macvlan_pins(state))
                .collect(),
            uplinks: uplinks.to_vec(),
            cgroup_hooks,
            map_pins,
            containers: state.containers.keys().cloned().collect(),
            ..Default::default()
        };
        for c in state.containers.values() {
            let own = matches!(c.mode, NetworkMode::Bridge | NetworkMode::None);
            if c.status != Status::Running || !own {
                continue;
            }
            match &c.adopted_netns {
                Some(path) => want.adopted.insert(path.clone(), c.name.clone()),
                None => want.netns_files.insert(c.name.clone(), c.name.clone()),
            };
        }
        for n in state.networks.values() {
            want.add_network_devices(n);
        }
        want.networks6 = state.networks.values().filter_map(plan::network6).collect();
        for (c, ep) in state.endpoints() {
            let bridge = state
                .networks
                .get(&ep.network)
                .and_then(|n| n.bridge().map(String::from));
            let Some(veth) = &ep.host_veth else {
                if let Some(b) = &bridge {
                    want.pinned
                        .entry(b.clone())
                        .or_default()
                        .insert(ep.ip.into());
                }
                continue;
            };
            // A routed port beyond a full bridge has the address pinned on itself.
            let (pinned_on, master) = match (&bridge, ep.beyond_bridge) {
                (Some(_), true) => (Some(veth.clone()), None),
                (b, _) => (b.clone(), b.clone()),
            };
            if let Some(device) = pinned_on {
                let pins = want.pinned.entry(device).or_default();
                pins.insert(ep.ip.into());
                pins.extend(ep.ip6.map(IpAddr::V6));
            }
            if let Some(port) = state
                .networks
                .get(&ep.network)
                .and_then(|n| plan::port6(n, ep, 0))
            {
                want.ports6.insert(veth.clone(), port);
            }
            want.veths.insert(ep.ip.octets(), veth.clone());
            if let Some(port) = state
                .networks
                .get(&ep.network)
                .and_then(|n| plan::overlay_port(n, ep, 0))
            {
                want.overlay_ports
                    .insert(ep.ip.octets(), (veth.clone(), port));
            }
            want.devices.insert(
                veth.clone(),
                WantedDevice {
                    owner: format!("container:{}", c.id),
                    kind: "veth",
                    master,
                    mac: None,
                    what: format!("container {} on {}", c.name, ep.network),
                },
            );
        }
        // Where each running container's ports lead, with a stand-in index per veth.
        let veths: Vec<String> = want
            .devices
            .iter()
            .filter(|(_, d)| d.kind == "veth")
            .map(|(n, _)| n.clone())
            .collect();
        let stand_in: BTreeMap<String, u32> = veths
            .iter()
            .enumerate()
            .map(|(i, v)| (v.clone(), i as u32 + 1))
            .collect();
        for (key, backend) in desired_ports(state, &stand_in) {
            let veth = veths[backend.ifindex as usize - 1].clone();
            want.ports.insert(
                key,
                (
                    veth,
                    Backend {
                        ifindex: 0,
                        ..backend
                    },
                ),
            );
        }
        want
    }

    /// With the cluster store: the VXLAN device and its program's pin, the other hosts'
    /// endpoints `remotes` in the tunnel map and the ARP responder.
    pub fn add_cluster(&mut self, remotes: BTreeMap<[u8; 4], Tunnel>) {
        self.devices.insert(
            super::overlay::VXLAN_DEVICE.into(),
            WantedDevice {
                owner: "cluster".into(),
                kind: "vxlan",
                master: None,
                mac: None,
                what: "the overlay tunnel".into(),
            },
        );
        self.vlan_pins.insert(crate::datapath::TUNNEL_PIN.into());
        self.vlan_pins.insert(crate::datapath::UNDERLAY_PIN.into());
        for (addr, t) in &remotes {
            let (k, v) = plan::remote_neighbor(*addr, t);
            self.neighbors.insert(k, v);
        }
        self.remotes = remotes;
    }

    /// The link pins the daemon keeps: both directions of each uplink that has an address, and
    /// the cgroup hooks.
    fn link_pins(&self, observed: &Observed) -> BTreeSet<String> {
        let mut pins = BTreeSet::new();
        for name in &self.uplinks {
            let Some(link) = observed.links.iter().find(|l| &l.name == name) else {
                continue;
            };
            if observed.addresses.iter().any(|(i, _)| *i == link.index) {
                pins.insert(uplink_pin(name, "in"));
                pins.insert(uplink_pin(name, "out"));
            }
        }
        if self.cgroup_hooks {
            pins.extend(SOCK_PROGRAMS.iter().map(|p| p.to_string()));
        }
        pins.extend(self.vlan_pins.iter().cloned());
        pins
    }
}

/// Every difference between what the kernel must hold and what it holds, sorted.
pub fn diff(want: &Expected, seen: &Observed) -> Vec<Difference> {
    let mut out = vec![];
    out.extend(diff_netns(want, seen));
    out.extend(diff_devices(want, seen));
    out.extend(diff_endpoints(want, seen));
    out.extend(diff_entries(
        maps::NETWORKS,
        &want.networks,
        &seen.networks,
        |k| k.to_string(),
        |v| format!("net_id {}", v.net_id),
        "no network has this subnet",
    ));
    out.extend(diff_entries(
        maps::NEIGHBORS,
        &want.neighbors,
        &seen.neighbors,
        |k| Ipv4Addr::from(*k).to_string(),
        |v| format!("{} net_id {}", format_mac(v.mac), v.net_id),
        "neither a gateway nor a running container has this address",
    ));
    out.extend(diff_entries(
        maps::TUNNEL,
        &want.remotes,
        &seen.remotes,
        |k| Ipv4Addr::from(*k).to_string(),
        |v| {
            format!(
                "host {} vni {} net_id {}",
                Ipv4Addr::from(v.host),
                v.vni,
                v.net_id
            )
        },
        "the cluster store has no such endpoint of another host",
    ));
    out.extend(diff_overlay_ports(want, seen));
    out.extend(diff_veths(want, seen));
    out.extend(diff_ports(want, seen));
    out.extend(diff_pinned(want, seen));
    out.extend(diff_maps6(want, seen));
    out.extend(diff_host(want, seen));
    out.extend(diff_pins(want, seen));
    out.sort();
    out.dedup();
    out
}

fn diff_netns(want: &Expected, seen: &Observed) -> Vec<Difference> {
    let mut out = vec![];
    for (file, is_ns) in &seen.netns_files {
        match want.netns_files.get(file) {
            None => out.push(difference(
                "netns",
                file,
                "a namespace file that no running container owns",
            )),
            Some(c) if !is_ns => out.push(difference(
                "netns",
                file,
                format!("the file of running container {c} is not a namespace"),
            )),
            Some(_) => {}
        }
    }
    for (file, c) in &want.netns_files {
        if !seen.netns_files.contains_key(file) {
            out.push(difference(
                "netns",
                file,
                format!("missing: container {c} is running"),
            ));
        }
    }
    for dir in seen.container_files.difference(&want.containers) {
        out.push(difference(
            "files",
            format!("containers/{dir}"),
            "the files of a container the state does not have",
        ));
    }
    for (path, c) in &want.adopted {
        if !seen.adopted_present.contains(path) {
            out.push(difference(
                "netns",
                path.display(),
                format!("the namespace container {c} adopted is gone"),
            ));
        }
    }
    out
}

fn diff_devices(want: &Expected, seen: &Observed) -> Vec<Difference> {
    let mut out = vec![];
    let by_index: BTreeMap<u32, &LinkState> = seen.links.iter().map(|l| (l.index, l)).collect();
    let netd_bridges: BTreeSet<u32> = seen
        .links
        .iter()
        .filter(|l| l.owner.is_some() && l.kind.as_deref() == Some("bridge"))
        .map(|l| l.index)
        .collect();
    for link in &seen.links {
        let Some(w) = want.devices.get(&link.name) else {
            if let Some(owner) = &link.owner {
                out.push(difference(
                    "device",
                    &link.name,
                    format!("tagged {ALIAS_PREFIX}{owner}, but nothing in the state has it"),
                ));
            } else if link.group == DEVICE_GROUP {
                out.push(difference(
                    "device",
                    &link.name,
                    "created by netd but never tagged",
                ));
            } else if link.master.is_some_and(|m| netd_bridges.contains(&m)) {
                out.push(difference(
                    "device",
                    &link.name,
                    "untagged, on a netd bridge",
                ));
            }
            continue;
        };
        out.extend(device_problems(w, link, &by_index));
    }
    for (name, w) in &want.devices {
        if !seen.links.iter().any(|l| &l.name == name) {
            out.push(difference(
                "device",
                name,
                format!("missing: it is {}'s", w.what),
            ));
        }
    }
    out
}

/// What is wrong with a device the state has.
fn device_problems(
    w: &WantedDevice,
    link: &LinkState,
    by_index: &BTreeMap<u32, &LinkState>,
) -> Vec<Difference> {
    let mut out = vec![];
    let mut problem = |p: String| out.push(difference("device", &link.name, p));
    if link.owner.as_deref() != Some(w.owner.as_str()) {
        let found = link
            .owner
            .as_ref()
            .map(|o| format!("tagged {ALIAS_PREFIX}{o}"))
            .unwrap_or_else(|| "untagged".into());
        problem(format!("{found}, but it is {}'s ({})", w.what, w.owner));
    }
    if link.kind.as_deref() != Some(w.kind) {
        problem(format!(
            "a {} device, not a {}",
            link.kind.as_deref().unwrap_or("plain"),
            w.kind
        ));
    }
    let master = link
        .master
        .map(|m| by_index.get(&m).map_or(format!("#{m}"), |l| l.name.clone()));
    if master != w.master {
        problem(format!(
            "plugged into {}, not {}",
            master.as_deref().unwrap_or("no bridge"),
            w.master.as_deref().unwrap_or("none")
        ));
    }
    if !link.up {
        problem("down".into());
    }
    if let (Some(want), Some(has)) = (w.mac, link.mac) {
        if want != has {
            problem(format!("MAC {}, not {}", format_mac(has), format_mac(want)));
        }
    }
    out
}

fn endpoint_text(ep: &Endpoint) -> String {
    format!(
        "{} {} net_id {}{}",
        Ipv4Addr::from(ep.addr),
        format_mac(ep.mac),
        ep.net_id,
        if ep.flags & netd_common::ENDPOINT_FLAG_INTERNAL != 0 {
            " internal"
        } else {
            ""
        }
    )
}

fn diff_endpoints(want: &Expected, seen: &Observed) -> Vec<Difference> {
    let area = format!("map {}", maps::ENDPOINTS);
    let mut out = vec![];
    let names: BTreeMap<u32, &str> = seen
        .links
        .iter()
        .map(|l| (l.index, l.name.as_str()))
        .collect();
    let mut found = BTreeSet::new();
    for (index, ep) in &seen.endpoints {
        let Some(name) = names.get(index) else {
            out.push(difference(
                &area,
                format!("ifindex {index}"),
                format!("{}: no such device", endpoint_text(ep)),
            ));
            continue;
        };
        found.insert(*name);
        match want.endpoints.get(*name) {
            None => out.push(difference(
                &area,
                name,
                format!("{}: no running container has this port", endpoint_text(ep)),
            )),
            Some(w) if w != ep => out.push(difference(
                &area,
                name,
                format!(
                    "holds {}, the state says {}",
                    endpoint_text(ep),
                    endpoint_text(w)
                ),
            )),
            Some(_) => {}
        }
    }
    for (veth, w) in &want.endpoints {
        if !found.contains(veth.as_str()) {
            out.push(difference(
                &area,
                veth,
                format!("missing: {}", endpoint_text(w)),
            ));
        }
    }
    out
}

/// Entries of one map: missing, stale (`stale` says why) and different ones. `value` may be
/// empty where the key says all.
fn diff_entries<K: Ord, V: PartialEq>(
    map: &str,
    want: &BTreeMap<K, V>,
    seen: &BTreeMap<K, V>,
    key: impl Fn(&K) -> String,
    value: impl Fn(&V) -> String,
    stale: &str,
) -> Vec<Difference> {
    let area = format!("map {map}");
    let join = |a: String, b: String| match (a.is_empty(), b.is_empty()) {
        (true, _) => b,
        (_, true) => a,
        _ => format!("{a}: {b}"),
    };
    let mut out = vec![];
    for (k, v) in seen {
        match want.get(k) {
            None => out.push(difference(&area, key(k), join(value(v), stale.into()))),
            Some(w) if w != v => out.push(difference(
                &area,
                key(k),
                format!("holds {}, the state says {}", value(v), value(w)),
            )),
            Some(_) => {}
        }
    }
    for (k, w) in want {
        if !seen.contains_key(k) {
            out.push(difference(&area, key(k), join("missing".into(), value(w))));
        }
    }
    out
}

fn port_text(k: &PortKey) -> String {
    let proto = super::maps::proto_name(k.proto);
    format!(
        "{proto} {}:{}",
        Ipv4Addr::from(k.addr),
        u16::from_be(k.port_be)
    )
}

/// Decapsulation entries, with the port by name.
fn diff_overlay_ports(want: &Expected, seen: &Observed) -> Vec<Difference> {
    let names: BTreeMap<u32, &str> = seen
        .links
        .iter()
        .map(|l| (l.index, l.name.as_str()))
        .collect();
    let text = |(veth, p): &(String, OverlayPort)| format!("{veth} vni {}", p.vni);
    let seen: BTreeMap<[u8; 4], (String, OverlayPort)> = seen
        .overlay_ports
        .iter()
        .map(|(a, p)| {
            let veth = names.get(&p.ifindex).map_or_else(
                || format!("ifindex {} (no such device)", p.ifindex),
                |n| n.to_string(),
            );
            (*a, (veth, OverlayPort { ifindex: 0, ..*p }))
        })
        .collect();
    diff_entries(
        maps::OVERLAY_PORTS,
        &want.overlay_ports,
        &seen,
        |k| Ipv4Addr::from(*k).to_string(),
        text,
        "no running overlay container has this address",
    )
}

/// Where packets for each container address are delivered, with the veth by name.
fn diff_veths(want: &Expected, seen: &Observed) -> Vec<Difference> {
    let names: BTreeMap<u32, &str> = seen
        .links
        .iter()
        .map(|l| (l.index, l.name.as_str()))
        .collect();
    let seen: BTreeMap<[u8; 4], String> = seen
        .veths
        .iter()
        .map(|(a, i)| {
            let veth = names.get(i).map_or_else(
                || format!("ifindex {i} (no such device)"),
                |n| n.to_string(),
            );
            (*a, veth)
        })
        .collect();
    diff_entries(
        maps::VETHS,
        &want.veths,
        &seen,
        |k| Ipv4Addr::from(*k).to_string(),
        |v| v.clone(),
        "no running container has this address on a veth",
    )
}

fn diff_ports(want: &Expected, seen: &Observed) -> Vec<Difference> {
    let names: BTreeMap<u32, &str> = seen
        .links
        .iter()
        .map(|l| (l.index, l.name.as_str()))
        .collect();
    let backend_text = |b: &Backend, veth: &str| {
        format!(
            "{}:{} via {veth} (gateway {})",
            Ipv4Addr::from(b.addr),
            u16::from_be(b.port_be),
            Ipv4Addr::from(b.gateway)
        )
    };
    let seen: BTreeMap<PortKey, (String, Backend)> = seen
        .ports
        .iter()
        .map(|(k, b)| {
            let veth = names
                .get(&b.ifindex)
                .map_or(format!("ifindex {}", b.ifindex), |n| n.to_string());
            (*k, (veth, Backend { ifindex: 0, ..*b }))
        })
        .collect();
    diff_entries(
        maps::PORTS,
        &want.ports,
        &seen,
        port_text,
        |(veth, b)| backend_text(b, veth),
        "no running container publishes it",
    )
}

/// The four IPv6 maps against what the state's IPv6 ports (on the veths the kernel has) and
/// dual-stack networks imply.
fn diff_maps6(want: &Expected, seen: &Observed) -> Vec<Difference> {
    let index: BTreeMap<&str, u32> = seen
        .links
        .iter()
        .map(|l| (l.name.as_str(), l.index))
        .collect();
    let ports = want.ports6.iter().filter_map(|(veth, p)| {
        Some(plan::Port6 {
            ifindex: *index.get(veth.as_str())?,
            ..*p
        })
    });
    let desired = plan::maps6(ports, want.networks6.iter().copied());
    let (w, s) = (&desired, &seen.maps6);
    let addr = |k: &[u8; 16]| Ipv6Addr::from(*k).to_string();
    let mut out = diff_entries(
        maps::ENDPOINTS6,
        &w.endpoints,
        &s.endpoints,
        |k| format!("ifindex {k}"),
        |v| Ipv6Addr::from(v.addr).to_string(),
        "no running container has this port",
    );
    out.extend(diff_entries(
        maps::NETWORKS6,
        &w.networks,
        &s.networks,
        |k| k.to_string(),
        |v| format!("net_id {}", v.net_id),
        "no network has this subnet",
    ));
    out.extend(diff_entries(
        maps::NEIGHBORS6,
        &w.neighbors,
        &s.neighbors,
        addr,
        |v| format!("{} net_id {}", format_mac(v.mac), v.net_id),
        "neither a gateway nor a running container has this address",
    ));
    out.extend(diff_entries(
        maps::VETHS6,
        &w.veths,
        &s.veths,
        addr,
        |v| format!("ifindex {v}"),
        "no running container has this address",
    ));
    out
}

fn diff_pinned(want: &Expected, seen: &Observed) -> Vec<Difference> {
    let mut out = vec![];
    for (bridge, ips) in &want.pinned {
        let Some(link) = seen.links.iter().find(|l| &l.name == bridge) else {
            continue; // reported as a missing device
        };
        let has: BTreeSet<IpAddr> = seen
            .pinned
            .iter()
            .filter(|(i, _)| *i == link.index)
            .map(|(_, ip)| *ip)
            .collect();
        for ip in has.difference(ips) {
            out.push(difference(
                "neighbour",
                format!("{ip} on {bridge}"),
                "pinned, but no running container has this address",
            ));
        }
        for ip in ips.difference(&has) {
            out.push(difference(
                "neighbour",
                format!("{ip} on {bridge}"),
                "missing: a running container has this address",
            ));
        }
    }
    out
}

/// The maps that follow the host rather than the state: local addresses and uplinks.
fn diff_host(want: &Expected, seen: &Observed) -> Vec<Difference> {
    let host: BTreeMap<[u8; 4], ()> = seen
        .addresses
        .iter()
        .map(|(_, ip)| (ip.octets(), ()))
        .collect();
    let local: BTreeMap<[u8; 4], ()> = seen.local_addrs.iter().map(|a| (*a, ())).collect();
    let mut out = diff_entries(
        maps::LOCAL_ADDRS,
        &host,
        &local,
        |k| Ipv4Addr::from(*k).to_string(),
        |_| String::new(),
        "not an address of this namespace",
    );
    let mut wanted = BTreeMap::new();
    for name in &want.uplinks {
        let Some(link) = seen.links.iter().find(|l| &l.name == name) else {
            out.push(difference("uplink", name, "missing: the daemon uses it"));
            continue;
        };
        let addrs: Vec<Ipv4Addr> = seen
            .addresses
            .iter()
            .filter(|(i, _)| *i == link.index)
            .map(|(_, a)| *a)
            .collect();
        match seen.uplinks.get(&link.index) {
            Some(u) if addrs.contains(&Ipv4Addr::from(u.addr)) => {
                wanted.insert(link.index, *u);
            }
            _ => {
                if let Some(a) = addrs.first() {
                    let u = Uplink {
                        addr: a.octets(),
                        _pad: 0,
                    };
                    wanted.insert(link.index, u);
                }
            }
        }
    }
    out.extend(diff_entries(
        maps::UPLINKS,
        &wanted,
        &seen.uplinks,
        |i| format!("ifindex {i}"),
        |u| format!("SNAT to {}", Ipv4Addr::from(u.addr)),
        "not an uplink of this daemon, or not its address",
    ));
    out
}

fn diff_pins(want: &Expected, seen: &Observed) -> Vec<Difference> {
    let mut out = vec![];
    let links = want.link_pins(seen);
    for (kind, want, seen) in [
        ("links", &links, &seen.link_pins),
        ("maps", &want.map_pins, &seen.map_pins),
    ] {
        for pin in seen.difference(want) {
            out.push(difference(
                "pin",
                format!("{kind}/{pin}"),
                "nothing the daemon runs explains it",
            ));
        }
        for pin in want.difference(seen) {
            out.push(difference("pin", format!("{kind}/{pin}"), "missing"));
        }
    }
    out
}

/// What is wrong in the state alone: addresses of containers that are not running, one
/// address or host port held twice, addresses outside their network's subnet.
pub fn state_problems(state: &State) -> Vec<Difference> {
    let mut out = vec![];
    let mut holders: BTreeMap<(&str, Ipv4Addr), Vec<&str>> = BTreeMap::new();
    let mut veths: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for c in state.containers.values() {
        if c.status != Status::Running {
            for ep in &c.endpoints {
                out.push(difference(
                    "ipam",
                    format!("{} on {}", ep.ip, ep.network),
                    format!("recorded for container {}, which is not running", c.name),
                ));
            }
            if !c.ports.is_empty() {
                out.push(difference(
                    "port",
                    &c.name,
                    "holds bound host ports but is not running",
                ));
            }
        }
        for ep in &c.endpoints {
            holders
                .entry((ep.network.as_str(), ep.ip))
                .or_default()
                .push(&c.name);
            if let Some(veth) = &ep.host_veth {
                veths.entry(veth).or_default().push(&c.name);
            }
            out.extend(address_problem(state, &c.name, &ep.network, ep.ip));
        }
    }
    for ((network, ip), names) in holders {
        if names.len() > 1 {
            out.push(difference(
                "ipam",
                format!("{ip} on {network}"),
                format!("held by {}", names.join(" and ")),
            ));
        }
    }
    for (veth, names) in veths {
        if names.len() > 1 {
            out.push(difference(
                "device",
                veth,
                format!("recorded for {}", names.join(" and ")),
            ));
        }
    }
    out.extend(port_owners(state));
    out.sort();
    out
}

/// Whether `ip`, recorded for container `name` on `network`, is an address it may hold.
fn address_problem(state: &State, name: &str, network: &str, ip: Ipv4Addr) -> Option<Difference> {
    let subject = format!("{ip} on {network}");
    let Some(n) = state.networks.get(network) else {
        return Some(difference(
            "ipam",
            subject,
            format!("container {name} is on a network the state does not have"),
        ));
    };
    let problem = if !n.subnet.contains(&ip) {
        format!("outside the subnet {}", n.subnet)
    } else if ip == n.subnet.network() || ip == n.subnet.broadcast() {
        format!("not a host address of {}", n.subnet)
    } else if ip == n.gateway {
        "the gateway's address".into()
    } else {
        return None;
    };
    Some(difference(
        "ipam",
        subject,
        format!("{problem} (container {name})"),
    ))
}

/// Host ports two containers claim (bound ports of running containers, fixed requested ones).
fn port_owners(state: &State) -> Vec<Difference> {
    let mut by_port: BTreeMap<_, Vec<(&str, &crate::ports::PortMapping)>> = BTreeMap::new();
    for c in state.containers.values() {
        let mut mine: Vec<_> = c.publish.iter().filter(|m| m.host_port != 0).collect();
        mine.extend(&c.ports);
        mine.sort_by_key(|m| (m.proto as u8, m.host_port, m.host_ip));
        mine.dedup_by(|a, b| {
            a.proto == b.proto && a.host_port == b.host_port && a.host_ip == b.host_ip
        });
        for m in mine {
            by_port
                .entry((m.proto as u8, m.host_port))
                .or_default()
                .push((c.name.as_str(), m));
        }
    }
    let mut out = vec![];
    for holders in by_port.values() {
        for (i, (a, ma)) in holders.iter().enumerate() {
            for (b, mb) in &holders[i + 1..] {
                if a != b && crate::ports::conflicts(ma, mb) {
                    out.push(difference(
                        "port",
                        format!("{} {}:{}", ma.proto, ma.host_ip, ma.host_port),
                        format!("claimed by {a} and {b}"),
                    ));
                }
            }
        }
    }
    out
}

/// Names of the maps the embedded eBPF object pins.
fn pinned_map_names() -> BTreeSet<String> {
    let Ok(object) = aya_obj::Object::parse(crate::datapath::EBPF_OBJECT) else {
        return BTreeSet::new();
    };
    object
        .maps
        .iter()
        .filter(|(_, m)| m.pinning() == aya_obj::maps::PinningType::ByName)
        .map(|(name, _)| name.clone())
        .collect()
}

/// The names in directory `dir` (none if it cannot be read).
fn names_in(dir: &std::path::Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok()?.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default()
}

fn is_namespace(path: &std::path::Path) -> bool {
    nix::sys::statfs::statfs(path)
        .is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::NSFS_MAGIC)
}

impl Daemon {
    /// Reads what the kernel holds of everything [`Expected`] describes.
    pub(super) async fn observe(&self, want: &Expected) -> OpResult<Observed> {
        let netns_files = names_in(&self.config.netns_dir())
            .into_iter()
            .map(|name| {
                let is_ns = is_namespace(&self.config.netns_dir().join(&name));
                (name, is_ns)
            })
            .collect();
        let adopted_present = want
            .adopted
            .keys()
            .filter(|p| is_namespace(p))
            .cloned()
            .collect();
        Ok(Observed {
            netns_files,
            container_files: names_in(&self.config.containers_dir()),
            adopted_present,
            links: self.nl.links().await?,
            endpoints: self.dp.endpoints()?,
            networks: self.dp.networks()?,
            neighbors: self.dp.neighbors()?,
            ports: self.dp.dump(maps::PORTS)?,
            pinned: self.pinned_neighbors().await?,
            addresses: self.nl.ipv4_addresses().await?,
            local_addrs: self
                .dp
                .dump::<[u8; 4], u32>(maps::LOCAL_ADDRS)?
                .into_keys()
                .collect(),
            uplinks: self.dp.dump(maps::UPLINKS)?,
            link_pins: names_in(&self.config.bpffs.join("links")),
            map_pins: names_in(&self.config.bpffs.join("maps")),
            remotes: self.dp.remotes()?,
            overlay_ports: self.dp.overlay_ports()?,
            veths: self.dp.veths()?,
            maps6: self.dp.maps6()?,
        })
    }

    /// The namespace's permanent neighbour entries of both families.
    async fn pinned_neighbors(&self) -> OpResult<Vec<(u32, IpAddr)>> {
        let v4 = self.nl.all_pinned_neighbors().await?.into_iter();
        let v6 = self.nl.all_pinned_neighbors6().await?.into_iter();
        Ok(v4
            .map(|(i, ip)| (i, ip.into()))
            .chain(v6.map(|(i, ip)| (i, ip.into())))
            .collect())
    }

    /// `netd check`: the state's own problems and every difference from the kernel.
    pub(super) async fn check(&self) -> OpResult<Reply> {
        let mut want = Expected::from_state(
            &self.state,
            &self.uplinks,
            self.config.cgroup.is_some(),
            pinned_map_names(),
        );
        if let Some(cluster) = &self.cluster {
            let me = std::net::IpAddr::V4(cluster.advertise);
            want.add_cluster(super::overlay::remote_tunnels(
                &self.state,
                &self.cluster_view,
                me,
            ));
        }
        let seen = self.observe(&want).await?;
        let mut differences = state_problems(&self.state);
        for (subject, problem) in self.claim_differences().await? {
            differences.push(difference("cluster store", subject, problem));
        }
        differences.extend(diff(&want, &seen));
        let containers = &self.state.containers;
        Ok(Reply::Check(CheckView {
            networks: self.state.networks.len(),
            containers: containers.len(),
            running: containers
                .values()
                .filter(|c| c.status == Status::Running)
                .count(),
            endpoints: want.endpoints.len(),
            ports: want.ports.len(),
            differences: differences
                .into_iter()
                .map(|d| DifferenceView {
                    area: d.area,
                    subject: d.subject,
                    problem: d.problem,
                })
                .collect(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        ports::{PortMapping, Proto},
        state::testing::{network, running},
    };

    /// Two networks; `web` on both publishing 8080, `db` on n2; `old` stopped.
    fn state() -> State {
        let mut s = State::default();
        s.networks
            .insert("n1".into(), network("n1", "10.1.0.0/24", 1));
        s.networks
            .insert("n2".into(), network("n2", "10.2.0.0/24", 2));
        let mut web = running(
            "web",
            &[
                ("n1", "veth1", "10.1.0.2", &[]),
                ("n2", "veth2", "10.2.0.2", &[]),
            ],
        );
        let http = PortMapping::new(Ipv4Addr::UNSPECIFIED, 8080, 80, Proto::Tcp);
        web.publish = vec![http];
        web.ports = vec![http];
        s.containers.insert("web".into(), web);
        s.containers.insert(
            "db".into(),
            running("db", &[("n2", "veth3", "10.2.0.3", &[])]),
        );
        let mut old = running("old", &[]);
        old.status = Status::Exited;
        s.containers.insert("old".into(), old);
        s
    }

    fn expected(s: &State) -> Expected {
        let maps = BTreeSet::from(["NETD_ENDPOINTS".to_string(), "NETD_PORTS".to_string()]);
        Expected::from_state(s, &[], false, maps)
    }

    /// A kernel that holds exactly what `want` says.
    fn kernel_for(want: &Expected) -> Observed {
        let mut seen = Observed::default();
        let index: BTreeMap<String, u32> = want
            .devices
            .keys()
            .enumerate()
            .map(|(i, n)| (n.clone(), i as u32 + 10))
            .collect();
        for (name, w) in &want.devices {
            seen.links.push(LinkState {
                index: index[name],
                name: name.clone(),
                owner: Some(w.owner.clone()),
                kind: Some(w.kind.into()),
                master: w.master.as_ref().map(|m| index[m]),
                group: DEVICE_GROUP,
                up: true,
                mac: w.mac,
            });
        }
        seen.links.push(LinkState {
            index: 1,
            name: "lo".into(),
            owner: None,
            kind: None,
            master: None,
            group: 0,
            up: true,
            mac: None,
        });
        seen.netns_files = want.netns_files.keys().map(|n| (n.clone(), true)).collect();
        seen.endpoints = want
            .endpoints
            .iter()
            .map(|(veth, ep)| (index[veth], *ep))
            .collect();
        seen.networks = want.networks.clone();
        seen.neighbors = want.neighbors.clone();
        seen.veths = want
            .veths
            .iter()
            .map(|(addr, veth)| (*addr, index[veth]))
            .collect();
        seen.ports = want
            .ports
            .iter()
            .map(|(k, (veth, b))| {
                let b = Backend {
                    ifindex: index[veth],
                    ..*b
                };
                (*k, b)
            })
            .collect();
        for (bridge, ips) in &want.pinned {
            seen.pinned
                .extend(ips.iter().map(|ip| (index[bridge], *ip)));
        }
        let ports6 = want.ports6.iter().map(|(veth, p)| plan::Port6 {
            ifindex: index[veth],
            ..*p
        });
        seen.maps6 = plan::maps6(ports6, want.networks6.iter().copied());
        seen.map_pins = want.map_pins.clone();
        seen.container_files = want.containers.clone();
        seen
    }

    #[test]
    fn a_dual_stack_network_needs_its_ipv6_entries_and_pins() {
        let mut s = state();
        s.networks.insert(
            "v6".into(),
            crate::state::testing::dual("v6", "172.28.0.0/16", "fd00:28::/64", 7),
        );
        let mut c = running("six", &[("v6", "veth6", "172.28.0.2", &[])]);
        c.endpoints[0].ip6 = Some("fd00:28::2".parse().unwrap());
        s.containers.insert(c.name.clone(), c);
        let want = expected(&s);
        let kernel = kernel_for(&want);
        assert_eq!(lines(&diff(&want, &kernel)), Vec::<String>::new());
        assert_eq!(kernel.maps6.veths.len(), 1);
        let mut stale = kernel.clone();
        stale.maps6.veths.clear();
        stale.pinned.retain(|(_, ip)| !ip.is_ipv6());
        let found = lines(&diff(&want, &stale));
        assert!(
            found
                .iter()
                .any(|l| l.contains("NETD_VETHS6") && l.contains("fd00:28::2")),
            "{found:?}"
        );
        assert!(
            found
                .iter()
                .any(|l| l.contains("neighbour") && l.contains("fd00:28::2")),
            "{found:?}"
        );
    }

    fn lines(differences: &[Difference]) -> Vec<String> {
        differences.iter().map(ToString::to_string).collect()
    }

    fn link<'a>(seen: &'a mut Observed, name: &str) -> &'a mut LinkState {
        seen.links.iter_mut().find(|l| l.name == name).unwrap()
    }

    #[test]
    fn a_kernel_that_holds_what_the_state_says_has_no_differences() {
        let s = state();
        let want = expected(&s);
        assert_eq!(want.netns_files.len(), 2, "running containers only");
        assert_eq!(want.ports.len(), 1);
        assert!(diff(&want, &kernel_for(&want)).is_empty());
        assert!(state_problems(&s).is_empty());
    }

    #[test]
    fn namespace_files_are_those_of_running_containers_and_files_those_of_known_ones() {
        let want = expected(&state());
        let mut seen = kernel_for(&want);
        seen.netns_files.remove("db");
        seen.netns_files.insert("old".into(), true);
        seen.netns_files.insert("web".into(), false);
        seen.container_files = ["old", "web", "gone"].map(String::from).into();
        assert_eq!(
            lines(&diff(&want, &seen)),
            [
                "files containers/gone: the files of a container the state does not have",
                "netns db: missing: container db is running",
                "netns old: a namespace file that no running container owns",
                "netns web: the file of running container web is not a namespace",
            ]
        );
    }

    #[test]
    fn netd_devices_without_an_owner_and_owners_without_devices_are_reported() {
        let want = expected(&state());
        let mut seen = kernel_for(&want);
        seen.links.retain(|l| l.name != "veth3");
        seen.endpoints.retain(|_, ep| ep.addr != [10, 2, 0, 3]);
        let bridge = link(&mut seen, "br-n1").index;
        seen.links.push(LinkState {
            index: 99,
            name: "vethdead".into(),
            owner: Some("container:gone".into()),
            kind: Some("veth".into()),
            master: Some(bridge),
            group: DEVICE_GROUP,
            up: true,
            mac: None,
        });
        seen.links.push(LinkState {
            index: 98,
            name: "vethhalf".into(),
            owner: None,
            kind: Some("veth".into()),
            master: Some(bridge),
            group: 0,
            up: false,
            mac: None,
        });
        seen.links.push(LinkState {
            index: 97,
            name: "br-half".into(),
            owner: None,
            kind: Some("bridge".into()),
            master: None,
            group: DEVICE_GROUP,
            up: false,
            mac: None,
        });
        let found = lines(&diff(&want, &seen));
        assert!(found.contains(&"device br-half: created by netd but never tagged".into()));
        assert!(found.contains(&"device veth3: missing: it is container db on n2's".into()));
        assert!(found.contains(
            &"device vethdead: tagged netd:container:gone, but nothing in the state has it".into()
        ));
        assert!(found.contains(&"device vethhalf: untagged, on a netd bridge".into()));
        assert!(
            found
                .iter()
                .any(|l| l.starts_with("map NETD_ENDPOINTS veth3: missing")),
            "{found:?}"
        );
    }

    #[test]
    fn a_device_on_the_wrong_bridge_or_down_or_with_another_owner_is_reported() {
        let want = expected(&state());
        let mut seen = kernel_for(&want);
        let n2 = link(&mut seen, "br-n2").index;
        link(&mut seen, "veth1").master = Some(n2);
        link(&mut seen, "veth2").up = false;
        link(&mut seen, "br-n1").owner = Some("network:other".into());
        link(&mut seen, "br-n1").mac = Some([2, 0, 0, 0, 0, 1]);
        let found = lines(&diff(&want, &seen));
        assert!(found.contains(&"device veth1: plugged into br-n2, not br-n1".into()));
        assert!(found.contains(&"device veth2: down".into()));
        assert!(found
            .iter()
            .any(|l| l
                .starts_with("device br-n1: tagged netd:network:other, but it is network n1's")));
        assert!(found
            .iter()
            .any(|l| l.starts_with("device br-n1: MAC 02:00:00:00:00:01, not 02:42:")));
        assert_eq!(found.len(), 4, "{found:?}");
    }

    #[test]
    fn map_entries_nothing_explains_and_missing_ones_are_reported() {
        let s = state();
        let want = expected(&s);
        let mut seen = kernel_for(&want);
        let veth1 = link(&mut seen, "veth1").index;
        let mut wrong = seen.endpoints[&veth1];
        wrong.net_id = 7;
        seen.endpoints.insert(veth1, wrong);
        seen.endpoints.insert(555, wrong);
        seen.networks.clear();
        seen.neighbors
            .insert([10, 1, 0, 9], seen.neighbors[&[10, 1, 0, 2]]);
        let found = lines(&diff(&want, &seen));
        assert!(found.contains(&"map NETD_ENDPOINTS veth1: holds 10.1.0.2 02:42:0a:01:00:02 net_id 7, the state says 10.1.0.2 02:42:0a:01:00:02 net_id 1".into()), "{found:?}");
        assert!(found
            .iter()
            .any(|l| l.starts_with("map NETD_ENDPOINTS ifindex 555:")
                && l.ends_with("no such device")));
        assert!(found.contains(&"map NETD_NETWORKS 10.1.0.0/24: missing: net_id 1".into()));
        assert!(found
            .iter()
            .any(|l| l.starts_with("map NETD_NEIGHBORS 10.1.0.9:")
                && l.ends_with("neither a gateway nor a running container has this address")));
    }

    #[test]
    fn a_published_port_whose_container_is_gone_is_reported() {
        let mut s = state();
        let want_before = expected(&s);
        let seen = kernel_for(&want_before);
        s.containers.remove("web");
        let want = expected(&s);
        let found = lines(&diff(&want, &seen));
        assert!(
            found.contains(
                &"map NETD_PORTS tcp 0.0.0.0:8080: 10.1.0.2:80 via veth1 (gateway 10.1.0.1): no running container publishes it"
                    .into()
            ),
            "{found:?}"
        );
    }

    #[test]
    fn a_published_port_that_leads_elsewhere_is_reported() {
        let want = expected(&state());
        let mut seen = kernel_for(&want);
        let veth3 = link(&mut seen, "veth3").index;
        for b in seen.ports.values_mut() {
            b.ifindex = veth3;
        }
        let found = lines(&diff(&want, &seen));
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].contains("via veth3 (gateway 10.1.0.1), the state says 10.1.0.2:80 via veth1")
        );
    }

    #[test]
    fn pinned_neighbours_follow_running_containers() {
        let want = expected(&state());
        let mut seen = kernel_for(&want);
        let n1 = link(&mut seen, "br-n1").index;
        seen.pinned
            .retain(|(_, ip)| *ip != Ipv4Addr::new(10, 2, 0, 3));
        seen.pinned.push((n1, Ipv4Addr::new(10, 1, 0, 77).into()));
        assert_eq!(
            lines(&diff(&want, &seen)),
            [
                "neighbour 10.1.0.77 on br-n1: pinned, but no running container has this address",
                "neighbour 10.2.0.3 on br-n2: missing: a running container has this address",
            ]
        );
    }

    #[test]
    fn pins_nothing_explains_and_missing_ones_are_reported() {
        let s = state();
        let mut want = expected(&s);
        want.uplinks = vec!["up0".into()];
        let mut seen = kernel_for(&want);
        seen.links.push(LinkState {
            index: 2,
            name: "up0".into(),
            owner: None,
            kind: Some("veth".into()),
            master: None,
            group: 0,
            up: true,
            mac: None,
        });
        seen.addresses.push((2, Ipv4Addr::new(10, 99, 0, 2)));
        seen.local_addrs.insert([10, 99, 0, 2]);
        seen.uplinks.insert(
            2,
            Uplink {
                addr: [10, 99, 0, 2],
                _pad: 0,
            },
        );
        seen.link_pins = ["uplink-in-up0", "uplink-in-gone0"]
            .map(String::from)
            .into();
        seen.map_pins.remove("NETD_PORTS");
        seen.map_pins.insert("NETD_OLD".into());
        assert_eq!(
            lines(&diff(&want, &seen)),
            [
                "pin links/uplink-in-gone0: nothing the daemon runs explains it",
                "pin links/uplink-out-up0: missing",
                "pin maps/NETD_OLD: nothing the daemon runs explains it",
                "pin maps/NETD_PORTS: missing",
            ]
        );
    }

    #[test]
    fn local_addresses_and_uplinks_follow_the_host() {
        let mut want = expected(&state());
        want.uplinks = vec!["up0".into()];
        let mut seen = kernel_for(&want);
        seen.links.push(LinkState {
            index: 2,
            name: "up0".into(),
            owner: None,
            kind: Some("veth".into()),
            master: None,
            group: 0,
            up: true,
            mac: None,
        });
        seen.addresses.push((2, Ipv4Addr::new(10, 99, 0, 2)));
        seen.local_addrs.insert([10, 99, 0, 9]);
        seen.link_pins = ["uplink-in-up0", "uplink-out-up0"].map(String::from).into();
        assert_eq!(
            lines(&diff(&want, &seen)),
            [
                "map NETD_LOCAL_ADDRS 10.99.0.2: missing",
                "map NETD_LOCAL_ADDRS 10.99.0.9: not an address of this namespace",
                "map NETD_UPLINKS ifindex 2: missing: SNAT to 10.99.0.2",
            ]
        );
    }

    #[test]
    fn addresses_of_stopped_containers_and_addresses_held_twice_are_state_problems() {
        let mut s = state();
        let old = s.containers.get_mut("old").unwrap();
        old.endpoints = running("old", &[("n1", "veth9", "10.1.0.2", &[])]).endpoints;
        let db = s.containers.get_mut("db").unwrap();
        db.endpoints[0].ip = Ipv4Addr::new(10, 1, 0, 5);
        s.containers.insert(
            "gw".into(),
            running("gw", &[("n1", "veth8", "10.1.0.1", &[])]),
        );
        assert_eq!(
            lines(&state_problems(&s)),
            [
                "ipam 10.1.0.1 on n1: the gateway's address (container gw)",
                "ipam 10.1.0.2 on n1: held by old and web",
                "ipam 10.1.0.2 on n1: recorded for container old, which is not running",
                "ipam 10.1.0.5 on n2: outside the subnet 10.2.0.0/24 (container db)",
            ]
        );
    }

    #[test]
    fn a_host_port_claimed_by_two_containers_is_a_state_problem() {
        let mut s = state();
        let clash = PortMapping::new(Ipv4Addr::new(10, 99, 0, 2), 8080, 81, Proto::Tcp);
        let other = PortMapping::new(Ipv4Addr::UNSPECIFIED, 8080, 80, Proto::Udp);
        s.containers.get_mut("db").unwrap().ports = vec![clash, other];
        s.containers.get_mut("old").unwrap().ports = vec![other];
        assert_eq!(
            lines(&state_problems(&s)),
            [
                "port old: holds bound host ports but is not running",
                "port tcp 10.99.0.2:8080: claimed by db and web",
                "port udp 0.0.0.0:8080: claimed by db and old",
            ]
        );
    }
}
