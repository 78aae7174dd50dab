//! Fuzzing of the datapath through `BPF_PROG_TEST_RUN`: random, truncated and mutated frames
//! through `netd_endpoint_ingress`, `netd_uplink_ingress` and `netd_uplink_egress`, all three over
//! one set of maps, so that flows one program opens are met by the others (a published-port flow
//! let in at the uplink is answered at the container's port, a SNAT flow out of the uplink is
//! answered at its ingress).
//!
//! The topology: two isolated networks and published ports on both.
//!
//! | what          | address                  | notes                                             |
//! |---------------|--------------------------|---------------------------------------------------|
//! | network A (1) | 10.1.0.0/24, gw 10.1.0.1 | A1 10.1.0.2 (the container port under test, key 1) |
//! |               |                          | A2 10.1.0.3 (port 43)                             |
//! | network B (2) | 10.2.0.0/24, gw 10.2.0.1 | B1 10.2.0.5 (port 42)                             |
//! | host          | 10.99.0.2 (uplink key 1) | local addresses: 10.99.0.2 and both gateways      |
//! | published     | 10.99.0.2:8080/tcp → B1:80, *:8053/udp → B1:53, *:9090/tcp → A2:90,          |
//! |               | *:7070/tcp → A1:70                                                             |
//!
//! Invariants checked on every run, stated from what the programs document (`netd-ebpf/src`):
//!
//! * The kernel runs every frame, except those `BPF_PROG_TEST_RUN` refuses by its own rules with
//!   `EINVAL` (shorter than an Ethernet header, or than the IPv4/IPv6 header its EtherType
//!   announces); a refused frame moves no counter.
//! * Every verdict is `TC_ACT_OK`, `TC_ACT_SHOT` or `TC_ACT_REDIRECT` (egress never redirects),
//!   and a drop is counted under exactly one reason, a pass or redirect under none.
//! * Endpoint (frames from A1): only IPv4 and ARP get through; what gets through has A1's source,
//!   or a host address the programs put there; an IPv4 packet that gets through to network B is
//!   a published port of B translated to its backend (the hairpin path), nothing else; a
//!   translatable packet (TCP, UDP, not a fragment) to a published port leaves translated to its
//!   backend unless it is the reply of a flow the uplink let in; an ARP answer never names an
//!   address of network B.
//! * Uplink ingress (frames from outside): a packet that gets through to a container address is
//!   a published port translated to its backend, the reply of a flow in the NAT table translated
//!   as the entry says, or an ICMP error to a host address about such a flow; a translatable
//!   packet to a published port is translated to its backend unless a NAT entry claims its tuple.
//! * Uplink egress: no packet leaves with a container's address as source.
//! * Every packet that gets through carries exactly the tuple the hook's rules give it: unchanged
//!   when nothing applies, the NAT entry's when its tuple has one (read before the run), the
//!   backend's for a new flow to a published port, the uplink's address for a container's new
//!   flow out.
//! * A packet whose IPv4 header checksum was right still has a right one after any rewrite.
//!
//! Frames: `NETD_FUZZ_FRAMES` per program (default 1,000: a few seconds), from the fixed seed
//! `NETD_FUZZ_SEED` (default below), so a failure is reproduced by running again; `cargo xtask
//! fuzz` runs many more. Each violation is printed with the frame in hex.
//!
//! Needs root (skipped otherwise, unless `CI=true`).

mod common_bpf;

use std::collections::BTreeMap;

use common_bpf::*;
use netd_common::{
    Backend, Endpoint, FlowKey, NatEntry, PortKey, IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP,
    ZONE_ENDPOINT, ZONE_UPLINK_IN, ZONE_UPLINK_OUT,
};
use rand::{rngs::StdRng, Rng, SeedableRng};

const A_NET: u32 = 1;
const B_NET: u32 = 2;
const A_GW: [u8; 4] = [10, 1, 0, 1];
const B_GW: [u8; 4] = [10, 2, 0, 1];
const A1: [u8; 4] = [10, 1, 0, 2];
const A2: [u8; 4] = [10, 1, 0, 3];
const B1: [u8; 4] = [10, 2, 0, 5];
const A2_IFINDEX: u32 = 43;
const B1_IFINDEX: u32 = 42;
const HOST: [u8; 4] = [10, 99, 0, 2];
const CLIENT: [u8; 4] = [203, 0, 113, 7];
const SERVER: [u8; 4] = [10, 99, 0, 1];
const INTERNET: [u8; 4] = [93, 184, 216, 34];
const PEER_MAC: [u8; 6] = [0x02, 0x00, 0x0a, 0x63, 0x00, 0x01];
const UPLINK_MAC: [u8; 6] = [0x02, 0x00, 0x0a, 0x63, 0x00, 0x02];

/// The default seed: "netd" in ASCII.
const DEFAULT_SEED: u64 = 0x6e65_7464;
/// Frames per program by default: a few seconds in CI.
const DEFAULT_FRAMES: usize = 1000;

const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88a8;

/// Docker's MAC for an address.
fn mac(ip: [u8; 4]) -> [u8; 6] {
    [0x02, 0x42, ip[0], ip[1], ip[2], ip[3]]
}

/// The network an address belongs to, as `NETD_NETWORKS` says.
fn network_of(ip: [u8; 4]) -> Option<u32> {
    match ip[..3] {
        [10, 1, 0] => Some(A_NET),
        [10, 2, 0] => Some(B_NET),
        _ => None,
    }
}

fn is_local(ip: [u8; 4]) -> bool {
    [HOST, A_GW, B_GW].contains(&ip)
}

/// A published port's backend, in the model: (address, port).
#[derive(Clone, Copy, Debug, PartialEq)]
struct Target {
    addr: [u8; 4],
    port: u16,
}

/// A published port: (protocol, host address or 0.0.0.0, port), its backend, and the backend's
/// host-side port.
type Published = ((u8, [u8; 4], u16), Target, u32);

/// The published ports.
fn published_ports() -> Vec<Published> {
    vec![
        (
            (IPPROTO_TCP, HOST, 8080),
            Target { addr: B1, port: 80 },
            B1_IFINDEX,
        ),
        (
            (IPPROTO_UDP, [0; 4], 8053),
            Target { addr: B1, port: 53 },
            B1_IFINDEX,
        ),
        (
            (IPPROTO_TCP, [0; 4], 9090),
            Target { addr: A2, port: 90 },
            A2_IFINDEX,
        ),
        (
            (IPPROTO_TCP, [0; 4], 7070),
            Target { addr: A1, port: 70 },
            TEST_RUN_IFINDEX,
        ),
    ]
}

/// What `maps::published` answers: an exact binding first, then one on every address, and only
/// for the host's own addresses.
fn published(proto: u8, addr: [u8; 4], port: u16) -> Option<Target> {
    if !is_local(addr) {
        return None;
    }
    let ports = published_ports();
    let find = |a: [u8; 4]| {
        ports
            .iter()
            .find(|((p, pa, pp), _, _)| *p == proto && *pa == a && *pp == port)
            .map(|(_, t, _)| *t)
    };
    find(addr).or_else(|| find([0; 4]))
}

fn endpoint(addr: [u8; 4], net_id: u32) -> Endpoint {
    Endpoint {
        addr,
        mac: mac(addr),
        _pad: [0; 2],
        net_id,
        flags: 0,
    }
}

/// All three programs over the topology.
fn topology(test: &str) -> Option<Harness> {
    let mut h = Harness::new(test, ENDPOINT_INGRESS)?;
    h.load_program(UPLINK_INGRESS);
    h.load_program(UPLINK_EGRESS);
    h.add_network([10, 1, 0, 0], 24, A_NET);
    h.add_network([10, 2, 0, 0], 24, B_NET);
    for ip in [HOST, A_GW, B_GW] {
        h.add_local_addr(ip);
    }
    h.set_endpoint(TEST_RUN_IFINDEX, endpoint(A1, A_NET));
    h.set_endpoint(A2_IFINDEX, endpoint(A2, A_NET));
    h.set_endpoint(B1_IFINDEX, endpoint(B1, B_NET));
    for (ip, net) in [
        (A_GW, A_NET),
        (A1, A_NET),
        (A2, A_NET),
        (B_GW, B_NET),
        (B1, B_NET),
    ] {
        h.add_neighbor(ip, mac(ip), net);
    }
    for ((proto, addr, port), target, ifindex) in published_ports() {
        let gateway = if network_of(target.addr) == Some(A_NET) {
            A_GW
        } else {
            B_GW
        };
        h.add_port(
            PortKey {
                addr,
                port_be: port.to_be(),
                proto,
                _pad: 0,
            },
            Backend {
                addr: target.addr,
                port_be: target.port.to_be(),
                policy: netd_common::BACKEND_POLICY_HOST,
                ifindex,
                mac: mac(target.addr),
                _pad2: [0; 2],
                gateway,
            },
        );
    }
    h.set_uplink(TEST_RUN_IFINDEX, HOST);
    Some(h)
}

// --- Reading frames back ---------------------------------------------------------------------

/// An IPv4 packet as the programs parse it (version 4, IHL of at least 5, header present).
#[derive(Clone, Copy, Debug)]
struct Packet {
    src: [u8; 4],
    dst: [u8; 4],
    proto: u8,
    sport: u16,
    dport: u16,
    /// TCP or UDP with ports (TCP with its flags byte), or ICMP echo with its identifier, and
    /// not a fragment: what NAT translates.
    translatable: bool,
    icmp_type: Option<u8>,
    header_checksum_ok: bool,
}

impl Packet {
    fn key(&self, zone: u8) -> FlowKey {
        FlowKey {
            saddr: self.src,
            daddr: self.dst,
            sport_be: self.sport.to_be(),
            dport_be: self.dport.to_be(),
            proto: self.proto,
            zone,
            _pad: [0; 2],
        }
    }
}

fn ether_type(frame: &[u8]) -> Option<u16> {
    Some(u16::from_be_bytes(frame.get(12..14)?.try_into().ok()?))
}

fn parse(frame: &[u8]) -> Option<Packet> {
    if ether_type(frame)? != ETH_P_IP {
        return None;
    }
    let ip = frame.get(14..)?;
    let ihl = usize::from(*ip.first()? & 0x0f) * 4;
    if ip.len() < 20 || ip[0] >> 4 != 4 || ihl < 20 {
        return None;
    }
    let fragment = ip[6] & 0x3f != 0 || ip[7] != 0;
    let proto = ip[9];
    let l4 = ip.get(ihl..).unwrap_or_default();
    let port = |at: usize| l4.get(at..at + 2).map(|b| u16::from_be_bytes([b[0], b[1]]));
    let (mut sport, mut dport, mut translatable, mut icmp_type) = (0, 0, false, None);
    if !fragment {
        match proto {
            IPPROTO_TCP | IPPROTO_UDP => {
                if let (Some(s), Some(d)) = (port(0), port(2)) {
                    (sport, dport) = (s, d);
                    translatable = proto == IPPROTO_UDP || l4.len() >= 14;
                }
            }
            IPPROTO_ICMP => {
                icmp_type = l4.first().copied();
                if let (Some(0 | 8), Some(id)) = (icmp_type, port(4)) {
                    (sport, dport, translatable) = (id, id, true);
                }
            }
            _ => {}
        }
    }
    let header_checksum_ok = ip.len() >= ihl && inet_checksum(&ip[..ihl]) == 0;
    Some(Packet {
        src: ip[12..16].try_into().unwrap(),
        dst: ip[16..20].try_into().unwrap(),
        proto,
        sport,
        dport,
        translatable,
        icmp_type,
        header_checksum_ok,
    })
}

fn hex(frame: &[u8]) -> String {
    frame.iter().map(|b| format!("{b:02x}")).collect()
}

// --- Building frames -------------------------------------------------------------------------

fn ipv4_header(src: [u8; 4], dst: [u8; 4], proto: u8, payload_len: usize) -> Vec<u8> {
    let total = (20 + payload_len).min(usize::from(u16::MAX)) as u16;
    let mut h = vec![0x45, 0];
    h.extend_from_slice(&total.to_be_bytes());
    h.extend_from_slice(&[0x12, 0x34, 0x40, 0x00, 64, proto, 0, 0]);
    h.extend_from_slice(&src);
    h.extend_from_slice(&dst);
    let c = inet_checksum(&h);
    h[10..12].copy_from_slice(&c.to_be_bytes());
    h
}

/// The L4 checksum over the pseudo-header (TCP, UDP) or the message alone (ICMP).
fn l4_checksum(src: [u8; 4], dst: [u8; 4], proto: u8, l4: &[u8]) -> u16 {
    let mut data = Vec::with_capacity(12 + l4.len());
    if proto != IPPROTO_ICMP {
        data.extend_from_slice(&src);
        data.extend_from_slice(&dst);
        data.extend_from_slice(&[0, proto]);
        data.extend_from_slice(&(l4.len() as u16).to_be_bytes());
    }
    data.extend_from_slice(l4);
    inet_checksum(&data)
}

fn l4_message(rng: &mut StdRng, t: &Tuple) -> Vec<u8> {
    let payload: Vec<u8> = (0..rng.random_range(0..24)).map(|_| rng.random()).collect();
    let mut l4 = match t.proto {
        IPPROTO_TCP => {
            let flags = [0x02, 0x10, 0x12, 0x18, 0x11, 0x04, rng.random()][rng.random_range(0..7)];
            let mut s = Vec::new();
            s.extend_from_slice(&t.sport.to_be_bytes());
            s.extend_from_slice(&t.dport.to_be_bytes());
            s.extend_from_slice(&rng.random::<u32>().to_be_bytes());
            s.extend_from_slice(&rng.random::<u32>().to_be_bytes());
            s.extend_from_slice(&[0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
            s
        }
        IPPROTO_UDP => {
            let mut s = Vec::new();
            s.extend_from_slice(&t.sport.to_be_bytes());
            s.extend_from_slice(&t.dport.to_be_bytes());
            s.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
            s.extend_from_slice(&[0, 0]);
            s
        }
        IPPROTO_ICMP => {
            let kind = [8u8, 0][rng.random_range(0..2)];
            let mut s = vec![kind, 0, 0, 0];
            s.extend_from_slice(&t.sport.to_be_bytes());
            s.extend_from_slice(&[0, 1]);
            s
        }
        _ => Vec::new(),
    };
    l4.extend_from_slice(&payload);
    let at = match t.proto {
        IPPROTO_TCP => Some(16),
        IPPROTO_UDP if rng.random_bool(0.7) => Some(6),
        IPPROTO_ICMP => Some(2),
        _ => None,
    };
    if let Some(at) = at {
        let c = l4_checksum(t.src, t.dst, t.proto, &l4);
        l4[at..at + 2].copy_from_slice(&c.to_be_bytes());
    }
    l4
}

/// One direction of a flow.
#[derive(Clone, Copy, Debug)]
struct Tuple {
    src: [u8; 4],
    dst: [u8; 4],
    proto: u8,
    sport: u16,
    dport: u16,
}

/// An ICMP error (unreachable, time exceeded, parameter problem) from `src` to `dst` quoting the
/// packet `quoted` (its IPv4 header and first 8 bytes).
fn icmp_error(rng: &mut StdRng, src: [u8; 4], dst: [u8; 4], quoted: &Tuple) -> Vec<u8> {
    let inner_l4 = l4_message(rng, quoted);
    let mut inner = ipv4_header(quoted.src, quoted.dst, quoted.proto, inner_l4.len());
    inner.extend_from_slice(&inner_l4[..inner_l4.len().min(8)]);
    let kind = [3u8, 11, 12][rng.random_range(0..3)];
    let mut msg = vec![kind, rng.random_range(0..4), 0, 0, 0, 0, 0, 0];
    msg.extend_from_slice(&inner);
    let c = inet_checksum(&msg);
    msg[2..4].copy_from_slice(&c.to_be_bytes());
    let mut packet = ipv4_header(src, dst, IPPROTO_ICMP, msg.len());
    packet.extend_from_slice(&msg);
    packet
}

fn ip_frame(src_mac: [u8; 6], dst_mac: [u8; 6], packet: &[u8]) -> Vec<u8> {
    ethernet(dst_mac, src_mac, ETH_P_IP, packet)
}

/// Which program a frame is made for (it decides the likely sources).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Program {
    Endpoint,
    UplinkIngress,
    UplinkEgress,
}

impl Program {
    const ALL: [Program; 3] = [
        Program::Endpoint,
        Program::UplinkIngress,
        Program::UplinkEgress,
    ];

    fn name(self) -> &'static str {
        match self {
            Program::Endpoint => ENDPOINT_INGRESS,
            Program::UplinkIngress => UPLINK_INGRESS,
            Program::UplinkEgress => UPLINK_EGRESS,
        }
    }
}

fn pick<T: Copy>(rng: &mut StdRng, items: &[T]) -> T {
    items[rng.random_range(0..items.len())]
}

fn some_address(rng: &mut StdRng) -> [u8; 4] {
    let pool = [
        HOST,
        A_GW,
        B_GW,
        A1,
        A2,
        B1,
        CLIENT,
        SERVER,
        INTERNET,
        [10, 1, 0, 255],
        [10, 2, 0, 255],
        [10, 2, 0, 77],
        [255, 255, 255, 255],
        [224, 0, 0, 251],
        [127, 0, 0, 1],
        [0, 0, 0, 0],
    ];
    match rng.random_range(0..10) {
        0 => rng.random(),
        _ => pick(rng, &pool),
    }
}

fn some_port(rng: &mut StdRng) -> u16 {
    match rng.random_range(0..10) {
        0 => rng.random(),
        1 => rng.random_range(netd_common::SNAT_PORT_MIN..=netd_common::SNAT_PORT_MAX),
        _ => pick(
            rng,
            &[8080, 8053, 9090, 7070, 80, 53, 90, 70, 443, 22, 51000],
        ),
    }
}

/// The frames' ingredients, and replies to flows the programs opened so far.
struct Generator {
    rng: StdRng,
    /// Packets that got through translated, by the program they went through.
    seen: Vec<(Program, Packet)>,
}

impl Generator {
    /// A well-formed frame meant for `program`, or the reply to something seen earlier.
    fn template(&mut self, program: Program) -> Vec<u8> {
        let rng = &mut self.rng;
        if !self.seen.is_empty() && rng.random_bool(0.25) {
            if let Some(frame) = self.reply(program) {
                return frame;
            }
        }
        let rng = &mut self.rng;
        let src = match program {
            Program::Endpoint if rng.random_bool(0.85) => A1,
            Program::UplinkIngress if rng.random_bool(0.6) => pick(rng, &[CLIENT, SERVER]),
            Program::UplinkEgress if rng.random_bool(0.6) => pick(rng, &[A1, A2, B1]),
            _ => some_address(rng),
        };
        let (src_mac, dst_mac) = match program {
            Program::Endpoint if rng.random_bool(0.9) => (mac(A1), mac(A_GW)),
            Program::Endpoint => (rng.random(), rng.random()),
            Program::UplinkIngress => (PEER_MAC, UPLINK_MAC),
            Program::UplinkEgress => (UPLINK_MAC, PEER_MAC),
        };
        let dst = match program {
            Program::UplinkIngress if rng.random_bool(0.5) => HOST,
            _ => some_address(rng),
        };
        match rng.random_range(0..20) {
            0 => {
                let tpa = some_address(rng);
                let op = pick(rng, &[ARP_REQUEST, ARP_REPLY]);
                let sha = if rng.random_bool(0.9) {
                    src_mac
                } else {
                    rng.random()
                };
                let body = arp(op, sha, src, [0; 6], tpa);
                ethernet(BROADCAST_MAC, src_mac, ETH_P_ARP, &body)
            }
            1 => ipv6_frame(src_mac, dst_mac),
            2 => {
                let quoted = Tuple {
                    src: some_address(rng),
                    dst: some_address(rng),
                    proto: pick(rng, &[IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ICMP]),
                    sport: some_port(rng),
                    dport: some_port(rng),
                };
                ip_frame(src_mac, dst_mac, &icmp_error(rng, src, dst, &quoted))
            }
            3 => {
                let proto = rng.random();
                let payload: Vec<u8> = (0..rng.random_range(0..16)).map(|_| rng.random()).collect();
                let mut p = ipv4_header(src, dst, proto, payload.len());
                p.extend_from_slice(&payload);
                ip_frame(src_mac, dst_mac, &p)
            }
            kind => {
                let mut t = Tuple {
                    src,
                    dst,
                    proto: pick(rng, &[IPPROTO_TCP, IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ICMP]),
                    sport: some_port(rng),
                    dport: some_port(rng),
                };
                if kind < 10 && program != Program::UplinkEgress {
                    // Straight at a published port, on the address it is bound to or any.
                    let ((proto, addr, port), _, _) = pick(rng, &published_ports());
                    t.dst = if addr == [0; 4] {
                        pick(rng, &[HOST, A_GW, B_GW])
                    } else {
                        addr
                    };
                    (t.proto, t.dport) = (proto, port);
                }
                let l4 = l4_message(rng, &t);
                let mut p = ipv4_header(t.src, t.dst, t.proto, l4.len());
                p.extend_from_slice(&l4);
                ip_frame(src_mac, dst_mac, &p)
            }
        }
    }

    /// The reply to a packet a program let through translated, as it would come back at
    /// `program`: a container's answer at its port, or the outside's answer at the uplink.
    fn reply(&mut self, program: Program) -> Option<Vec<u8>> {
        let (from, p) = self.seen[self.rng.random_range(0..self.seen.len())];
        let wanted = match program {
            Program::Endpoint => from == Program::UplinkIngress && p.dst == A1,
            Program::UplinkIngress => from == Program::UplinkEgress,
            Program::UplinkEgress => from == Program::UplinkIngress,
        };
        if !wanted || !p.translatable {
            return None;
        }
        let t = Tuple {
            src: p.dst,
            dst: p.src,
            proto: p.proto,
            sport: p.dport,
            dport: p.sport,
        };
        let l4 = l4_message(&mut self.rng, &t);
        let mut packet = ipv4_header(t.src, t.dst, t.proto, l4.len());
        packet.extend_from_slice(&l4);
        let macs = match program {
            Program::Endpoint => (mac(A1), mac(A_GW)),
            Program::UplinkIngress => (PEER_MAC, UPLINK_MAC),
            Program::UplinkEgress => (UPLINK_MAC, PEER_MAC),
        };
        Some(ip_frame(macs.0, macs.1, &packet))
    }

    /// A frame for `program`: random bytes, a template, or a template mutated one to four times.
    fn frame(&mut self, program: Program) -> Vec<u8> {
        if self.rng.random_bool(0.08) {
            let len = match self.rng.random_bool(0.5) {
                true => self.rng.random_range(0..=14),
                false => self.rng.random_range(15..=96),
            };
            return (0..len).map(|_| self.rng.random()).collect();
        }
        let mut frame = self.template(program);
        if self.rng.random_bool(0.5) {
            for _ in 0..self.rng.random_range(1..=4) {
                mutate(&mut self.rng, &mut frame);
            }
        }
        frame
    }
}

/// One change of the kind that breaks parsers: a cut, a flipped byte, an odd header field.
fn mutate(rng: &mut StdRng, frame: &mut Vec<u8>) {
    let ip = 14;
    match rng.random_range(0..13) {
        0 => frame.truncate(rng.random_range(0..=frame.len())),
        1 if !frame.is_empty() => {
            let at = rng.random_range(0..frame.len());
            frame[at] = rng.random();
        }
        2 if frame.len() > ip => frame[ip] = (frame[ip] & 0xf0) | rng.random_range(0..16u8),
        3 if frame.len() > ip => frame[ip] = rng.random(),
        4 if frame.len() > ip + 8 => {
            // Fragments: more-fragments, an offset, or both.
            let any = rng.random();
            let v = pick(rng, &[0x2000u16, 0x0001, 0x2001, 0x1fff, any]);
            frame[ip + 6..ip + 8].copy_from_slice(&v.to_be_bytes());
        }
        5 if frame.len() > ip + 4 => {
            let any = rng.random();
            let v: u16 = pick(rng, &[0, 1, 19, 20, 0xffff, any]);
            frame[ip + 2..ip + 4].copy_from_slice(&v.to_be_bytes());
        }
        6 if frame.len() > ip + 10 => frame[ip + 9] = rng.random(),
        7 if frame.len() > ip + 12 => frame[ip + 10] ^= rng.random_range(1..=255u8),
        8 if frame.len() > ip + 8 => frame[ip + 8] = pick(rng, &[0, 1, 2, 255]),
        9 if frame.len() >= 14 => {
            let tpid = pick(rng, &[ETH_P_8021Q, ETH_P_8021AD]);
            let mut tag = tpid.to_be_bytes().to_vec();
            tag.extend_from_slice(&rng.random::<u16>().to_be_bytes());
            frame.splice(12..12, tag);
        }
        10 if frame.len() >= 14 => {
            let any = rng.random();
            let t: u16 = pick(rng, &[ETH_P_IP, ETH_P_ARP, ETH_P_IPV6, any]);
            frame[12..14].copy_from_slice(&t.to_be_bytes());
        }
        11 => frame.extend((0..rng.random_range(1..32)).map(|_| rng.random::<u8>())),
        12 if frame.len() > ip + 24 => {
            // A byte of the L4 header (ports, checksum, flags) behind a plain header.
            let at = rng.random_range(ip + 20..frame.len().min(ip + 40));
            frame[at] = rng.random();
        }
        _ => {}
    }
}

// --- The invariants --------------------------------------------------------------------------

/// What is known before a run: the NAT entries the input's tuple matches, at each hook.
struct Before {
    drops: u64,
    uplink_in: Option<NatEntry>,
    uplink_out: Option<NatEntry>,
    endpoint: Option<NatEntry>,
}

/// Whether `BPF_PROG_TEST_RUN` refuses the frame by its own rules (see the module docs).
fn kernel_may_refuse(frame: &[u8]) -> bool {
    match ether_type(frame) {
        None => true,
        Some(ETH_P_IP) => frame.len() < 14 + 20,
        Some(ETH_P_IPV6) => frame.len() < 14 + 40,
        Some(_) => false,
    }
}

fn check_verdict(program: Program, verdict: u32) -> Result<(), String> {
    let known = match program {
        Program::UplinkEgress => [TC_ACT_OK, TC_ACT_SHOT].contains(&verdict),
        _ => [TC_ACT_OK, TC_ACT_SHOT, TC_ACT_REDIRECT].contains(&verdict),
    };
    match known {
        true => Ok(()),
        false => Err(format!("unknown verdict {verdict}")),
    }
}

/// The tuple a packet that got through must carry: (source, source port, destination,
/// destination port); ports are compared for TCP and UDP only (ICMP echo identifiers follow
/// the entry's ports, which this does not model).
type Expected = ([u8; 4], u16, [u8; 4], u16);

fn tuple(p: &Packet) -> Expected {
    (p.src, p.sport, p.dst, p.dport)
}

fn entry_tuple(e: &NatEntry) -> Expected {
    (
        e.saddr,
        u16::from_be(e.sport_be),
        e.daddr,
        u16::from_be(e.dport_be),
    )
}

fn check_tuple(what: &str, input: &Packet, out: &Packet, want: Expected) -> Result<(), String> {
    let got = tuple(out);
    let same = match input.proto {
        IPPROTO_TCP | IPPROTO_UDP => got == want,
        _ => (got.0, got.2) == (want.0, want.2),
    };
    match same {
        true => Ok(()),
        false => Err(format!(
            "{what}: expected {want:?}, got {got:?} (input {input:?})"
        )),
    }
}

/// A published port's translation: the backend, from the same source (a container reaching
/// its own port comes from its gateway).
fn hairpin_tuple(input: &Packet, t: Target) -> Expected {
    let src = match t.addr == input.src {
        true => A_GW,
        false => input.src,
    };
    (src, input.sport, t.addr, t.port)
}

fn check_endpoint(frame: &[u8], out: &[u8], verdict: u32, before: &Before) -> Result<(), String> {
    match ether_type(out) {
        Some(ETH_P_IP) | Some(ETH_P_ARP) => {}
        other => return Err(format!("a frame of EtherType {other:x?} got through")),
    }
    if ether_type(out) == Some(ETH_P_ARP) {
        // An answer names the address asked for: never one of network B.
        if out.len() >= 42 && out[20..22] == ARP_REPLY.to_be_bytes() && out[6..12] != mac(A1) {
            let spa: [u8; 4] = out[28..32].try_into().unwrap();
            if network_of(spa) != Some(A_NET) {
                return Err(format!("ARP answered for {spa:?}"));
            }
        }
        return Ok(());
    }
    let out_p = parse(out).ok_or("an IPv4 frame the programs cannot parse got through")?;
    let input = parse(frame).ok_or("got through as IPv4 though it did not parse as IPv4")?;
    if out_p.src != A1 && !is_local(out_p.src) {
        return Err(format!("got through with source {:?}", out_p.src));
    }
    let published = published(input.proto, input.dst, input.dport);
    if let Some(net) = network_of(out_p.dst).filter(|n| *n != A_NET) {
        let hairpin = input.translatable
            && before.uplink_out.is_none()
            && published.is_some_and(|t| tuple(&out_p) == hairpin_tuple(&input, t));
        if !hairpin {
            return Err(format!(
                "crossed from network A to network {net}: {input:?} -> {out_p:?}"
            ));
        }
    }
    // Every packet that gets through is translated exactly as the hook's rules say.
    match (
        input.translatable,
        before.uplink_out,
        before.endpoint,
        published,
    ) {
        (false, ..) => check_tuple(
            "not translatable, so unchanged",
            &input,
            &out_p,
            tuple(&input),
        ),
        (true, Some(e), ..) if verdict == TC_ACT_REDIRECT => check_tuple(
            "a reply sent out of the uplink",
            &input,
            &out_p,
            entry_tuple(&e),
        ),
        (true, Some(_), ..) => {
            check_tuple("a reply left to the host", &input, &out_p, tuple(&input))
        }
        (true, None, Some(e), _) => check_tuple("a hairpin flow", &input, &out_p, entry_tuple(&e)),
        (true, None, None, Some(t)) => check_tuple(
            "a published port left untranslated",
            &input,
            &out_p,
            hairpin_tuple(&input, t),
        ),
        (true, None, None, None) => {
            check_tuple("nothing to translate", &input, &out_p, tuple(&input))
        }
    }?;
    check_checksum(&input, &out_p)
}

fn check_uplink_ingress(frame: &[u8], out: &[u8], before: &Before) -> Result<(), String> {
    let (Some(input), Some(out_p)) = (parse(frame), parse(out)) else {
        return Ok(()); // not IPv4: the host's business
    };
    let icmp_error = matches!(input.icmp_type, Some(3 | 11 | 12));
    if network_of(out_p.dst).is_some() && !is_local(out_p.dst) {
        let by_rule = input.translatable || (icmp_error && is_local(input.dst));
        if !by_rule || tuple(&input) == tuple(&out_p) {
            return Err(format!(
                "reached container address {:?} untranslated: {input:?} -> {out_p:?}",
                out_p.dst
            ));
        }
    }
    let published = published(input.proto, input.dst, input.dport);
    match (input.translatable, before.uplink_in, published) {
        // An ICMP error about a translated flow, addressed to the host: its outer destination
        // becomes the original sender (checked above to be no stranger).
        (false, ..) if icmp_error && is_local(input.dst) => Ok(()),
        (false, ..) => check_tuple(
            "not translatable, so unchanged",
            &input,
            &out_p,
            tuple(&input),
        ),
        (true, Some(e), _) => {
            check_tuple("a flow in the NAT table", &input, &out_p, entry_tuple(&e))
        }
        (true, None, Some(t)) => check_tuple(
            "a published port left untranslated",
            &input,
            &out_p,
            (input.src, input.sport, t.addr, t.port),
        ),
        (true, None, None) => check_tuple("nothing to translate", &input, &out_p, tuple(&input)),
    }?;
    check_checksum(&input, &out_p)
}

fn check_uplink_egress(frame: &[u8], out: &[u8], before: &Before) -> Result<(), String> {
    let Some(out_p) = parse(out) else {
        return Ok(());
    };
    if network_of(out_p.src).is_some() && !is_local(out_p.src) {
        return Err(format!(
            "left the uplink with container address {:?}: {out_p:?}",
            out_p.src
        ));
    }
    let Some(input) = parse(frame) else {
        return Ok(());
    };
    match (input.translatable, before.uplink_out) {
        (true, Some(e)) => check_tuple("a flow in the NAT table", &input, &out_p, entry_tuple(&e)),
        // A new flow from a container leaves with the uplink's address, to where it was going.
        _ if tuple(&input) != tuple(&out_p) => {
            let ok = out_p.src == HOST && out_p.dst == input.dst && network_of(input.src).is_some();
            match ok || (input.icmp_type.is_some() && !input.translatable) {
                true => Ok(()),
                false => Err(format!("translated unasked: {input:?} -> {out_p:?}")),
            }
        }
        _ => Ok(()),
    }?;
    check_checksum(&input, &out_p)
}

fn check_checksum(input: &Packet, out: &Packet) -> Result<(), String> {
    if input.header_checksum_ok && !out.header_checksum_ok {
        return Err(format!("the IPv4 header checksum went wrong: {out:?}"));
    }
    Ok(())
}

// --- The run ---------------------------------------------------------------------------------

/// What happened to the frames of one program.
#[derive(Default)]
struct Tally {
    runs: u64,
    refused: u64,
    verdicts: BTreeMap<u32, u64>,
    violations: Vec<String>,
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn total_drops(h: &Harness) -> u64 {
    h.all_drops().iter().map(|(_, n)| n).sum()
}

/// Runs one frame through `program` and checks every invariant.
fn run_one(h: &Harness, program: Program, frame: &[u8], tally: &mut Tally) -> Option<Packet> {
    let input = parse(frame);
    let before = Before {
        drops: total_drops(h),
        uplink_in: input.and_then(|p| h.nat_get(&p.key(ZONE_UPLINK_IN))),
        uplink_out: input.and_then(|p| h.nat_get(&p.key(ZONE_UPLINK_OUT))),
        endpoint: input.and_then(|p| h.nat_get(&p.key(ZONE_ENDPOINT))),
    };
    let result = h.try_run_out(program.name(), frame);
    let drops = total_drops(h) - before.drops;
    let outcome = match result {
        Err(aya::programs::ProgramError::SyscallError(e))
            if e.io_error.raw_os_error() == Some(libc::EINVAL) && kernel_may_refuse(frame) =>
        {
            tally.refused += 1;
            match drops {
                0 => Ok(None),
                n => Err(format!("a refused frame counted {n} drops")),
            }
        }
        Err(e) => Err(format!("the kernel refused the run: {}", error_chain(&e))),
        Ok((verdict, out)) => {
            tally.runs += 1;
            *tally.verdicts.entry(verdict).or_default() += 1;
            let checked = check_verdict(program, verdict).and_then(|()| {
                match (verdict == TC_ACT_SHOT, drops) {
                    (true, 1) | (false, 0) => {}
                    (shot, n) => return Err(format!("shot={shot} but {n} drops counted")),
                }
                if verdict == TC_ACT_SHOT {
                    return Ok(());
                }
                match program {
                    Program::Endpoint => check_endpoint(frame, &out, verdict, &before),
                    Program::UplinkIngress => check_uplink_ingress(frame, &out, &before),
                    Program::UplinkEgress => check_uplink_egress(frame, &out, &before),
                }
            });
            checked.map(|()| match verdict {
                TC_ACT_SHOT => None,
                _ => {
                    parse(&out).filter(|o| input.is_some_and(|i| i.src != o.src || i.dst != o.dst))
                }
            })
        }
    };
    match outcome {
        Ok(translated) => translated,
        Err(why) => {
            tally.violations.push(format!(
                "{}: {why}\n    frame {}",
                program.name(),
                hex(frame)
            ));
            None
        }
    }
}

#[test]
fn random_and_mutated_frames_never_cross_networks_or_leave_untranslated() {
    let Some(h) = topology("bpf_fuzz") else {
        return;
    };
    let frames: usize = env_or("NETD_FUZZ_FRAMES", DEFAULT_FRAMES);
    let seed: u64 = env_or("NETD_FUZZ_SEED", DEFAULT_SEED);
    let mut generator = Generator {
        rng: StdRng::seed_from_u64(seed),
        seen: Vec::new(),
    };
    let mut tallies: BTreeMap<Program, Tally> = BTreeMap::new();
    let started = std::time::Instant::now();
    for _ in 0..frames {
        for program in Program::ALL {
            let frame = generator.frame(program);
            let tally = tallies.entry(program).or_default();
            if let Some(translated) = run_one(&h, program, &frame, tally) {
                if generator.seen.len() < 4096 {
                    generator.seen.push((program, translated));
                }
            }
        }
    }
    let mut violations = Vec::new();
    for (program, t) in &tallies {
        eprintln!(
            "bpf_fuzz: {}: {} runs ({} frames refused by the kernel), verdicts {:?}, {} violations",
            program.name(),
            t.runs,
            t.refused,
            t.verdicts,
            t.violations.len()
        );
        violations.extend(t.violations.iter().cloned());
    }
    eprintln!(
        "bpf_fuzz: {} frames per program, seed {seed:#x}, {:.1} s",
        frames,
        started.elapsed().as_secs_f64()
    );
    let shown: Vec<&String> = violations.iter().take(20).collect();
    assert!(
        violations.is_empty(),
        "{} violations (first 20):\n{}",
        violations.len(),
        shown
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    );
}
