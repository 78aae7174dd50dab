//! What the datapath maps must hold, computed from the state alone, and the difference from what
//! they hold now. Pure functions: unit-tested without root, applied by [`super::Datapath`].
use std::{collections::BTreeMap, net::Ipv6Addr};

use ipnet::{Ipv4Net, Ipv6Net};
use netd_common::{
    Endpoint, Endpoint6, Neighbor, NetworkInfo, OverlayPort, Tunnel, ENDPOINT_FLAG_INTERNAL,
    ENDPOINT_FLAG_OVERLAY,
};

use crate::{
    ipam,
    state::{DriverConfig, EndpointState, MacvlanConfig, Network, State, VlanKind},
};

/// The map entry for one container interface.
pub fn endpoint_entry(network: &Network, ep: &EndpointState) -> Endpoint {
    Endpoint {
        addr: ep.ip.octets(),
        mac: ep.mac,
        _pad: [0; 2],
        net_id: network.net_id,
        flags: endpoint_flags(network),
    }
}

fn endpoint_flags(network: &Network) -> u32 {
    let mut flags = 0;
    if network.internal {
        flags |= ENDPOINT_FLAG_INTERNAL;
    }
    if network.is_global() {
        flags |= ENDPOINT_FLAG_OVERLAY;
    }
    flags
}

/// The decapsulation entry of an overlay endpoint on this host whose host-side port is
/// `ifindex`.
pub fn overlay_port(network: &Network, ep: &EndpointState, ifindex: u32) -> Option<OverlayPort> {
    Some(OverlayPort {
        ifindex,
        vni: network.vni()?,
        mac: ep.mac,
        _pad: [0; 2],
    })
}

/// The ARP responder's entry for an overlay endpoint on another host.
pub fn remote_neighbor(addr: [u8; 4], tunnel: &Tunnel) -> ([u8; 4], Neighbor) {
    let neighbor = Neighbor {
        mac: tunnel.mac,
        _pad: [0; 2],
        net_id: tunnel.net_id,
    };
    (addr, neighbor)
}

/// The trie entry for one network.
pub fn network_entry(network: &Network) -> NetworkInfo {
    NetworkInfo {
        net_id: network.net_id,
        flags: 0,
    }
}

/// The MAC netd gives a network's bridge: that of its gateway address, fixed so that it does not
/// follow the lowest port's as ports come and go (and what the ARP responder answers with).
pub fn bridge_mac(network: &Network) -> [u8; 6] {
    ipam::mac_for(network.gateway)
}

/// The ARP responder's entry for a network's gateway.
pub fn gateway_neighbor(network: &Network) -> ([u8; 4], Neighbor) {
    let neighbor = Neighbor {
        mac: bridge_mac(network),
        _pad: [0; 2],
        net_id: network.net_id,
    };
    (network.gateway.octets(), neighbor)
}

/// The ARP responder's entry for a container interface, from its endpoint entry.
pub fn endpoint_neighbor(ep: &Endpoint) -> ([u8; 4], Neighbor) {
    let neighbor = Neighbor {
        mac: ep.mac,
        _pad: [0; 2],
        net_id: ep.net_id,
    };
    (ep.addr, neighbor)
}

/// Every address the ARP responder answers for: each network's gateway, each running
/// container interface, and each overlay endpoint on another host (`remotes`, the tunnel map).
pub fn neighbors(
    state: &State,
    remotes: &BTreeMap<[u8; 4], Tunnel>,
) -> BTreeMap<[u8; 4], Neighbor> {
    let gateways = bridge_networks(state).map(gateway_neighbor);
    let containers = endpoints(state)
        .into_values()
        .map(|ep| endpoint_neighbor(&ep));
    let remote = remotes.iter().map(|(a, t)| remote_neighbor(*a, t));
    gateways.chain(remote).chain(containers).collect()
}

/// The tunnel entries of `remotes` that still belong to an overlay network of the state (by
/// its id on this host and its VNI).
pub fn live_remotes(
    state: &State,
    remotes: &BTreeMap<[u8; 4], Tunnel>,
) -> BTreeMap<[u8; 4], Tunnel> {
    remotes
        .iter()
        .filter(|(_, t)| {
            state
                .networks
                .values()
                .any(|n| n.net_id == t.net_id && n.vni() == Some(t.vni))
        })
        .map(|(a, t)| (*a, *t))
        .collect()
}

/// The decapsulation entry of every running overlay endpoint, given the index of each
/// host-side port by name.
pub fn overlay_ports(
    state: &State,
    index_of: &BTreeMap<String, u32>,
) -> BTreeMap<[u8; 4], OverlayPort> {
    state
        .endpoints()
        .filter_map(|(_, ep)| {
            let network = state.networks.get(&ep.network)?;
            let index = *index_of.get(ep.host_veth.as_ref()?)?;
            Some((ep.ip.octets(), overlay_port(network, ep, index)?))
        })
        .collect()
}

/// The host-side veth of every container address with one, by the veths' ifindexes
/// (`index_of`): where [`maps::VETHS`](netd_common::maps::VETHS) sends packets for them.
pub fn veths(state: &State, index_of: &BTreeMap<String, u32>) -> BTreeMap<[u8; 4], u32> {
    state
        .endpoints()
        .filter_map(|(_, ep)| Some((ep.ip.octets(), *index_of.get(ep.host_veth.as_ref()?)?)))
        .collect()
}

/// Every endpoint entry the state implies, keyed by host-side veth name (endpoints without one,
/// such as macvlan's, pass no program).
pub fn endpoints(state: &State) -> BTreeMap<String, Endpoint> {
    state
        .endpoints()
        .filter_map(|(_, ep)| {
            let network = state.networks.get(&ep.network)?;
            Some((ep.host_veth.clone()?, endpoint_entry(network, ep)))
        })
        .collect()
}

/// Every subnet entry the state implies: those of networks behind a bridge, whose traffic the
/// programs see.
pub fn networks(state: &State) -> BTreeMap<Ipv4Net, NetworkInfo> {
    bridge_networks(state)
        .map(|n| (n.subnet, network_entry(n)))
        .collect()
}

/// The link pins of every eBPF 802.1q sub-interface the state has (the trunk's once).
pub fn vlan_pins(state: &State) -> std::collections::BTreeSet<String> {
    state
        .networks
        .values()
        .filter_map(|n| match &n.driver {
            DriverConfig::Macvlan(MacvlanConfig {
                made_parent: Some(vlan),
                ..
            }) => match &vlan.kind {
                VlanKind::Ebpf { inner } => Some(super::vlan_pins(&vlan.base, inner)),
                VlanKind::Kernel => None,
            },
            _ => None,
        })
        .flatten()
        .collect()
}

/// The link pins of every running container's macvlan devices (their anti-spoofing programs).
pub fn macvlan_pins(state: &State) -> std::collections::BTreeSet<String> {
    state
        .endpoints()
        .filter(|(_, ep)| {
            state
                .networks
                .get(&ep.network)
                .is_some_and(|n| matches!(n.driver, DriverConfig::Macvlan(_)))
        })
        .map(|(c, ep)| super::macvlan_pin(&c.id, &ep.ifname))
        .collect()
}

/// The anti-spoofing entry of a macvlan device at `ip` with `mac` on `network`: the address a
/// frame from that MAC may carry.
pub fn macvlan_entry(network: &Network, ip: std::net::Ipv4Addr, mac: [u8; 6]) -> Endpoint {
    Endpoint {
        addr: ip.octets(),
        mac,
        _pad: [0; 2],
        net_id: network.net_id,
        flags: 0,
    }
}

/// The anti-spoofing entries of every running container's macvlan devices.
pub fn macvlan_entries(state: &State) -> Vec<Endpoint> {
    state
        .endpoints()
        .filter_map(|(_, ep)| {
            let network = state.networks.get(&ep.network)?;
            matches!(network.driver, DriverConfig::Macvlan(_))
                .then(|| macvlan_entry(network, ep.ip, ep.mac))
        })
        .collect()
}

/// The networks the datapath programs serve.
fn bridge_networks(state: &State) -> impl Iterator<Item = &Network> {
    state.networks.values().filter(|n| n.bridge().is_some())
}

/// The IPv6 entry of a container port whose interface has `addr` and `mac`: its link-local
/// address is `fe80::/64` and the modified EUI-64 of the MAC, what the kernel gives the
/// interface with `addr_gen_mode` eui64.
pub fn endpoint6(addr: Ipv6Addr, mac: [u8; 6]) -> Endpoint6 {
    Endpoint6 {
        addr: addr.octets(),
        link_local: netd_common::ipv6::link_local(mac),
    }
}

/// A responder entry (ARP or NDP): who answers with `mac`, on network `net_id`.
pub fn neighbor(mac: [u8; 6], net_id: u32) -> Neighbor {
    Neighbor {
        mac,
        _pad: [0; 2],
        net_id,
    }
}

/// A container port with IPv6, in plain terms: the host-side veth's ifindex, the interface's
/// IPv6 address and MAC, and its network's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Port6 {
    pub ifindex: u32,
    pub addr: Ipv6Addr,
    pub mac: [u8; 6],
    pub net_id: u32,
}

/// A dual-stack network behind a bridge, in plain terms: what
/// [`Datapath::record_network6`](super::Datapath::record_network6) takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network6 {
    pub subnet: Ipv6Net,
    pub info: NetworkInfo,
    pub gateway: Ipv6Addr,
    pub gateway_neighbor: Neighbor,
}

/// The IPv6 side of a dual-stack network behind a bridge, as the datapath records it: its
/// subnet with the network's entry, its gateway answered with the bridge's MAC.
pub fn network6(network: &Network) -> Option<Network6> {
    let v6 = network.ipv6?;
    network.bridge()?;
    Some(Network6 {
        subnet: v6.subnet,
        info: network_entry(network),
        gateway: v6.gateway,
        gateway_neighbor: gateway_neighbor(network).1,
    })
}

/// The IPv6 port of a running endpoint with an IPv6 address whose host-side veth is `ifindex`.
pub fn port6(network: &Network, ep: &EndpointState, ifindex: u32) -> Option<Port6> {
    Some(Port6 {
        ifindex,
        addr: ep.ip6?,
        mac: ep.mac,
        net_id: network.net_id,
    })
}

/// What the IPv6 maps must hold for the state, its host-side veths having the indexes of
/// `index_of`.
pub fn state_maps6(state: &State, index_of: &BTreeMap<String, u32>) -> Maps6 {
    let ports = state.endpoints().filter_map(|(_, ep)| {
        let network = state.networks.get(&ep.network)?;
        port6(network, ep, *index_of.get(ep.host_veth.as_ref()?)?)
    });
    maps6(ports, bridge_networks(state).filter_map(network6))
}

/// What the four IPv6 maps hold (or must hold).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Maps6 {
    /// `NETD_ENDPOINTS6`: host-side ifindex -> the port's addresses.
    pub endpoints: BTreeMap<u32, Endpoint6>,
    /// `NETD_NETWORKS6`: subnet -> network.
    pub networks: BTreeMap<Ipv6Net, NetworkInfo>,
    /// `NETD_NEIGHBORS6`: gateway and container address -> MAC and network.
    pub neighbors: BTreeMap<[u8; 16], Neighbor>,
    /// `NETD_VETHS6`: container address -> host-side ifindex.
    pub veths: BTreeMap<[u8; 16], u32>,
}

/// Everything the IPv6 maps must hold for these ports (running container interfaces with
/// IPv6, on this host) and networks (dual-stack, behind a bridge).
pub fn maps6(
    ports: impl IntoIterator<Item = Port6>,
    networks: impl IntoIterator<Item = Network6>,
) -> Maps6 {
    let mut maps = Maps6::default();
    for n in networks {
        maps.networks.insert(n.subnet.trunc(), n.info);
        maps.neighbors
            .insert(n.gateway.octets(), n.gateway_neighbor);
    }
    for p in ports {
        let addr = p.addr.octets();
        maps.endpoints.insert(p.ifindex, endpoint6(p.addr, p.mac));
        maps.neighbors.insert(addr, neighbor(p.mac, p.net_id));
        maps.veths.insert(addr, p.ifindex);
    }
    maps
}

/// What to write and delete in each IPv6 map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diff6 {
    pub endpoints: MapDiff<u32, Endpoint6>,
    pub networks: MapDiff<Ipv6Net, NetworkInfo>,
    pub neighbors: MapDiff<[u8; 16], Neighbor>,
    pub veths: MapDiff<[u8; 16], u32>,
}

impl Diff6 {
    /// Whether nothing changes.
    pub fn is_empty(&self) -> bool {
        self.endpoints.is_empty()
            && self.networks.is_empty()
            && self.neighbors.is_empty()
            && self.veths.is_empty()
    }
}

/// What to write and delete so that the IPv6 maps holding `current` hold `desired`.
pub fn diff6(current: &Maps6, desired: &Maps6) -> Diff6 {
    Diff6 {
        endpoints: diff(&current.endpoints, &desired.endpoints),
        networks: diff(&current.networks, &desired.networks),
        neighbors: diff(&current.neighbors, &desired.neighbors),
        veths: diff(&current.veths, &desired.veths),
    }
}

/// Changes that turn one map content into another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapDiff<K, V> {
    pub upsert: Vec<(K, V)>,
    pub remove: Vec<K>,
}

impl<K, V> MapDiff<K, V> {
    /// Whether nothing changes.
    pub fn is_empty(&self) -> bool {
        self.upsert.is_empty() && self.remove.is_empty()
    }

    /// The writes and the removals as two diffs, to apply at different points.
    pub fn split(self) -> (Self, Self) {
        let writes = Self {
            upsert: self.upsert,
            remove: vec![],
        };
        let removals = Self {
            upsert: vec![],
            remove: self.remove,
        };
        (writes, removals)
    }
}

/// What to write and delete so that `current` becomes `desired`.
pub fn diff<K: Ord + Clone, V: PartialEq + Clone>(
    current: &BTreeMap<K, V>,
    desired: &BTreeMap<K, V>,
) -> MapDiff<K, V> {
    MapDiff {
        upsert: desired
            .iter()
            .filter(|(k, v)| current.get(*k) != Some(*v))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        remove: current
            .keys()
            .filter(|k| !desired.contains_key(*k))
            .cloned()
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::testing::{network, running};

    fn state() -> State {
        let mut s = State::default();
        let mut b = network("b", "10.2.0.0/16", 2);
        b.internal = true;
        s.networks
            .insert("a".into(), network("a", "10.1.0.0/16", 1));
        s.networks.insert("b".into(), b);
        let web = running(
            "web",
            &[
                ("a", "veth1", "10.1.0.2", &[]),
                ("b", "veth2", "10.2.0.2", &[]),
            ],
        );
        s.containers.insert("web".into(), web);
        s.containers.insert(
            "db".into(),
            running("db", &[("b", "veth3", "10.2.0.3", &[])]),
        );
        s
    }

    #[test]
    fn a_multi_homed_container_has_one_entry_per_network_with_that_networks_id() {
        let eps = endpoints(&state());
        assert_eq!(eps.len(), 3);
        assert_eq!(eps["veth1"].net_id, 1);
        assert_eq!(eps["veth2"].net_id, 2);
        assert_eq!(eps["veth1"].addr, [10, 1, 0, 2]);
        assert_eq!(eps["veth1"].mac, [0x02, 0x42, 10, 1, 0, 2]);
    }

    #[test]
    fn every_container_address_leads_to_its_own_veth() {
        let index_of = BTreeMap::from([
            ("veth1".to_string(), 11),
            ("veth2".to_string(), 12),
            ("veth3".to_string(), 13),
        ]);
        let veths = veths(&state(), &index_of);
        assert_eq!(
            veths,
            BTreeMap::from([
                ([10, 1, 0, 2], 11),
                ([10, 2, 0, 2], 12),
                ([10, 2, 0, 3], 13)
            ])
        );
    }

    #[test]
    fn endpoints_on_internal_networks_are_flagged() {
        let eps = endpoints(&state());
        assert_eq!(eps["veth1"].flags, 0);
        assert_eq!(eps["veth3"].flags, ENDPOINT_FLAG_INTERNAL);
    }

    #[test]
    fn every_network_subnet_is_in_the_trie() {
        let nets = networks(&state());
        assert_eq!(nets[&"10.1.0.0/16".parse().unwrap()].net_id, 1);
        assert_eq!(nets[&"10.2.0.0/16".parse().unwrap()].net_id, 2);
    }

    #[test]
    fn the_responder_answers_for_every_gateway_and_running_interface_on_its_network() {
        let neighbors = neighbors(&state(), &BTreeMap::new());
        let at = |ip: [u8; 4]| neighbors[&ip];
        assert_eq!(neighbors.len(), 5);
        assert_eq!(at([10, 1, 0, 1]).mac, [0x02, 0x42, 10, 1, 0, 1]);
        assert_eq!(at([10, 1, 0, 1]).net_id, 1);
        assert_eq!(at([10, 2, 0, 1]).net_id, 2);
        assert_eq!(at([10, 1, 0, 2]).mac, [0x02, 0x42, 10, 1, 0, 2]);
        assert_eq!(at([10, 2, 0, 2]).net_id, 2);
        assert_eq!(at([10, 2, 0, 3]).net_id, 2);
    }

    #[test]
    fn a_bridge_has_its_gateways_mac_which_no_container_gets() {
        let s = state();
        let a = &s.networks["a"];
        assert_eq!(bridge_mac(a), [0x02, 0x42, 10, 1, 0, 1]);
        assert!(endpoints(&s).values().all(|ep| ep.mac != bridge_mac(a)));
    }

    #[test]
    fn stopped_containers_have_no_entries() {
        let mut s = state();
        s.containers.get_mut("db").unwrap().endpoints.clear();
        assert!(!endpoints(&s).contains_key("veth3"));
        assert!(!neighbors(&s, &BTreeMap::new()).contains_key(&[10, 2, 0, 3]));
    }

    #[test]
    fn diff_writes_what_changed_and_removes_what_is_stale() {
        let current = BTreeMap::from([(1u32, 'a'), (2, 'b'), (3, 'c')]);
        let desired = BTreeMap::from([(1u32, 'a'), (2, 'x'), (4, 'd')]);
        let d = diff(&current, &desired);
        assert_eq!(d.upsert, vec![(2, 'x'), (4, 'd')]);
        assert_eq!(d.remove, vec![3]);
        assert_eq!(
            diff(&desired, &desired),
            MapDiff {
                upsert: vec![],
                remove: vec![]
            }
        );
    }

    fn ip6(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    /// `a` (net 1) with two containers on this host, `b` (net 2) with one.
    fn dual_stack() -> Maps6 {
        let net = |subnet: &str, id: u32, gw: &str, mac: [u8; 6]| Network6 {
            subnet: subnet.parse().unwrap(),
            info: NetworkInfo {
                net_id: id,
                flags: 0,
            },
            gateway: ip6(gw),
            gateway_neighbor: neighbor(mac, id),
        };
        let port = |ifindex, addr: &str, last, net_id| Port6 {
            ifindex,
            addr: ip6(addr),
            mac: [0x02, 0x42, 10, net_id as u8, 0, last],
            net_id,
        };
        maps6(
            [
                port(11, "fd00:a::2", 2, 1),
                port(12, "fd00:a::3", 3, 1),
                port(13, "fd00:b::2", 2, 2),
            ],
            [
                net("fd00:a::/64", 1, "fd00:a::1", [0x02, 0x42, 10, 1, 0, 1]),
                net("fd00:b::/64", 2, "fd00:b::1", [0x02, 0x42, 10, 2, 0, 1]),
            ],
        )
    }

    #[test]
    fn an_ipv6_port_has_its_address_and_the_eui64_link_local_of_its_mac() {
        let ep = endpoint6(ip6("fd00:28::2"), [0x02, 0x42, 0xac, 0x1c, 0, 2]);
        assert_eq!(ep.addr, ip6("fd00:28::2").octets());
        assert_eq!(ep.link_local, ip6("fe80::42:acff:fe1c:2").octets());
    }

    #[test]
    fn every_ipv6_gateway_and_port_is_answered_for_and_every_port_reached_straight() {
        let m = dual_stack();
        assert_eq!(m.networks.len(), 2);
        assert_eq!(m.networks[&"fd00:b::/64".parse().unwrap()].net_id, 2);
        assert_eq!(m.neighbors.len(), 5, "two gateways, three containers");
        let gw = m.neighbors[&ip6("fd00:a::1").octets()];
        assert_eq!((gw.mac, gw.net_id), ([0x02, 0x42, 10, 1, 0, 1], 1));
        let c = m.neighbors[&ip6("fd00:b::2").octets()];
        assert_eq!((c.mac, c.net_id), ([0x02, 0x42, 10, 2, 0, 2], 2));
        assert_eq!(m.veths[&ip6("fd00:a::3").octets()], 12);
        assert_eq!(m.endpoints[&13].addr, ip6("fd00:b::2").octets());
        assert_eq!(m.endpoints.len(), 3);
    }

    #[test]
    fn a_subnet_is_recorded_by_its_network_part() {
        let m = maps6(
            [],
            [Network6 {
                subnet: "fd00:a::5/64".parse().unwrap(),
                info: NetworkInfo {
                    net_id: 1,
                    flags: 0,
                },
                gateway: ip6("fd00:a::1"),
                gateway_neighbor: neighbor([2; 6], 1),
            }],
        );
        assert!(m.networks.contains_key(&"fd00:a::/64".parse().unwrap()));
    }

    #[test]
    fn the_ipv6_diff_removes_a_stopped_container_and_a_removed_network() {
        let current = dual_stack();
        let mut desired = current.clone();
        desired.endpoints.remove(&13);
        desired.veths.remove(&ip6("fd00:b::2").octets());
        desired.neighbors.remove(&ip6("fd00:b::2").octets());
        desired.neighbors.remove(&ip6("fd00:b::1").octets());
        desired.networks.remove(&"fd00:b::/64".parse().unwrap());
        let d = diff6(&current, &desired);
        assert_eq!(d.endpoints.remove, vec![13]);
        assert_eq!(d.veths.remove, vec![ip6("fd00:b::2").octets()]);
        assert_eq!(d.neighbors.remove.len(), 2);
        assert_eq!(
            d.networks.remove,
            vec!["fd00:b::/64".parse::<Ipv6Net>().unwrap()]
        );
        assert!(d.endpoints.upsert.is_empty() && d.neighbors.upsert.is_empty());
        assert!(diff6(&desired, &desired).is_empty());
    }
}
