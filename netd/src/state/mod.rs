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

use std::{
    collections::BTreeMap,
    net::{Ipv4Addr, Ipv6Addr},
    path::PathBuf,
};

use ipnet::{Ipv4Net, Ipv6Net};
use serde::{Deserialize, Serialize};

use crate::{
    ipam::{Pool, Pool6},
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
    /// The network's IPv6 addressing: set for a dual-stack network (`--ipv6` and an IPv6
    /// `--subnet`, or the default network with `--default-subnet-v6`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6: Option<Ipv6Subnet>,
}

/// The IPv6 half of a dual-stack network: its subnet, the gateway (an address of the host's
/// bridge) and the sub-range containers get their addresses from (`--ip-range`).
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6Subnet {
    pub subnet: Ipv6Net,
    pub gateway: Ipv6Addr,
    pub ip_range: Option<Ipv6Net>,
}

impl Ipv6Subnet {
    /// Where the network's IPv6 addresses come from.
    pub fn pool(&self) -> Pool6 {
        Pool6 {
            subnet: self.subnet,
            gateway: self.gateway,
            range: self.ip_range,
        }
    }
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

    /// The IPv6 address pool of a dual-stack network.
    pub fn pool6(&self) -> Option<Pool6> {
        self.ipv6.as_ref().map(Ipv6Subnet::pool)
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
    /// Requested with `--ip6` (a dual-stack network only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip6: Option<Ipv6Addr>,
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
    /// The endpoint's IPv6 address, on a dual-stack network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip6: Option<Ipv6Addr>,
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

    /// IPv6 addresses in use on `network`: every running endpoint's that has one.
    pub fn addresses6_in_use(&self, network: &str) -> Vec<Ipv6Addr> {
        self.endpoints()
            .filter(|(_, ep)| ep.network == network)
            .filter_map(|(_, ep)| ep.ip6)
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
            ipv6: None,
        }
    }

    /// A dual-stack user-defined bridge network, its IPv6 gateway the subnet's `::1`.
    pub fn dual(name: &str, subnet: &str, subnet6: &str, net_id: u32) -> Network {
        let subnet6: Ipv6Net = subnet6.parse().unwrap();
        Network {
            ipv6: Some(Ipv6Subnet {
                subnet: subnet6,
                gateway: crate::ipam::default_gateway6(subnet6),
                ip_range: None,
            }),
            user_subnet: true,
            ..network(name, subnet, net_id)
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
                    ip6: None,
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
                        ip6: None,
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

    /// A record written before dual stack (no `ipv6`, `ip6` anywhere) reads as IPv4-only, and
    /// an IPv4-only record is written without the new fields, as before.
    #[test]
    fn records_from_before_dual_stack_load_as_ipv4_only() {
        let network = r#"{"name":"web","id":"ab","driver":{"kind":"bridge","device":"br-ab"},
            "subnet":"172.18.0.0/16","gateway":"172.18.0.1","ip_range":null,"internal":false,
            "options":{},"net_id":2,"default":false,"user_subnet":false,"created":7}"#;
        let n: Network = serde_json::from_str(network).unwrap();
        assert_eq!(n.ipv6, None);
        assert!(!serde_json::to_string(&n).unwrap().contains("ipv6"));
        let container = serde_json::to_value(running("c1", &[("web", "v0", "172.18.0.2", &[])]))
            .unwrap()
            .to_string();
        assert!(!container.contains("ip6"), "{container}");
        let c: Container = serde_json::from_str(&container).unwrap();
        assert_eq!((c.attachments[0].ip6, c.endpoints[0].ip6), (None, None));
    }

    #[test]
    fn a_dual_stack_network_and_endpoint_read_back_as_saved() {
        let n = super::testing::dual("v6", "172.28.0.0/16", "fd00:28::/64", 3);
        let text = serde_json::to_string(&n).unwrap();
        assert!(text.contains(r#""gateway":"fd00:28::1""#), "{text}");
        assert_eq!(serde_json::from_str::<Network>(&text).unwrap(), n);
        let mut c = running("c1", &[("v6", "v0", "172.28.0.2", &[])]);
        c.attachments[0].ip6 = Some("fd00:28::9".parse().unwrap());
        c.endpoints[0].ip6 = Some("fd00:28::9".parse().unwrap());
        let text = serde_json::to_string(&c).unwrap();
        assert_eq!(serde_json::from_str::<Container>(&text).unwrap(), c);
        let mut s = State::default();
        s.containers.insert(c.name.clone(), c);
        assert_eq!(
            s.addresses6_in_use("v6"),
            ["fd00:28::9".parse::<Ipv6Addr>().unwrap()]
        );
        assert!(s.addresses6_in_use("other").is_empty());
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
