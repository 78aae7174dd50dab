//! The daemon's state: networks, containers and their endpoints. [`store`] keeps it on disk.
//!
//! Only completed operations are recorded. Whatever a crash leaves half-made is found at the next
//! start by the tags netd puts on what it creates (interface aliases, netns files, pins) and is
//! removed, so the recorded state and the kernel agree again.
mod driver;
mod runs;
pub mod store;

pub use driver::{
    BridgeConfig, DriverConfig, MacvlanConfig, MacvlanMode, OverlayConfig, VlanKind, VlanParent,
};

use std::{collections::BTreeMap, net::Ipv4Addr, path::PathBuf};

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use crate::{
    ipam::Pool,
    ports::{ExposedPort, PortMapping},
};

/// Everything netd has set up, by name.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct State {
    pub networks: BTreeMap<String, Network>,
    pub containers: BTreeMap<String, Container>,
}

/// A network: addressing every driver shares, and the driver's own configuration.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(from = "driver::NetworkRecord")]
pub struct Network {
    pub name: String,
    pub id: String,
    /// The driver and what it made for the network.
    pub driver: DriverConfig,
    pub subnet: Ipv4Net,
    pub gateway: Ipv4Addr,
    pub ip_range: Option<Ipv4Net>,
    pub internal: bool,
    pub options: BTreeMap<String, String>,
    /// Identifier inside the datapath maps (never 0).
    pub net_id: u32,
    /// Set for the default `bridge` network: no name resolution, no `--ip`.
    pub default: bool,
    /// The `--subnet` was given by the user (Docker allows `--ip` only then).
    pub user_subnet: bool,
    pub created: u64,
}

impl Network {
    /// Whether the network is shared by the hosts of a cluster (Docker's `global` scope).
    pub fn is_global(&self) -> bool {
        matches!(self.driver, DriverConfig::Overlay(_))
    }

    /// The overlay's VNI, for an overlay network.
    pub fn vni(&self) -> Option<u32> {
        match &self.driver {
            DriverConfig::Overlay(o) => Some(o.vni),
            _ => None,
        }
    }

    /// The bridge device, for a bridge or overlay network (each has one on the host).
    pub fn bridge(&self) -> Option<&str> {
        match &self.driver {
            DriverConfig::Bridge(b) => Some(&b.device),
            DriverConfig::Overlay(o) => Some(&o.device),
            _ => None,
        }
    }

    pub fn pool(&self) -> Pool {
        Pool {
            subnet: self.subnet,
            gateway: self.gateway,
            range: self.ip_range,
        }
    }
}

/// How a container is attached.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case", tag = "kind", content = "target")]
pub enum NetworkMode {
    /// Its own namespace with endpoints on bridge networks.
    Bridge,
    /// The daemon's own namespace.
    Host,
    /// Its own namespace with loopback only.
    None,
    /// The namespace of another container.
    Container(String),
}

/// A network a container is (to be) connected to.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Attachment {
    pub network: String,
    /// Requested with `--ip`.
    pub ip: Option<Ipv4Addr>,
    pub aliases: Vec<String>,
    /// The interface name asked for (a CNI runtime's); the lowest free `ethN` if none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ifname: Option<String>,
    /// The runtime moves the device in and configures it (Docker's Join): the name the peer
    /// waits under in the host's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handover: Option<String>,
    /// Docker's `--link NAME:ALIAS` on a user-defined network, as `NAME:ALIAS`: ALIAS names
    /// container NAME on this network, for this container's lookups only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<String>,
}

/// A live interface of a running container on one network.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct EndpointState {
    pub network: String,
    /// Interface name inside the container (`eth0`, `eth1`, ...).
    pub ifname: String,
    /// Host-side veth on the network's bridge (none for a driver without one, such as macvlan).
    #[serde(default)]
    pub host_veth: Option<String>,
    pub ip: Ipv4Addr,
    pub mac: [u8; 6],
    /// The bridge had no free port (a Linux bridge has 1,023): the host end is a routed port
    /// of its own (a /32 route to the container through it, the gateway's MAC), not a bridge
    /// port.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub beyond_bridge: bool,
}

/// Lifecycle, as Docker names it.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Created,
    Running,
    Exited,
}

/// A container: a network namespace netd wires up.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Container {
    pub name: String,
    pub id: String,
    pub mode: NetworkMode,
    pub attachments: Vec<Attachment>,
    /// Requested mappings (`-p`, `-P`, `container publish`); host port 0 is chosen at start.
    #[serde(with = "runs")]
    pub publish: Vec<PortMapping>,
    /// Mappings in force while running, every host port chosen.
    #[serde(default, with = "runs")]
    pub ports: Vec<PortMapping>,
    /// `--publish-allow PORT=CIDR,...`: host ports with an allowlist of their own.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub publish_allow: Vec<crate::policy::PortAllow>,
    pub expose: Vec<ExposedPort>,
    /// `--link` as `NAME:ALIAS`.
    pub links: Vec<String>,
    /// The link environment, taken when the container last started (Docker does not update
    /// it when a linked container moves; the hosts entries follow).
    #[serde(default)]
    pub link_env: Vec<String>,
    pub env: Vec<String>,
    pub hostname: String,
    /// Namespace adopted with `--netns`; netd neither creates nor removes it.
    pub adopted_netns: Option<PathBuf>,
    /// The runtime that manages the container and its namespace (`cni`), if one does.
    #[serde(default)]
    pub runtime: Option<String>,
    /// The runtime's own ID for it (`CNI_CONTAINERID`), by which CNI's GC names what it keeps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_id: Option<String>,
    pub status: Status,
    /// Present while running.
    pub endpoints: Vec<EndpointState>,
    pub created: u64,
}

impl Container {
    /// Whether a runtime moves the container's devices in and configures them itself
    /// (Docker's sandboxes): netd then does nothing inside its namespace.
    pub fn handed_over(&self) -> bool {
        !self.attachments.is_empty() && self.attachments.iter().all(|a| a.handover.is_some())
    }
}

impl State {
    /// Addresses in use on `network`: every running endpoint's.
    pub fn addresses_in_use(&self, network: &str) -> Vec<Ipv4Addr> {
        self.endpoints()
            .filter(|(_, ep)| ep.network == network)
            .map(|(_, ep)| ep.ip)
            .collect()
    }

    /// Every live endpoint with its container.
    pub fn endpoints(&self) -> impl Iterator<Item = (&Container, &EndpointState)> {
        self.containers
            .values()
            .flat_map(|c| c.endpoints.iter().map(move |ep| (c, ep)))
    }

    /// Containers attached to `network` (running or not).
    pub fn containers_on(&self, network: &str) -> Vec<&Container> {
        self.containers
            .values()
            .filter(|c| c.attachments.iter().any(|a| a.network == network))
            .collect()
    }

    /// Finds a container by name, full ID or unique ID prefix, as Docker does.
    pub fn find_container(&self, key: &str) -> Option<&Container> {
        if let Some(c) = self.containers.get(key) {
            return Some(c);
        }
        let mut by_id = self.containers.values().filter(|c| c.id.starts_with(key));
        match (by_id.next(), by_id.next()) {
            (Some(c), None) if !key.is_empty() => Some(c),
            _ => None,
        }
    }

    /// Calls network `old` `new` everywhere the state names it (the network and every
    /// container's attachments and endpoints). Devices and maps know networks by ID and
    /// `net_id`, so nothing else changes. `false`, and nothing changed, if there is no `old` or
    /// `new` is another network's name.
    pub fn rename_network(&mut self, old: &str, new: &str) -> bool {
        if old == new || self.networks.contains_key(new) {
            return false;
        }
        let Some(mut network) = self.networks.remove(old) else {
            return false;
        };
        network.name = new.to_string();
        self.networks.insert(new.to_string(), network);
        for c in self.containers.values_mut() {
            for a in c.attachments.iter_mut().filter(|a| a.network == old) {
                a.network = new.to_string();
            }
            for ep in c.endpoints.iter_mut().filter(|ep| ep.network == old) {
                ep.network = new.to_string();
            }
        }
        true
    }

    /// The lowest unused `net_id` (the datapath reserves 0).
    pub fn free_net_id(&self) -> u32 {
        (1..)
            .find(|id| self.networks.values().all(|n| n.net_id != *id))
            .expect("fewer than 2^32 networks")
    }
}

/// Seconds since the Unix epoch.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Builders of states for unit tests elsewhere.
#[cfg(test)]
pub mod testing {
    use super::*;

    /// A user-defined bridge network (not internal, not the default).
    pub fn network(name: &str, subnet: &str, net_id: u32) -> Network {
        let subnet: Ipv4Net = subnet.parse().unwrap();
        Network {
            name: name.into(),
            id: format!("{name:0>64}"),
            driver: DriverConfig::Bridge(BridgeConfig {
                device: format!("br-{name}"),
            }),
            subnet,
            gateway: crate::ipam::default_gateway(subnet),
            ip_range: None,
            internal: false,
            options: BTreeMap::new(),
            net_id,
            default: false,
            user_subnet: false,
            created: 0,
        }
    }

    /// A running container with one endpoint per (network, host veth, address, aliases), its
    /// ID made of `name` padded with zeros and Docker-style MACs.
    pub fn running(name: &str, eps: &[(&str, &str, &str, &[&str])]) -> Container {
        Container {
            name: name.into(),
            id: format!("{name:0<64}"),
            mode: NetworkMode::Bridge,
            attachments: eps
                .iter()
                .map(|(n, _, _, aliases)| Attachment {
                    network: n.to_string(),
                    ip: None,
                    aliases: aliases.iter().map(|a| a.to_string()).collect(),
                    ifname: None,
                    handover: None,
                    links: vec![],
                })
                .collect(),
            publish: vec![],
            ports: vec![],
            publish_allow: vec![],
            expose: vec![],
            links: vec![],
            link_env: vec![],
            env: vec![],
            hostname: name.into(),
            adopted_netns: None,
            runtime: None,
            runtime_id: None,
            status: Status::Running,
            endpoints: eps
                .iter()
                .enumerate()
                .map(|(i, (n, veth, ip, _))| {
                    let ip: Ipv4Addr = ip.parse().unwrap();
                    let o = ip.octets();
                    EndpointState {
                        network: n.to_string(),
                        ifname: format!("eth{i}"),
                        host_veth: Some(veth.to_string()),
                        ip,
                        mac: [0x02, 0x42, o[0], o[1], o[2], o[3]],
                        beyond_bridge: false,
                    }
                })
                .collect(),
            created: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{network, running};
    use super::*;

    fn two_networks() -> State {
        let mut s = State::default();
        for n in [
            network("9305ab", "10.1.0.0/24", 1),
            network("back", "10.2.0.0/24", 2),
        ] {
            s.networks.insert(n.name.clone(), n);
        }
        let web = running(
            "web",
            &[
                ("9305ab", "v0", "10.1.0.2", &[]),
                ("back", "v1", "10.2.0.2", &[]),
            ],
        );
        s.containers.insert(web.name.clone(), web);
        s
    }

    #[test]
    fn a_renamed_network_keeps_its_containers_under_the_new_name() {
        let mut s = two_networks();
        let id = s.networks["9305ab"].id.clone();
        assert!(s.rename_network("9305ab", "front"));
        assert_eq!(s.networks["front"].id, id);
        assert_eq!(s.networks["front"].name, "front");
        assert!(!s.networks.contains_key("9305ab"));
        let web = &s.containers["web"];
        assert_eq!(web.attachments[0].network, "front");
        assert_eq!(web.endpoints[0].network, "front");
        assert_eq!(
            web.endpoints[1].network, "back",
            "the other network is untouched"
        );
        assert_eq!(s.containers_on("front").len(), 1);
    }

    #[test]
    fn a_name_another_network_has_or_a_missing_network_is_not_renamed() {
        let mut s = two_networks();
        let before = s.clone();
        assert!(!s.rename_network("9305ab", "back"));
        assert!(!s.rename_network("nowhere", "front"));
        assert!(!s.rename_network("back", "back"));
        assert_eq!(s, before);
    }
}
