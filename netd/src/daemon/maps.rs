//! `netd maps dump`: every BPF map decoded into names users know.
use std::collections::BTreeMap;

use std::net::{Ipv4Addr, Ipv6Addr};

use netd_common::{
    maps, Backend, MacvlanKey, NetworkInfo, PolicyScope, PortKey, Uplink, VlanPort, IPPROTO_ICMP,
    IPPROTO_TCP, IPPROTO_UDP, NAT_FLAG_REPLY, NAT_KIND_DNAT, NAT_KIND_HAIRPIN, NAT_KIND_SNAT,
    POLICY_ALLOW, POLICY_DENY, TCP_SEEN_ACK, TCP_SEEN_FIN, TCP_SEEN_RST, ZONE_UPLINK_IN,
    ZONE_UPLINK_OUT,
};

use super::{error::OpError, error::OpResult, Daemon};
use crate::{
    api::{format_mac, MapView},
    state::{DriverConfig, VlanKind},
};

/// An interface's name, or `?` if it is gone.
fn if_name(ifindex: u32) -> String {
    nix::net::if_::if_indextoname(ifindex)
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|_| "?".into())
}

impl Daemon {
    pub(super) fn maps_dump(&self, only: Option<&str>) -> OpResult<Vec<MapView>> {
        type Render = fn(&Daemon) -> OpResult<MapView>;
        let all: [(&str, Render); 21] = [
            (maps::ENDPOINTS, Self::endpoints_view),
            (maps::NETWORKS, Self::networks_view),
            (maps::NEIGHBORS, Self::neighbors_view),
            (maps::VETHS, Self::veths_view),
            (maps::PORTS, Self::ports_view),
            (maps::NAT, Self::nat_view),
            (maps::NAT_STATS, Self::nat_stats_view),
            (maps::UPLINKS, Self::uplinks_view),
            (maps::LOCAL_ADDRS, Self::local_addrs_view),
            (maps::DROPS, Self::drops_view),
            (maps::VLAN_TAG, Self::vlan_tag_view),
            (maps::VLAN_UNTAG, Self::vlan_untag_view),
            (maps::MACVLAN, Self::macvlan_view),
            (maps::TUNNEL, Self::tunnel_view),
            (maps::OVERLAY_PORTS, Self::overlay_ports_view),
            (maps::TUNNEL_STATS, Self::tunnel_stats_view),
            (maps::PUBLISH_POLICY, Self::publish_policy_view),
            (maps::ENDPOINTS6, Self::endpoints6_view),
            (maps::NETWORKS6, Self::networks6_view),
            (maps::NEIGHBORS6, Self::neighbors6_view),
            (maps::VETHS6, Self::veths6_view),
        ];
        let named = |m: &str, n: &str| {
            // One view shows both NAT tables.
            let also = (m == maps::NAT).then_some(maps::NAT_NEW);
            [Some(m), also].into_iter().flatten().any(|m| {
                m.eq_ignore_ascii_case(n) || m.trim_start_matches("NETD_").eq_ignore_ascii_case(n)
            })
        };
        let chosen: Vec<_> = all
            .iter()
            .filter(|(m, _)| only.is_none_or(|n| named(m, n)))
            .collect();
        if chosen.is_empty() {
            let names: Vec<&str> = all.iter().map(|(m, _)| *m).collect();
            return Err(OpError::NotFound(format!(
                "no such map {:?}; maps are {}",
                only.unwrap_or_default(),
                names.join(", ")
            )));
        }
        chosen.iter().map(|(_, render)| render(self)).collect()
    }

    /// Container name and network of each host address (container IP).
    fn owners(&self) -> BTreeMap<[u8; 4], String> {
        self.state
            .endpoints()
            .map(|(c, ep)| (ep.ip.octets(), c.name.clone()))
            .collect()
    }

    fn ports_view(&self) -> OpResult<MapView> {
        let owners = self.owners();
        let rows = self
            .dp
            .dump::<PortKey, Backend>(maps::PORTS)?
            .into_iter()
            .map(|(k, b)| {
                vec![
                    proto_name(k.proto).into(),
                    format!("{}:{}", Ipv4Addr::from(k.addr), u16::from_be(k.port_be)),
                    format!("{}:{}", Ipv4Addr::from(b.addr), u16::from_be(b.port_be)),
                    owners.get(&b.addr).cloned().unwrap_or_else(|| "?".into()),
                ]
            })
            .collect();
        Ok(self.view(
            maps::PORTS,
            &["proto", "host", "backend", "container"],
            rows,
        ))
    }

    /// Both NAT tables, each entry with the table it is in (`assured`: `NETD_NAT`; `new`:
    /// `NETD_NAT_NEW`, not assured yet or closing).
    fn nat_view(&self) -> OpResult<MapView> {
        let now = monotonic_ns();
        let rows = self
            .dp
            .nat_entries()?
            .into_iter()
            .map(|(k, (table, e))| {
                vec![
                    table.name().into(),
                    zone_name(k.zone).into(),
                    proto_name(k.proto).into(),
                    flow_text(k.saddr, k.sport_be, k.daddr, k.dport_be),
                    flow_text(e.saddr, e.sport_be, e.daddr, e.dport_be),
                    kind_name(e.kind, e.flags).into(),
                    tcp_state(k.proto, e.tcp_seen).into(),
                    format!("{}s", now.saturating_sub(e.created_ns) / 1_000_000_000),
                    format!("{}s", now.saturating_sub(e.last_ns) / 1_000_000_000),
                    e.packets.to_string(),
                    e.bytes.to_string(),
                ]
            })
            .collect();
        Ok(self.view(
            maps::NAT,
            &[
                "table",
                "zone",
                "proto",
                "flow",
                "rewritten",
                "kind",
                "tcp",
                "age",
                "idle",
                "packets",
                "bytes",
            ],
            rows,
        ))
    }

    fn uplinks_view(&self) -> OpResult<MapView> {
        let rows = self
            .dp
            .dump::<u32, Uplink>(maps::UPLINKS)?
            .into_iter()
            .map(|(ifindex, u)| {
                let name = nix::net::if_::if_indextoname(ifindex)
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_else(|_| "?".into());
                vec![
                    ifindex.to_string(),
                    name,
                    Ipv4Addr::from(u.addr).to_string(),
                ]
            })
            .collect();
        Ok(self.view(maps::UPLINKS, &["ifindex", "uplink", "snat address"], rows))
    }

    /// The network whose eBPF 802.1q parent has the inner end `inner`.
    fn vlan_network(&self, inner: &str) -> String {
        self.state
            .networks
            .values()
            .find(|n| match &n.driver {
                DriverConfig::Macvlan(m) => m
                    .made_parent
                    .as_ref()
                    .is_some_and(|v| matches!(&v.kind, VlanKind::Ebpf { inner: i } if i == inner)),
                _ => false,
            })
            .map_or_else(|| "?".into(), |n| n.name.clone())
    }

    fn vlan_tag_view(&self) -> OpResult<MapView> {
        let rows = self
            .dp
            .dump::<u32, VlanPort>(maps::VLAN_TAG)?
            .into_iter()
            .map(|(inner, port)| {
                let inner = if_name(inner);
                let network = self.vlan_network(&inner);
                vec![inner, if_name(port.trunk), port.vid.to_string(), network]
            })
            .collect();
        Ok(self.view(
            maps::VLAN_TAG,
            &["inner end", "trunk", "vlan", "network"],
            rows,
        ))
    }

    fn vlan_untag_view(&self) -> OpResult<MapView> {
        let rows = self
            .dp
            .dump::<VlanPort, u32>(maps::VLAN_UNTAG)?
            .into_iter()
            .map(|(port, inner)| vec![if_name(port.trunk), port.vid.to_string(), if_name(inner)])
            .collect();
        Ok(self.view(maps::VLAN_UNTAG, &["trunk", "vlan", "inner end"], rows))
    }

    fn macvlan_view(&self) -> OpResult<MapView> {
        let owners = self.owners();
        let rows = self
            .dp
            .dump::<MacvlanKey, netd_common::Endpoint>(maps::MACVLAN)?
            .into_iter()
            .map(|(k, ep)| {
                vec![
                    format_mac(k.mac),
                    Ipv4Addr::from(ep.addr).to_string(),
                    owners.get(&ep.addr).cloned().unwrap_or_else(|| "?".into()),
                ]
            })
            .collect();
        Ok(self.view(maps::MACVLAN, &["mac", "address", "container"], rows))
    }

    /// The overlay network of each (net_id, VNI) of this host.
    fn overlay_name(&self, vni: u32) -> String {
        self.state
            .networks
            .values()
            .find(|n| n.vni() == Some(vni))
            .map_or_else(|| "?".into(), |n| n.name.clone())
    }

    /// Other hosts' overlay endpoints: where their frames are encapsulated to.
    fn tunnel_view(&self) -> OpResult<MapView> {
        let names: BTreeMap<Ipv4Addr, String> = self
            .remote_names()
            .into_iter()
            .map(|(_, e, ip)| (ip, e.container.clone()))
            .collect();
        let rows = self
            .dp
            .remotes()?
            .into_iter()
            .map(|(addr, t)| {
                let addr = Ipv4Addr::from(addr);
                vec![
                    addr.to_string(),
                    names.get(&addr).cloned().unwrap_or_else(|| "?".into()),
                    Ipv4Addr::from(t.host).to_string(),
                    t.vni.to_string(),
                    self.overlay_name(t.vni),
                    format_mac(t.mac),
                ]
            })
            .collect();
        Ok(self.view(
            maps::TUNNEL,
            &["address", "container", "host", "vni", "network", "mac"],
            rows,
        ))
    }

    /// Where packets for each container address on this host are delivered straight in.
    fn veths_view(&self) -> OpResult<MapView> {
        let owners = self.owners();
        let rows = self
            .dp
            .veths()?
            .into_iter()
            .map(|(addr, ifindex)| {
                vec![
                    Ipv4Addr::from(addr).to_string(),
                    owners.get(&addr).cloned().unwrap_or_else(|| "?".into()),
                    if_name(ifindex),
                ]
            })
            .collect();
        Ok(self.view(maps::VETHS, &["address", "container", "veth"], rows))
    }

    /// Who may open a flow to a published port: each prefix of the policy trie under its
    /// port (or `host-wide`), `others` for what a client no prefix holds gets.
    fn publish_policy_view(&self) -> OpResult<MapView> {
        let rows = self
            .dp
            .publish_policy()?
            .into_iter()
            .map(|(key, value)| {
                let (scope, client) = crate::policy::decode(&key);
                let action = match value {
                    POLICY_ALLOW => "allow".to_string(),
                    POLICY_DENY => "deny".to_string(),
                    other => format!("? ({other})"),
                };
                vec![
                    scope_text(&scope),
                    client.map_or_else(|| "others".into(), |net| net.to_string()),
                    action,
                ]
            })
            .collect();
        Ok(self.view(maps::PUBLISH_POLICY, &["port", "client", "action"], rows))
    }

    /// This host's overlay endpoints: where decapsulated frames go.
    fn overlay_ports_view(&self) -> OpResult<MapView> {
        let owners = self.owners();
        let rows = self
            .dp
            .overlay_ports()?
            .into_iter()
            .map(|(addr, p)| {
                vec![
                    Ipv4Addr::from(addr).to_string(),
                    owners.get(&addr).cloned().unwrap_or_else(|| "?".into()),
                    if_name(p.ifindex),
                    p.vni.to_string(),
                    self.overlay_name(p.vni),
                ]
            })
            .collect();
        Ok(self.view(
            maps::OVERLAY_PORTS,
            &["address", "container", "port", "vni", "network"],
            rows,
        ))
    }

    fn tunnel_stats_view(&self) -> OpResult<MapView> {
        let [encap, decap, too_big, fragmented] = self.dp.tunnel_counts()?;
        let rows = vec![
            vec!["encapsulated".into(), encap.to_string()],
            vec!["decapsulated".into(), decap.to_string()],
            vec!["too-big (ICMP sent)".into(), too_big.to_string()],
            vec![
                "fragmented (by the VXLAN device)".into(),
                fragmented.to_string(),
            ],
        ];
        Ok(self.view(maps::TUNNEL_STATS, &["frames", "count"], rows))
    }

    fn local_addrs_view(&self) -> OpResult<MapView> {
        let rows = self
            .dp
            .dump::<[u8; 4], u32>(maps::LOCAL_ADDRS)?
            .into_keys()
            .map(|a| vec![Ipv4Addr::from(a).to_string()])
            .collect();
        Ok(self.view(maps::LOCAL_ADDRS, &["address"], rows))
    }

    fn view(&self, name: &str, columns: &[&str], rows: Vec<Vec<String>>) -> MapView {
        MapView {
            name: name.into(),
            pin: self.dp.map_pin(name),
            columns: columns.iter().map(|c| c.to_string()).collect(),
            rows,
        }
    }

    fn endpoints_view(&self) -> OpResult<MapView> {
        let owners: BTreeMap<&str, (&str, &str)> = self
            .state
            .endpoints()
            .filter_map(|(c, ep)| {
                Some((
                    ep.host_veth.as_deref()?,
                    (c.name.as_str(), ep.network.as_str()),
                ))
            })
            .collect();
        let names = self
            .state
            .networks
            .values()
            .map(|n| (n.net_id, n.name.as_str()))
            .collect::<BTreeMap<_, _>>();
        let mut rows = vec![];
        for (ifindex, ep) in self.dp.endpoints()? {
            let veth = nix::net::if_::if_indextoname(ifindex)
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|_| "?".into());
            let (container, _) = owners.get(veth.as_str()).copied().unwrap_or(("?", "?"));
            rows.push(vec![
                ifindex.to_string(),
                veth,
                container.into(),
                names.get(&ep.net_id).copied().unwrap_or("?").into(),
                std::net::Ipv4Addr::from(ep.addr).to_string(),
                format_mac(ep.mac),
                if ep.flags & netd_common::ENDPOINT_FLAG_INTERNAL != 0 {
                    "internal"
                } else {
                    "-"
                }
                .into(),
            ]);
        }
        Ok(self.view(
            maps::ENDPOINTS,
            &[
                "ifindex",
                "port",
                "container",
                "network",
                "ip",
                "mac",
                "flags",
            ],
            rows,
        ))
    }

    fn networks_view(&self) -> OpResult<MapView> {
        let entries = self.dp.networks()?;
        Ok(self.subnets_view(maps::NETWORKS, entries))
    }

    /// A subnet trie's entries of either family, with the network each belongs to.
    fn subnets_view<S: std::fmt::Display>(
        &self,
        map: &str,
        entries: BTreeMap<S, NetworkInfo>,
    ) -> MapView {
        let names = self.network_names();
        let rows = entries
            .into_iter()
            .map(|(subnet, info)| {
                vec![
                    subnet.to_string(),
                    info.net_id.to_string(),
                    names.get(&info.net_id).copied().unwrap_or("?").into(),
                ]
            })
            .collect();
        self.view(map, &["subnet", "net_id", "network"], rows)
    }

    /// Who answers ARP for each address: a container (by name) or a network's gateway.
    fn neighbors_view(&self) -> OpResult<MapView> {
        let mut owners = self.owners();
        let mut networks = BTreeMap::new();
        for n in self.state.networks.values() {
            owners.insert(n.gateway.octets(), format!("gateway of {}", n.name));
            networks.insert(n.net_id, n.name.as_str());
        }
        let rows = self
            .dp
            .neighbors()?
            .into_iter()
            .map(|(addr, n)| {
                vec![
                    Ipv4Addr::from(addr).to_string(),
                    format_mac(n.mac),
                    networks.get(&n.net_id).copied().unwrap_or("?").into(),
                    owners.get(&addr).cloned().unwrap_or_else(|| "?".into()),
                ]
            })
            .collect();
        Ok(self.view(
            maps::NEIGHBORS,
            &["address", "mac", "network", "answers for"],
            rows,
        ))
    }

    /// The container behind each host-side veth, by veth name.
    fn veth_owners(&self) -> BTreeMap<&str, &str> {
        self.state
            .endpoints()
            .filter_map(|(c, ep)| Some((ep.host_veth.as_deref()?, c.name.as_str())))
            .collect()
    }

    /// The name of each network, by net_id.
    fn network_names(&self) -> BTreeMap<u32, &str> {
        self.state
            .networks
            .values()
            .map(|n| (n.net_id, n.name.as_str()))
            .collect()
    }

    /// The container behind the port `ifindex`, or `?`.
    fn port_container(&self, ifindex: u32, owners: &BTreeMap<&str, &str>) -> String {
        owners
            .get(if_name(ifindex).as_str())
            .map_or_else(|| "?".into(), |c| c.to_string())
    }

    /// The IPv6 addresses of each container port (its MAC and network are in NETD_ENDPOINTS).
    fn endpoints6_view(&self) -> OpResult<MapView> {
        let owners = self.veth_owners();
        let names = self.network_names();
        let v4 = self.dp.endpoints()?;
        let rows = self
            .dp
            .endpoints6()?
            .into_iter()
            .map(|(ifindex, ep)| {
                let network = v4
                    .get(&ifindex)
                    .and_then(|e| names.get(&e.net_id).copied())
                    .unwrap_or("?");
                vec![
                    ifindex.to_string(),
                    if_name(ifindex),
                    self.port_container(ifindex, &owners),
                    network.into(),
                    Ipv6Addr::from(ep.addr).to_string(),
                    Ipv6Addr::from(ep.link_local).to_string(),
                ]
            })
            .collect();
        Ok(self.view(
            maps::ENDPOINTS6,
            &[
                "ifindex",
                "port",
                "container",
                "network",
                "ip6",
                "link-local",
            ],
            rows,
        ))
    }

    fn networks6_view(&self) -> OpResult<MapView> {
        let entries = self.dp.networks6()?;
        Ok(self.subnets_view(maps::NETWORKS6, entries))
    }

    /// Who answers neighbour solicitations for each IPv6 address: a container (the port the
    /// address leads to) or a network's gateway (its bridge's MAC).
    fn neighbors6_view(&self) -> OpResult<MapView> {
        let owners = self.veth_owners();
        let names = self.network_names();
        let veths = self.dp.veths6()?;
        let gateways: BTreeMap<(u32, [u8; 6]), String> = self
            .state
            .networks
            .values()
            .filter(|n| n.bridge().is_some())
            .map(|n| {
                let mac = crate::datapath::plan::bridge_mac(n);
                ((n.net_id, mac), format!("gateway of {}", n.name))
            })
            .collect();
        let rows = self
            .dp
            .neighbors6()?
            .into_iter()
            .map(|(addr, n)| {
                let who = match veths.get(&addr) {
                    Some(ifindex) => self.port_container(*ifindex, &owners),
                    None => gateways
                        .get(&(n.net_id, n.mac))
                        .cloned()
                        .unwrap_or_else(|| "?".into()),
                };
                vec![
                    Ipv6Addr::from(addr).to_string(),
                    format_mac(n.mac),
                    names.get(&n.net_id).copied().unwrap_or("?").into(),
                    who,
                ]
            })
            .collect();
        Ok(self.view(
            maps::NEIGHBORS6,
            &["address", "mac", "network", "answers for"],
            rows,
        ))
    }

    /// Where packets for each container IPv6 address on this host are delivered straight in.
    fn veths6_view(&self) -> OpResult<MapView> {
        let owners = self.veth_owners();
        let rows = self
            .dp
            .veths6()?
            .into_iter()
            .map(|(addr, ifindex)| {
                vec![
                    Ipv6Addr::from(addr).to_string(),
                    self.port_container(ifindex, &owners),
                    if_name(ifindex),
                ]
            })
            .collect();
        Ok(self.view(maps::VETHS6, &["address", "container", "veth"], rows))
    }

    fn drops_view(&self) -> OpResult<MapView> {
        let rows = self
            .dp
            .drops()?
            .into_iter()
            .map(|(reason, n)| vec![reason.name().into(), n.to_string()])
            .collect();
        Ok(self.view(maps::DROPS, &["reason", "packets"], rows))
    }

    /// Flows moved between the NAT tables, summed over CPUs.
    fn nat_stats_view(&self) -> OpResult<MapView> {
        let [promoted, demoted, full] = self.dp.nat_moves()?;
        let rows = [
            ("promoted to assured", promoted),
            ("demoted when closing", demoted),
            ("promotions refused: assured table full", full),
        ]
        .into_iter()
        .map(|(what, n)| vec![what.to_string(), n.to_string()])
        .collect();
        Ok(self.view(maps::NAT_STATS, &["move", "count"], rows))
    }
}

/// A protocol number (or netd's ARP marker in events) as users read it.
/// A policy scope as `container port` prints a host side (`0.0.0.0:8080/tcp`), or
/// `host-wide` for the zero scope.
fn scope_text(scope: &PolicyScope) -> String {
    if *scope == PolicyScope::default() {
        return "host-wide".into();
    }
    let addr = std::net::Ipv6Addr::from(scope.addr);
    let addr = addr
        .to_ipv4_mapped()
        .map_or_else(|| format!("[{addr}]"), |v4| v4.to_string());
    format!(
        "{addr}:{}/{}",
        u16::from_be(scope.port_be),
        proto_name(scope.proto)
    )
}

pub(super) fn proto_name(proto: u8) -> &'static str {
    match proto {
        IPPROTO_TCP => "tcp",
        IPPROTO_UDP => "udp",
        IPPROTO_ICMP => "icmp",
        netd_common::EVENT_PROTO_ARP => "arp",
        0 => "-",
        _ => "other",
    }
}

/// `SADDR:SPORT -> DADDR:DPORT` from a key's, entry's or event's fields (ports in network order).
pub(super) fn flow_text(saddr: [u8; 4], sport_be: u16, daddr: [u8; 4], dport_be: u16) -> String {
    format!(
        "{}:{} -> {}:{}",
        Ipv4Addr::from(saddr),
        u16::from_be(sport_be),
        Ipv4Addr::from(daddr),
        u16::from_be(dport_be)
    )
}

fn zone_name(zone: u8) -> &'static str {
    match zone {
        ZONE_UPLINK_IN => "uplink-in",
        ZONE_UPLINK_OUT => "uplink-out",
        _ => "endpoint",
    }
}

fn kind_name(kind: u8, flags: u8) -> &'static str {
    let reply = flags & NAT_FLAG_REPLY != 0;
    match (kind, reply) {
        (NAT_KIND_DNAT, false) => "dnat",
        (NAT_KIND_DNAT, true) => "dnat-reply",
        (NAT_KIND_SNAT, false) => "snat",
        (NAT_KIND_SNAT, true) => "snat-reply",
        (NAT_KIND_HAIRPIN, false) => "hairpin",
        (NAT_KIND_HAIRPIN, true) => "hairpin-reply",
        _ => "?",
    }
}

/// What the TCP flags seen in one direction say about the connection.
fn tcp_state(proto: u8, seen: u8) -> &'static str {
    if proto != IPPROTO_TCP {
        return "-";
    }
    if seen & TCP_SEEN_RST != 0 {
        "reset"
    } else if seen & TCP_SEEN_FIN != 0 {
        "closing"
    } else if seen & TCP_SEEN_ACK != 0 {
        "established"
    } else {
        "syn"
    }
}

/// `CLOCK_MONOTONIC` in nanoseconds, the clock of `bpf_ktime_get_ns`.
pub fn monotonic_ns() -> u64 {
    use nix::time::{clock_gettime, ClockId};
    clock_gettime(ClockId::CLOCK_MONOTONIC)
        .map(|t| t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64)
        .unwrap_or(0)
}
