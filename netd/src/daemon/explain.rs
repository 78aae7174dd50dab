//! `netd explain`: a synthetic packet run through the programs that are attached right now
//! (BPF_PROG_TEST_RUN on the live programs and maps, marked so that nothing is written), hop by
//! hop: which program, its verdict, the map entries it matched and the headers it wrote.
use std::net::{Ipv4Addr, SocketAddrV4};

use etherparse::{NetSlice, PacketBuilder, SlicedPacket, TransportSlice};
use netd_common::{
    maps, Backend, Endpoint, FlowKey, NatEntry, PortKey, NAT_FLAG_NEIGH, VXLAN_PORT, ZONE_ENDPOINT,
    ZONE_UPLINK_IN, ZONE_UPLINK_OUT,
};

use super::{
    error::{conflict, invalid, OpResult},
    maps::flow_text,
    Daemon,
};
use crate::{
    api::{ExplainView, Hop},
    datapath::{conntrack::Table, ENDPOINT_PROGRAM, UPLINK_EGRESS, UPLINK_INGRESS},
    ports::Proto,
    state::Status,
};

/// Source port of the synthetic packet.
const PROBE_PORT: u16 = 45678;
const TC_ACT_OK: u32 = 0;
const TC_ACT_SHOT: u32 = 2;
const TC_ACT_REDIRECT: u32 = 7;

/// Where the probe starts.
enum Source {
    /// A container: its host-side port, address and MAC.
    Container {
        name: String,
        veth: String,
        ip: Ipv4Addr,
        mac: [u8; 6],
    },
    /// A client beyond the first uplink.
    Outside(Ipv4Addr),
}

impl Daemon {
    pub(super) async fn explain(
        &mut self,
        from: &str,
        to: SocketAddrV4,
        proto: Proto,
    ) -> OpResult<ExplainView> {
        let source = self.probe_source(from)?;
        let (src_ip, src_mac) = match &source {
            Source::Container { ip, mac, .. } => (*ip, *mac),
            Source::Outside(ip) => (*ip, [0x02, 0, 0, 0, 0, 1]),
        };
        let frame = build(src_mac, src_ip, to, proto)?;
        let mut hops = vec![];
        let (mut frame, verdict) = match &source {
            Source::Container { name, veth, .. } => {
                let ifindex = self.nl.require_link(veth).await?;
                self.hop(
                    &mut hops,
                    ENDPOINT_PROGRAM,
                    veth,
                    ifindex,
                    ZONE_ENDPOINT,
                    &frame,
                    Some(name),
                )?
            }
            Source::Outside(_) => {
                let uplink = self
                    .uplinks
                    .first()
                    .ok_or_else(|| conflict("the daemon has no uplink"))?
                    .clone();
                let ifindex = self.nl.require_link(&uplink).await?;
                self.hop(
                    &mut hops,
                    UPLINK_INGRESS,
                    &uplink,
                    ifindex,
                    ZONE_UPLINK_IN,
                    &frame,
                    None,
                )?
            }
        };
        // A packet from a container that stays on its way out leaves through an uplink, whether
        // the host routes it there or the container's port redirects it there (the reply of a
        // published-port flow): the uplink's egress program sees it either way.
        let goes_on = verdict == TC_ACT_OK || verdict == TC_ACT_REDIRECT;
        if goes_on && matches!(source, Source::Container { .. }) {
            let dst = destination(&frame).map(|(ip, _)| ip);
            let leaves = dst.is_some_and(|ip| {
                self.network_containing(ip).is_none() && !self.is_host_address(ip)
            });
            if let (true, Some(uplink)) = (leaves, self.uplinks.first().cloned()) {
                let ifindex = self.nl.require_link(&uplink).await?;
                let rewritten = frame.clone();
                (frame, _) = self.hop(
                    &mut hops,
                    UPLINK_EGRESS,
                    &uplink,
                    ifindex,
                    ZONE_UPLINK_OUT,
                    &rewritten,
                    None,
                )?;
            }
        }
        let dropped = hops.iter().any(|h| h.verdict == "drop");
        let delivered_to = destination(&frame)
            .filter(|_| !dropped)
            .and_then(|(ip, _)| self.container_at(ip).or_else(|| self.through_tunnel(ip)));
        Ok(ExplainView { hops, delivered_to })
    }

    fn probe_source(&self, from: &str) -> OpResult<Source> {
        if let Ok(ip) = from.parse::<Ipv4Addr>() {
            return Ok(Source::Outside(ip));
        }
        let c = self.container(from)?;
        let ep = c.endpoints.first().filter(|_| c.status == Status::Running).ok_or_else(|| conflict(format!("container {} has no interface to send from (not running, or not on a bridge network)", c.name)))?;
        let veth = ep.host_veth.clone().ok_or_else(|| {
            conflict(format!(
                "container {}'s traffic on {} does not pass netd's programs (a {} network)",
                c.name,
                ep.network,
                self.state
                    .networks
                    .get(&ep.network)
                    .map_or("", |n| n.driver.name())
            ))
        })?;
        Ok(Source::Container {
            name: c.name.clone(),
            veth,
            ip: ep.ip,
            mac: ep.mac,
        })
    }

    /// Runs one program and records what it did.
    #[allow(clippy::too_many_arguments)]
    fn hop(
        &mut self,
        hops: &mut Vec<Hop>,
        program: &'static str,
        iface: &str,
        ifindex: u32,
        zone: u8,
        frame: &[u8],
        container: Option<&str>,
    ) -> OpResult<(Vec<u8>, u32)> {
        let matched = self.matched(frame, ifindex, zone, container);
        let (verdict, out, reason) = self.dp.probe(program, frame, ifindex)?;
        hops.push(Hop {
            program: program.into(),
            interface: iface.into(),
            verdict: match verdict {
                TC_ACT_OK => "pass".into(),
                TC_ACT_SHOT => "drop".into(),
                TC_ACT_REDIRECT => "redirect".into(),
                other => format!("action {other}"),
            },
            reason: reason.map(|r| r.name().to_string()),
            matched,
            before: describe(frame),
            after: describe(&out),
        });
        Ok((out, verdict))
    }

    /// Where the tunnel takes a packet for `ip`: another host's overlay container.
    fn through_tunnel(&self, ip: Ipv4Addr) -> Option<String> {
        let t = *self.dp.remotes().ok()?.get(&ip.octets())?;
        let name = self
            .remote_names()
            .into_iter()
            .find(|(_, _, a)| *a == ip)
            .map_or_else(|| ip.to_string(), |(_, e, _)| e.container.clone());
        Some(format!(
            "{name} on host {} (VXLAN, VNI {})",
            Ipv4Addr::from(t.host),
            t.vni
        ))
    }

    /// Map entries the program consults for this packet, read the same way it reads them.
    fn matched(
        &self,
        frame: &[u8],
        ifindex: u32,
        zone: u8,
        container: Option<&str>,
    ) -> Vec<String> {
        let mut found = vec![];
        if let (Some(c), Ok(eps)) = (container, self.dp.dump::<u32, Endpoint>(maps::ENDPOINTS)) {
            if let Some(ep) = eps.get(&ifindex) {
                found.push(format!(
                    "NETD_ENDPOINTS[{ifindex}]: {c} {} net_id {}",
                    Ipv4Addr::from(ep.addr),
                    ep.net_id
                ));
            }
        }
        if let (Some((dst, _)), Ok(remotes)) = (destination(frame), self.dp.remotes()) {
            if let Some(t) = remotes.get(&dst.octets()).filter(|_| zone == ZONE_ENDPOINT) {
                found.push(format!(
                    "NETD_TUNNEL[{dst}]: encapsulate to host {} vni {}",
                    Ipv4Addr::from(t.host),
                    t.vni
                ));
            }
        }
        let Some(key) = flow_key(frame, zone) else {
            return found;
        };
        if let Ok(nat) = self.dp.nat_entries() {
            let rewrite = |e: &NatEntry| flow_text(e.saddr, e.sport_be, e.daddr, e.dport_be);
            if let Some((table, e)) = nat.get(&key) {
                found.push(format!("{}: rewrite to {}", table_text(*table), rewrite(e)));
            }
            // The container's port also translates replies of published-port flows itself.
            let reply_key = FlowKey {
                zone: ZONE_UPLINK_OUT,
                ..key
            };
            let reply = nat
                .get(&reply_key)
                .filter(|(_, e)| e.flags & NAT_FLAG_NEIGH != 0);
            if let (ZONE_ENDPOINT, Some((table, e))) = (zone, reply) {
                let what = match e.kind {
                    netd_common::NAT_KIND_SNAT => "egress flow",
                    _ => "published-port reply",
                };
                found.push(format!(
                    "{}: {what}, rewrite to {} and leave straight by ifindex {}",
                    table_text(*table),
                    rewrite(e),
                    e.redirect_ifindex
                ));
            }
        }
        if zone != ZONE_UPLINK_OUT {
            if let Ok(ports) = self.dp.dump::<PortKey, Backend>(maps::PORTS) {
                for addr in [key.daddr, [0; 4]] {
                    let pk = PortKey {
                        addr,
                        port_be: key.dport_be,
                        proto: key.proto,
                        _pad: 0,
                    };
                    if let (Some(b), true) = (
                        ports.get(&pk),
                        self.is_host_address(Ipv4Addr::from(key.daddr)),
                    ) {
                        found.push(format!(
                            "NETD_PORTS[{}:{}]: backend {}:{}",
                            Ipv4Addr::from(addr),
                            u16::from_be(key.dport_be),
                            Ipv4Addr::from(b.addr),
                            u16::from_be(b.port_be)
                        ));
                        break;
                    }
                }
            }
        }
        if let Some(net) = self.network_containing(Ipv4Addr::from(key.daddr)) {
            found.push(format!("NETD_NETWORKS: destination is on network {net}"));
        }
        let veth = self
            .dp
            .veths()
            .ok()
            .and_then(|v| v.get(&key.daddr).copied());
        if let (ZONE_ENDPOINT, Some(veth)) = (zone, veth) {
            let dst = Ipv4Addr::from(key.daddr);
            let who = self.container_at(dst).unwrap_or_else(|| "?".into());
            found.push(format!(
                "NETD_VETHS[{dst}]: straight into {who} through ifindex {veth} (if on this network)"
            ));
        }
        found
    }

    fn network_containing(&self, ip: Ipv4Addr) -> Option<String> {
        self.state
            .networks
            .values()
            .find(|n| n.subnet.contains(&ip))
            .map(|n| n.name.clone())
    }

    fn is_host_address(&self, ip: Ipv4Addr) -> bool {
        self.dp
            .dump::<[u8; 4], u32>(maps::LOCAL_ADDRS)
            .is_ok_and(|m| m.contains_key(&ip.octets()))
    }

    fn container_at(&self, ip: Ipv4Addr) -> Option<String> {
        self.state
            .endpoints()
            .find(|(_, ep)| ep.ip == ip)
            .map(|(c, _)| c.name.clone())
    }
}

/// The synthetic packet: a TCP SYN or a UDP datagram.
fn build(src_mac: [u8; 6], src: Ipv4Addr, to: SocketAddrV4, proto: Proto) -> OpResult<Vec<u8>> {
    let base = PacketBuilder::ethernet2(src_mac, [0x02, 0x42, 0, 0, 0, 0xfe]).ipv4(
        src.octets(),
        to.ip().octets(),
        64,
    );
    let mut frame = vec![];
    let written = match proto {
        Proto::Tcp => base
            .tcp(PROBE_PORT, to.port(), 1, 64240)
            .syn()
            .write(&mut frame, &[]),
        Proto::Udp => base.udp(PROBE_PORT, to.port()).write(&mut frame, b"probe"),
    };
    written.map_err(|e| invalid(format!("cannot build the probe packet: {e}")))?;
    Ok(frame)
}

/// The packet's destination address and port (inside the tunnel, for a VXLAN frame).
fn destination(frame: &[u8]) -> Option<(Ipv4Addr, u16)> {
    if let Some((_, _, inner)) = unwrap_vxlan(frame) {
        return destination(inner);
    }
    let (_, dst, _, dport, _) = tuple(frame)?;
    Some((dst, dport))
}

fn tuple(frame: &[u8]) -> Option<(Ipv4Addr, Ipv4Addr, u16, u16, u8)> {
    let packet = SlicedPacket::from_ethernet(frame).ok()?;
    let Some(NetSlice::Ipv4(ip)) = packet.net else {
        return None;
    };
    let h = ip.header();
    let (sport, dport, proto) = match packet.transport? {
        TransportSlice::Tcp(t) => (t.source_port(), t.destination_port(), 6),
        TransportSlice::Udp(u) => (u.source_port(), u.destination_port(), 17),
        _ => return None,
    };
    Some((h.source_addr(), h.destination_addr(), sport, dport, proto))
}

fn flow_key(frame: &[u8], zone: u8) -> Option<FlowKey> {
    let (s, d, sp, dp, proto) = tuple(frame)?;
    Some(FlowKey {
        saddr: s.octets(),
        daddr: d.octets(),
        sport_be: sp.to_be(),
        dport_be: dp.to_be(),
        proto,
        zone,
        _pad: [0; 2],
    })
}

/// The outer destination, the VNI and the inner frame of a VXLAN frame.
fn unwrap_vxlan(frame: &[u8]) -> Option<(Ipv4Addr, u32, &[u8])> {
    let packet = SlicedPacket::from_ethernet(frame).ok()?;
    let Some(NetSlice::Ipv4(ip)) = &packet.net else {
        return None;
    };
    let Some(TransportSlice::Udp(udp)) = &packet.transport else {
        return None;
    };
    let payload = udp.payload();
    if udp.destination_port() != VXLAN_PORT || payload.len() < 8 || payload[0] & 0x08 == 0 {
        return None;
    }
    let vni = u32::from_be_bytes([0, payload[4], payload[5], payload[6]]);
    Some((ip.header().destination_addr(), vni, &payload[8..]))
}

/// `proto src:port -> dst:port` of a frame (and the tunnel it is in), or what it is if not that.
fn describe(frame: &[u8]) -> String {
    if let Some((host, vni, inner)) = unwrap_vxlan(frame) {
        return format!("vxlan to {host} vni {vni}: {}", describe(inner));
    }
    match tuple(frame) {
        Some((s, d, sp, dp, proto)) => format!(
            "{} {s}:{sp} -> {d}:{dp}",
            if proto == 6 { "tcp" } else { "udp" }
        ),
        None => format!("{} bytes, not TCP/UDP over IPv4", frame.len()),
    }
}

/// The NAT table an entry was found in, as `explain` names it.
fn table_text(table: Table) -> &'static str {
    match table {
        Table::Assured => "NETD_NAT (assured)",
        Table::New => "NETD_NAT_NEW (not assured yet, or closing)",
    }
}
